//! Sign-in and the session: email + password, PKCE in the system browser,
//! sign-out, and keeping the access token fresh.
//!
//! Invariants:
//! * The refresh token is in the [`TokenStore`] (the OS keyring) and nowhere
//!   else: it is read from the store for each refresh and the rotated one is
//!   written back before the new session is used.
//! * The access token lives only in memory, inside this module; other modules
//!   ask `Auth::access_token` (crate-private) for it and never hand it to
//!   the UI.
//! * Refreshes are single-flight: however many tasks need a token, one
//!   refresh runs at a time and the others wait for its result.
//! * The token is refreshed ahead of expiry (at `min(90 s, lifetime / 2)`
//!   before it, by a background task) — Realtime closes channels whose token
//!   has expired (docs/platform/supabase.md §2.7).
//! * A refresh the server refuses ends the session: the keyring entry is
//!   removed and the state becomes signed out with a [`SignOutReason`].

mod accounts;
pub mod browser;
mod gotrue;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::{Error, Result, SignOutReason};
use crate::http::Api;
pub use accounts::SignUp;
use gotrue::{GrantError, TokenResponse};
use quire_protocol::backoff::Backoff;
pub use store::{KeyringStore, TokenStore};

/// The signed-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct User {
    /// The account's id (`auth.users.id`, the JWT's `sub`).
    pub id: Uuid,
    /// The account's email, when the sign-in service gave one.
    pub email: Option<String>,
}

/// Whether someone is signed in, as the UI sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AuthStatus {
    /// A session is open.
    SignedIn {
        /// Who is signed in.
        user: User,
    },
    /// No session.
    SignedOut {
        /// Why the session ended, when it ended without the person asking.
        reason: Option<SignOutReason>,
    },
}

/// Follows [`AuthStatus`] changes; see [`Auth::watch`].
pub struct AuthWatch {
    inner: watch::Receiver<AuthState>,
    last: AuthStatus,
}

impl AuthWatch {
    /// The next change of who is signed in; `None` once the client is gone.
    pub async fn changed(&mut self) -> Option<AuthStatus> {
        loop {
            self.inner.changed().await.ok()?;
            let status = self.inner.borrow_and_update().status();
            if status != self.last {
                self.last = status.clone();
                return Some(status);
            }
        }
    }

    /// The status last seen.
    pub fn status(&self) -> &AuthStatus {
        &self.last
    }
}

/// A live session (in memory only).
pub(crate) struct Session {
    pub access_token: SecretString,
    pub user: User,
    refresh_at: Instant,
    expires_at: Instant,
    /// Increases with every sign-in and refresh.
    pub generation: u64,
}

impl Session {
    fn fresh(&self) -> bool {
        Instant::now() < self.refresh_at
    }

    fn valid(&self) -> bool {
        Instant::now() < self.expires_at
    }
}

#[derive(Clone)]
pub(crate) enum AuthState {
    SignedOut(Option<SignOutReason>),
    SignedIn(Arc<Session>),
}

impl AuthState {
    pub fn status(&self) -> AuthStatus {
        match self {
            AuthState::SignedOut(reason) => AuthStatus::SignedOut {
                reason: reason.clone(),
            },
            AuthState::SignedIn(session) => AuthStatus::SignedIn {
                user: session.user.clone(),
            },
        }
    }
}

/// The session holder. Cheap to share (`Arc<Auth>`).
pub struct Auth {
    api: Api,
    store: Arc<dyn TokenStore>,
    state: watch::Sender<AuthState>,
    /// Held for the whole of a refresh, sign-in or sign-out, so that they
    /// never interleave (single flight).
    flight: Mutex<()>,
    generation: AtomicU64,
    refreshes: AtomicU64,
}

impl Auth {
    pub(crate) fn new(api: Api, store: Arc<dyn TokenStore>) -> Arc<Auth> {
        let (state, _) = watch::channel(AuthState::SignedOut(None));
        let auth = Arc::new(Auth {
            api,
            store,
            state,
            flight: Mutex::new(()),
            generation: AtomicU64::new(0),
            refreshes: AtomicU64::new(0),
        });
        tokio::spawn(keep_fresh(Arc::downgrade(&auth), auth.state.subscribe()));
        auth
    }

    /// Who is signed in, if anyone.
    pub fn status(&self) -> AuthStatus {
        self.state.borrow().status()
    }

    /// The signed-in user.
    pub fn user(&self) -> Result<User> {
        match &*self.state.borrow() {
            AuthState::SignedIn(session) => Ok(session.user.clone()),
            AuthState::SignedOut(Some(reason)) => Err(Error::SignedOut(reason.clone())),
            AuthState::SignedOut(None) => Err(Error::NotSignedIn),
        }
    }

    /// How many refreshes have succeeded since this `Auth` was made.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<AuthState> {
        self.state.subscribe()
    }

    /// Sign-in and sign-out changes (token refreshes are not changes), for
    /// the UI.
    pub fn watch(&self) -> AuthWatch {
        let mut inner = self.state.subscribe();
        let last = inner.borrow_and_update().status();
        AuthWatch { inner, last }
    }

    /// Signs in with email and password.
    pub async fn sign_in_with_password(&self, email: &str, password: &str) -> Result<User> {
        let _flight = self.flight.lock().await;
        let response = gotrue::password(&self.api, email.trim(), password)
            .await
            .map_err(GrantError::into_sign_in_error)?;
        self.replace(response).await
    }

    /// Finishes a PKCE sign-in: exchanges the code the browser brought back.
    pub(crate) async fn sign_in_with_code(&self, auth_code: &str, verifier: &str) -> Result<User> {
        let _flight = self.flight.lock().await;
        let response = gotrue::pkce(&self.api, auth_code, verifier)
            .await
            .map_err(GrantError::into_sign_in_error)?;
        self.replace(response).await
    }

    /// Resumes the session saved in the keyring, if there is one. A saved
    /// session the server refuses is removed (and `Ok(None)` returned with
    /// the state signed out with a reason); being offline is an error and
    /// keeps the saved session for later.
    pub async fn restore(&self) -> Result<Option<User>> {
        if let AuthState::SignedIn(session) = &*self.state.borrow() {
            return Ok(Some(session.user.clone()));
        }
        let _flight = self.flight.lock().await;
        let Some(token) = self.load().await? else {
            return Ok(None);
        };
        match gotrue::refresh(&self.api, &token).await {
            Ok(response) => self.establish(response).await.map(Some),
            Err(GrantError::Refused { message, .. }) => {
                self.end(Some(SignOutReason::SessionEnded { message }))
                    .await;
                Ok(None)
            }
            Err(GrantError::Other(e)) => Err(e),
        }
    }

    /// Signs out: ends the session on the server (best effort: being offline
    /// does not keep anyone signed in), removes the keyring entry, forgets the
    /// access token.
    pub async fn sign_out(&self) -> Result<()> {
        let _flight = self.flight.lock().await;
        let current = self.state.borrow().clone();
        if let AuthState::SignedIn(session) = current
            && let Err(e) = gotrue::logout(&self.api, &session.access_token).await
        {
            tracing::warn!(error = %e, "server-side sign-out failed; signing out here anyway");
        }
        let cleared = self.clear().await;
        self.state.send_replace(AuthState::SignedOut(None));
        cleared
    }

    /// A valid access token, refreshed first when it is due. Never give it
    /// to the web view.
    pub(crate) async fn access_token(&self) -> Result<SecretString> {
        let current = self.state.borrow().clone();
        match current {
            AuthState::SignedOut(None) => Err(Error::NotSignedIn),
            AuthState::SignedOut(Some(reason)) => Err(Error::SignedOut(reason)),
            AuthState::SignedIn(session) if session.fresh() => Ok(session.access_token.clone()),
            AuthState::SignedIn(session) => self.refresh(session.generation).await,
        }
    }

    /// Called when a service answered 401 to `generation`'s token: refreshes
    /// unless someone already did.
    pub(crate) async fn rejected(&self, generation: u64) -> Result<SecretString> {
        self.refresh(generation).await
    }

    /// The current session's generation (to pass to [`Auth::rejected`]).
    pub(crate) fn generation(&self) -> Option<u64> {
        match &*self.state.borrow() {
            AuthState::SignedIn(session) => Some(session.generation),
            AuthState::SignedOut(_) => None,
        }
    }

    /// Refreshes the session whose generation is `stale`, unless another
    /// task already did (then its result is returned).
    async fn refresh(&self, stale: u64) -> Result<SecretString> {
        let _flight = self.flight.lock().await;
        let current = self.state.borrow().clone();
        let session = match current {
            AuthState::SignedOut(None) => return Err(Error::NotSignedIn),
            AuthState::SignedOut(Some(reason)) => return Err(Error::SignedOut(reason)),
            AuthState::SignedIn(session) if session.generation != stale => {
                return Ok(session.access_token.clone());
            }
            AuthState::SignedIn(session) => session,
        };
        let Some(token) = self.load().await? else {
            let reason = SignOutReason::KeyringEmpty;
            self.end(Some(reason.clone())).await;
            return Err(Error::SignedOut(reason));
        };
        match gotrue::refresh(&self.api, &token).await {
            Ok(response) => {
                self.establish(response).await?;
                self.refreshes.fetch_add(1, Ordering::Relaxed);
                match &*self.state.borrow() {
                    AuthState::SignedIn(s) => Ok(s.access_token.clone()),
                    AuthState::SignedOut(_) => Err(Error::NotSignedIn),
                }
            }
            Err(GrantError::Refused { message, .. }) => {
                let reason = SignOutReason::SessionEnded { message };
                self.end(Some(reason.clone())).await;
                Err(Error::SignedOut(reason))
            }
            // Offline or a server error: the current token serves until it
            // expires; the background task tries again.
            Err(GrantError::Other(e)) if session.valid() => {
                tracing::warn!(error = %e, "token refresh failed; retrying");
                Ok(session.access_token.clone())
            }
            Err(GrantError::Other(e)) => Err(e),
        }
    }

    /// Saves the new refresh token, then publishes the session.
    /// [`Auth::establish`]es a new sign-in's session, then ends the session it
    /// replaces on the server (`POST /logout?scope=local` with its access
    /// token; best effort, as at sign-out): its refresh token, kept nowhere
    /// any more, must not stay usable. Other sessions of the person (other
    /// devices) are left alone.
    pub(crate) async fn replace(&self, response: TokenResponse) -> Result<User> {
        let replaced = match &*self.state.borrow() {
            AuthState::SignedIn(session) => Some(session.access_token.clone()),
            AuthState::SignedOut(_) => None,
        };
        let user = self.establish(response).await?;
        if let Some(token) = replaced
            && let Err(e) = gotrue::logout(&self.api, &token).await
        {
            tracing::warn!(error = %e, "could not end the replaced session on the server");
        }
        Ok(user)
    }

    async fn establish(&self, response: TokenResponse) -> Result<User> {
        let TokenResponse {
            access_token,
            expires_in,
            refresh_token,
            user,
        } = response;
        if let Err(e) = self.save(refresh_token).await {
            // Without the keyring the session could not outlive this call:
            // do not leave it open on the server.
            let _ = gotrue::logout(&self.api, &access_token).await;
            self.state.send_replace(AuthState::SignedOut(None));
            return Err(e);
        }
        let user = User {
            id: user.id,
            email: user.email,
        };
        let now = Instant::now();
        let lifetime = Duration::from_secs(expires_in.max(1));
        let margin = (lifetime / 2).min(Duration::from_secs(90));
        let session = Session {
            access_token,
            user: user.clone(),
            refresh_at: now + lifetime - margin,
            expires_at: now + lifetime,
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        self.state
            .send_replace(AuthState::SignedIn(Arc::new(session)));
        Ok(user)
    }

    /// Ends the session locally (the server already refused it).
    async fn end(&self, reason: Option<SignOutReason>) {
        if let Err(e) = self.clear().await {
            tracing::warn!(error = %e, "could not remove the saved sign-in");
        }
        self.state.send_replace(AuthState::SignedOut(reason));
    }

    async fn load(&self) -> Result<Option<SecretString>> {
        let store = self.store.clone();
        blocking(move || store.load()).await
    }

    async fn save(&self, token: SecretString) -> Result<()> {
        let store = self.store.clone();
        blocking(move || store.save(&token)).await
    }

    async fn clear(&self) -> Result<()> {
        let store = self.store.clone();
        blocking(move || store.clear()).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::KeyringUnavailable(format!("the keyring call did not finish: {e}")))?
}

/// Refreshes each session when it is due, until the [`Auth`] is dropped.
/// Transient failures are retried with backoff while the token is valid.
async fn keep_fresh(auth: Weak<Auth>, mut state: watch::Receiver<AuthState>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    // The wait before retrying a refresh that failed for now.
    let mut retry: Option<Duration> = None;
    loop {
        let current = state.borrow_and_update().clone();
        let AuthState::SignedIn(session) = current else {
            backoff.reset();
            retry = None;
            if state.changed().await.is_err() {
                return;
            }
            continue;
        };
        let due = match retry {
            None => session.refresh_at,
            Some(wait) => Instant::now() + wait,
        };
        tokio::select! {
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(due) => {
                let Some(auth) = auth.upgrade() else { return };
                retry = match auth.refresh(session.generation).await {
                    Ok(_) if auth.generation() != Some(session.generation) => None,
                    Ok(_) => Some(backoff.next()),
                    Err(e) if e.is_transient() => Some(backoff.next()),
                    Err(_) => None,
                };
                if retry.is_none() {
                    backoff.reset();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::store::MemoryStore;

    fn auth(store: Arc<MemoryStore>) -> Arc<Auth> {
        // Port 9 (discard) is closed: any network call would fail as offline.
        let config =
            crate::Config::new("http://127.0.0.1:9", "anon", "http://127.0.0.1:9").unwrap();
        Auth::new(Api::new(config), store)
    }

    #[tokio::test]
    async fn with_nothing_saved_restore_signs_nobody_in_without_a_request() {
        let auth = auth(Arc::default());
        assert_eq!(auth.restore().await.unwrap(), None);
        assert_eq!(auth.status(), AuthStatus::SignedOut { reason: None });
        assert_eq!(
            auth.access_token().await.unwrap_err().code(),
            crate::ErrorCode::NotSignedIn
        );
    }

    #[tokio::test]
    async fn offline_restore_keeps_the_saved_token_for_later() {
        let store = Arc::new(MemoryStore::default());
        store.save(&SecretString::from("saved".to_owned())).unwrap();
        let auth = auth(store.clone());
        let error = auth.restore().await.unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::Offline);
        assert!(store.load().unwrap().is_some());
    }

    #[tokio::test]
    async fn the_watch_reports_a_forced_sign_out_with_its_reason() {
        let store = Arc::new(MemoryStore::default());
        let auth = auth(store);
        let mut watch = auth.watch();
        assert_eq!(watch.status(), &AuthStatus::SignedOut { reason: None });
        auth.end(Some(SignOutReason::KeyringEmpty)).await;
        assert_eq!(
            watch.changed().await,
            Some(AuthStatus::SignedOut {
                reason: Some(SignOutReason::KeyringEmpty)
            })
        );
    }

    #[tokio::test]
    async fn sign_out_when_signed_out_still_clears_the_store() {
        let store = Arc::new(MemoryStore::default());
        store.save(&SecretString::from("stale".to_owned())).unwrap();
        auth(store.clone()).sign_out().await.unwrap();
        assert!(store.load().unwrap().is_none());
    }

    #[test]
    fn the_status_serializes_for_the_ui() {
        let status = AuthStatus::SignedOut {
            reason: Some(SignOutReason::KeyringEmpty),
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({"state": "signed_out", "reason": {"kind": "keyring_empty"}})
        );
    }
}
