//! Word recall and precision of extracted text against a ground truth.
//!
//! Words are `\w+` runs, lower-cased after NFKC, counted as a multiset. Han,
//! kana and Hangul have no spaces between words, so each such character counts
//! as one word. Page accuracy is the share of matched words that were found on
//! the page the truth puts them on.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

/// The words of `text` as a multiset (word → count).
pub fn words(text: &str) -> HashMap<String, usize> {
    let text: String = text.nfkc().collect::<String>().to_lowercase();
    let mut out: HashMap<String, usize> = HashMap::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut HashMap<String, usize>| {
        if !word.is_empty() {
            *out.entry(std::mem::take(word)).or_default() += 1;
        }
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush(&mut word, &mut out);
            *out.entry(c.to_string()).or_default() += 1;
        } else if is_word_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
        }
    }
    flush(&mut word, &mut out);
    out
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || is_mark(c)
}

/// Combining marks (Arabic harakat, Hebrew points, Devanagari signs) belong to their word.
fn is_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x0591..=0x05C7 | 0x0610..=0x061A | 0x064B..=0x065F | 0x0670
        | 0x06D6..=0x06ED | 0x0900..=0x0903 | 0x093A..=0x094F)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF
        | 0xAC00..=0xD7AF | 0x20000..=0x2FA1F)
}

fn size(bag: &HashMap<String, usize>) -> usize {
    bag.values().sum()
}

fn common(a: &HashMap<String, usize>, b: &HashMap<String, usize>) -> usize {
    a.iter()
        .map(|(w, n)| (*n).min(b.get(w).copied().unwrap_or(0)))
        .sum()
}

/// How one document's extracted pages compare with its true pages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Words in the truth.
    pub truth_words: usize,
    /// Share of the truth's words that were extracted (anywhere in the document).
    pub recall: f64,
    /// Share of the extracted words that are in the truth.
    pub precision: f64,
    /// Share of the matched words that were found on their own page.
    pub page_accuracy: f64,
}

/// Scores `got` (one string per page) against `truth` (one string per page).
/// An empty truth scores 1.0 if nothing was extracted.
pub fn score(got: &[String], truth: &[String]) -> Score {
    let got_pages: Vec<_> = got.iter().map(|p| words(p)).collect();
    let truth_pages: Vec<_> = truth.iter().map(|p| words(p)).collect();
    let merge = |pages: &[HashMap<String, usize>]| {
        let mut all: HashMap<String, usize> = HashMap::new();
        for page in pages {
            for (w, n) in page {
                *all.entry(w.clone()).or_default() += n;
            }
        }
        all
    };
    let (got_all, truth_all) = (merge(&got_pages), merge(&truth_pages));
    let matched = common(&got_all, &truth_all);
    let on_page: usize = truth_pages
        .iter()
        .enumerate()
        .map(|(i, t)| got_pages.get(i).map_or(0, |g| common(g, t)))
        .sum();
    let ratio = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
    Score {
        truth_words: size(&truth_all),
        recall: ratio(matched, size(&truth_all)),
        precision: if size(&got_all) == 0 && size(&truth_all) == 0 {
            1.0
        } else {
            ratio(matched, size(&got_all))
        },
        page_accuracy: ratio(on_page, matched),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ligatures_and_case_fold_to_the_same_words() {
        let s = score(
            &pages(&["The \u{FB01}nal O\u{FB03}ce"]),
            &pages(&["the final office"]),
        );
        assert_eq!((s.recall, s.precision), (1.0, 1.0));
    }

    #[test]
    fn a_missing_space_costs_recall_and_precision() {
        let s = score(&pages(&["thefinal office"]), &pages(&["the final office"]));
        assert!((s.recall - 1.0 / 3.0).abs() < 1e-9, "{s:?}");
        assert!((s.precision - 0.5).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn cjk_is_scored_per_character_and_kangxi_radicals_fold() {
        // U+2F47 KANGXI RADICAL SUN folds to 日 under NFKC.
        let s = score(&pages(&["\u{2F47}本語"]), &pages(&["日 本 語"]));
        assert_eq!((s.truth_words, s.recall), (3, 1.0));
    }

    #[test]
    fn text_on_the_wrong_page_lowers_page_accuracy_only() {
        let s = score(&pages(&["alpha beta", ""]), &pages(&["alpha", "beta"]));
        assert_eq!((s.recall, s.page_accuracy), (1.0, 0.5));
    }
}
