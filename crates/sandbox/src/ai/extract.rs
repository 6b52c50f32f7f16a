//! PDF text extraction, page by page, for the sources pipeline.
//!
//! Built on `lopdf`: it parses the file, detects and (for an empty user
//! password) removes encryption, decodes content streams and font encodings.
//! Its own `extract_text` ignores text positioning (`Td`, `Tm`), so lines laid
//! out with moves run together; [`extract_pdf`] walks the content stream itself
//! with the text matrix and breaks lines where the baseline moves.
//!
//! Classification follows what the platform reports on a source
//! (`extraction_status = failed` with an `error_code`): not a PDF at all,
//! encrypted with a password we do not have, or a PDF that cannot be read
//! (truncated, broken cross-reference table, no pages). A PDF without a text
//! layer (scanned pages) is a success with empty page texts.

use std::collections::BTreeMap;

use lopdf::content::Content;
use lopdf::{Document, Encoding, Object, ObjectId};

/// Why a file's text could not be extracted. [`ExtractError::code`] is the
/// `error_code` stored on the source.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// The bytes do not start with a PDF header.
    #[error("The file is not a PDF (no %PDF- header in its first 1024 bytes).")]
    NotAPdf,
    /// The PDF needs a password to be opened.
    #[error("The PDF is encrypted with a password; upload a copy without a password.")]
    Encrypted,
    /// The PDF could not be parsed.
    #[error("The PDF is damaged or truncated and could not be read: {0}")]
    Corrupt(String),
}

impl ExtractError {
    /// The short code the API reports as `error_code`.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::NotAPdf => "not_a_pdf",
            ExtractError::Encrypted => "encrypted",
            ExtractError::Corrupt(_) => "corrupt",
        }
    }
}

/// Whether `bytes` carry a PDF header where readers look for one (the spec
/// allows up to 1024 bytes of junk before `%PDF-`).
pub fn looks_like_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    head.windows(5).any(|w| w == b"%PDF-")
}

/// The text of each page of a PDF, in page order (`result[0]` is page 1).
/// A page without a text layer yields an empty string.
///
/// Errors: [`ExtractError::NotAPdf`], [`ExtractError::Encrypted`],
/// [`ExtractError::Corrupt`]. CPU-bound: call it from a blocking thread.
pub fn extract_pdf(bytes: &[u8]) -> Result<Vec<String>, ExtractError> {
    if !looks_like_pdf(bytes) {
        return Err(ExtractError::NotAPdf);
    }
    let doc = Document::load_mem(bytes).map_err(|e| classify_load_error(&e))?;
    // lopdf leaves the /Encrypt entry in place when the empty user password
    // does not open the file (an empty one is tried, and removed, on load).
    if doc.is_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::Corrupt("the document has no pages".into()));
    }
    Ok(pages
        .values()
        .map(|&page_id| page_text(&doc, page_id).unwrap_or_default())
        .collect())
}

fn classify_load_error(err: &lopdf::Error) -> ExtractError {
    match err {
        lopdf::Error::InvalidPassword
        | lopdf::Error::Decryption(_)
        | lopdf::Error::UnsupportedSecurityHandler(_) => ExtractError::Encrypted,
        other => ExtractError::Corrupt(other.to_string()),
    }
}

/// A 2-D affine matrix `[a b c d e f]` as PDF writes it.
#[derive(Clone, Copy)]
struct Matrix([f32; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    /// `translate(tx, ty) × self`, the effect of `Td` on the line matrix.
    fn translated(self, tx: f32, ty: f32) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        Matrix([a, b, c, d, tx * a + ty * c + e, tx * b + ty * d + f])
    }

    fn y(self) -> f32 {
        self.0[5]
    }
}

/// Separator owed before the next shown text.
#[derive(PartialEq, PartialOrd, Clone, Copy)]
enum Gap {
    None,
    Space,
    Newline,
}

struct PageText<'a> {
    out: String,
    gap: Gap,
    line: Matrix,
    leading: f32,
    /// Baseline of the last text shown, to tell a new line from a move along it.
    last_y: Option<f32>,
    encoding: Option<&'a Encoding<'a>>,
}

impl<'a> PageText<'a> {
    fn owe(&mut self, gap: Gap) {
        if gap > self.gap {
            self.gap = gap;
        }
    }

    fn move_line(&mut self, tx: f32, ty: f32) {
        self.line = self.line.translated(tx, ty);
        self.owe(Gap::Space);
    }

    fn show(&mut self, bytes: &[u8]) {
        let mut text = String::new();
        match self.encoding {
            Some(encoding) if encoding.write_to_string(bytes, &mut text).is_ok() => {}
            // No usable font encoding: PDFDocEncoding is Latin-1 for printable text.
            _ => text = bytes.iter().map(|&b| b as char).collect(),
        }
        let text = text.replace('\0', "");
        if text.is_empty() {
            return;
        }
        let y = self.line.y();
        if let Some(last) = self.last_y
            && (last - y).abs() > 1.0
        {
            self.owe(Gap::Newline);
        }
        if !self.out.is_empty() {
            match self.gap {
                Gap::Newline => {
                    self.out
                        .truncate(self.out.trim_end_matches([' ', '\t']).len());
                    if !self.out.ends_with('\n') {
                        self.out.push('\n');
                    }
                }
                Gap::Space
                    if !self.out.ends_with(char::is_whitespace)
                        && !text.starts_with(char::is_whitespace) =>
                {
                    self.out.push(' ')
                }
                _ => {}
            }
        }
        self.gap = Gap::None;
        self.last_y = Some(y);
        self.out.push_str(&text);
    }

    fn show_array(&mut self, items: &[Object]) {
        for item in items {
            match item {
                Object::String(bytes, _) => self.show(bytes),
                // Thousandths of a text-space unit; a gap this wide is a word break.
                other => {
                    if let Ok(n) = other.as_float()
                        && n < -200.0
                    {
                        self.owe(Gap::Space);
                    }
                }
            }
        }
    }
}

fn page_text(doc: &Document, page_id: ObjectId) -> Result<String, lopdf::Error> {
    let encodings: BTreeMap<Vec<u8>, Encoding<'_>> = doc
        .get_page_fonts(page_id)?
        .into_iter()
        .filter_map(|(name, font)| font.get_font_encoding(doc).ok().map(|e| (name, e)))
        .collect();
    let content = Content::decode(&doc.get_page_content(page_id)?)?;
    let mut page = PageText {
        out: String::new(),
        gap: Gap::None,
        line: Matrix::IDENTITY,
        leading: 0.0,
        last_y: None,
        encoding: None,
    };
    let num = |ops: &[Object], i: usize| ops.get(i).and_then(|o| o.as_float().ok()).unwrap_or(0.0);
    for op in &content.operations {
        let ops = op.operands.as_slice();
        match op.operator.as_str() {
            "BT" => page.line = Matrix::IDENTITY,
            "Tf" => {
                page.encoding = ops
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .and_then(|name| encodings.get(name));
            }
            "TL" => page.leading = num(ops, 0),
            "Td" => page.move_line(num(ops, 0), num(ops, 1)),
            "TD" => {
                page.leading = -num(ops, 1);
                page.move_line(num(ops, 0), num(ops, 1));
            }
            "T*" => page.move_line(0.0, -page.leading),
            "Tm" => {
                page.line = Matrix(std::array::from_fn(|i| num(ops, i)));
                page.owe(Gap::Space);
            }
            "Tj" => {
                if let Some(Object::String(bytes, _)) = ops.first() {
                    page.show(bytes);
                }
            }
            "TJ" => {
                if let Some(Object::Array(items)) = ops.first() {
                    page.show_array(items);
                }
            }
            "'" | "\"" => {
                page.move_line(0.0, -page.leading);
                if let Some(Object::String(bytes, _)) = ops.last() {
                    page.show(bytes);
                }
            }
            _ => {}
        }
    }
    Ok(tidy(&page.out))
}

/// Trailing blanks off every line, at most one empty line in a row, no
/// blank lines at either end, and typographic ligatures spelled out (TeX
/// sets "ﬁ" as one glyph; searches type "fi").
fn tidy(text: &str) -> String {
    let text = expand_ligatures(text);
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

fn expand_ligatures(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ai::fixtures;

    #[test]
    fn text_comes_out_per_page_with_line_breaks() {
        let pdf = fixtures::text_pdf(&["First page line one\nline two", "Second page"]);
        let pages = extract_pdf(&pdf).unwrap();
        assert_eq!(pages, vec!["First page line one\nline two", "Second page"]);
    }

    #[test]
    fn moves_along_a_line_are_spaces_and_baseline_changes_are_newlines() {
        use lopdf::content::Operation;
        let text = |s: &str| Object::string_literal(s);
        let pdf = fixtures::pdf_from_operations(vec![vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 700.into()]),
            Operation::new("Tj", vec![text("Hello")]),
            Operation::new("Td", vec![40.into(), 0.into()]),
            Operation::new("Tj", vec![text("world")]),
            Operation::new("Td", vec![(-40).into(), (-14).into()]),
            Operation::new(
                "TJ",
                vec![Object::Array(vec![
                    text("kern"),
                    (-30).into(),
                    text("ed"),
                    (-500).into(),
                    text("gap"),
                ])],
            ),
            Operation::new(
                "Tm",
                vec![
                    1.into(),
                    0.into(),
                    0.into(),
                    1.into(),
                    72.into(),
                    600.into(),
                ],
            ),
            Operation::new("Tj", vec![text("placed")]),
            Operation::new("ET", vec![]),
        ]]);
        assert_eq!(
            extract_pdf(&pdf).unwrap(),
            vec!["Hello world\nkerned gap\nplaced"]
        );
    }

    #[test]
    fn image_only_pages_are_empty() {
        let pages = extract_pdf(&fixtures::image_only_pdf(3)).unwrap();
        assert_eq!(pages, vec!["", "", ""]);
    }

    #[test]
    fn failures_are_classified() {
        let pdf = fixtures::text_pdf(&["Some text"]);
        assert_eq!(
            extract_pdf(b"hello, I am a text file"),
            Err(ExtractError::NotAPdf)
        );
        assert_eq!(
            extract_pdf(&fixtures::encrypted_pdf(&["secret"], "hunter2")),
            Err(ExtractError::Encrypted)
        );
        let truncated = extract_pdf(&fixtures::truncated(&pdf));
        assert!(
            matches!(truncated, Err(ExtractError::Corrupt(_))),
            "{truncated:?}"
        );
        assert!(matches!(
            extract_pdf(b"%PDF-1.7\n garbage"),
            Err(ExtractError::Corrupt(_))
        ));
    }

    #[test]
    fn an_empty_user_password_is_opened() {
        let pdf = fixtures::encrypted_pdf(&["readable anyway"], "");
        assert_eq!(extract_pdf(&pdf).unwrap(), vec!["readable anyway"]);
    }

    #[test]
    fn tidy_collapses_blank_lines() {
        assert_eq!(tidy("  \na  \n\n\n b\n\n"), "a\n\n b");
        assert_eq!(
            tidy("speci\u{FB01}cation \u{FB00}\u{FB02}"),
            "specification fffl"
        );
    }
}
