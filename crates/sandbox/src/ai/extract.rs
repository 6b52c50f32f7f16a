//! PDF text extraction, page by page, for the sources pipeline.
//!
//! `quire-pdftext` opens the file (detecting, and for an empty user password
//! removing, encryption) and reads the text of each page, one page in memory
//! at a time: fonts decoded ToUnicode first, lines and spaces from where
//! glyphs are drawn, right-to-left lines in reading order, ligatures spelled
//! out (NFKC). Its README holds the measurements on real-world PDFs that
//! chose it.
//!
//! Classification follows what the platform reports on a source
//! (`extraction_status = failed`, docs/platform/ai-api.md §7.3): not a PDF at
//! all, encrypted with a password we do not have, or a PDF that cannot be
//! read (truncated, broken cross-reference table, no pages, no page readable).
//! A PDF without a text layer (scanned pages) is a success with empty page
//! texts, and so is a page the reader fails on among pages it reads: that
//! page is empty, as the platform's PyMuPDF extractor leaves a page whose
//! fonts it cannot decode, and still counts in `page_count`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use quire_pdftext::{OpenError, Pdf, Stop};

/// Why a file's text could not be extracted. [`ExtractError::code`] is the
/// `error_code` stored on the source.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ExtractError {
    /// The bytes do not start with a PDF header.
    #[error("The file is not a PDF (no %PDF- header in its first 1024 bytes).")]
    NotAPdf,
    /// The PDF needs a password to be opened.
    #[error("The PDF is encrypted with a password; upload a copy without a password.")]
    Encrypted,
    /// The PDF could not be parsed.
    #[error("The PDF is damaged or truncated and could not be read: {0}")]
    Corrupt(String),
    /// The PDF parses, but its pages hold something the text reader fails on.
    #[error("The PDF's text could not be read: {0}. Try printing it to a new PDF.")]
    Unreadable(String),
    /// Reading the text did not finish within the time limit.
    #[error(
        "Reading the PDF's text took longer than {} s and was stopped. Try printing it to a new PDF.",
        .0.as_secs()
    )]
    TimedOut(Duration),
}

impl ExtractError {
    /// The short code the API reports as `error_code`.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ExtractError::NotAPdf => "not_a_pdf",
            ExtractError::Encrypted => "encrypted",
            ExtractError::Corrupt(_) => "corrupt",
            ExtractError::Unreadable(_) => "unreadable",
            ExtractError::TimedOut(_) => "timed_out",
        }
    }
}

/// Whether `bytes` carry a PDF header where readers look for one (the spec
/// allows up to 1024 bytes of junk before `%PDF-`).
pub(crate) fn looks_like_pdf(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    head.windows(5).any(|w| w == b"%PDF-")
}

/// The text of each page of a PDF, in page order (`result[0]` is page 1).
/// A page without a text layer yields an empty string.
///
/// Errors: [`ExtractError::NotAPdf`], [`ExtractError::Encrypted`],
/// [`ExtractError::Corrupt`]. CPU-bound: call it from a blocking thread.
#[cfg(test)]
pub(crate) fn extract_pdf(bytes: &[u8]) -> Result<Vec<String>, ExtractError> {
    read_pdf(bytes, Stop::default(), Duration::ZERO)
}

/// The text of each page of a PDF, as `extract_pdf` (the tests') reads it,
/// but giving up with [`ExtractError::TimedOut`] once `limit` has passed or
/// `stop` is raised. The reader checks both at every glyph and
/// drawing operation, so a caller that stops waiting raises `stop` and the
/// thread ends; parsing the file's cross-reference table is not covered.
pub(crate) fn extract_pdf_within(
    bytes: &[u8],
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> Result<Vec<String>, ExtractError> {
    read_pdf(bytes, Stop::at(Instant::now() + limit).or_when(stop), limit)
}

fn read_pdf(bytes: &[u8], stop: Stop, limit: Duration) -> Result<Vec<String>, ExtractError> {
    if !looks_like_pdf(bytes) {
        return Err(ExtractError::NotAPdf);
    }
    let pdf = Pdf::open(bytes).map_err(|e| match e {
        OpenError::Encrypted => ExtractError::Encrypted,
        OpenError::Damaged(why) => ExtractError::Corrupt(why),
        OpenError::NoPages => ExtractError::Corrupt("the document has no pages".into()),
    })?;
    let read = quire_pdftext::page_texts(&pdf, &stop).map_err(|e| match e {
        quire_pdftext::ExtractError::TimedOut | quire_pdftext::ExtractError::Cancelled => {
            ExtractError::TimedOut(limit)
        }
        other => ExtractError::Unreadable(other.to_string()),
    })?;
    if !read.failed.is_empty() {
        let pages: Vec<usize> = read.failed.iter().map(|f| f.page).collect();
        tracing::warn!(
            ?pages,
            first_error = %read.failed[0].error,
            "pages whose text could not be read are left empty"
        );
    }
    Ok(read.pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::Object;
    use quire_testkit::fixtures;

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
    fn a_page_the_reader_fails_on_is_empty_and_the_others_keep_their_text() {
        use lopdf::content::Operation;
        let shown = |font: Option<&str>, text: &str| {
            let mut ops = vec![Operation::new("BT", vec![])];
            if let Some(font) = font {
                ops.push(Operation::new("Tf", vec![font.into(), 12.into()]));
            }
            ops.push(Operation::new("Td", vec![72.into(), 700.into()]));
            ops.push(Operation::new("Tj", vec![Object::string_literal(text)]));
            ops.push(Operation::new("ET", vec![]));
            ops
        };
        // Page 2 shows text before choosing a font: the decoder panics there.
        let pdf = fixtures::pdf_from_operations(vec![
            shown(Some("F1"), "The first page"),
            shown(None, "orphan"),
            shown(Some("F1"), "The third page"),
        ]);
        assert_eq!(
            extract_pdf(&pdf).unwrap(),
            vec!["The first page", "", "The third page"]
        );
    }
}
