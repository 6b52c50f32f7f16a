//! [`Quire`]: the one handle the desktop shell and the CLI hold.

use std::sync::Arc;

use crate::auth::browser::{self, Browser, BrowserSignIn};
use crate::auth::{Auth, AuthStatus, KeyringStore, TokenStore, User};
use crate::config::Config;
use crate::error::Result;
use crate::http::Api;
use crate::rest::Rest;
use crate::search::{self, ChunkHit};
use uuid::Uuid;

/// A signed-in (or not yet) Quire client for one project. Cheap to clone.
#[derive(Clone)]
pub struct Quire {
    api: Api,
    auth: Arc<Auth>,
    rest: Rest,
}

impl Quire {
    /// A client that keeps its sign-in in the OS keyring. Needs a tokio
    /// runtime (it starts the token refresher).
    pub fn new(config: Config) -> Quire {
        let store = Arc::new(KeyringStore::new(&config.api_url));
        Quire::with_token_store(config, store)
    }

    /// A client with another [`TokenStore`] (the desktop and CLI use
    /// [`Quire::new`]).
    pub fn with_token_store(config: Config, store: Arc<dyn TokenStore>) -> Quire {
        let api = Api::new(config);
        let auth = Auth::new(api.clone(), store);
        let rest = Rest::new(api.clone(), auth.clone());
        Quire { api, auth, rest }
    }

    /// The project configuration.
    pub fn config(&self) -> &Config {
        &self.api.config
    }

    /// The session holder.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Who is signed in.
    pub fn status(&self) -> AuthStatus {
        self.auth.status()
    }

    /// Signs in with email and password.
    pub async fn sign_in_with_password(&self, email: &str, password: &str) -> Result<User> {
        self.auth.sign_in_with_password(email, password).await
    }

    /// Signs in through the OAuth page in a browser (PKCE, loopback redirect).
    pub async fn sign_in_with_browser(
        &self,
        browser: &dyn Browser,
        options: &BrowserSignIn,
    ) -> Result<User> {
        browser::sign_in(&self.auth, &self.api, browser, options).await
    }

    /// Resumes the session saved in the keyring (see [`Auth::restore`]).
    pub async fn restore(&self) -> Result<Option<User>> {
        self.auth.restore().await
    }

    /// Signs out here: server logout, keyring entry removed.
    pub async fn sign_out(&self) -> Result<()> {
        self.auth.sign_out().await
    }

    /// The user's chunks that best match `query` (at most `match_count`,
    /// clamped to 1..=50 by the server), optionally only in `document_ids`.
    pub async fn search(
        &self,
        query: &str,
        match_count: u32,
        document_ids: Option<&[Uuid]>,
    ) -> Result<Vec<ChunkHit>> {
        search::search_chunks(&self.rest, query, match_count, document_ids).await
    }
}
