//! Assembling the services into one server, starting and stopping it.

use std::net::SocketAddr;

use anyhow::Context as _;
use axum::Router;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use url::Url;

use crate::config::Config;
use crate::db::{Databases, Service};
use crate::http;
use crate::jwt::JwtKeys;
use crate::keys::ProjectKeys;
use crate::state::{AppState, Shared};

/// The whole API: every service nested under its public prefix, as the
/// Supabase gateway routes them. A new service adds one `nest` line here and
/// exposes `pub fn router() -> Router<AppState>` from its module.
pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/auth/v1", crate::auth::router())
        .nest("/rest/v1", crate::rest::router())
        .nest("/realtime/v1", crate::realtime::router())
        .nest("/api", crate::ai::router())
        .nest("/storage/v1", crate::storage::router(&state))
        .fallback(http::no_route)
        // Layers run bottom-up on the request: mark credentials sensitive
        // first, so nothing later can print them.
        .layer(CatchPanicLayer::custom(http::panic_response))
        .layer(axum::middleware::from_fn(http::log_requests))
        .layer(SetSensitiveResponseHeadersLayer::new(
            http::SENSITIVE_RESPONSE_HEADERS,
        ))
        .layer(SetSensitiveRequestHeadersLayer::new(
            http::SENSITIVE_REQUEST_HEADERS,
        ))
        .with_state(state)
}

/// A running sandbox. Dropping it shuts the server down.
pub struct Sandbox {
    addr: SocketAddr,
    api_url: Url,
    keys: ProjectKeys,
    shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .field("api_url", &self.api_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// The address the server is bound to (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The public base URL, e.g. `http://127.0.0.1:54321` (no trailing slash
    /// in [`Sandbox::api_base`]).
    pub fn api_url(&self) -> &Url {
        &self.api_url
    }

    /// [`Sandbox::api_url`] as a string without a trailing slash.
    pub fn api_base(&self) -> &str {
        self.api_url.as_str().trim_end_matches('/')
    }

    /// The anon key (`role: anon`).
    pub fn anon_key(&self) -> &SecretString {
        self.keys.anon_key()
    }

    /// The service-role key (`role: service_role`).
    pub fn service_role_key(&self) -> &SecretString {
        self.keys.service_role_key()
    }

    /// The project's JWT secret.
    pub fn jwt_secret(&self) -> &SecretString {
        self.keys.jwt_secret()
    }

    /// A handle that stops the server when cancelled (e.g. from a signal handler).
    pub fn shutdown_handle(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.join().await
    }

    /// Waits until the server stops (after [`Sandbox::shutdown_handle`] is cancelled).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        self.join().await
    }

    async fn join(&mut self) -> anyhow::Result<()> {
        if let Some(task) = self.task.take() {
            task.await
                .context("the server task failed")?
                .context("the server stopped with an error")?;
        }
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the sandbox: loads (or creates) the keys, builds the pools, checks
/// that Auth can reach its database, binds the listener and serves in the
/// background. Returns once the server accepts connections.
pub async fn spawn(config: Config) -> anyhow::Result<Sandbox> {
    let keys = ProjectKeys::load_or_create(&config.data_dir, config.jwt_secret.as_ref())
        .context("loading the project keys")?;
    keys.check_listen_address(config.listen)?;

    let db = Databases::new(&config.db).context("configuring the database pools")?;
    db.check(Service::Auth).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let api_url = match &config.api_url {
        Some(url) => url.clone(),
        None => Url::parse(&format!("http://{addr}")).context("building the API URL")?,
    };

    if let Some(path) = &config.keys_file {
        keys.write_keys_file(path, &api_url)?;
    }

    let shutdown = CancellationToken::new();
    let state = AppState::new(Shared {
        jwt: JwtKeys::new(keys.jwt_secret()),
        keys: keys.clone(),
        api_url: api_url.clone(),
        db,
        realtime: crate::realtime::Hub::new(),
        shutdown: shutdown.clone(),
        config,
    });
    crate::realtime::start(&state);
    if !state
        .realtime
        .wait_listening(std::time::Duration::from_secs(5))
        .await
    {
        tracing::warn!(
            "realtime is not listening to the database yet; broadcasts from SQL wait for it"
        );
    }
    // Extractions and indexing a previous run left unfinished.
    tokio::spawn({
        let state = state.clone();
        async move { crate::ai::resume(&state).await }
    });
    let agents_model = state.config.agents.model_description();
    let app = router(state);

    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    });
    tracing::info!(%addr, api_url = %api_url.as_str().trim_end_matches('/'), "quire-sandbox listening");
    tracing::info!("agents answer with {agents_model}");

    Ok(Sandbox {
        addr,
        api_url,
        keys,
        shutdown,
        task: Some(task),
    })
}
