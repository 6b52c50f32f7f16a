//! `POST /api/chat` and `POST /api/chat/{message_id}/stop` (ARCHITECTURE.md, "Ask").
//!
//! A question is checked in this order, and nothing is written until every
//! check has passed: the user's token; the body ([`ChatRequest::parse`]: a
//! non-empty message within the length limit, at most `max_chunk_ids` chunk
//! ids); a place among the answers this companion runs at once (429 at once
//! when there is none, before any database work); the user's run
//! limit (429); the conversation, read under the user's own token (404 for
//! one that is not theirs, exactly as for one that does not exist). Then
//! the chunk ids are re-read under the user's token — RLS drops any id that
//! is not theirs, the conversation's scope any chunk of a document it does
//! not ask about (db/app/92_conversation_scope.sql), and the client's text
//! is never used — a `session_token`
//! is minted, the question, the answer's `streaming` row and the token's
//! tool session are written in one transaction (`begin_chat_answer`,
//! db/app/90_answer_bookkeeping.sql), and the run starts ([`run`]). The response is the run's events as SSE
//! ([`events`]).

pub mod events;
pub mod regenerate;
pub mod request;
pub mod run;
pub mod scrub;

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::User;
use crate::error::{ApiError, ErrorCode};
use crate::limits::{RUN_RETRY_AFTER_SECS, RunSlot};
use crate::platform::{ApiCode, Auth, PlatformError};
use crate::server::{AppState, Arrival};
use crate::tool;
use events::ChatEvent;
pub use request::ChatRequest;
use run::{ContextChunk, Turn};

/// Characters of the question used as a new conversation's title.
const TITLE_CHARS: usize = 80;
/// Seconds a client is told to wait when this companion runs as many
/// answers as it may: an answer on a saturated companion takes about that.
pub const BUSY_RETRY_AFTER_SECS: u64 = 2;
/// How long Stop waits for the run to be persisted before answering.
const STOP_WAIT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct ConversationRow {
    id: Uuid,
    agent_session_id: Option<String>,
    #[serde(default)]
    document_ids: Vec<Uuid>,
}

#[derive(Deserialize)]
struct ChunkRow {
    id: Uuid,
    document_id: Uuid,
    chunk_id: Uuid,
    page: Option<i32>,
    page_end: Option<i32>,
    text: String,
    title: String,
}

#[derive(Deserialize)]
struct TurnRow {
    user_message_id: Uuid,
    message_id: Uuid,
}

/// `POST /api/chat`. Each step is a stage of the answer ([`crate::metrics`]).
pub async fn chat(
    State(state): State<AppState>,
    arrival: Option<Extension<Arrival>>,
    user: User,
    body: Bytes,
) -> Result<Response, ApiError> {
    let arrived = arrival.map_or_else(Instant::now, |Extension(Arrival(at))| at);
    state.metrics.stage_took("auth", arrived.elapsed());
    let metrics = &state.metrics;
    let request = ChatRequest::parse(&body, &state.config.limits)?;
    let question = request.question.as_str().to_owned();
    let chunk_ids = request.chunk_ids;
    // Held until the run has ended, however it ends (run::start).
    let place = answering_place(&state)?;

    // The chunks are read while the slot is taken and the conversation
    // checked or made: they need neither, and nothing is written before
    // both are done.
    let slot_and_conversation = async {
        let slot = metrics.stage("slot", run_slot(&state, &user)).await?;
        let conversation = metrics
            .stage(
                "conversation",
                conversation(&state, &user, request.conversation_id, &question),
            )
            .await?;
        Ok::<_, ApiError>((slot, conversation))
    };
    let chunks = metrics.stage("chunks", own_chunks(&state, &user, chunk_ids.as_slice()));
    let (slot_and_conversation, chunks) = tokio::join!(slot_and_conversation, chunks);
    let (slot, (conversation_id, session_id, scope)) = slot_and_conversation?;
    let (context, dropped) = in_scope(chunks?, &scope);

    // The turn's rows and the run's tool session, in one transaction.
    let (token, token_hash) = tool::mint_session_token();
    let token_expires_at = token_expiry(&state);
    let turn: Vec<TurnRow> = metrics
        .stage(
            "turn",
            state.platform.rpc(
                Auth::Service,
                "begin_chat_answer",
                &json!({"conversation_id": conversation_id, "owner_id": user.id,
                        "content": question, "token_hash": token_hash,
                        "token_expires_at": token_expires_at,
                        "sources": sources_of(&context)}),
            ),
        )
        .await
        .map_err(|err| match err.code() {
            // Deleted between the check and now.
            Some(ApiCode::NotFound) => ApiError::not_found("conversation"),
            _ => ApiError::platform(&err),
        })?;
    let turn_row = turn
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("begin_chat_answer returned no row"))?;

    let (tx, rx) = mpsc::unbounded_channel();
    let message_id = turn_row.message_id;
    run::start(
        &state,
        Turn {
            owner: user.id,
            conversation_id,
            message_id,
            user_message_id: turn_row.user_message_id,
            session_id,
            question,
            context,
            dropped,
            token,
            token_hash,
            arrived,
        },
        tx,
        slot,
        place,
    );

    Ok(answer_stream(rx, conversation_id, message_id))
}

/// A place among the answers this companion writes at once, held until the
/// run has ended, however it ends (run::start); 429 `rate_limited` at once,
/// counted on /metrics, when every place is taken.
fn answering_place(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state.answering.clone().try_acquire_owned().map_err(|_| {
        state.metrics.busy_refused();
        ApiError::rate_limited(
            "Quire is busy answering others right now. Try again in a moment.",
            BUSY_RETRY_AFTER_SECS,
        )
    })
}

/// One of the user's run slots (across companions); 429 `rate_limited` when
/// they already have as many answers being written as they may.
async fn run_slot(state: &AppState, user: &User) -> Result<RunSlot, ApiError> {
    state.run_slots.take(user.id).await?.ok_or_else(|| {
        ApiError::rate_limited(
            "You already have answers being written. Wait for one to finish.",
            RUN_RETRY_AFTER_SECS,
        )
    })
}

/// When a run's tool session expires: a minute after the run must have ended.
fn token_expiry(state: &AppState) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
        + chrono::Duration::from_std(state.config.run_timeout + Duration::from_secs(60))
            .unwrap_or(chrono::Duration::hours(1))
}

/// The chunks as `chat_messages.sources` keeps them (db/app/93_answer_ground.sql).
fn sources_of(context: &[ContextChunk]) -> Vec<quire_protocol::ContextChunk> {
    context.iter().map(ContextChunk::to_event).collect()
}

/// The run's events as the SSE response, with the ids of the conversation
/// and the answer in `x-quire-conversation-id` / `x-quire-message-id`.
fn answer_stream(
    rx: mpsc::UnboundedReceiver<ChatEvent>,
    conversation_id: Uuid,
    message_id: Uuid,
) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        Some((Ok::<_, Infallible>(events::to_sse(&event)), rx))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response();
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(v) = HeaderValue::from_str(&conversation_id.to_string()) {
        headers.insert("x-quire-conversation-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&message_id.to_string()) {
        headers.insert("x-quire-message-id", v);
    }
    response
}

/// The conversation to answer in, its platform session and the documents
/// it asks about (empty: all; db/app/92_conversation_scope.sql): the user's
/// own (checked under their token), or a new one.
async fn conversation(
    state: &AppState,
    user: &User,
    requested: Option<Uuid>,
    question: &str,
) -> Result<(Uuid, String, Vec<Uuid>), ApiError> {
    let Some(id) = requested else {
        let session_id = create_session(state).await?;
        let title: String = question.chars().take(TITLE_CHARS).collect();
        let rows: Vec<ConversationRow> = match state
            .platform
            .insert(
                Auth::Service,
                "conversations",
                &json!({"owner_id": user.id, "title": title, "agent_session_id": session_id}),
            )
            .await
        {
            Ok(rows) => rows,
            Err(err) => return Err(conversation_refused(state, &session_id, &err).await),
        };
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("inserting a conversation returned no row"))?;
        return Ok((row.id, session_id, Vec::new()));
    };

    let rows: Vec<ConversationRow> = state
        .platform
        .select(
            Auth::User(user.token()),
            "conversations",
            &[
                ("select", "id,agent_session_id,document_ids".to_owned()),
                ("id", format!("eq.{id}")),
            ],
        )
        .await?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    if let Some(session_id) = row.agent_session_id {
        return Ok((row.id, session_id, row.document_ids));
    }
    // A conversation the client created itself: give it a session, unless
    // a concurrent question just did.
    let session_id = create_session(state).await?;
    let updated: Vec<ConversationRow> = state
        .platform
        .update(
            Auth::Service,
            "conversations",
            &[
                ("id", format!("eq.{id}")),
                ("owner_id", format!("eq.{}", user.id)),
                ("agent_session_id", "is.null".to_owned()),
            ],
            &json!({"agent_session_id": session_id}),
        )
        .await?;
    if updated.is_empty() {
        let rows: Vec<ConversationRow> = state
            .platform
            .select(
                Auth::User(user.token()),
                "conversations",
                &[
                    ("select", "id,agent_session_id".to_owned()),
                    ("id", format!("eq.{id}")),
                ],
            )
            .await?;
        let existing = rows
            .into_iter()
            .next()
            .and_then(|r| r.agent_session_id)
            .ok_or_else(|| ApiError::not_found("conversation"))?;
        return Ok((id, existing, row.document_ids));
    }
    Ok((id, session_id, row.document_ids))
}

/// The chunks among `context` that lie in the conversation's `scope` (all
/// when it is empty), and how many were dropped in all: a client's chunk
/// ids are not trusted to respect the scope (ARCHITECTURE.md, invariant 4).
fn in_scope(
    (mut context, dropped): (Vec<ContextChunk>, usize),
    scope: &[Uuid],
) -> (Vec<ContextChunk>, usize) {
    if scope.is_empty() {
        return (context, dropped);
    }
    let before = context.len();
    context.retain(|chunk| scope.contains(&chunk.document_id));
    let dropped = dropped + before - context.len();
    (context, dropped)
}

/// A platform session for a new conversation, made without a `user_id`: the
/// user cannot run the agent in it directly ([`crate::sessions`]).
/// A new conversation's row was refused: its platform session goes too (no
/// row will ever name it), and the user learns why — as many conversations
/// as Quire keeps (db/app/83_per_user_limits.sql), or a failure.
async fn conversation_refused(state: &AppState, session_id: &str, err: &PlatformError) -> ApiError {
    crate::sessions::delete(
        &state.platform,
        &state.config.agent_id.to_string(),
        session_id,
    )
    .await;
    match err.code() {
        Some(ApiCode::UserLimit(_)) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::LimitReached,
            "You have 10,000 conversations, the most Quire keeps for one person. \
             Delete some you no longer need, then ask again.",
        ),
        _ => ApiError::platform(err),
    }
}

async fn create_session(state: &AppState) -> Result<String, ApiError> {
    Ok(crate::sessions::create(&state.platform, &state.config.agent_id.to_string()).await?)
}

/// The chunks among `ids` the user may read, with their documents' titles,
/// in the order given; and how many ids were dropped. One request:
/// `rpc/context_chunks` under the user's token (db/app/91_context_chunks.sql),
/// so their policies decide.
async fn own_chunks(
    state: &AppState,
    user: &User,
    ids: &[Uuid],
) -> Result<(Vec<ContextChunk>, usize), ApiError> {
    if ids.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let rows: Vec<ChunkRow> = state
        .platform
        .rpc(
            Auth::User(user.token()),
            "context_chunks",
            &json!({ "ids": ids }),
        )
        .await?;
    let mut by_id: HashMap<Uuid, ChunkRow> = rows.into_iter().map(|r| (r.id, r)).collect();
    let context: Vec<ContextChunk> = ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .map(|row| ContextChunk {
            id: row.id,
            document_id: row.document_id,
            chunk_id: row.chunk_id,
            page: row.page,
            // Rows copied before page_end existed: one page.
            page_end: row.page_end.or(row.page),
            title: row.title,
            text: row.text,
        })
        .collect();
    let dropped = ids.len() - context.len();
    Ok((context, dropped))
}

/// `POST /api/chat/{message_id}/stop`.
pub async fn stop(
    State(state): State<AppState>,
    user: User,
    Path(message_id): Path<String>,
) -> Result<Response, ApiError> {
    let message_id = Uuid::parse_str(&message_id).map_err(|_| ApiError::not_found("answer"))?;
    if let Some(status) = state.runs.stop(message_id, user.id, STOP_WAIT).await {
        return Ok(Json(json!({"message_id": message_id, "status": status})).into_response());
    }
    // Not running here: another companion's, an orphan, or finished.
    let status: Option<String> = state
        .platform
        .rpc(
            Auth::Service,
            "stop_chat_message",
            &json!({"message_id": message_id, "owner_id": user.id}),
        )
        .await?;
    match status.as_deref() {
        None => Err(ApiError::not_found("answer")),
        Some("stopped") => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"message_id": message_id, "status": "stopped"})),
        )
            .into_response()),
        Some(other) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotRunning,
            format!("This answer has already finished ({other})."),
        )),
    }
}
