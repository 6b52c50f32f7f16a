//! Keeping a run's `session_token` inside the run.
//!
//! The token is the run's capability for the search tool
//! (ARCHITECTURE.md#ask, step 5): the agent must be given it, so the model
//! can repeat it anywhere — in any argument of a tool call, in a tool's
//! answer, in the answer's text, split across two deltas. A [`Scrubber`]
//! replaces it, and its hash (the `tool_sessions` key), with [`REDACTED`] in
//! every string of an event before the event is relayed, stored or
//! broadcast. Deltas go through [`Scrubber::push`], which holds back a tail
//! that could be the start of a secret until the next piece shows whether
//! it is.

use serde_json::Value;

use super::events::EventBody;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Replaces a run's secrets in the strings of its events.
#[derive(Debug, Clone)]
pub struct Scrubber {
    secrets: Vec<String>,
    /// The end of the text pushed so far, held back because a secret may
    /// begin in it.
    held: String,
}

impl Scrubber {
    /// A scrubber for the run's `token` and its `hash`.
    pub fn new(token: &str, hash: &str) -> Self {
        Scrubber {
            secrets: [token, hash]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            held: String::new(),
        }
    }

    /// `text` with every secret replaced.
    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Cleans every string of `value` in place, object keys included.
    pub fn clean_value(&self, value: &mut Value) {
        match value {
            Value::String(s) => *s = self.clean(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.clean_value(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.clean_value(&mut v);
                    map.insert(self.clean(&key), v);
                }
            }
            _ => {}
        }
    }

    /// `body` with the strings a model or a tool wrote cleaned: the text of
    /// a delta, `complete` and `error`, a tool call's arguments and names, a
    /// tool result's preview.
    pub fn clean_event(&self, body: EventBody) -> EventBody {
        let clean = |s: Option<String>| s.map(|s| self.clean(&s));
        match body {
            EventBody::Delta { text } => EventBody::Delta {
                text: self.clean(&text),
            },
            EventBody::ToolCall {
                tool_name,
                call_id,
                mut arguments,
            } => {
                self.clean_value(&mut arguments);
                EventBody::ToolCall {
                    tool_name: clean(tool_name),
                    call_id: clean(call_id),
                    arguments,
                }
            }
            EventBody::ToolResult {
                tool_name,
                call_id,
                preview,
                duration_ms,
            } => EventBody::ToolResult {
                tool_name: clean(tool_name),
                call_id: clean(call_id),
                preview: clean(preview),
                duration_ms,
            },
            EventBody::Complete {
                status,
                content,
                citations,
                run_id,
            } => EventBody::Complete {
                status,
                content: self.clean(&content),
                citations,
                run_id,
            },
            EventBody::Error {
                code,
                message,
                content,
            } => EventBody::Error {
                code,
                message: self.clean(&message),
                content: self.clean(&content),
            },
            other => other,
        }
    }

    /// The next piece of a streamed text: returns what may be passed on now,
    /// cleaned, and holds back the longest tail that is the beginning of a
    /// secret.
    pub fn push(&mut self, piece: &str) -> String {
        self.held.push_str(piece);
        let cleaned = self.clean(&self.held);
        let keep = self.open_tail(&cleaned);
        let (ready, tail) = cleaned.split_at(cleaned.len() - keep);
        self.held = tail.to_owned();
        ready.to_owned()
    }

    /// What [`Scrubber::push`] held back, at the end of the text (it was
    /// not a secret after all).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// The length of the longest proper prefix of a secret that `text` ends
    /// with.
    fn open_tail(&self, text: &str) -> usize {
        self.secrets
            .iter()
            .flat_map(|secret| {
                (1..secret.len().min(text.len() + 1)).filter(|&n| {
                    text.is_char_boundary(text.len() - n) && text.ends_with(&secret[..n])
                })
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TOKEN: &str = "qst_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn scrubber() -> Scrubber {
        Scrubber::new(TOKEN, HASH)
    }

    #[test]
    fn a_token_split_across_pieces_never_comes_out() {
        let text = format!("Your key is {TOKEN} and its hash {HASH}, é done.");
        for cut in [1, 3, 7, 16, 40] {
            let mut scrubber = scrubber();
            let mut out = String::new();
            let chars: Vec<char> = text.chars().collect();
            for piece in chars.chunks(cut) {
                let piece: String = piece.iter().collect();
                let ready = scrubber.push(&piece);
                assert!(!ready.contains("qst_0011"), "{ready}");
                out.push_str(&ready);
            }
            out.push_str(&scrubber.flush());
            assert_eq!(
                out, "Your key is [redacted] and its hash [redacted], é done.",
                "pieces of {cut}"
            );
        }
    }

    #[test]
    fn only_a_possible_beginning_is_held_back() {
        let mut scrubber = scrubber();
        assert_eq!(scrubber.push("Hello"), "Hello");
        assert_eq!(scrubber.push(" q"), " ");
        assert_eq!(scrubber.push("uite"), "quite");
        // The hash begins with "9f": a trailing 9 waits for the next piece.
        assert_eq!(scrubber.push(" 9"), " ");
        assert_eq!(scrubber.flush(), "9");
    }

    #[test]
    fn every_string_of_a_tool_call_is_cleaned() {
        let body = EventBody::ToolCall {
            tool_name: Some("search_my_documents".into()),
            call_id: Some(format!("call-{TOKEN}")),
            arguments: json!({"query": "x", "filters": {"note": format!("for {TOKEN}"),
                             "list": [TOKEN, 3], TOKEN: HASH}}),
        };
        let cleaned = serde_json::to_string(&scrubber().clean_event(body)).unwrap();
        assert!(
            !cleaned.contains(TOKEN) && !cleaned.contains(HASH),
            "{cleaned}"
        );
        assert!(cleaned.contains("for [redacted]"), "{cleaned}");
        let result = EventBody::ToolResult {
            tool_name: None,
            call_id: None,
            preview: Some(format!("{{\"echo\": \"{TOKEN}\"}}")),
            duration_ms: Some(3),
        };
        let cleaned = serde_json::to_string(&scrubber().clean_event(result)).unwrap();
        assert!(!cleaned.contains(TOKEN), "{cleaned}");
    }
}
