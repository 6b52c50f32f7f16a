//! Runs: `POST /api/agents/{id}/run`, `POST /api/agents/{id}/run/stream`
//! and `GET /api/agents/runs/{run_id}` (docs/platform/ai-api.md §5.3–§5.5; end-user routes).
//!
//! Everything that can fail before the run starts — authentication, the
//! body ([`super::request`]), an unknown agent or context handler — is a
//! plain JSON error. After that, `/run/stream` answers 200 with
//! `text/event-stream` (`Cache-Control: no-cache`, `X-Accel-Buffering: no`),
//! one `data: <json>\n\n` frame per event and `: keepalive\n\n` after every
//! silence of the configured length (30 s by default).
//!
//! `/run` has no tool loop (the platform makes one LLM call) and answers
//! `{run_id, session_id, context_handler_id, content, error, usage,
//! retrieved_items, status, is_new_session, citation_candidates?, citations?}`.
//!
//! A user reads a run only if it belongs to one of their sessions; any other
//! run is 404 `Run not found`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::definitions::Agent;
use super::events::KEEPALIVE;
use super::execution::{self, Outcome, Prepared};
use super::public_id;
use super::request::{self, ContextSource};
use super::sessions::SESSION_NOT_FOUND;
use super::store::{RUN_COLUMNS, run_json};
use crate::ai::{ApiCaller, ApiError, JsonBody, parse_id};
use crate::http::json_response;
use crate::state::AppState;

/// The runs' routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/agents/{agent_id}/run", post(run))
        .route("/agents/{agent_id}/run/stream", post(run_stream))
        .route("/agents/runs/{run_id}", get(get_run))
}

/// Checks the body and the agent; the run is ready to start.
async fn prepare(
    state: &AppState,
    caller: ApiCaller,
    agent_id: &str,
    body: &Value,
    streaming: bool,
) -> Result<Prepared, ApiError> {
    let request = request::parse(body, &caller, streaming)?;
    let agent_id = parse_id(agent_id, "Agent not found")?;
    let client = state.db.ai.get().await?;
    let agent = Agent::load(&client, agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent not found"))?;
    if let ContextSource::Handler(_) = request.context {
        // The sandbox keeps no context handlers: every id is unknown.
        return Err(ApiError::not_found("Context handler not found"));
    }
    if state.config.agents.model_without_key {
        return Err(model_requires_byok(&agent.model));
    }
    Ok(Prepared {
        agent,
        request,
        caller,
        run_id: public_id("run"),
        streaming,
    })
}

/// The platform's `check_model_available` refusal for a model no key
/// covers: Flask `abort(400, …)`, so an HTML page, before any streaming.
fn model_requires_byok(model: &str) -> ApiError {
    let provider = match model.split_once('/') {
        Some((provider, _)) => provider,
        None if model.starts_with("gpt-") || model.starts_with('o') => "openai",
        None if model.starts_with("claude") => "anthropic",
        None if model.starts_with("gemini") => "gemini",
        None => model,
    };
    ApiError::werkzeug_abort(
        StatusCode::BAD_REQUEST,
        format!(
            "Model {model} requires BYOK. Add an API key for {provider} in Settings → LLM Provider Keys."
        ),
    )
}

async fn run(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(agent_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let prepared = prepare(&state, caller, &agent_id, &body, false).await?;
    let cite = prepared.request.citations_enabled;
    // Awaiting a spawned task: a client that gives up does not cut the run short.
    let outcome = execution::spawn(state, prepared, None)
        .await
        .map_err(|e| ApiError::internal(format_args!("agent run task: {e}")))?;
    match outcome {
        Outcome::SessionNotFound => Err(ApiError::not_found(SESSION_NOT_FOUND)),
        Outcome::Failed { run_id, error } => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "Agent run failed: {error}. If this persists, verify that referenced knowledge bases \
                 and sources still exist in the ai schema."
            ),
        )
        .with("run_id", run_id)),
        Outcome::Finished(done) => {
            let mut body = json!({
                "run_id": done.run_id,
                "session_id": done.session_id,
                "context_handler_id": null,
                "content": done.content,
                "error": done.error,
                "usage": done.usage,
                "retrieved_items": done.retrieved_items,
                "status": done.status,
                "is_new_session": done.is_new_session,
            });
            if let (true, Some(candidates)) = (cite, done.citation_candidates) {
                body["citation_candidates"] = json!(candidates);
                body["citations"] = json!(done.citations);
            }
            Ok(json_response(StatusCode::OK, &body))
        }
    }
}

async fn run_stream(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(agent_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let prepared = prepare(&state, caller, &agent_id, &body, true).await?;
    let (frames, receiver) = mpsc::unbounded_channel();
    let keepalive = state.config.agents.keepalive();
    let shutdown = state.shutdown.clone();
    // Detached: the run finishes and persists even if nobody reads the stream.
    drop(execution::spawn(state, prepared, Some(frames)));

    let mut response = Response::new(sse_body(receiver, keepalive, shutdown));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The SSE body: the run's frames as they come, `: keepalive` after each
/// `keepalive` of silence; it ends when the run drops its sender or the
/// sandbox shuts down.
fn sse_body(
    receiver: UnboundedReceiver<String>,
    keepalive: Duration,
    shutdown: CancellationToken,
) -> Body {
    let stream = futures_util::stream::unfold(
        (receiver, shutdown),
        move |(mut receiver, shutdown)| async move {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return None,
                next = tokio::time::timeout(keepalive, receiver.recv()) => next,
            };
            let bytes = match next {
                Ok(Some(frame)) => Bytes::from(frame),
                Ok(None) => return None,
                Err(_) => Bytes::from_static(KEEPALIVE.as_bytes()),
            };
            Some((Ok::<_, Infallible>(bytes), (receiver, shutdown)))
        },
    );
    Body::from_stream(stream)
}

async fn get_run(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let client = state.db.ai.get().await?;
    let row = client
        .query_opt(
            &format!(
                "select {RUN_COLUMNS}, s.user_id as owner
                   from ai.agent_runs r left join ai.agent_sessions s on s.id = r.session_id
                  where r.run_id = $1"
            ),
            &[&run_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Run not found"))?;
    if let ApiCaller::User { id, .. } = &caller {
        // Someone else's run, or one in a session nobody owns, does not exist for a user.
        if row.get::<_, Option<Uuid>>("owner") != Some(*id) {
            return Err(ApiError::not_found("Run not found"));
        }
    }
    Ok(json_response(StatusCode::OK, &run_json(&row)))
}
