//! The state every service's handlers share.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::Config;
use crate::db::Databases;
use crate::jwt::JwtKeys;
use crate::keys::ProjectKeys;

/// Shared state of a running sandbox: configuration, keys, JWT verifier and
/// database pools. Cheap to clone (one `Arc`); handlers take it as
/// `State<AppState>` and reach the fields through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] points to.
pub struct Shared {
    /// The configuration the sandbox was started with.
    pub config: Config,
    /// The public base URL (`api_url`), without a trailing slash in its string form.
    pub api_url: Url,
    /// The JWT secret and the anon / service-role keys.
    pub keys: ProjectKeys,
    /// Signs and verifies the project's JWTs.
    pub jwt: JwtKeys,
    /// One connection pool per service.
    pub db: Databases,
    /// Realtime's subscribers and database listener.
    pub realtime: crate::realtime::Hub,
    /// Cancelled when the sandbox shuts down: long-lived streams (WebSockets,
    /// SSE) watch it and close, so that graceful shutdown does not wait forever.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }

    /// `api_url` as a string without a trailing slash, for building URLs.
    pub fn api_base(&self) -> &str {
        self.api_url.as_str().trim_end_matches('/')
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
