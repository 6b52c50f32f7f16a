//! Text of real-world PDFs, page by page.
//!
//! [`page_texts`] decodes fonts with pdf-extract 0.12.1 (ToUnicode first per
//! code, `/Encoding` and `/Differences` for the rest, CID fonts with `/W`,
//! Type3) and builds lines and spaces itself from where each glyph is drawn
//! (`src/assemble.rs`). Before decoding, `src/repair.rs` rewrites what that crate
//! misreads or panics on. The choice, and the engines measured against it on
//! `tests/pdf-corpus`, are in this crate's README; `cargo xtask pdf-measure`
//! prints the comparison.
//!
//! The decoder panics on inputs it does not expect (by its maintainer's
//! choice) and has no limit on the work a small file can ask for (forms drawn
//! inside forms). [`page_texts`] turns a panic into [`ExtractError::Panicked`]
//! and stops at a deadline with [`ExtractError::TimedOut`]; a caller that must
//! never hang also runs it on a thread it can walk away from.

mod assemble;
pub mod candidate;
mod repair;
pub mod score;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use lopdf::Document;

/// Why the text of a loaded PDF could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// The decoder panicked on something in the file.
    #[error("the text reader cannot handle its content ({0})")]
    Panicked(String),
    /// The deadline passed before every page was read.
    #[error("reading its text took longer than allowed")]
    TimedOut,
    /// A page draws more glyphs than any real page does.
    #[error("a page draws more than {} glyphs", assemble::MAX_GLYPHS_PER_PAGE)]
    TooManyGlyphs,
    /// The decoder reported an error.
    #[error("the text reader failed: {0}")]
    Unreadable(String),
}

/// The text of each page of `doc` (decrypted already), in page order; a page
/// without a text layer yields an empty string. Lines end with `\n`, words
/// are separated by one space, right-to-left lines are in reading order, and
/// the text is NFKC-normalised (ligatures and Kangxi radicals spelled as
/// people type them).
///
/// Stops with [`ExtractError::TimedOut`] once `deadline` has passed (checked
/// every thousand glyphs or so) and with [`ExtractError::TooManyGlyphs`] on a
/// page no one could read, so memory stays bounded by one page whatever the
/// page count; a panic of the decoder is caught and returned as
/// [`ExtractError::Panicked`] (after one more try with the font maps it
/// panics on rewritten). CPU-bound: call it from a blocking thread.
pub fn page_texts(
    mut doc: Document,
    deadline: Option<Instant>,
) -> Result<Vec<String>, ExtractError> {
    catch_unwind(AssertUnwindSafe(|| repair::repair(&mut doc)))
        .map_err(|panic| ExtractError::Panicked(message(&panic)))?;
    match read(&doc, deadline) {
        Err(ExtractError::Panicked(_)) => {
            catch_unwind(AssertUnwindSafe(|| repair::clean_to_unicode_maps(&mut doc)))
                .map_err(|panic| ExtractError::Panicked(message(&panic)))?;
            read(&doc, deadline)
        }
        other => other,
    }
}

fn read(doc: &Document, deadline: Option<Instant>) -> Result<Vec<String>, ExtractError> {
    let mut assembler = assemble::Assembler::new(deadline);
    match catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::output_doc(doc, &mut assembler)
    })) {
        Err(panic) => Err(ExtractError::Panicked(message(&panic))),
        Ok(Err(_)) if assembler.timed_out => Err(ExtractError::TimedOut),
        Ok(Err(_)) if assembler.too_many_glyphs => Err(ExtractError::TooManyGlyphs),
        Ok(Err(err)) => Err(ExtractError::Unreadable(err.to_string())),
        Ok(Ok(())) => Ok(assembler.into_pages()),
    }
}

fn message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "no message".into())
}
