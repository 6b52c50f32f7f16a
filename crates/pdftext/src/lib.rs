//! Text of real-world PDFs, page by page.
//!
//! For now this crate holds the scoring used to measure an extractor against
//! the corpus in `tests/pdf-corpus` (see [`score`]); `cargo xtask pdf-measure`
//! runs it over every document.

pub mod candidate;
pub mod score;
