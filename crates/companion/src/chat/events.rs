//! Quire's chat events on the companion's side: the vocabulary itself is
//! `quire-protocol`'s ([`ChatEvent`], [`EventBody`]; described for clients
//! in `crates/companion/EVENTS.md`); this module frames an event for SSE and
//! shapes the rows the companion writes to `chat_events`.
//!
//! On the SSE stream each event is framed as `event: <kind>` +
//! `data: <json>`. `seq` increases strictly per persisted row. Deltas are the
//! one exception to "one SSE event, one row": the companion relays every
//! delta the moment it arrives, and coalesces the deltas of one interval into
//! one row; all deltas relayed with the same `seq` are pieces of that row, in
//! order, and their texts concatenated are the row's `payload.text`.

use serde::Serialize;

pub use quire_protocol::{
    ChatEvent, Citation, ContextChunk, EventBody, FailureCode, MessageStatus,
};

/// A row for `append_chat_events` / `finish_chat_message`:
/// `{seq, kind, payload}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// The row's place in its answer.
    pub seq: i32,
    /// `kind` and `payload`.
    #[serde(flatten)]
    pub body: EventBody,
}

/// The SSE frame of `event`: `event: <kind>\ndata: <json>\n\n`.
pub fn to_sse(event: &ChatEvent) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event(event.body.kind())
        .data(serde_json::to_string(event).expect("chat events serialize"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn rows_have_the_shape_the_database_functions_take() {
        let row = EventRow {
            seq: 3,
            body: EventBody::Delta { text: "Hel".into() },
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({"seq": 3, "kind": "delta", "payload": {"text": "Hel"}})
        );
    }

    #[test]
    fn events_have_the_broadcast_shape() {
        let event = ChatEvent {
            message_id: Uuid::nil(),
            conversation_id: Uuid::nil(),
            seq: 3,
            body: EventBody::Status {
                state: Some("running".into()),
                run_id: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"message_id": Uuid::nil(), "conversation_id": Uuid::nil(), "seq": 3,
                   "kind": "status", "payload": {"state": "running", "run_id": null}})
        );
    }
}
