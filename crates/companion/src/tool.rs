//! The user-aware search tool `search_my_documents` (`ARCHITECTURE.md#ask`,
//! step 5).
//!
//! Custom HTTP tools receive no user identity from the platform
//! (docs/platform/ai-api.md §6.2; docs/platform-contract.md): only the
//! arguments the model chose and the tool's static headers. So each run gets an opaque
//! `session_token` ([`mint_session_token`], stored as its sha-256 in
//! `tool_sessions` with owner, conversation and expiry), the instruction
//! item tells the agent to pass it, and the endpoint ([`search_documents`])
//!
//! 1. checks the static callback secret (the tool's `Authorization` header);
//! 2. in one request through PostgREST, `search_with_tool_session`
//!    (db/app/94_tool_search.sql), resolves the token to its session and
//!    runs `search_conversation_chunks` (`search_chunks` in the documents the
//!    run's conversation asks about) as the session's owner, so RLS is still
//!    the gate; an unknown, expired or finished token gets the same 401 as
//!    a missing secret, and nothing else;
//! 3. answers compact JSON the agent can quote.
//!
//! [`ensure_registered`] makes sure, at start-up, that the tool exists with
//! this companion's endpoint and secret and is assigned to the agent.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::auth::bearer;
use crate::platform::{Auth, Platform, PlatformError};
use crate::server::AppState;

/// The tool's name, as the agent sees it.
pub const TOOL_NAME: &str = "search_my_documents";
/// The endpoint's path on the companion.
pub const TOOL_PATH: &str = "/internal/tools/search-documents";
/// Results returned per search.
const MATCH_COUNT: i64 = 8;
/// Characters of one result's text (the platform cuts a tool's answer at
/// 10 000 characters: docs/platform-contract.md).
const RESULT_CHARS: usize = 1000;
/// Characters of a query the tool searches with: the start of what the
/// model sent. `search_chunks` cuts again, to the same characters and then
/// to its first 64 lexemes (db/app/82_search_bounds.sql); cutting here first
/// keeps a long query from even reaching the database.
pub const MAX_QUERY_CHARS: usize = 1000;
/// The most characters of a tool answer the platform passes on whole
/// (`MAX_TOOL_OUTPUT_LENGTH`; longer answers are cut, and a cut answer is no
/// longer JSON).
pub const MAX_TOOL_OUTPUT_CHARS: usize = 10_000;

/// A new `session_token` and the hash stored for it.
pub fn mint_session_token() -> (SecretString, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator works");
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("qst_{hex}");
    let hash = token_hash(&token);
    (SecretString::from(token), hash)
}

/// The sha-256 (hex) under which a token is stored.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tool's definition for `POST`/`PUT /api/tools`.
fn definition(endpoint: &str, secret: &SecretString) -> Value {
    json!({
        "name": TOOL_NAME,
        "description": "Search the signed-in user's own uploaded documents. Returns passages with \
                        their document title and page.",
        "type": "http",
        "input_schema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for."},
                "session_token": {"type": "string",
                                  "description": "The session_token given in the context, exactly."}
            },
            "required": ["query", "session_token"]
        },
        "config": {
            "endpoint": endpoint,
            "method": "POST",
            "headers": {"Authorization": format!("Bearer {}", secret.expose_secret())},
            "timeout_seconds": 30
        }
    })
}

/// The tool's endpoint: `public_base` + [`TOOL_PATH`].
pub fn endpoint(public_base: &str) -> String {
    format!("{}{TOOL_PATH}", public_base.trim_end_matches('/'))
}

/// Creates or updates the tool so it calls `public_base` + [`TOOL_PATH`]
/// with `secret`, and assigns it to `agent` (once). Idempotent.
pub async fn ensure_registered(
    platform: &Platform,
    agent: Uuid,
    public_base: &str,
    secret: &SecretString,
) -> Result<Uuid, PlatformError> {
    let definition = definition(&endpoint(public_base), secret);

    let listed: Value = platform
        .json(
            "GET /api/tools",
            platform.request(Method::GET, "/api/tools", Auth::Service),
        )
        .await?;
    let existing = listed
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("name").and_then(Value::as_str) == Some(TOOL_NAME))
        .find_map(|t| t.get("id").and_then(Value::as_str)?.parse::<Uuid>().ok());
    let tool_id = match existing {
        Some(id) => {
            platform
                .call(
                    "PUT /api/tools/{id}",
                    platform
                        .request(Method::PUT, &format!("/api/tools/{id}"), Auth::Service)
                        .json(&definition),
                )
                .await?;
            id
        }
        None => {
            let created: Value = platform
                .json(
                    "POST /api/tools",
                    platform
                        .request(Method::POST, "/api/tools", Auth::Service)
                        .json(&definition),
                )
                .await?;
            created
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| PlatformError::Decode {
                    what: "POST /api/tools".to_owned(),
                    detail: "no id".to_owned(),
                    body: created.to_string(),
                })?
        }
    };

    let path = format!("/api/agents/{agent}/tools");
    let assigned: Value = platform
        .json(
            "GET /api/agents/{id}/tools",
            platform.request(Method::GET, &path, Auth::Service),
        )
        .await?;
    let mut ours = false;
    for assignment in assigned
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("tool_name").and_then(Value::as_str) == Some(TOOL_NAME))
    {
        let same_tool =
            assignment.get("tool_id").and_then(Value::as_str) == Some(tool_id.to_string().as_str());
        if same_tool && !ours {
            ours = true;
            continue;
        }
        // A stale or duplicate assignment would make the agent call twice.
        if let Some(id) = assignment.get("id").and_then(Value::as_str) {
            platform
                .call(
                    "DELETE /api/agents/{id}/tools/{assignment}",
                    platform.request(Method::DELETE, &format!("{path}/{id}"), Auth::Service),
                )
                .await?;
        }
    }
    if !ours {
        platform
            .call(
                "POST /api/agents/{id}/tools",
                platform.request(Method::POST, &path, Auth::Service).json(
                    &json!({"tool_type": "custom", "tool_name": TOOL_NAME, "tool_id": tool_id}),
                ),
            )
            .await?;
    }
    Ok(tool_id)
}

#[derive(Deserialize)]
struct Hit {
    id: Uuid,
    document_id: Uuid,
    title: String,
    page: Option<i32>,
    text: String,
}

/// The one answer to every caller that is not a live run of a user.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "unauthorized"})),
    )
        .into_response()
}

/// `POST /internal/tools/search-documents` (called by the platform): the
/// `tool_call` stage of an answer ([`crate::metrics`]).
pub async fn search_documents(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let metrics = state.metrics.clone();
    metrics
        .stage("tool_call", answer_tool_call(state, headers, body))
        .await
}

async fn answer_tool_call(state: AppState, headers: HeaderMap, body: Bytes) -> Response {
    let secret = state.config.tool_secret.expose_secret().as_bytes();
    let presented = bearer(&headers).unwrap_or_default().as_bytes();
    if !bool::from(presented.ct_eq(secret)) {
        return unauthorized();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return unauthorized();
    };
    let Some(token) = body.get("session_token").and_then(Value::as_str) else {
        return unauthorized();
    };
    let query = bounded_query(
        body.get("query")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    if query.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "query is required"})),
        )
            .into_response();
    }
    // One request: the database resolves the token to its session and
    // searches as the session's owner, in the documents the run's
    // conversation asks about, so RLS is still the gate
    // (db/app/94_tool_search.sql). The caller is the companion's own
    // identity, the nil user, which owns nothing.
    let companion_token = state.jwt.sign_user_token(Uuid::nil());
    let hits: Result<Vec<Hit>, _> = state
        .platform
        .rpc(
            Auth::User(&companion_token),
            "search_with_tool_session",
            &json!({"session_token": token, "query": query, "match_count": MATCH_COUNT}),
        )
        .await;
    match hits {
        Ok(hits) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            results_body(hits),
        )
            .into_response(),
        Err(err) if unknown_session(&err) => unauthorized(),
        Err(err) => {
            tracing::warn!(error = %err, "the search tool's search failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "search is temporarily unavailable"})),
            )
                .into_response()
        }
    }
}

/// Whether the search was refused because its token names no live session:
/// unknown, expired or finished (`PT401`, hint `tool_session_unknown`).
fn unknown_session(err: &PlatformError) -> bool {
    matches!(err, PlatformError::Status { status: 401, body, .. }
        if body.contains("tool_session_unknown"))
}

/// The query searched for `raw`: trimmed, then its first
/// [`MAX_QUERY_CHARS`] characters.
fn bounded_query(raw: &str) -> &str {
    let query = raw.trim();
    match query.char_indices().nth(MAX_QUERY_CHARS) {
        Some((end, _)) => query[..end].trim_end(),
        None => query,
    }
}

/// Characters of a result's document title.
const TITLE_CHARS: usize = 200;

/// The tool's answer: `{"results": [...]}`, best hit first, always whole JSON
/// within [`MAX_TOOL_OUTPUT_CHARS`] (measured after escaping): hits that do
/// not fit are left out, and a first hit that alone does not fit has its text
/// shortened. Nothing is ever cut mid-JSON.
fn results_body(hits: Vec<Hit>) -> String {
    let body = |kept: &[Value]| json!({ "results": kept }).to_string();
    let mut kept: Vec<Value> = Vec::new();
    for h in hits {
        let title: String = h.title.chars().take(TITLE_CHARS).collect();
        let mut chars = RESULT_CHARS;
        loop {
            let text: String = h.text.chars().take(chars).collect();
            kept.push(json!({"title": title, "page": h.page, "text": text,
                             "document_id": h.document_id, "chunk_id": h.id}));
            if body(&kept).chars().count() <= MAX_TOOL_OUTPUT_CHARS {
                break;
            }
            kept.pop();
            if !kept.is_empty() || chars == 0 {
                return body(&kept);
            }
            chars /= 2;
        }
    }
    body(&kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(title: &str, text: &str) -> Hit {
        Hit {
            id: Uuid::new_v4(),
            document_id: Uuid::new_v4(),
            title: title.to_owned(),
            page: Some(1),
            text: text.to_owned(),
        }
    }

    /// The platform cuts a tool's answer at 10,000 characters; a cut answer
    /// is no longer JSON. Worst cases: text that escapes to six characters a
    /// character, long titles, more hits than fit.
    #[test]
    fn every_answer_is_whole_json_within_the_platform_limit() {
        let cases: Vec<Vec<Hit>> = vec![
            (0..8)
                .map(|_| hit("Manual", &"\u{1}".repeat(5000)))
                .collect(),
            (0..8).map(|_| hit(&"T".repeat(20_000), "short")).collect(),
            (0..8)
                .map(|_| hit("Manual", &"\"\n".repeat(3000)))
                .collect(),
            (0..8).map(|_| hit("Manual", &"é".repeat(3000))).collect(),
            vec![hit("Manual", "The motor is covered for five years.")],
            vec![],
        ];
        for hits in cases {
            let body = results_body(hits);
            assert!(
                body.chars().count() <= MAX_TOOL_OUTPUT_CHARS,
                "{} characters",
                body.chars().count()
            );
            let parsed: Value = serde_json::from_str(&body).expect("whole JSON");
            assert!(parsed["results"].is_array());
        }
        let one = results_body(vec![hit("Manual", "The motor is covered for five years.")]);
        let parsed: Value = serde_json::from_str(&one).unwrap();
        assert_eq!(
            parsed["results"][0]["text"],
            "The motor is covered for five years."
        );
        // At least one result survives even the worst escaping.
        let worst = results_body(
            (0..8)
                .map(|_| hit("Manual", &"\u{1}".repeat(5000)))
                .collect(),
        );
        let parsed: Value = serde_json::from_str(&worst).unwrap();
        assert!(!parsed["results"].as_array().unwrap().is_empty());
    }

    #[test]
    fn a_query_is_searched_by_its_first_thousand_characters() {
        assert_eq!(bounded_query("  motor warranty \n"), "motor warranty");
        assert_eq!(bounded_query(""), "");
        let long = format!("motor {}", "é".repeat(200_000));
        let bounded = bounded_query(&long);
        assert_eq!(bounded.chars().count(), MAX_QUERY_CHARS);
        assert!(bounded.starts_with("motor é"));
        let exactly = "x".repeat(MAX_QUERY_CHARS);
        assert_eq!(bounded_query(&exactly), exactly);
    }

    #[test]
    fn tokens_are_random_and_stored_only_as_their_hash() {
        let (a, hash_a) = mint_session_token();
        let (b, _) = mint_session_token();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().starts_with("qst_"));
        assert_eq!(a.expose_secret().len(), 4 + 64);
        assert_eq!(hash_a, token_hash(a.expose_secret()));
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a.expose_secret()[4..]));
    }
}
