//! Quire's chat event vocabulary — what `POST /api/chat` streams, what
//! `chat_events` stores, and what Realtime broadcasts on `user:<uid>`.
//! `crates/companion/EVENTS.md` is the reference for clients.
//!
//! Every event is `{message_id, conversation_id, seq, kind, payload}` (the
//! shape the `chat_events` broadcast trigger sends, minus `created_at`), so
//! a client handles the SSE stream and Realtime alike and de-duplicates by
//! `(message_id, seq)`. On the SSE stream each event is framed as
//! `event: <kind>` + `data: <json>`.
//!
//! `seq` increases strictly per persisted row. Deltas are the one exception
//! to "one SSE event, one row": the companion relays every delta the moment
//! it arrives, and coalesces the deltas of one interval into one row; all
//! deltas relayed with the same `seq` are pieces of that row, in order, and
//! their texts concatenated are the row's `payload.text`.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// `chat_events.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// First event (seq 0): the question's row and the chunks the answer
    /// was given, after the user's own RLS dropped any id not theirs.
    Context,
    /// A piece of the answer's text.
    Delta,
    /// The agent called a tool (arguments without the `session_token`).
    ToolCall,
    /// A tool answered (a preview, not the whole result).
    ToolResult,
    /// The run's state changed (`running`, with the platform's `run_id`).
    Status,
    /// Terminal: the answer failed; the partial text is kept.
    Error,
    /// Terminal: the answer is finished (`complete`) or was stopped (`stopped`).
    Complete,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Context => "context",
            Kind::Delta => "delta",
            Kind::ToolCall => "tool_call",
            Kind::ToolResult => "tool_result",
            Kind::Status => "status",
            Kind::Error => "error",
            Kind::Complete => "complete",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatEvent {
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i32,
    pub kind: Kind,
    pub payload: Value,
}

/// A row for `append_chat_events` / `finish_chat_message`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub seq: i32,
    pub kind: Kind,
    pub payload: Value,
}

impl ChatEvent {
    /// The SSE frame: `event: <kind>\ndata: <json>\n\n`.
    pub fn to_sse(&self) -> axum::response::sse::Event {
        axum::response::sse::Event::default()
            .event(self.kind.as_str())
            .data(serde_json::to_string(self).expect("chat events serialize"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_have_the_broadcast_shape() {
        let event = ChatEvent {
            message_id: Uuid::nil(),
            conversation_id: Uuid::nil(),
            seq: 3,
            kind: Kind::ToolCall,
            payload: json!({"tool_name": "search_my_documents"}),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"message_id": Uuid::nil(), "conversation_id": Uuid::nil(), "seq": 3,
                   "kind": "tool_call", "payload": {"tool_name": "search_my_documents"}})
        );
    }
}
