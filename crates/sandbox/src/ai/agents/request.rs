//! The body of `POST /api/agents/{id}/run` and `/run/stream`
//! and the checks made before anything runs — each failure is a plain JSON
//! error, never a stream:
//!
//! 1. an end user may not point the run at stored data: `knowledge_bases`,
//!    `runtime_knowledge_bases`, `context_handler_id` or by-reference
//!    `context_items` ⇒ 403 naming the fields;
//! 2. `message` is required ⇒ 400 `message is required`;
//! 3. at most one of `knowledge_bases`, `context_handler_id`,
//!    `context_override`, `context_items` ⇒ 400 (the platform's message);
//! 4. `runtime_knowledge_bases` is refused on `/run` (no tool loop) — and by
//!    the sandbox on `/run/stream`, which does not emulate it;
//! 5. `session_id` must be a string of at most 255 characters ⇒ 400.
//!
//! A field is "set" when it is truthy in Python's sense, as on the platform.

use serde_json::{Map, Value};

use super::sessions::parse_session_id;
use super::truthy;
use crate::ai::{ApiCaller, ApiError};

/// The 400 of the only-one-of rule.
pub(crate) const ONLY_ONE_CONTEXT: &str = "Only one of 'knowledge_bases', 'context_handler_id', 'context_override', or 'context_items' may be provided";
const RUNTIME_KB_NEEDS_STREAM: &str = "'runtime_knowledge_bases' requires the streaming endpoint \
     POST /api/agents/{agent_id}/run/stream — the non-streaming run has no tool loop";
const RUNTIME_KB_UNSUPPORTED: &str = "runtime_knowledge_bases is not supported by the sandbox; \
     attach the knowledge base to the agent or pass knowledge_bases";
const FORBIDDEN_FOR_USERS: [&str; 3] = [
    "knowledge_bases",
    "runtime_knowledge_bases",
    "context_handler_id",
];

/// A checked run request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunRequest {
    pub(crate) message: String,
    pub(crate) session_id: Option<String>,
    pub(crate) context: ContextSource,
    pub(crate) citations_enabled: bool,
}

/// Where the run's context comes from (at most one source).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ContextSource {
    None,
    /// `context_override`: raw text appended to the system prompt.
    Override(String),
    /// `context_items`, in order.
    Items(Vec<RawItem>),
    /// `knowledge_bases`: pre-retrieval from these knowledge bases (service role).
    KnowledgeBases(Vec<KnowledgeBaseRequest>),
    /// `context_handler_id` (service role). The sandbox keeps no context
    /// handlers, so such a run answers 404 `Context handler not found`.
    Handler(String),
}

/// One entry of `context_items`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawItem {
    /// `{text, meta}`; every other key is dropped, as on the platform.
    Value { text: String, meta: Value },
    /// `{item_id}`, looked up in `ai.chunks` (service role).
    Ref(String),
}

/// One entry of `knowledge_bases`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KnowledgeBaseRequest {
    pub(crate) id: String,
    pub(crate) top_k: Option<i64>,
}

/// Why an end user may not send this body, in the platform's words, or `None`.
pub(crate) fn end_user_error(body: &Map<String, Value>) -> Option<String> {
    let mut named: Vec<&str> = FORBIDDEN_FOR_USERS
        .iter()
        .copied()
        .filter(|f| truthy(body.get(*f)))
        .collect();
    let by_reference = body
        .get("context_items")
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items
                .iter()
                .any(|i| i.is_object() && truthy(i.get("item_id")))
        });
    if by_reference {
        named.push("context_items[].item_id");
    }
    (!named.is_empty()).then(|| {
        format!(
            "{} may only be set with the project's service role key; an end user's run uses the \
             knowledge bases configured on the agent",
            named.join(", ")
        )
    })
}

/// Checks a run body (see the module docs for the order of the checks).
pub(crate) fn parse(
    body: &Value,
    caller: &ApiCaller,
    streaming: bool,
) -> Result<RunRequest, ApiError> {
    let empty = Map::new();
    let data = body.as_object().unwrap_or(&empty);

    if !caller.is_service_role()
        && let Some(message) = end_user_error(data)
    {
        return Err(ApiError::forbidden(message));
    }
    let message = match data.get("message") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(v) if truthy(Some(v)) => {
            return Err(ApiError::bad_request("message must be a string"));
        }
        _ => return Err(ApiError::bad_request("message is required")),
    };
    let sources = [
        "knowledge_bases",
        "context_handler_id",
        "context_override",
        "context_items",
    ];
    if sources.iter().filter(|k| truthy(data.get(**k))).count() > 1 {
        return Err(ApiError::bad_request(ONLY_ONE_CONTEXT));
    }
    if !streaming
        && data
            .get("runtime_knowledge_bases")
            .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::bad_request(RUNTIME_KB_NEEDS_STREAM));
    }
    if streaming && truthy(data.get("runtime_knowledge_bases")) {
        return Err(ApiError::bad_request(RUNTIME_KB_UNSUPPORTED));
    }
    let session_id = parse_session_id(data.get("session_id"))?;

    let context = if truthy(data.get("knowledge_bases")) {
        ContextSource::KnowledgeBases(knowledge_bases(&data["knowledge_bases"])?)
    } else if truthy(data.get("context_handler_id")) {
        let id = match &data["context_handler_id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        ContextSource::Handler(id)
    } else if truthy(data.get("context_override")) {
        match &data["context_override"] {
            Value::String(s) => ContextSource::Override(s.clone()),
            _ => return Err(ApiError::bad_request("context_override must be a string")),
        }
    } else if truthy(data.get("context_items")) {
        ContextSource::Items(context_items(&data["context_items"])?)
    } else {
        ContextSource::None
    };

    Ok(RunRequest {
        message,
        session_id,
        context,
        citations_enabled: truthy(data.get("citations_enabled")),
    })
}

fn context_items(value: &Value) -> Result<Vec<RawItem>, ApiError> {
    let Some(list) = value.as_array() else {
        return Err(ApiError::bad_request("context_items must be a list"));
    };
    let mut items = Vec::with_capacity(list.len());
    for item in list {
        let Some(item) = item.as_object() else {
            continue;
        };
        if truthy(item.get("item_id")) {
            let id = match &item["item_id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            items.push(RawItem::Ref(id));
        } else if let Some(text) = item.get("text") {
            let text = match text {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let meta = match item.get("meta") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(meta) => meta.clone(),
            };
            items.push(RawItem::Value { text, meta });
        }
    }
    Ok(items)
}

fn knowledge_bases(value: &Value) -> Result<Vec<KnowledgeBaseRequest>, ApiError> {
    let Some(list) = value.as_array() else {
        return Err(ApiError::bad_request("knowledge_bases must be a list"));
    };
    list.iter()
        .map(|entry| {
            let id = entry
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("Each knowledge_bases entry needs an id"))?;
            let top_k = entry.get("top_k").and_then(Value::as_i64);
            Ok(KnowledgeBaseRequest {
                id: id.to_owned(),
                top_k,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err(body: Value, caller: &ApiCaller, streaming: bool) -> u16 {
        parse(&body, caller, streaming)
            .unwrap_err()
            .status()
            .as_u16()
    }

    #[test]
    fn end_user_errors_name_every_forbidden_field() {
        let body = json!({"knowledge_bases": [{"id": "k"}], "context_handler_id": "h",
                          "context_items": [{"text": "a"}, {"item_id": "x"}]});
        assert_eq!(
            end_user_error(body.as_object().unwrap()).unwrap(),
            "knowledge_bases, context_handler_id, context_items[].item_id may only be set with the \
             project's service role key; an end user's run uses the knowledge bases configured on the agent"
        );
        let fine = json!({"context_items": [{"text": "a", "meta": {}}], "context_override": "x", "knowledge_bases": []});
        assert_eq!(end_user_error(fine.as_object().unwrap()), None);
    }

    #[test]
    fn checks_come_in_the_platform_order() {
        let service = ApiCaller::ServiceRole;
        assert_eq!(err(json!({}), &service, true), 400);
        assert_eq!(
            err(
                json!({"message": "q", "context_override": "a", "context_items": [{"text": "b"}]}),
                &service,
                true
            ),
            400
        );
        assert_eq!(
            err(
                json!({"message": "q", "runtime_knowledge_bases": []}),
                &service,
                false
            ),
            400
        );
        assert_eq!(
            err(json!({"message": "q", "session_id": 7}), &service, true),
            400
        );
    }

    #[test]
    fn by_value_items_keep_text_and_meta_only() {
        let body = json!({"message": "q", "context_items": [
            {"text": "one", "meta": {"page": 1}, "source_id": "dropped"},
            {"item_id": "c1"},
            {"neither": true},
            {"text": "two"}]});
        let req = parse(&body, &ApiCaller::ServiceRole, true).unwrap();
        assert_eq!(
            req.context,
            ContextSource::Items(vec![
                RawItem::Value {
                    text: "one".into(),
                    meta: json!({"page": 1})
                },
                RawItem::Ref("c1".into()),
                RawItem::Value {
                    text: "two".into(),
                    meta: json!({})
                },
            ])
        );
        assert!(!req.citations_enabled);
    }
}
