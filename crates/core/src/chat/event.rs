//! Quire's chat event vocabulary, as the companion streams it over SSE and
//! the `chat_events` trigger broadcasts it over Realtime
//! (`crates/companion/src/chat/events.rs`, `db/app/40_realtime.sql`).
//!
//! Every event is `{message_id, conversation_id, seq, kind, payload}`
//! (Realtime adds `created_at`). `seq` increases strictly per persisted row
//! of a message, starting at 0 with `context`. The one exception to "one
//! event, one row": over SSE the companion relays each delta the moment it
//! arrives and later stores all deltas of one interval as one row, so several
//! SSE deltas may share a `seq` — they are pieces of that row, in order —
//! while Realtime and the table carry the whole row once.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One chat event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatEvent {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i32,
    #[serde(flatten)]
    pub body: EventBody,
}

/// What an event says, by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum EventBody {
    /// First event (seq 0): the question's row and the chunks the answer was
    /// given (after the companion re-read them under the user's identity).
    Context {
        user_message_id: Option<Uuid>,
        chunks: Vec<ContextChunk>,
        /// How many of the sent chunk ids were dropped (not the user's).
        dropped: u32,
    },
    /// A piece of the answer's text.
    Delta { text: String },
    /// The agent called a tool.
    ToolCall {
        tool_name: Option<String>,
        call_id: Option<String>,
        arguments: Value,
    },
    /// A tool answered (a preview of its result).
    ToolResult {
        tool_name: Option<String>,
        call_id: Option<String>,
        preview: Option<String>,
    },
    /// The run's state changed (`running`).
    Status {
        state: Option<String>,
        run_id: Option<String>,
    },
    /// Terminal: finished (`complete`) or stopped (`stopped`), with the
    /// whole text.
    Complete {
        status: MessageStatus,
        content: String,
        citations: Vec<Citation>,
        run_id: Option<String>,
    },
    /// Terminal: the answer failed; `content` is the partial text kept.
    Error {
        code: Option<String>,
        message: String,
        content: String,
    },
    /// A kind this version does not know (kept, ignored).
    Unknown { kind: String },
}

impl EventBody {
    /// Whether this event ends its message.
    pub fn is_terminal(&self) -> bool {
        matches!(self, EventBody::Complete { .. } | EventBody::Error { .. })
    }
}

/// A chunk an answer was given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextChunk {
    /// The `document_chunks` row id.
    pub id: Uuid,
    pub document_id: Uuid,
    #[serde(default)]
    pub chunk_id: Option<Uuid>,
    /// The first page the chunk spans.
    #[serde(default)]
    pub page: Option<i32>,
    /// The last page the chunk spans (a chunk may cross a page break); see
    /// [`Citation::page_end`].
    #[serde(default)]
    pub page_end: Option<i32>,
    #[serde(default)]
    pub title: String,
}

/// A citation of an answer: which numbered source (`key`, the `[n]` marker
/// in the text) points at which document and pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub chunk_id: Option<Uuid>,
    #[serde(default)]
    pub document_id: Option<Uuid>,
    #[serde(default)]
    pub title: Option<String>,
    /// The first page the cited chunk spans: where to open the document.
    /// `None` when the pages are unknown (open it at page 1).
    #[serde(default)]
    pub page: Option<i32>,
    /// The last page the cited chunk spans: chunks are cut from a document's
    /// pages joined, so one may cross a page break ("pp. 3–4"). Equal to
    /// `page` for one page; `None` when the pages are unknown, and on
    /// answers stored before it existed (read it as `page`).
    #[serde(default)]
    pub page_end: Option<i32>,
    #[serde(default)]
    pub excerpt: Option<String>,
}

/// `chat_messages.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Streaming,
    Complete,
    Stopped,
    Failed,
}

impl MessageStatus {
    /// Whether the message will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, MessageStatus::Streaming)
    }
}

#[derive(Deserialize)]
struct Wire {
    message_id: Uuid,
    conversation_id: Uuid,
    seq: i32,
    kind: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContextWire {
    user_message_id: Option<Uuid>,
    chunks: Vec<ContextChunk>,
    dropped: u32,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ToolWire {
    tool_name: Option<String>,
    call_id: Option<String>,
    arguments: Value,
    preview: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StatusWire {
    state: Option<String>,
    run_id: Option<String>,
}

#[derive(Deserialize)]
struct CompleteWire {
    #[serde(default = "complete")]
    status: MessageStatus,
    #[serde(default)]
    content: String,
    #[serde(default)]
    citations: Vec<Citation>,
    #[serde(default)]
    run_id: Option<String>,
}

fn complete() -> MessageStatus {
    MessageStatus::Complete
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorWire {
    code: Option<String>,
    message: String,
    content: String,
}

impl ChatEvent {
    /// Parses an event from its JSON (SSE `data`, a Realtime broadcast
    /// payload, or a `chat_events` row). Errors name what is wrong.
    pub fn from_json(value: Value) -> Result<ChatEvent, String> {
        let wire: Wire =
            serde_json::from_value(value).map_err(|e| format!("not a chat event: {e}"))?;
        let payload = wire.payload;
        let bad = |e: serde_json::Error| format!("a {} event with a bad payload: {e}", wire.kind);
        let body = match wire.kind.as_str() {
            "context" => {
                let c: ContextWire = serde_json::from_value(payload).map_err(bad)?;
                EventBody::Context {
                    user_message_id: c.user_message_id,
                    chunks: c.chunks,
                    dropped: c.dropped,
                }
            }
            "delta" => EventBody::Delta {
                text: payload
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| "a delta event without text".to_owned())?
                    .to_owned(),
            },
            "tool_call" | "tool_result" => {
                let t: ToolWire = serde_json::from_value(payload).map_err(bad)?;
                if wire.kind == "tool_call" {
                    EventBody::ToolCall {
                        tool_name: t.tool_name,
                        call_id: t.call_id,
                        arguments: t.arguments,
                    }
                } else {
                    EventBody::ToolResult {
                        tool_name: t.tool_name,
                        call_id: t.call_id,
                        preview: t.preview,
                    }
                }
            }
            "status" => {
                let s: StatusWire = serde_json::from_value(payload).map_err(bad)?;
                EventBody::Status {
                    state: s.state,
                    run_id: s.run_id,
                }
            }
            "complete" => {
                let c: CompleteWire = serde_json::from_value(payload).map_err(bad)?;
                EventBody::Complete {
                    status: c.status,
                    content: c.content,
                    citations: c.citations,
                    run_id: c.run_id,
                }
            }
            "error" => {
                let e: ErrorWire = serde_json::from_value(payload).map_err(bad)?;
                EventBody::Error {
                    code: e.code,
                    message: e.message,
                    content: e.content,
                }
            }
            other => EventBody::Unknown {
                kind: other.to_owned(),
            },
        };
        Ok(ChatEvent {
            message_id: wire.message_id,
            conversation_id: wire.conversation_id,
            seq: wire.seq,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_parses_and_serializes_back_in_the_same_shape() {
        let m = Uuid::new_v4();
        let c = Uuid::new_v4();
        let cases = [
            json!({"kind": "context", "payload": {"user_message_id": Uuid::nil(), "chunks": [], "dropped": 0}}),
            json!({"kind": "delta", "payload": {"text": "Hel"}}),
            json!({"kind": "status", "payload": {"state": "running", "run_id": "run_1"}}),
            json!({"kind": "complete", "payload": {"status": "stopped", "content": "Hel", "citations": [], "run_id": null}}),
            json!({"kind": "error", "payload": {"code": "interrupted", "message": "m", "content": "Hel"}}),
        ];
        for (seq, case) in cases.into_iter().enumerate() {
            let mut value = case.clone();
            value["message_id"] = json!(m);
            value["conversation_id"] = json!(c);
            value["seq"] = json!(seq);
            let event = ChatEvent::from_json(value.clone()).unwrap();
            assert_eq!(event.seq, seq as i32);
            assert_eq!(serde_json::to_value(&event).unwrap(), value);
        }
    }

    #[test]
    fn citations_and_context_carry_the_pages_their_chunk_spans() {
        let event = ChatEvent::from_json(json!({
            "message_id": Uuid::nil(), "conversation_id": Uuid::nil(), "seq": 4,
            "kind": "complete",
            "payload": {"status": "complete", "content": "A [1][2][3].", "run_id": "run_1", "citations": [
                {"key": "1", "page": 3, "page_end": 4},
                // Stored before page_end existed.
                {"key": "2", "page": 5},
                // The platform knew no pages.
                {"key": "3", "page": null, "page_end": null},
            ]},
        }))
        .unwrap();
        let EventBody::Complete { citations, .. } = event.body else {
            panic!("{event:?}");
        };
        let pages: Vec<_> = citations.iter().map(|c| (c.page, c.page_end)).collect();
        assert_eq!(pages, [(Some(3), Some(4)), (Some(5), None), (None, None)]);

        let event = ChatEvent::from_json(json!({
            "message_id": Uuid::nil(), "conversation_id": Uuid::nil(), "seq": 0,
            "kind": "context",
            "payload": {"user_message_id": Uuid::nil(), "dropped": 0, "chunks": [
                {"id": Uuid::nil(), "document_id": Uuid::nil(), "page": 1, "page_end": 2, "title": "T"},
            ]},
        }))
        .unwrap();
        let EventBody::Context { chunks, .. } = event.body else {
            panic!("{event:?}");
        };
        assert_eq!((chunks[0].page, chunks[0].page_end), (Some(1), Some(2)));
    }

    #[test]
    fn unknown_kinds_are_kept_and_malformed_events_are_refused() {
        let base = json!({"message_id": Uuid::nil(), "conversation_id": Uuid::nil(), "seq": 1});
        let mut future = base.clone();
        future["kind"] = json!("reasoning");
        future["payload"] = json!({"x": 1});
        assert_eq!(
            ChatEvent::from_json(future).unwrap().body,
            EventBody::Unknown {
                kind: "reasoning".into()
            }
        );
        let mut delta = base.clone();
        delta["kind"] = json!("delta");
        delta["payload"] = json!({});
        assert!(
            ChatEvent::from_json(delta)
                .unwrap_err()
                .contains("without text")
        );
        assert!(ChatEvent::from_json(json!({"kind": "delta"})).is_err());
    }
}
