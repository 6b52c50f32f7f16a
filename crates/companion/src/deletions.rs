//! Deleted documents' files and platform sources, deleted in turn.
//!
//! Deletion is driven by the database: an `after delete` trigger on
//! `public.documents` (`db/app/97_document_deletions.sql`) records the
//! document's Storage key and source in an outbox however the row went (the
//! companion's `DELETE /api/documents/{id}`, the stale-upload sweep, a
//! direct PostgREST delete by its owner, an account's cascade), and
//! [`drain_deletions`] carries them out with the service key: the object in
//! bucket `documents`, then the source — unless another document still uses
//! it (the platform shares a source between uploads of the same bytes,
//! docs/platform/ai-api.md §7.2; since each file is sent with its owner's
//! mark, `ingest::owner_mark`, that is the same owner's repeated upload) —
//! then forgets the entry. A 404 from either counts as done; any
//! other failure leaves the entry for the next round.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::platform::{Auth, Platform, PlatformError};
use crate::server::AppState;

/// How often the outbox is drained.
pub const DRAIN_INTERVAL: Duration = Duration::from_secs(2);

/// Entries read per round.
const BATCH: u16 = 50;

/// One entry of the outbox (`pending_document_deletions`).
#[derive(Debug, Deserialize)]
struct Pending {
    document_id: Uuid,
    storage_path: String,
    source_id: Option<Uuid>,
    source_still_used: bool,
}

/// `Ok` when `result` succeeded or found nothing to delete (404).
fn done_or_gone(result: Result<(), PlatformError>) -> Result<(), PlatformError> {
    match result {
        Err(err) if err.status() == Some(404) => Ok(()),
        other => other,
    }
}

/// Carries out the pending deletions once now: returns how many are done.
pub async fn drain_once(platform: &Platform) -> Result<usize, PlatformError> {
    let pending: Vec<Pending> = platform
        .rpc(
            Auth::Service,
            "pending_document_deletions",
            &json!({"max_count": BATCH}),
        )
        .await?;
    let mut done = 0;
    for entry in pending {
        if let Err(err) = clean_up(platform, &entry).await {
            tracing::warn!(document_id = %entry.document_id, error = %err,
                "could not delete a deleted document's file or source; will retry");
            continue;
        }
        let _: Value = platform
            .rpc(
                Auth::Service,
                "forget_document_deletion",
                &json!({"document_id": entry.document_id}),
            )
            .await?;
        done += 1;
    }
    Ok(done)
}

async fn clean_up(platform: &Platform, entry: &Pending) -> Result<(), PlatformError> {
    let path = format!("/storage/v1/object/documents/{}", entry.storage_path);
    done_or_gone(
        platform
            .call(
                "DELETE /storage/v1/object/documents/…",
                platform.request(Method::DELETE, &path, Auth::Service),
            )
            .await,
    )?;
    if let Some(source) = entry.source_id
        && !entry.source_still_used
    {
        // Its knowledge-base entry and chunks go with it (db/app/97_document_deletions.sql).
        done_or_gone(
            platform
                .call(
                    "DELETE /api/sources/{id}",
                    platform.request(
                        Method::DELETE,
                        &format!("/api/sources/{source}"),
                        Auth::Service,
                    ),
                )
                .await,
        )?;
    }
    Ok(())
}

/// Drains the outbox every [`DRAIN_INTERVAL`] until shutdown, and at once
/// again after a full batch (an account's thousand documents do not wait
/// two seconds per fifty).
pub(crate) async fn drain_deletions(state: AppState) {
    loop {
        let more = match drain_once(&state.platform).await {
            Ok(0) => false,
            Ok(done) => {
                tracing::info!(done, "deleted the files and sources of deleted documents");
                done == usize::from(BATCH)
            }
            Err(err) => {
                tracing::debug!(error = %err, "could not drain the document deletion outbox");
                false
            }
        };
        if state.shutdown.is_cancelled() {
            return;
        }
        if more {
            continue;
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(DRAIN_INTERVAL) => {}
        }
    }
}
