//! Candidate engines, measured side by side on the corpus before one is chosen.

use std::panic::{AssertUnwindSafe, catch_unwind};

use unicode_normalization::UnicodeNormalization;

/// pdf-extract 0.12.1 as published (its own `PlainTextOutput` spacing), per
/// page, NFKC-normalised. A panic inside it is returned as an error.
pub fn pdf_extract_stock(bytes: &[u8]) -> Result<Vec<String>, String> {
    let pages = catch_unwind(AssertUnwindSafe(|| pdf_extract::extract_text_from_mem_by_pages(bytes)))
        .map_err(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            format!("panicked: {why}")
        })?
        .map_err(|e| e.to_string())?;
    Ok(pages.iter().map(|p| p.nfkc().collect()).collect())
}
