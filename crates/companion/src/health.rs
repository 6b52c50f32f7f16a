//! What a supervisor or a load balancer asks: `GET /health` (the process
//! is alive and serving) and `GET /ready` (it can do its work: the platform
//! answers and its database does).
//!
//! `/ready` calls the platform twice, at once, each under [`CHECK_TIMEOUT`]:
//!
//! - `platform`: `GET /api/agents/{agent_id}` with the service key — the AI
//!   service answers, still takes the key, and the agent exists;
//! - `database`: `GET /rest/v1/documents?select=id&limit=1` with the service
//!   key — PostgREST reached its database and `db/app` is there (PostgREST
//!   answers 503 when its database is unreachable, 404 without the table).
//!
//! Either failing, or the companion stopping, answers 503. The body names
//! each check and never a secret or the platform's own words; the cause is
//! logged.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde_json::json;

use crate::platform::{Auth, PlatformError};
use crate::server::AppState;

/// How long `/ready` waits for each check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /health` → `{"status": "ok", …}`; no credentials needed.
pub async fn health(State(state): State<AppState>) -> Response {
    Json(json!({
        "status": "ok",
        "service": "quire-companion",
        "version": env!("CARGO_PKG_VERSION"),
        "agent_id": state.config.agent_id,
        "knowledge_base_id": state.config.knowledge_base_id,
        "runs": state.runs.len(),
    }))
    .into_response()
}

/// `GET /ready` → 200 `{"status": "ready", "checks": {"platform": "ok",
/// "database": "ok"}}`, or 503 `{"status": "not_ready", …}` with the
/// failing checks as `"failed"` (`"stopping"` while shutting down).
pub async fn ready(State(state): State<AppState>) -> Response {
    let agent = format!("/api/agents/{}", state.config.agent_id);
    let (platform, database) = tokio::join!(
        check(&state, "GET /api/agents/{id} (ready)", &agent, &[]),
        check(
            &state,
            "GET /rest/v1/documents (ready)",
            "/rest/v1/documents",
            &[("select", "id"), ("limit", "1")],
        ),
    );
    let stopping = state.shutdown.is_cancelled();
    let ready = platform && database && !stopping;
    let word = |ok: bool| if ok { "ok" } else { "failed" };
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {"platform": word(platform), "database": word(database)},
    });
    if stopping {
        body["checks"]["companion"] = json!("stopping");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// One service-role `GET` that must answer 2xx within [`CHECK_TIMEOUT`].
async fn check(state: &AppState, what: &str, path: &str, query: &[(&str, &str)]) -> bool {
    let request = state
        .platform
        .request(Method::GET, path, Auth::Service)
        .query(query)
        .timeout(CHECK_TIMEOUT);
    let result = tokio::time::timeout(CHECK_TIMEOUT, state.platform.send(what, request)).await;
    match result {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            log_failure(what, &err);
            false
        }
        Err(_) => {
            tracing::warn!(what, "not ready: no answer in time");
            false
        }
    }
}

fn log_failure(what: &str, err: &PlatformError) {
    tracing::warn!(what, error = %err, "not ready");
}
