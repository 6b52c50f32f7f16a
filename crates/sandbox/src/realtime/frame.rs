//! Phoenix channel frames. Serializer vsn 1.0.0: one JSON object per text
//! frame. Serializer vsn 2.0.0 (supabase-js's default): one JSON array
//! `[join_ref, ref, topic, event, payload]` per text frame; server frames carry
//! the join ref of the channel's current join, except broadcasts (Phoenix's
//! fastlane sends `null`) and socket-level replies. Realtime ≥ 2.63 also sends
//! broadcasts as binary frames on vsn 2.0.0; realtime-js decodes both, the
//! sandbox sends text. realtime-js sends a broadcast with a JSON payload as a
//! binary "user broadcast push", which the sandbox reads
//! ([`ClientFrame::parse_binary`]; see `docs/platform-contract.md`).
//!
//! Client frames carry `topic`, `event`, `payload`, `ref` and optionally
//! `join_ref`; server frames carry `topic`, `event`, `payload` and `ref`, never
//! `join_ref` (Phoenix's V1 serializer drops it:
//! `lib/phoenix/socket/serializers/v1_json_serializer.ex`). Refs are echoed back exactly
//! as the client sent them (phoenix.js sends strings; anything JSON is kept).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The topic of socket-level messages (heartbeats).
pub const PHOENIX_TOPIC: &str = "phoenix";

/// Event names of the Phoenix channel protocol.
pub mod event {
    /// Client joins a channel.
    pub const JOIN: &str = "phx_join";
    /// Client leaves a channel.
    pub const LEAVE: &str = "phx_leave";
    /// Server reply to a client push.
    pub const REPLY: &str = "phx_reply";
    /// Server closed a channel normally.
    pub const CLOSE: &str = "phx_close";
    /// Socket keep-alive on the `phoenix` topic.
    pub const HEARTBEAT: &str = "heartbeat";
    /// Realtime: new JWT for a joined channel.
    pub const ACCESS_TOKEN: &str = "access_token";
    /// Realtime: broadcast message.
    pub const BROADCAST: &str = "broadcast";
    /// Realtime: presence track/untrack.
    pub const PRESENCE: &str = "presence";
    /// Realtime: server-side status of a channel.
    pub const SYSTEM: &str = "system";
    /// Realtime: full presence list after a join.
    pub const PRESENCE_STATE: &str = "presence_state";
    /// Realtime: presence joins and leaves.
    pub const PRESENCE_DIFF: &str = "presence_diff";
}

/// A frame received from a client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClientFrame {
    /// `realtime:<name>` for channel messages, `phoenix` for heartbeats.
    pub topic: String,
    /// The event name.
    pub event: String,
    /// Any JSON; a missing payload reads as `{}`.
    #[serde(default = "empty_object")]
    pub payload: Value,
    /// The push's ref, echoed in the reply (`null` when absent).
    #[serde(rename = "ref", default)]
    pub reference: Value,
    /// The ref of the `phx_join` this message belongs to (`null` when absent).
    #[serde(default)]
    pub join_ref: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Why a text frame is not a Phoenix message. The socket logs it and carries
/// on; nothing a client sends can end the connection by its shape alone.
#[derive(Debug, thiserror::Error)]
#[error("not a Phoenix vsn 1.0.0 message: {0}")]
pub struct FrameError(#[from] serde_json::Error);

/// The serializer a socket speaks, from its `vsn` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vsn {
    /// `1.0.0`: JSON objects.
    V1,
    /// `2.0.0`: JSON arrays `[join_ref, ref, topic, event, payload]`.
    V2,
}

impl Vsn {
    /// The serializer for a `vsn` value, as Phoenix matches them
    /// (`~> 1.0.0`, `~> 2.0.0`); `None` for any other.
    pub fn from_param(vsn: &str) -> Option<Self> {
        let mut parts = vsn.split('.');
        let major = parts.next()?;
        let minor = parts.next()?;
        let patch = parts.next()?;
        if parts.next().is_some() || minor != "0" || patch.parse::<u32>().is_err() {
            return None;
        }
        match major {
            "1" => Some(Vsn::V1),
            "2" => Some(Vsn::V2),
            _ => None,
        }
    }
}

impl ClientFrame {
    /// Parses one vsn 1.0.0 text frame.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Parses one text frame in the socket's serializer.
    pub fn parse_vsn(text: &str, vsn: Vsn) -> Result<Self, FrameError> {
        match vsn {
            Vsn::V1 => Self::parse(text),
            Vsn::V2 => {
                let (join_ref, reference, topic, event, payload): (
                    Value,
                    Value,
                    String,
                    String,
                    Value,
                ) = serde_json::from_str(text)?;
                Ok(ClientFrame {
                    topic,
                    event,
                    payload,
                    reference,
                    join_ref,
                })
            }
        }
    }
}

impl ClientFrame {
    /// Parses a vsn 2.0.0 binary frame: realtime-js sends a broadcast whose
    /// payload is JSON as a "user broadcast push" — kind 3; the byte lengths
    /// of join ref, ref, topic, user event and metadata; the payload encoding
    /// (0 binary, 1 JSON); those five strings; then the payload. Only JSON
    /// payloads are read (the sandbox keeps broadcasts as JSON).
    pub fn parse_binary(bytes: &[u8]) -> Result<Self, FrameError> {
        use serde::de::Error as _;
        let bad = |what: &str| FrameError(serde_json::Error::custom(what));
        let [kind, lengths @ .., encoding] = bytes.get(..7).ok_or_else(|| bad("short header"))?
        else {
            return Err(bad("short header"));
        };
        if *kind != 3 {
            return Err(bad("not a user broadcast push"));
        }
        if *encoding != 1 {
            return Err(bad("binary broadcast payloads are not supported"));
        }
        let mut rest = &bytes[7..];
        let mut parts = Vec::with_capacity(5);
        for &len in lengths {
            let len = usize::from(len);
            if rest.len() < len {
                return Err(bad("truncated"));
            }
            let part = std::str::from_utf8(&rest[..len]).map_err(|_| bad("not UTF-8"))?;
            parts.push(part.to_owned());
            rest = &rest[len..];
        }
        let user_payload: Value = serde_json::from_slice(rest)?;
        let mut payload = match parts[4].as_str() {
            "" => Map::new(),
            metadata => serde_json::from_str(metadata)?,
        };
        payload.insert("type".into(), json!("broadcast"));
        payload.insert("event".into(), json!(parts[3]));
        payload.insert("payload".into(), user_payload);
        let text_or_null = |s: &str| {
            if s.is_empty() { Value::Null } else { json!(s) }
        };
        Ok(ClientFrame {
            topic: parts[2].clone(),
            event: event::BROADCAST.to_owned(),
            payload: Value::Object(payload),
            reference: text_or_null(&parts[1]),
            join_ref: text_or_null(&parts[0]),
        })
    }
}

/// Re-encodes a V1 server frame (`ServerFrame::to_text`) as a V2 array.
/// `join_ref_of` gives the join ref of a topic's current join; `phoenix`
/// frames carry none, and a `phx_close` carries the ref of the join it ends.
pub fn v1_to_v2(text: &str, join_ref_of: impl Fn(&str) -> Option<Value>) -> String {
    let mut frame: Map<String, Value> =
        serde_json::from_str(text).expect("server frames are JSON objects");
    let topic = match frame.remove("topic") {
        Some(Value::String(topic)) => topic,
        _ => String::new(),
    };
    let event = frame.remove("event").unwrap_or(Value::Null);
    let reference = frame.remove("ref").unwrap_or(Value::Null);
    let payload = frame.remove("payload").unwrap_or(Value::Null);
    let join_ref = if topic == PHOENIX_TOPIC {
        Value::Null
    } else if event == event::CLOSE {
        reference.clone()
    } else {
        join_ref_of(&topic).unwrap_or(Value::Null)
    };
    json!([join_ref, reference, topic, event, payload]).to_string()
}

/// A frame sent to a client. Serializes to `{topic, event, payload, ref}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerFrame<'a> {
    /// The channel topic (`realtime:<name>`) or `phoenix`.
    pub topic: &'a str,
    /// The event name.
    pub event: &'a str,
    /// The payload.
    pub payload: Value,
    /// The ref being answered; `null` for server pushes.
    #[serde(rename = "ref")]
    pub reference: &'a Value,
}

/// Status of a `phx_reply`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// `"ok"`.
    Ok,
    /// `"error"`.
    Error,
}

impl ReplyStatus {
    fn as_str(self) -> &'static str {
        match self {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Error => "error",
        }
    }
}

static NULL: Value = Value::Null;

impl<'a> ServerFrame<'a> {
    /// A push with `"ref": null` (broadcasts, `system`, presence).
    pub fn push(topic: &'a str, event: &'a str, payload: Value) -> Self {
        ServerFrame {
            topic,
            event,
            payload,
            reference: &NULL,
        }
    }

    /// A `phx_reply` to the push with ref `reference`.
    pub fn reply(
        topic: &'a str,
        reference: &'a Value,
        status: ReplyStatus,
        response: Value,
    ) -> Self {
        ServerFrame {
            topic,
            event: event::REPLY,
            payload: json!({"status": status.as_str(), "response": response}),
            reference,
        }
    }

    /// A `phx_close` for the channel joined with `join_ref`.
    pub fn close(topic: &'a str, join_ref: &'a Value) -> Self {
        ServerFrame {
            topic,
            event: event::CLOSE,
            payload: empty_object(),
            reference: join_ref,
        }
    }

    /// A `system` message about channel `channel` (the name without `realtime:`).
    pub fn system(topic: &'a str, channel: &str, status: ReplyStatus, message: &str) -> Self {
        Self::push(
            topic,
            event::SYSTEM,
            json!({
                "extension": "system",
                "status": status.as_str(),
                "message": message,
                "channel": channel,
            }),
        )
    }

    /// The frame as JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("server frames serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_join_frame_parses() {
        let frame = ClientFrame::parse(
            r#"{"topic":"realtime:room:1","event":"phx_join","payload":{"config":{}},"ref":"1","join_ref":"1"}"#,
        )
        .unwrap();
        assert_eq!(frame.topic, "realtime:room:1");
        assert_eq!(frame.event, "phx_join");
        assert_eq!(frame.payload, json!({"config": {}}));
        assert_eq!(frame.reference, json!("1"));
        assert_eq!(frame.join_ref, json!("1"));
    }

    #[test]
    fn optional_parts_default_and_unknown_keys_are_ignored() {
        let frame =
            ClientFrame::parse(r#"{"topic":"phoenix","event":"heartbeat","extra":[1]}"#).unwrap();
        assert_eq!(frame.payload, json!({}));
        assert_eq!(frame.reference, Value::Null);
        assert_eq!(frame.join_ref, Value::Null);

        let frame =
            ClientFrame::parse(r#"{"topic":"t","event":"e","payload":null,"ref":7}"#).unwrap();
        assert_eq!(frame.payload, Value::Null);
        assert_eq!(frame.reference, json!(7));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for text in [
            "",
            "   ",
            "null",
            "[]",
            "\"phoenix\"",
            "{",
            "{}",
            r#"{"topic":"phoenix"}"#,
            r#"{"event":"heartbeat"}"#,
            r#"{"topic":1,"event":"heartbeat"}"#,
            r#"{"topic":"phoenix","event":null}"#,
            r#"[null,"1","phoenix","heartbeat",{}]"#,
            "\u{0}",
        ] {
            assert!(ClientFrame::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn server_frames_never_carry_join_ref() {
        let r = json!("3");
        let reply = ServerFrame::reply("phoenix", &r, ReplyStatus::Ok, json!({})).to_text();
        let value: Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(
            value,
            json!({"topic":"phoenix","event":"phx_reply","ref":"3","payload":{"status":"ok","response":{}}})
        );
        assert!(!reply.contains("join_ref"));

        let push = ServerFrame::push("realtime:a", "broadcast", json!({"x": 1})).to_text();
        let value: Value = serde_json::from_str(&push).unwrap();
        assert_eq!(value["ref"], Value::Null);
        assert_eq!(value.as_object().unwrap().len(), 4);
    }

    #[test]
    fn close_and_system_frames_have_the_realtime_shapes() {
        let join_ref = json!("5");
        let close: Value =
            serde_json::from_str(&ServerFrame::close("realtime:a", &join_ref).to_text()).unwrap();
        assert_eq!(
            close,
            json!({"topic":"realtime:a","event":"phx_close","payload":{},"ref":"5"})
        );

        let system: Value = serde_json::from_str(
            &ServerFrame::system(
                "realtime:a",
                "a",
                ReplyStatus::Error,
                "Token has expired 0 seconds ago",
            )
            .to_text(),
        )
        .unwrap();
        assert_eq!(
            system["payload"],
            json!({"extension":"system","status":"error","message":"Token has expired 0 seconds ago","channel":"a"})
        );
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".*") {
            let _ = ClientFrame::parse(&text);
        }

        #[test]
        fn arbitrary_json_never_panics(value in json_value()) {
            let _ = ClientFrame::parse(&value.to_string());
        }

        #[test]
        fn well_formed_frames_round_trip(
            topic in ".*",
            event in ".*",
            payload in json_value(),
            reference in prop_oneof![Just(Value::Null), "[0-9]{1,5}".prop_map(Value::String)],
            join_ref in prop_oneof![Just(Value::Null), "[0-9]{1,5}".prop_map(Value::String)],
        ) {
            let text = json!({
                "topic": topic, "event": event, "payload": payload,
                "ref": reference, "join_ref": join_ref,
            })
            .to_string();
            let frame = ClientFrame::parse(&text).unwrap();
            prop_assert_eq!(frame.topic, topic);
            prop_assert_eq!(frame.event, event);
            prop_assert_eq!(frame.payload, payload);
            prop_assert_eq!(frame.reference, reference);
            prop_assert_eq!(frame.join_ref, join_ref);
        }

        #[test]
        fn truncated_frames_are_rejected(cut in 0usize..60) {
            let text = r#"{"topic":"realtime:a","event":"broadcast","payload":{"type":"broadcast"},"ref":"2"}"#;
            let cut = cut.min(text.len() - 1);
            prop_assert!(ClientFrame::parse(&text[..cut]).is_err());
        }
    }
}
