//! One indirect object parsed from a PDF's bytes, the well-formed way.
//!
//! lopdf's parser (nom combinators, ten alternatives tried per value) took a
//! third of the time of reading a page once the cross-reference table was
//! read without it (`src/xref.rs`): each page's fonts, widths and maps are
//! parsed when the page is read. [`object`] reads the same grammar by hand
//! and gives the same `Object` lopdf gives, for well-formed objects only:
//! anything else (a token not followed by a delimiter, a stream whose length
//! does not end at `endstream`, nesting deeper than lopdf allows, a number
//! out of range) is `None`, and the caller asks lopdf, so the result never
//! differs from lopdf's. A test checks every object of every corpus file
//! against lopdf's parse.

use lopdf::{Dictionary, Object, ObjectId, Stream, StringFormat};

/// Arrays and dictionaries nested deeper than this are left to lopdf (which
/// refuses 100 levels).
const MAX_DEPTH: usize = 64;
/// Parentheses nested in a literal string deeper than this are left to
/// lopdf (which refuses 100).
const MAX_PARENTHESES: usize = 64;

/// Resolves the object a stream's indirect `/Length` names.
pub(crate) type Lengths<'a> = &'a dyn Fn(ObjectId) -> Option<i64>;

/// The object `id` written at `offset` of `buffer` (`N G obj …`), or `None`
/// if it is not there or not plainly well-formed.
pub(crate) fn object(
    buffer: &[u8],
    offset: usize,
    id: ObjectId,
    lengths: Lengths,
) -> Option<Object> {
    if offset >= buffer.len() {
        return None;
    }
    let mut at = Cursor { buffer, at: offset };
    at.space();
    let number = at.unsigned()?;
    at.space();
    let generation = at.unsigned()?;
    at.space();
    if (u32::try_from(number).ok()?, u16::try_from(generation).ok()?) != id || !at.keyword(b"obj") {
        return None;
    }
    at.space();
    let value = at.value(MAX_DEPTH)?;
    let Object::Dictionary(dict) = value else {
        return Some(value);
    };
    if !at.keyword(b"stream") {
        return Some(Object::Dictionary(dict));
    }
    while matches!(at.peek(), Some(b' ' | b'\t')) {
        at.at += 1;
    }
    if !at.eol() {
        return None;
    }
    let length = match dict.get(b"Length").ok()? {
        Object::Integer(length) => *length,
        Object::Reference(length) => lengths(*length)?,
        _ => return None,
    };
    let end = at.at.checked_add(usize::try_from(length).ok()?)?;
    let content = buffer.get(at.at..end)?.to_vec();
    at.at = end;
    at.eol();
    at.keyword(b"endstream")
        .then(|| Object::Stream(Stream::new(dict, content)))
}

/// The integer object `id` at `offset` (an indirect `/Length`).
pub(crate) fn integer(buffer: &[u8], offset: usize, id: ObjectId) -> Option<i64> {
    match object(buffer, offset, id, &|_| None)? {
        Object::Integer(n) => Some(n),
        _ => None,
    }
}

struct Cursor<'a> {
    buffer: &'a [u8],
    at: usize,
}

fn is_white(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\0' | b'\x0c')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_white(b) && !is_delimiter(b)
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.buffer.get(self.at).copied()
    }

    /// Whether the token just read ends here (white space, a delimiter, the end).
    fn token_ends(&self) -> bool {
        self.peek().is_none_or(|b| !is_regular(b))
    }

    /// Skips white space and comments (a comment ends at its line's end).
    fn space(&mut self) {
        while let Some(b) = self.peek() {
            if is_white(b) {
                self.at += 1;
            } else if b == b'%' {
                let rest = &self.buffer[self.at..];
                match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                    Some(end) => self.at += end,
                    None => return,
                }
            } else {
                return;
            }
        }
    }

    /// One end of line (`\r\n`, `\n` or `\r`), if there is one here.
    fn eol(&mut self) -> bool {
        let rest = &self.buffer[self.at.min(self.buffer.len())..];
        let n = if rest.starts_with(b"\r\n") {
            2
        } else if rest.starts_with(b"\n") || rest.starts_with(b"\r") {
            1
        } else {
            0
        };
        self.at += n;
        n > 0
    }

    /// `word`, as a whole token, consumed if it is here.
    fn keyword(&mut self, word: &[u8]) -> bool {
        let start = self.at;
        if self
            .buffer
            .get(start..)
            .is_some_and(|r| r.starts_with(word))
        {
            self.at += word.len();
            if self.token_ends() {
                return true;
            }
        }
        self.at = start;
        false
    }

    /// Decimal digits, as a number that fits in 32 bits.
    fn unsigned(&mut self) -> Option<u64> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.buffer[start..self.at];
        if digits.is_empty() || digits.len() > 10 {
            return None;
        }
        digits
            .iter()
            .try_fold(0u64, |n, d| Some(n * 10 + u64::from(d - b'0')))
            .filter(|&n| n <= u64::from(u32::MAX))
    }

    /// One value and the space after it.
    fn value(&mut self, depth: usize) -> Option<Object> {
        if depth == 0 {
            return None;
        }
        let value = match self.peek()? {
            b'/' => Object::Name(self.name()?),
            b'(' => Object::String(self.literal()?, StringFormat::Literal),
            b'[' => Object::Array(self.array(depth)?),
            b'<' if self.buffer.get(self.at + 1) == Some(&b'<') => {
                Object::Dictionary(self.dictionary(depth)?)
            }
            b'<' => Object::String(self.hexadecimal()?, StringFormat::Hexadecimal),
            b't' if self.keyword(b"true") => Object::Boolean(true),
            b'f' if self.keyword(b"false") => Object::Boolean(false),
            b'n' if self.keyword(b"null") => Object::Null,
            b'0'..=b'9' => self.reference().map_or_else(|| self.number(), Some)?,
            b'+' | b'-' | b'.' => self.number()?,
            _ => return None,
        };
        self.space();
        Some(value)
    }

    /// `N G R`, consumed if it is here.
    fn reference(&mut self) -> Option<Object> {
        let start = self.at;
        let reference = (|| {
            let number = u32::try_from(self.unsigned()?).ok()?;
            self.space();
            let generation = u16::try_from(self.unsigned()?).ok()?;
            self.space();
            self.keyword(b"R")
                .then_some(Object::Reference((number, generation)))
        })();
        if reference.is_none() {
            self.at = start;
        }
        reference
    }

    /// An integer, or a real with a point (`1.5`, `-.5`, `3.`).
    fn number(&mut self) -> Option<Object> {
        let start = self.at;
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.at += 1;
        }
        let digits = |cursor: &mut Self| {
            let from = cursor.at;
            while cursor.peek().is_some_and(|b| b.is_ascii_digit()) {
                cursor.at += 1;
            }
            cursor.at - from
        };
        let whole = digits(self);
        let point = self.peek() == Some(b'.');
        if point {
            self.at += 1;
        }
        let fraction = if point { digits(self) } else { 0 };
        if !self.token_ends() || (whole == 0 && fraction == 0) {
            return None;
        }
        let text = std::str::from_utf8(&self.buffer[start..self.at]).ok()?;
        if point {
            text.parse::<f32>().ok().map(Object::Real)
        } else {
            text.parse::<i64>().ok().map(Object::Integer)
        }
    }

    /// `/Name` with `#xx` escapes.
    fn name(&mut self) -> Option<Vec<u8>> {
        self.at += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'#' {
                let hex = self.buffer.get(self.at + 1..self.at + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(text, 16).ok()?);
                self.at += 3;
            } else if is_regular(b) {
                out.push(b);
                self.at += 1;
            } else {
                break;
            }
        }
        Some(out)
    }

    /// `( … )` with escapes and balanced parentheses kept.
    fn literal(&mut self) -> Option<Vec<u8>> {
        self.at += 1;
        let mut out = Vec::new();
        let mut open = 0usize;
        loop {
            let b = self.peek()?;
            self.at += 1;
            match b {
                b'(' => {
                    open += 1;
                    if open > MAX_PARENTHESES {
                        return None;
                    }
                    out.push(b);
                }
                b')' if open == 0 => return Some(out),
                b')' => {
                    open -= 1;
                    out.push(b);
                }
                b'\\' => self.escape(&mut out)?,
                _ => out.push(b),
            }
        }
    }

    /// What follows a backslash in a literal string.
    fn escape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let b = self.peek()?;
        if (b'0'..=b'7').contains(&b) {
            let mut code = 0u16;
            let mut n = 0;
            while n < 3
                && let Some(d) = self.peek().filter(|d| (b'0'..=b'7').contains(d))
            {
                code = code * 8 + u16::from(d - b'0');
                self.at += 1;
                n += 1;
            }
            out.push(code as u8);
            return Some(());
        }
        if self.eol() {
            return Some(());
        }
        self.at += 1;
        out.push(match b {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'b' => b'\x08',
            b'f' => b'\x0c',
            other => other,
        });
        Some(())
    }

    /// `< hex digits >`, white space between them allowed, an odd last
    /// digit read as its high half.
    fn hexadecimal(&mut self) -> Option<Vec<u8>> {
        self.at += 1;
        let mut out = Vec::new();
        let mut high = true;
        loop {
            let b = self.peek()?;
            self.at += 1;
            let nibble = match b {
                b'>' => return Some(out),
                b if is_white(b) => continue,
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return None,
            };
            if high {
                out.push(nibble << 4);
            } else if let Some(last) = out.last_mut() {
                *last |= nibble;
            }
            high = !high;
        }
    }

    fn array(&mut self, depth: usize) -> Option<Vec<Object>> {
        self.at += 1;
        self.space();
        let mut items = Vec::new();
        while self.peek()? != b']' {
            items.push(self.value(depth - 1)?);
        }
        self.at += 1;
        Some(items)
    }

    fn dictionary(&mut self, depth: usize) -> Option<Dictionary> {
        self.at += 2;
        self.space();
        let mut dict = Dictionary::new();
        loop {
            match self.peek()? {
                b'>' if self.buffer.get(self.at + 1) == Some(&b'>') => {
                    self.at += 2;
                    return Some(dict);
                }
                b'/' => {
                    let key = self.name()?;
                    self.space();
                    let value = self.value(depth - 1)?;
                    dict.set(key, value);
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use lopdf::Reader;
    use lopdf::xref::XrefEntry;

    #[test]
    fn every_object_of_the_corpus_parses_as_lopdf_parses_it() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/pdf-corpus/pdf");
        let (mut ours, mut all) = (0, 0);
        for file in std::fs::read_dir(dir).unwrap() {
            let file = file.unwrap().path();
            let bytes = std::fs::read(&file).unwrap();
            let document = crate::xref::read(&bytes).unwrap();
            let reader = Reader {
                buffer: &bytes,
                document,
                encryption_state: None,
                raw_objects: Default::default(),
                password: None,
                strict: false,
            };
            let table = &reader.document.reference_table;
            let lengths = |id: lopdf::ObjectId| match table.get(id.0) {
                Some(XrefEntry::Normal { offset, .. }) => {
                    super::integer(&bytes, *offset as usize, id)
                }
                _ => None,
            };
            for (&number, entry) in &table.entries {
                let XrefEntry::Normal { offset, generation } = *entry else {
                    continue;
                };
                let id = (number, generation);
                all += 1;
                if let Some(object) = super::object(&bytes, offset as usize, id, &lengths) {
                    ours += 1;
                    let lopdf = reader.get_object(id, &mut HashSet::new()).unwrap();
                    assert_eq!(object, lopdf, "{file:?} {id:?}");
                }
            }
        }
        assert!(
            ours * 100 >= all * 99,
            "{ours} of {all} objects parsed here"
        );
    }
}
