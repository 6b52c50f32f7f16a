//! One WebSocket connection: its channels and their state machine.
//!
//! A socket is one task that reads client frames, writes replies, forwards
//! the deliveries the registry queues for its channels, and runs two timers:
//! the idle close and each channel's token check. As in Phoenix, a join is
//! handled to completion (including Realtime's error delay) before the next
//! frame is read, so replies come back in request order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::authorization::{
    self, AuthorizationContext, AuthorizationError, Extension, ReadPolicies,
};
use super::frame::{self, ClientFrame, PHOENIX_TOPIC, ReplyStatus, ServerFrame, Vsn, event};
use super::join::{JoinParams, ReplayWindow, replay_window};
use super::registry::{Delivery, SocketSink, SubscriberId, Subscription, TopicKey};
use super::token::{self, VerifiedToken};
use super::{now_millis, now_secs};
use crate::state::AppState;

/// What the upgrade handler learned about the connection.
#[derive(Debug)]
pub struct Connection {
    /// The serializer the client asked for (`vsn`).
    pub vsn: Vsn,
    /// The connect token (`apikey` / `x-api-key`), already verified.
    pub connect_token: String,
    /// `x-*` request headers for `request.headers`.
    pub headers: Map<String, Value>,
}

/// How long a `replication_ready` join waits for the listener.
const REPLICATION_READY_TIMEOUT: Duration = Duration::from_secs(5);

const UNAUTHORIZED: &str = "You do not have permissions to read from this Channel topic";
const DATABASE_UNAVAILABLE: &str = "Realtime was unable to connect to the project database";

/// The client is gone (or the socket must close); stop serving.
#[derive(Debug)]
enum Stop {
    /// The client closed or the connection broke.
    Gone,
    /// The client sent a close frame; it is answered with one (RFC 6455 §5.5.1).
    ClientClosed,
    /// Nothing received for the idle timeout.
    Idle,
    /// The sandbox is shutting down.
    Shutdown,
    /// The client does not read its frames fast enough.
    TooSlow,
}

struct Channel {
    key: TopicKey,
    wire_topic: String,
    join_ref: Value,
    subscriber: SubscriberId,
    broadcast_self: bool,
    broadcast_ack: bool,
    presence_key: String,
    /// `config.presence.enabled`: presence is part of the read check.
    presence_enabled: bool,
    token: String,
    verified: VerifiedToken,
    check_token_at: Instant,
    read: ReadPolicies,
    may_broadcast: Option<bool>,
    may_track: Option<bool>,
}

/// A stored broadcast sent again to a joining channel (`config.broadcast.replay`).
struct Replayed {
    id: uuid::Uuid,
    event: Option<String>,
    payload: Option<Value>,
}

struct Socket {
    state: AppState,
    connect_token: String,
    headers: Map<String, Value>,
    sink: SocketSink,
    channels: HashMap<String, Channel>,
    /// The subscriptions of the joined channels, with the ids of the messages
    /// each replayed (their live copies are skipped).
    live: HashMap<SubscriberId, HashSet<uuid::Uuid>>,
    last_inbound: Instant,
}

/// Serves one upgraded WebSocket until the client leaves, goes idle, or the
/// sandbox shuts down.
pub async fn serve(state: AppState, ws: WebSocket, connection: Connection) {
    let mut ws = Wire {
        ws,
        vsn: connection.vsn,
        join_refs: HashMap::new(),
    };
    let (sink, mut deliveries, overflow) = SocketSink::channel();
    let mut socket = Socket {
        state,
        connect_token: connection.connect_token,
        headers: connection.headers,
        sink,
        channels: HashMap::new(),
        live: HashMap::new(),
        last_inbound: Instant::now(),
    };
    let stop = socket.run(&mut ws, &mut deliveries, &overflow).await;
    socket.leave_all();
    tracing::debug!(?stop, "realtime socket closed");
    let close = match stop {
        Stop::Gone => None,
        // Phoenix (cowboy) echoes the client's close; without it clients see
        // an abnormal closure (1006) and reconnect.
        Stop::ClientClosed => {
            // tungstenite queued the answering close when it read the
            // client's; flushing writes it (a second close would be refused).
            let _ = futures_util::SinkExt::flush(&mut ws.ws).await;
            None
        }
        Stop::Idle => Some((1000, "idle timeout")),
        Stop::Shutdown => Some((1001, "server shutting down")),
        Stop::TooSlow => Some((1013, "client not reading fast enough")),
    };
    if let Some((code, reason)) = close {
        let _ = ws
            .ws
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
    }
}

/// The socket with what its serializer needs: the vsn, and the join ref of
/// each topic's current join (V2 frames carry it; V1 frames never do).
struct Wire {
    ws: WebSocket,
    vsn: Vsn,
    join_refs: HashMap<String, Value>,
}

/// Sends a server frame, given as its V1 text (`ServerFrame::to_text`), in
/// the socket's serializer.
async fn send(ws: &mut Wire, text: String) -> Result<(), Stop> {
    let text = match ws.vsn {
        Vsn::V1 => text,
        Vsn::V2 => frame::v1_to_v2(&text, |topic| ws.join_refs.get(topic).cloned()),
    };
    send_raw(ws, text).await
}

/// Sends a broadcast delivery: V2 fastlane frames carry no join ref.
async fn send_delivery(ws: &mut Wire, text: &str) -> Result<(), Stop> {
    let text = match ws.vsn {
        Vsn::V1 => text.to_owned(),
        Vsn::V2 => frame::v1_to_v2(text, |_| None),
    };
    send_raw(ws, text).await
}

async fn send_raw(ws: &mut Wire, text: String) -> Result<(), Stop> {
    ws.ws
        .send(Message::Text(text.into()))
        .await
        .map_err(|_| Stop::Gone)
}

impl Socket {
    async fn run(
        &mut self,
        ws: &mut Wire,
        deliveries: &mut mpsc::Receiver<Delivery>,
        overflow: &CancellationToken,
    ) -> Stop {
        let shutdown = self.state.shutdown.clone();
        loop {
            let deadline = self.next_deadline();
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Err(Stop::Shutdown),
                _ = overflow.cancelled() => Err(Stop::TooSlow),
                incoming = ws.ws.recv() => match incoming {
                    Some(Ok(message)) => {
                        self.last_inbound = Instant::now();
                        self.on_message(ws, message).await
                    }
                    Some(Err(_)) | None => Err(Stop::Gone),
                },
                Some(delivery) = deliveries.recv() => {
                    let wanted = self.live.get(&delivery.subscriber).is_some_and(|replayed| {
                        delivery.message_id.is_none_or(|id| !replayed.contains(&id))
                    });
                    if wanted {
                        send_delivery(ws, &delivery.text).await
                    } else {
                        Ok(())
                    }
                }
                _ = tokio::time::sleep_until(deadline) => self.on_timers(ws).await,
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let idle = self.last_inbound + self.state.config.realtime.idle_timeout();
        self.channels
            .values()
            .map(|c| c.check_token_at)
            .fold(idle, Instant::min)
    }

    async fn on_timers(&mut self, ws: &mut Wire) -> Result<(), Stop> {
        let now = Instant::now();
        if now >= self.last_inbound + self.state.config.realtime.idle_timeout() {
            return Err(Stop::Idle);
        }
        let due: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.check_token_at <= now)
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in due {
            let interval = self.state.config.realtime.token_check_interval();
            let Some(channel) = self.channels.get_mut(&topic) else {
                continue;
            };
            match token::verify(&self.state.jwt, &channel.token, now_secs()) {
                Ok(verified) => {
                    channel.check_token_at = token_check_at(&verified, interval);
                    channel.verified = verified;
                }
                Err(refusal) => self.shut_channel(ws, &topic, &refusal.to_string()).await?,
            }
        }
        Ok(())
    }

    fn token_check_at(&self, verified: &VerifiedToken) -> Instant {
        token_check_at(verified, self.state.config.realtime.token_check_interval())
    }

    async fn on_message(&mut self, ws: &mut Wire, message: Message) -> Result<(), Stop> {
        match message {
            Message::Text(text) => match ClientFrame::parse_vsn(text.as_str(), ws.vsn) {
                Ok(frame) => {
                    if frame.event == event::JOIN {
                        ws.join_refs
                            .insert(frame.topic.clone(), frame.join_ref.clone());
                    }
                    self.on_frame(ws, frame).await
                }
                Err(error) => {
                    tracing::info!(%error, "ignoring a malformed realtime frame");
                    Ok(())
                }
            },
            Message::Binary(bytes) if ws.vsn == Vsn::V2 => {
                match ClientFrame::parse_binary(&bytes) {
                    Ok(frame) => self.on_frame(ws, frame).await,
                    Err(error) => {
                        tracing::info!(%error, "ignoring a binary frame the sandbox does not read");
                        Ok(())
                    }
                }
            }
            Message::Binary(_) => {
                tracing::info!("ignoring a binary frame: vsn 1.0.0 is JSON text only");
                Ok(())
            }
            Message::Ping(_) | Message::Pong(_) => Ok(()),
            Message::Close(_) => Err(Stop::ClientClosed),
        }
    }

    async fn on_frame(&mut self, ws: &mut Wire, frame: ClientFrame) -> Result<(), Stop> {
        if frame.topic == PHOENIX_TOPIC && frame.event == event::HEARTBEAT {
            let reply =
                ServerFrame::reply(PHOENIX_TOPIC, &frame.reference, ReplyStatus::Ok, json!({}));
            return send(ws, reply.to_text()).await;
        }
        if frame.event == event::JOIN {
            return self.join(ws, frame).await;
        }
        let Some(channel) = self.channels.get(&frame.topic) else {
            return send(ws, unmatched_topic(&frame)).await;
        };
        // Phoenix drops messages of an older join of the same topic; a
        // missing join_ref is tolerated, as Realtime's Phoenix fork does.
        if !frame.join_ref.is_null() && frame.join_ref != channel.join_ref {
            return Ok(());
        }
        match frame.event.as_str() {
            event::LEAVE => self.leave(ws, frame).await,
            event::BROADCAST => self.broadcast(ws, frame).await,
            event::PRESENCE => self.presence(ws, frame).await,
            event::ACCESS_TOKEN => self.access_token(ws, frame).await,
            other => {
                tracing::info!(
                    event = other,
                    "ignoring an unexpected message from a realtime client"
                );
                Ok(())
            }
        }
    }

    async fn join(&mut self, ws: &mut Wire, frame: ClientFrame) -> Result<(), Stop> {
        let Some(name) = frame.topic.strip_prefix("realtime:").map(str::to_owned) else {
            return send(ws, unmatched_topic(&frame)).await;
        };
        // A second join of a topic closes the first channel.
        if let Some(old) = self.channels.remove(&frame.topic) {
            self.forget(&old);
            send(
                ws,
                ServerFrame::close(&old.wire_topic, &old.join_ref).to_text(),
            )
            .await?;
        }

        let params = JoinParams::parse(&frame.payload);
        match self.admit(&name, &frame, &params).await {
            Ok((channel, replayed)) => {
                let topic = frame.topic.clone();
                let key = channel.key.clone();
                let reply = ServerFrame::reply(
                    &topic,
                    &frame.reference,
                    ReplyStatus::Ok,
                    json!({"postgres_changes": []}),
                );
                self.live
                    .insert(channel.subscriber, replayed.iter().map(|m| m.id).collect());
                self.channels.insert(topic.clone(), channel);
                send(ws, reply.to_text()).await?;
                for message in replayed {
                    let payload = json!({
                        "type": "broadcast",
                        "event": message.event,
                        "payload": message.payload,
                        "meta": {"id": message.id, "replayed": true},
                    });
                    send(
                        ws,
                        ServerFrame::push(&topic, event::BROADCAST, payload).to_text(),
                    )
                    .await?;
                }
                self.after_join(ws, &topic, &name, &key, &params).await
            }
            Err(reason) => {
                tracing::info!(topic = %name, %reason, "realtime join refused");
                let delay = self.state.config.realtime.channel_error_delay();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = self.state.shutdown.cancelled() => return Err(Stop::Shutdown),
                }
                let reply = ServerFrame::reply(
                    &frame.topic,
                    &frame.reference,
                    ReplyStatus::Error,
                    json!({"reason": reason}),
                );
                send(ws, reply.to_text()).await
            }
        }
    }

    /// Decides a join; `Err` is the refusal's `reason`.
    async fn admit(
        &self,
        name: &str,
        frame: &ClientFrame,
        params: &JoinParams,
    ) -> Result<(Channel, Vec<Replayed>), String> {
        if name.is_empty() {
            return Err("TopicNameRequired: You must provide a topic name".into());
        }
        if self.channels.len() >= self.state.config.realtime.max_channels {
            return Err("ChannelRateLimitReached: Too many channels".into());
        }
        let token = params
            .access_token
            .clone()
            .unwrap_or_else(|| self.connect_token.clone());
        let verified =
            token::verify(&self.state.jwt, &token, now_secs()).map_err(|r| r.join_reason())?;
        if params.replay.is_some() && !params.private {
            return Err("UnableToReplayMessages: Replay is not allowed for public channels".into());
        }

        let key = TopicKey::new(name, params.private);
        let read = if params.private {
            let context = self.context(name, &verified);
            match authorization::read_policies(
                &self.state.db.realtime,
                &context,
                params.presence_enabled,
            )
            .await
            {
                Ok(read) if read.broadcast || read.presence => read,
                Ok(_) => return Err(format!("Unauthorized: {UNAUTHORIZED}: {name}")),
                Err(AuthorizationError::Policy(error)) => {
                    tracing::warn!(%error, topic = name, "RlsPolicyError");
                    return Err(format!("Unauthorized: {UNAUTHORIZED}: {name}"));
                }
                Err(AuthorizationError::Unavailable(error)) => {
                    tracing::warn!(%error, "realtime cannot reach the database");
                    return Err(format!("UnableToConnectToProject: {DATABASE_UNAVAILABLE}"));
                }
            }
        } else {
            ReadPolicies {
                broadcast: true,
                presence: true,
            }
        };

        let mut replayed = Vec::new();
        if let Some(replay) = params.replay.as_ref().filter(|_| params.private) {
            if !read.broadcast {
                return Err(format!("Unauthorized: {UNAUTHORIZED}: {name}"));
            }
            match replay_window(replay) {
                Err(()) => return Err("UnableToReplayMessages: Replay params are not valid".into()),
                Ok(None) => {}
                Ok(Some(window)) => {
                    replayed = self.replay(name, window).await.map_err(|error| {
                        tracing::warn!(%error, topic = name, "replay failed");
                        "UnableToReplayMessages: Realtime was unable to replay messages".to_owned()
                    })?;
                }
            }
        }

        let subscriber = self.state.realtime.registry().subscribe(
            &key,
            Subscription {
                sink: self.sink.clone(),
                broadcasts: read.broadcast,
                presence: params.presence_enabled && read.presence,
            },
        );
        let channel = Channel {
            wire_topic: frame.topic.clone(),
            key,
            join_ref: if frame.join_ref.is_null() {
                frame.reference.clone()
            } else {
                frame.join_ref.clone()
            },
            subscriber,
            broadcast_self: params.broadcast_self,
            broadcast_ack: params.broadcast_ack,
            presence_enabled: params.presence_enabled,
            presence_key: params
                .presence_key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            check_token_at: self.token_check_at(&verified),
            token,
            verified,
            read,
            may_broadcast: None,
            may_track: None,
        };
        Ok((channel, replayed))
    }

    /// The stored private broadcasts of `name` in `window`, oldest first.
    async fn replay(&self, name: &str, window: ReplayWindow) -> Result<Vec<Replayed>, String> {
        let client = self
            .state
            .db
            .realtime
            .get()
            .await
            .map_err(|e| e.to_string())?;
        let rows = client
            .query(
                "select id, event, payload from realtime.messages \
                 where topic = $1 and private and extension = 'broadcast' \
                   and inserted_at >= to_timestamp($2::bigint / 1000.0)::timestamp \
                 order by inserted_at desc, sandbox_seq desc limit $3",
                &[&name, &window.since_ms, &window.limit],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(rows
            .iter()
            .rev()
            .map(|row| Replayed {
                id: row.get(0),
                event: row.get(1),
                payload: row.get(2),
            })
            .collect())
    }

    /// The pushes that follow a successful join reply.
    async fn after_join(
        &mut self,
        ws: &mut Wire,
        topic: &str,
        name: &str,
        key: &TopicKey,
        params: &JoinParams,
    ) -> Result<(), Stop> {
        let reads_presence = self.channels.get(topic).is_some_and(|c| c.read.presence);
        if params.presence_enabled && reads_presence {
            let state = self.state.realtime.registry().presence_state(key);
            send(
                ws,
                ServerFrame::push(topic, event::PRESENCE_STATE, state).to_text(),
            )
            .await?;
        }
        if !params.postgres_changes.is_empty() {
            let message = ServerFrame::push(
                topic,
                event::SYSTEM,
                json!({
                    "extension": "postgres_changes",
                    "status": "error",
                    "message": "Postgres Changes are not available in the Quire sandbox; use Broadcast from the database",
                    "channel": name,
                }),
            );
            send(ws, message.to_text()).await?;
        }
        if params.replication_ready {
            if self
                .state
                .realtime
                .wait_listening(REPLICATION_READY_TIMEOUT)
                .await
            {
                let ok = ServerFrame::system(
                    topic,
                    name,
                    ReplyStatus::Ok,
                    "Replication connection established",
                );
                send(ws, ok.to_text()).await?;
            } else {
                self.shut_channel(
                    ws,
                    topic,
                    "Replication connection was not established in time",
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn leave(&mut self, ws: &mut Wire, frame: ClientFrame) -> Result<(), Stop> {
        let Some(channel) = self.channels.remove(&frame.topic) else {
            return Ok(());
        };
        self.forget(&channel);
        let reply = ServerFrame::reply(&frame.topic, &frame.reference, ReplyStatus::Ok, json!({}));
        send(ws, reply.to_text()).await?;
        send(
            ws,
            ServerFrame::close(&channel.wire_topic, &channel.join_ref).to_text(),
        )
        .await
    }

    async fn broadcast(&mut self, ws: &mut Wire, frame: ClientFrame) -> Result<(), Stop> {
        let Some(allowed) = self.may_write(&frame.topic, Extension::Broadcast).await else {
            return Ok(());
        };
        let Some(channel) = self.channels.get(&frame.topic) else {
            return Ok(());
        };
        if !allowed {
            // Realtime drops a denied send without a word, ack or not.
            tracing::debug!(topic = %channel.key.name, "broadcast denied by the INSERT policy; dropped");
            return Ok(());
        }
        let text: Arc<str> =
            ServerFrame::push(&channel.wire_topic, event::BROADCAST, frame.payload)
                .to_text()
                .into();
        let except = (!channel.broadcast_self).then_some(channel.subscriber);
        self.state
            .realtime
            .registry()
            .broadcast(&channel.key, text, None, except);
        if channel.broadcast_ack {
            let reply =
                ServerFrame::reply(&frame.topic, &frame.reference, ReplyStatus::Ok, json!({}));
            send(ws, reply.to_text()).await?;
        }
        Ok(())
    }

    async fn presence(&mut self, ws: &mut Wire, frame: ClientFrame) -> Result<(), Stop> {
        let reply = |status, response| {
            ServerFrame::reply(&frame.topic, &frame.reference, status, response).to_text()
        };
        let kind = frame
            .payload
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match kind {
            "track" => {
                let Some(meta) = frame
                    .payload
                    .get("payload")
                    .and_then(Value::as_object)
                    .cloned()
                else {
                    let reason = json!({"reason": "Presence track payload must be a map"});
                    return send(ws, reply(ReplyStatus::Error, reason)).await;
                };
                match self.may_write(&frame.topic, Extension::Presence).await {
                    Some(true) => {}
                    _ => return send(ws, reply(ReplyStatus::Error, json!({}))).await,
                }
                let Some(channel) = self.channels.get(&frame.topic) else {
                    return Ok(());
                };
                self.state.realtime.registry().track(
                    &channel.key,
                    channel.subscriber,
                    &channel.presence_key,
                    meta,
                );
                send(ws, reply(ReplyStatus::Ok, json!({}))).await
            }
            "untrack" => {
                if let Some(channel) = self.channels.get(&frame.topic) {
                    self.state
                        .realtime
                        .registry()
                        .untrack(&channel.key, channel.subscriber);
                }
                send(ws, reply(ReplyStatus::Ok, json!({}))).await
            }
            _ => send(ws, reply(ReplyStatus::Error, json!({}))).await,
        }
    }

    /// The lazy write check of a channel (cached until its token changes).
    /// `None`: the check could not run (logged); the caller drops the message.
    async fn may_write(&mut self, topic: &str, extension: Extension) -> Option<bool> {
        let channel = self.channels.get(topic)?;
        if !channel.key.private {
            return Some(true);
        }
        let cached = match extension {
            Extension::Broadcast => channel.may_broadcast,
            Extension::Presence => channel.may_track,
        };
        if let Some(allowed) = cached {
            return Some(allowed);
        }
        let context = self.context(&channel.key.name, &channel.verified);
        match authorization::may_write(&self.state.db.realtime, &context, extension).await {
            Ok(allowed) => {
                let channel = self.channels.get_mut(topic)?;
                match extension {
                    Extension::Broadcast => channel.may_broadcast = Some(allowed),
                    Extension::Presence => channel.may_track = Some(allowed),
                }
                Some(allowed)
            }
            Err(error) => {
                tracing::warn!(%error, topic, "realtime write check failed");
                None
            }
        }
    }

    async fn access_token(&mut self, ws: &mut Wire, frame: ClientFrame) -> Result<(), Stop> {
        let Some(Value::String(new_token)) = frame.payload.get("access_token") else {
            return Ok(());
        };
        let Some(channel) = self.channels.get(&frame.topic) else {
            return Ok(());
        };
        if new_token.starts_with("sb_") || *new_token == channel.token {
            return Ok(());
        }
        let verified = match token::verify(&self.state.jwt, new_token, now_secs()) {
            Ok(verified) => verified,
            Err(refusal) => {
                return self
                    .shut_channel(ws, &frame.topic, &refusal.to_string())
                    .await;
            }
        };
        let name = channel.key.name.clone();
        let read = if channel.key.private {
            let context = self.context(&name, &verified);
            let previous = channel.read;
            match authorization::read_policies(
                &self.state.db.realtime,
                &context,
                channel.presence_enabled,
            )
            .await
            {
                Ok(read) if !read.broadcast && !read.presence => {
                    return self
                        .shut_channel(ws, &frame.topic, &format!("{UNAUTHORIZED}: {name}"))
                        .await;
                }
                Ok(read)
                    if (previous.broadcast && !read.broadcast)
                        || (previous.presence && !read.presence) =>
                {
                    let message = format!(
                        "You no longer have permission to read from this Channel topic: {name}"
                    );
                    return self.shut_channel(ws, &frame.topic, &message).await;
                }
                Ok(read) => read,
                Err(AuthorizationError::Policy(error)) => {
                    tracing::warn!(%error, topic = %name, "RlsPolicyError");
                    return self
                        .shut_channel(ws, &frame.topic, &format!("{UNAUTHORIZED}: {name}"))
                        .await;
                }
                Err(AuthorizationError::Unavailable(error)) => {
                    tracing::warn!(%error, "realtime cannot reach the database");
                    return self
                        .shut_channel(ws, &frame.topic, DATABASE_UNAVAILABLE)
                        .await;
                }
            }
        } else {
            channel.read
        };
        let check_token_at = self.token_check_at(&verified);
        let Some(channel) = self.channels.get_mut(&frame.topic) else {
            return Ok(());
        };
        channel.token = new_token.clone();
        channel.verified = verified;
        channel.check_token_at = check_token_at;
        channel.read = read;
        channel.may_broadcast = None;
        channel.may_track = None;
        self.state.realtime.registry().set_broadcasts(
            &channel.key,
            channel.subscriber,
            read.broadcast,
        );
        Ok(())
    }

    /// Closes a channel from the server side: `system` error, then `phx_close`.
    async fn shut_channel(
        &mut self,
        ws: &mut Wire,
        topic: &str,
        message: &str,
    ) -> Result<(), Stop> {
        let Some(channel) = self.channels.remove(topic) else {
            return Ok(());
        };
        tracing::info!(topic = %channel.key.name, message, "realtime channel shut down");
        self.forget(&channel);
        let system = ServerFrame::system(
            &channel.wire_topic,
            &channel.key.name,
            ReplyStatus::Error,
            message,
        );
        send(ws, system.to_text()).await?;
        send(
            ws,
            ServerFrame::close(&channel.wire_topic, &channel.join_ref).to_text(),
        )
        .await
    }

    fn context(&self, name: &str, verified: &VerifiedToken) -> AuthorizationContext {
        AuthorizationContext {
            topic: name.to_owned(),
            role: verified.role.clone(),
            claims: verified.claims.clone(),
            headers: self.headers.clone(),
        }
    }

    fn forget(&mut self, channel: &Channel) {
        self.live.remove(&channel.subscriber);
        self.state
            .realtime
            .registry()
            .unsubscribe(&channel.key, channel.subscriber);
    }

    fn leave_all(&mut self) {
        let channels: Vec<Channel> = self.channels.drain().map(|(_, c)| c).collect();
        for channel in &channels {
            self.forget(channel);
        }
    }
}

/// When to look at a token next: at its expiry, or after `interval` if that
/// comes first.
fn token_check_at(verified: &VerifiedToken, interval: Duration) -> Instant {
    let left_ms = (verified.exp * 1000 - now_millis()).max(0) as u64;
    Instant::now() + Duration::from_millis(left_ms).min(interval)
}

/// Phoenix's answer to a message for a topic no channel serves.
fn unmatched_topic(frame: &ClientFrame) -> String {
    ServerFrame::reply(
        &frame.topic,
        &frame.reference,
        ReplyStatus::Error,
        json!({"reason": "unmatched topic"}),
    )
    .to_text()
}
