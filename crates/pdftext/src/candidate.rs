//! pdf-extract as published, the baseline [`crate::page_texts`] is measured
//! against on the corpus (`cargo xtask pdf-measure`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use unicode_normalization::UnicodeNormalization;

/// pdf-extract 0.12.1 as published (its own `PlainTextOutput` spacing), per
/// page, NFKC-normalised. A panic inside it is returned as an error.
pub fn pdf_extract_stock(bytes: &[u8]) -> Result<Vec<String>, String> {
    let pages = catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem_by_pages(bytes)
    }))
    .map_err(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!("panicked: {why}")
    })?
    .map_err(|e| e.to_string())?;
    Ok(pages
        .iter()
        .map(|p| logical_order(&p.nfkc().collect::<String>()))
        .collect())
}

/// pdf-extract writes glyphs in drawing order, which for Hebrew and Arabic is
/// right to left on the page: a line whose strong letters are mostly RTL is
/// reversed into reading order. (A stand-in for the Unicode bidi algorithm:
/// numbers inside such a line come out reversed.)
pub fn logical_order(text: &str) -> String {
    let rtl = |c: char| matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF);
    text.split('\n')
        .map(|line| {
            let (r, l) = line.chars().fold((0, 0), |(r, l), c| {
                if rtl(c) {
                    (r + 1, l)
                } else if c.is_alphabetic() {
                    (r, l + 1)
                } else {
                    (r, l)
                }
            });
            if r > l {
                line.chars().rev().collect()
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_right_to_left_line_is_put_in_reading_order() {
        assert_eq!(super::logical_order("םולש\nhello"), "שלום\nhello");
    }
}
