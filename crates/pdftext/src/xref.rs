//! A PDF's cross-reference table and trailer, read without parsing a single
//! object.
//!
//! lopdf's loader reads the table and then parses every object it places
//! (with a filter it still parses each one before dropping it): a fifth of
//! the time of reading a 500-page file, and every object parsed again when
//! its page is read. [`read`] follows the same `startxref` → table (classic
//! or stream) → `/XRefStm` → `/Prev` chain and checks that each object the
//! table places starts with its own number (`N G obj`), so a misnumbered
//! table is caught as lopdf's loading caught it. It gives up (`None`) on
//! anything it does not read cleanly, and on encrypted files: the caller
//! then lets lopdf load the file as before.

use std::collections::HashSet;

use lopdf::xref::{Xref, XrefEntry, XrefType};
use lopdf::{Dictionary, Document, Object, Reader};

/// Sections followed through `/Prev`; a longer chain is a loop.
const MAX_SECTIONS: usize = 1024;
/// Bytes read after `trailer` for its dictionary.
const MAX_TRAILER: usize = 64 * 1024;

/// The document's table and trailer, no object loaded; `buffer` starts at
/// `%PDF-` (offsets count from there, as lopdf's do).
pub(crate) fn read(buffer: &[u8]) -> Option<Document> {
    let mut offset = start_offset(buffer)?;
    let mut xref = Xref::new(0, XrefType::CrossReferenceTable);
    let mut trailer: Option<Dictionary> = None;
    let mut seen = HashSet::new();
    for _ in 0..MAX_SECTIONS {
        if !seen.insert(offset) {
            break;
        }
        let (entries, dict) = section(buffer, offset)?;
        xref.merge(entries);
        if let Ok(stream_at) = dict.get(b"XRefStm").and_then(Object::as_i64) {
            let (hybrid, _) = section(buffer, usize::try_from(stream_at).ok()?)?;
            xref.merge(hybrid);
        }
        let previous = dict.get(b"Prev").and_then(Object::as_i64).ok();
        if trailer.is_none() {
            xref.cross_reference_type = if dict.has_type(b"XRef") {
                XrefType::CrossReferenceStream
            } else {
                XrefType::CrossReferenceTable
            };
            trailer = Some(dict);
        }
        match previous {
            Some(previous) => offset = usize::try_from(previous).ok()?,
            None => break,
        }
    }
    let mut trailer = trailer?;
    if trailer.has(b"Encrypt") || !headers_match(buffer, &xref) {
        return None;
    }
    for key in [&b"Prev"[..], b"XRefStm"] {
        trailer.remove(key);
    }
    xref.size = xref.max_id().checked_add(1)?;
    let mut document = Document::new();
    document.max_id = xref.size - 1;
    document.reference_table = xref;
    document.trailer = trailer;
    Some(document)
}

/// The offset after the last `startxref`.
fn start_offset(buffer: &[u8]) -> Option<usize> {
    let tail = buffer.len().saturating_sub(1024);
    let at = buffer[tail..].windows(9).rposition(|w| w == b"startxref")?;
    let (number, _) = integer(buffer, skip_space(buffer, tail + at + 9))?;
    usize::try_from(number).ok()
}

/// The entries and trailer dictionary of the section at `offset`.
fn section(buffer: &[u8], offset: usize) -> Option<(Xref, Dictionary)> {
    let at = skip_space(buffer, offset);
    if buffer.get(at..)?.starts_with(b"xref") {
        table(buffer, at + 4)
    } else {
        stream(buffer, at)
    }
}

/// A classic table (`xref`, then `first count` and `offset generation n|f`
/// lines) and the `trailer` dictionary after it.
fn table(buffer: &[u8], mut at: usize) -> Option<(Xref, Dictionary)> {
    let mut xref = Xref::new(0, XrefType::CrossReferenceTable);
    loop {
        at = skip_space(buffer, at);
        if buffer.get(at..)?.starts_with(b"trailer") {
            break;
        }
        let (first, next) = integer(buffer, at)?;
        let (count, next) = integer(buffer, skip_space(buffer, next))?;
        at = next;
        for number in first..first.checked_add(count)? {
            let (offset, next) = integer(buffer, skip_space(buffer, at))?;
            let (generation, next) = integer(buffer, skip_space(buffer, next))?;
            let kind = skip_space(buffer, next);
            at = kind + 1;
            match buffer.get(kind)? {
                b'n' => {
                    if let (Ok(number), Ok(offset), Ok(generation)) = (
                        u32::try_from(number),
                        u32::try_from(offset),
                        u16::try_from(generation),
                    ) {
                        xref.insert(number, XrefEntry::Normal { offset, generation });
                    }
                }
                b'f' => {}
                _ => return None,
            }
        }
    }
    let start = skip_space(buffer, at + b"trailer".len());
    let end = buffer.len().min(start.saturating_add(MAX_TRAILER));
    let mut wrapped = b"1 0 obj\n".to_vec();
    wrapped.extend_from_slice(buffer.get(start..end)?);
    match parse_object(&wrapped, 0, (1, 0))? {
        Object::Dictionary(dict) => Some((xref, dict)),
        _ => None,
    }
}

/// A cross-reference stream (`N G obj << /Type /XRef … >> stream`).
fn stream(buffer: &[u8], at: usize) -> Option<(Xref, Dictionary)> {
    let (number, next) = integer(buffer, at)?;
    let (generation, _) = integer(buffer, skip_space(buffer, next))?;
    let id = (u32::try_from(number).ok()?, u16::try_from(generation).ok()?);
    let Object::Stream(stream) = parse_object(buffer, at, id)? else {
        return None;
    };
    let content = if stream.dict.has(b"Filter") {
        stream.decompressed_content().ok()?
    } else {
        stream.content.clone()
    };
    let dict = stream.dict;
    let numbers = |key: &[u8]| -> Option<Vec<i64>> {
        dict.get(key)
            .ok()?
            .as_array()
            .ok()?
            .iter()
            .map(|o| o.as_i64().ok())
            .collect()
    };
    let widths = numbers(b"W")?;
    let widths: Vec<usize> = widths
        .get(..3)?
        .iter()
        .map(|&w| usize::try_from(w).ok().filter(|&w| w <= 8))
        .collect::<Option<_>>()?;
    let size = dict.get(b"Size").and_then(Object::as_i64).ok()?;
    let index = numbers(b"Index").unwrap_or_else(|| vec![0, size]);
    let row = widths.iter().sum::<usize>();
    let mut rows = content.chunks_exact(row.max(1));
    let mut xref = Xref::new(0, XrefType::CrossReferenceStream);
    for pair in index.chunks_exact(2) {
        for number in pair[0]..pair[0].checked_add(pair[1])? {
            let row = rows.next()?;
            let (kind, rest) = row.split_at(widths[0]);
            let (second, third) = rest.split_at(widths[1]);
            let kind = if widths[0] == 0 { 1 } else { big_endian(kind) };
            let (Ok(number), second, third) =
                (u32::try_from(number), big_endian(second), big_endian(third))
            else {
                continue;
            };
            let entry = match kind {
                1 => XrefEntry::Normal {
                    offset: u32::try_from(second).ok()?,
                    generation: u16::try_from(third).ok()?,
                },
                2 => XrefEntry::Compressed {
                    container: u32::try_from(second).ok()?,
                    index: u16::try_from(third).ok()?,
                },
                _ => continue,
            };
            xref.insert(number, entry);
        }
    }
    Some((xref, dict))
}

/// The object `id` written at `offset` of `buffer`, parsed by lopdf's own
/// parser (through a reader that knows that one object only).
fn parse_object(buffer: &[u8], offset: usize, id: (u32, u16)) -> Option<Object> {
    let mut document = Document::new();
    document.reference_table.insert(
        id.0,
        XrefEntry::Normal {
            offset: u32::try_from(offset).ok()?,
            generation: id.1,
        },
    );
    let reader = Reader {
        buffer,
        document,
        encryption_state: None,
        raw_objects: Default::default(),
        password: None,
        strict: false,
    };
    reader.get_object(id, &mut HashSet::new()).ok()
}

/// Whether every object the table places starts with its own `N G obj`.
fn headers_match(buffer: &[u8], xref: &Xref) -> bool {
    xref.entries.iter().all(|(&number, entry)| match *entry {
        XrefEntry::Normal { offset, generation } => {
            header(buffer, offset as usize) == Some((i64::from(number), i64::from(generation)))
        }
        _ => true,
    })
}

/// The `N G obj` at `at`.
fn header(buffer: &[u8], at: usize) -> Option<(i64, i64)> {
    let (number, next) = integer(buffer, skip_space(buffer, at))?;
    let (generation, next) = integer(buffer, skip_space(buffer, next))?;
    buffer
        .get(skip_space(buffer, next)..)?
        .starts_with(b"obj")
        .then_some((number, generation))
}

/// An unsigned decimal integer at `at`, and where it ends.
fn integer(buffer: &[u8], at: usize) -> Option<(i64, usize)> {
    let digits = buffer
        .get(at..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 18 {
        return None;
    }
    let value = buffer[at..at + digits]
        .iter()
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some((value, at + digits))
}

/// The first position at or after `at` that is not white space or a comment.
fn skip_space(buffer: &[u8], mut at: usize) -> usize {
    while let Some(&b) = buffer.get(at) {
        if b == b'%' {
            while buffer.get(at).is_some_and(|&b| b != b'\n' && b != b'\r') {
                at += 1;
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'\0') {
            at += 1;
        } else {
            break;
        }
    }
    at
}

fn big_endian(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, &b| (n << 8) | u64::from(b))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use lopdf::{Document, LoadOptions, Object, ObjectId};

    use super::read;

    fn drop_all(_: ObjectId, _: &mut Object) -> Option<(ObjectId, Object)> {
        None
    }

    #[test]
    fn every_corpus_table_reads_as_lopdfs_loader_reads_it() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/pdf-corpus/pdf");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 10, "{files:?}");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let ours = read(&bytes).unwrap_or_else(|| panic!("{file:?} was not read"));
            let options = LoadOptions {
                filter: Some(drop_all),
                ..LoadOptions::default()
            };
            let lopdf = Document::load_mem_with_options(&bytes, options).unwrap();
            assert_eq!(
                format!("{:?}", ours.reference_table.entries),
                format!("{:?}", lopdf.reference_table.entries),
                "{file:?}"
            );
            assert_eq!(
                ours.trailer.get(b"Root").unwrap(),
                lopdf.trailer.get(b"Root").unwrap(),
                "{file:?}"
            );
        }
    }
}
