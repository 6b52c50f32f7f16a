//! Text of real-world PDFs, page by page.
//!
//! [`Pdf::open`] reads a file's cross-reference table; [`page_texts`] then
//! reads one page at a time (`src/objects.rs`: the page's objects are parsed
//! when it is read and dropped after it), so memory holds one page whatever
//! the page count. Each page's fonts are decoded with pdf-extract 0.12.1
//! (ToUnicode first per code, `/Encoding` and `/Differences` for the rest,
//! CID fonts with `/W`, Type3) and its lines and spaces are built from where
//! each glyph is drawn (`src/assemble.rs`). Before decoding, `src/repair.rs`
//! rewrites what that crate misreads or panics on. The choice, and the
//! engines measured against it on `tests/pdf-corpus`, are in this crate's
//! README; `cargo xtask pdf-measure` prints the comparison.
//!
//! The decoder panics on inputs it does not expect (by its maintainer's
//! choice) and has no limit on the work a small file can ask for (forms drawn
//! inside forms). A page it panics on, or that draws more than any real page
//! does, is left empty and listed in [`Extraction::failed`]; the other pages
//! keep their text. Reading stops at a deadline or when a flag is raised
//! ([`Stop`]), checked at every glyph and drawing operation the decoder
//! reports, so a thread reading a hostile file ends when told to.
//!
//! Measured (README, "Measurements"): on the corpus, word recall and precision
//! against pdftotext's text are 1.000 on every document but the Arabic one,
//! where pdftotext itself is wrong; a 500-page file peaks at 25 MiB (15 of
//! them the file's bytes; 168 MiB when lopdf loaded it whole) and 100 pages
//! at 11 MiB, at 1.2× pdftotext's CPU time per page (2.4× before the
//! cross-reference table and the objects were read by `src/xref.rs` and
//! `src/parse.rs` instead of lopdf's parser).

#![warn(missing_docs)]

mod assemble;
pub mod candidate;
mod cjk;
mod objects;
mod parse;
mod repair;
pub mod score;
mod xref;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use lopdf::Document;

use objects::{Objects, PageEntry};

/// Why a PDF could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// It needs a password (the empty one does not open it).
    #[error("the PDF is encrypted with a password")]
    Encrypted,
    /// Its structure (header, cross-reference table, trailer) is unreadable.
    #[error("the PDF is damaged or truncated: {0}")]
    Damaged(String),
    /// Its page tree holds no page.
    #[error("the PDF has no pages")]
    NoPages,
}

/// Why the text of a PDF, or of one of its pages, could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// The decoder panicked on something in the page.
    #[error("the text reader cannot handle its content ({0})")]
    Panicked(String),
    /// The deadline passed before every page was read.
    #[error("reading its text took longer than allowed")]
    TimedOut,
    /// The caller raised the stop flag.
    #[error("reading its text was stopped")]
    Cancelled,
    /// A page draws more glyphs than any real page does.
    #[error("a page draws more than {} glyphs", assemble::MAX_GLYPHS_PER_PAGE)]
    TooManyGlyphs,
    /// A page is built from more objects than any real page is.
    #[error("a page uses more than {} objects", objects::MAX_OBJECTS_PER_PAGE)]
    TooManyObjects,
    /// The decoder reported an error, or the page object is missing.
    #[error("the text reader failed: {0}")]
    Unreadable(String),
}

/// When reading stops early: at a deadline, when a shared flag is raised, or
/// never ([`Stop::default`]).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    deadline: Option<Instant>,
    flag: Option<Arc<AtomicBool>>,
}

impl Stop {
    /// Stops with [`ExtractError::TimedOut`] once `deadline` has passed.
    pub fn at(deadline: Instant) -> Stop {
        Stop {
            deadline: Some(deadline),
            flag: None,
        }
    }

    /// Also stops, with [`ExtractError::Cancelled`], once `flag` is true.
    pub fn or_when(self, flag: Arc<AtomicBool>) -> Stop {
        Stop {
            flag: Some(flag),
            ..self
        }
    }

    /// Whether the flag is raised (cheap: checked at every glyph).
    fn cancelled(&self) -> bool {
        self.flag
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Why reading must stop now, if it must.
    fn reached(&self) -> Option<ExtractError> {
        if self.cancelled() {
            Some(ExtractError::Cancelled)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(ExtractError::TimedOut)
        } else {
            None
        }
    }
}

/// A PDF opened for reading: its cross-reference table and page list; the
/// objects themselves are read page by page.
pub struct Pdf<'a> {
    objects: Objects<'a>,
    pages: Vec<PageEntry>,
}

impl<'a> Pdf<'a> {
    /// Opens `bytes` (a PDF header within the first 1024 bytes, as readers
    /// allow). An encrypted file is opened if the empty password opens it.
    pub fn open(bytes: &'a [u8]) -> Result<Pdf<'a>, OpenError> {
        let objects = catch_unwind(AssertUnwindSafe(|| Objects::open(bytes)))
            .map_err(|panic| OpenError::Damaged(message(&panic)))?
            .map_err(open_error)?;
        let (objects, pages) = catch_unwind(AssertUnwindSafe(|| {
            let pages = objects.pages();
            // A page tree that cannot be followed object by object may be
            // whole in lopdf's loading of every object.
            if pages.is_empty() && objects.is_lazy() {
                let whole = Objects::open_whole(bytes)?;
                let pages = whole.pages();
                return Ok((whole, pages));
            }
            Ok((objects, pages))
        }))
        .map_err(|panic| OpenError::Damaged(message(&panic)))?
        .map_err(open_error)?;
        if pages.is_empty() {
            return Err(OpenError::NoPages);
        }
        Ok(Pdf { objects, pages })
    }

    /// How many pages its page tree holds.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }
}

fn open_error(failure: objects::OpenFailure) -> OpenError {
    match failure {
        objects::OpenFailure::Encrypted => OpenError::Encrypted,
        objects::OpenFailure::Damaged(e) => OpenError::Damaged(e.to_string()),
    }
}

/// A page whose text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFailure {
    /// 1-based page number.
    pub page: usize,
    /// Why.
    pub error: ExtractError,
}

/// The text of every page, and the pages that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    /// One entry per page, in page order (`pages[0]` is page 1); a page
    /// without a text layer, or that failed, is empty.
    pub pages: Vec<String>,
    /// The pages whose text could not be read, in page order.
    pub failed: Vec<PageFailure>,
}

/// The text of each page of `pdf`, in page order. Lines end with `\n`, words
/// are separated by one space, right-to-left lines are in reading order, and
/// the text is NFKC-normalised except for fullwidth forms (ligatures and
/// Kangxi radicals spelled as people type them, "，" kept).
///
/// A page the decoder panics on (after one more try with the font maps it
/// panics on rewritten), that draws more than 2 M glyphs or uses more than
/// 100,000 objects is left empty and listed in [`Extraction::failed`]; when
/// every page fails, the first page's error is returned. [`Stop`] ends the
/// whole reading with [`ExtractError::TimedOut`] or
/// [`ExtractError::Cancelled`]. CPU-bound: call it from a blocking thread.
pub fn page_texts(pdf: &Pdf, stop: &Stop) -> Result<Extraction, ExtractError> {
    let mut out = Extraction::default();
    for (index, page) in pdf.pages.iter().enumerate() {
        if let Some(reason) = stop.reached() {
            return Err(reason);
        }
        match read_page(&pdf.objects, page, stop) {
            Ok(text) => out.pages.push(text),
            Err(error @ (ExtractError::TimedOut | ExtractError::Cancelled)) => return Err(error),
            Err(error) => {
                out.pages.push(String::new());
                out.failed.push(PageFailure {
                    page: index + 1,
                    error,
                });
            }
        }
    }
    if out.failed.len() == out.pages.len()
        && let Some(first) = out.failed.first()
    {
        return Err(first.error.clone());
    }
    Ok(out)
}

/// The text of one page, read from a document of its own.
fn read_page(objects: &Objects, page: &PageEntry, stop: &Stop) -> Result<String, ExtractError> {
    let mut doc = catch_unwind(AssertUnwindSafe(|| objects.page_document(page)))
        .map_err(|panic| ExtractError::Panicked(message(&panic)))?
        .map_err(|failure| match failure {
            objects::PageFailure::Missing => {
                ExtractError::Unreadable("the page object is missing".into())
            }
            objects::PageFailure::TooManyObjects => ExtractError::TooManyObjects,
        })?;
    catch_unwind(AssertUnwindSafe(|| repair::repair(&mut doc)))
        .map_err(|panic| ExtractError::Panicked(message(&panic)))?;
    match read(&doc, stop) {
        Err(ExtractError::Panicked(_)) => {
            catch_unwind(AssertUnwindSafe(|| repair::clean_to_unicode_maps(&mut doc)))
                .map_err(|panic| ExtractError::Panicked(message(&panic)))?;
            read(&doc, stop)
        }
        other => other,
    }
}

fn read(doc: &Document, stop: &Stop) -> Result<String, ExtractError> {
    let mut assembler = assemble::Assembler::new(stop.clone());
    match catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::output_doc(doc, &mut assembler)
    })) {
        Err(panic) => Err(ExtractError::Panicked(message(&panic))),
        Ok(Err(err)) => Err(assembler
            .stopped
            .take()
            .unwrap_or_else(|| ExtractError::Unreadable(err.to_string()))),
        Ok(Ok(())) => Ok(assembler
            .into_pages()
            .into_iter()
            .next()
            .unwrap_or_default()),
    }
}

fn message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use lopdf::content::{Content, Operation};
    use lopdf::{Dictionary, Object, Stream, dictionary};

    use super::*;

    /// A document with one page per entry: each page's font resources and the
    /// operations it draws with.
    pub(crate) fn document(pages: Vec<(Dictionary, Vec<Operation>)>) -> Document {
        let mut doc = Document::with_version("1.5");
        let tree = doc.new_object_id();
        let mut kids = Vec::new();
        for (fonts, operations) in pages {
            let content = Content { operations }.encode().unwrap();
            let contents = doc.add_object(Stream::new(dictionary! {}, content));
            let resources = doc.add_object(dictionary! { "Font" => fonts });
            kids.push(Object::Reference(doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => tree, "Contents" => contents, "Resources" => resources,
            })));
        }
        let count = kids.len() as i64;
        doc.objects.insert(
            tree,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => kids, "Count" => count,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => tree });
        doc.trailer.set("Root", catalog);
        doc
    }

    /// Helvetica as `/F1`, and the operations that show `text` in it.
    fn helvetica(text: &str) -> (Dictionary, Vec<Operation>) {
        let font = dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
            "Encoding" => "WinAnsiEncoding",
        };
        (
            dictionary! { "F1" => font },
            show("F1", Object::string_literal(text)),
        )
    }

    fn show(font: &str, text: Object) -> Vec<Operation> {
        vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec![font.into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 700.into()]),
            Operation::new("Tj", vec![text]),
            Operation::new("ET", vec![]),
        ]
    }

    /// A composite font without `/DescendantFonts`: the decoder panics on it.
    fn broken_font_page() -> (Dictionary, Vec<Operation>) {
        let font = dictionary! {
            "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "Broken",
            "Encoding" => "Identity-H",
        };
        (
            dictionary! { "F9" => font },
            show("F9", Object::string_literal("\x00\x21")),
        )
    }

    #[test]
    fn a_page_the_reader_panics_on_is_left_empty_and_the_others_keep_their_text() {
        let doc = document(vec![
            helvetica("Before the broken page"),
            broken_font_page(),
            helvetica("After it"),
        ]);
        let read = extraction(&mut doc.clone(), &Stop::default()).unwrap();
        assert_eq!(read.pages, vec!["Before the broken page", "", "After it"]);
        assert_eq!(read.failed.len(), 1, "{:?}", read.failed);
        assert_eq!(read.failed[0].page, 2);
        assert!(
            matches!(read.failed[0].error, ExtractError::Panicked(_)),
            "{:?}",
            read.failed[0].error
        );
    }

    #[test]
    fn a_file_whose_cross_reference_table_is_misnumbered_is_still_read() {
        let mut doc = document(vec![helvetica("Found all the same")]);
        doc.reference_table.cross_reference_type = lopdf::xref::XrefType::CrossReferenceTable;
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        // Swap the offsets of the page's contents and resources (objects 2
        // and 3): each is still at an offset the table gives, under the wrong
        // number, and the page tree is intact.
        let table = bytes.windows(6).position(|w| w == b"\nxref\n").unwrap() + 1;
        let tail = String::from_utf8(bytes.split_off(table)).unwrap();
        let mut lines: Vec<&str> = tail.split('\n').collect();
        lines.swap(4, 5);
        bytes.extend_from_slice(lines.join("\n").as_bytes());
        let pdf = Pdf::open(&bytes).unwrap();
        let read = page_texts(&pdf, &Stop::default()).unwrap();
        assert_eq!(read.pages, vec!["Found all the same"]);
    }

    #[test]
    fn a_document_whose_every_page_fails_is_an_error() {
        let mut doc = document(vec![broken_font_page(), broken_font_page()]);
        assert!(matches!(
            extraction(&mut doc, &Stop::default()),
            Err(ExtractError::Panicked(_))
        ));
    }

    /// A composite font that uses the predefined CMap `encoding` and is not
    /// embedded, as Word and Acrobat write Japanese and Chinese text; the
    /// half-width Latin letters (CIDs 1–95 in every Adobe ordering) are 500
    /// wide, the rest the default 1000.
    fn predefined_cmap_font(encoding: &str, ordering: &str) -> Dictionary {
        let half = Object::Array((1..=95).map(|_| Object::Integer(500)).collect());
        let descendant = dictionary! {
            "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "MS-Mincho",
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal(ordering),
                "Supplement" => 2,
            },
            "FontDescriptor" => dictionary! {
                "Type" => "FontDescriptor", "FontName" => "MS-Mincho", "Flags" => 6,
                "FontBBox" => vec![0.into(), (-141).into(), 1000.into(), 859.into()],
                "ItalicAngle" => 0, "Ascent" => 859, "Descent" => -141, "CapHeight" => 859,
                "StemV" => 80,
            },
            "DW" => 1000,
            "W" => vec![1.into(), half],
        };
        dictionary! {
            "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "MS-Mincho",
            "Encoding" => encoding, "DescendantFonts" => vec![descendant.into()],
        }
    }

    /// The text of a page that shows `bytes` in a font with the predefined CMap `encoding`.
    fn shown_with_cmap(encoding: &str, ordering: &str, bytes: Vec<u8>) -> String {
        let page = (
            dictionary! { "F2" => predefined_cmap_font(encoding, ordering) },
            show(
                "F2",
                Object::String(bytes, lopdf::StringFormat::Hexadecimal),
            ),
        );
        texts(document(vec![page])).remove(0)
    }

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_be_bytes).collect()
    }

    fn legacy(encoding: &'static encoding_rs::Encoding, text: &str) -> Vec<u8> {
        encoding.encode(text).0.into_owned()
    }

    #[test]
    fn text_in_fonts_with_predefined_cjk_cmaps_is_read() {
        use encoding_rs::{BIG5, EUC_KR, GBK, SHIFT_JIS};
        let japanese = "日本語のテキスト、PDF 2024年。";
        assert_eq!(
            shown_with_cmap("UniJIS-UCS2-H", "Japan1", utf16(japanese)),
            japanese
        );
        assert_eq!(
            shown_with_cmap("90ms-RKSJ-H", "Japan1", legacy(SHIFT_JIS, japanese)),
            japanese
        );
        let chinese = "中文文本，测试：PDF。";
        assert_eq!(
            shown_with_cmap("UniGB-UCS2-H", "GB1", utf16(chinese)),
            chinese
        );
        assert_eq!(
            shown_with_cmap("GBK-EUC-H", "GB1", legacy(GBK, chinese)),
            chinese
        );
        assert_eq!(
            shown_with_cmap("UniGB-UTF16-H", "GB1", utf16("𠀀字")),
            "𠀀字"
        );
        let traditional = "繁體中文";
        assert_eq!(
            shown_with_cmap("ETen-B5-H", "CNS1", legacy(BIG5, traditional)),
            traditional
        );
        let korean = "한국어 텍스트";
        assert_eq!(
            shown_with_cmap("UniKS-UCS2-H", "Korea1", utf16(korean)),
            korean
        );
        assert_eq!(
            shown_with_cmap("KSCms-UHC-H", "Korea1", legacy(EUC_KR, korean)),
            korean
        );
    }

    #[test]
    fn a_font_with_a_cmap_no_one_knows_loses_its_own_text_only() {
        let (mut fonts, mut operations) = helvetica("Kept");
        fonts.set("F2", predefined_cmap_font("Quire-Unknown-H", "Japan1"));
        operations.extend(show(
            "F2",
            Object::String(utf16("失"), lopdf::StringFormat::Hexadecimal),
        ));
        let read = extraction(&mut document(vec![(fonts, operations)]), &Stop::default()).unwrap();
        assert_eq!(read.pages, vec!["Kept"]);
        assert_eq!(read.failed, vec![]);
    }

    /// One page drawing form 0, which draws form 1 twice, … down to form
    /// `depth`, which fills a square: 2^depth fills and not one glyph.
    fn endless_painting(depth: usize) -> Document {
        let mut doc = document(vec![(Dictionary::new(), Vec::new())]);
        let square = Content {
            operations: vec![
                Operation::new("re", vec![0.into(), 0.into(), 1.into(), 1.into()]),
                Operation::new("f", vec![]),
            ],
        };
        let bbox = || vec![0.into(), 0.into(), 1.into(), 1.into()];
        let mut inner = doc.add_object(Stream::new(
            dictionary! { "Type" => "XObject", "Subtype" => "Form", "BBox" => bbox() },
            square.encode().unwrap(),
        ));
        let twice = Content {
            operations: vec![
                Operation::new("Do", vec!["Next".into()]),
                Operation::new("Do", vec!["Next".into()]),
            ],
        };
        for _ in 0..depth {
            inner = doc.add_object(Stream::new(
                dictionary! {
                    "Type" => "XObject", "Subtype" => "Form", "BBox" => bbox(),
                    "Resources" => dictionary! { "XObject" => dictionary! { "Next" => inner } },
                },
                twice.encode().unwrap(),
            ));
        }
        let page = *doc.get_pages().get(&1).unwrap();
        let draw = Content {
            operations: vec![Operation::new("Do", vec!["Next".into()])],
        };
        let contents = doc.add_object(Stream::new(dictionary! {}, draw.encode().unwrap()));
        let dict = doc.get_dictionary_mut(page).unwrap();
        dict.set("Contents", contents);
        dict.set(
            "Resources",
            dictionary! { "XObject" => dictionary! { "Next" => inner } },
        );
        doc
    }

    #[test]
    fn a_page_that_paints_without_end_stops_when_the_flag_is_raised() {
        let mut doc = endless_painting(30);
        let flag = Arc::new(AtomicBool::new(false));
        let stop = Stop::default().or_when(flag.clone());
        let reader = std::thread::spawn(move || extraction(&mut doc, &stop));
        // Let it get deep into the page; the outcome is the same either way.
        std::thread::sleep(Duration::from_millis(200));
        flag.store(true, Ordering::Relaxed);
        assert_eq!(reader.join().unwrap(), Err(ExtractError::Cancelled));
    }

    #[test]
    fn a_page_that_paints_without_end_stops_at_the_deadline() {
        let mut doc = endless_painting(30);
        let stop = Stop::at(Instant::now() + Duration::from_millis(200));
        assert_eq!(extraction(&mut doc, &stop), Err(ExtractError::TimedOut));
    }

    /// The page texts of `doc`, written out and read back as a file would be.
    pub(crate) fn texts(mut doc: Document) -> Vec<String> {
        extraction(&mut doc, &Stop::default()).unwrap().pages
    }

    pub(crate) fn extraction(doc: &mut Document, stop: &Stop) -> Result<Extraction, ExtractError> {
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        page_texts(&Pdf::open(&bytes).unwrap(), stop)
    }
}
