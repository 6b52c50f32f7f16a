//! What the shell pushes to the web view (IPC.md, "Events"), and the view
//! models of session state. Nothing here carries a token: the payloads are
//! the core's view types ([`Update`], [`UploadEvent`](quire_core::UploadEvent), [`User`]) or built
//! from them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quire_core::{AuthStatus, FollowStatus, Message, MessageStatus, Quire, Update, User};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use ts_rs::TS;
use uuid::Uuid;

pub const AUTH: &str = "quire://auth";
pub const LIVE: &str = "quire://live";
pub const UPDATE: &str = "quire://update";
pub const RESYNC: &str = "quire://resync";
pub const UPLOAD: &str = "quire://upload";
/// Files were handed to the window by a second launch: call `opened_files`.
pub const OPENED: &str = "quire://opened";

/// Every event name the shell emits.
pub const EVENTS: &[&str] = &[AUTH, LIVE, UPDATE, RESYNC, UPLOAD, OPENED];

/// Who is signed in, as the UI sees it: the sign-out reason as a sentence.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
#[ts(rename = "AuthStatus")]
pub enum AuthView {
    SignedIn { user: User },
    SignedOut { reason: Option<String> },
}

impl From<&AuthStatus> for AuthView {
    fn from(status: &AuthStatus) -> AuthView {
        match status {
            AuthStatus::SignedIn { user } => AuthView::SignedIn { user: user.clone() },
            AuthStatus::SignedOut { reason } => AuthView::SignedOut {
                reason: reason.as_ref().map(|r| capitalized(&r.to_string())),
            },
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// The live-updates indicator: `connecting` until joined *and* caught up,
/// `offline` while signed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(rename = "LiveState")]
pub struct LiveView {
    pub state: LiveStateName,
    pub detail: Option<String>,
    pub retry_in_ms: Option<u64>,
}

/// The indicator's states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LiveStateName {
    Live,
    Connecting,
    Reconnecting,
    Offline,
}

impl LiveView {
    pub fn offline() -> LiveView {
        LiveView {
            state: LiveStateName::Offline,
            detail: None,
            retry_in_ms: None,
        }
    }
}

impl From<&FollowStatus> for LiveView {
    fn from(status: &FollowStatus) -> LiveView {
        let plain = |state| LiveView {
            state,
            detail: None,
            retry_in_ms: None,
        };
        match status {
            FollowStatus::SignedOut => LiveView::offline(),
            FollowStatus::Connecting => plain(LiveStateName::Connecting),
            FollowStatus::Joined { backfilled: false } => LiveView {
                detail: Some("Catching up".into()),
                ..plain(LiveStateName::Connecting)
            },
            FollowStatus::Joined { backfilled: true } => plain(LiveStateName::Live),
            FollowStatus::Reconnecting { error, retry_in_ms } => LiveView {
                state: LiveStateName::Reconnecting,
                detail: Some(error.clone()),
                retry_in_ms: Some(*retry_in_ms),
            },
        }
    }
}

/// `quire://update`'s payload: an update and its session-wide `rev`.
#[derive(Clone, Serialize, TS)]
#[ts(rename = "UpdateEvent")]
pub struct Numbered<'a> {
    rev: u64,
    update: UpdateView<'a>,
}

/// What one `quire://update` carries: one of the core's updates as it is, or
/// only the text a streaming message gained.
#[derive(Clone, Serialize, TS)]
#[serde(untagged)]
pub enum UpdateView<'a> {
    Whole(&'a Update),
    Text(&'a MessageText),
}

/// Text a streaming message gained, with nothing else of it changed: `text`
/// goes at `at` of its content, counted in UTF-16 code units (a JavaScript
/// string's length), so a copy that has more already, or less, can tell.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageText {
    MessageText {
        id: Uuid,
        conversation_id: Uuid,
        at: u32,
        text: String,
    },
}

/// The session-wide update counter. An update is numbered before it is
/// emitted, and its change was made before it was broadcast (the core
/// broadcasts under the state's lock); so reading [`Revs::current`] *before*
/// reading the state gives a rev whose updates are all in what is read.
#[derive(Clone, Default)]
pub struct Revs(Arc<AtomicU64>);

impl Revs {
    /// The rev of the last update numbered so far.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// How long a streaming message's new text may wait to be sent with the
/// text after it: one frame at 60 Hz.
const COALESCE: Duration = Duration::from_millis(16);

/// One `quire://update` to send.
#[derive(Debug, PartialEq)]
enum Outgoing {
    Whole(Update),
    Text(MessageText),
}

/// What was last sent of a streaming message: the message without its
/// content, and the content's length in bytes and in UTF-16 code units.
struct Sent {
    message: Message,
    bytes: usize,
    units: usize,
}

/// Turns the core's updates into what the window is sent. A delta's update
/// carries the message's whole text so far; sending that 200 times a second
/// made each delta cost the length of the answer (serialising it, and the
/// page parsing it). Here a change that only appends text to a streaming
/// message becomes [`MessageText`], and pieces that follow each other are
/// joined until [`COALESCE`] has passed or anything else is sent. Every other
/// update, a message's first and its final one included, goes whole, after
/// the text held back, so the order is kept.
#[derive(Default)]
struct Coalescer {
    /// Streaming messages, as last sent.
    streaming: HashMap<Uuid, Sent>,
    /// Text held back, and since when.
    pending: Option<(MessageText, Instant)>,
}

impl Coalescer {
    /// Takes the next update; returns what must be sent now, in order.
    fn push(&mut self, update: Update) -> Vec<Outgoing> {
        let (message, appended) = match update {
            Update::Message { message, appended } => (message, appended),
            Update::ConversationRemoved { id } => {
                self.streaming
                    .retain(|_, sent| sent.message.conversation_id != id);
                return self.flush_then(Update::ConversationRemoved { id });
            }
            other => return self.flush_then(other),
        };
        match appended {
            Some(piece) if message.status == MessageStatus::Streaming => {
                self.push_piece(message, piece)
            }
            appended => {
                self.forget_or_remember(&message);
                self.flush_then(Update::Message { message, appended })
            }
        }
    }

    /// A streaming message gained `piece`: text only if nothing else changed
    /// since it was last sent and the piece follows what was sent.
    fn push_piece(&mut self, mut message: Message, piece: String) -> Vec<Outgoing> {
        let content = std::mem::take(&mut message.content);
        let start = content.len() - piece.len().min(content.len());
        let follows = content.ends_with(piece.as_str());
        let sent = self
            .streaming
            .get_mut(&message.id)
            .filter(|sent| follows && sent.bytes == start && sent.message == message);
        let Some(sent) = sent else {
            message.content = content;
            self.forget_or_remember(&message);
            return self.flush_then(Update::Message {
                message,
                appended: Some(piece),
            });
        };
        let at = sent.units;
        sent.bytes = content.len();
        sent.units += piece.encode_utf16().count();
        if let Some((MessageText::MessageText { id, text, .. }, _)) = &mut self.pending
            && *id == message.id
        {
            text.push_str(&piece);
            return Vec::new();
        }
        let out = self.flush().into_iter().collect();
        let text = MessageText::MessageText {
            id: message.id,
            conversation_id: message.conversation_id,
            at: u32::try_from(at).unwrap_or(u32::MAX),
            text: piece,
        };
        self.pending = Some((text, Instant::now()));
        out
    }

    /// Remembers a streaming message as sent whole; forgets one that ended.
    fn forget_or_remember(&mut self, message: &Message) {
        if message.status != MessageStatus::Streaming {
            self.streaming.remove(&message.id);
            return;
        }
        self.streaming.insert(
            message.id,
            Sent {
                message: Message {
                    content: String::new(),
                    ..message.clone()
                },
                bytes: message.content.len(),
                units: message.content.encode_utf16().count(),
            },
        );
    }

    fn flush_then(&mut self, update: Update) -> Vec<Outgoing> {
        let mut out: Vec<Outgoing> = self.flush().into_iter().collect();
        out.push(Outgoing::Whole(update));
        out
    }

    /// The text held back, to send now.
    fn flush(&mut self) -> Option<Outgoing> {
        self.pending.take().map(|(text, _)| Outgoing::Text(text))
    }

    /// When the text held back must be sent.
    fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, since)| *since + COALESCE)
    }

    /// Updates were lost: what was sent is no longer known.
    fn lost(&mut self) -> Option<Outgoing> {
        self.streaming.clear();
        self.flush()
    }
}

/// Emits every state update as `quire://update` `{rev, update}`, a
/// streaming message's new text coalesced (`Coalescer`);
/// `quire://resync` when updates were lost (the web view fell behind).
/// Subscribe before anything can change the state.
pub fn forward_updates<R: Runtime>(
    app: AppHandle<R>,
    mut updates: broadcast::Receiver<Update>,
    revs: Revs,
) {
    let window = app.clone();
    let emit = move |out: Outgoing| {
        let update = match &out {
            Outgoing::Whole(update) => UpdateView::Whole(update),
            Outgoing::Text(text) => UpdateView::Text(text),
        };
        let rev = revs.next();
        let _ = window.emit(UPDATE, Numbered { rev, update });
    };
    tauri::async_runtime::spawn(async move {
        let mut coalescer = Coalescer::default();
        loop {
            let received = match coalescer.deadline() {
                Some(deadline) => match tokio::time::timeout_at(deadline, updates.recv()).await {
                    Ok(received) => received,
                    Err(_) => {
                        coalescer.flush().into_iter().for_each(&emit);
                        continue;
                    }
                },
                None => updates.recv().await,
            };
            match received {
                Ok(update) => {
                    coalescer.push(update).into_iter().for_each(&emit);
                    // Updates that never pause (a backlog) still send the text every COALESCE.
                    if coalescer.deadline().is_some_and(|at| at <= Instant::now()) {
                        coalescer.flush().into_iter().for_each(&emit);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the window fell behind the state; resyncing");
                    coalescer.lost().into_iter().for_each(&emit);
                    let _ = app.emit(RESYNC, ());
                }
                Err(broadcast::error::RecvError::Closed) => {
                    coalescer.flush().into_iter().for_each(&emit);
                    return;
                }
            }
        }
    });
}

/// Emits `quire://auth` on every sign-in and sign-out.
pub fn forward_auth<R: Runtime>(app: AppHandle<R>, quire: &Quire) {
    let mut watch = quire.auth().watch();
    tauri::async_runtime::spawn(async move {
        while let Some(status) = watch.changed().await {
            let _ = app.emit(AUTH, AuthView::from(&status));
        }
    });
}

/// Emits `quire://live` on every change of the follower's status.
pub fn forward_live<R: Runtime>(app: AppHandle<R>, mut status: watch::Receiver<FollowStatus>) {
    tauri::async_runtime::spawn(async move {
        loop {
            let view = LiveView::from(&*status.borrow_and_update());
            let _ = app.emit(LIVE, view);
            if status.changed().await.is_err() {
                let _ = app.emit(LIVE, LiveView::offline());
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use quire_core::SignOutReason;
    use serde_json::json;

    fn streaming(id: Uuid, content: &str) -> Message {
        Message {
            id,
            conversation_id: Uuid::nil(),
            seq: Some(1),
            role: quire_core::Role::Assistant,
            status: MessageStatus::Streaming,
            content: content.into(),
            citations: Vec::new(),
            sources: Vec::new(),
            question_id: None,
            error: None,
            tools: Vec::new(),
        }
    }

    fn grew(message: &Message, piece: &str) -> Update {
        let mut message = message.clone();
        message.content.push_str(piece);
        Update::Message {
            message,
            appended: Some(piece.into()),
        }
    }

    fn text(id: Uuid, at: u32, text: &str) -> Outgoing {
        Outgoing::Text(MessageText::MessageText {
            id,
            conversation_id: Uuid::nil(),
            at,
            text: text.into(),
        })
    }

    #[tokio::test]
    async fn a_streaming_message_is_sent_whole_once_then_as_its_new_text_joined() {
        let mut c = Coalescer::default();
        let id = Uuid::new_v4();
        let first = Update::Message {
            message: streaming(id, "Hé"),
            appended: Some("Hé".into()),
        };
        assert_eq!(c.push(first.clone()), vec![Outgoing::Whole(first)]);
        assert!(c.push(grew(&streaming(id, "Hé"), " 😀")).is_empty());
        assert!(c.push(grew(&streaming(id, "Hé 😀"), " ok")).is_empty());
        assert!(c.deadline().is_some());
        // "Hé" is 2 UTF-16 units; the emoji is 2 more.
        assert_eq!(c.flush(), Some(text(id, 2, " 😀 ok")));
        assert!(c.push(grew(&streaming(id, "Hé 😀 ok"), "!")).is_empty());
        assert_eq!(c.flush(), Some(text(id, 8, "!")));
        assert_eq!(c.flush(), None);
    }

    #[tokio::test]
    async fn anything_else_goes_whole_after_the_text_held_back() {
        let mut c = Coalescer::default();
        let id = Uuid::new_v4();
        let so_far = streaming(id, "One");
        c.push(Update::Message {
            message: so_far.clone(),
            appended: None,
        });
        assert!(c.push(grew(&so_far, " two")).is_empty());

        // Its sources arrived with more text: the text held back, then all of it.
        let mut with_sources = streaming(id, "One two three");
        with_sources.tools.push("search".into());
        let changed = Update::Message {
            message: with_sources.clone(),
            appended: Some(" three".into()),
        };
        assert_eq!(
            c.push(changed.clone()),
            vec![text(id, 3, " two"), Outgoing::Whole(changed)]
        );

        // Text that does not follow what was sent (a gap filled) goes whole.
        assert!(c.push(grew(&with_sources, " four")).is_empty());
        let mut gap = with_sources.clone();
        gap.content = "One two three four five six".into();
        let jump = Update::Message {
            message: gap.clone(),
            appended: Some(" six".into()),
        };
        assert_eq!(
            c.push(jump.clone()),
            vec![text(id, 13, " four"), Outgoing::Whole(jump)]
        );

        // The final update goes whole, and the message is forgotten.
        let mut done = gap.clone();
        done.status = MessageStatus::Complete;
        done.content.push('.');
        let complete = Update::Message {
            message: done,
            appended: Some(".".into()),
        };
        assert_eq!(c.push(complete.clone()), vec![Outgoing::Whole(complete)]);
        assert!(c.streaming.is_empty());

        // Another kind of update flushes the text of another message first.
        let other = Uuid::new_v4();
        c.push(Update::Message {
            message: streaming(other, "a"),
            appended: Some("a".into()),
        });
        assert!(c.push(grew(&streaming(other, "a"), "b")).is_empty());
        let removed = Update::ConversationRemoved { id: Uuid::nil() };
        assert_eq!(
            c.push(removed.clone()),
            vec![text(other, 1, "b"), Outgoing::Whole(removed)]
        );
        assert!(c.streaming.is_empty());
    }

    #[tokio::test]
    async fn after_lost_updates_the_next_piece_goes_whole() {
        let mut c = Coalescer::default();
        let id = Uuid::new_v4();
        c.push(grew(&streaming(id, ""), "a"));
        assert!(c.push(grew(&streaming(id, "a"), "b")).is_empty());
        assert_eq!(c.lost(), Some(text(id, 1, "b")));
        let next = grew(&streaming(id, "abc"), "d");
        assert_eq!(c.push(next.clone()), vec![Outgoing::Whole(next)]);
    }

    #[test]
    fn a_text_update_has_the_ipc_shape() {
        let id = Uuid::nil();
        let piece = MessageText::MessageText {
            id,
            conversation_id: id,
            at: 3,
            text: " more".into(),
        };
        let event = Numbered {
            rev: 7,
            update: UpdateView::Text(&piece),
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"rev": 7, "update": {"type": "message_text", "id": id, "conversation_id": id, "at": 3, "text": " more"}})
        );
    }

    #[test]
    fn auth_reasons_reach_the_ui_as_sentences() {
        let view = AuthView::from(&AuthStatus::SignedOut {
            reason: Some(SignOutReason::KeyringEmpty),
        });
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            json!({"state": "signed_out", "reason": "The saved sign-in is no longer in the system keyring; sign in again to continue."})
        );
        let view = AuthView::from(&AuthStatus::SignedOut { reason: None });
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            json!({"state": "signed_out", "reason": null})
        );
    }

    #[test]
    fn follower_states_map_to_the_indicator() {
        let json = |s: &FollowStatus| serde_json::to_value(LiveView::from(s)).unwrap();
        assert_eq!(
            json(&FollowStatus::SignedOut),
            json!({"state": "offline", "detail": null, "retry_in_ms": null})
        );
        assert_eq!(json(&FollowStatus::Connecting)["state"], "connecting");
        assert_eq!(
            json(&FollowStatus::Joined { backfilled: false })["state"],
            "connecting"
        );
        assert_eq!(
            json(&FollowStatus::Joined { backfilled: true })["state"],
            "live"
        );
        assert_eq!(
            json(&FollowStatus::Reconnecting {
                error: "gone".into(),
                retry_in_ms: 1500
            }),
            json!({"state": "reconnecting", "detail": "gone", "retry_in_ms": 1500})
        );
    }
}
