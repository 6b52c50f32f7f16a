//! `/realtime/v1`: Supabase Realtime's WebSocket and REST broadcast
//! (supabase/realtime v2.65.3; what Quire and the official clients depend on
//! is in docs/platform-contract.md).
//!
//! * `GET /realtime/v1/websocket?apikey=…&vsn=1.0.0|2.0.0` — Phoenix channels
//!   with the V1 (JSON object) or V2 (JSON array) serializer ([`frame`]); `phx_join` on `realtime:<name>`
//!   ([`join`]), private channels authorized against `realtime.messages` RLS
//!   ([`authorization`]), heartbeats and the idle close, `access_token`
//!   refreshes, the token-expiry close, `phx_leave`, client broadcasts and a
//!   minimal presence (track/untrack, `presence_state`, `presence_diff`).
//! * `POST /realtime/v1/api/broadcast` — fire-and-forget broadcasts.
//! * Broadcast from the database: rows `realtime.send()` commits into
//!   `realtime.messages` are announced by LISTEN/NOTIFY and fanned out by the
//!   listener task, which reconnects and catches up after losing its
//!   connection.
//!
//! Not implemented (answered honestly rather than faked): the binary
//! broadcasts Realtime ≥ 2.63 sends on vsn 2.0.0 (the sandbox sends V2 text,
//! which realtime-js also reads) and binary-encoded client broadcast payloads
//! (JSON ones are read), Postgres Changes (the join succeeds with an empty
//! `postgres_changes` list and a `system` error), broadcast replay, rate
//! limits other than the per-socket channel limit.

pub mod api;
pub mod authorization;
pub mod frame;
pub mod join;
mod listener;
pub mod registry;
mod socket;
pub mod token;

use std::time::Duration;

use axum::Router;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::http::json_response;
use crate::state::AppState;
use registry::Registry;

/// Default of `--realtime-connect-error-delay-ms` (Realtime's `CONNECT_ERROR_BACKOFF_MS`).
pub const DEFAULT_CONNECT_ERROR_DELAY_MS: u64 = 2_000;
/// Default of `--realtime-channel-error-delay-ms` (Realtime's `CHANNEL_ERROR_BACKOFF_MS`).
pub const DEFAULT_CHANNEL_ERROR_DELAY_MS: u64 = 5_000;
/// Default of `--realtime-idle-timeout-ms` (Phoenix's WebSocket timeout).
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default of `--realtime-token-check-interval-ms`: the longest a channel
/// goes without re-checking its token.
pub const DEFAULT_TOKEN_CHECK_INTERVAL_MS: u64 = 5 * 60_000;
/// Default of `--realtime-max-channels` (Realtime's `max_channels_per_client`).
pub const DEFAULT_MAX_CHANNELS: usize = 100;
/// Largest WebSocket message accepted (Realtime's `max_frame_size`).
pub const MAX_MESSAGE_BYTES: usize = 5 * 1024 * 1024;

/// Realtime's timing and limits. Tests shorten the delays.
#[derive(Debug, Clone, clap::Args)]
pub struct RealtimeConfig {
    /// Delay before a refused WebSocket connection is answered, in ms.
    #[arg(
        long = "realtime-connect-error-delay-ms",
        env = "QUIRE_SANDBOX_REALTIME_CONNECT_ERROR_DELAY_MS",
        default_value_t = DEFAULT_CONNECT_ERROR_DELAY_MS
    )]
    pub connect_error_delay_ms: u64,

    /// Delay before a refused channel join is answered, in ms.
    #[arg(
        long = "realtime-channel-error-delay-ms",
        env = "QUIRE_SANDBOX_REALTIME_CHANNEL_ERROR_DELAY_MS",
        default_value_t = DEFAULT_CHANNEL_ERROR_DELAY_MS
    )]
    pub channel_error_delay_ms: u64,

    /// A socket that sends nothing (not even a heartbeat) for this long is closed, in ms.
    #[arg(
        long = "realtime-idle-timeout-ms",
        env = "QUIRE_SANDBOX_REALTIME_IDLE_TIMEOUT_MS",
        default_value_t = DEFAULT_IDLE_TIMEOUT_MS
    )]
    pub idle_timeout_ms: u64,

    /// Longest interval between two checks of a channel's token, in ms (the
    /// check also runs exactly when the token expires).
    #[arg(
        long = "realtime-token-check-interval-ms",
        env = "QUIRE_SANDBOX_REALTIME_TOKEN_CHECK_INTERVAL_MS",
        default_value_t = DEFAULT_TOKEN_CHECK_INTERVAL_MS
    )]
    pub token_check_interval_ms: u64,

    /// Most channels one socket may join.
    #[arg(
        long = "realtime-max-channels",
        env = "QUIRE_SANDBOX_REALTIME_MAX_CHANNELS",
        default_value_t = DEFAULT_MAX_CHANNELS
    )]
    pub max_channels: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            connect_error_delay_ms: DEFAULT_CONNECT_ERROR_DELAY_MS,
            channel_error_delay_ms: DEFAULT_CHANNEL_ERROR_DELAY_MS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            token_check_interval_ms: DEFAULT_TOKEN_CHECK_INTERVAL_MS,
            max_channels: DEFAULT_MAX_CHANNELS,
        }
    }
}

impl RealtimeConfig {
    /// [`RealtimeConfig::connect_error_delay_ms`] as a duration.
    pub fn connect_error_delay(&self) -> Duration {
        Duration::from_millis(self.connect_error_delay_ms)
    }

    /// [`RealtimeConfig::channel_error_delay_ms`] as a duration.
    pub fn channel_error_delay(&self) -> Duration {
        Duration::from_millis(self.channel_error_delay_ms)
    }

    /// [`RealtimeConfig::idle_timeout_ms`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// [`RealtimeConfig::token_check_interval_ms`] as a duration.
    pub fn token_check_interval(&self) -> Duration {
        Duration::from_millis(self.token_check_interval_ms)
    }
}

/// Realtime's running state in one sandbox: the fan-out table and whether the
/// database listener is live.
#[derive(Debug)]
pub struct Hub {
    registry: Registry,
    listening: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            registry: Registry::new(),
            listening: watch::Sender::new(false),
        }
    }
}

impl Hub {
    /// A hub with no subscribers and no listener yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The fan-out table.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Waits until the listener is live, at most `timeout`. Returns whether it is.
    pub async fn wait_listening(&self, timeout: Duration) -> bool {
        let mut rx = self.listening.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|live| *live))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Starts the database listener of `state`'s sandbox; it runs until the
/// sandbox shuts down.
pub fn start(state: &AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(listener::run(state.clone()))
}

/// The routes under `/realtime/v1`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/websocket", get(websocket))
        .route("/api/broadcast", post(api::broadcast))
}

/// `GET /realtime/v1/websocket`: checks `vsn` and the connect token, then
/// upgrades.
async fn websocket(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let params: Vec<(String, String)> = query
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    // A repeated parameter counts by its last value, as Plug decodes queries
    // (realtime-js given `params: {vsn}` sends `vsn=<that>&vsn=<its own>`).
    let param = |name: &str| {
        params
            .iter()
            .rfind(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let vsn_param = param("vsn").unwrap_or("1.0.0");
    let Some(vsn) = frame::Vsn::from_param(vsn_param) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": format!(
                "Unsupported serializer vsn {vsn_param:?}: Realtime speaks Phoenix vsn 1.0.0 \
                 and 2.0.0; connect with vsn=1.0.0 or vsn=2.0.0"
            )}),
        );
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };

    let token = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| param("apikey"))
        .map(str::to_owned);
    let refusal = match token.as_deref() {
        None | Some("") => Some(
            "You must provide an API key: the apikey query parameter or the x-api-key header"
                .to_owned(),
        ),
        Some(token) => token::verify(&state.jwt, token, now_secs())
            .err()
            .map(|r| r.to_string()),
    };
    if let Some(message) = refusal {
        tracing::info!(reason = %message, "realtime connection refused");
        tokio::time::sleep(state.config.realtime.connect_error_delay()).await;
        return json_response(StatusCode::UNAUTHORIZED, &json!({"error": message}));
    }
    let connection = socket::Connection {
        vsn,
        connect_token: token.unwrap_or_default(),
        headers: request_headers(&headers),
    };
    upgrade
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |ws| socket::serve(state, ws, connection))
}

/// The `x-*` headers of a request for `request.headers`, without credentials.
fn request_headers(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-") && name.as_str() != "x-api-key")
        .filter_map(|(name, value)| {
            Some((
                name.as_str().to_owned(),
                Value::String(value.to_str().ok()?.to_owned()),
            ))
        })
        .collect()
}

/// The current unix time in seconds.
fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The current unix time in milliseconds.
fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
