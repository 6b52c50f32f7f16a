//! The `phx_join` payload, read the way Realtime's `Payloads.Join` reads it:
//! unknown keys are ignored, booleans may also be the strings `"true"` and
//! `"false"`, and a field of the wrong type keeps its default (Realtime logs
//! `InvalidJoinPayload` and joins with the defaults; it never refuses the join
//! for it).

use serde_json::{Map, Value};

/// What a client asked for when joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinParams {
    /// The JWT for this channel (`user_token` wins over `access_token`, as in
    /// Realtime); `None` means "use the socket's connect token": absent, not a
    /// string, or an `sb_…` API key.
    pub access_token: Option<String>,
    /// `config.private`: authorize against `realtime.messages` RLS.
    pub private: bool,
    /// `config.broadcast.self`: receive one's own broadcasts.
    pub broadcast_self: bool,
    /// `config.broadcast.ack`: reply to every broadcast push.
    pub broadcast_ack: bool,
    /// Presence state and diffs are pushed to this channel. Realtime enables
    /// presence unless the client sends `config.presence.enabled: false` (or
    /// sends no `presence.enabled` inside a present `presence` map).
    pub presence_enabled: bool,
    /// `config.presence.key`; `None` when empty or absent (the server then
    /// picks a UUID).
    pub presence_key: Option<String>,
    /// `config.postgres_changes`, as sent (the sandbox does not implement
    /// Postgres Changes; see the module docs of `realtime`).
    pub postgres_changes: Vec<Value>,
    /// `config.broadcast.replay`, as sent (see [`replay_window`]).
    pub replay: Option<Value>,
    /// `config.broadcast.replication_ready`: push a `system` message once
    /// database broadcasts are flowing.
    pub replication_ready: bool,
}

impl Default for JoinParams {
    fn default() -> Self {
        JoinParams {
            access_token: None,
            private: false,
            broadcast_self: false,
            broadcast_ack: false,
            presence_enabled: true,
            presence_key: None,
            postgres_changes: Vec::new(),
            replay: None,
            replication_ready: false,
        }
    }
}

impl JoinParams {
    /// Reads a join payload. Never fails: what cannot be read keeps its default.
    pub fn parse(payload: &Value) -> Self {
        let mut params = JoinParams::default();
        let Some(payload) = payload.as_object() else {
            return params;
        };
        params.access_token = channel_token(payload);

        let Some(config) = payload.get("config").and_then(Value::as_object) else {
            return params;
        };
        if let Some(private) = config.get("private").and_then(flexible_bool) {
            params.private = private;
        }
        if let Some(broadcast) = config.get("broadcast").and_then(Value::as_object) {
            if let Some(value) = broadcast.get("self").and_then(flexible_bool) {
                params.broadcast_self = value;
            }
            if let Some(value) = broadcast.get("ack").and_then(flexible_bool) {
                params.broadcast_ack = value;
            }
            params.replay = broadcast.get("replay").filter(|v| !v.is_null()).cloned();
            if let Some(value) = broadcast.get("replication_ready").and_then(flexible_bool) {
                params.replication_ready = value;
            }
        }
        if let Some(presence) = config.get("presence").and_then(Value::as_object) {
            // Inside a presence map, `enabled` defaults to false.
            params.presence_enabled = presence
                .get("enabled")
                .and_then(flexible_bool)
                .unwrap_or(false);
            params.presence_key = match presence.get("key") {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            };
        }
        if let Some(Value::Array(changes)) = config.get("postgres_changes") {
            params.postgres_changes = changes.iter().filter(|v| !v.is_null()).cloned().collect();
        }
        params
    }
}

/// Most messages a replay returns, as Realtime's `Messages.replay` caps it.
pub const REPLAY_HARD_LIMIT: i64 = 25;

/// A replay request: messages inserted at or after `since_ms` (unix
/// milliseconds), the newest `limit` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Unix milliseconds.
    pub since_ms: i64,
    /// 1 to [`REPLAY_HARD_LIMIT`].
    pub limit: i64,
}

/// Reads `config.broadcast.replay`: `Ok(None)` when it is not a map (no
/// replay), `Err(())` when `since` or `limit` is not an integer
/// (`UnableToReplayMessages: Replay params are not valid`).
#[allow(clippy::result_unit_err)]
pub fn replay_window(replay: &Value) -> Result<Option<ReplayWindow>, ()> {
    let Some(replay) = replay.as_object() else {
        return Ok(None);
    };
    let integer = |key: &str, default: i64| match replay.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_i64().ok_or(()),
    };
    let since_ms = integer("since", 0)?;
    let limit = integer("limit", 10)?.clamp(1, REPLAY_HARD_LIMIT);
    Ok(Some(ReplayWindow { since_ms, limit }))
}

/// Realtime's `FlexibleBoolean`: a JSON boolean or the strings "true"/"false"
/// (any case); anything else is invalid (`None`).
pub fn flexible_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The channel token as Realtime's `assign_access_token` picks it: an `sb_…`
/// key in `access_token` (or `user_token`) means the connect token; otherwise
/// a string `user_token`, then a string `access_token`.
fn channel_token(payload: &Map<String, Value>) -> Option<String> {
    let as_str = |key: &str| payload.get(key).and_then(Value::as_str);
    let first = payload
        .get("access_token")
        .filter(|v| !v.is_null() && *v != &Value::Bool(false))
        .or_else(|| payload.get("user_token"));
    if first
        .and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("sb_"))
    {
        return None;
    }
    as_str("user_token")
        .or_else(|| as_str("access_token"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn a_realtime_js_join_reads_fully() {
        let params = JoinParams::parse(&json!({
            "config": {
                "broadcast": {"self": true, "ack": true},
                "presence": {"enabled": false, "key": ""},
                "postgres_changes": [],
                "private": true
            },
            "access_token": "eyJ.user"
        }));
        assert_eq!(
            params,
            JoinParams {
                access_token: Some("eyJ.user".into()),
                private: true,
                broadcast_self: true,
                broadcast_ack: true,
                presence_enabled: false,
                presence_key: None,
                postgres_changes: vec![],
                replay: None,
                replication_ready: false,
            }
        );
    }

    #[test]
    fn booleans_may_be_strings() {
        let params = JoinParams::parse(&json!({
            "config": {"private": "true", "broadcast": {"self": "TRUE", "ack": "false"},
                       "presence": {"enabled": "true", "key": "me"}}
        }));
        assert!(params.private && params.broadcast_self && !params.broadcast_ack);
        assert!(params.presence_enabled);
        assert_eq!(params.presence_key.as_deref(), Some("me"));
    }

    #[test]
    fn wrong_types_keep_their_defaults_and_unknown_keys_are_ignored() {
        let params = JoinParams::parse(&json!({
            "config": {"private": "yes", "broadcast": "loud", "presence": 3, "future": {"x": 1}},
            "access_token": 42,
            "something": "else"
        }));
        assert_eq!(params, JoinParams::default());
        assert!(JoinParams::parse(&json!(null)).presence_enabled);
        assert_eq!(JoinParams::parse(&json!("x")), JoinParams::default());
    }

    #[test]
    fn the_channel_token_is_picked_like_realtime() {
        let token = |payload: Value| JoinParams::parse(&payload).access_token;
        assert_eq!(token(json!({})), None);
        assert_eq!(token(json!({"access_token": null})), None);
        assert_eq!(token(json!({"access_token": "a"})), Some("a".into()));
        assert_eq!(token(json!({"user_token": "u"})), Some("u".into()));
        assert_eq!(
            token(json!({"access_token": "a", "user_token": "u"})),
            Some("u".into())
        );
        assert_eq!(token(json!({"access_token": "sb_publishable_x"})), None);
        assert_eq!(
            token(json!({"access_token": "sb_secret_x", "user_token": "u"})),
            None
        );
    }

    #[test]
    fn presence_keys_may_be_numbers_or_booleans() {
        let key =
            |k: Value| JoinParams::parse(&json!({"config": {"presence": {"key": k}}})).presence_key;
        assert_eq!(key(json!(7)), Some("7".into()));
        assert_eq!(key(json!(true)), Some("true".into()));
        assert_eq!(key(json!("")), None);
        assert_eq!(key(json!({"a": 1})), None);
    }

    #[test]
    fn replay_windows_default_and_clamp() {
        assert_eq!(
            replay_window(&json!({})),
            Ok(Some(ReplayWindow {
                since_ms: 0,
                limit: 10
            }))
        );
        assert_eq!(
            replay_window(&json!({"since": 1_700_000_000_000_i64, "limit": 100})),
            Ok(Some(ReplayWindow {
                since_ms: 1_700_000_000_000,
                limit: 25
            }))
        );
        assert_eq!(
            replay_window(&json!({"limit": 0})).unwrap().unwrap().limit,
            1
        );
        assert_eq!(replay_window(&json!({"since": "yesterday"})), Err(()));
        assert_eq!(replay_window(&json!(true)), Ok(None));
    }

    proptest! {
        #[test]
        fn any_payload_parses_without_panicking(text in ".*", flag in any::<bool>()) {
            let _ = JoinParams::parse(&json!({"config": {"private": text, "broadcast": {"self": flag}}}));
            let _ = JoinParams::parse(&json!({"config": text, "access_token": flag}));
        }
    }
}
