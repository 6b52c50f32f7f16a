//! Chunking for knowledge-base indexing (`chunk_embed` strategy), as the
//! platform's `run_indexing` does it (see `docs/platform-contract.md`).
//!
//! The platform chunks the source's whole text — its page texts joined with
//! the extractor's separator, [`PAGE_SEPARATOR`] for PDFs — so a chunk may
//! cross a page break. Each chunk's pages are then found from the page
//! texts' character boundaries: `pages` lists every 1-based page the chunk's
//! span overlaps. A source without page texts gets chunks without pages.
//!
//! Chunks are at most `chunk_size` characters, cut at the last paragraph
//! break, else sentence end, else whitespace in the back half of the window,
//! and consecutive chunks share about `overlap` characters starting on a
//! word boundary. Offsets count Unicode scalar values (what the platform's
//! Python reports) into the joined text.

/// What the platform's PDF extractors join page texts with.
pub(crate) const PAGE_SEPARATOR: &str = "\n\n";

/// One chunk of a source's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub(crate) text: String,
    /// Character offset of the chunk's first character in the joined text.
    pub(crate) start_char: usize,
    /// Character offset one past the chunk's last character.
    pub(crate) end_char: usize,
    /// The 1-based pages the chunk spans; `None` when the source has no
    /// page texts.
    pub(crate) pages: Option<Vec<u32>>,
}

/// Chunk sizes, in characters. The platform's default `indexing_config` is
/// `chunk_size: 1000, overlap: 200`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkSpec {
    pub(crate) chunk_size: usize,
    pub(crate) overlap: usize,
}

impl Default for ChunkSpec {
    fn default() -> Self {
        ChunkSpec {
            chunk_size: 1000,
            overlap: 200,
        }
    }
}

impl ChunkSpec {
    /// The spec from a knowledge base's `indexing_config`, falling back to
    /// the defaults for missing or unusable values (overlap is kept below
    /// half the chunk size so chunking always advances).
    pub(crate) fn from_indexing_config(config: &serde_json::Value) -> ChunkSpec {
        let get = |key: &str| config.get(key).and_then(serde_json::Value::as_u64);
        let chunk_size = get("chunk_size")
            .map(|n| n.clamp(50, 100_000) as usize)
            .unwrap_or(ChunkSpec::default().chunk_size);
        let overlap = get("overlap")
            .or_else(|| get("chunk_overlap"))
            .map(|n| n as usize)
            .unwrap_or(ChunkSpec::default().overlap)
            .min(chunk_size / 2);
        ChunkSpec {
            chunk_size,
            overlap,
        }
    }
}

/// Chunks of a source whose text is its page texts joined with
/// [`PAGE_SEPARATOR`], each with the pages it spans.
pub(crate) fn chunk_pages(pages: &[String], spec: ChunkSpec) -> Vec<Chunk> {
    chunk_document(&pages.join(PAGE_SEPARATOR), pages, spec)
}

/// Chunks of `content`. With page texts (which joined with
/// [`PAGE_SEPARATOR`] make `content`), each chunk lists the pages it spans;
/// without, no chunk has pages.
pub(crate) fn chunk_document(content: &str, page_texts: &[String], spec: ChunkSpec) -> Vec<Chunk> {
    let boundaries = (!page_texts.is_empty()).then(|| page_boundaries(page_texts));
    chunk_text(content, spec)
        .into_iter()
        .map(|(start, end, text)| Chunk {
            pages: boundaries.as_deref().map(|b| pages_spanned(start, end, b)),
            text,
            start_char: start,
            end_char: end,
        })
        .collect()
}

/// Where each page starts in the joined text, and (last) the text's length:
/// `len(page_texts) + 1` offsets, as the platform's `compute_page_boundaries`.
fn page_boundaries(page_texts: &[String]) -> Vec<usize> {
    let separator = PAGE_SEPARATOR.chars().count();
    let mut boundaries = vec![0];
    for (i, text) in page_texts.iter().enumerate() {
        let mut next = boundaries[i] + text.chars().count();
        if i + 1 < page_texts.len() {
            next += separator;
        }
        boundaries.push(next);
    }
    boundaries
}

/// The 1-based pages whose range overlaps `start..end` (the platform's
/// `map_chunk_to_pages`).
fn pages_spanned(start: usize, end: usize, boundaries: &[usize]) -> Vec<u32> {
    boundaries
        .windows(2)
        .enumerate()
        .filter(|(_, w)| start < w[1] && end > w[0])
        .map(|(i, _)| u32::try_from(i + 1).unwrap_or(u32::MAX))
        .collect()
}

/// `(start, end, text)` of each chunk of `text`.
fn chunk_text(text: &str, spec: ChunkSpec) -> Vec<(usize, usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    let size = spec.chunk_size.max(1);
    let mut chunks = Vec::new();
    let mut start = 0;
    loop {
        while start < n && chars[start].is_whitespace() {
            start += 1;
        }
        if start >= n {
            break;
        }
        let mut end = (start + size).min(n);
        if end < n {
            end = break_point(&chars, start + size / 2, end);
        }
        let mut trimmed_end = end;
        while trimmed_end > start && chars[trimmed_end - 1].is_whitespace() {
            trimmed_end -= 1;
        }
        chunks.push((
            start,
            trimmed_end,
            chars[start..trimmed_end].iter().collect(),
        ));
        if end >= n {
            break;
        }
        start = overlap_start(&chars, start, end, spec.overlap);
    }
    chunks
}

/// Where to end a chunk whose window is `..limit`: just after the last
/// paragraph break, sentence end or whitespace at or after `earliest`, or
/// `limit` itself inside one long word.
fn break_point(chars: &[char], earliest: usize, limit: usize) -> usize {
    let window = earliest..limit;
    let after =
        |pred: &dyn Fn(usize) -> bool| window.clone().rev().find(|&i| pred(i)).map(|i| i + 1);
    after(&|i| chars[i] == '\n' && i > 0 && chars[i - 1] == '\n')
        .or_else(|| {
            after(&|i| {
                chars[i].is_whitespace()
                    && i > 0
                    && matches!(chars[i - 1], '.' | '!' | '?' | ':' | ';')
            })
        })
        .or_else(|| after(&|i| chars[i].is_whitespace()))
        .unwrap_or(limit)
}

/// The start of the next chunk: about `overlap` characters before `end`,
/// moved forward to the start of a word, and always past `start`.
fn overlap_start(chars: &[char], start: usize, end: usize, overlap: usize) -> usize {
    let mut next = end.saturating_sub(overlap).max(start + 1);
    if next < end && next > 0 && !chars[next - 1].is_whitespace() {
        while next < end && !chars[next].is_whitespace() {
            next += 1;
        }
    }
    next
}

/// A rough token count (about four characters a token), for `ai.chunks.tokens`.
pub(crate) fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(chunk_size: usize, overlap: usize) -> ChunkSpec {
        ChunkSpec {
            chunk_size,
            overlap,
        }
    }

    fn slice(text: &str, c: &Chunk) -> String {
        text.chars()
            .skip(c.start_char)
            .take(c.end_char - c.start_char)
            .collect()
    }

    #[test]
    fn a_chunk_crossing_a_page_break_spans_both_pages() {
        let pages = vec![
            "Alpha beta gamma delta".to_string(),
            "epsilon zeta eta theta".to_string(),
        ];
        let chunks = chunk_pages(&pages, spec(1000, 200));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].pages, Some(vec![1, 2]));
        assert_eq!(
            chunks[0].text,
            "Alpha beta gamma delta\n\nepsilon zeta eta theta"
        );
    }

    #[test]
    fn offsets_point_into_the_joined_text_and_pages_follow_them() {
        let pages = vec![
            "Alpha beta gamma. Delta epsilon zeta. Eta theta iota.".to_string(),
            String::new(),
            "  Kappa lambda mu nu xi omicron pi rho sigma tau upsilon.  ".to_string(),
        ];
        let joined = pages.join(PAGE_SEPARATOR);
        let chunks = chunk_pages(&pages, spec(24, 8));
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert_eq!(slice(&joined, c), c.text);
            assert!(c.text.chars().count() <= 24);
            assert_eq!(c.text, c.text.trim());
        }
        assert_eq!(chunks[0].text, "Alpha beta gamma.");
        assert_eq!(chunks[0].pages, Some(vec![1]));
        assert_eq!(chunks.last().unwrap().pages, Some(vec![3]));
        assert_eq!(page_boundaries(&pages), vec![0, 55, 57, 116]);
    }

    #[test]
    fn without_page_texts_no_chunk_has_pages() {
        let chunks = chunk_document("Some text with no pages.", &[], spec(1000, 200));
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].pages, None);
    }

    #[test]
    fn consecutive_chunks_overlap_on_word_boundaries() {
        let words: Vec<String> = (0..300).map(|i| format!("word{i}")).collect();
        let page = words.join(" ");
        let chunks = chunk_pages(std::slice::from_ref(&page), spec(100, 30));
        for pair in chunks.windows(2) {
            assert!(pair[1].start_char < pair[0].end_char, "overlap: {pair:?}");
            assert!(pair[1].start_char > pair[0].start_char);
            assert!(pair[1].text.starts_with("word"), "{:?}", pair[1].text);
        }
        let last = chunks.last().unwrap();
        assert!(last.text.ends_with("word299"));
        let covered: std::collections::BTreeSet<&str> =
            chunks.iter().flat_map(|c| c.text.split(' ')).collect();
        assert_eq!(covered.len(), 300);
    }

    #[test]
    fn one_long_word_is_cut_and_still_advances() {
        let page = "x".repeat(250);
        let chunks = chunk_pages(&[page], spec(100, 40));
        assert_eq!(chunks[0].text.len(), 100);
        assert_eq!(chunks.last().unwrap().end_char, 250);
    }

    #[test]
    fn unicode_offsets_are_in_characters() {
        let page = "Ünïcödé wörds hère. Ànd möre wörds thère.".to_string();
        let chunks = chunk_pages(std::slice::from_ref(&page), spec(22, 5));
        for c in &chunks {
            assert_eq!(slice(&page, c), c.text);
        }
    }

    /// The test documents' pages (`quire_testkit::fixtures::full_pages`) are
    /// padded so that the platform's chunking never joins two of them.
    #[test]
    fn a_chunk_holding_a_pages_own_text_holds_that_page_only() {
        use quire_testkit::fixtures::{document_pdf, full_pages};
        let texts = [
            "The rent is due on the first day of each month.",
            "Pets are allowed only with the landlord's written consent.",
            "The deposit is returned within thirty days.",
        ];
        let pages = full_pages(&texts);
        assert_ne!(
            pages[0], pages[1],
            "every page has its own placeholder prose"
        );
        let chunks = chunk_pages(&pages, ChunkSpec::default());
        for (i, text) in texts.iter().enumerate() {
            let holding: Vec<_> = chunks.iter().filter(|c| c.text.contains(text)).collect();
            assert!(!holding.is_empty(), "page {} text is in a chunk", i + 1);
            for chunk in holding {
                assert_eq!(chunk.pages, Some(vec![i as u32 + 1]), "{chunk:?}");
            }
        }
        // The pages still come back from the PDF exactly, one entry a page.
        let extracted = crate::ai::extract::extract_pdf(&document_pdf(&texts)).unwrap();
        assert_eq!(extracted.len(), 3);
        assert!(extracted[1].contains(texts[1]), "{:?}", extracted[1]);
    }

    #[test]
    fn spec_from_indexing_config() {
        let config = serde_json::json!({"strategy":"chunk_embed","chunk_size":400,"overlap":300});
        assert_eq!(ChunkSpec::from_indexing_config(&config), spec(400, 200));
        assert_eq!(
            ChunkSpec::from_indexing_config(&serde_json::json!({})),
            ChunkSpec::default()
        );
    }
}
