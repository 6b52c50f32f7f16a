//! Platform agent sessions: each conversation has one, made by the service
//! role **without** a `user_id`, so the user cannot run the agent in it
//! directly (only through the companion and its limits); and deleted once
//! its conversation is gone.
//!
//! Deletion is driven by the database: an `after delete` trigger on
//! `public.conversations` (`db/app/70_session_outbox.sql`) records the
//! session id in an outbox however the row went (the app, a direct
//! PostgREST delete, an account's cascade), and [`drain_deletions`] deletes
//! those sessions on the platform. See `docs/platform-contract.md`.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::platform::{ApiCode, Auth, Platform, PlatformError};
use crate::server::AppState;

/// How often the outbox is drained.
pub const DRAIN_INTERVAL: Duration = Duration::from_secs(2);

/// `POST /api/agents/{agent}/sessions` with no `user_id` → the new session id.
pub async fn create(platform: &Platform, agent_id: &str) -> Result<String, PlatformError> {
    let body: Value = platform
        .json(
            "POST /api/agents/{id}/sessions",
            platform
                .request(
                    Method::POST,
                    &format!("/api/agents/{agent_id}/sessions"),
                    Auth::Service,
                )
                .json(&json!({})),
        )
        .await?;
    body.get("session_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| PlatformError::Decode {
            what: "POST /api/agents/{id}/sessions".to_owned(),
            detail: "no session_id in the answer".to_owned(),
            body: body.to_string(),
        })
}

/// Deletes the platform sessions of deleted conversations, once now: returns
/// how many the platform no longer has.
pub async fn drain_once(platform: &Platform, agent_id: &str) -> Result<usize, PlatformError> {
    let pending: Vec<String> = platform
        .rpc(
            Auth::Service,
            "pending_session_deletions",
            &json!({"max_count": 50}),
        )
        .await?;
    let mut done = 0;
    for session_id in pending {
        let what = "DELETE /api/agents/{id}/sessions/{session_id}";
        let result = platform
            .send(
                what,
                platform.request(
                    Method::DELETE,
                    &format!("/api/agents/{agent_id}/sessions/{session_id}"),
                    Auth::Service,
                ),
            )
            .await;
        match result {
            // 404: already gone (another replica, or deleted on the platform).
            Ok(_) => {}
            Err(err) if err.code() == Some(&ApiCode::NotFound) => {}
            Err(err) => {
                tracing::warn!(error = %err, "could not delete a conversation's platform session; will retry");
                continue;
            }
        }
        let _: Value = platform
            .rpc(
                Auth::Service,
                "forget_session_deletion",
                &json!({"session_id": session_id}),
            )
            .await?;
        done += 1;
    }
    Ok(done)
}

/// Deletes the platform session `session_id` of a conversation that was
/// never stored (no row, so no outbox entry either); a failure is logged and
/// the session stays, unused.
pub async fn delete(platform: &Platform, agent_id: &str, session_id: &str) {
    let deleted = platform
        .send(
            "DELETE /api/agents/{id}/sessions/{session_id}",
            platform.request(
                Method::DELETE,
                &format!("/api/agents/{agent_id}/sessions/{session_id}"),
                Auth::Service,
            ),
        )
        .await;
    match deleted {
        Ok(_) => {}
        Err(err) if err.code() == Some(&ApiCode::NotFound) => {}
        Err(err) => {
            tracing::warn!(error = %err, "could not delete the platform session of a refused conversation");
        }
    }
}

/// Drains the outbox every [`DRAIN_INTERVAL`] until shutdown.
pub(crate) async fn drain_deletions(state: AppState) {
    loop {
        if let Err(err) = drain_once(&state.platform, &state.config.agent_id.to_string()).await {
            tracing::debug!(error = %err, "could not drain the session deletion outbox");
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(DRAIN_INTERVAL) => {}
        }
    }
}
