//! Agent-scoped sessions (end-user routes; powabase-ai `routes/agents.py`)
//! and the rule a run binds to a session by (docs/platform-contract.md).
//!
//! - `GET /api/agents/{id}/sessions?limit&offset` → `{sessions:[{session_id,
//!   run_count, last_activity_at, created_at, first_message}], total, limit,
//!   offset}`; a user sees their own sessions only.
//! - `POST /api/agents/{id}/sessions` `{user_id?, initial_messages?}` → 201
//!   `{session_id}`. Only the service role may name `user_id` (a user who
//!   sends it gets 403); a user's session is theirs, a service-role session
//!   belongs to `user_id` or to nobody. Seed messages become synthetic
//!   completed runs, one per user/assistant pair.
//! - `DELETE /api/agents/{id}/sessions/{session_id}` → 204; 404 for a missing
//!   session, another agent's, or (for a user) one that is not theirs.
//!
//! And the session routes of `routes/sessions.py`, by public session id: `GET` and `DELETE
//! /api/sessions/{session_id}`, `…/messages` (the conversation rebuilt from
//! completed runs), `…/runs` and `…/runs/{run_id}/retrieved-context`. A
//! user reaches only their own sessions; anything else is 404 `Session not
//! found`.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::public_id;
use super::store::{RUN_COLUMNS, run_json};
use crate::ai::{ApiCaller, ApiError, JsonBody, timestamp};
use crate::http::json_response;
use crate::state::AppState;

/// The answer to a session that is missing or not the caller's.
pub(crate) const SESSION_NOT_FOUND: &str = "Session not found";
/// Longest public session id (`agent_sessions.session_id varchar(255)`).
pub(crate) const MAX_SESSION_ID_CHARS: usize = 255;
const MAX_SEED_MESSAGES: usize = 200;
const MAX_SEED_MESSAGE_CHARS: usize = 20_000;

/// `/api/agents/{id}/sessions…`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/agents/{agent_id}/sessions",
            get(list_sessions).post(create_session),
        )
        .route(
            "/agents/{agent_id}/sessions/{session_id}",
            delete(delete_session),
        )
        .route(
            "/sessions/{session_id}",
            get(get_session).delete(delete_by_id),
        )
        .route("/sessions/{session_id}/messages", get(messages))
        .route("/sessions/{session_id}/runs", get(runs))
        .route(
            "/sessions/{session_id}/runs/{run_id}/retrieved-context",
            get(retrieved_context),
        )
}

/// The session a run runs in.
#[derive(Debug, Clone)]
pub(crate) struct BoundSession {
    /// `agent_sessions.id`.
    pub(crate) uuid: Uuid,
    /// The public id (`sess_…`, or the service role's own choice).
    pub(crate) session_id: String,
    pub(crate) is_new: bool,
}

/// Why a run could not bind to a session.
#[derive(Debug)]
pub(crate) enum BindError {
    /// Missing, another agent's, or not the caller's: "Session not found".
    NotFound,
    Db(ApiError),
}

impl From<tokio_postgres::Error> for BindError {
    fn from(err: tokio_postgres::Error) -> Self {
        BindError::Db(err.into())
    }
}

/// Validates a `session_id` from a run body: a string of at most 255
/// characters, else 400.
pub(crate) fn parse_session_id(value: Option<&Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_SESSION_ID_CHARS => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            "session_id must be a string of at most 255 characters",
        )),
    }
}

/// Binds a run to its session:
///
/// - no `session_id`: a new `sess_…` session, owned by the calling user or,
///   for the service role, by nobody;
/// - a user may continue only an existing session of this agent that is
///   their own — anything else is [`BindError::NotFound`], so a user can
///   never create a session under an id of their choosing;
/// - the service role continues any session of this agent, and an unknown
///   id creates an unowned session under it (as `get_or_create_session`).
pub(crate) async fn bind(
    client: &deadpool_postgres::Client,
    agent_id: Uuid,
    requested: Option<&str>,
    caller: &ApiCaller,
) -> Result<BoundSession, BindError> {
    if let Some(requested) = requested {
        let row = client
            .query_opt(
                "select id, agent_id, user_id from ai.agent_sessions where session_id = $1",
                &[&requested],
            )
            .await?;
        return match (row, caller) {
            (Some(row), _) if row.get::<_, Option<Uuid>>(1) != Some(agent_id) => {
                Err(BindError::NotFound)
            }
            (Some(row), ApiCaller::User { id, .. })
                if row.get::<_, Option<Uuid>>(2) != Some(*id) =>
            {
                Err(BindError::NotFound)
            }
            (Some(row), _) => Ok(BoundSession {
                uuid: row.get(0),
                session_id: requested.to_owned(),
                is_new: false,
            }),
            (None, ApiCaller::User { .. }) => Err(BindError::NotFound),
            (None, ApiCaller::ServiceRole) => create(client, agent_id, requested, None).await,
        };
    }
    create(client, agent_id, &public_id("sess"), caller.user_id()).await
}

async fn create(
    client: &deadpool_postgres::Client,
    agent_id: Uuid,
    session_id: &str,
    owner: Option<Uuid>,
) -> Result<BoundSession, BindError> {
    let row = client
        .query_opt(
            "insert into ai.agent_sessions (session_id, agent_id, user_id) values ($1, $2, $3)
             on conflict (session_id) do nothing returning id",
            &[&session_id, &agent_id, &owner],
        )
        .await?;
    match row {
        Some(row) => Ok(BoundSession {
            uuid: row.get(0),
            session_id: session_id.to_owned(),
            is_new: true,
        }),
        // Created concurrently under the same id — possibly for another agent.
        None => Err(BindError::NotFound),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
}

async fn list_sessions(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(agent_id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    // As the platform: an unparsable limit is 50, and it is clamped to 1..=200.
    let limit = query
        .limit
        .and_then(|l| l.trim().parse::<i64>().ok())
        .unwrap_or(50)
        .clamp(1, 200);
    let offset = query
        .offset
        .and_then(|o| o.trim().parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let Ok(agent_id) = Uuid::parse_str(&agent_id) else {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"sessions": [], "total": 0, "limit": limit, "offset": offset}),
        ));
    };
    let owner = caller.user_id();
    let client = state.db.ai.get().await?;
    let rows = client
        .query(
            "select s.session_id, count(r.id) as run_count, max(r.created_at) as last_activity_at,
                    s.created_at,
                    (select substring(first_run.input_messages->0->>'content' from 1 for 100)
                       from ai.agent_runs first_run where first_run.session_id = s.id
                      order by first_run.created_at asc limit 1) as first_message
               from ai.agent_sessions s left join ai.agent_runs r on r.session_id = s.id
              where s.agent_id = $1 and ($2::uuid is null or s.user_id = $2)
              group by s.id, s.session_id, s.created_at
              order by last_activity_at desc nulls last, s.created_at desc
              limit $3 offset $4",
            &[&agent_id, &owner, &limit, &offset],
        )
        .await?;
    let total: i64 = client
        .query_one(
            "select count(*) from ai.agent_sessions s where s.agent_id = $1 and ($2::uuid is null or s.user_id = $2)",
            &[&agent_id, &owner],
        )
        .await?
        .get(0);
    let sessions: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "session_id": r.get::<_, String>(0),
                "run_count": r.get::<_, i64>(1),
                "last_activity_at": r.get::<_, Option<DateTime<Utc>>>(2).map(timestamp),
                "created_at": timestamp(r.get::<_, DateTime<Utc>>(3)),
                "first_message": r.get::<_, Option<String>>(4),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"sessions": sessions, "total": total, "limit": limit, "offset": offset}),
    ))
}

/// The first problem with a seed conversation, in the platform's words.
fn seed_error(messages: &[Value]) -> Option<String> {
    if !messages.len().is_multiple_of(2) {
        return Some(format!(
            "initial_messages must contain an even number of messages (user/assistant pairs); got {}",
            messages.len()
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            return Some(format!("initial_messages[{i}] must be an object"));
        };
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if message.get("role").and_then(Value::as_str) != Some(expected) {
            return Some(format!(
                "initial_messages[{i}] must have role '{expected}' — initial_messages must alternate \
                 user/assistant, starting with user"
            ));
        }
        let Some(content) = message.get("content").and_then(Value::as_str) else {
            return Some(format!("initial_messages[{i}] content must be a string"));
        };
        if content.trim().is_empty() {
            return Some(format!("initial_messages[{i}] content must not be empty"));
        }
        let chars = content.chars().count();
        if chars > MAX_SEED_MESSAGE_CHARS {
            return Some(format!(
                "initial_messages[{i}] content is limited to {MAX_SEED_MESSAGE_CHARS} characters; got {chars}"
            ));
        }
    }
    None
}

async fn create_session(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(agent_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let agent_id =
        Uuid::parse_str(&agent_id).map_err(|_| ApiError::not_found("Agent not found"))?;
    let Some(data) = body.as_object() else {
        return Err(ApiError::bad_request("Request body must be a JSON object"));
    };
    let initial: Vec<Value> = match data.get("initial_messages") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.clone(),
        Some(_) => return Err(ApiError::bad_request("initial_messages must be a list")),
    };
    if initial.len() > MAX_SEED_MESSAGES {
        return Err(ApiError::bad_request(format!(
            "initial_messages is limited to {MAX_SEED_MESSAGES} messages; got {}",
            initial.len()
        )));
    }
    if let Some(problem) = seed_error(&initial) {
        return Err(ApiError::bad_request(problem));
    }
    let owner = match (data.get("user_id"), &caller) {
        (None | Some(Value::Null), ApiCaller::ServiceRole) if !initial.is_empty() => {
            return Err(ApiError::bad_request(
                "user_id is required to seed initial_messages as service role",
            ));
        }
        (None | Some(Value::Null), _) => caller.user_id(),
        (Some(_), ApiCaller::User { .. }) => {
            return Err(ApiError::forbidden("Service role required to set user_id"));
        }
        (Some(raw), ApiCaller::ServiceRole) => Some(
            raw.as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| ApiError::bad_request("user_id must be a uuid"))?,
        ),
    };

    let mut client = state.db.ai.get().await?;
    let tx = client.transaction().await?;
    let model: String = tx
        .query_opt("select model from ai.agents where id = $1", &[&agent_id])
        .await?
        .ok_or_else(|| ApiError::not_found("Agent not found"))?
        .get(0);
    let session_id = public_id("sess");
    let session_uuid: Uuid = tx
        .query_one(
            "insert into ai.agent_sessions (session_id, agent_id, user_id) values ($1, $2, $3) returning id",
            &[&session_id, &agent_id, &owner],
        )
        .await?
        .get(0);
    for pair in initial.chunks(2) {
        let user = pair[0]["content"].as_str().unwrap_or_default();
        let assistant = pair[1]["content"].as_str().unwrap_or_default();
        tx.execute(
            "insert into ai.agent_runs
                (session_id, run_id, status, input_messages, output_messages, content,
                 started_at, completed_at, agent_id, model)
             values ($1, $2, 'completed', $3, $4, $5, now(), now(), $6, $7)",
            &[
                &session_uuid,
                &public_id("run"),
                &json!([{"role": "user", "content": user}]),
                &json!([{"role": "assistant", "content": assistant}]),
                &assistant,
                &agent_id,
                &model,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"session_id": session_id}),
    ))
}

async fn delete_session(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((agent_id, session_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if session_id.chars().count() > MAX_SESSION_ID_CHARS {
        return Err(ApiError::bad_request(
            "session_id must be a string of at most 255 characters",
        ));
    }
    let agent_id =
        Uuid::parse_str(&agent_id).map_err(|_| ApiError::not_found(SESSION_NOT_FOUND))?;
    let client = state.db.ai.get().await?;
    let row = client
        .query_opt(
            "select id, agent_id, user_id from ai.agent_sessions where session_id = $1",
            &[&session_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found(SESSION_NOT_FOUND))?;
    let owner: Option<Uuid> = row.get(2);
    let theirs = match &caller {
        ApiCaller::ServiceRole => true,
        ApiCaller::User { id, .. } => owner == Some(*id),
    };
    if row.get::<_, Option<Uuid>>(1) != Some(agent_id) || !theirs {
        return Err(ApiError::not_found(SESSION_NOT_FOUND));
    }
    let uuid: Uuid = row.get(0);
    client
        .execute("delete from ai.agent_sessions where id = $1", &[&uuid])
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The session `session_id` if the caller may see it (a user: only their
/// own): its internal id and its row as `GET /api/sessions/{id}` shows it.
async fn visible_session(
    client: &deadpool_postgres::Client,
    caller: &ApiCaller,
    session_id: &str,
) -> Result<(Uuid, Value), ApiError> {
    if session_id.chars().count() > MAX_SESSION_ID_CHARS {
        return Err(ApiError::bad_request(
            "session_id must be a string of at most 255 characters",
        ));
    }
    let row = client
        .query_opt(
            "select id, session_id, agent_id, user_id, session_data, metadata, created_at, updated_at
               from ai.agent_sessions where session_id = $1",
            &[&session_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found(SESSION_NOT_FOUND))?;
    let owner: Option<Uuid> = row.get(3);
    if let ApiCaller::User { id, .. } = caller
        && owner != Some(*id)
    {
        return Err(ApiError::not_found(SESSION_NOT_FOUND));
    }
    let shown = json!({
        "id": row.get::<_, Uuid>(0).to_string(),
        "session_id": row.get::<_, String>(1),
        "agent_id": row.get::<_, Option<Uuid>>(2).map(|u| u.to_string()),
        "user_id": owner.map(|u| u.to_string()),
        "session_data": row.get::<_, Value>(4),
        "metadata": row.get::<_, Value>(5),
        "created_at": timestamp(row.get::<_, DateTime<Utc>>(6)),
        "updated_at": timestamp(row.get::<_, DateTime<Utc>>(7)),
    });
    Ok((row.get(0), shown))
}

async fn get_session(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(session_id): Path<String>,
) -> Result<Response, ApiError> {
    let client = state.db.ai.get().await?;
    let (_, shown) = visible_session(&client, &caller, &session_id).await?;
    Ok(json_response(StatusCode::OK, &shown))
}

async fn delete_by_id(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(session_id): Path<String>,
) -> Result<Response, ApiError> {
    let client = state.db.ai.get().await?;
    let (uuid, _) = visible_session(&client, &caller, &session_id).await?;
    client
        .execute("delete from ai.agent_sessions where id = $1", &[&uuid])
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"success": true, "message": "Session deleted"}),
    ))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<String>,
    offset: Option<String>,
}

/// The conversation of a session, rebuilt from its completed runs (a failed
/// run leaves no trace here, as on the platform); `limit` (≤200) keeps the
/// most recent messages.
async fn messages(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(session_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let client = state.db.ai.get().await?;
    let (uuid, _) = visible_session(&client, &caller, &session_id).await?;
    let rows = client
        .query(
            "select run_id, input_messages, output_messages, coalesce(started_at, created_at),
                    coalesce(completed_at, created_at)
               from ai.agent_runs where session_id = $1 and status = 'completed'
              order by created_at, id",
            &[&uuid],
        )
        .await?;
    let mut messages = Vec::new();
    for row in &rows {
        let run_id: String = row.get(0);
        let turns = [
            (row.get::<_, Option<Value>>(1), "user", 3),
            (row.get::<_, Option<Value>>(2), "assistant", 4),
        ];
        for (list, role, at) in turns {
            for message in list
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if message.get("role").and_then(Value::as_str) != Some(role) {
                    continue;
                }
                let mut shown = json!({
                    "role": role,
                    "content": message.get("content").cloned().unwrap_or(Value::Null),
                    "run_id": run_id,
                    "timestamp": timestamp(row.get::<_, DateTime<Utc>>(at)),
                });
                if let Some(citations) = message.get("citations") {
                    shown["citations"] = citations.clone();
                }
                messages.push(shown);
            }
        }
    }
    if let Some(limit) = query.limit.and_then(|l| l.trim().parse::<usize>().ok()) {
        let limit = limit.clamp(1, 200);
        let skip = messages.len().saturating_sub(limit);
        messages.drain(..skip);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"session_id": session_id, "messages": messages}),
    ))
}

/// The session's runs, newest first (`limit` ≤ 100, default 100; `offset`).
async fn runs(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(session_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let limit = query
        .limit
        .and_then(|l| l.trim().parse::<i64>().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let offset = query
        .offset
        .and_then(|o| o.trim().parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    let client = state.db.ai.get().await?;
    let (uuid, _) = visible_session(&client, &caller, &session_id).await?;
    let rows = client
        .query(
            &format!(
                "select {RUN_COLUMNS}, r.context_handler_id, r.agent_id, r.model
                   from ai.agent_runs r where r.session_id = $1
                  order by r.created_at desc, r.id limit $2 offset $3"
            ),
            &[&uuid, &limit, &offset],
        )
        .await?;
    let runs: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut run = run_json(row);
            run["context_handler_id"] = json!(
                row.get::<_, Option<Uuid>>("context_handler_id")
                    .map(|u| u.to_string())
            );
            run["agent_id"] = json!(
                row.get::<_, Option<Uuid>>("agent_id")
                    .map(|u| u.to_string())
            );
            run["model"] = json!(row.get::<_, Option<String>>("model"));
            run
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"session_id": session_id, "runs": runs, "limit": limit, "offset": offset}),
    ))
}

async fn retrieved_context(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((session_id, run_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let client = state.db.ai.get().await?;
    let (uuid, _) = visible_session(&client, &caller, &session_id).await?;
    let row = client
        .query_opt(
            "select retrieved_context from ai.agent_runs where session_id = $1 and run_id = $2",
            &[&uuid, &run_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Run not found"))?;
    let retrieved: Value = row.get::<_, Option<Value>>(0).unwrap_or_else(|| json!([]));
    Ok(json_response(
        StatusCode::OK,
        &json!({"session_id": session_id, "run_id": run_id, "retrieved_context": retrieved}),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn seeds_must_alternate_user_and_assistant() {
        let ok = vec![
            json!({"role":"user","content":"hi"}),
            json!({"role":"assistant","content":"hello"}),
        ];
        assert_eq!(seed_error(&ok), None);
        assert!(seed_error(&ok[..1]).unwrap().contains("even number"));
        let swapped = vec![ok[1].clone(), ok[0].clone()];
        assert!(
            seed_error(&swapped)
                .unwrap()
                .starts_with("initial_messages[0] must have role 'user'")
        );
        let blank = vec![json!({"role":"user","content":"  "}), ok[1].clone()];
        assert_eq!(
            seed_error(&blank).unwrap(),
            "initial_messages[0] content must not be empty"
        );
    }

    #[test]
    fn run_session_ids_are_strings_of_at_most_255_chars() {
        assert_eq!(parse_session_id(None).unwrap(), None);
        assert_eq!(
            parse_session_id(Some(&json!("sess_1"))).unwrap(),
            Some("sess_1".to_owned())
        );
        assert!(parse_session_id(Some(&json!("x".repeat(256)))).is_err());
        assert!(parse_session_id(Some(&json!(5))).is_err());
    }
}
