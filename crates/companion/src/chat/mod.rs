//! `POST /api/chat` and `POST /api/chat/{message_id}/stop` (ARCHITECTURE.md, "Ask").
//!
//! A question is checked in this order, and nothing is written until every
//! check has passed: the user's token; the body ([`ChatRequest::parse`]: a
//! non-empty message within the length limit, at most `max_chunk_ids` chunk
//! ids); a place among the answers this companion runs at once (429 at once
//! when there is none, before any database work), and, on this companion
//! alone, fewer of the user's answers than their run limit (429); then, at
//! the same time, the conversation, read under the user's own token (404 for
//! one that is not theirs, exactly as for one that does not exist) — or a
//! new conversation's platform session — and the chunk ids, re-read under
//! the user's token: RLS drops any id that is not theirs, the conversation's
//! scope any chunk of a document it does not ask about
//! (db/app/92_conversation_scope.sql), and the client's text is never used.
//! Then a `session_token` is minted, and one transaction (`begin_chat`,
//! db/app/98_answer_batches.sql) takes one of the user's run slots across
//! companions (429 when they have none left, with nothing written and the
//! new session deleted), writes a new conversation's row, the question, the
//! answer's `streaming` row and the token's tool session; and the run starts
//! ([`run`]). The response is the run's events as SSE ([`events`]).

pub mod events;
pub mod regenerate;
pub mod request;
pub mod run;
pub mod scrub;
pub mod writer;

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

/// `begin_chat`'s row: all `None` when no run slot was free.
#[derive(Deserialize)]
struct BegunRow {
    slot_id: Option<Uuid>,
    conversation: Option<Uuid>,
    user_message_id: Option<Uuid>,
    message_id: Option<Uuid>,
}

/// Where a question is asked, before its turn is written.
struct AskedIn {
    /// The user's conversation; `None` for a new one, made with the turn.
    id: Option<Uuid>,
    /// Its platform session (a new conversation's, made for it).
    session_id: String,
    /// The documents it asks about (empty: all).
    scope: Vec<Uuid>,
}

impl AskedIn {
    /// The question is refused with `why` after a new conversation's
    /// platform session was made: the session goes (no row will ever name
    /// it). Returns `why`.
    async fn abandon(self, state: &AppState, why: ApiError) -> ApiError {
        if self.id.is_none() {
            crate::sessions::delete(
                &state.platform,
                &state.config.agent_id.to_string(),
                &self.session_id,
            )
            .await;
        }
        why
    }
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
    // This companion alone already writes as many of the user's answers as
    // they may have: the database would refuse the slot (begin_chat), so no
    // platform session is made for nothing.
    if state.runs.running_for(user.id) >= state.config.limits.max_runs_per_user {
        return Err(run_limit_reached());
    }

    // The conversation is read (or a new one's platform session made) while
    // the chunks are read: neither needs the other, and nothing is written
    // before both are done.
    let conversation = metrics.stage(
        "conversation",
        asked_in(&state, &user, request.conversation_id),
    );
    let chunks = metrics.stage("chunks", own_chunks(&state, &user, chunk_ids.as_slice()));
    let (conversation, chunks) = tokio::join!(conversation, chunks);
    let asked = conversation?;
    let (context, dropped) = match chunks {
        Ok(chunks) => in_scope(chunks, &asked.scope),
        Err(err) => return Err(asked.abandon(&state, err).await),
    };

    // The run slot, a new conversation's row, the turn's rows and the run's
    // tool session, in one transaction (db/app/98_answer_batches.sql).
    let (token, token_hash) = tool::mint_session_token();
    let token_expires_at = token_expiry(&state);
    let title: String = question.chars().take(TITLE_CHARS).collect();
    let begun: Result<Vec<BegunRow>, PlatformError> = metrics
        .stage(
            "turn",
            state.platform.rpc(
                Auth::Service,
                "begin_chat",
                &json!({"owner_id": user.id, "holder": state.run_slots.holder(),
                        "max_running": state.run_slots.max(),
                        "lease_seconds": state.run_slots.lease_seconds(),
                        "conversation_id": asked.id, "agent_session_id": asked.session_id,
                        "title": title, "content": question, "token_hash": token_hash,
                        "token_expires_at": token_expires_at,
                        "sources": sources_of(&context)}),
            ),
        )
        .await;
    let begun = match begun {
        Ok(rows) => rows.into_iter().next(),
        Err(err) => {
            let refused = match err.code() {
                // Deleted between the check and now.
                Some(ApiCode::NotFound) => ApiError::not_found("conversation"),
                Some(ApiCode::UserLimit(_)) if asked.id.is_none() => conversation_limit_reached(),
                _ => ApiError::platform(&err),
            };
            return Err(asked.abandon(&state, refused).await);
        }
    };
    let Some(BegunRow {
        slot_id: Some(slot_id),
        conversation: Some(conversation_id),
        user_message_id: Some(user_message_id),
        message_id: Some(message_id),
    }) = begun
    else {
        // No slot: the user already has as many answers being written as
        // they may, on this companion and others.
        return Err(asked.abandon(&state, run_limit_reached()).await);
    };
    let slot = state.run_slots.adopt(slot_id);
    let session_id = asked.session_id;

    let (tx, rx) = mpsc::unbounded_channel();
    run::start(
        &state,
        Turn {
            owner: user.id,
            conversation_id,
            message_id,
            user_message_id,
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
    state
        .run_slots
        .take(user.id)
        .await?
        .ok_or_else(run_limit_reached)
}

/// 429 `rate_limited`: the user already has as many answers being written
/// as they may.
fn run_limit_reached() -> ApiError {
    ApiError::rate_limited(
        "You already have answers being written. Wait for one to finish.",
        RUN_RETRY_AFTER_SECS,
    )
}

/// 409 `limit_reached`: the user has as many conversations as Quire keeps
/// (db/app/83_per_user_limits.sql).
fn conversation_limit_reached() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        ErrorCode::LimitReached,
        "You have 10,000 conversations, the most Quire keeps for one person. \
         Delete some you no longer need, then ask again.",
    )
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

/// Where a question is asked: the user's conversation `requested` (checked
/// under their token), or, for `None`, a new conversation's platform
/// session — its row is written with the turn (`begin_chat`).
async fn asked_in(
    state: &AppState,
    user: &User,
    requested: Option<Uuid>,
) -> Result<AskedIn, ApiError> {
    match requested {
        None => Ok(AskedIn {
            id: None,
            session_id: create_session(state).await?,
            scope: Vec::new(),
        }),
        Some(id) => {
            let (id, session_id, scope) = conversation(state, user, id).await?;
            Ok(AskedIn {
                id: Some(id),
                session_id,
                scope,
            })
        }
    }
}

/// The user's conversation `id` (checked under their token), its platform
/// session and the documents it asks about (empty: all;
/// db/app/92_conversation_scope.sql).
async fn conversation(
    state: &AppState,
    user: &User,
    id: Uuid,
) -> Result<(Uuid, String, Vec<Uuid>), ApiError> {
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
