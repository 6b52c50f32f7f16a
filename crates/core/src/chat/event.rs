//! Quire's chat event vocabulary, as the companion streams it over SSE, the
//! `chat_events` trigger broadcasts it over Realtime and the table stores
//! it. The types are `quire-protocol`'s, shared with the companion
//! (`crates/companion/EVENTS.md`); an `error` event carries the companion's
//! typed [`FailureCode`], a code this version does not know kept as
//! [`FailureCode::Unknown`], and a kind it does not know is kept as
//! [`EventBody::Unknown`].

use serde_json::Value;

pub use quire_protocol::{
    ChatEvent, Citation, ContextChunk, EventBody, FailureCode, MessageStatus, UnknownKind,
};

/// Parses an event from its JSON (SSE `data`, a Realtime broadcast payload,
/// or a `chat_events` row). The error names what is wrong.
pub fn from_json(value: Value) -> Result<ChatEvent, String> {
    serde_json::from_value(value).map_err(|e| format!("not a chat event: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn error_events_carry_the_companions_typed_code_and_keep_unknown_ones() {
        let event = |code: &str| {
            from_json(json!({
                "message_id": Uuid::nil(), "conversation_id": Uuid::nil(), "seq": 2,
                "kind": "error", "payload": {"code": code, "message": "m", "content": "Hel"},
            }))
            .unwrap()
            .body
        };
        let EventBody::Error { code, content, .. } = event("timeout") else {
            panic!()
        };
        assert_eq!(
            (code, content.as_str()),
            (Some(FailureCode::Timeout), "Hel")
        );
        let EventBody::Error { code, .. } = event("out_of_tea") else {
            panic!()
        };
        assert_eq!(code, Some(FailureCode::Unknown("out_of_tea".into())));
    }

    #[test]
    fn malformed_events_are_refused_with_a_reason() {
        let err = from_json(json!({"kind": "delta"})).unwrap_err();
        assert!(err.starts_with("not a chat event"), "{err}");
        assert!(
            from_json(
                json!({"message_id": Uuid::nil(), "conversation_id": Uuid::nil(),
                             "seq": 1, "kind": "delta", "payload": {}})
            )
            .is_err()
        );
    }
}
