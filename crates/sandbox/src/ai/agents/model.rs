//! The agent's offline model: deterministic and extractive.
//!
//! It stands in for the LLM behind a Powabase agent. Given the user's message and the context the run was given, it
//!
//! * decides which assigned custom HTTP tools to call — those whose name the
//!   instructions (system prompt and context) mention — with `query` set to
//!   the message and any other string argument of the tool's schema taken
//!   from a `name = value` pair in the instructions ([`plan_tool_calls`]);
//! * answers by quoting the sentences of the context (and of tool results)
//!   that share the most index terms with the message, weighted by how rare
//!   each term is, with a `[n]` marker after every sentence quoted from
//!   context item `n` when citations are enabled, and the matching citation
//!   objects ([`answer`]);
//! * answers a request for a summary ("summarise …", "an overview of …",
//!   "the key points …") with the leading sentences of the best passage of
//!   each document in the context, cited, leaving out headings and the
//!   fragments a chunk boundary cuts ([`summary`]); a request that names a
//!   document's title keeps to that document;
//! * says plainly when nothing in the context is relevant ([`NOTHING_FOUND`]).
//!
//! Everything is a pure function of its input: same question, same context,
//! same answer, byte for byte.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::text;

/// The whole answer when no sentence of the context is relevant.
pub const NOTHING_FOUND: &str = "I couldn't find anything about that in your documents.";

/// At most this many sentences are quoted.
const MAX_SENTENCES: usize = 3;
/// A sentence is relevant when its score (the share of the question's term
/// weight it covers) reaches this …
const MIN_SCORE: f64 = 0.25;
/// … and this fraction of the best sentence's score.
const RELATIVE_CUTOFF: f64 = 0.6;
/// Length of a citation's `text_excerpt`/`text`, in characters, as the
/// platform's `TEXT_EXCERPT_MAX_LEN`.
const EXCERPT_CHARS: usize = 300;
/// Keys whose string values are the text of a JSON tool result.
const TEXT_KEYS: &[&str] = &[
    "text", "content", "snippet", "answer", "body", "summary", "result",
];

/// A piece of context the model may quote and cite: a by-value item
/// (`text`, `meta`) or a by-reference item resolved from `ai.chunks`
/// (which also has `id`, `source_id`, `source_name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ContextItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    pub(crate) text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source_id: Option<String>,
    #[serde(default)]
    pub(crate) meta: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source_name: Option<String>,
}

impl ContextItem {
    /// A by-value item: only `text` and `meta` are kept, as on the platform.
    pub(crate) fn by_value(text: impl Into<String>, meta: Value) -> Self {
        ContextItem {
            id: None,
            text: text.into(),
            source_id: None,
            meta: if meta.is_null() {
                Value::Object(Map::new())
            } else {
                meta
            },
            source_name: None,
        }
    }

    fn meta_str(&self, key: &str) -> Option<String> {
        match self.meta.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// A citation in a run's `complete` event (and `citation_candidates`): the
/// platform's fields (`key`, `item_id`, `source_id`, `source_name`,
/// `text_excerpt`, `meta`) plus those of Studio's citation type (`chunk_id`,
/// `text`, `score`, `page`). `key` is the marker's number as a string, as the
/// platform's citation map keys it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Citation {
    pub(crate) key: String,
    pub(crate) item_id: Option<String>,
    pub(crate) source_id: Option<String>,
    pub(crate) source_name: String,
    pub(crate) chunk_id: Option<String>,
    pub(crate) text: String,
    pub(crate) text_excerpt: String,
    pub(crate) score: f64,
    pub(crate) page: Option<Value>,
    pub(crate) meta: Value,
}

impl Citation {
    /// The citation of context item `index` (0-based; its key is `index + 1`).
    pub(crate) fn of_item(index: usize, item: &ContextItem, score: f64) -> Self {
        let excerpt: String = item.text.chars().take(EXCERPT_CHARS).collect();
        Citation {
            key: (index + 1).to_string(),
            item_id: item.id.clone(),
            source_id: item
                .source_id
                .clone()
                .or_else(|| item.meta_str("source_id")),
            source_name: item
                .source_name
                .clone()
                .filter(|s| !s.is_empty())
                .or_else(|| item.meta_str("source_name"))
                .or_else(|| item.meta_str("title"))
                .unwrap_or_default(),
            chunk_id: item.meta_str("chunk_id").or_else(|| item.id.clone()),
            text: excerpt.clone(),
            text_excerpt: excerpt,
            score: (score * 10_000.0).round() / 10_000.0,
            page: item.meta.get("page").filter(|p| !p.is_null()).cloned(),
            meta: item.meta.clone(),
        }
    }
}

/// A custom tool as the model sees it: its name and its input schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolSpec {
    pub(crate) name: String,
    pub(crate) input_schema: Value,
}

impl ToolSpec {
    /// Names of the schema's properties that take a string (or say no type).
    fn string_properties(&self) -> Vec<&str> {
        self.properties()
            .map(|props| {
                props
                    .iter()
                    .filter(|(_, spec)| {
                        matches!(spec.get("type"), None | Some(Value::Null))
                            || spec.get("type").and_then(Value::as_str) == Some("string")
                    })
                    .map(|(name, _)| name.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn properties(&self) -> Option<&Map<String, Value>> {
        self.input_schema
            .get("properties")
            .and_then(Value::as_object)
    }
}

/// One tool call the model decided to make.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedCall {
    pub(crate) tool_name: String,
    pub(crate) arguments: Map<String, Value>,
}

/// Which tools to call, in the order given, and with which arguments.
///
/// A tool is called when `instructions` (the agent's system prompt and the
/// run's context) name it as a whole word. Its arguments: `query` = `message`
/// when the schema declares `query` or declares no properties at all; every
/// other string property for which the instructions hold a `name = value`
/// pair gets the first such value.
pub(crate) fn plan_tool_calls(
    message: &str,
    instructions: &str,
    tools: &[ToolSpec],
) -> Vec<PlannedCall> {
    let pairs = text::assignments(instructions);
    tools
        .iter()
        .filter(|tool| text::mentions(instructions, &tool.name))
        .map(|tool| {
            let mut arguments = Map::new();
            let takes_query = tool
                .properties()
                .is_none_or(|p| p.is_empty() || p.contains_key("query"));
            if takes_query {
                arguments.insert("query".to_owned(), Value::String(message.to_owned()));
            }
            for name in tool.string_properties() {
                if name == "query" {
                    continue;
                }
                if let Some((_, value)) = pairs.iter().find(|(n, _)| n == name) {
                    arguments.insert(name.to_owned(), Value::String(value.clone()));
                }
            }
            PlannedCall {
                tool_name: tool.name.clone(),
                arguments,
            }
        })
        .collect()
}

/// What the model may quote from.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// Context items; sentences from item `i` are cited as `[i + 1]`.
    pub(crate) items: &'a [ContextItem],
    /// Raw context text (`context_override`); quoted, never cited.
    pub(crate) text: Option<&'a str>,
    /// Results of the tool calls of this run; quoted, never cited. Results
    /// that start with `Error` are not quoted.
    pub(crate) tool_results: &'a [String],
    /// Assigned tools: sentences that name one, or that set one of their
    /// arguments (`session_token = …`), are instructions, not content.
    pub(crate) tools: &'a [ToolSpec],
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) content: String,
    /// One per distinct `[n]` marker in `content`, ordered by key.
    pub(crate) citations: Vec<Citation>,
    /// False when nothing relevant was found and `content` is [`NOTHING_FOUND`].
    pub(crate) found: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    Item(usize),
    Text,
    Tool(usize),
}

struct Candidate {
    origin: Origin,
    position: usize,
    sentence: String,
    terms: HashSet<String>,
}

/// Answers `message` from `context`; `cite` adds `[n]` markers and citations
/// (the run's `citations_enabled`).
pub(crate) fn answer(message: &str, context: Context<'_>, cite: bool) -> Answer {
    if is_summary_request(message)
        && let Some(summary) = summary(message, context, cite)
    {
        return summary;
    }
    let nothing = || Answer {
        content: NOTHING_FOUND.to_owned(),
        citations: Vec::new(),
        found: false,
    };
    let query: BTreeSet<String> = text::terms(message).into_iter().collect();
    if query.is_empty() {
        return nothing();
    }
    let candidates = candidates(context);
    if candidates.is_empty() {
        return nothing();
    }

    let n = candidates.len() as f64;
    let idf: HashMap<&str, f64> = query
        .iter()
        .map(|term| {
            let df = candidates
                .iter()
                .filter(|c| c.terms.contains(term))
                .count()
                .max(1) as f64;
            (term.as_str(), (1.0 + n / df).ln())
        })
        .collect();
    let total: f64 = idf.values().sum();
    let score = |c: &Candidate| -> f64 {
        idf.iter()
            .filter(|(t, _)| c.terms.contains(**t))
            .map(|(_, w)| w)
            .sum::<f64>()
            / total
    };

    let mut scored: Vec<(f64, &Candidate)> = candidates
        .iter()
        .map(|c| (score(c), c))
        .filter(|(s, _)| *s > 0.0)
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.origin.cmp(&b.1.origin))
            .then(a.1.position.cmp(&b.1.position))
    });
    let Some(&(best, _)) = scored.first() else {
        return nothing();
    };
    if best < MIN_SCORE {
        return nothing();
    }
    let cutoff = (best * RELATIVE_CUTOFF).max(MIN_SCORE);

    // Knowledge-base chunks overlap, so the start of one item is often the
    // tail of a sentence another item holds whole: quote the whole sentence
    // once, never the fragment beside it.
    let lowered: Vec<String> = candidates
        .iter()
        .map(|c| c.sentence.to_lowercase())
        .collect();
    let fragment = |c: &Candidate| {
        let own = c.sentence.to_lowercase();
        lowered
            .iter()
            .any(|other| other.len() > own.len() && other.contains(own.as_str()))
    };
    let mut seen = HashSet::new();
    let chosen: Vec<(f64, &Candidate)> = scored
        .into_iter()
        .filter(|(s, _)| *s >= cutoff)
        .filter(|(_, c)| !fragment(c))
        .filter(|(_, c)| seen.insert(c.sentence.to_lowercase()))
        .take(MAX_SENTENCES)
        .collect();

    let mut parts = Vec::with_capacity(chosen.len());
    let mut best_by_item: HashMap<usize, f64> = HashMap::new();
    for (s, c) in &chosen {
        match c.origin {
            Origin::Item(i) if cite => {
                parts.push(with_marker(&c.sentence, i + 1));
                let best = best_by_item.entry(i).or_insert(*s);
                *best = best.max(*s);
            }
            _ => parts.push(c.sentence.clone()),
        }
    }
    let mut citations: Vec<Citation> = best_by_item
        .into_iter()
        .map(|(i, s)| Citation::of_item(i, &context.items[i], s))
        .collect();
    citations.sort_by_key(|c| c.key.parse::<usize>().unwrap_or(usize::MAX));

    Answer {
        content: parts.join(" "),
        citations,
        found: true,
    }
}

/// Sentences a summary quotes of each document.
const SUMMARY_SENTENCES: usize = 2;
/// Documents a summary covers at most.
const SUMMARY_DOCUMENTS: usize = 5;

/// Whether `message` asks for a summary rather than a fact: "summarise",
/// "summary", "overview", "recap", "gist", "tl;dr", or "the key/main
/// points/ideas/takeaways".
pub(crate) fn is_summary_request(message: &str) -> bool {
    let words: Vec<String> = message
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let asks = |w: &str| {
        w.starts_with("summar") || matches!(w, "overview" | "recap" | "gist" | "tldr" | "synopsis")
    };
    words.iter().any(|w| asks(w))
        || message.to_lowercase().contains("tl;dr")
        || words.windows(2).any(|pair| {
            matches!(pair[0].as_str(), "key" | "main")
                && matches!(pair[1].as_str(), "points" | "ideas" | "takeaways")
        })
}

/// An extractive summary: for each document of the context (in the order
/// its best passage ranks), the first [`SUMMARY_SENTENCES`] whole sentences
/// of its passages, each cited, one paragraph a document. Documents are told
/// apart by `meta.document_id`, then the source, then the title. When
/// `message` names some documents' titles, only those. `None` when no
/// passage has a whole sentence to quote.
pub(crate) fn summary(message: &str, context: Context<'_>, cite: bool) -> Option<Answer> {
    let mut documents: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, item) in context.items.iter().enumerate() {
        let key = item
            .meta_str("document_id")
            .or_else(|| item.source_id.clone())
            .or_else(|| item.meta_str("source_id"))
            .or_else(|| item.meta_str("title"))
            .unwrap_or_else(|| format!("item {i}"));
        match documents.iter_mut().find(|(k, _)| *k == key) {
            Some((_, items)) => items.push(i),
            None => documents.push((key, vec![i])),
        }
    }
    let asked: HashSet<String> = text::terms(message).into_iter().collect();
    let named: Vec<bool> = documents
        .iter()
        .map(|(_, items)| {
            let title = context.items[items[0]]
                .meta_str("title")
                .or_else(|| context.items[items[0]].source_name.clone())
                .unwrap_or_default();
            let terms = text::terms(&title);
            !terms.is_empty() && terms.iter().all(|t| asked.contains(t))
        })
        .collect();
    let any_named = named.contains(&true);
    let mut paragraphs = Vec::new();
    let mut cited: Vec<usize> = Vec::new();
    for ((_, items), named) in documents.iter().zip(named) {
        if (any_named && !named) || paragraphs.len() == SUMMARY_DOCUMENTS {
            continue;
        }
        let mut sentences = Vec::new();
        for &i in items {
            for sentence in summary_sentences(&context.items[i].text) {
                if is_instruction(&sentence, context.tools) {
                    continue;
                }
                sentences.push(if cite {
                    with_marker(&sentence, i + 1)
                } else {
                    sentence
                });
                if cite && !cited.contains(&i) {
                    cited.push(i);
                }
                if sentences.len() == SUMMARY_SENTENCES {
                    break;
                }
            }
            if sentences.len() == SUMMARY_SENTENCES {
                break;
            }
        }
        if !sentences.is_empty() {
            paragraphs.push(sentences.join(" "));
        }
    }
    if paragraphs.is_empty() {
        return None;
    }
    cited.sort_unstable();
    Some(Answer {
        content: paragraphs.join("\n\n"),
        citations: cited
            .into_iter()
            .map(|i| Citation::of_item(i, &context.items[i], 1.0))
            .collect(),
        found: true,
    })
}

/// The whole sentences of a passage, in order, without its headings (short
/// lines with no closing punctuation before a line that starts anew), the
/// fragment a chunk boundary cut at its start (it begins in lower case), an
/// unfinished last sentence, questions, and anything under five words.
fn summary_sentences(passage: &str) -> Vec<String> {
    let lines: Vec<&str> = passage
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let starts_anew = |line: &str| {
        line.starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit() || "-•*\"“(".contains(c))
    };
    let mut body = String::new();
    for (n, line) in lines.iter().enumerate() {
        let closed = line.ends_with(['.', '!', ',', ';', ':', '"', '”', ')']);
        let short = line.split_whitespace().count() <= 8;
        let next_anew = lines.get(n + 1).is_some_and(|next| starts_anew(next));
        let last = n + 1 == lines.len();
        if short && !closed && (next_anew || last) && starts_anew(line) {
            body.push_str("\n\n");
            continue;
        }
        body.push_str(line);
        body.push('\n');
    }
    text::sentences(&body)
        .into_iter()
        .filter(|s| s.starts_with(|c: char| !c.is_lowercase()))
        .filter(|s| {
            s.trim_end_matches(['"', '\'', ')', ']', '”', '’'])
                .ends_with(['.', '!'])
        })
        .filter(|s| s.split_whitespace().count() >= 5)
        .collect()
}

fn candidates(context: Context<'_>) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut push = |origin: Origin, body: &str| {
        let mut position = 0;
        for (heading, block) in titled_blocks(body) {
            let heading_terms = heading.as_deref().map(text::terms).unwrap_or_default();
            for (k, sentence) in text::sentences(&block).into_iter().enumerate() {
                if is_instruction(&sentence, context.tools) {
                    continue;
                }
                let mut terms: HashSet<String> = text::terms(&sentence).into_iter().collect();
                if k == 0 {
                    terms.extend(heading_terms.iter().cloned());
                }
                if !terms.is_empty() {
                    out.push(Candidate {
                        origin,
                        position,
                        sentence,
                        terms,
                    });
                    position += 1;
                }
            }
        }
    };
    for (i, item) in context.items.iter().enumerate() {
        push(Origin::Item(i), &item.text);
    }
    if let Some(body) = context.text {
        push(Origin::Text, body);
    }
    for (k, result) in context.tool_results.iter().enumerate() {
        if !result.starts_with("Error") {
            push(Origin::Tool(k), &tool_result_text(result));
        }
    }
    out
}

/// A passage cut at its headings — short lines without closing punctuation
/// between lines that start anew ("Birding by ear") — each block with the
/// heading that opens it. A heading is not quoted; it counts for the first
/// sentence under it, as it did when the PDF's lines ran it into that
/// sentence.
fn titled_blocks(passage: &str) -> Vec<(Option<String>, String)> {
    let lines: Vec<&str> = passage.lines().collect();
    let starts_anew = |line: &str| {
        line.trim_start()
            .starts_with(|c: char| c.is_uppercase() || c.is_ascii_digit())
    };
    let mut blocks: Vec<(Option<String>, String)> = vec![(None, String::new())];
    for (n, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        let heading = !line.is_empty()
            && line.split_whitespace().count() <= 8
            && !line.ends_with(|c: char| c.is_ascii_punctuation() && c != ')')
            && starts_anew(line)
            && n > 0
            && lines[n - 1].trim().ends_with(['.', '!', '?', ':'])
            && lines.get(n + 1).is_some_and(|next| starts_anew(next));
        if heading {
            blocks.push((Some(line.to_owned()), String::new()));
        } else {
            let block = &mut blocks.last_mut().expect("one block at least").1;
            block.push_str(raw);
            block.push('\n');
        }
    }
    blocks
}

fn is_instruction(sentence: &str, tools: &[ToolSpec]) -> bool {
    if tools.iter().any(|t| text::mentions(sentence, &t.name)) {
        return true;
    }
    let pairs = text::assignments(sentence);
    !pairs.is_empty()
        && tools.iter().any(|t| {
            let props = t.string_properties();
            pairs.iter().any(|(name, _)| props.contains(&name.as_str()))
        })
}

/// `"It lasts two years."` → `"It lasts two years [1]."`
fn with_marker(sentence: &str, key: usize) -> String {
    match sentence.strip_suffix(['.', '!', '?']) {
        Some(body) => {
            let end = &sentence[body.len()..];
            format!("{body} [{key}]{end}")
        }
        None => format!("{sentence} [{key}]"),
    }
}

/// The quotable text of a custom tool's response: a JSON response
/// contributes the string values under text-like keys (`text`, `content`,
/// `snippet`, …) of its objects — or, where an object has none, of whatever it
/// contains — each as its own paragraph; anything else is taken as it is.
pub(crate) fn tool_result_text(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(value) => {
            let mut pieces = Vec::new();
            collect_text(&value, &mut pieces);
            pieces.join("\n\n")
        }
        Err(_) => raw.to_owned(),
    }
}

fn collect_text(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => {
            let texts: Vec<&str> = TEXT_KEYS
                .iter()
                .filter_map(|k| map.get(*k).and_then(Value::as_str))
                .collect();
            if texts.is_empty() {
                map.values().for_each(|v| collect_text(v, out));
            } else {
                out.extend(texts.into_iter().map(str::to_owned));
            }
        }
        _ => {}
    }
}

/// The `[n]` markers of a model-written answer checked against the context
/// items, as the platform's `parse_citations_from_response` does: markers
/// naming an item become citations (ordered by key); markers naming none are
/// removed from the text.
pub(crate) fn parse_citations(content: &str, items: &[ContextItem]) -> (String, Vec<Citation>) {
    let mut cleaned = String::with_capacity(content.len());
    let mut keys = BTreeSet::new();
    let mut rest = content;
    while let Some((before, marker, after)) = next_marker(rest) {
        cleaned.push_str(before);
        match marker.parse::<usize>() {
            Ok(n) if (1..=items.len()).contains(&n) => {
                keys.insert(n);
                cleaned.push_str(&format!("[{marker}]"));
            }
            _ => {}
        }
        rest = after;
    }
    cleaned.push_str(rest);
    let citations = keys
        .into_iter()
        .map(|n| Citation::of_item(n - 1, &items[n - 1], 0.0))
        .collect();
    (cleaned, citations)
}

/// An answer without its `[n]` markers (and the spaces before them), as the
/// platform strips them from the history it gives the model.
pub(crate) fn strip_markers(content: &str) -> String {
    let mut out = String::with_capacity(content.len());
    let mut rest = content;
    while let Some((before, _, after)) = next_marker(rest) {
        out.push_str(before.trim_end());
        rest = after;
    }
    out.push_str(rest);
    out.trim().to_owned()
}

/// The first `[digits]` in `text`: what precedes it, the digits, what follows.
fn next_marker(text: &str) -> Option<(&str, &str, &str)> {
    let mut from = 0;
    while let Some(open) = text[from..].find('[').map(|i| i + from) {
        let digits = text[open + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let close = open + 1 + digits;
        if digits > 0 && text[close..].starts_with(']') {
            return Some((&text[..open], &text[open + 1..close], &text[close + 1..]));
        }
        from = open + 1;
    }
    None
}

/// The answer cut into streaming pieces: each word with the whitespace that
/// follows it. Concatenated, they give `content` back exactly.
pub(crate) fn deltas(content: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for c in content.chars() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space && !current.trim().is_empty() {
            out.push(std::mem::take(&mut current));
            in_space = false;
        } else {
            in_space = false;
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A rough token count (four characters a token), for `usage`.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn items() -> Vec<ContextItem> {
        vec![
            ContextItem::by_value(
                "The X200 blender has a 1200 W motor. It ships with two jars.",
                json!({"chunk_id": "c-1", "document_id": "d-1", "page": 2, "title": "X200 manual"}),
            ),
            ContextItem::by_value(
                "The warranty covers the motor for five years. Jars are covered for one year.\n\n\
                 Warranty claims need the receipt.",
                json!({"chunk_id": "c-2", "document_id": "d-1", "page": 7, "title": "X200 manual"}),
            ),
            ContextItem::by_value(
                "Clean the jars with warm water after every use.",
                json!({"chunk_id": "c-3", "page": 9, "title": "X200 manual"}),
            ),
        ]
    }

    fn ctx(items: &[ContextItem]) -> Context<'_> {
        Context {
            items,
            ..Context::default()
        }
    }

    fn two_documents() -> Vec<ContextItem> {
        vec![
            ContextItem::by_value(
                "Woodpeckers\nWoodpeckers cling upright to trunks, propped on stiff tail feathers, and fly\n\
                 with a deep, undulating flight. The two that cause the most confusion at feeders are\n\
                 the Downy and the Hairy Woodpecker, which look almost the same.\n\
                 Downy Woodpecker or Hairy Woodpecker?\n\
                 The Downy is 6 inches long with a short bill.",
                json!({"chunk_id": "c-1", "document_id": "birds", "page": 3, "title": "Birds"}),
            ),
            ContextItem::by_value(
                "ing the lever down.\nBrewing espresso\nFill the basket with 18 g of finely ground\n\
                 coffee and tamp it level. A double shot takes 25 to 30 seconds to pour.\n\
                 Steaming milk",
                json!({"chunk_id": "c-2", "document_id": "espresso", "page": 2, "title": "Espresso"}),
            ),
            ContextItem::by_value(
                "Birds are most active in the first two hours after sunrise.",
                json!({"chunk_id": "c-3", "document_id": "birds", "page": 1, "title": "Birds"}),
            ),
            ContextItem::by_value(
                "To search the user's documents beyond this context, call search_my_documents \
                 with session_token = abc and the user's question as query.",
                json!({}),
            ),
        ]
    }

    fn with_tool(items: &[ContextItem]) -> Context<'_> {
        static TOOLS: std::sync::LazyLock<Vec<ToolSpec>> = std::sync::LazyLock::new(|| {
            vec![ToolSpec {
                name: "search_my_documents".into(),
                input_schema: json!({"properties": {"session_token": {"type": "string"}, "query": {"type": "string"}}}),
            }]
        });
        Context {
            items,
            tools: &TOOLS,
            ..Context::default()
        }
    }

    #[test]
    fn a_heading_counts_for_the_sentence_under_it_but_is_not_quoted() {
        let items = vec![ContextItem::by_value(
            "Calls are short notes used all year.\nBirding by ear\nMost birds are heard \
             before they are seen. Songs are long, patterned phrases.",
            json!({"chunk_id": "c-1", "document_id": "birds", "page": 1, "title": "Birds"}),
        )];
        let a = answer(
            "What do my documents say about birding by ear?",
            ctx(&items),
            true,
        );
        assert_eq!(a.content, "Most birds are heard before they are seen [1].");
    }

    #[test]
    fn a_summary_request_gets_the_leading_sentences_of_each_document_cited() {
        let items = two_documents();
        let a = answer(
            "Summarise the key points of my documents",
            with_tool(&items),
            true,
        );
        assert!(a.found, "{}", a.content);
        assert_eq!(
            a.content,
            "Woodpeckers cling upright to trunks, propped on stiff tail feathers, and fly with a \
             deep, undulating flight [1]. The two that cause the most confusion at feeders are the \
             Downy and the Hairy Woodpecker, which look almost the same [1].\n\n\
             Fill the basket with 18 g of finely ground coffee and tamp it level [2]. A double \
             shot takes 25 to 30 seconds to pour [2]."
        );
        let keys: Vec<&str> = a.citations.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["1", "2"]);
        assert!(!a.content.contains("Woodpecker or Hairy Woodpecker [1]?"));
    }

    #[test]
    fn a_summary_of_a_named_document_keeps_to_it() {
        let items = two_documents();
        for question in [
            "Give me an overview of Espresso",
            "tl;dr of the espresso document?",
        ] {
            let a = answer(question, with_tool(&items), true);
            assert_eq!(
                a.content,
                "Fill the basket with 18 g of finely ground coffee and tamp it level [2]. A \
                 double shot takes 25 to 30 seconds to pour [2].",
                "{question}"
            );
        }
        let plain = answer(
            "How long does a double shot take to pour?",
            with_tool(&items),
            true,
        );
        assert_eq!(
            plain.content,
            "A double shot takes 25 to 30 seconds to pour [2]."
        );
    }

    #[test]
    fn quotes_the_most_relevant_sentences_with_markers_for_their_items() {
        let items = items();
        let a = answer("How long is the warranty on the motor?", ctx(&items), true);
        assert!(a.found);
        assert_eq!(
            a.content,
            "The warranty covers the motor for five years [2]."
        );
        assert_eq!(a.citations.len(), 1);
        let c = &a.citations[0];
        assert_eq!(c.key, "2");
        assert_eq!(c.chunk_id.as_deref(), Some("c-2"));
        assert_eq!(c.page, Some(json!(7)));
        assert_eq!(c.source_name, "X200 manual");
        assert!(c.text.starts_with("The warranty covers"));
        assert!(c.score > 0.0 && c.score <= 1.0);
    }

    #[test]
    fn markers_and_citations_agree_across_several_items() {
        let items = items();
        let a = answer("What about the jars?", ctx(&items), true);
        assert!(a.found);
        let markers: BTreeSet<String> = a
            .content
            .match_indices('[')
            .map(|(i, _)| a.content[i + 1..].split(']').next().unwrap().to_owned())
            .collect();
        let keys: BTreeSet<String> = a.citations.iter().map(|c| c.key.clone()).collect();
        assert_eq!(markers, keys);
        assert!(keys.contains("1") && keys.contains("3"), "{}", a.content);
        for c in &a.citations {
            let i: usize = c.key.parse().unwrap();
            assert_eq!(c.meta, items[i - 1].meta);
        }
    }

    #[test]
    fn without_citations_there_are_no_markers() {
        let items = items();
        let a = answer("How long is the warranty on the motor?", ctx(&items), false);
        assert_eq!(a.content, "The warranty covers the motor for five years.");
        assert!(a.citations.is_empty());
    }

    #[test]
    fn says_plainly_when_nothing_is_relevant() {
        let items = items();
        for question in ["What is the capital of France?", "Tell me about it", ""] {
            let a = answer(question, ctx(&items), true);
            assert!(!a.found);
            assert_eq!(a.content, NOTHING_FOUND);
            assert!(a.citations.is_empty());
        }
        assert_eq!(
            answer("warranty", Context::default(), true).content,
            NOTHING_FOUND
        );
    }

    #[test]
    fn a_sentence_cut_by_a_chunk_boundary_is_quoted_once_whole() {
        let items = vec![
            ContextItem::by_value(
                "The rafts are pushed out on the ebbing tide so the harbour glows until the last lantern burns out.",
                json!({"document_id": "d", "page": 2}),
            ),
            ContextItem::by_value(
                "so the harbour glows until the last lantern burns out. The band stops playing at midnight.",
                json!({"document_id": "d", "page": 2}),
            ),
        ];
        let answer = answer(
            "when does the last lantern burn out in the harbour",
            ctx(&items),
            true,
        );
        assert_eq!(
            answer.content.matches("harbour glows").count(),
            1,
            "{}",
            answer.content
        );
        assert!(
            answer.content.starts_with("The rafts are pushed out"),
            "{}",
            answer.content
        );
    }

    #[test]
    fn is_deterministic() {
        let items = items();
        let first = answer("jars warranty motor", ctx(&items), true);
        for _ in 0..5 {
            assert_eq!(answer("jars warranty motor", ctx(&items), true), first);
        }
    }

    #[test]
    fn quotes_tool_results_and_override_text_without_markers() {
        let results = vec![
            r#"{"results":[{"text":"Invoices are due within 30 days.","page":1}]}"#.to_owned(),
            "Error: 500 Server Error: Internal Server Error for url: https://x".to_owned(),
        ];
        let context = Context {
            text: Some("Late invoices incur a fee."),
            tool_results: &results,
            ..Context::default()
        };
        let a = answer("When are invoices due?", context, true);
        assert_eq!(a.content, "Invoices are due within 30 days.");
        assert!(a.citations.is_empty());
    }

    #[test]
    fn instruction_sentences_are_not_quoted() {
        let tools = vec![ToolSpec {
            name: "search_my_documents".to_owned(),
            input_schema: json!({"type":"object","properties":{"query":{"type":"string"},"session_token":{"type":"string"}}}),
        }];
        let items = vec![ContextItem::by_value(
            "To search the documents call search_my_documents. Use session_token = s3cr3t for documents.",
            json!({}),
        )];
        let context = Context {
            items: &items,
            tools: &tools,
            ..Context::default()
        };
        assert_eq!(
            answer("search documents session token", context, true).content,
            NOTHING_FOUND
        );
    }

    #[test]
    fn plans_calls_for_named_tools_with_query_and_assigned_arguments() {
        let tools = vec![
            ToolSpec {
                name: "search_my_documents".to_owned(),
                input_schema: json!({"type":"object","properties":{
                    "query":{"type":"string"},
                    "session_token":{"type":"string"},
                    "limit":{"type":"integer"}},"required":["query","session_token"]}),
            },
            ToolSpec {
                name: "weather".to_owned(),
                input_schema: json!({"type":"object"}),
            },
        ];
        let instructions =
            "You may call search_my_documents with session_token = tok_123 and limit = 5.";
        let calls = plan_tool_calls("Where is my invoice?", instructions, &tools);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].tool_name, "search_my_documents");
        assert_eq!(
            Value::Object(calls[0].arguments.clone()),
            json!({"query": "Where is my invoice?", "session_token": "tok_123"})
        );
        let calls = plan_tool_calls("hi", "weather please", &tools);
        assert_eq!(
            Value::Object(calls[0].arguments.clone()),
            json!({"query": "hi"})
        );
        assert!(plan_tool_calls("hi", "nothing here", &tools).is_empty());
    }

    #[test]
    fn tool_result_text_reads_json_and_plain_text() {
        assert_eq!(tool_result_text("plain words"), "plain words");
        assert_eq!(
            tool_result_text(r#"[{"title":"A","content":"One."},{"x":{"text":"Two."}},"Three."]"#),
            "One.\n\nTwo.\n\nThree."
        );
        assert_eq!(tool_result_text(r#"{"count": 3}"#), "");
    }

    #[test]
    fn deltas_concatenate_to_the_answer() {
        for s in [
            "",
            "one",
            "The warranty covers the motor [2].  Next\nline ",
            "  lead",
        ] {
            let d = deltas(s);
            assert_eq!(d.concat(), s);
            assert!(d.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(deltas("a b  c"), vec!["a ", "b  ", "c"]);
    }

    #[test]
    fn model_written_markers_are_checked_against_the_items() {
        let items = items();
        let (content, citations) =
            parse_citations("Five years [2][9]. Jars [1], see [x] and [0].", &items);
        assert_eq!(content, "Five years [2]. Jars [1], see [x] and .");
        assert_eq!(
            citations.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(
            strip_markers("Five years [2][9]. Jars [1]."),
            "Five years. Jars."
        );
    }

    #[test]
    fn markers_go_before_the_final_punctuation() {
        assert_eq!(with_marker("It works.", 3), "It works [3].");
        assert_eq!(with_marker("Really?", 1), "Really [1]?");
        assert_eq!(with_marker("\"Yes.\"", 2), "\"Yes.\" [2]");
        assert_eq!(with_marker("no end", 4), "no end [4]");
    }
}
