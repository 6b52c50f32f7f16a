//! The Realtime follower: one WebSocket per signed-in user, joined to the
//! private topic `realtime:user:<uid>`, feeding the state model live; after
//! every (re)join it backfills from Postgres by `seq`, so after any cut the
//! state shows exactly what was missed (docs/platform/supabase.md §2,
//! ARCHITECTURE.md#follow).
//!
//! Protocol choices, each from the reference:
//! * `vsn=1.0.0`, anon key as `apikey` (Kong accepts only project keys
//!   there); the user's token goes in the join payload (docs/platform/supabase.md §2.4). Measured
//!   against vsn 2.0.0 (supabase-js's default): a `document_changed`
//!   broadcast on `realtime:user:<uid>` is 325 bytes as a V1 object and 298
//!   as a V2 array (27 bytes, 8 %, per message; a heartbeat 63 vs 36), and
//!   parsing either is microseconds. That does not pay for what V2 costs:
//!   Realtime ≥ 2.63 sends V2 broadcasts as binary frames, a second decoder
//!   to keep right, while V1 is JSON text only (see
//!   `docs/platform-contract.md`).
//! * Heartbeat every 25 s; an unanswered heartbeat when the next is due is
//!   a dead connection (phoenix.js's rule, docs/platform/supabase.md §2.7).
//! * Join timeout 10 s, above the server's 5 s delay on join errors (docs/platform/supabase.md §2.4),
//!   so a refused join is not mistaken for a timeout.
//! * Every new access token is pushed as `access_token` before the old one
//!   expires (the auth module refreshes ahead of expiry).
//! * Reconnects back off exponentially with jitter (1 s … 30 s) and the
//!   backoff resets after a join that held.
//! * Nothing is queued server-side while disconnected (docs/platform/supabase.md §2.9), hence the
//!   backfill: conversations, documents, the messages changed since the last
//!   join, and the events of every unfinished answer after the last seq
//!   applied. Live events that overlap the backfill are de-duplicated by
//!   `(message_id, seq)` in the state model.

pub mod phoenix;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use quire_protocol::backoff::Backoff;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::AuthState;
use crate::chat::{self, ChatEvent};
use crate::error::{Error, Result, Service};
use crate::quire::Quire;
use crate::state::{Document, DocumentStatus, MessageRow, Source};
use phoenix::{Incoming, Outgoing};

/// The follower's timing. Defaults follow realtime-js.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Interval between heartbeats (default 25 s).
    pub heartbeat: Duration,
    /// How long to wait for the join reply (default 10 s).
    pub join_timeout: Duration,
    /// First reconnect delay (default 1 s); doubles per failure.
    pub backoff_base: Duration,
    /// Longest reconnect delay (default 30 s).
    pub backoff_max: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            heartbeat: Duration::from_secs(25),
            join_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// What the follower is doing, for the UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FollowStatus {
    /// Waiting for someone to sign in.
    SignedOut,
    /// Opening the socket and joining the channel.
    Connecting,
    /// Joined and caught up (or catching up: `backfilled` says).
    Joined {
        /// Whether what was missed while away has been read from Postgres;
        /// live events apply meanwhile either way.
        backfilled: bool,
    },
    /// The connection failed; retrying after a delay.
    Reconnecting {
        /// Why the last connection ended, for a person.
        error: String,
        /// How long until the next attempt, in milliseconds.
        retry_in_ms: u64,
    },
}

/// A running follower. Dropping it (or [`Follower::stop`]) ends it.
pub struct Follower {
    status: watch::Receiver<FollowStatus>,
    joins: Arc<AtomicU64>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Follower {
    /// The current status.
    pub fn status(&self) -> FollowStatus {
        self.status.borrow().clone()
    }

    /// Status changes.
    pub fn watch(&self) -> watch::Receiver<FollowStatus> {
        self.status.clone()
    }

    /// How many times the channel has been joined (1 for a connection that
    /// never dropped).
    pub fn joins(&self) -> u64 {
        self.joins.load(Ordering::Relaxed)
    }

    /// Waits until joined and backfilled.
    pub async fn ready(&self) {
        let mut status = self.status.clone();
        let _ = status
            .wait_for(|s| matches!(s, FollowStatus::Joined { backfilled: true }))
            .await;
    }

    /// Leaves the channel and closes the socket.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub(crate) fn start(quire: Quire, options: FollowOptions) -> Follower {
    let (status_tx, status) = watch::channel(FollowStatus::SignedOut);
    let joins = Arc::new(AtomicU64::new(0));
    let cancel = CancellationToken::new();
    let context = Context {
        quire,
        options,
        status: status_tx,
        joins: joins.clone(),
        requested: Arc::default(),
    };
    let task = tokio::spawn(run(context, cancel.clone()));
    Follower {
        status,
        joins,
        cancel,
        task: Some(task),
    }
}

#[derive(Clone)]
struct Context {
    quire: Quire,
    options: FollowOptions,
    status: watch::Sender<FollowStatus>,
    joins: Arc<AtomicU64>,
    /// Messages whose rows were already fetched on first sight.
    requested: Arc<Mutex<HashSet<Uuid>>>,
}

enum Ended {
    /// The person signed out.
    SignedOut,
    /// The follower was stopped.
    Stopped,
}

/// Reconnects until stopped; waits while nobody is signed in.
async fn run(context: Context, cancel: CancellationToken) {
    let backoff = Backoff::new(context.options.backoff_base, context.options.backoff_max);
    let mut reconnects = Reconnects {
        context,
        backoff,
        last_join: None,
    };
    reconnects.run(cancel).await;
}

/// What the follower carries from one connection to the next.
struct Reconnects {
    context: Context,
    backoff: Backoff,
    /// When the channel was last joined: the next backfill re-reads what
    /// changed since a little before it.
    last_join: Option<DateTime<Utc>>,
}

impl Reconnects {
    async fn run(&mut self, cancel: CancellationToken) {
        let mut auth = self.context.quire.auth.subscribe();
        loop {
            let user = match &*auth.borrow_and_update() {
                AuthState::SignedIn(session) => Some(session.user.id),
                AuthState::SignedOut(_) => None,
            };
            let Some(user) = user else {
                self.context.status.send_replace(FollowStatus::SignedOut);
                self.last_join = None;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = auth.changed() => if changed.is_err() { return },
                }
                continue;
            };
            self.context.status.send_replace(FollowStatus::Connecting);
            match self.connection(user, &cancel).await {
                Ok(Ended::Stopped) => return,
                Ok(Ended::SignedOut) => self.backoff.reset(),
                Err(error) => {
                    let delay = self.backoff.next();
                    tracing::info!(%error, ?delay, "realtime connection lost; reconnecting");
                    self.context
                        .status
                        .send_replace(FollowStatus::Reconnecting {
                            error: error.to_string(),
                            retry_in_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        });
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// One connection: connect and join, backfill, then follow until
    /// something ends it.
    async fn connection(&mut self, user: Uuid, cancel: &CancellationToken) -> Result<Ended> {
        let context = &self.context;
        // Subscribed before the token is read, so no refresh is missed.
        let auth = context.quire.auth.subscribe();
        let channel = tokio::select! {
            () = cancel.cancelled() => return Ok(Ended::Stopped),
            joined = Channel::join(&context.quire, user, context.options.join_timeout) => joined?,
        };
        let joined_at = tokio::time::Instant::now();
        context.joins.fetch_add(1, Ordering::Relaxed);
        context
            .status
            .send_replace(FollowStatus::Joined { backfilled: false });
        let since = self.last_join.map(|at| at - chrono::Duration::seconds(120));
        self.last_join = Some(Utc::now());
        let ended = follow(context, channel, auth, since, cancel).await;
        // A join that held for a while was a good connection.
        if ended.is_err() && joined_at.elapsed() > context.options.heartbeat * 2 {
            self.backoff.reset();
        }
        ended
    }
}

/// Follows a joined channel: the backfill in the background, heartbeats,
/// new access tokens, live broadcasts into the state, until something ends
/// it.
async fn follow(
    context: &Context,
    mut channel: Channel,
    mut auth: watch::Receiver<AuthState>,
    since: Option<DateTime<Utc>>,
    cancel: &CancellationToken,
) -> Result<Ended> {
    let mut backfill = Some(tokio::spawn({
        let context = context.clone();
        async move { catch_up(&context, since).await }
    }));
    let mut heartbeat = tokio::time::interval(context.options.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => {
                channel.leave().await;
                return Ok(Ended::Stopped);
            }
            done = async { backfill.as_mut().expect("guarded").await }, if backfill.is_some() => {
                backfill = None;
                match done {
                    Ok(Ok(())) => {
                        context.status.send_replace(FollowStatus::Joined { backfilled: true });
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(realtime_error(&format!("the backfill task failed: {e}"))),
                }
            }
            _ = heartbeat.tick() => channel.heartbeat().await?,
            changed = auth.changed() => {
                if changed.is_err() {
                    return Ok(Ended::Stopped);
                }
                let current = auth.borrow_and_update().clone();
                if let Some(ended) = channel.on_auth(current).await? {
                    return Ok(ended);
                }
            }
            frame = channel.stream.next() => {
                if let Some((event, payload)) = channel.on_frame(frame)? {
                    live(context, &event, payload);
                }
            }
        }
    }
}

fn websocket_url(quire: &Quire) -> Result<String> {
    let mut url = quire.api.config.api_url.clone();
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme).map_err(|()| {
        Error::NotConfigured("api_url cannot be turned into a WebSocket URL".into())
    })?;
    url.set_path(&format!(
        "{}/realtime/v1/websocket",
        url.path().trim_end_matches('/')
    ));
    url.query_pairs_mut()
        .clear()
        .append_pair("apikey", quire.api.anon_key())
        .append_pair("vsn", "1.0.0");
    Ok(url.to_string())
}

/// A joined Phoenix channel on `realtime:user:<uid>`, on its own socket:
/// message refs, the join, heartbeats, access-token pushes and incoming
/// frames. The frames themselves are `phoenix`'s; what a broadcast means is
/// the caller's.
struct Channel {
    sink: Sink,
    stream: futures_util::stream::SplitStream<Socket>,
    user: Uuid,
    topic: String,
    join_ref: String,
    refs: u64,
    /// The ref of the heartbeat not answered yet.
    pending_heartbeat: Option<String>,
    /// The session generation whose token the channel has.
    generation: Option<u64>,
}

impl Channel {
    /// Connects and joins with the current access token; returns once the
    /// join is accepted (an error when it is refused or not answered within
    /// `timeout`).
    async fn join(quire: &Quire, user: Uuid, timeout: Duration) -> Result<Channel> {
        let url = websocket_url(quire)?;
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| Error::offline(Service::Realtime, e))?;
        let (sink, stream) = socket.split();
        let token = quire.auth.access_token().await?;
        let mut channel = Channel {
            sink,
            stream,
            user,
            topic: format!("realtime:user:{user}"),
            join_ref: String::new(),
            refs: 0,
            pending_heartbeat: None,
            generation: quire.auth.generation(),
        };
        channel.join_ref = channel.next_ref();
        let join = Outgoing::join(
            &channel.topic,
            channel.join_ref.clone(),
            secrecy::ExposeSecret::expose_secret(&token),
        );
        channel.send(join).await?;
        tokio::time::timeout(timeout, channel.joined())
            .await
            .map_err(|_| realtime_error("the channel join timed out"))??;
        Ok(channel)
    }

    /// Waits for the join's reply; broadcasts cannot arrive before it.
    async fn joined(&mut self) -> Result<()> {
        loop {
            let Some(text) = next_text(self.stream.next().await)? else {
                continue;
            };
            match phoenix::parse(&text) {
                Ok(Incoming::Reply {
                    reference: Some(r),
                    ok,
                    response,
                    ..
                }) if r == self.join_ref => {
                    if ok {
                        return Ok(());
                    }
                    return Err(realtime_error(&format!(
                        "the channel join was refused: {}",
                        phoenix::reason(&response)
                    )));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring an unreadable realtime frame"),
            }
        }
    }

    fn next_ref(&mut self) -> String {
        self.refs += 1;
        self.refs.to_string()
    }

    async fn send(&mut self, frame: Outgoing) -> Result<()> {
        self.sink
            .send(WsMessage::text(frame.to_text()))
            .await
            .map_err(|e| Error::offline(Service::Realtime, e))
    }

    /// Sends a heartbeat; an error when the last one is still unanswered
    /// (a dead connection, phoenix.js's rule).
    async fn heartbeat(&mut self) -> Result<()> {
        if self.pending_heartbeat.is_some() {
            return Err(realtime_error("the server stopped answering heartbeats"));
        }
        let reference = self.next_ref();
        self.send(Outgoing::heartbeat(reference.clone())).await?;
        self.pending_heartbeat = Some(reference);
        Ok(())
    }

    /// Follows a change of the session: a new access token is pushed to the
    /// channel; signing out leaves it, another user closes it (both end the
    /// connection).
    async fn on_auth(&mut self, state: AuthState) -> Result<Option<Ended>> {
        match state {
            AuthState::SignedOut(_) => {
                self.leave().await;
                Ok(Some(Ended::SignedOut))
            }
            AuthState::SignedIn(session) if session.user.id != self.user => {
                let _ = self.sink.close().await;
                Ok(Some(Ended::SignedOut))
            }
            AuthState::SignedIn(session) if Some(session.generation) != self.generation => {
                self.generation = Some(session.generation);
                let token = secrecy::ExposeSecret::expose_secret(&session.access_token).to_owned();
                let (topic, join_ref) = (self.topic.clone(), self.join_ref.clone());
                let reference = self.next_ref();
                self.send(Outgoing::access_token(&topic, &join_ref, reference, &token))
                    .await?;
                Ok(None)
            }
            AuthState::SignedIn(_) => Ok(None),
        }
    }

    /// Reads one incoming WebSocket message: a heartbeat's reply is noted, a
    /// broadcast on the channel is returned (its event and payload), and the
    /// server closing the channel or the socket is an error.
    fn on_frame(&mut self, frame: Option<WsResult>) -> Result<Option<(String, Value)>> {
        let Some(text) = next_text(frame)? else {
            return Ok(None);
        };
        match phoenix::parse(&text) {
            Ok(Incoming::Reply {
                topic, reference, ..
            }) if topic == "phoenix" => {
                if reference.is_some() && reference == self.pending_heartbeat {
                    self.pending_heartbeat = None;
                }
            }
            Ok(Incoming::Broadcast {
                topic,
                event,
                payload,
            }) if topic == self.topic => return Ok(Some((event, payload))),
            Ok(Incoming::System {
                topic,
                ok: false,
                message,
            }) if topic == self.topic => {
                return Err(realtime_error(&format!(
                    "the server closed the channel: {message}"
                )));
            }
            Ok(Incoming::System {
                ok: true, message, ..
            }) if message.contains("disconnect") => return Err(realtime_error(&message)),
            Ok(Incoming::Close { topic } | Incoming::ChannelError { topic })
                if topic == self.topic =>
            {
                return Err(realtime_error("the server closed the channel"));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring an unreadable realtime frame"),
        }
        Ok(None)
    }

    /// Leaves the channel and closes the socket (best effort: it is ending).
    async fn leave(&mut self) {
        let (topic, join_ref) = (self.topic.clone(), self.join_ref.clone());
        let reference = self.next_ref();
        let _ = self
            .send(Outgoing::leave(&topic, &join_ref, reference))
            .await;
        let _ = self.sink.close().await;
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures_util::stream::SplitSink<Socket, WsMessage>;
type WsResult = std::result::Result<WsMessage, tokio_tungstenite::tungstenite::Error>;

/// The text of the next WebSocket message; `None` for control frames;
/// an error when the socket ended.
fn next_text(frame: Option<WsResult>) -> Result<Option<String>> {
    match frame {
        None => Err(realtime_error("the connection closed")),
        Some(Err(e)) => Err(Error::offline(Service::Realtime, e)),
        Some(Ok(WsMessage::Text(text))) => Ok(Some(text.as_str().to_owned())),
        Some(Ok(WsMessage::Close(_))) => Err(realtime_error("the server closed the connection")),
        Some(Ok(_)) => Ok(None),
    }
}

fn realtime_error(detail: &str) -> Error {
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Detail(String);
    Error::offline(Service::Realtime, Detail(detail.to_owned()))
}

/// `document_status` broadcast payload.
#[derive(Deserialize)]
struct DocumentStatusPayload {
    document_id: Uuid,
    status: DocumentStatus,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    page_count: Option<i32>,
    #[serde(default)]
    byte_size: Option<i64>,
    updated_at: DateTime<Utc>,
}

/// Applies a live broadcast.
fn live(context: &Context, event: &str, payload: Value) {
    let state = &context.quire.state;
    match event {
        "document_status" => match serde_json::from_value::<DocumentStatusPayload>(payload) {
            Ok(p) => {
                let title = p
                    .title
                    .or_else(|| state.document(p.document_id).map(|d| d.title))
                    .unwrap_or_default();
                state.apply_document(&Document {
                    id: p.document_id,
                    title,
                    status: p.status,
                    error: p.error,
                    page_count: p.page_count,
                    byte_size: p.byte_size,
                    updated_at: p.updated_at,
                    upload: None,
                    uploading: None,
                });
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a malformed document_status"),
        },
        // Another device changed a conversation's scope: read it again
        // (db/app/95_conversation_scope_live.sql).
        "conversation_scope" => {
            if let Some(id) = payload
                .get("conversation_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            {
                let quire = context.quire.clone();
                tokio::spawn(async move {
                    if let Err(e) = chat::fetch_conversation(&quire.rest, &quire.state, id).await {
                        tracing::warn!(error = %e, "could not read a changed conversation");
                    }
                });
            }
        }
        "document_deleted" => {
            if let Some(id) = payload
                .get("document_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            {
                state.remove_document(id);
            }
        }
        _ => match chat::event::from_json(payload) {
            Ok(chat) => {
                let first_sight = !state.knows_message(chat.message_id);
                state.apply_event(&chat, Source::Log);
                if first_sight || (chat.seq == 0) {
                    fetch_context(context, chat);
                }
            }
            Err(e) => tracing::warn!(error = %e, event, "ignoring a malformed chat event"),
        },
    }
}

/// On first sight of an answer: its conversation, its question and its
/// earlier events, in the background.
fn fetch_context(context: &Context, chat: ChatEvent) {
    if !context.requested.lock().unwrap().insert(chat.message_id) && chat.seq != 0 {
        return;
    }
    let context = context.clone();
    tokio::spawn(async move {
        let quire = &context.quire;
        let result: Result<()> = async {
            if !quire.state.knows_conversation(chat.conversation_id) {
                chat::fetch_conversation(&quire.rest, &quire.state, chat.conversation_id).await?;
            }
            let question = quire
                .state
                .message(chat.message_id)
                .and_then(|m| m.question_id);
            let mut ids = vec![chat.message_id.to_string()];
            ids.extend(question.map(|q| q.to_string()));
            let rows: Vec<MessageRow> = quire
                .rest
                .select(
                    "chat_messages",
                    &[
                        ("select", chat::MESSAGE_COLUMNS.to_owned()),
                        ("id", format!("in.({})", ids.join(","))),
                    ],
                )
                .await?;
            for row in &rows {
                quire.state.apply_message_row(row);
            }
            if chat.seq > 0 {
                chat::catch_up_message(&quire.rest, &quire.state, chat.message_id, None).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not fetch an answer's context");
            context.requested.lock().unwrap().remove(&chat.message_id);
        }
    });
}

/// The backfill after a (re)join. `since`: messages changed after it are
/// re-read (`None` on the first join: only answers still streaming).
async fn catch_up(context: &Context, since: Option<DateTime<Utc>>) -> Result<()> {
    let quire = &context.quire;
    let state = &quire.state;
    sync_documents(quire).await?;
    chat::conversations(&quire.rest, state, 50, 0, true).await?;

    let mut query = vec![
        ("select", chat::MESSAGE_COLUMNS.to_owned()),
        ("order", "updated_at.asc".to_owned()),
        ("limit", "1000".to_owned()),
    ];
    match since {
        Some(since) => query.push(("updated_at", format!("gte.{}", since.to_rfc3339()))),
        None => query.push(("status", "eq.streaming".to_owned())),
    }
    let rows: Vec<MessageRow> = quire.rest.select("chat_messages", &query).await?;
    let mut conversations: HashSet<Uuid> = HashSet::new();
    for row in &rows {
        state.apply_message_row(row);
        conversations.insert(row.conversation_id);
    }
    for conversation in conversations {
        if !state.knows_conversation(conversation) {
            chat::fetch_conversation(&quire.rest, state, conversation).await?;
        }
    }
    // Every answer not final here: its events after the last seq applied.
    for (message_id, after) in state.unfinished() {
        chat::catch_up_message(&quire.rest, state, message_id, after).await?;
    }
    // Rows that finished while we were away carry the final text; answers
    // still unfinished after their events may have finished in between.
    let unfinished: Vec<String> = state
        .unfinished()
        .iter()
        .map(|(id, _)| id.to_string())
        .collect();
    if !unfinished.is_empty() {
        let rows: Vec<MessageRow> = quire
            .rest
            .select(
                "chat_messages",
                &[
                    ("select", chat::MESSAGE_COLUMNS.to_owned()),
                    ("id", format!("in.({})", unfinished.join(","))),
                ],
            )
            .await?;
        for row in &rows {
            state.apply_message_row(row);
        }
    }
    Ok(())
}

/// Re-reads the user's documents; documents gone from the server are
/// removed here.
pub(crate) async fn sync_documents(quire: &Quire) -> Result<Vec<Document>> {
    let rows: Vec<Document> = quire
        .rest
        .select(
            "documents",
            &[
                (
                    "select",
                    "id,title,status,error,page_count,byte_size,updated_at".to_owned(),
                ),
                ("order", "created_at.desc".to_owned()),
            ],
        )
        .await?;
    let present: HashSet<Uuid> = rows.iter().map(|d| d.id).collect();
    for gone in quire
        .state
        .documents()
        .into_iter()
        .filter(|d| !present.contains(&d.id))
    {
        quire.state.remove_document(gone.id);
    }
    for row in &rows {
        quire.state.apply_document(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_websocket_url_carries_the_anon_key_and_vsn_1() {
        let config = crate::Config::new(
            "https://ref.p.powabase.ai",
            "anon-key",
            "http://127.0.0.1:9",
        )
        .unwrap();
        let quire =
            Quire::with_token_store(config, Arc::new(crate::auth::store::MemoryStore::default()));
        assert_eq!(
            websocket_url(&quire).unwrap(),
            "wss://ref.p.powabase.ai/realtime/v1/websocket?apikey=anon-key&vsn=1.0.0"
        );
    }
}
