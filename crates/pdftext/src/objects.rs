//! A PDF's objects read when a page needs them, so that memory holds one page
//! at a time whatever the page count.
//!
//! lopdf's `Document::load_mem` parses every object of the file up front
//! (measured: 140 of the 168 MiB peak of a 500-page, 15 MiB file). Here only
//! the cross-reference table and trailer are read (`src/xref.rs`; lopdf's
//! loader, with a filter that keeps no object, for what that does not read),
//! and [`Objects::get`] parses one object at its offset when asked
//! (`src/parse.rs`, or lopdf's own `Reader` for what that leaves to it).
//! [`Objects::page_document`] copies
//! into a one-page lopdf `Document` what one page draws with (contents,
//! resources, fonts, forms), which the decoder reads and which is dropped
//! before the next page.
//!
//! An encrypted file that opens with the empty password is decrypted by lopdf
//! while loading, every object at once; such files are held whole.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::rc::Rc;

use lopdf::xref::XrefEntry;
use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId, ObjectStream, Reader};

/// Objects one page may pull in before it is refused: a page of a real
/// document uses hundreds (a CJK Type3 font: one per glyph drawn).
pub(crate) const MAX_OBJECTS_PER_PAGE: usize = 100_000;
/// Page-tree levels followed; a deeper tree is a loop.
const MAX_TREE_DEPTH: usize = 64;
/// Object streams kept decoded, most recent first (a page's fonts are often
/// in one or two).
const CACHED_OBJECT_STREAMS: usize = 4;

/// Why a PDF could not be opened.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// It needs a password other than the empty one.
    Encrypted,
    /// lopdf could not read its structure.
    Damaged(lopdf::Error),
}

enum Store<'a> {
    /// Objects parsed from `Reader::buffer` on demand.
    Lazy(Box<Reader<'a>>),
    /// Every object, as lopdf loaded (and decrypted) them.
    Loaded(Box<Document>),
}

/// The objects of one object stream, by id.
type Decoded = Rc<BTreeMap<ObjectId, Object>>;

/// The objects of one PDF, by id.
pub(crate) struct Objects<'a> {
    store: Store<'a>,
    /// Recently used object streams, by container number, most recent first.
    object_streams: RefCell<VecDeque<(u32, Decoded)>>,
}

/// One page and what it inherits from the page tree.
pub(crate) struct PageEntry {
    id: ObjectId,
    resources: Option<Object>,
    media_box: Option<Object>,
}

/// Why a page's objects could not be gathered.
#[derive(Debug)]
pub(crate) enum PageFailure {
    /// The page object itself is missing or not a dictionary.
    Missing,
    /// The page pulls in more than [`MAX_OBJECTS_PER_PAGE`] objects.
    TooManyObjects,
}

thread_local! {
    /// The ids lopdf finds at the offsets of the cross-reference table, while
    /// [`Objects::open`] has it read them (lopdf's filter is a plain `fn`).
    static FOUND: RefCell<Vec<ObjectId>> = const { RefCell::new(Vec::new()) };
}

fn keep_none(id: ObjectId, _: &mut Object) -> Option<(ObjectId, Object)> {
    FOUND.with(|found| found.borrow_mut().push(id));
    None
}

/// Whether every object the cross-reference table places was found where it
/// says, under its number. lopdf's loader files each object under the number
/// written at its offset, so a misnumbered table (damaged files, careless
/// writers) still loads whole; reading one object by its number does not.
/// The loader parses the table's entries in order of number (lopdf without
/// its `rayon` feature), so `found` lines up with them when every one parsed.
fn table_matches(document: &Document, found: &[ObjectId]) -> bool {
    let placed =
        document
            .reference_table
            .entries
            .iter()
            .filter_map(|(number, entry)| match entry {
                XrefEntry::Normal { generation, .. } => Some((*number, *generation)),
                _ => None,
            });
    placed.eq(found.iter().copied())
}

fn classify(error: lopdf::Error) -> OpenFailure {
    match error {
        lopdf::Error::InvalidPassword
        | lopdf::Error::Decryption(_)
        | lopdf::Error::UnsupportedSecurityHandler(_) => OpenFailure::Encrypted,
        other => OpenFailure::Damaged(other),
    }
}

impl<'a> Objects<'a> {
    /// Reads the cross-reference table and trailer of `bytes`; a file whose
    /// table does not match its objects is loaded whole instead.
    pub(crate) fn open(bytes: &'a [u8]) -> Result<Objects<'a>, OpenFailure> {
        let start = bytes.windows(5).position(|w| w == b"%PDF-").unwrap_or(0);
        if let Some(document) = crate::xref::read(&bytes[start..]) {
            return Ok(Objects::lazy(&bytes[start..], document));
        }
        let options = LoadOptions {
            filter: Some(keep_none),
            ..LoadOptions::default()
        };
        FOUND.with(|found| found.borrow_mut().clear());
        let loaded = Document::load_mem_with_options(bytes, options);
        let found = FOUND.with(|found| std::mem::take(&mut *found.borrow_mut()));
        let document = loaded.map_err(classify)?;
        // lopdf leaves /Encrypt in the trailer when the empty password does
        // not open the file, and ignores the filter when it does.
        if document.is_encrypted() {
            return Err(OpenFailure::Encrypted);
        }
        if document.objects.is_empty() && !table_matches(&document, &found) {
            return Objects::open_whole(bytes);
        }
        if document.objects.is_empty() {
            return Ok(Objects::lazy(&bytes[start..], document));
        }
        Ok(Objects {
            store: Store::Loaded(Box::new(document)),
            object_streams: RefCell::new(VecDeque::new()),
        })
    }

    /// Objects read from `buffer` (starting at `%PDF-`) as `document`'s
    /// cross-reference table places them.
    fn lazy(buffer: &'a [u8], document: Document) -> Objects<'a> {
        Objects {
            store: Store::Lazy(Box::new(Reader {
                buffer,
                document,
                encryption_state: None,
                raw_objects: BTreeMap::new(),
                password: None,
                strict: false,
            })),
            object_streams: RefCell::new(VecDeque::new()),
        }
    }

    /// Every object of `bytes`, parsed now, as lopdf's loader files them.
    pub(crate) fn open_whole(bytes: &'a [u8]) -> Result<Objects<'a>, OpenFailure> {
        let document = Document::load_mem(bytes).map_err(classify)?;
        if document.is_encrypted() {
            return Err(OpenFailure::Encrypted);
        }
        Ok(Objects {
            store: Store::Loaded(Box::new(document)),
            object_streams: RefCell::new(VecDeque::new()),
        })
    }

    /// Whether objects are read when asked for (not all loaded up front).
    pub(crate) fn is_lazy(&self) -> bool {
        matches!(self.store, Store::Lazy(_))
    }

    fn document(&self) -> &Document {
        match &self.store {
            Store::Lazy(reader) => &reader.document,
            Store::Loaded(document) => document,
        }
    }

    /// The object `id`, parsed now; `None` if it is missing or unreadable.
    pub(crate) fn get(&self, id: ObjectId) -> Option<Object> {
        let reader = match &self.store {
            Store::Loaded(document) => return document.objects.get(&id).cloned(),
            Store::Lazy(reader) => reader,
        };
        match reader.document.reference_table.get(id.0)? {
            XrefEntry::Compressed { container, .. } => {
                self.object_stream(*container)?.get(&id).cloned()
            }
            XrefEntry::Normal { offset, .. } => {
                let table = &reader.document.reference_table;
                let lengths = |length: ObjectId| match table.get(length.0) {
                    Some(XrefEntry::Normal { offset, .. }) => {
                        crate::parse::integer(reader.buffer, *offset as usize, length)
                    }
                    _ => None,
                };
                if let Some(object) =
                    crate::parse::object(reader.buffer, *offset as usize, id, &lengths)
                {
                    return Some(object);
                }
                let mut object = reader.get_object(id, &mut HashSet::new()).ok()?;
                if let Object::Stream(stream) = &mut object {
                    fill_stream_content(reader, stream);
                }
                Some(object)
            }
            _ => None,
        }
    }

    /// The objects of object stream `container`, decoded once while it is
    /// among the most recently used.
    fn object_stream(&self, container: u32) -> Option<Decoded> {
        let mut cache = self.object_streams.borrow_mut();
        if let Some(at) = cache.iter().position(|(id, _)| *id == container) {
            let entry = cache.remove(at)?;
            let objects = entry.1.clone();
            cache.push_front(entry);
            return Some(objects);
        }
        drop(cache);
        let Some(Object::Stream(mut stream)) = self.get((container, 0)) else {
            return None;
        };
        let objects = Rc::new(ObjectStream::new(&mut stream).ok()?.objects);
        let mut cache = self.object_streams.borrow_mut();
        cache.push_front((container, objects.clone()));
        cache.truncate(CACHED_OBJECT_STREAMS);
        Some(objects)
    }

    /// `object` itself, or the object it refers to.
    fn resolve(&self, object: &Object) -> Option<Object> {
        match object {
            Object::Reference(id) => self.get(*id),
            other => Some(other.clone()),
        }
    }

    /// The pages in page order, each with what it inherits. Loops and
    /// references to missing nodes are skipped.
    pub(crate) fn pages(&self) -> Vec<PageEntry> {
        let trailer = &self.document().trailer;
        let Some(catalog) = trailer
            .get(b"Root")
            .ok()
            .and_then(|root| self.resolve(root))
        else {
            return Vec::new();
        };
        let Ok(Object::Reference(root)) = catalog.as_dict().and_then(|c| c.get(b"Pages")) else {
            return Vec::new();
        };
        let mut pages = Vec::new();
        let mut seen = HashSet::new();
        self.walk(*root, None, None, 0, &mut seen, &mut pages);
        pages
    }

    fn walk(
        &self,
        id: ObjectId,
        resources: Option<&Object>,
        media_box: Option<&Object>,
        depth: usize,
        seen: &mut HashSet<ObjectId>,
        pages: &mut Vec<PageEntry>,
    ) {
        if depth > MAX_TREE_DEPTH || !seen.insert(id) {
            return;
        }
        let Some(Object::Dictionary(node)) = self.get(id) else {
            return;
        };
        let resources = node.get(b"Resources").ok().or(resources);
        let media_box = node.get(b"MediaBox").ok().or(media_box);
        match node.get(b"Kids").ok().and_then(|kids| self.resolve(kids)) {
            Some(Object::Array(kids)) => {
                for kid in kids {
                    if let Object::Reference(kid) = kid {
                        self.walk(kid, resources, media_box, depth + 1, seen, pages);
                    }
                }
            }
            _ if node.has_type(b"Pages") => {}
            _ => pages.push(PageEntry {
                id,
                resources: resources.cloned(),
                media_box: media_box.cloned(),
            }),
        }
    }

    /// A one-page document with `page` and every object it draws with,
    /// under their own ids; image data is left out (only text is read).
    pub(crate) fn page_document(&self, page: &PageEntry) -> Result<Document, PageFailure> {
        let Some(Object::Dictionary(original)) = self.get(page.id) else {
            return Err(PageFailure::Missing);
        };
        let mut doc = Document::with_version("1.7");
        let top = self.document().reference_table.max_id().max(page.id.0);
        let (pages_id, catalog_id) = ((top + 1, 0), (top + 2, 0));
        let letter = || Object::Array(vec![0.into(), 0.into(), 612.into(), 792.into()]);
        let mut dict = Dictionary::new();
        dict.set("Type", "Page");
        dict.set("Parent", pages_id);
        dict.set(
            "Resources",
            page.resources
                .clone()
                .unwrap_or_else(|| Dictionary::new().into()),
        );
        dict.set("MediaBox", page.media_box.clone().unwrap_or_else(letter));
        for key in [&b"Contents"[..], b"ArtBox"] {
            if let Ok(value) = original.get(key) {
                dict.set(key, value.clone());
            }
        }
        self.copy_reachable(&dict, &mut doc)?;
        doc.objects.insert(page.id, Object::Dictionary(dict));
        let mut tree = Dictionary::new();
        tree.set("Type", "Pages");
        tree.set("Kids", vec![Object::Reference(page.id)]);
        tree.set("Count", 1);
        doc.objects.insert(pages_id, Object::Dictionary(tree));
        let mut catalog = Dictionary::new();
        catalog.set("Type", "Catalog");
        catalog.set("Pages", pages_id);
        doc.objects.insert(catalog_id, Object::Dictionary(catalog));
        doc.trailer.set("Root", catalog_id);
        doc.max_id = top + 2;
        Ok(doc)
    }

    /// Copies into `doc` every object reachable from `from`, except other
    /// pages and page-tree nodes (through `/Parent` or `/P`), metadata, the
    /// data of images and what pdf-extract does not read for text: the glyph
    /// procedures of Type3 fonts and TrueType programs.
    fn copy_reachable(&self, from: &Dictionary, doc: &mut Document) -> Result<(), PageFailure> {
        let mut queue: VecDeque<ObjectId> = VecDeque::new();
        push_references(&Object::Dictionary(from.clone()), &mut queue);
        let mut seen = HashSet::new();
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id) {
                continue;
            }
            if seen.len() > MAX_OBJECTS_PER_PAGE {
                return Err(PageFailure::TooManyObjects);
            }
            let Some(mut object) = self.get(id) else {
                continue;
            };
            if let Ok(dict) = object.as_dict()
                && (dict.has_type(b"Page") || dict.has_type(b"Pages"))
            {
                continue;
            }
            if let Object::Stream(stream) = &mut object
                && stream
                    .dict
                    .get(b"Subtype")
                    .and_then(Object::as_name)
                    .is_ok_and(|n| n == b"Image")
            {
                stream.content = Vec::new();
                stream.dict = Dictionary::new();
                stream.dict.set("Subtype", "Image");
            }
            // pdf-extract inflates a TrueType program and throws it away.
            if let Object::Dictionary(dict) = &mut object {
                dict.remove(b"FontFile2");
            }
            push_references(&object, &mut queue);
            doc.objects.insert(id, object);
        }
        Ok(())
    }
}

/// Queues the references inside `object`, except under the keys that lead
/// back up to pages, to metadata or to Type3 glyph procedures.
fn push_references(object: &Object, queue: &mut VecDeque<ObjectId>) {
    match object {
        Object::Reference(id) => queue.push_back(*id),
        Object::Array(items) => items.iter().for_each(|o| push_references(o, queue)),
        Object::Dictionary(dict) => push_dictionary_references(dict, queue),
        Object::Stream(stream) => push_dictionary_references(&stream.dict, queue),
        _ => {}
    }
}

fn push_dictionary_references(dict: &Dictionary, queue: &mut VecDeque<ObjectId>) {
    for (key, value) in dict.iter() {
        if !matches!(
            key.as_slice(),
            b"Parent" | b"P" | b"Metadata" | b"Annots" | b"CharProcs"
        ) {
            push_references(value, queue);
        }
    }
}

/// A stream whose `/Length` is an indirect object the parser could not
/// follow comes out empty; its bytes are read here, as lopdf's loader does.
fn fill_stream_content(reader: &Reader, stream: &mut lopdf::Stream) {
    if !stream.content.is_empty() {
        return;
    }
    let (Some(start), Ok(Object::Reference(length_id))) =
        (stream.start_position, stream.dict.get(b"Length"))
    else {
        return;
    };
    let Ok(length) = reader
        .get_object(*length_id, &mut HashSet::new())
        .and_then(|l| l.as_i64())
    else {
        return;
    };
    let end = usize::try_from(length)
        .ok()
        .and_then(|l| start.checked_add(l));
    if let Some(bytes) = end.and_then(|end| reader.buffer.get(start..end)) {
        stream.set_content(bytes.to_vec());
    }
}
