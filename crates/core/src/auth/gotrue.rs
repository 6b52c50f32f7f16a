//! The GoTrue calls sign-in needs (docs/platform/supabase.md §3):
//! `token` with the password, refresh-token and PKCE grants, and `logout`.
//! Unauthenticated calls send the anon key as `apikey` and bearer, as
//! supabase-js does.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{Error, Service};
use crate::http::{self, Api};

/// A session as `/token` returns it.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: SecretString,
    pub expires_in: u64,
    pub refresh_token: SecretString,
    pub user: UserResponse,
}

#[derive(Deserialize)]
pub(crate) struct UserResponse {
    pub id: Uuid,
    #[serde(default)]
    pub email: Option<String>,
}

/// How a `/token` call failed.
pub(crate) enum GrantError {
    /// GoTrue refused the grant (4xx): the credentials, code or refresh token
    /// are not good. `code` is GoTrue's `error_code`, `message` its text.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// Anything else: offline, server error, unexpected answer.
    Other(Error),
}

impl GrantError {
    /// As an [`Error`] for a grant the person started (password, PKCE).
    pub fn into_sign_in_error(self) -> Error {
        match self {
            GrantError::Refused {
                code,
                message,
                status,
            } => match code.as_str() {
                "invalid_credentials" | "invalid_grant" => Error::InvalidCredentials,
                "over_request_rate_limit" => Error::RateLimited {
                    service: Service::Auth,
                },
                _ if status == 429 => Error::RateLimited {
                    service: Service::Auth,
                },
                "flow_state_not_found" | "flow_state_expired" | "bad_code_verifier" => {
                    Error::SignInCancelled(format!("{message}. Start signing in again."))
                }
                _ => Error::BadInput {
                    service: Service::Auth,
                    message,
                },
            },
            GrantError::Other(e) => e,
        }
    }
}

pub(crate) async fn password(
    api: &Api,
    email: &str,
    password: &str,
) -> Result<TokenResponse, GrantError> {
    grant(
        api,
        "password",
        &json!({"email": email, "password": password}),
    )
    .await
}

pub(crate) async fn refresh(
    api: &Api,
    refresh_token: &SecretString,
) -> Result<TokenResponse, GrantError> {
    grant(
        api,
        "refresh_token",
        &json!({"refresh_token": refresh_token.expose_secret()}),
    )
    .await
}

pub(crate) async fn pkce(
    api: &Api,
    auth_code: &str,
    verifier: &str,
) -> Result<TokenResponse, GrantError> {
    grant(
        api,
        "pkce",
        &json!({"auth_code": auth_code, "code_verifier": verifier}),
    )
    .await
}

async fn grant(api: &Api, grant_type: &str, body: &Value) -> Result<TokenResponse, GrantError> {
    let request = api
        .http
        .post(api.url("/auth/v1/token"))
        .timeout(http::REQUEST_TIMEOUT)
        .query(&[("grant_type", grant_type)])
        .header("apikey", api.anon_key())
        .bearer_auth(api.anon_key())
        .json(body);
    let response = http::send(Service::Auth, request)
        .await
        .map_err(GrantError::Other)?;
    let status = response.status();
    if status.is_client_error() {
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        return Err(GrantError::Refused {
            status: status.as_u16(),
            code: http::auth_code_of(&json).unwrap_or_default(),
            message: http::message_of(&json).unwrap_or_else(|| crate::error::cut(&text)),
        });
    }
    http::json(Service::Auth, response)
        .await
        .map_err(GrantError::Other)
}

/// `POST /auth/v1/logout` (scope `local`: this device's session only).
pub(crate) async fn logout(api: &Api, access_token: &SecretString) -> Result<(), Error> {
    let request = api
        .http
        .post(api.url("/auth/v1/logout"))
        .timeout(http::REQUEST_TIMEOUT)
        .query(&[("scope", "local")])
        .header("apikey", api.anon_key())
        .bearer_auth(access_token.expose_secret());
    let response = http::send(Service::Auth, request).await?;
    match response.status().as_u16() {
        // 401/403: the session is already gone on the server.
        200..=299 | 401 | 403 | 404 => Ok(()),
        _ => http::check(Service::Auth, response).await.map(|_| ()),
    }
}
