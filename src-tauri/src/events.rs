//! What the shell pushes to the web view (IPC.md, "Events"), and the view
//! models of session state. Nothing here carries a token: the payloads are
//! the core's view types ([`Update`], [`UploadEvent`], [`User`]) or built
//! from them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quire_core::{AuthStatus, FollowStatus, Quire, Update, User};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime};
use tokio::sync::{broadcast, watch};
use ts_rs::TS;

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
    update: &'a Update,
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

/// Emits every state update as `quire://update` `{rev, update}`;
/// `quire://resync` when updates were lost (the web view fell behind).
/// Subscribe before anything can change the state.
pub fn forward_updates<R: Runtime>(
    app: AppHandle<R>,
    mut updates: broadcast::Receiver<Update>,
    revs: Revs,
) {
    tauri::async_runtime::spawn(async move {
        loop {
            match updates.recv().await {
                Ok(update) => {
                    let rev = revs.next();
                    let _ = app.emit(
                        UPDATE,
                        Numbered {
                            rev,
                            update: &update,
                        },
                    );
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "the window fell behind the state; resyncing");
                    let _ = app.emit(RESYNC, ());
                }
                Err(broadcast::error::RecvError::Closed) => return,
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
