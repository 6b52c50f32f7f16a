//! Phoenix channel frames, vsn 1.0.0 (docs/platform/supabase.md §2.2–2.4, §2.7):
//! every frame is one JSON object `{topic, event, payload, ref[, join_ref]}`.
//! The server never sends `join_ref`; broadcasts have `"ref": null`.
//!
//! Pure: building outgoing frames and classifying incoming ones. The socket
//! loop lives in the parent module.

use serde::Serialize;
use serde_json::{Value, json};

/// An outgoing frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outgoing {
    /// The channel's topic (`phoenix` for heartbeats).
    pub topic: String,
    /// What the frame asks: `phx_join`, `heartbeat`, ….
    pub event: &'static str,
    /// The event's own fields.
    pub payload: Value,
    /// The frame's `ref`, which the server's reply repeats.
    #[serde(rename = "ref")]
    pub reference: String,
    /// The `ref` of the join of the channel the frame is for; none for a
    /// heartbeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_ref: Option<String>,
}

impl Outgoing {
    /// `heartbeat` on topic `phoenix`.
    pub fn heartbeat(reference: String) -> Outgoing {
        Outgoing {
            topic: "phoenix".into(),
            event: "heartbeat",
            payload: json!({}),
            reference,
            join_ref: None,
        }
    }

    /// `phx_join` of a private broadcast channel with the user's token. The
    /// join's ref is also its join_ref.
    pub fn join(topic: &str, reference: String, access_token: &str) -> Outgoing {
        Outgoing {
            topic: topic.to_owned(),
            event: "phx_join",
            payload: json!({
                "config": {
                    "broadcast": {"self": false, "ack": false},
                    "presence": {"enabled": false, "key": ""},
                    "postgres_changes": [],
                    "private": true,
                },
                "access_token": access_token,
            }),
            join_ref: Some(reference.clone()),
            reference,
        }
    }

    /// `access_token`: the refreshed token for a joined channel (no reply).
    pub fn access_token(
        topic: &str,
        join_ref: &str,
        reference: String,
        access_token: &str,
    ) -> Outgoing {
        Outgoing {
            topic: topic.to_owned(),
            event: "access_token",
            payload: json!({"access_token": access_token}),
            reference,
            join_ref: Some(join_ref.to_owned()),
        }
    }

    /// `phx_leave`.
    pub fn leave(topic: &str, join_ref: &str, reference: String) -> Outgoing {
        Outgoing {
            topic: topic.to_owned(),
            event: "phx_leave",
            payload: json!({}),
            reference,
            join_ref: Some(join_ref.to_owned()),
        }
    }

    /// The frame as the socket's text message.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("frames serialize")
    }
}

/// A frame from the server, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `phx_reply` to the push with `reference`.
    Reply {
        /// The channel's topic.
        topic: String,
        /// The `ref` of the push it answers.
        reference: Option<String>,
        /// Whether its status is `ok`.
        ok: bool,
        /// The reply's `response` (`Null` when absent).
        response: Value,
    },
    /// `broadcast`: `event` and `payload` are the inner ones.
    Broadcast {
        /// The channel's topic.
        topic: String,
        /// The broadcast's own event name.
        event: String,
        /// The broadcast's own payload (`Null` when absent).
        payload: Value,
    },
    /// `system` (token problems, rate limits, "Server requested disconnect").
    System {
        /// The channel's topic.
        topic: String,
        /// Whether its status is `ok`.
        ok: bool,
        /// The server's message (empty when absent).
        message: String,
    },
    /// `phx_close`: the channel ended.
    Close {
        /// The channel's topic.
        topic: String,
    },
    /// `phx_error`: the channel process crashed.
    ChannelError {
        /// The channel's topic.
        topic: String,
    },
    /// Anything else (presence, postgres_changes…): ignored.
    Other {
        /// The channel's topic.
        topic: String,
        /// The frame's event name.
        event: String,
    },
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The text is not JSON; the parser's message.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not a frame's shape; what is missing.
    #[error("not a Phoenix frame: {0}")]
    NotAFrame(&'static str),
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Incoming, FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or(FrameError::NotAFrame("not an object"))?;
    let topic = object
        .get("topic")
        .and_then(Value::as_str)
        .ok_or(FrameError::NotAFrame("no topic"))?
        .to_owned();
    let event = object
        .get("event")
        .and_then(Value::as_str)
        .ok_or(FrameError::NotAFrame("no event"))?;
    let payload = object.get("payload").cloned().unwrap_or(Value::Null);
    let reference = match object.get("ref") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(match event {
        "phx_reply" => Incoming::Reply {
            topic,
            reference,
            ok: payload.get("status").and_then(Value::as_str) == Some("ok"),
            response: payload.get("response").cloned().unwrap_or(Value::Null),
        },
        "broadcast" => Incoming::Broadcast {
            topic,
            event: payload
                .get("event")
                .and_then(Value::as_str)
                .ok_or(FrameError::NotAFrame("a broadcast without an event"))?
                .to_owned(),
            payload: payload.get("payload").cloned().unwrap_or(Value::Null),
        },
        "system" => Incoming::System {
            topic,
            ok: payload.get("status").and_then(Value::as_str) == Some("ok"),
            message: payload
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
        "phx_close" => Incoming::Close { topic },
        "phx_error" => Incoming::ChannelError { topic },
        other => Incoming::Other {
            topic,
            event: other.to_owned(),
        },
    })
}

/// The reason in a join error reply (`{"reason": "Unauthorized: …"}`).
pub fn reason(response: &Value) -> String {
    response
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| response.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAMES: &str = include_str!("../../tests/fixtures/phoenix/frames.jsonl");

    #[test]
    fn recorded_frames_are_classified() {
        let parsed: Vec<Result<Incoming, FrameError>> = FRAMES
            .lines()
            .filter(|l| !l.is_empty())
            .map(parse)
            .collect();
        let topic = "realtime:user:5e0f3b5c-3f2d-4b7e-9a55-1f0e2d3c4b5a".to_owned();
        assert_eq!(
            parsed[0],
            Ok(Incoming::Reply {
                topic: topic.clone(),
                reference: Some("1".into()),
                ok: true,
                response: json!({"postgres_changes": []}),
            })
        );
        match &parsed[1] {
            Ok(Incoming::Broadcast { event, payload, .. }) => {
                assert_eq!(event, "delta");
                assert_eq!(payload["seq"], 3);
                assert_eq!(payload["payload"]["text"], "Pets are");
            }
            other => panic!("{other:?}"),
        }
        match &parsed[2] {
            Ok(Incoming::Broadcast { event, payload, .. }) => {
                assert_eq!(event, "document_status");
                assert_eq!(payload["status"], "indexing");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parsed[3],
            Ok(Incoming::Reply {
                topic: "phoenix".into(),
                reference: Some("7".into()),
                ok: true,
                response: json!({}),
            })
        );
        match &parsed[4] {
            Ok(Incoming::System {
                ok: false, message, ..
            }) => assert!(message.contains("expired")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parsed[5],
            Ok(Incoming::Close {
                topic: topic.clone()
            })
        );
        match &parsed[6] {
            Ok(Incoming::Reply {
                ok: false,
                response,
                ..
            }) => {
                assert!(reason(response).starts_with("Unauthorized"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parsed[7], Ok(Incoming::ChannelError { topic }));
        // The malformed ones.
        assert!(matches!(parsed[8], Err(FrameError::NotJson(_))));
        assert_eq!(parsed[9], Err(FrameError::NotAFrame("not an object")));
        assert_eq!(parsed[10], Err(FrameError::NotAFrame("no topic")));
        assert_eq!(
            parsed[11],
            Err(FrameError::NotAFrame("a broadcast without an event"))
        );
        assert!(
            matches!(parsed[12], Ok(Incoming::Other { ref event, .. }) if event == "presence_state")
        );
        assert!(
            matches!(parsed[13], Err(FrameError::NotJson(_))),
            "a frame cut in half"
        );
    }

    #[test]
    fn outgoing_frames_carry_join_ref_on_channel_messages() {
        let join = Outgoing::join("realtime:user:x", "1".into(), "jwt");
        let value: Value = serde_json::from_str(&join.to_text()).unwrap();
        assert_eq!(value["ref"], "1");
        assert_eq!(value["join_ref"], "1");
        assert_eq!(value["payload"]["config"]["private"], true);
        assert_eq!(value["payload"]["access_token"], "jwt");
        let refresh: Value = serde_json::from_str(
            &Outgoing::access_token("realtime:user:x", "1", "5".into(), "jwt2").to_text(),
        )
        .unwrap();
        assert_eq!(
            refresh,
            json!({"topic": "realtime:user:x", "event": "access_token", "ref": "5", "join_ref": "1", "payload": {"access_token": "jwt2"}})
        );
        let beat: Value = serde_json::from_str(&Outgoing::heartbeat("9".into()).to_text()).unwrap();
        assert_eq!(
            beat,
            json!({"topic": "phoenix", "event": "heartbeat", "ref": "9", "payload": {}})
        );
    }

    proptest::proptest! {
        #[test]
        fn no_input_makes_the_parser_panic(text in ".{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn any_json_object_with_topic_and_event_parses(topic in "[a-z:0-9-]{1,40}", event in "[a-z_]{1,20}") {
            let frame = json!({"topic": topic, "event": event, "payload": {"event": "x"}, "ref": null});
            proptest::prop_assert!(parse(&frame.to_string()).is_ok());
        }
    }
}
