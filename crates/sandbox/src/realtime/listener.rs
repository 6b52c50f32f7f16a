//! Broadcast from the database: rows `realtime.send()` commits into
//! `realtime.messages`, delivered to every subscriber of their (topic,
//! private) exactly once and in commit order.
//!
//! Upstream Realtime streams the table through logical replication. The
//! sandbox LISTENs instead (see `db/platform/30_realtime.sql`): an AFTER
//! INSERT trigger notifies channel `realtime_messages` with the row's id,
//! notifications arrive in commit order after the commit, and the bodies are
//! fetched in batches through the Realtime pool. The LISTEN connection runs
//! nothing but `LISTEN`, under `application_name` [`APPLICATION_NAME`].
//!
//! Losing that connection loses the notifications sent while it was down, so
//! the listener keeps a *safe snapshot*: a `pg_snapshot` such that every row
//! committed before it has been delivered. After reconnecting (LISTEN first),
//! it delivers the rows committed since — `not pg_visible_in_snapshot(
//! sandbox_xid, safe)` — then carries on with the notifications, skipping ids
//! it delivered recently. The safe snapshot advances with *marks*: after a
//! batch the listener sends its own notification on the channel together
//! with a fresh snapshot, in one statement. Notifications are queued in
//! commit order, so when the mark comes back every transaction visible in
//! that snapshot has had its notification delivered and processed; the
//! snapshot becomes the safe one, and ids delivered before the mark was sent
//! can be forgotten. A mark goes out at most every [`MARK_INTERVAL`] (and
//! after a quiet [`MARK_INTERVAL`]), not after every batch: under a stream
//! of broadcasts that is one transaction now and then instead of one per
//! batch.
//!
//! A row whose topic nobody receiving broadcasts has joined when its
//! notification is handled reaches nobody: its body is not fetched. It
//! counts as delivered (a subscriber who joins later gets it neither now
//! nor from a catch-up, as when it had been fanned out to no one).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt as _, stream};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, IsolationLevel, NoTls, Row};
use uuid::Uuid;

use super::frame::{ServerFrame, event};
use super::registry::TopicKey;
use crate::db::Service;
use crate::state::AppState;

/// The NOTIFY channel of `realtime.messages` inserts.
pub const CHANNEL: &str = "realtime_messages";
/// `application_name` of the LISTEN connection (tests find it by this name).
pub const APPLICATION_NAME: &str = "quire-sandbox/realtime-listener";
/// Most notifications handled in one batch (one body fetch).
const BATCH: usize = 512;
/// Ids remembered for de-duplication at most; far more than ever pile up
/// between two marks.
const RECENT_CAPACITY: usize = 200_000;
/// Least time between two marks; also how long after the last batch a mark
/// that is due goes out.
const MARK_INTERVAL: Duration = Duration::from_millis(250);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

const FETCH: &str = "select id, topic, event, payload, coalesce(private, false) \
     from realtime.messages where id = any($1) and extension = 'broadcast'";
const CATCH_UP: &str = "select id, topic, event, payload, coalesce(private, false) \
     from realtime.messages \
     where sandbox_xid >= pg_snapshot_xmin($1::text::pg_snapshot) \
       and not pg_visible_in_snapshot(sandbox_xid, $1::text::pg_snapshot) \
       and extension = 'broadcast' \
     order by sandbox_seq";
const SNAPSHOT: &str = "select pg_current_snapshot()::text";
const MARK: &str =
    "with sent as (select pg_notify($1, $2)) select pg_current_snapshot()::text from sent";

#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Config(#[from] crate::db::DbError),
    #[error("database: {}", with_sources(.0))]
    Database(#[from] tokio_postgres::Error),
    #[error("pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("the LISTEN connection closed")]
    ConnectionLost,
}

/// Ids delivered since the last safe snapshot, in delivery order.
#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<(u64, Uuid)>,
    set: HashSet<Uuid>,
    seq: u64,
}

impl Recent {
    fn contains(&self, id: &Uuid) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: Uuid) {
        if self.set.insert(id) {
            self.seq += 1;
            self.order.push_back((self.seq, id));
            if self.order.len() > RECENT_CAPACITY
                && let Some((_, old)) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    /// Forgets ids delivered before sequence number `seq`.
    fn forget_before(&mut self, seq: u64) {
        while let Some(&(s, id)) = self.order.front() {
            if s >= seq {
                break;
            }
            self.order.pop_front();
            self.set.remove(&id);
        }
    }
}

struct Listener {
    state: AppState,
    instance: String,
    safe: Option<String>,
    recent: Recent,
    next_mark: u64,
    marks: HashMap<u64, (String, u64)>,
    delivered_since_mark: bool,
    /// When the last mark was sent.
    last_mark: Option<tokio::time::Instant>,
}

/// Runs until the sandbox shuts down.
pub async fn run(state: AppState) {
    let mut listener = Listener {
        instance: Uuid::new_v4().to_string(),
        state,
        safe: None,
        recent: Recent::default(),
        next_mark: 0,
        marks: HashMap::new(),
        delivered_since_mark: false,
        last_mark: None,
    };
    let shutdown = listener.state.shutdown.clone();
    let mut backoff = BACKOFF_MIN;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = listener.session(&mut backoff) => result,
        };
        listener.state.realtime.listening.send_replace(false);
        match result {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "realtime listener lost the database; reconnecting");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(jitter(backoff)) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// An error and its causes on one line (tokio-postgres says only "db error"
/// at the top).
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `base` ± 25 %.
fn jitter(base: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let factor = 0.75 + f64::from(byte[0]) / 255.0 * 0.5;
    base.mul_f64(factor)
}

impl Listener {
    /// One LISTEN connection's life. Returns `Ok` only on shutdown.
    async fn session(&mut self, backoff: &mut Duration) -> Result<(), ListenError> {
        if self.safe.is_none() {
            // Taken before LISTEN, so rows committed between the sandbox's
            // start and the first LISTEN are caught up too.
            let client = self.state.db.realtime.get().await?;
            self.safe = Some(client.query_one(SNAPSHOT, &[]).await?.get(0));
        }

        let mut config = self.state.config.db.pg_config(Service::Realtime)?;
        config.application_name(APPLICATION_NAME);
        let (client, mut connection) = config.connect(NoTls).await?;
        let (tx, mut notifications) = mpsc::unbounded_channel::<String>();
        let driver = tokio::spawn(async move {
            let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                        if tx.send(n.payload().to_owned()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(%error, "realtime LISTEN connection ended");
                        break;
                    }
                }
            }
        });
        let _driver = AbortOnDrop(driver);

        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        self.marks.clear();
        self.catch_up().await?;
        self.state.realtime.listening.send_replace(true);
        *backoff = BACKOFF_MIN;
        tracing::debug!("realtime listener is live");

        loop {
            let first = match tokio::time::timeout(MARK_INTERVAL, notifications.recv()).await {
                Ok(Some(first)) => first,
                Ok(None) => return Err(ListenError::ConnectionLost),
                Err(_quiet) => {
                    self.send_mark_if_due().await?;
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match notifications.try_recv() {
                    Ok(payload) => batch.push(payload),
                    Err(_) => break,
                }
            }
            self.process(batch).await?;
        }
    }

    /// Delivers every row committed since the safe snapshot that has not been
    /// delivered yet, and takes a new safe snapshot (LISTEN is already on, so
    /// anything later arrives as a notification).
    async fn catch_up(&mut self) -> Result<(), ListenError> {
        let Some(safe) = self.safe.clone() else {
            return Ok(());
        };
        let mut client = self.state.db.realtime.get().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let snapshot: String = tx.query_one(SNAPSHOT, &[]).await?.get(0);
        let rows = tx.query(CATCH_UP, &[&safe]).await?;
        tx.commit().await?;
        let mut fresh = 0;
        for row in &rows {
            if self.deliver(row) {
                fresh += 1;
            }
        }
        if fresh > 0 {
            tracing::info!(
                rows = fresh,
                "realtime listener caught up after reconnecting"
            );
        }
        self.safe = Some(snapshot);
        self.send_mark_if_due().await
    }

    /// Handles a batch of notifications in order: row ids are fetched and
    /// delivered, marks advance the safe snapshot once the rows before them
    /// are out.
    async fn process(&mut self, batch: Vec<String>) -> Result<(), ListenError> {
        let mut ids = Vec::new();
        for payload in batch {
            let Ok(value) = serde_json::from_str::<Value>(&payload) else {
                tracing::warn!(payload, "ignoring an unreadable realtime notification");
                continue;
            };
            if let Some(id) = value.get("id").and_then(Value::as_str) {
                match Uuid::parse_str(id) {
                    Ok(id) if self.reaches_nobody(&value) => self.handled(id),
                    Ok(id) => ids.push(id),
                    Err(_) => {
                        tracing::warn!(payload, "ignoring a realtime notification without a uuid")
                    }
                }
            } else if value.get("sandbox_mark").and_then(Value::as_str) == Some(&self.instance) {
                self.fetch_and_deliver(std::mem::take(&mut ids)).await?;
                if let Some(n) = value.get("n").and_then(Value::as_u64) {
                    self.mark_arrived(n);
                }
            }
        }
        self.fetch_and_deliver(ids).await?;
        self.send_mark_if_due().await
    }

    /// Whether a notification's row is on a topic no subscription receiving
    /// broadcasts has joined (false when the notification does not say).
    fn reaches_nobody(&self, notification: &Value) -> bool {
        let (Some(topic), Some(private)) = (
            notification.get("topic").and_then(Value::as_str),
            notification.get("private").and_then(Value::as_bool),
        ) else {
            return false;
        };
        !self
            .state
            .realtime
            .registry()
            .receives_broadcasts(&TopicKey::new(topic, private))
    }

    /// Counts row `id` as delivered without fetching it: it reaches nobody.
    fn handled(&mut self, id: Uuid) {
        if !self.recent.contains(&id) {
            self.recent.insert(id);
            self.delivered_since_mark = true;
        }
    }

    async fn fetch_and_deliver(&mut self, ids: Vec<Uuid>) -> Result<(), ListenError> {
        let ids: Vec<Uuid> = ids
            .into_iter()
            .filter(|id| !self.recent.contains(id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.state.db.realtime.get().await?;
        let rows = client.query(FETCH, &[&ids]).await?;
        let mut by_id: HashMap<Uuid, &Row> = rows.iter().map(|r| (r.get(0), r)).collect();
        for id in &ids {
            if let Some(row) = by_id.remove(id) {
                self.deliver(row);
            }
        }
        Ok(())
    }

    /// Fans one `realtime.messages` row out, unless it went out already.
    /// Returns whether it went out now.
    fn deliver(&mut self, row: &Row) -> bool {
        let id: Uuid = row.get(0);
        if self.recent.contains(&id) {
            return false;
        }
        self.recent.insert(id);
        self.delivered_since_mark = true;
        let key = TopicKey::new(row.get::<_, String>(1), row.get::<_, bool>(4));
        let event_name: Option<String> = row.get(2);
        let payload: Option<Value> = row.get(3);
        let wire = key.wire_topic();
        let frame = ServerFrame::push(
            &wire,
            event::BROADCAST,
            json!({"type": "broadcast", "event": event_name, "payload": payload, "meta": {"id": id}}),
        );
        let text: Arc<str> = frame.to_text().into();
        self.state
            .realtime
            .registry()
            .broadcast(&key, text, Some(id), None);
        true
    }

    async fn send_mark_if_due(&mut self) -> Result<(), ListenError> {
        if !self.delivered_since_mark
            || !self.marks.is_empty()
            || self
                .last_mark
                .is_some_and(|at| at.elapsed() < MARK_INTERVAL)
        {
            return Ok(());
        }
        self.last_mark = Some(tokio::time::Instant::now());
        self.next_mark += 1;
        let n = self.next_mark;
        let payload = json!({"sandbox_mark": self.instance, "n": n}).to_string();
        let client = self.state.db.realtime.get().await?;
        let snapshot: String = client.query_one(MARK, &[&CHANNEL, &payload]).await?.get(0);
        self.marks.insert(n, (snapshot, self.recent.seq + 1));
        self.delivered_since_mark = false;
        Ok(())
    }

    fn mark_arrived(&mut self, n: u64) {
        if let Some((snapshot, seq)) = self.marks.remove(&n) {
            self.safe = Some(snapshot);
            self.recent.forget_before(seq);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_are_forgotten_only_before_the_mark() {
        let mut recent = Recent::default();
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        recent.insert(a);
        let mark = recent.seq + 1;
        recent.insert(b);
        recent.insert(b);
        assert_eq!(recent.order.len(), 2);
        recent.forget_before(mark);
        assert!(!recent.contains(&a));
        assert!(recent.contains(&b));
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000));
            assert!(
                d >= Duration::from_millis(750) && d <= Duration::from_millis(1250),
                "{d:?}"
            );
        }
    }
}
