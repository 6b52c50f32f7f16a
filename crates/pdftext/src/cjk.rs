//! Composite fonts whose `/Encoding` names a predefined CJK CMap
//! (`/UniJIS-UCS2-H`, `/90ms-RKSJ-H`, `/GBK-EUC-H`, …), as Word and Acrobat
//! write Japanese, Chinese and Korean text in fonts they do not embed.
//! pdf-extract panics on any CMap name but `Identity-H`/`-V`; this rewrite,
//! run before decoding, makes such a font readable without Adobe's CMap
//! files:
//!
//! - the name says how codes are written: Unicode itself (`UCS2`, `UTF16`) or
//!   a legacy encoding (`RKSJ` Shift-JIS, `EUC` and plain JIS, `GB…` GBK,
//!   `B5` Big5, `KSC`/`UHC` Korean), which `encoding_rs` decodes; that gives
//!   each code's text, written as the font's `/ToUnicode` for the codes this
//!   page shows, unless the font has its own;
//! - `/Encoding` becomes an embedded CMap with the same code lengths
//!   (codespace) whose CIDs are the codes themselves, so that the decoder
//!   splits strings right and looks the `/ToUnicode` up by code;
//! - `/W` is keyed by CID, which without Adobe's tables is known only for the
//!   printable ASCII codes (a run of CIDs each CMap names): those keep their
//!   widths, every other code takes the font's default width (`/DW`, 1000 for
//!   full-width ideographs), so proportional kana may be spaced a little off;
//! - a CMap name outside these families becomes `Identity-H`: the font's
//!   own `/ToUnicode` is used if it has one, and otherwise its glyphs read as
//!   nothing while the rest of the page is read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use encoding_rs::{BIG5, EUC_JP, EUC_KR, Encoding, GB18030, SHIFT_JIS};
use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

/// How a predefined CMap writes its codes.
#[derive(Clone, Copy)]
enum Codes {
    /// Two-byte Unicode code points.
    Ucs2,
    /// UTF-16BE, two or four bytes.
    Utf16,
    /// A legacy multi-byte encoding, ASCII in one byte.
    Legacy(&'static Encoding),
    /// JIS X 0208 without the EUC high bits (the CMaps named `H` and `V`).
    Jis,
}

/// Code ranges of each kind, `(low, high)` of one length, as in a CMap's
/// `begincodespacerange`.
type Codespace = &'static [(&'static [u8], &'static [u8])];

const UCS2: Codespace = &[(b"\x00\x00", b"\xFF\xFF")];
const UTF16: Codespace = &[
    (b"\x00\x00", b"\xD7\xFF"),
    (b"\xD8\x00\xDC\x00", b"\xDB\xFF\xDF\xFF"),
    (b"\xE0\x00", b"\xFF\xFF"),
];
const SHIFT_JIS_CODES: Codespace = &[
    (b"\x00", b"\x80"),
    (b"\x81\x40", b"\x9F\xFC"),
    (b"\xA0", b"\xDF"),
    (b"\xE0\x40", b"\xFC\xFC"),
];
const EUC_JP_CODES: Codespace = &[
    (b"\x00", b"\x80"),
    (b"\x8E\xA0", b"\x8E\xDF"),
    (b"\xA1\xA1", b"\xFE\xFE"),
];
const DOUBLE_BYTE_CODES: Codespace = &[(b"\x00", b"\x80"), (b"\x81\x40", b"\xFE\xFE")];
const JIS_CODES: Codespace = &[(b"\x21\x21", b"\x7E\x7E")];

/// A predefined CMap as far as reading text needs it.
struct Scheme {
    codes: Codes,
    codespace: Codespace,
    /// The CMap maps the ASCII codes from `.0` to 0x7E to the CIDs from `.1` on.
    ascii: Option<(u32, u32)>,
}

/// What the CMap called `name` is, if it is one of the families above.
fn scheme(name: &str) -> Option<Scheme> {
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    let (codes, codespace) = if name.contains("UCS2") {
        (Codes::Ucs2, UCS2)
    } else if name.contains("UTF16") {
        (Codes::Utf16, UTF16)
    } else if name.contains("RKSJ") {
        (Codes::Legacy(SHIFT_JIS), SHIFT_JIS_CODES)
    } else if name.starts_with("GB") {
        (Codes::Legacy(GB18030), DOUBLE_BYTE_CODES)
    } else if name.contains("B5") {
        (Codes::Legacy(BIG5), DOUBLE_BYTE_CODES)
    } else if name.starts_with("KSC") {
        (Codes::Legacy(EUC_KR), DOUBLE_BYTE_CODES)
    } else if name.contains("EUC") {
        (Codes::Legacy(EUC_JP), EUC_JP_CODES)
    } else if matches!(name, "H" | "V" | "78-H" | "78-V") {
        (Codes::Jis, JIS_CODES)
    } else {
        return None;
    };
    // Where each CMap puts the printable ASCII codes (the first line of its
    // cidrange for <20>/<21>–<7E>).
    let ascii = if name.contains("HW") {
        Some((0x20, 231))
    } else if name.starts_with("Uni")
        || starts(&[
            "90msp", "GBKp", "GBpc", "GBTpc", "B5pc", "ETenms", "KSCms", "KSCpc",
        ])
    {
        Some((0x20, 1))
    } else if starts(&["90ms", "90pv", "83pv", "78-EUC", "EUC"]) {
        Some((0x20, 231))
    } else if starts(&["GB-EUC", "GBK-EUC", "GBT-EUC"]) {
        Some((0x21, 814))
    } else if name.starts_with("ETen-B5") {
        Some((0x20, 13648))
    } else if name.starts_with("KSC-EUC") {
        Some((0x20, 8094))
    } else {
        None
    };
    Some(Scheme {
        codes,
        codespace,
        ascii,
    })
}

impl Scheme {
    /// The codes `bytes` hold, each as its bytes; a byte no range takes is
    /// skipped.
    fn split<'b>(&self, bytes: &'b [u8]) -> Vec<&'b [u8]> {
        let mut codes = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let width = (1..=4).find(|&width| {
                bytes.get(at..at + width).is_some_and(|code| {
                    self.codespace
                        .iter()
                        .any(|(low, high)| low.len() == width && *low <= code && code <= *high)
                })
            });
            match width {
                Some(width) => {
                    codes.push(&bytes[at..at + width]);
                    at += width;
                }
                None => at += 1,
            }
        }
        codes
    }

    /// The text of one code.
    fn text(&self, code: &[u8]) -> Option<String> {
        match self.codes {
            Codes::Ucs2 => char::from_u32(number(code)).map(String::from),
            Codes::Utf16 => {
                let units: Vec<u16> = code
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16(&units).ok()
            }
            Codes::Legacy(encoding) => encoding
                .decode_without_bom_handling_and_without_replacement(code)
                .map(|text| text.into_owned()),
            Codes::Jis => {
                let euc: Vec<u8> = code.iter().map(|b| b | 0x80).collect();
                EUC_JP
                    .decode_without_bom_handling_and_without_replacement(&euc)
                    .map(|text| text.into_owned())
            }
        }
        .filter(|text| !text.is_empty())
    }

    /// The CID the CMap gives `code`, where it is known without its tables.
    fn known_cid(&self, code: u32) -> Option<u32> {
        let (first, base) = self.ascii?;
        (first..=0x7E).contains(&code).then(|| base + code - first)
    }
}

/// `code` read as a big-endian number, as CMaps compare codes.
fn number(code: &[u8]) -> u32 {
    code.iter().fold(0, |n, &b| (n << 8) | u32::from(b))
}

/// Rewrites every composite font of `doc` that names a predefined CMap, as
/// the module docs say.
pub(crate) fn read_predefined_cmaps(doc: &mut Document) {
    hoist_composite_fonts(doc);
    let fonts: Vec<(ObjectId, String)> = doc
        .objects
        .iter()
        .filter_map(|(id, object)| {
            let font = object.as_dict().ok()?;
            if !font.has_type(b"Font")
                || font.get(b"Subtype").and_then(Object::as_name).ok()? != b"Type0"
            {
                return None;
            }
            let name = font.get(b"Encoding").and_then(Object::as_name).ok()?;
            let name = String::from_utf8_lossy(name).into_owned();
            (name != "Identity-H" && name != "Identity-V").then_some((*id, name))
        })
        .collect();
    if fonts.is_empty() {
        return;
    }
    let shown = shown_strings(doc);
    for (font, name) in fonts {
        match scheme(&name) {
            Some(scheme) => rewrite(doc, font, &scheme, &shown),
            None => {
                if let Ok(font) = doc.get_dictionary_mut(font) {
                    font.set("Encoding", "Identity-H");
                }
            }
        }
    }
}

/// Makes every composite font written inline (inside a resource dictionary)
/// an object of its own, so that it can be rewritten like the others.
fn hoist_composite_fonts(doc: &mut Document) {
    let mut next_id = doc.max_id;
    let mut hoisted = Vec::new();
    for object in doc.objects.values_mut() {
        hoist_in(object, &mut next_id, &mut hoisted, 0);
    }
    doc.max_id = next_id;
    doc.objects.extend(hoisted);
}

fn hoist_in(object: &mut Object, next_id: &mut u32, out: &mut Vec<(ObjectId, Object)>, depth: u8) {
    let dict = match object {
        Object::Dictionary(dict) => dict,
        Object::Stream(stream) => &mut stream.dict,
        Object::Array(items) if depth < 8 => {
            items
                .iter_mut()
                .for_each(|o| hoist_in(o, next_id, out, depth + 1));
            return;
        }
        _ => return,
    };
    let composite = dict.has_type(b"Font")
        && dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .is_ok_and(|n| n == b"Type0");
    if composite && depth > 0 {
        *next_id += 1;
        let id = (*next_id, 0);
        out.push((id, std::mem::replace(object, Object::Reference(id))));
        return;
    }
    if depth < 8 {
        for (_, value) in dict.iter_mut() {
            hoist_in(value, next_id, out, depth + 1);
        }
    }
}

fn rewrite(doc: &mut Document, font: ObjectId, scheme: &Scheme, shown: &[Vec<u8>]) {
    let codes: BTreeSet<&[u8]> = shown.iter().flat_map(|s| scheme.split(s)).collect();
    let encoding = doc.add_object(Stream::new(Dictionary::new(), code_cmap(scheme)));
    let has_to_unicode = doc.get_dictionary(font).is_ok_and(|f| f.has(b"ToUnicode"));
    let to_unicode = (!has_to_unicode)
        .then(|| doc.add_object(Stream::new(Dictionary::new(), to_unicode(scheme, &codes))));
    let descendant = doc
        .get_dictionary(font)
        .and_then(|f| f.get(b"DescendantFonts"))
        .and_then(|d| doc.dereference(d))
        .and_then(|(_, d)| d.as_array())
        .ok()
        .and_then(|d| d.first())
        .and_then(|d| d.as_reference().ok());
    if let Some(descendant) = descendant
        && let Ok(cid_font) = doc.get_dictionary_mut(descendant)
    {
        set_code_widths(cid_font, scheme, &codes);
    } else if let Ok(Object::Array(descendants)) = doc
        .get_dictionary_mut(font)
        .and_then(|f| f.get_mut(b"DescendantFonts"))
        && let Some(Object::Dictionary(cid_font)) = descendants.first_mut()
    {
        set_code_widths(cid_font, scheme, &codes);
    }
    if let Ok(font) = doc.get_dictionary_mut(font) {
        font.set("Encoding", encoding);
        if let Some(to_unicode) = to_unicode {
            font.set("ToUnicode", to_unicode);
        }
    }
}

/// An embedded CMap with `scheme`'s codespace that maps every code to the
/// CID of the same number.
fn code_cmap(scheme: &Scheme) -> Vec<u8> {
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
         /CMapName /QuireCodes def\n",
    );
    let _ = writeln!(out, "{} begincodespacerange", scheme.codespace.len());
    // adobe-cmap-parser 0.4 takes a range's code length to be half its
    // number of bytes (right for nothing): each bound is written with as many
    // zero bytes before it as it has, which leaves its value alone.
    for (low, high) in scheme.codespace {
        let zeros = "00".repeat(low.len());
        let _ = writeln!(out, "<{zeros}{}> <{zeros}{}>", hex(low), hex(high));
    }
    out.push_str(
        "endcodespacerange\n1 begincidrange\n<00000000> <FFFFFFFF> 0\nendcidrange\n\
         endcmap CMapName currentdict /CMap defineresource pop end end\n",
    );
    out.into_bytes()
}

/// A `/ToUnicode` CMap with the text of each of `codes`.
fn to_unicode(scheme: &Scheme, codes: &BTreeSet<&[u8]>) -> Vec<u8> {
    let entries: Vec<(String, String)> = codes
        .iter()
        .filter_map(|code| {
            let text = scheme.text(code)?;
            let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
            Some((hex(code), hex(&utf16)))
        })
        .collect();
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
         /CMapName /QuireText def\n1 begincodespacerange <00> <FFFFFFFF> endcodespacerange\n",
    );
    for block in entries.chunks(100) {
        let _ = writeln!(out, "{} beginbfchar", block.len());
        for (code, text) in block {
            let _ = writeln!(out, "<{code}> <{text}>");
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap CMapName currentdict /CMap defineresource pop end end\n");
    out.into_bytes()
}

/// Rekeys `/W` from CIDs to codes, for the codes whose CID is known.
fn set_code_widths(cid_font: &mut Dictionary, scheme: &Scheme, codes: &BTreeSet<&[u8]>) {
    let by_cid = cid_widths(cid_font.get(b"W").and_then(Object::as_array).ok());
    let mut widths = Vec::new();
    for code in codes.iter().map(|c| number(c)) {
        if let Some(width) = scheme.known_cid(code).and_then(|cid| by_cid.get(&cid)) {
            widths.push(Object::Integer(i64::from(code)));
            widths.push(Object::Array(vec![width.clone()]));
        }
    }
    cid_font.set("W", widths);
}

/// The widths a `/W` array gives, by CID (both the list and the range form).
fn cid_widths(w: Option<&Vec<Object>>) -> BTreeMap<u32, Object> {
    let mut out = BTreeMap::new();
    let Some(w) = w else {
        return out;
    };
    let cid = |o: &Object| o.as_i64().ok().and_then(|n| u32::try_from(n).ok());
    let mut i = 0;
    while i < w.len() {
        match (w.get(i).and_then(cid), w.get(i + 1), w.get(i + 2)) {
            (Some(first), Some(Object::Array(list)), _) => {
                for (n, width) in (first..).zip(list) {
                    out.insert(n, width.clone());
                }
                i += 2;
            }
            (Some(first), Some(last), Some(width)) => {
                // A hostile range must not allocate without bound.
                let last = cid(last).unwrap_or(first).min(first.saturating_add(65_535));
                for n in first..=last {
                    out.insert(n, width.clone());
                }
                i += 3;
            }
            _ => break,
        }
    }
    out
}

/// Every string the page and its forms show (`Tj`, `TJ`, `'`, `"`).
fn shown_strings(doc: &Document) -> Vec<Vec<u8>> {
    let mut streams: Vec<Vec<u8>> = doc
        .get_pages()
        .into_values()
        .filter_map(|page| doc.get_page_content(page).ok())
        .collect();
    streams.extend(doc.objects.values().filter_map(|object| {
        match object {
            Object::Stream(s)
                if s.dict
                    .get(b"Subtype")
                    .and_then(Object::as_name)
                    .is_ok_and(|n| n == b"Form") =>
            {
                Some(
                    s.decompressed_content()
                        .unwrap_or_else(|_| s.content.clone()),
                )
            }
            _ => None,
        }
    }));
    let mut shown = Vec::new();
    for bytes in streams {
        let Ok(content) = Content::decode(&bytes) else {
            continue;
        };
        for op in content.operations {
            if matches!(op.operator.as_str(), "Tj" | "TJ" | "'" | "\"") {
                for operand in op.operands {
                    collect_strings(operand, &mut shown);
                }
            }
        }
    }
    shown
}

fn collect_strings(object: Object, out: &mut Vec<Vec<u8>>) {
    match object {
        Object::String(bytes, _) => out.push(bytes),
        Object::Array(items) => items.into_iter().for_each(|o| collect_strings(o, out)),
        _ => {}
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
