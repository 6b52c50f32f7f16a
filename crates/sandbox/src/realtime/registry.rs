//! Who listens to what: the fan-out table keyed by (topic, private), and the
//! presence list of each topic.
//!
//! Public and private channels of one name are different topics (Realtime's
//! `<tenant>:<name>` vs `<tenant>-private:<name>`). A frame is serialized once
//! per topic and handed to every subscriber's socket queue; each queue is FIFO,
//! so per-topic order is the order in which [`Registry::broadcast`] is called.
//! A socket whose queue is full (a client that stopped reading) is told to
//! close through its overflow token instead of holding everyone up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::frame::{ServerFrame, event};

/// Frames a socket may have queued before it counts as too slow and is closed.
pub const SOCKET_QUEUE_CAPACITY: usize = 16_384;

/// A channel subscription's id, unique within a [`Registry`].
pub type SubscriberId = u64;

/// A pub/sub topic: a channel name (without `realtime:`) and its privacy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicKey {
    /// The channel name, as `realtime.topic()` sees it.
    pub name: String,
    /// Private channels are authorized through `realtime.messages` RLS.
    pub private: bool,
}

impl TopicKey {
    /// The key of channel `name`.
    pub fn new(name: impl Into<String>, private: bool) -> Self {
        TopicKey {
            name: name.into(),
            private,
        }
    }

    /// The wire topic, `realtime:<name>`.
    pub fn wire_topic(&self) -> String {
        format!("realtime:{}", self.name)
    }
}

/// One frame for one subscription of a socket.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The subscription the frame is for; the socket drops frames for
    /// subscriptions it no longer has (a left or re-joined channel).
    pub subscriber: SubscriberId,
    /// The serialized frame.
    pub text: Arc<str>,
    /// The `realtime.messages` id of a database broadcast, so that a channel
    /// that replayed the message can skip its live copy.
    pub message_id: Option<Uuid>,
}

/// Where a socket receives its deliveries.
#[derive(Debug, Clone)]
pub struct SocketSink {
    tx: mpsc::Sender<Delivery>,
    overflow: CancellationToken,
}

impl SocketSink {
    /// A queue for one socket, and the token cancelled when it overflows.
    pub fn channel() -> (Self, mpsc::Receiver<Delivery>, CancellationToken) {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE_CAPACITY);
        let overflow = CancellationToken::new();
        (
            SocketSink {
                tx,
                overflow: overflow.clone(),
            },
            rx,
            overflow,
        )
    }

    fn send(&self, delivery: Delivery) -> bool {
        match self.tx.try_send(delivery) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// What a subscription receives.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The socket's queue.
    pub sink: SocketSink,
    /// Broadcasts are delivered (false on a private channel joined with
    /// presence-read permission only).
    pub broadcasts: bool,
    /// Presence diffs are delivered.
    pub presence: bool,
}

#[derive(Debug)]
struct Tracked {
    key: String,
    payload: Value,
    meta: Map<String, Value>,
}

#[derive(Debug, Default)]
struct Topic {
    subscribers: HashMap<SubscriberId, Subscription>,
    presences: HashMap<SubscriberId, Tracked>,
}

/// The fan-out table of one sandbox.
#[derive(Debug, Default)]
pub struct Registry {
    topics: Mutex<HashMap<TopicKey, Topic>>,
    next_id: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn topics(&self) -> MutexGuard<'_, HashMap<TopicKey, Topic>> {
        // The map stays consistent even if a holder panicked: every critical
        // section is a single insert, remove or iteration.
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a subscription to `key` and returns its id.
    pub fn subscribe(&self, key: &TopicKey, subscription: Subscription) -> SubscriberId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.topics()
            .entry(key.clone())
            .or_default()
            .subscribers
            .insert(id, subscription);
        id
    }

    /// Changes what subscription `id` receives (after a token refresh
    /// re-evaluated its policies).
    pub fn set_broadcasts(&self, key: &TopicKey, id: SubscriberId, broadcasts: bool) {
        if let Some(sub) = self
            .topics()
            .get_mut(key)
            .and_then(|t| t.subscribers.get_mut(&id))
        {
            sub.broadcasts = broadcasts;
        }
    }

    /// Removes subscription `id`; its presence, if any, leaves.
    pub fn unsubscribe(&self, key: &TopicKey, id: SubscriberId) {
        let mut topics = self.topics();
        let Some(topic) = topics.get_mut(key) else {
            return;
        };
        topic.subscribers.remove(&id);
        if let Some(gone) = topic.presences.remove(&id) {
            let diff = json!({"joins": {}, "leaves": {gone.key: {"metas": [gone.meta]}}});
            send_presence_diff(key, topic, diff);
        }
        if topic.subscribers.is_empty() && topic.presences.is_empty() {
            topics.remove(key);
        }
    }

    /// Sends `text` to every subscription of `key` that receives broadcasts,
    /// except `except` (the sender, unless it asked for `self`). `message_id`
    /// is the row id of a database broadcast. Returns how many subscriptions
    /// were handed the frame.
    pub fn broadcast(
        &self,
        key: &TopicKey,
        text: Arc<str>,
        message_id: Option<Uuid>,
        except: Option<SubscriberId>,
    ) -> usize {
        let topics = self.topics();
        let Some(topic) = topics.get(key) else {
            return 0;
        };
        let mut delivered = 0;
        for (&id, sub) in &topic.subscribers {
            if Some(id) == except || !sub.broadcasts {
                continue;
            }
            if sub.sink.send(Delivery {
                subscriber: id,
                text: Arc::clone(&text),
                message_id,
            }) {
                delivered += 1;
            }
        }
        delivered
    }

    /// Whether any subscription of `key` receives broadcasts: when none
    /// does, a database broadcast on it reaches nobody, and its body need
    /// not be read.
    pub fn receives_broadcasts(&self, key: &TopicKey) -> bool {
        self.topics()
            .get(key)
            .is_some_and(|t| t.subscribers.values().any(|sub| sub.broadcasts))
    }

    /// Number of subscriptions of `key`.
    #[cfg(test)]
    pub fn subscriber_count(&self, key: &TopicKey) -> usize {
        self.topics().get(key).map_or(0, |t| t.subscribers.len())
    }

    /// The presence list of `key` as `presence_state` carries it:
    /// `{<key>: {"metas": [..]}}`.
    pub fn presence_state(&self, key: &TopicKey) -> Value {
        let topics = self.topics();
        let mut state = Map::new();
        if let Some(topic) = topics.get(key) {
            for tracked in topic.presences.values() {
                let entry = state
                    .entry(tracked.key.clone())
                    .or_insert_with(|| json!({"metas": []}));
                if let Some(metas) = entry["metas"].as_array_mut() {
                    metas.push(Value::Object(tracked.meta.clone()));
                }
            }
        }
        Value::Object(state)
    }

    /// Tracks (or re-tracks) subscription `id` under `presence_key` with
    /// `payload` (a JSON object). The same payload again changes nothing.
    pub fn track(
        &self,
        key: &TopicKey,
        id: SubscriberId,
        presence_key: &str,
        payload: Map<String, Value>,
    ) {
        let mut topics = self.topics();
        let topic = topics.entry(key.clone()).or_default();
        let payload = Value::Object(payload);
        let mut meta = match &payload {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        meta.insert("phx_ref".into(), Value::String(phx_ref()));
        let diff = match topic.presences.get(&id) {
            Some(old) if old.payload == payload && old.key == presence_key => return,
            Some(old) => {
                if let Some(prev) = old.meta.get("phx_ref") {
                    meta.insert("phx_ref_prev".into(), prev.clone());
                }
                json!({
                    "joins": {presence_key: {"metas": [meta.clone()]}},
                    "leaves": {old.key.clone(): {"metas": [old.meta.clone()]}},
                })
            }
            None => json!({"joins": {presence_key: {"metas": [meta.clone()]}}, "leaves": {}}),
        };
        topic.presences.insert(
            id,
            Tracked {
                key: presence_key.to_owned(),
                payload,
                meta,
            },
        );
        send_presence_diff(key, topic, diff);
    }

    /// Stops tracking subscription `id`.
    pub fn untrack(&self, key: &TopicKey, id: SubscriberId) {
        let mut topics = self.topics();
        let Some(topic) = topics.get_mut(key) else {
            return;
        };
        if let Some(gone) = topic.presences.remove(&id) {
            let diff = json!({"joins": {}, "leaves": {gone.key: {"metas": [gone.meta]}}});
            send_presence_diff(key, topic, diff);
        }
    }
}

fn send_presence_diff(key: &TopicKey, topic: &Topic, diff: Value) {
    let wire = key.wire_topic();
    let text: Arc<str> = ServerFrame::push(&wire, event::PRESENCE_DIFF, diff)
        .to_text()
        .into();
    for (&id, sub) in &topic.subscribers {
        if sub.presence {
            sub.sink.send(Delivery {
                subscriber: id,
                text: Arc::clone(&text),
                message_id: None,
            });
        }
    }
}

/// A Phoenix.Presence-style ref: short, random, URL-safe.
fn phx_ref() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&uuid::Uuid::new_v4().as_bytes()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(
        broadcasts: bool,
        presence: bool,
    ) -> (Subscription, mpsc::Receiver<Delivery>, CancellationToken) {
        let (sink, rx, overflow) = SocketSink::channel();
        (
            Subscription {
                sink,
                broadcasts,
                presence,
            },
            rx,
            overflow,
        )
    }

    fn drain(rx: &mut mpsc::Receiver<Delivery>) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(d) = rx.try_recv() {
            out.push(serde_json::from_str(&d.text).unwrap());
        }
        out
    }

    #[test]
    fn public_and_private_topics_of_one_name_are_separate() {
        let registry = Registry::new();
        let public = TopicKey::new("room", false);
        let private = TopicKey::new("room", true);
        let (sub_a, mut rx_a, _) = subscription(true, false);
        let (sub_b, mut rx_b, _) = subscription(true, false);
        registry.subscribe(&public, sub_a);
        registry.subscribe(&private, sub_b);

        assert_eq!(registry.broadcast(&public, "\"p\"".into(), None, None), 1);
        assert_eq!(drain(&mut rx_a), vec![json!("p")]);
        assert!(drain(&mut rx_b).is_empty());
    }

    #[test]
    fn the_sender_is_skipped_and_so_are_presence_only_subscribers() {
        let registry = Registry::new();
        let key = TopicKey::new("room", true);
        let (sender, mut rx_sender, _) = subscription(true, false);
        let (reader, mut rx_reader, _) = subscription(true, false);
        let (presence_only, mut rx_presence, _) = subscription(false, true);
        let sender_id = registry.subscribe(&key, sender);
        registry.subscribe(&key, reader);
        registry.subscribe(&key, presence_only);

        assert_eq!(
            registry.broadcast(&key, "1".into(), None, Some(sender_id)),
            1
        );
        assert!(drain(&mut rx_sender).is_empty());
        assert_eq!(drain(&mut rx_reader), vec![json!(1)]);
        assert!(drain(&mut rx_presence).is_empty());
    }

    #[test]
    fn unsubscribing_removes_the_topic_when_it_empties() {
        let registry = Registry::new();
        let key = TopicKey::new("room", false);
        let (sub, _rx, _) = subscription(true, false);
        let id = registry.subscribe(&key, sub);
        assert_eq!(registry.subscriber_count(&key), 1);
        registry.unsubscribe(&key, id);
        assert_eq!(registry.subscriber_count(&key), 0);
        assert!(registry.topics().is_empty());
    }

    #[test]
    fn a_full_queue_cancels_the_overflow_token() {
        let registry = Registry::new();
        let key = TopicKey::new("room", false);
        let (sub, _rx, overflow) = subscription(true, false);
        registry.subscribe(&key, sub);
        for _ in 0..SOCKET_QUEUE_CAPACITY {
            registry.broadcast(&key, "0".into(), None, None);
        }
        assert!(!overflow.is_cancelled());
        assert_eq!(registry.broadcast(&key, "0".into(), None, None), 0);
        assert!(overflow.is_cancelled());
    }

    #[test]
    fn presence_tracks_updates_and_leaves() {
        let registry = Registry::new();
        let key = TopicKey::new("room", false);
        let (watcher, mut rx, _) = subscription(true, true);
        let (member, _rx_member, _) = subscription(true, false);
        registry.subscribe(&key, watcher);
        let member_id = registry.subscribe(&key, member);

        let payload = |v: i64| json!({"v": v}).as_object().unwrap().clone();
        registry.track(&key, member_id, "alice", payload(1));
        registry.track(&key, member_id, "alice", payload(1));
        registry.track(&key, member_id, "alice", payload(2));
        registry.unsubscribe(&key, member_id);

        let diffs = drain(&mut rx);
        assert_eq!(diffs.len(), 3, "{diffs:#?}");
        assert_eq!(diffs[0]["event"], "presence_diff");
        assert_eq!(diffs[0]["payload"]["joins"]["alice"]["metas"][0]["v"], 1);
        let first_ref = diffs[0]["payload"]["joins"]["alice"]["metas"][0]["phx_ref"].clone();
        assert_eq!(
            diffs[1]["payload"]["joins"]["alice"]["metas"][0]["phx_ref_prev"],
            first_ref
        );
        assert_eq!(diffs[1]["payload"]["leaves"]["alice"]["metas"][0]["v"], 1);
        assert_eq!(diffs[2]["payload"]["leaves"]["alice"]["metas"][0]["v"], 2);
        assert_eq!(registry.presence_state(&key), json!({}));
    }
}
