//! `POST /api/chat/{message_id}/regenerate`: a new version of an answer
//! (ARCHITECTURE.md, "Ask"; db/app/93_answer_ground.sql).
//!
//! Checked as a question is, in the same order, and nothing is written
//! before every check has passed: the user's token; the body
//! ([`RegenerateRequest::parse`]); a place among the answers this companion
//! runs at once; the user's run limit; the answer, read under the user's own
//! token (404 for one that is not theirs, exactly as for one that does not
//! exist) and its conversation likewise. The chunk ids are re-read under the
//! user's token. Then `regenerate_chat_answer` writes the version's
//! `streaming` row — the same question, the conversation's next seq — and
//! the run's tool session in one transaction (409 `answer_in_progress`
//! while a version of it is being written), and the run answers the
//! question again. The response is the version's events as SSE, exactly as
//! for a question; its `context` event names the question, which is how
//! every device knows the new answer is a version of the earlier one.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::request::RegenerateRequest;
use super::run::{self, Turn};
use super::{
    answer_stream, answering_place, conversation, in_scope, own_chunks, run_slot, sources_of,
    token_expiry,
};
use crate::auth::User;
use crate::error::{ApiError, ErrorCode};
use crate::platform::{ApiCode, Auth};
use crate::server::{AppState, Arrival};
use crate::tool;

#[derive(Deserialize)]
struct AnswerRow {
    conversation_id: Uuid,
}

#[derive(Deserialize)]
struct VersionRow {
    conversation_id: Uuid,
    user_message_id: Uuid,
    question: String,
    message_id: Uuid,
}

/// `POST /api/chat/{message_id}/regenerate`.
pub async fn regenerate(
    State(state): State<AppState>,
    arrival: Option<Extension<Arrival>>,
    user: User,
    Path(answer_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let arrived = arrival.map_or_else(Instant::now, |Extension(Arrival(at))| at);
    let answer_id = Uuid::parse_str(&answer_id).map_err(|_| ApiError::not_found("answer"))?;
    let request = RegenerateRequest::parse(&body, &state.config.limits)?;
    let place = answering_place(&state)?;

    let answer_and_session = async {
        let rows: Vec<AnswerRow> = state
            .platform
            .select(
                Auth::User(user.token()),
                "chat_messages",
                &[
                    ("select", "conversation_id".to_owned()),
                    ("id", format!("eq.{answer_id}")),
                    ("role", "eq.assistant".to_owned()),
                ],
            )
            .await?;
        let answer = rows
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("answer"))?;
        conversation(&state, &user, answer.conversation_id).await
    };
    let chunks = own_chunks(&state, &user, request.chunk_ids.as_slice());
    let (answer_and_session, chunks) = tokio::join!(answer_and_session, chunks);
    let (_, session_id, scope) = answer_and_session?;
    let (context, dropped) = in_scope(chunks?, &scope);
    let slot = run_slot(&state, &user).await?;

    let (token, token_hash) = tool::mint_session_token();
    let rows: Vec<VersionRow> = state
        .platform
        .rpc(
            Auth::Service,
            "regenerate_chat_answer",
            &json!({"answer_id": answer_id, "owner_id": user.id, "token_hash": token_hash,
                    "token_expires_at": token_expiry(&state), "sources": sources_of(&context)}),
        )
        .await
        .map_err(|err| match err.code() {
            // Deleted between the check and now.
            Some(ApiCode::NotFound) => ApiError::not_found("answer"),
            Some(ApiCode::Conflict) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::AnswerInProgress,
                "This answer is still being written. Wait for it to finish, or stop it, then regenerate.",
            ),
            _ => ApiError::platform(&err),
        })?;
    let version = rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("regenerate_chat_answer returned no row"))?;

    let (tx, rx) = mpsc::unbounded_channel();
    run::start(
        &state,
        Turn {
            owner: user.id,
            conversation_id: version.conversation_id,
            message_id: version.message_id,
            user_message_id: version.user_message_id,
            session_id,
            question: version.question,
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
    Ok(answer_stream(
        rx,
        version.conversation_id,
        version.message_id,
    ))
}
