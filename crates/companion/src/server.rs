//! The companion's HTTP server: routes, shared state, start and stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use quire_protocol::Backoff;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use url::Url;

use crate::auth::JwtKeys;
use crate::chat::run::Runs;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::limits::RunSlots;
use crate::metrics::Metrics;
use crate::platform::{ApiCode, Platform, PlatformError};
use crate::{chat, documents, health, ingest, metrics, tool};

/// Largest request body the companion reads (JSON only; files go to Storage).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// How long start-up keeps trying to reach the platform.
const STARTUP_ATTEMPTS: u32 = 10;
/// How long shutdown waits, after the grace period, for the answers it
/// ended to be persisted, and then for the connections to close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// What every handler shares (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The state behind [`AppState`].
pub struct Shared {
    /// The settings the companion started with.
    pub config: Config,
    /// The platform client.
    pub platform: Platform,
    /// Verifies users' tokens and signs the search tool's.
    pub jwt: JwtKeys,
    /// Answers streaming per user.
    pub run_slots: RunSlots,
    /// Places for the answers this process runs at once
    /// ([`crate::config::Limits::max_answers_in_flight`]).
    pub answering: Arc<Semaphore>,
    /// The answers this process is running.
    pub runs: Runs,
    /// What `/metrics` reports ([`crate::metrics`]).
    pub metrics: Arc<Metrics>,
    /// Writes the answers' event rows, many answers' in one call.
    pub events: crate::chat::writer::EventWriter,
    /// Woken when a document is queued here, so an idle worker starts at once.
    pub ingest_wakeup: Notify,
    /// The name this process takes ingest leases under.
    pub worker_id: String,
    /// Cancelled when the companion shuts down.
    pub shutdown: CancellationToken,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The public routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route(crate::discovery::PATH, get(crate::discovery::discovery))
        .route(
            "/api/chat",
            post(chat::chat).layer(axum::middleware::from_fn(stamp_arrival)),
        )
        .route("/api/chat/{message_id}/stop", post(chat::stop))
        .route(
            "/api/chat/{message_id}/regenerate",
            post(chat::regenerate::regenerate).layer(axum::middleware::from_fn(stamp_arrival)),
        )
        .route("/api/documents", post(documents::register))
        .route("/api/documents/{id}/ingest", post(documents::ingest))
        .route("/api/documents/{id}", delete(documents::delete))
        .route(tool::TOOL_PATH, post(tool::search_documents))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            HeaderName::from_static("apikey"),
        ]))
        .with_state(state)
}

/// When a request reached the companion: where an answer's stages start
/// ([`crate::metrics`]).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub tokio::time::Instant);

async fn stamp_arrival(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    request
        .extensions_mut()
        .insert(Arrival(tokio::time::Instant::now()));
    next.run(request).await
}

/// The routes of the metrics listener (`QUIRE_COMPANION_METRICS_ADDR`): `/metrics` alone.
fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .fallback(no_route)
        .with_state(state)
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "No such route.")
}

/// A running companion.
pub struct Companion {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    url: Url,
    state: AppState,
    /// The public listener's server, then the metrics listener's.
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    workers: Vec<JoinHandle<()>>,
    stop_serving: CancellationToken,
    /// Cancelled to end the grace period early (a second signal).
    no_grace: CancellationToken,
}

impl std::fmt::Debug for Companion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Companion")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Companion {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics listener's address, when `QUIRE_COMPANION_METRICS_ADDR` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// `http://<addr>` without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL the platform calls the tool at.
    pub fn public_url(&self) -> &Url {
        &self.url
    }

    /// The name this process takes ingest leases under.
    pub fn worker_id(&self) -> &str {
        &self.state.worker_id
    }

    /// Stops, losing no answer: no new connection is accepted; ingestion
    /// workers give their jobs back at once (another companion takes them
    /// up); answers being written get [`Config::shutdown_grace`] to finish,
    /// then are ended `failed` (`interrupted`) with their text kept; the
    /// servers stop once every answer's stream has ended.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop_serving.cancel();
        self.state.shutdown.cancel();
        let runs = self.state.runs.len();
        let grace = self.state.config.shutdown_grace;
        tracing::info!(runs, grace_secs = grace.as_secs(), "stopping");
        let workers = std::mem::take(&mut self.workers);
        let answers = async {
            let finished = tokio::select! {
                finished = self.state.runs.wait_idle(grace) => finished,
                () = self.no_grace.cancelled() => self.state.runs.is_empty(),
            };
            if !finished {
                tracing::warn!(
                    runs = self.state.runs.len(),
                    "answers still running after the grace period are ended"
                );
                self.state.runs.stop_all(SHUTDOWN_WAIT).await;
            }
        };
        let ((), _) = tokio::join!(answers, futures_util::future::join_all(workers));
        for mut server in self.servers.drain(..) {
            match tokio::time::timeout(SHUTDOWN_WAIT, &mut server).await {
                Ok(joined) => joined
                    .context("the server task failed")?
                    .context("the server stopped with an error")?,
                Err(_) => {
                    tracing::warn!("connections still open at exit are dropped");
                    server.abort();
                }
            }
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// A token that starts [`Companion::shutdown`]'s work when cancelled
    /// from elsewhere (a signal handler) — pair with [`Companion::wait`].
    pub fn shutdown_handle(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// A token that ends [`Companion::shutdown`]'s grace period when
    /// cancelled: answers still being written are ended at once, `failed`
    /// with their text kept (a second signal).
    pub fn no_grace_handle(&self) -> CancellationToken {
        self.no_grace.clone()
    }

    /// Waits until [`Companion::shutdown_handle`] is cancelled, then shuts down.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.state.shutdown.cancelled().await;
        self.shutdown().await
    }
}

impl Drop for Companion {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
        self.stop_serving.cancel();
    }
}

/// Starts the companion: binds, refuses a tool endpoint the platform would
/// not call ([`crate::startup::check_tool_endpoint`]), registers the search
/// tool with the platform (retrying while the platform is not up yet),
/// refuses an agent with a knowledge base attached, refuses a platform
/// whose management routes accept user tokens
/// ([`crate::startup::StartupError`]), starts the ingestion workers and
/// serves. Returns once it accepts connections.
pub async fn spawn(config: Config) -> anyhow::Result<Companion> {
    let metrics = Arc::new(Metrics::default());
    let platform = Platform::counted(&config.platform, metrics.clone())
        .context("building the platform client")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let metrics_listener = match config.metrics_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("binding QUIRE_COMPANION_METRICS_ADDR {at}"))?,
        ),
        None => None,
    };
    let (url, origin) = match &config.public_url {
        Some(url) => (url.clone(), format!("QUIRE_COMPANION_PUBLIC_URL is {url}")),
        None => {
            let url = Url::parse(&format!("http://{addr}")).context("building the public URL")?;
            let origin = format!(
                "QUIRE_COMPANION_PUBLIC_URL is not set (the default is the listen address {})",
                url.as_str().trim_end_matches('/')
            );
            (url, origin)
        }
    };
    let endpoint =
        Url::parse(&tool::endpoint(url.as_str())).context("building the tool's endpoint")?;
    crate::startup::check_tool_endpoint(&endpoint, &origin, config.dev_allow_private_tool_url)?;

    let tool_id = register_tool(&platform, &config, url.as_str()).await?;
    crate::startup::check_no_knowledge_base(&platform, config.agent_id).await?;
    tracing::info!(%tool_id, %endpoint, "search tool registered");
    let jwt = JwtKeys::new(&config.jwt_secret);
    crate::startup::check_service_role_split(&platform, &jwt).await?;

    let worker_id = config
        .ingest
        .worker_id
        .clone()
        .unwrap_or_else(default_worker_id);
    let state = AppState(Arc::new(Shared {
        jwt,
        run_slots: RunSlots::new(
            platform.clone(),
            config.limits.max_runs_per_user,
            worker_id.clone(),
        ),
        answering: Arc::new(Semaphore::new(
            config
                .limits
                .max_answers_in_flight
                .min(Semaphore::MAX_PERMITS),
        )),
        runs: Runs::default(),
        metrics,
        events: crate::chat::writer::EventWriter::start(platform.clone()),
        ingest_wakeup: Notify::new(),
        worker_id,
        shutdown: CancellationToken::new(),
        platform,
        config,
    }));
    let workers = ingest::start(&state);
    let purge = tokio::spawn(purge_expired_tool_sessions(state.clone()));
    drop(purge);
    let drain = tokio::spawn(crate::sessions::drain_deletions(state.clone()));
    drop(drain);
    let drain = tokio::spawn(crate::deletions::drain_deletions(state.clone()));
    drop(drain);

    let stop_serving = CancellationToken::new();
    let mut servers = vec![serve(listener, router(state.clone()), &stop_serving)];
    let mut metrics_addr = None;
    if let Some(listener) = metrics_listener {
        metrics_addr = Some(
            listener
                .local_addr()
                .context("reading the metrics address")?,
        );
        servers.push(serve(
            listener,
            metrics_router(state.clone()),
            &stop_serving,
        ));
    }
    tracing::info!(%addr, ?metrics_addr, worker_id = %state.worker_id, "quire-companion listening");
    Ok(Companion {
        addr,
        metrics_addr,
        url,
        state,
        servers,
        workers,
        stop_serving,
        no_grace: CancellationToken::new(),
    })
}

/// Serves `app` on `listener` until `stop`, then until its connections end.
fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: &CancellationToken,
) -> JoinHandle<std::io::Result<()>> {
    let stop = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    })
}

async fn register_tool(
    platform: &Platform,
    config: &Config,
    public: &str,
) -> anyhow::Result<uuid::Uuid> {
    // Replicas restarted together should not knock in step: jittered.
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    for attempt in 1..=STARTUP_ATTEMPTS {
        match tool::ensure_registered(platform, config.agent_id, public, &config.tool_secret).await
        {
            Ok(id) => return Ok(id),
            // A refused key will not start working by itself at start-up.
            Err(err)
                if err.is_transient()
                    && err.code() != Some(&ApiCode::ServiceKeyRefused)
                    && attempt < STARTUP_ATTEMPTS =>
            {
                tracing::warn!(error = %err, "the platform is not answering yet; retrying");
                tokio::time::sleep(backoff.next()).await;
            }
            Err(err) => return Err(startup_error(err)),
        }
    }
    unreachable!("the last attempt returns")
}

fn startup_error(err: PlatformError) -> anyhow::Error {
    let hint = match err.code() {
        Some(ApiCode::ServiceKeyRefused) => {
            " (is QUIRE_COMPANION_SERVICE_ROLE_KEY the project's service-role key?)"
        }
        Some(ApiCode::NotFound) => {
            " (does QUIRE_COMPANION_AGENT_ID name an existing agent? `quire-companion provision` makes one)"
        }
        _ => " (is QUIRE_COMPANION_API_URL right and the platform up?)",
    };
    anyhow::anyhow!("registering the search tool with the platform failed{hint}: {err}")
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "companion".to_owned());
    let mut suffix = [0u8; 3];
    getrandom::fill(&mut suffix).expect("the OS random number generator works");
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}-{}-{suffix}", std::process::id())
}

/// Deletes expired `session_token`s now and then (runs delete their own;
/// this catches runs a crash cut short).
async fn purge_expired_tool_sessions(state: AppState) {
    loop {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        if let Err(err) = state
            .platform
            .delete(
                crate::platform::Auth::Service,
                "tool_sessions",
                &[("expires_at", format!("lt.{now}"))],
            )
            .await
        {
            tracing::debug!(error = %err, "could not purge expired tool sessions");
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
    }
}
