//! Many answers' event rows in one write: group commit
//! (db/app/98_answer_batches.sql).
//!
//! Each answer's recorder ([`super::run`]) hands its rows to the
//! [`EventWriter`] — and at the end its final row, with what ends the
//! answer — and waits for the outcome before it hands the next, so one
//! answer's rows are written in order, once. A writer task takes whatever
//! queued up, from every answer this companion streams, while its previous
//! write was in flight, and writes it in one request and one transaction
//! (`write_chat_answers`), 5 ms after the first of them arrived. Alone, a
//! row goes out that much later; under load the database sees a few larger
//! writes instead of one per answer per coalescing interval, and every row
//! is still persisted and broadcast (its trigger's `realtime.send`) in its
//! answer's order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use quire_protocol::Backoff;

use super::events::EventRow;
use crate::platform::{Auth, Platform};

/// Writes in flight at once: while one is written, the next gathers.
const WRITERS: usize = 1;
/// How long the writer waits, after the first rows of a write arrived, for
/// other answers' rows to join them: a follower sees a row that much later,
/// and under load a write carries several answers' rows instead of one.
const LINGER: Duration = Duration::from_millis(5);
/// Most answers' rows in one write.
const MOST_PER_WRITE: usize = 64;
/// Tries of a write before its rows are given up (logged).
const ATTEMPTS: u32 = 8;

/// Hands rows to the writer tasks; they end when the last handle is dropped.
pub struct EventWriter {
    queue: mpsc::UnboundedSender<Pending>,
}

/// One answer's rows, waiting to be written.
struct Pending {
    message_id: Uuid,
    rows: Vec<EventRow>,
    /// The answer's text so far; its final text with `finish`.
    content: String,
    /// What ends the answer (`finish_chat_answer`'s other arguments), with
    /// its final row.
    finish: Option<Finish>,
    done: oneshot::Sender<Option<Written>>,
}

/// What ends an answer besides its final row and text: its status, its
/// citations, the platform's run id, the error shown, and the run's tool
/// session and run slot, which go with it.
#[derive(serde::Serialize)]
pub struct Finish {
    /// `complete`, `stopped` or `failed`.
    pub status: super::events::MessageStatus,
    /// The answer's citations.
    pub citations: Vec<super::events::Citation>,
    /// The platform's `run_…` id, once known.
    pub run_id: Option<String>,
    /// What the person is told went wrong.
    pub error: Option<String>,
    /// The hash of the run's `session_token`.
    pub token_hash: String,
    /// The run's slot in `private.run_slots`.
    pub slot_id: Uuid,
}

/// One row of `write_chat_answers`.
#[derive(Deserialize)]
struct Written {
    message_id: Uuid,
    streaming: Option<bool>,
    status: Option<String>,
}

impl EventWriter {
    /// Starts the writer tasks (inside a Tokio runtime).
    pub fn start(platform: Platform) -> EventWriter {
        let (queue, pending) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(pending));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(platform.clone(), pending.clone()));
        }
        EventWriter { queue }
    }

    /// Appends `rows` to answer `message_id` and sets its text so far:
    /// `Some(true)` while the answer is still streaming, `Some(false)` when
    /// it no longer is (stopped elsewhere, cut at the length limit, or
    /// gone), `None` when the write failed (logged).
    pub async fn append(
        &self,
        message_id: Uuid,
        rows: Vec<EventRow>,
        content: String,
    ) -> Option<bool> {
        let written = self.write(message_id, rows, content, None).await?;
        Some(written.streaming.unwrap_or(false))
    }

    /// Writes answer `message_id`'s final `rows` and `content`, and ends it
    /// as `finish` says (`finish_chat_answer`): `Some(status)` as persisted
    /// (`None` inside when the answer was gone or already finished), `None`
    /// when the write failed (logged).
    pub async fn finish(
        &self,
        message_id: Uuid,
        rows: Vec<EventRow>,
        content: String,
        finish: Finish,
    ) -> Option<Option<String>> {
        let written = self.write(message_id, rows, content, Some(finish)).await?;
        Some(written.status)
    }

    async fn write(
        &self,
        message_id: Uuid,
        rows: Vec<EventRow>,
        content: String,
        finish: Option<Finish>,
    ) -> Option<Written> {
        let (done, outcome) = oneshot::channel();
        self.queue
            .send(Pending {
                message_id,
                rows,
                content,
                finish,
                done,
            })
            .ok()?;
        outcome.await.ok().flatten()
    }
}

/// One writer task: the first pending rows, and whatever queued behind them.
async fn write_batches(platform: Platform, pending: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>) {
    loop {
        let batch = {
            let mut pending = pending.lock().await;
            let Some(first) = pending.recv().await else {
                return;
            };
            tokio::time::sleep(LINGER).await;
            let mut batch = vec![first];
            while batch.len() < MOST_PER_WRITE {
                match pending.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        write(&platform, batch).await;
    }
}

fn entry(pending: &Pending) -> Value {
    json!({"message_id": pending.message_id, "events": pending.rows,
           "content": pending.content, "finish": pending.finish})
}

async fn write(platform: &Platform, batch: Vec<Pending>) {
    let written: Option<Vec<Written>> = write_with_retries(
        platform,
        "write_chat_answers",
        &json!({ "batches": batch.iter().map(entry).collect::<Vec<_>>() }),
        ATTEMPTS,
    )
    .await;
    if let Some(written) = written {
        let mut by_message: HashMap<Uuid, Written> =
            written.into_iter().map(|w| (w.message_id, w)).collect();
        for pending in batch {
            let outcome = by_message.remove(&pending.message_id);
            let _ = pending.done.send(outcome);
        }
        return;
    }
    // One answer's rows may be what the database refused: each alone, so
    // that the others are not lost with them.
    if batch.len() == 1 {
        // Already alone: dropping it tells its recorder the write failed.
        return;
    }
    for pending in batch {
        let args = json!({ "batches": [entry(&pending)] });
        let written: Option<Vec<Written>> =
            write_with_retries(platform, "write_chat_answers", &args, 2).await;
        let _ = pending
            .done
            .send(written.and_then(|w| w.into_iter().next()));
    }
}

/// Calls `function` as the service role, retrying transient failures with
/// backoff; `None` when it never succeeded (logged).
async fn write_with_retries<T: serde::de::DeserializeOwned>(
    platform: &Platform,
    function: &str,
    args: &Value,
    attempts: u32,
) -> Option<T> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    for attempt in 1..=attempts {
        match platform.rpc::<T>(Auth::Service, function, args).await {
            Ok(value) => return Some(value),
            Err(err) if err.is_transient() && attempt < attempts => {
                tracing::warn!(error = %err, attempt, function, "writing chat events failed; retrying");
                tokio::time::sleep(backoff.next()).await;
            }
            Err(err) => {
                tracing::error!(error = %err, function, "writing chat events failed");
                return None;
            }
        }
    }
    None
}
