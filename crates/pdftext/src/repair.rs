//! Rewrites, before decoding, the parts of a document that pdf-extract 0.12.1
//! misreads, panics on or never finishes, so that the decoder itself stays the
//! published crate:
//!
//! - the `/W` range form `cFirst cLast w` of CID fonts, which it reads as a
//!   half-open range of width `cFirst` (Chromium writes it for runs of equal
//!   widths: digits, monospace), becomes the list form `c [w w …]`;
//! - `/StandardEncoding` (as `/Encoding` or `/BaseEncoding`), on which it
//!   panics, becomes the equivalent `/Differences`;
//! - the `'` and `"` operators (next line, then show), which it skips, become
//!   `T*` and `Tj` (Ghostscript writes one `'` per line);
//! - every page gets its inherited `/Resources` and `/MediaBox` (US Letter if
//!   none) set on itself: pdf-extract panics without a media box, and looks
//!   them up the `/Parent` chain without end when that chain loops;
//! - a `/ToUnicode` map is cut down to its mapping blocks: its CMap parser is
//!   slow on the PostScript around them, and reads a map whose `/CMapName`
//!   holds a space (XeTeX names maps after the font file's path) as empty;
//! - a simple font with neither `/Encoding` nor an embedded Type1 program gets
//!   StandardEncoding, the default for such fonts (it panics on any code its
//!   `/ToUnicode` lacks);
//! - image XObjects, whose bytes it would parse as a content stream, become
//!   empty forms;
//! - a form XObject that draws itself (directly or through others), which would
//!   recurse until the stack overflows, is emptied;
//! - a composite font naming a predefined CJK CMap, on which it panics, gets
//!   an embedded CMap and a `/ToUnicode` built from the name (`src/cjk.rs`).
//!
//! And, for speed only (it reads the same): glyph names its glyph list cannot
//! hold are left out of `/Differences`, the Type1 program of a font with an
//! `/Encoding` is not handed to it, and content streams are inflated once.

use std::collections::{BTreeMap, HashSet};

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, ObjectId};

/// Codes where StandardEncoding differs from PDFDocEncoding, the table
/// pdf-extract starts from for an `/Encoding` dictionary without a base.
const STANDARD_ENCODING: &[(i64, &str)] = &[
    (39, "quoteright"),
    (96, "quoteleft"),
    (161, "exclamdown"),
    (162, "cent"),
    (163, "sterling"),
    (164, "fraction"),
    (165, "yen"),
    (166, "florin"),
    (167, "section"),
    (168, "currency"),
    (169, "quotesingle"),
    (170, "quotedblleft"),
    (171, "guillemotleft"),
    (172, "guilsinglleft"),
    (173, "guilsinglright"),
    (174, "fi"),
    (175, "fl"),
    (177, "endash"),
    (178, "dagger"),
    (179, "daggerdbl"),
    (180, "periodcentered"),
    (182, "paragraph"),
    (183, "bullet"),
    (184, "quotesinglbase"),
    (185, "quotedblbase"),
    (186, "quotedblright"),
    (187, "guillemotright"),
    (188, "ellipsis"),
    (189, "perthousand"),
    (191, "questiondown"),
    (193, "grave"),
    (194, "acute"),
    (195, "circumflex"),
    (196, "tilde"),
    (197, "macron"),
    (198, "breve"),
    (199, "dotaccent"),
    (200, "dieresis"),
    (202, "ring"),
    (203, "cedilla"),
    (205, "hungarumlaut"),
    (206, "ogonek"),
    (207, "caron"),
    (208, "emdash"),
    (225, "AE"),
    (227, "ordfeminine"),
    (232, "Lslash"),
    (233, "Oslash"),
    (234, "OE"),
    (235, "ordmasculine"),
    (241, "ae"),
    (245, "dotlessi"),
    (248, "lslash"),
    (249, "oslash"),
    (250, "oe"),
    (251, "germandbls"),
];

/// Applies every rewrite listed in the module docs to `doc`.
pub(crate) fn repair(doc: &mut Document) {
    for object in doc.objects.values_mut() {
        match object {
            Object::Dictionary(dict) => repair_font(dict),
            Object::Stream(stream) if is_image(stream) => {
                stream.dict = empty_form_dict();
                stream.set_content(Vec::new());
            }
            _ => {}
        }
    }
    crate::cjk::read_predefined_cmaps(doc);
    rename_to_unicode_maps(doc);
    give_encodings(doc);
    drop_unread_type1_programs(doc);
    inherit_on_each_page(doc);
    spell_out_quote_operators(doc);
    break_form_cycles(doc);
}

/// Fonts (indirect dictionaries with `/Type /Font`) by id.
fn font_ids(doc: &Document) -> Vec<ObjectId> {
    doc.objects
        .iter()
        .filter_map(|(id, o)| match o {
            Object::Dictionary(d)
                if d.get(b"Type")
                    .and_then(Object::as_name)
                    .is_ok_and(|n| n == b"Font") =>
            {
                Some(*id)
            }
            _ => None,
        })
        .collect()
}

fn rename_to_unicode_maps(doc: &mut Document) {
    let maps: HashSet<ObjectId> = font_ids(doc)
        .into_iter()
        .filter_map(|font| {
            doc.get_dictionary(font)
                .ok()?
                .get(b"ToUnicode")
                .ok()?
                .as_reference()
                .ok()
        })
        .collect();
    for id in maps {
        let Ok(Object::Stream(stream)) = doc.get_object_mut(id) else {
            continue;
        };
        let bytes = stream
            .decompressed_content()
            .unwrap_or_else(|_| stream.content.clone());
        if let Some(trimmed) = mappings_only(&bytes).or_else(|| without_spaced_name(&bytes)) {
            stream.set_plain_content(trimmed);
        }
    }
}

/// The `beginbfchar` and `beginbfrange` blocks of a `/ToUnicode` map (from
/// the first block's count to the last block's end), which is all its parser
/// reads: the PostScript around them (`CIDSystemInfo`, `CMapName`, …) costs
/// it more than the mappings in the small maps Chromium writes, one per
/// Type3 font (measured: a third of the reading time of a CJK page), and a
/// name with a space in it makes it read an empty map.
fn mappings_only(cmap: &[u8]) -> Option<Vec<u8>> {
    let find = |word: &[u8]| cmap.windows(word.len()).position(|w| w == word);
    let find_end = |word: &[u8]| {
        cmap.windows(word.len())
            .rposition(|w| w == word)
            .map(|at| at + word.len())
    };
    let first = [find(b"beginbfchar"), find(b"beginbfrange")]
        .into_iter()
        .flatten()
        .min()?;
    let end = [find_end(b"endbfchar"), find_end(b"endbfrange")]
        .into_iter()
        .flatten()
        .max()?;
    let mut start = first;
    while start > 0 && cmap[start - 1].is_ascii_whitespace() {
        start -= 1;
    }
    while start > 0 && cmap[start - 1].is_ascii_digit() {
        start -= 1;
    }
    (start < end).then(|| cmap[start..end].to_vec())
}

/// `cmap` with its `/CMapName /… def` line replaced, if the name holds a space.
fn without_spaced_name(cmap: &[u8]) -> Option<Vec<u8>> {
    let key = b"/CMapName";
    let start = cmap.windows(key.len()).position(|w| w == key)?;
    let line_end = cmap[start..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(cmap.len(), |n| start + n);
    let line = &cmap[start..line_end];
    let def = line.windows(4).rposition(|w| w == b" def")?;
    let name = line[key.len()..def].trim_ascii();
    if !name.contains(&b' ') {
        return None;
    }
    let mut out = cmap[..start].to_vec();
    out.extend_from_slice(b"/CMapName /QuireRenamed def");
    out.extend_from_slice(&cmap[line_end..]);
    Some(out)
}

/// After the decoder panicked: a `/ToUnicode` map with odd-length or invalid
/// UTF-16 targets (it asserts and unwraps) is rewritten with those targets
/// fixed or dropped, and one it cannot parse is removed. Parsing every map
/// costs a third more time on CJK pages, so it is not done up front.
pub(crate) fn clean_to_unicode_maps(doc: &mut Document) {
    for font in font_ids(doc) {
        let Ok(map_id) = doc
            .get_dictionary(font)
            .and_then(|f| f.get(b"ToUnicode"))
            .and_then(Object::as_reference)
        else {
            continue;
        };
        let Ok(Object::Stream(stream)) = doc.get_object(map_id) else {
            continue;
        };
        let bytes = stream
            .decompressed_content()
            .unwrap_or_else(|_| stream.content.clone());
        match adobe_cmap_parser::get_unicode_map(&bytes) {
            Err(_) => {
                if let Ok(font) = doc.get_dictionary_mut(font) {
                    font.remove(b"ToUnicode");
                }
            }
            Ok(map) if map.values().all(|v| utf16(v).is_some()) => {}
            Ok(map) => {
                let clean = clean_cmap(&map);
                if let Ok(Object::Stream(stream)) = doc.get_object_mut(map_id) {
                    stream.set_plain_content(clean);
                }
            }
        }
    }
}

/// `bytes` as UTF-16BE text, if it is that.
fn utf16(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

/// A `/ToUnicode` CMap with the entries of `map`, a one-byte target read as
/// that Latin-1 character and targets that are not UTF-16 left out.
fn clean_cmap(map: &std::collections::HashMap<u32, Vec<u8>>) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut entries: Vec<(u32, String)> = map
        .iter()
        .filter_map(|(&code, target)| {
            let target = if target.len() % 2 == 1 {
                let mut padded = vec![0];
                padded.extend_from_slice(target);
                padded
            } else {
                target.clone()
            };
            utf16(&target)?;
            Some((code, target.iter().map(|b| format!("{b:02X}")).collect()))
        })
        .collect();
    entries.sort();
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
         1 begincodespacerange <0000> <FFFF> endcodespacerange\n",
    );
    for block in entries.chunks(100) {
        let _ = writeln!(out, "{} beginbfchar", block.len());
        for (code, target) in block {
            let _ = writeln!(out, "<{code:04X}> <{target}>");
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap CMapName currentdict /CMap defineresource pop end end\n");
    out.into_bytes()
}

fn give_encodings(doc: &mut Document) {
    for font in font_ids(doc) {
        let Ok(dict) = doc.get_dictionary(font) else {
            continue;
        };
        let simple = dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .is_ok_and(|n| matches!(n, b"Type1" | b"MMType1" | b"Type3"));
        let embedded_type1 = dict
            .get(b"FontDescriptor")
            .and_then(|d| doc.dereference(d))
            .and_then(|(_, d)| d.as_dict())
            .is_ok_and(|d| d.has(b"FontFile"));
        if simple && !dict.has(b"Encoding") && !embedded_type1 {
            let mut encoding = Dictionary::new();
            encoding.set("Differences", standard_differences());
            if let Ok(dict) = doc.get_dictionary_mut(font) {
                dict.set("Encoding", encoding);
            }
        }
    }
}

/// Page-tree levels searched for an inherited attribute; a longer chain is a loop.
const MAX_TREE_DEPTH: usize = 64;

fn inherit_on_each_page(doc: &mut Document) {
    let letter = || Object::Array(vec![0.into(), 0.into(), 612.into(), 792.into()]);
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    for page in pages {
        let resources =
            inherited(doc, page, b"Resources").unwrap_or_else(|| Dictionary::new().into());
        let media_box = inherited(doc, page, b"MediaBox").unwrap_or_else(letter);
        if let Ok(dict) = doc.get_dictionary_mut(page) {
            dict.set("Resources", resources);
            dict.set("MediaBox", media_box);
        }
    }
}

fn inherited(doc: &Document, page: ObjectId, key: &[u8]) -> Option<Object> {
    let mut id = page;
    for _ in 0..MAX_TREE_DEPTH {
        let dict = doc.get_dictionary(id).ok()?;
        if let Ok(value) = dict.get(key) {
            return Some(value.clone());
        }
        id = dict.get(b"Parent").and_then(Object::as_reference).ok()?;
    }
    None
}

/// Rewrites `(s) '` as `T* (s) Tj` and `aw ac (s) "` as `aw Tw ac Tc T* (s) Tj`
/// in page contents and forms.
fn spell_out_quote_operators(doc: &mut Document) {
    let mut ids: Vec<ObjectId> = doc
        .get_pages()
        .into_values()
        .flat_map(|page| doc.get_page_contents(page))
        .collect();
    ids.extend(doc.objects.iter().filter_map(|(id, o)| {
        match o {
            Object::Stream(s)
                if s.dict
                    .get(b"Subtype")
                    .and_then(Object::as_name)
                    .is_ok_and(|n| n == b"Form") =>
            {
                Some(*id)
            }
            _ => None,
        }
    }));
    for id in ids {
        let Ok(Object::Stream(stream)) = doc.get_object_mut(id) else {
            continue;
        };
        // Kept inflated: the decoder would inflate it once more.
        if stream.dict.has(b"Filter")
            && let Ok(plain) = stream.decompressed_content()
        {
            stream.set_plain_content(plain);
        }
        let bytes = &stream.content;
        if !bytes.iter().any(|&b| b == b'\'' || b == b'"') {
            continue;
        }
        let Ok(content) = Content::decode(bytes) else {
            continue;
        };
        if !content
            .operations
            .iter()
            .any(|op| op.operator == "'" || op.operator == "\"")
        {
            continue;
        }
        let mut operations = Vec::with_capacity(content.operations.len() + 8);
        for op in content.operations {
            match (op.operator.as_str(), op.operands.as_slice()) {
                ("'", [text]) => {
                    operations.push(Operation::new("T*", vec![]));
                    operations.push(Operation::new("Tj", vec![text.clone()]));
                }
                ("\"", [word, character, text]) => {
                    operations.push(Operation::new("Tw", vec![word.clone()]));
                    operations.push(Operation::new("Tc", vec![character.clone()]));
                    operations.push(Operation::new("T*", vec![]));
                    operations.push(Operation::new("Tj", vec![text.clone()]));
                }
                _ => operations.push(op),
            }
        }
        if let Ok(encoded) = (Content { operations }).encode() {
            stream.set_plain_content(encoded);
        }
    }
}

fn is_image(stream: &lopdf::Stream) -> bool {
    stream
        .dict
        .get(b"Subtype")
        .and_then(Object::as_name)
        .is_ok_and(|n| n == b"Image")
}

fn empty_form_dict() -> Dictionary {
    let mut dict = Dictionary::new();
    dict.set("Type", "XObject");
    dict.set("Subtype", "Form");
    dict.set("BBox", vec![0.into(), 0.into(), 0.into(), 0.into()]);
    dict
}

fn repair_font(dict: &mut Dictionary) {
    if let Ok(Object::Array(widths)) = dict.get_mut(b"W") {
        *widths = list_form_widths(widths);
    }
    standard_encoding_spelled_out(dict);
    skip_unknown_glyph_names(dict);
}

fn standard_encoding_spelled_out(dict: &mut Dictionary) {
    let encoding = dict.get_mut(b"Encoding");
    match encoding {
        Ok(encoding @ Object::Name(_))
            if encoding.as_name().is_ok_and(|n| n == b"StandardEncoding") =>
        {
            let mut replacement = Dictionary::new();
            replacement.set("Differences", standard_differences());
            *encoding = Object::Dictionary(replacement);
        }
        Ok(Object::Dictionary(encoding))
            if encoding
                .get(b"BaseEncoding")
                .and_then(Object::as_name)
                .is_ok_and(|n| n == b"StandardEncoding") =>
        {
            encoding.remove(b"BaseEncoding");
            let mut differences = standard_differences();
            if let Ok(Object::Array(own)) = encoding.get(b"Differences") {
                differences.extend(own.iter().cloned());
            }
            encoding.set("Differences", differences);
        }
        _ => {}
    }
}

/// Leaves out of an inline `/Differences` the glyph names pdf-extract's
/// glyph list cannot hold (`/g12`, `/.notdef`, `/uni4E2D`, `/glyph7`,
/// `/cid42`), numbering the names after them explicitly. It looks each one up
/// and skips it, which is most of the time it spends on a Chromium Type3
/// font (`/Differences` of 177 names, nearly all `/g0`); without them it reads
/// the same table. Not for a font named FontAwesome, whose unknown names it
/// maps to empty text.
fn skip_unknown_glyph_names(dict: &mut Dictionary) {
    let simple = dict.has_type(b"Font")
        && dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .is_ok_and(|n| matches!(n, b"Type1" | b"MMType1" | b"TrueType" | b"Type3"));
    let awesome = dict
        .get(b"BaseFont")
        .and_then(Object::as_name)
        .is_ok_and(|n| n.windows(11).any(|w| w == b"FontAwesome"));
    if !simple || awesome {
        return;
    }
    let Ok(Object::Dictionary(encoding)) = dict.get_mut(b"Encoding") else {
        return;
    };
    let Ok(Object::Array(differences)) = encoding.get_mut(b"Differences") else {
        return;
    };
    if let Some(known) = known_names_only(differences) {
        *differences = known;
    }
}

/// `differences` without the names [`unknown_glyph_name`] matches, or
/// `None` if it holds anything but numbers and names.
fn known_names_only(differences: &[Object]) -> Option<Vec<Object>> {
    let mut out = Vec::new();
    let mut code = 0;
    let mut numbered = false;
    for item in differences {
        match item {
            Object::Integer(next) => {
                code = *next;
                numbered = false;
            }
            Object::Name(name) if unknown_glyph_name(name) => {
                code += 1;
                numbered = false;
            }
            Object::Name(name) => {
                if !numbered {
                    out.push(Object::Integer(code));
                    numbered = true;
                }
                out.push(Object::Name(name.clone()));
                code += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Whether `name` is of a form no entry of pdf-extract's glyph list has
/// (checked against the list of pdf-extract 0.12.1).
fn unknown_glyph_name(name: &[u8]) -> bool {
    let digits_after = |prefix: &[u8], hex: bool| {
        name.strip_prefix(prefix).is_some_and(|rest| {
            rest.first().is_some_and(u8::is_ascii_digit)
                && rest.iter().all(|b| {
                    if hex {
                        b.is_ascii_hexdigit()
                    } else {
                        b.is_ascii_digit()
                    }
                })
        })
    };
    name == b".notdef"
        || digits_after(b"g", true)
        || digits_after(b"glyph", false)
        || digits_after(b"cid", false)
        || name.strip_prefix(b"uni").is_some_and(|rest| {
            rest.len() >= 4
                && rest
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        })
}

/// Removes the embedded Type1 program (`/FontFile`) of fonts that have an
/// `/Encoding`: pdf-extract inflates and parses it for its built-in
/// encoding, which it uses only for a font without one (and panics on a
/// program it cannot parse). A descriptor shared with a font without an
/// `/Encoding` keeps it.
fn drop_unread_type1_programs(doc: &mut Document) {
    let mut unread = HashSet::new();
    let mut read = HashSet::new();
    for font in font_ids(doc) {
        let Ok(dict) = doc.get_dictionary(font) else {
            continue;
        };
        let Ok(descriptor) = dict.get(b"FontDescriptor").and_then(Object::as_reference) else {
            continue;
        };
        if dict.has(b"Encoding") {
            unread.insert(descriptor);
        } else {
            read.insert(descriptor);
        }
    }
    for id in unread.difference(&read) {
        if let Ok(descriptor) = doc.get_dictionary_mut(*id) {
            descriptor.remove(b"FontFile");
        }
    }
}

fn standard_differences() -> Vec<Object> {
    STANDARD_ENCODING
        .iter()
        .flat_map(|&(code, name)| {
            [
                Object::Integer(code),
                Object::Name(name.as_bytes().to_vec()),
            ]
        })
        .collect()
}

/// `/W` with every `cFirst cLast w` run spelled out as `cFirst [w … w]`.
fn list_form_widths(w: &[Object]) -> Vec<Object> {
    let mut out = Vec::with_capacity(w.len());
    let mut i = 0;
    while i < w.len() {
        match (w.get(i), w.get(i + 1), w.get(i + 2)) {
            (Some(first), Some(Object::Array(list)), _) => {
                out.push(first.clone());
                out.push(Object::Array(list.clone()));
                i += 2;
            }
            (Some(Object::Integer(first)), Some(Object::Integer(last)), Some(width)) => {
                // A hostile range must not allocate without bound.
                let count = (last - first + 1).clamp(0, 65_536) as usize;
                out.push(Object::Integer(*first));
                out.push(Object::Array(vec![width.clone(); count]));
                i += 3;
            }
            _ => break,
        }
    }
    out
}

/// Forms nested deeper than this are emptied as if they were cycles: the
/// decoder recurses once per level.
const MAX_FORM_DEPTH: usize = 32;

/// Empties every form XObject reached again while it is being drawn. Forms
/// without their own `/Resources` draw with their caller's, as pdf-extract does.
fn break_form_cycles(doc: &mut Document) {
    let mut cyclic = HashSet::new();
    let mut done = HashSet::new();
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    for page in pages {
        let Ok(resources) = page_resources(doc, page) else {
            continue;
        };
        let Ok(content) = doc.get_page_content(page) else {
            continue;
        };
        let mut stack = Vec::new();
        walk_forms(
            doc,
            &content,
            &resources,
            &mut stack,
            &mut done,
            &mut cyclic,
        );
    }
    for id in cyclic {
        if let Ok(Object::Stream(stream)) = doc.get_object_mut(id) {
            stream.set_content(Vec::new());
        }
    }
}

fn page_resources(doc: &Document, page: ObjectId) -> Result<Dictionary, lopdf::Error> {
    let resources = doc.get_dictionary(page)?.get(b"Resources")?;
    Ok(doc.dereference(resources)?.1.as_dict()?.clone())
}

fn walk_forms(
    doc: &Document,
    content: &[u8],
    resources: &Dictionary,
    stack: &mut Vec<ObjectId>,
    done: &mut HashSet<(ObjectId, Vec<u8>)>,
    cyclic: &mut HashSet<ObjectId>,
) {
    let xobjects: BTreeMap<Vec<u8>, ObjectId> = resources
        .get(b"XObject")
        .and_then(|x| doc.dereference(x))
        .and_then(|(_, x)| x.as_dict())
        .map(|x| {
            x.iter()
                .filter_map(|(name, o)| Some((name.clone(), o.as_reference().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    // Most pages draw no form: their content need not be parsed here.
    if xobjects.is_empty() {
        return;
    }
    let Ok(content) = Content::decode(content) else {
        return;
    };
    for op in content.operations.iter().filter(|op| op.operator == "Do") {
        let Some(id) = op
            .operands
            .first()
            .and_then(|n| n.as_name().ok())
            .and_then(|n| xobjects.get(n))
        else {
            continue;
        };
        if stack.contains(id) || stack.len() >= MAX_FORM_DEPTH {
            cyclic.insert(*id);
            continue;
        }
        let Ok(Object::Stream(form)) = doc.get_object(*id) else {
            continue;
        };
        let own = form
            .dict
            .get(b"Resources")
            .and_then(|r| doc.dereference(r))
            .and_then(|(_, r)| r.as_dict());
        let inner = own.unwrap_or(resources).clone();
        // The same form under the same names needs walking once.
        let key = (
            *id,
            format!("{:?}", inner.get(b"XObject").ok()).into_bytes(),
        );
        if !done.insert(key) {
            continue;
        }
        let bytes = form
            .decompressed_content()
            .unwrap_or_else(|_| form.content.clone());
        stack.push(*id);
        walk_forms(doc, &bytes, &inner, stack, done, cyclic);
        stack.pop();
    }
}

#[cfg(test)]
mod tests {
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};

    /// A one-page document whose page draws form `Fm` after showing `words`
    /// in Times-Roman under the given `/Encoding`; `form` builds the form's
    /// stream from its own id.
    fn document(
        encoding: Object,
        words: &str,
        form: impl Fn(lopdf::ObjectId) -> Stream,
    ) -> Document {
        let mut doc = Document::with_version("1.5");
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Times-Roman", "Encoding" => encoding,
        });
        let form_id = doc.new_object_id();
        doc.objects.insert(form_id, Object::Stream(form(form_id)));
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 700.into()]),
                Operation::new("Tj", vec![Object::string_literal(words)]),
                Operation::new("ET", vec![]),
                Operation::new("Do", vec!["Fm".into()]),
            ],
        };
        let contents = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let pages = doc.new_object_id();
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages, "Contents" => contents,
            "Resources" => dictionary! {
                "Font" => dictionary! { "F1" => font },
                "XObject" => dictionary! { "Fm" => form_id },
            },
        });
        doc.objects.insert(
            pages,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
        doc.trailer.set("Root", catalog);
        doc
    }

    fn empty_form(_: lopdf::ObjectId) -> Stream {
        Stream::new(
            dictionary! { "Type" => "XObject", "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 1.into(), 1.into()] },
            Vec::new(),
        )
    }

    #[test]
    fn a_font_in_standard_encoding_is_read_with_its_curly_quotes() {
        let doc = document(
            "StandardEncoding".into(),
            "It\x27s \x60quoted\x27",
            empty_form,
        );
        assert_eq!(
            crate::tests::texts(doc),
            vec!["It\u{2019}s \u{2018}quoted\u{2019}"]
        );
    }

    #[test]
    fn a_page_tree_without_a_media_box_and_with_a_parent_loop_is_read() {
        let mut doc = document("WinAnsiEncoding".into(), "No box here", empty_form);
        let page = *doc.get_pages().get(&1).unwrap();
        let pages = doc
            .get_dictionary(page)
            .unwrap()
            .get(b"Parent")
            .unwrap()
            .as_reference()
            .unwrap();
        let tree = doc.get_dictionary_mut(pages).unwrap();
        tree.remove(b"MediaBox");
        tree.set("Parent", pages);
        assert_eq!(crate::tests::texts(doc), vec!["No box here"]);
    }

    /// A page showing `shown` in a Type1 font that is not one of the standard
    /// 14, not embedded, with no `/Encoding` and `cmap` as its `/ToUnicode`.
    fn with_to_unicode(cmap: &str, shown: &str) -> Document {
        let mut doc = document("WinAnsiEncoding".into(), shown, empty_form);
        let to_unicode = doc.add_object(Stream::new(dictionary! {}, cmap.as_bytes().to_vec()));
        for object in doc.objects.values_mut() {
            if let Object::Dictionary(font) = object
                && font
                    .get(b"Subtype")
                    .and_then(Object::as_name)
                    .is_ok_and(|n| n == b"Type1")
            {
                font.remove(b"Encoding");
                font.set("BaseFont", "LMRoman10-Regular");
                font.set("ToUnicode", to_unicode);
            }
        }
        doc
    }

    const CMAP_HEAD: &str = "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
        1 begincodespacerange <00> <FF> endcodespacerange\n";
    const CMAP_TAIL: &str = "endcmap CMapName currentdict /CMap defineresource pop end end\n";

    #[test]
    fn a_code_missing_from_to_unicode_in_a_font_without_encoding_is_read_as_standard() {
        let cmap =
            format!("{CMAP_HEAD}2 beginbfchar\n<48> <0048>\n<69> <0069>\nendbfchar\n{CMAP_TAIL}");
        assert_eq!(
            crate::tests::texts(with_to_unicode(&cmap, "Hi!")),
            vec!["Hi!"]
        );
    }

    #[test]
    fn a_to_unicode_target_of_one_byte_is_read_as_that_character() {
        let cmap =
            format!("{CMAP_HEAD}2 beginbfchar\n<48> <48>\n<69> <0069>\nendbfchar\n{CMAP_TAIL}");
        assert_eq!(
            crate::tests::texts(with_to_unicode(&cmap, "Hi")),
            vec!["Hi"]
        );
    }

    #[test]
    fn a_to_unicode_map_named_with_a_space_is_read() {
        // XeTeX names the map after the font file's path, spaces included.
        let cmap = format!(
            "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
             /CMapName /-Library-Fonts-Palatino Linotype.ttf,000-UTF16 def\n\
             1 begincodespacerange <00> <FF> endcodespacerange\n\
             2 beginbfchar\n<41> <0048>\n<42> <0069>\nendbfchar\n{CMAP_TAIL}"
        );
        assert_eq!(
            crate::tests::texts(with_to_unicode(&cmap, "AB")),
            vec!["Hi"]
        );
    }

    #[test]
    fn the_codes_after_glyph_names_the_decoder_does_not_know_keep_their_own_names() {
        let mut encoding = lopdf::Dictionary::new();
        let names = [
            "g0", "B", ".notdef", "uni4E2D", "Z", "g4F01", "glyph7", "cid42", "eacute",
        ];
        let mut differences = vec![Object::Integer(65)];
        differences.extend(names.iter().map(|n| Object::Name(n.as_bytes().to_vec())));
        encoding.set("Differences", differences);
        let doc = document(Object::Dictionary(encoding), "ABCDEFGHI", empty_form);
        assert_eq!(crate::tests::texts(doc), vec!["ABCDZFGH\u{e9}"]);
    }

    #[test]
    fn a_font_with_an_encoding_is_read_whatever_its_embedded_type1_program_holds() {
        let mut doc = document("WinAnsiEncoding".into(), "Still readable", empty_form);
        let program = doc.add_object(Stream::new(
            dictionary! { "Length1" => 10, "Length2" => 0, "Length3" => 0 },
            b"not a font".to_vec(),
        ));
        let descriptor = doc.add_object(dictionary! {
            "Type" => "FontDescriptor", "FontName" => "Times-Roman", "Flags" => 34,
            "FontBBox" => vec![0.into(), 0.into(), 1000.into(), 1000.into()],
            "ItalicAngle" => 0, "Ascent" => 683, "Descent" => -217, "CapHeight" => 662,
            "StemV" => 84, "FontFile" => program,
        });
        for object in doc.objects.values_mut() {
            if let Object::Dictionary(font) = object
                && font.has_type(b"Font")
            {
                font.set("FontDescriptor", descriptor);
            }
        }
        assert_eq!(crate::tests::texts(doc), vec!["Still readable"]);
    }

    #[test]
    fn a_form_that_draws_itself_is_drawn_once() {
        let doc = document("WinAnsiEncoding".into(), "Before the mirror", |id| {
            let content = Content {
                operations: vec![Operation::new("Do", vec!["Self".into()])],
            };
            Stream::new(
                dictionary! {
                    "Type" => "XObject", "Subtype" => "Form",
                    "BBox" => vec![0.into(), 0.into(), 1.into(), 1.into()],
                    "Resources" => dictionary! { "XObject" => dictionary! { "Self" => id } },
                },
                content.encode().unwrap(),
            )
        });
        assert_eq!(crate::tests::texts(doc), vec!["Before the mirror"]);
    }
}
