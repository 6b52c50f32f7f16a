//! Lines and spaces rebuilt from where glyphs are drawn.
//!
//! pdf-extract runs the text state (Tm, Td, TJ, Tc, Tw, Tz, Ts) and hands every
//! glyph over with its matrix and advance; [`Assembler`] decides the layout
//! from that geometry alone, never from which operator moved the pen:
//!
//! - a glyph whose baseline is more than half a font size off the previous one
//!   starts a new line, and so does a glyph drawn well to the left of where the
//!   previous one ended;
//! - within a line, a space is written where a space glyph is drawn, or where
//!   the gap from the previous glyph's end exceeds [`WORD_GAP`] of the font size
//!   *above the line's smallest gap*, so that uniformly letter-spaced text stays
//!   one word and the gap after a drawn space glyph never adds a second space;
//! - a line whose letters are mostly right-to-left is reversed into reading
//!   order (drawing order is visual order).
//!
//! Lines come out in drawing order: Chromium, LibreOffice and TeX draw columns
//! and table cells in reading order, which geometric sorting would undo.

use pdf_extract::{ColorSpace, MediaBox, OutputDev, OutputError, Path, Transform};

use crate::{ExtractError, Stop};

/// A gap wider than this share of the font size (beyond the line's tightest
/// gap) separates words. pdftotext uses the same 0.1.
const WORD_GAP: f64 = 0.1;
/// A baseline shift larger than this share of the font size is a new line.
const LINE_SHIFT: f64 = 0.5;
/// Moving back left by more than this share of the font size is a new line
/// (the next table cell or column on the same baseline starts right of it).
const BACKWARDS: f64 = 1.0;
/// A page drawing more glyphs than this is refused: a dense page has ten
/// thousand, and each glyph held costs 32 bytes until the page ends.
pub(crate) const MAX_GLYPHS_PER_PAGE: usize = 2_000_000;
/// The deadline is read once per this many glyphs and drawing operations
/// (the stop flag at every one).
const CLOCK_EVERY: u64 = 1024;

/// One glyph as drawn, in the baseline frame of its line.
struct Glyph {
    /// Position along the baseline where the glyph starts and ends.
    start: f64,
    end: f64,
    size: f64,
    /// Byte range of its text in [`Assembler::text`].
    text: (u32, u32),
}

/// Collects the glyphs of each page and turns them into text.
pub(crate) struct Assembler {
    pages: Vec<String>,
    lines: Vec<Vec<Glyph>>,
    /// The text of the current page's glyphs, one after the other.
    text: String,
    glyphs_on_page: usize,
    /// Baseline frame of the current line: unit direction and the baseline's
    /// offset across it.
    direction: (f64, f64),
    baseline: f64,
    stop: Stop,
    /// Why the decoder was told to stop: the [`Stop`] was reached, or the
    /// page drew more than [`MAX_GLYPHS_PER_PAGE`].
    pub(crate) stopped: Option<ExtractError>,
    /// Glyphs and drawing operations seen, for reading the clock.
    calls: u64,
}

impl Assembler {
    pub(crate) fn new(stop: Stop) -> Assembler {
        Assembler {
            pages: Vec::new(),
            lines: Vec::new(),
            text: String::new(),
            glyphs_on_page: 0,
            direction: (1.0, 0.0),
            baseline: 0.0,
            stop,
            stopped: None,
            calls: 0,
        }
    }

    /// Tells the decoder to stop (with an error it passes back up) once the
    /// [`Stop`] is reached: the flag at every call, the clock now and then.
    fn check(&mut self) -> Result<(), OutputError> {
        self.calls += 1;
        let reached = if self.stop.cancelled() {
            Some(ExtractError::Cancelled)
        } else if self.calls.is_multiple_of(CLOCK_EVERY) {
            self.stop.reached()
        } else {
            None
        };
        match reached {
            None => Ok(()),
            Some(reason) => {
                self.stopped = Some(reason);
                Err(OutputError::FormatError(std::fmt::Error))
            }
        }
    }

    pub(crate) fn into_pages(self) -> Vec<String> {
        self.pages
    }

    /// Adds one glyph drawn with text rendering matrix `trm` (font size not
    /// applied), advance `width` (in text space units of size 1) and `font_size`.
    fn add(&mut self, trm: &Transform, width: f64, font_size: f64, text: &str) {
        let (ux, uy) = {
            let len = trm.m11.hypot(trm.m12);
            if len > 0.0 {
                (trm.m11 / len, trm.m12 / len)
            } else {
                (1.0, 0.0)
            }
        };
        let scale_x = trm.m11.hypot(trm.m12);
        let size = (font_size * trm.m21.hypot(trm.m22))
            .abs()
            .max(f64::MIN_POSITIVE);
        let (x, y) = (trm.m31, trm.m32);
        let (dx, dy) = self.direction;
        let along = x * dx + y * dy;
        let across = y * dx - x * dy;
        let advance = width * font_size * scale_x;
        let from = self.text.len() as u32;
        self.text.push_str(text);
        let glyph = Glyph {
            start: along,
            end: along + advance,
            size,
            text: (from, self.text.len() as u32),
        };

        let same_direction = (ux * dx + uy * dy) > 0.99;
        let new_line = match self.lines.last().and_then(|l| l.last()) {
            None => true,
            Some(last) => {
                let limit = size.max(last.size);
                !same_direction
                    || (across - self.baseline).abs() > LINE_SHIFT * limit
                    || along < last.end - BACKWARDS * limit
            }
        };
        if new_line {
            self.direction = (ux, uy);
            let along = x * ux + y * uy;
            self.baseline = y * ux - x * uy;
            self.lines.push(vec![Glyph {
                start: along,
                end: along + advance,
                ..glyph
            }]);
        } else {
            self.lines.last_mut().expect("a line is open").push(glyph);
        }
    }
}

impl OutputDev for Assembler {
    fn begin_page(
        &mut self,
        _: u32,
        _: &MediaBox,
        _: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.lines.clear();
        self.text.clear();
        self.glyphs_on_page = 0;
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        let lines: Vec<String> = self
            .lines
            .drain(..)
            .map(|line| line_text(&line, &self.text))
            .collect();
        self.pages.push(tidy(&join_hyphenated(lines).join("\n")));
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        text: &str,
    ) -> Result<(), OutputError> {
        self.check()?;
        self.glyphs_on_page += 1;
        if self.glyphs_on_page > MAX_GLYPHS_PER_PAGE {
            self.stopped = Some(ExtractError::TooManyGlyphs);
            return Err(OutputError::FormatError(std::fmt::Error));
        }
        if font_size.is_finite() && width.is_finite() {
            self.add(trm, width, font_size, text);
        }
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.check()
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        self.check()
    }

    fn stroke(
        &mut self,
        _: &Transform,
        _: &ColorSpace,
        _: &[f64],
        _: &Path,
    ) -> Result<(), OutputError> {
        self.check()
    }

    fn fill(
        &mut self,
        _: &Transform,
        _: &ColorSpace,
        _: &[f64],
        _: &Path,
    ) -> Result<(), OutputError> {
        self.check()
    }
}

fn is_blank(text: &str) -> bool {
    text.chars().all(char::is_whitespace)
}

/// The text of one line: glyphs in drawing order, spaces from drawn space
/// glyphs and from gaps wider than the line's tightest gap plus [`WORD_GAP`].
fn line_text(line: &[Glyph], page_text: &str) -> String {
    let text = |g: &Glyph| &page_text[g.text.0 as usize..g.text.1 as usize];
    let tightest = line
        .windows(2)
        .filter(|w| !is_blank(text(&w[0])) && !is_blank(text(&w[1])))
        .map(|w| (w[1].start - w[0].end) / w[1].size.max(w[0].size))
        .fold(f64::INFINITY, f64::min)
        .max(0.0);
    let tightest = if tightest.is_finite() { tightest } else { 0.0 };
    let mut out = String::new();
    let mut previous: Option<&Glyph> = None;
    for glyph in line {
        let blank = is_blank(text(glyph));
        let ends_in_space = out.is_empty() || out.ends_with(' ');
        if blank {
            if !ends_in_space {
                out.push(' ');
            }
        } else {
            if let Some(previous) = previous {
                let size = glyph.size.max(previous.size);
                let gap = glyph.start - previous.end;
                if !ends_in_space && gap > (tightest + WORD_GAP) * size {
                    out.push(' ');
                }
            }
            out.push_str(text(glyph));
        }
        previous = Some(glyph);
    }
    logical_order(out.trim_end())
}

/// A line ending in a letter and a hyphen, followed by a line starting with a
/// lower-case letter, is one word broken by the typesetter ("ex-" + "pression"):
/// the two lines become one without the hyphen, as pdftotext writes them, so
/// that the word is found whole.
fn join_hyphenated(lines: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    for line in lines {
        let continues = line.chars().next().is_some_and(char::is_lowercase);
        match out.last_mut() {
            Some(previous) if continues && ends_in_broken_word(previous) => {
                previous.pop();
                previous.push_str(&line);
            }
            _ => out.push(line),
        }
    }
    out
}

fn ends_in_broken_word(line: &str) -> bool {
    let mut end = line.chars().rev();
    end.next() == Some('-') && end.next().is_some_and(char::is_alphabetic)
}

/// Glyphs are drawn in visual order, which for Hebrew and Arabic is right to
/// left on the page: a line whose strong letters are mostly right-to-left is
/// reversed into reading order, except for runs of left-to-right letters and
/// digits inside it, which keep their own order.
pub(crate) fn logical_order(line: &str) -> String {
    let rtl = |c: char| matches!(c as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF);
    let (r, l) = line.chars().fold((0, 0), |(r, l), c| {
        if rtl(c) {
            (r + 1, l)
        } else if c.is_alphabetic() {
            (r, l + 1)
        } else {
            (r, l)
        }
    });
    if r <= l {
        return line.to_string();
    }
    let reversed: Vec<char> = line.chars().rev().collect();
    let ltr = |c: char| c.is_alphanumeric() && !rtl(c);
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < reversed.len() {
        if ltr(reversed[i]) {
            // A left-to-right run: letters and digits, with the punctuation
            // between them ("12.50", "e-mail"), but not trailing punctuation.
            let mut j = i;
            let mut end = i;
            while j < reversed.len() && !rtl(reversed[j]) && reversed[j] != ' ' {
                if ltr(reversed[j]) {
                    end = j;
                }
                j += 1;
            }
            out.extend(reversed[i..=end].iter().rev());
            i = end + 1;
        } else {
            out.push(reversed[i]);
            i += 1;
        }
    }
    out
}

/// NFKC (ligatures such as U+FB01 and Kangxi radicals fold to what people
/// type) except for the halfwidth and fullwidth forms, trailing blanks off
/// every line, at most one empty line in a row, no blank lines at either end.
fn tidy(text: &str) -> String {
    let text = fold_compatibility(text);
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

/// NFKC, but the Halfwidth and Fullwidth Forms block (U+FF00–FFEF) stays as
/// written: Chinese and Japanese text is typed with the fullwidth comma,
/// colon and brackets ("，" is not ","), and pdftotext keeps them too.
fn fold_compatibility(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let kept = |c: char| ('\u{FF00}'..='\u{FFEF}').contains(&c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest.find(kept).unwrap_or(rest.len());
        out.extend(rest[..split].nfkc());
        let kept_end = rest[split..]
            .find(|c: char| !kept(c))
            .map_or(rest.len(), |n| split + n);
        out.push_str(&rest[split..kept_end]);
        rest = &rest[kept_end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_collapse_and_ligatures_are_spelled_out() {
        assert_eq!(tidy("  \na  \n\n\n b\n\n"), "a\n\n b");
        assert_eq!(
            tidy("speci\u{FB01}cation \u{FB00}\u{FB02}"),
            "specification fffl"
        );
    }

    #[test]
    fn fullwidth_punctuation_in_cjk_text_is_kept_as_written() {
        assert_eq!(
            tidy("你好，世界！（测试）：ＡＢ\u{FB01}"),
            "你好，世界！（测试）：ＡＢfi"
        );
        assert_eq!(tidy("\u{2F08}\u{3000}字"), "人 字");
    }

    #[test]
    fn a_word_broken_at_a_line_end_is_joined() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            join_hyphenated(lines(&["the given ex-", "pression from", "well-", "Known"])),
            lines(&["the given expression from", "well-", "Known"])
        );
    }

    #[test]
    fn a_right_to_left_line_is_put_in_reading_order_with_its_numbers_intact() {
        assert_eq!(logical_order("םולש"), "שלום");
        assert_eq!(logical_order("2024 תנשב םולש"), "שלום בשנת 2024");
        assert_eq!(logical_order("hello"), "hello");
    }
}
