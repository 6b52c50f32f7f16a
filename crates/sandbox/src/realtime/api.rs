//! `POST /realtime/v1/api/broadcast`: broadcasts without a socket.
//!
//! Body `{"messages":[{"topic","event","payload","private"?}]}` → `202` with
//! an empty body. Public messages go out as they are. Private ones are checked
//! against the INSERT policy on `realtime.messages` with the caller's JWT (once
//! per topic and request); the service role bypasses RLS, so its messages are
//! not checked; refused messages are dropped without a word, as on Realtime.
//! Without a valid token: `401 {"message":"Unauthorized"}`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::authorization::{self, AuthorizationContext, Extension};
use super::frame::{ServerFrame, event};
use super::join::flexible_bool;
use super::registry::TopicKey;
use super::{now_secs, request_headers, token};
use crate::http::json_response;
use crate::jwt::bearer_token;
use crate::state::AppState;

#[derive(Debug)]
struct Message {
    topic: String,
    event: String,
    payload: Map<String, Value>,
    private: bool,
}

/// Reads the batch; `Err` holds Phoenix-changeset-style errors for a 422.
fn parse_batch(body: &[u8]) -> Result<Vec<Message>, Value> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| json!({"messages": ["can't be blank"]}))?;
    let Some(items) = value.get("messages").and_then(Value::as_array) else {
        return Err(json!({"messages": ["can't be blank"]}));
    };
    let mut messages = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for item in items {
        let topic = item
            .get("topic")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        let event = item
            .get("event")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty());
        let payload = item.get("payload").and_then(Value::as_object);
        let private = match item.get("private") {
            None | Some(Value::Null) => Some(false),
            Some(v) => flexible_bool(v),
        };
        match (topic, event, payload, private) {
            (Some(topic), Some(event), Some(payload), Some(private)) => {
                messages.push(Message {
                    topic: topic.to_owned(),
                    event: event.to_owned(),
                    payload: payload.clone(),
                    private,
                });
                errors.push(json!({}));
            }
            _ => {
                let mut error = Map::new();
                if topic.is_none() {
                    error.insert("topic".into(), json!(["can't be blank"]));
                }
                if event.is_none() {
                    error.insert("event".into(), json!(["can't be blank"]));
                }
                if payload.is_none() {
                    error.insert("payload".into(), json!(["is invalid"]));
                }
                if private.is_none() {
                    error.insert("private".into(), json!(["is invalid"]));
                }
                errors.push(Value::Object(error));
            }
        }
    }
    if messages.len() != items.len() {
        return Err(json!({"messages": errors}));
    }
    Ok(messages)
}

/// The handler.
pub async fn broadcast(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let token =
        bearer_token(&headers).or_else(|| headers.get("apikey").and_then(|v| v.to_str().ok()));
    let Some(verified) = token.and_then(|t| token::verify(&state.jwt, t, now_secs()).ok()) else {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Unauthorized"}),
        );
    };
    let messages = match parse_batch(&body) {
        Ok(messages) => messages,
        Err(errors) => {
            return json_response(StatusCode::UNPROCESSABLE_ENTITY, &json!({"errors": errors}));
        }
    };

    let bypass = verified.role == "service_role";
    let mut allowed: HashMap<String, bool> = HashMap::new();
    for message in messages {
        if message.private && !bypass {
            let may = match allowed.get(&message.topic) {
                Some(&may) => may,
                None => {
                    let context = AuthorizationContext {
                        topic: message.topic.clone(),
                        role: verified.role.clone(),
                        claims: verified.claims.clone(),
                        headers: request_headers(&headers),
                    };
                    let may = match authorization::may_write(
                        &state.db.realtime,
                        &context,
                        Extension::Broadcast,
                    )
                    .await
                    {
                        Ok(may) => may,
                        Err(error) => {
                            tracing::warn!(%error, topic = %message.topic, "REST broadcast write check failed");
                            false
                        }
                    };
                    allowed.insert(message.topic.clone(), may);
                    may
                }
            };
            if !may {
                continue;
            }
        }
        let key = TopicKey::new(message.topic, message.private);
        let wire = key.wire_topic();
        let payload =
            json!({"type": "broadcast", "event": message.event, "payload": message.payload});
        let text = ServerFrame::push(&wire, event::BROADCAST, payload).to_text();
        state
            .realtime
            .registry()
            .broadcast(&key, text.into(), None, None);
    }
    StatusCode::ACCEPTED.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_parses() {
        let messages = parse_batch(
            br#"{"messages":[{"topic":"room:1","event":"e","payload":{"a":1}},
                             {"topic":"user:x","event":"f","payload":{},"private":"true"}]}"#,
        )
        .unwrap();
        assert_eq!(messages.len(), 2);
        assert!(!messages[0].private);
        assert!(messages[1].private);
    }

    #[test]
    fn invalid_batches_say_what_is_wrong() {
        assert!(parse_batch(b"not json").is_err());
        assert!(parse_batch(br#"{"message":[]}"#).is_err());
        let errors =
            parse_batch(br#"{"messages":[{"topic":"t","event":"e","payload":1}]}"#).unwrap_err();
        assert_eq!(errors, json!({"messages": [{"payload": ["is invalid"]}]}));
    }
}
