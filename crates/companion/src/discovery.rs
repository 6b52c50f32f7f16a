//! `GET /.well-known/quire`: what the desktop app needs to connect, given
//! only the companion's address (issue 16; docs/platform/supabase.md §3.7).
//!
//! The document holds public values only — the project's URL, its anon
//! (publishable) key, and the sign-in methods the project allows, read from
//! GoTrue's `GET /auth/v1/settings` on each request:
//!
//! ```json
//! {"quire": 1, "api_url": "https://…", "anon_key": "…",
//!  "auth": {"password": true, "signup": true, "confirm_email": false,
//!           "providers": ["github", "google"]}}
//! ```
//!
//! Never the service-role key, the JWT secret, the tool secret or a database
//! URL: the keys emitted are fixed here, and a test (`discovery` in the
//! companion's api suite) checks that no secret of the configuration
//! appears. `/settings` mixes switches with OAuth providers in `external`;
//! the switches (`email`, `phone`, `anonymous_users`) are not providers.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::platform::Auth;
use crate::server::AppState;

/// The path the app asks.
pub const PATH: &str = "/.well-known/quire";
/// The document's version (`quire`): the app refuses others.
pub const VERSION: u32 = 1;
/// Keys of GoTrue's `external` that switch a method rather than name an
/// OAuth provider.
const SWITCHES: [&str; 3] = ["email", "phone", "anonymous_users"];

/// The discovery document.
#[derive(Debug, Serialize)]
pub struct Discovery {
    /// Always [`VERSION`].
    pub quire: u32,
    /// The Powabase project's base URL as clients reach it
    /// (`QUIRE_COMPANION_PUBLIC_API_URL`, else the one the companion uses).
    pub api_url: String,
    /// The project's anon key: public by design, shipped in every client.
    pub anon_key: String,
    /// The sign-in methods the project allows.
    pub auth: SignInMethods,
}

/// What `/auth/v1/settings` allows, as the app's sign-in screen needs it.
#[derive(Debug, Serialize)]
pub struct SignInMethods {
    /// Email and password (`external.email`).
    pub password: bool,
    /// Whether new accounts may be created (`!disable_signup`).
    pub signup: bool,
    /// Whether a new account must confirm its address (`!mailer_autoconfirm`).
    pub confirm_email: bool,
    /// The enabled OAuth providers, by GoTrue's name, sorted.
    pub providers: Vec<String>,
}

/// The part of GoTrue's settings read; unknown keys are ignored, missing ones
/// are false.
#[derive(Deserialize)]
struct Settings {
    #[serde(default)]
    external: Map<String, Value>,
    #[serde(default)]
    disable_signup: bool,
    #[serde(default)]
    mailer_autoconfirm: bool,
}

impl From<Settings> for SignInMethods {
    fn from(settings: Settings) -> SignInMethods {
        let enabled = |key: &str| settings.external.get(key).and_then(Value::as_bool) == Some(true);
        let mut providers: Vec<String> = settings
            .external
            .keys()
            .filter(|key| !SWITCHES.contains(&key.as_str()) && enabled(key))
            .cloned()
            .collect();
        providers.sort();
        SignInMethods {
            password: enabled("email"),
            signup: !settings.disable_signup,
            confirm_email: !settings.mailer_autoconfirm,
            providers,
        }
    }
}

/// `GET /.well-known/quire`; no credentials needed. The platform failing
/// answers 502 `platform_unavailable`.
pub async fn discovery(State(state): State<AppState>) -> Result<Response, ApiError> {
    let anon_key = state.config.platform.anon_key.expose_secret();
    let request = state
        .platform
        .request(Method::GET, "/auth/v1/settings", Auth::User(anon_key));
    let settings: Settings = state
        .platform
        .json("GET /auth/v1/settings", request)
        .await?;
    let document = Discovery {
        quire: VERSION,
        api_url: state.config.client_api_url().to_owned(),
        anon_key: anon_key.to_owned(),
        auth: settings.into(),
    };
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(document),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn switches_are_not_providers_and_disabled_providers_are_left_out() {
        let settings: Settings = serde_json::from_value(json!({
            "external": {"email": true, "phone": false, "anonymous_users": true,
                         "github": true, "google": true, "azure": false},
            "disable_signup": true,
            "mailer_autoconfirm": false,
            "sms_provider": "",
            "passkeys_enabled": false,
        }))
        .unwrap();
        let methods = SignInMethods::from(settings);
        assert_eq!(methods.providers, ["github", "google"]);
        assert!(methods.password);
        assert!(!methods.signup);
        assert!(methods.confirm_email);
    }
}
