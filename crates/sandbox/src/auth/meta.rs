//! `GET /health` and `GET /settings`.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::authorize::PROVIDERS;
use super::error::ok_json;
use crate::state::AppState;

/// The GoTrue version whose behaviour the sandbox follows.
pub(crate) const GOTRUE_VERSION: &str = "v2.189.0";

/// `GET /health`, as GoTrue answers it.
pub(crate) async fn health() -> Response {
    ok_json(&json!({
        "version": GOTRUE_VERSION,
        "name": "GoTrue",
        "description": "GoTrue is a user registration and authentication API",
    }))
}

/// `GET /settings`, as GoTrue's `internal/api/settings.go` answers it: every
/// provider GoTrue knows, `true` only for those the project enabled
/// ([`crate::Config::oauth_providers`]); `email` is on, `phone` and
/// `anonymous_users` off.
pub(crate) async fn settings(State(state): State<AppState>) -> Response {
    let mut external = Map::new();
    external.insert("anonymous_users".into(), json!(false));
    for provider in PROVIDERS {
        external.insert((*provider).into(), json!(enabled(&state, provider)));
    }
    external.insert("email".into(), json!(true));
    external.insert("phone".into(), json!(false));
    ok_json(&json!({
        "external": Value::Object(external),
        "disable_signup": state.config.disable_signup,
        "mailer_autoconfirm": !state.config.confirm_email,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
        "passkeys_enabled": false,
    }))
}

/// Whether the project enabled OAuth `provider`.
pub(crate) fn enabled(state: &AppState, provider: &str) -> bool {
    state.config.oauth_providers.iter().any(|p| p == provider)
}
