//! Plain-text handling for the offline model: sentences, index terms (with
//! stop words dropped and a light suffix stemmer), and the `name = value`
//! pairs an instruction may carry.
//!
//! Everything here is pure and deterministic: the same input always gives the
//! same output, so the model built on it is reproducible in tests.

/// Words that carry no topic: articles, pronouns, auxiliaries, question words
/// and the fillers people put around a question ("tell me about …", "what do
/// my documents say …"). Matched after lower-casing, before stemming.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "describe",
    "did",
    "do",
    "doc",
    "docs",
    "document",
    "documents",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "explain",
    "few",
    "file",
    "files",
    "for",
    "from",
    "further",
    "give",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "know",
    "let",
    "like",
    "me",
    "mention",
    "mentioned",
    "mentions",
    "more",
    "most",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "pdf",
    "pdfs",
    "please",
    "same",
    "say",
    "says",
    "she",
    "should",
    "so",
    "some",
    "such",
    "tell",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Abbreviations after which a full stop does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "approx", "cf", "dr", "e.g", "eg", "etc", "fig", "i.e", "ie", "inc", "jr", "ltd", "mr", "mrs",
    "ms", "no", "p", "pp", "prof", "sr", "st", "vol", "vs",
];

/// True for a word that carries no topic (articles, pronouns, question words, …).
pub(crate) fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// The index terms of `text`: lower-cased alphanumeric words, stop words and
/// one-letter words dropped, each reduced by [`stem`]. Chinese, Japanese and
/// Korean write no spaces between words, so a run of those scripts gives its
/// overlapping pairs of characters instead (one character alone when the
/// run is one character long). Order is kept and repeats are not removed.
pub(crate) fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let mut rest = word;
        while !rest.is_empty() {
            let cjk = rest.starts_with(is_cjk);
            let end = rest.find(|c: char| is_cjk(c) != cjk).unwrap_or(rest.len());
            let (run, tail) = rest.split_at(end);
            rest = tail;
            if cjk {
                let chars: Vec<char> = run.chars().collect();
                if chars.len() == 1 {
                    out.push(run.to_owned());
                }
                out.extend(chars.windows(2).map(|pair| pair.iter().collect::<String>()));
            } else {
                out.extend(words(run).iter().map(|w| stem(w)));
            }
        }
    }
    out
}

/// A CJK character or full-width punctuation: text whose lines join
/// without a space.
fn is_cjk_text(c: char) -> bool {
    is_cjk(c) || matches!(c, '\u{3000}'..='\u{303F}' | '\u{FF01}'..='\u{FF65}')
}

/// Han ideographs, kana and Hangul: scripts written without spaces.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}'      // Hiragana, Katakana
        | '\u{3400}'..='\u{4DBF}'    // CJK Extension A
        | '\u{4E00}'..='\u{9FFF}'    // CJK Unified Ideographs
        | '\u{AC00}'..='\u{D7AF}'    // Hangul syllables
        | '\u{F900}'..='\u{FAFF}'    // CJK Compatibility Ideographs
        | '\u{FF66}'..='\u{FF9F}'    // half-width Katakana
        | '\u{20000}'..='\u{2FA1F}') // Extensions B–F, Compatibility Supplement
}

/// The topic words of `text`: like [`terms`] but not stemmed, for handing
/// to PostgreSQL's own English stemmer.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() > 1 || w.chars().all(|c| c.is_ascii_digit()))
        .filter(|w| !is_stop_word(w))
        .collect()
}

/// A light English suffix stemmer, enough for "warranties"/"warranty",
/// "charging"/"charged"/"charge" and "covers"/"covered" to meet. Words of
/// three letters or fewer and words with digits are left alone.
pub(crate) fn stem(word: &str) -> String {
    let w = word.to_lowercase();
    if w.chars().count() <= 3 || w.chars().any(|c| c.is_ascii_digit()) || !w.is_ascii() {
        return w;
    }
    let mut s = w.clone();
    if let Some(base) = s.strip_suffix("ies").filter(|b| b.len() >= 2) {
        s = format!("{base}y");
    } else if let Some(base) = s.strip_suffix("sses") {
        s = format!("{base}ss");
    } else if let Some(base) = s.strip_suffix("ing").filter(|b| b.len() >= 3) {
        s = undouble(base);
    } else if let Some(base) = s.strip_suffix("ed").filter(|b| b.len() >= 3) {
        s = undouble(base);
    } else if let Some(base) = s.strip_suffix("ly").filter(|b| b.len() >= 3) {
        s = base.to_owned();
    } else if let Some(base) = s
        .strip_suffix("es")
        .filter(|b| b.ends_with(['s', 'x', 'z']) || b.ends_with("ch") || b.ends_with("sh"))
    {
        s = base.to_owned();
    } else if s.ends_with('s') && !s.ends_with("ss") && !s.ends_with("us") && !s.ends_with("is") {
        s.pop();
    }
    if s.len() > 4 && s.ends_with('e') {
        s.pop();
    }
    s
}

/// "runn" → "run", "stopp" → "stop"; "fall" and "miss" keep their pair.
fn undouble(base: &str) -> String {
    let bytes = base.as_bytes();
    let n = bytes.len();
    if n >= 2
        && bytes[n - 1] == bytes[n - 2]
        && !matches!(bytes[n - 1], b'l' | b's' | b'z')
        && !matches!(bytes[n - 1], b'a' | b'e' | b'i' | b'o' | b'u')
    {
        base[..n - 1].to_owned()
    } else {
        base.to_owned()
    }
}

/// Splits `text` into sentences.
///
/// Text extracted from PDFs breaks lines mid-sentence, so single line breaks
/// are spaces (a hyphen at a line end joins the word); a blank line always
/// ends a sentence. A `.`, `!` or `?` ends one when whitespace follows and
/// the next word starts with a capital, a digit, a quote or a bracket —
/// except after a known abbreviation or a single letter ("e.g.", "J. Smith").
/// Each sentence is trimmed, inner whitespace collapsed; empty ones are dropped.
pub(crate) fn sentences(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = Vec::new();
    for paragraph in paragraphs(&text) {
        split_paragraph(&paragraph, &mut out);
    }
    out
}

fn paragraphs(text: &str) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if current.is_empty() {
            current.push_str(line);
        } else if current.ends_with('-')
            && !current.ends_with(" -")
            && line.starts_with(|c: char| c.is_lowercase())
        {
            current.pop();
            current.push_str(line);
        } else if current.ends_with(is_cjk_text) && line.starts_with(is_cjk_text) {
            // Chinese and Japanese lines break between characters, not words.
            current.push_str(line);
        } else {
            current.push(' ');
            current.push_str(line);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

fn split_paragraph(paragraph: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = paragraph.chars().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i], '。' | '！' | '？') {
            // Chinese and Japanese end a sentence with a full-width stop,
            // with no space after it.
            let mut end = i + 1;
            while end < chars.len() && matches!(chars[end], '」' | '』' | '）' | '”' | '’') {
                end += 1;
            }
            push_sentence(&chars[start..end], out);
            start = end;
            i = end;
            continue;
        }
        if matches!(chars[i], '.' | '!' | '?') {
            // Include closing quotes and brackets in the sentence.
            let mut end = i + 1;
            while end < chars.len() && matches!(chars[end], '"' | '\'' | ')' | ']' | '”' | '’')
            {
                end += 1;
            }
            let followed_by_space = end < chars.len() && chars[end].is_whitespace();
            let next_word = chars[end..].iter().find(|c| !c.is_whitespace());
            let starts_new = next_word.is_some_and(|c| {
                c.is_uppercase() || c.is_ascii_digit() || matches!(c, '"' | '\'' | '(' | '[' | '“')
            });
            if end == chars.len()
                || (followed_by_space && starts_new && !abbreviation_before(&chars, start, i))
            {
                push_sentence(&chars[start..end], out);
                start = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    if start < chars.len() {
        push_sentence(&chars[start..], out);
    }
}

/// True when the word just before the full stop at `dot` is an abbreviation
/// or a single letter.
fn abbreviation_before(chars: &[char], start: usize, dot: usize) -> bool {
    if chars[dot] != '.' {
        return false;
    }
    let mut j = dot;
    while j > start && !chars[j - 1].is_whitespace() {
        j -= 1;
    }
    let word: String = chars[j..dot].iter().collect::<String>().to_lowercase();
    let word = word.trim_start_matches(['(', '"', '\'', '“']);
    word.chars().count() == 1 && word.chars().all(char::is_alphabetic)
        || ABBREVIATIONS.contains(&word)
}

fn push_sentence(chars: &[char], out: &mut Vec<String>) {
    let s: String = chars.iter().collect();
    let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().any(char::is_alphanumeric) {
        out.push(collapsed);
    }
}

/// The `name = value` pairs in `text`, in order of appearance.
///
/// `name` is an identifier (`[A-Za-z_][A-Za-z0-9_]*`); `value` is a quoted
/// string (`"…"`, `'…'` or `` `…` ``) or a run of non-space characters with
/// trailing sentence punctuation removed. `==`, `!=`, `<=`, `>=` and `=>` are
/// not assignments.
pub(crate) fn assignments(text: &str) -> Vec<(String, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        if c != '=' {
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        if matches!(prev, Some('=' | '!' | '<' | '>')) || matches!(next, Some('=' | '>')) {
            continue;
        }
        let Some(name) = name_before(&chars, i) else {
            continue;
        };
        let Some(value) = value_after(&chars, i + 1) else {
            continue;
        };
        pairs.push((name, value));
    }
    pairs
}

fn name_before(chars: &[char], eq: usize) -> Option<String> {
    let mut end = eq;
    while end > 0 && matches!(chars[end - 1], ' ' | '\t') {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && (chars[start - 1].is_ascii_alphanumeric() || chars[start - 1] == '_') {
        start -= 1;
    }
    let name: String = chars[start..end].iter().collect();
    let first = name.chars().next()?;
    (first.is_ascii_alphabetic() || first == '_').then_some(name)
}

fn value_after(chars: &[char], from: usize) -> Option<String> {
    let mut i = from;
    while i < chars.len() && matches!(chars[i], ' ' | '\t') {
        i += 1;
    }
    let first = *chars.get(i)?;
    let value: String = if matches!(first, '"' | '\'' | '`') {
        let close = chars[i + 1..].iter().position(|&c| c == first)?;
        chars[i + 1..i + 1 + close].iter().collect()
    } else {
        let len = chars[i..].iter().take_while(|c| !c.is_whitespace()).count();
        let raw: String = chars[i..i + len].iter().collect();
        raw.trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '}', '"', '\''])
            .to_owned()
    };
    (!value.is_empty()).then_some(value)
}

/// True when `name` occurs in `text` as a whole word (case-insensitive):
/// not preceded or followed by a letter, digit or underscore.
pub(crate) fn mentions(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let hay = text.to_lowercase();
    let needle = name.to_lowercase();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    hay.match_indices(&needle).any(|(at, _)| {
        let before = hay[..at].chars().next_back();
        let after = hay[at + needle.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn chinese_and_japanese_have_terms_and_sentences() {
        use super::{sentences, terms};
        assert_eq!(terms("保修期"), ["保修", "修期"]);
        assert_eq!(terms("猫"), ["猫"]);
        assert_eq!(terms("X200的保修covers"), ["x200", "的保", "保修", "cover"]);
        assert_eq!(
            sentences("电机保修五年。玻璃杯保修一年！\n本机は静かです。"),
            ["电机保修五年。", "玻璃杯保修一年！", "本机は静かです。"]
        );
        // A line break between two characters joins them without a space.
        assert_eq!(
            sentences("孩子们走过石\n桥。Then\nEnglish."),
            ["孩子们走过石桥。", "Then English."]
        );
    }

    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        let mut sorted = STOP_WORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOP_WORDS);
    }

    #[test]
    fn stemming_joins_common_inflections() {
        assert_eq!(stem("warranties"), stem("warranty"));
        assert_eq!(stem("charging"), stem("charge"));
        assert_eq!(stem("charged"), stem("charge"));
        assert_eq!(stem("covers"), stem("covered"));
        assert_eq!(stem("running"), "run");
        assert_eq!(stem("batteries"), stem("battery"));
        assert_eq!(stem("boxes"), "box");
        assert_eq!(stem("status"), "status");
        assert_eq!(stem("x200"), "x200");
    }

    #[test]
    fn terms_drop_stop_words_and_punctuation() {
        assert_eq!(
            terms("What does the warranty cover, please?"),
            vec!["warranty".to_owned(), "cover".to_owned()]
        );
        assert_eq!(terms("Tell me about my documents"), Vec::<String>::new());
        assert_eq!(terms("Model X-200 in 2024"), vec!["model", "200", "2024"]);
    }

    #[test]
    fn sentences_split_on_terminators_but_not_abbreviations() {
        let text = "The pump runs at 3.5 bar. It was designed by Dr. Smith, e.g. for gardens! \
                    Does it work? \"Yes.\" (Mostly.)";
        assert_eq!(
            sentences(text),
            vec![
                "The pump runs at 3.5 bar.",
                "It was designed by Dr. Smith, e.g. for gardens!",
                "Does it work?",
                "\"Yes.\"",
                "(Mostly.)",
            ]
        );
    }

    #[test]
    fn sentences_join_pdf_line_breaks_and_split_on_blank_lines() {
        let text = "The warranty lasts two\nyears from the date of pur-\nchase\n\nReturns are free";
        assert_eq!(
            sentences(text),
            vec![
                "The warranty lasts two years from the date of purchase",
                "Returns are free"
            ]
        );
    }

    #[test]
    fn sentences_of_empty_or_symbol_text_are_none() {
        assert!(sentences("").is_empty());
        assert!(sentences("  \n\n -- ... \n").is_empty());
    }

    #[test]
    fn assignments_find_quoted_and_bare_values() {
        let text = "Call search_my_documents with session_token = abc123. Also mode='fast', \
                    x == y, a => b, note = \"two words\"";
        assert_eq!(
            assignments(text),
            vec![
                ("session_token".to_owned(), "abc123".to_owned()),
                ("mode".to_owned(), "fast".to_owned()),
                ("note".to_owned(), "two words".to_owned()),
            ]
        );
    }

    #[test]
    fn assignments_keep_dots_inside_tokens() {
        assert_eq!(
            assignments("token=eyJ.abc.def; other"),
            vec![("token".to_owned(), "eyJ.abc.def".to_owned())]
        );
    }

    #[test]
    fn mentions_match_whole_words_only() {
        assert!(mentions(
            "Use search_my_documents to look.",
            "search_my_documents"
        ));
        assert!(mentions("USE Search_My_Documents", "search_my_documents"));
        assert!(!mentions(
            "Use search_my_documents_v2",
            "search_my_documents"
        ));
        assert!(!mentions("research", "search"));
    }
}
