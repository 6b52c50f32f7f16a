//! The events of the platform's `run/stream` (docs/platform/ai-api.md §5.4),
//! read once, here, into [`PlatformEvent`]: the rest of the companion
//! matches on variants, never on the platform's JSON keys.
//!
//! Reading is lenient, as the platform's events vary by path (the plain
//! path and the agent loop send different extra fields): a missing or odd
//! field is `None`, and an event of a kind Quire does not read is kept as
//! [`PlatformEvent::Other`] (`step_started`, `reasoning*`, notices).

use serde_json::{Map, Value};

/// One event of `run/stream`.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformEvent {
    /// `start`: the run exists.
    Start {
        /// The run's public id (`run_…`).
        run_id: Option<String>,
    },
    /// `content_delta`: the next piece of the answer.
    ContentDelta {
        /// The piece (empty when the platform sent none).
        delta: String,
    },
    /// `tool_call`: the model calls a tool.
    ToolCall {
        /// The tool's name.
        tool_name: Option<String>,
        /// The call's id, repeated by its `tool_result`.
        call_id: Option<String>,
        /// The model's arguments as sent (an object; `{}` when absent).
        arguments: Value,
    },
    /// `tool_result`: a tool call's outcome.
    ToolResult {
        /// The tool's name.
        tool_name: Option<String>,
        /// The id of the call it answers.
        call_id: Option<String>,
        /// The first 200 characters of the result.
        result_preview: Option<String>,
        /// How long the call took, rounded to whole milliseconds.
        duration_ms: Option<u64>,
    },
    /// `chunk`: the whole answer, once, after the deltas; it replaces them.
    Chunk {
        /// The answer.
        content: Option<String>,
    },
    /// `error`: the run failed. The platform's message is for the log only.
    Error {
        /// The platform's `error` field as sent.
        error: Option<Value>,
    },
    /// `complete`: the run ended, finished or (`status: failed`) not.
    Complete {
        /// The run's public id.
        run_id: Option<String>,
        /// True for `status: "failed"`.
        failed: bool,
        /// The platform's `error` field as sent (set with `failed`).
        error: Option<Value>,
        /// The whole answer.
        content: Option<String>,
        /// The citations the model made.
        citations: Vec<PlatformCitation>,
    },
    /// Any other kind, or an event without one: kept, and ignored.
    Other {
        /// The `event` field (empty when there was none).
        event: String,
    },
}

/// One of the platform's citations on `complete`. Of all it carries
/// (`key`, `item_id`, `source_id`, `meta`, …) Quire reads the `[n]` key and
/// a score: the rest echoes the context item and is never trusted
/// (docs/platform-contract.md §4).
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformCitation {
    /// The marker's number as written (`"2"`), string or number on the wire.
    pub key: Option<String>,
    /// A relevance score, when the platform gives one.
    pub score: Option<f64>,
}

impl PlatformCitation {
    /// Reads one citation object; anything without a usable key has `key: None`.
    pub fn from_value(citation: &Value) -> Self {
        let key = match citation.get("key") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        PlatformCitation {
            key,
            score: citation.get("score").and_then(Value::as_f64),
        }
    }
}

/// The `data` of a `run/stream` event was not JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a run/stream event is not JSON")]
pub struct NotJson;

impl PlatformEvent {
    /// Reads the `data` of one SSE event.
    pub fn parse(data: &str) -> Result<Self, NotJson> {
        let value: Value = serde_json::from_str(data).map_err(|_| NotJson)?;
        Ok(Self::from_value(&value))
    }

    /// Reads one event already decoded as JSON.
    pub fn from_value(event: &Value) -> Self {
        let text = |key: &str| event.get(key).and_then(Value::as_str).map(str::to_owned);
        let kind = text("event").unwrap_or_default();
        match kind.as_str() {
            "start" => PlatformEvent::Start {
                run_id: text("run_id"),
            },
            "content_delta" => PlatformEvent::ContentDelta {
                delta: text("delta").unwrap_or_default(),
            },
            "tool_call" => PlatformEvent::ToolCall {
                tool_name: text("tool_name"),
                call_id: text("call_id"),
                arguments: event
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new())),
            },
            "tool_result" => PlatformEvent::ToolResult {
                tool_name: text("tool_name"),
                call_id: text("call_id"),
                result_preview: text("result_preview"),
                duration_ms: event.get("duration_ms").and_then(whole_millis),
            },
            "chunk" => PlatformEvent::Chunk {
                content: text("content"),
            },
            "error" => PlatformEvent::Error {
                error: event.get("error").cloned(),
            },
            "complete" => PlatformEvent::Complete {
                run_id: text("run_id"),
                failed: text("status").as_deref() == Some("failed"),
                error: event.get("error").cloned(),
                content: text("content"),
                citations: event
                    .get("citations")
                    .and_then(Value::as_array)
                    .map(|all| all.iter().map(PlatformCitation::from_value).collect())
                    .unwrap_or_default(),
            },
            _ => PlatformEvent::Other { event: kind },
        }
    }
}

/// A duration the platform sends as an integer or a float of milliseconds.
fn whole_millis(ms: &Value) -> Option<u64> {
    ms.as_u64()
        .or_else(|| ms.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_quire_reads_is_a_variant_and_others_are_kept() {
        let parse = |v: Value| PlatformEvent::parse(&v.to_string()).unwrap();
        assert_eq!(
            parse(json!({"event": "start", "run_id": "run_1", "session_id": "sess_1"})),
            PlatformEvent::Start {
                run_id: Some("run_1".into())
            }
        );
        assert_eq!(
            parse(json!({"event": "content_delta", "delta": "Hel", "seq": 3})),
            PlatformEvent::ContentDelta {
                delta: "Hel".into()
            }
        );
        assert_eq!(
            parse(json!({"event": "tool_result", "call_id": "c", "duration_ms": 12.6})),
            PlatformEvent::ToolResult {
                tool_name: None,
                call_id: Some("c".into()),
                result_preview: None,
                duration_ms: Some(13),
            }
        );
        assert_eq!(
            parse(json!({"event": "tool_call", "tool_name": "t"})),
            PlatformEvent::ToolCall {
                tool_name: Some("t".into()),
                call_id: None,
                arguments: json!({}),
            }
        );
        assert_eq!(
            parse(
                json!({"event": "complete", "status": "failed", "error": "boom",
                         "citations": [{"key": 2, "score": 0.5}, {"key": "x"}, {}]})
            ),
            PlatformEvent::Complete {
                run_id: None,
                failed: true,
                error: Some(json!("boom")),
                content: None,
                citations: vec![
                    PlatformCitation {
                        key: Some("2".into()),
                        score: Some(0.5)
                    },
                    PlatformCitation {
                        key: Some("x".into()),
                        score: None
                    },
                    PlatformCitation {
                        key: None,
                        score: None
                    },
                ],
            }
        );
        assert_eq!(
            parse(json!({"event": "reasoning_delta", "delta": "hmm"})),
            PlatformEvent::Other {
                event: "reasoning_delta".into()
            }
        );
        assert_eq!(
            parse(json!({"delta": "no kind"})),
            PlatformEvent::Other {
                event: String::new()
            }
        );
        assert_eq!(PlatformEvent::parse("not json"), Err(NotJson));
    }
}
