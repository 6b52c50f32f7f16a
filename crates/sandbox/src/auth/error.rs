//! GoTrue's error bodies (supabase/auth `internal/api/errors.go`).
//!
//! Handlers return [`AuthError`]. Its `IntoResponse` renders GoTrue's
//! original shape, `{"code":<status>,"error_code":"…","msg":"…"}` with the
//! `x-sb-error-code` header, and leaves the error in the response's
//! extensions; [`api_version`] (a middleware on the whole `/auth/v1` router)
//! re-renders it as `{"code":"…","message":"…"}` and echoes the header when
//! the request carries `X-Supabase-Api-Version: 2024-01-01` or later, as
//! GoTrue's `HandleResponseError` does. 5xx bodies of the original shape get
//! an `error_id` (the request id); their cause is logged, never sent.

use std::fmt::Display;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::http::{json_response, request_id};

/// `X-Supabase-Api-Version`.
pub(crate) const API_VERSION_HEADER: HeaderName = HeaderName::from_static("x-supabase-api-version");
/// The one dated API version GoTrue knows.
pub(crate) const API_VERSION_2024_01_01: &str = "2024-01-01";
/// `x-sb-error-code`.
pub(crate) const ERROR_CODE_HEADER: HeaderName = HeaderName::from_static("x-sb-error-code");

/// GoTrue's error codes that the sandbox produces.
pub(crate) mod code {
    pub(crate) const BAD_JSON: &str = "bad_json";
    pub(crate) const BAD_JWT: &str = "bad_jwt";
    pub(crate) const NO_AUTHORIZATION: &str = "no_authorization";
    pub(crate) const NOT_ADMIN: &str = "not_admin";
    pub(crate) const VALIDATION_FAILED: &str = "validation_failed";
    pub(crate) const INVALID_CREDENTIALS: &str = "invalid_credentials";
    pub(crate) const EMAIL_NOT_CONFIRMED: &str = "email_not_confirmed";
    pub(crate) const USER_ALREADY_EXISTS: &str = "user_already_exists";
    pub(crate) const EMAIL_EXISTS: &str = "email_exists";
    pub(crate) const WEAK_PASSWORD: &str = "weak_password";
    pub(crate) const SAME_PASSWORD: &str = "same_password";
    pub(crate) const SIGNUP_DISABLED: &str = "signup_disabled";
    pub(crate) const ANONYMOUS_PROVIDER_DISABLED: &str = "anonymous_provider_disabled";
    pub(crate) const PHONE_PROVIDER_DISABLED: &str = "phone_provider_disabled";
    pub(crate) const USER_NOT_FOUND: &str = "user_not_found";
    pub(crate) const USER_BANNED: &str = "user_banned";
    pub(crate) const OTP_EXPIRED: &str = "otp_expired";
    pub(crate) const SESSION_NOT_FOUND: &str = "session_not_found";
    pub(crate) const SESSION_EXPIRED: &str = "session_expired";
    pub(crate) const REFRESH_TOKEN_NOT_FOUND: &str = "refresh_token_not_found";
    pub(crate) const REFRESH_TOKEN_ALREADY_USED: &str = "refresh_token_already_used";
    pub(crate) const FLOW_STATE_NOT_FOUND: &str = "flow_state_not_found";
    pub(crate) const FLOW_STATE_EXPIRED: &str = "flow_state_expired";
    pub(crate) const BAD_CODE_VERIFIER: &str = "bad_code_verifier";
    pub(crate) const UNEXPECTED_FAILURE: &str = "unexpected_failure";
}

/// An error GoTrue would answer with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AuthError {
    /// GoTrue's `HTTPError`: status, error code, message.
    Http {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// GoTrue's `WeakPasswordError`: 422 with `weak_password.reasons`.
    WeakPassword {
        message: String,
        reasons: Vec<&'static str>,
    },
    /// GoTrue's `OAuthError`: always 400, `{"error","error_description"}`.
    OAuth {
        error: &'static str,
        description: String,
    },
}

impl AuthError {
    /// An error with `status`, `code` and `message`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AuthError::Http {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 403 with `code`.
    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404 with `code`.
    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422 with `code`.
    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 400 `validation_failed`.
    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::bad_request(code::VALIDATION_FAILED, message)
    }

    /// A 500 whose `message` the client sees and whose `cause` only the log
    /// sees.
    pub(crate) fn internal(message: &'static str, cause: impl Display) -> Self {
        tracing::error!(error = %cause, "{message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::UNEXPECTED_FAILURE,
            message,
        )
    }

    /// The HTTP status of the response.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            AuthError::Http { status, .. } => *status,
            AuthError::WeakPassword { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AuthError::OAuth { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// The error code (`error` for OAuth-shaped errors).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            AuthError::Http { code, .. } => code,
            AuthError::WeakPassword { .. } => code::WEAK_PASSWORD,
            AuthError::OAuth { error, .. } => error,
        }
    }

    /// The message the client sees.
    pub(crate) fn message(&self) -> &str {
        match self {
            AuthError::Http { message, .. } | AuthError::WeakPassword { message, .. } => message,
            AuthError::OAuth { description, .. } => description,
        }
    }

    /// Renders the error for a request that asked for `version` (see
    /// [`api_version`]), with `error_id` for 5xx bodies of the original shape.
    fn render(&self, dated: bool, error_id: Option<&str>) -> Response {
        let body = match self {
            AuthError::OAuth { error, description } => {
                json!({"error": error, "error_description": description})
            }
            AuthError::WeakPassword { message, reasons } if dated => json!({
                "code": code::WEAK_PASSWORD,
                "message": message,
                "weak_password": {"reasons": reasons},
            }),
            AuthError::WeakPassword { message, reasons } => json!({
                "code": StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
                "error_code": code::WEAK_PASSWORD,
                "msg": message,
                "weak_password": {"reasons": reasons},
            }),
            AuthError::Http { code, message, .. } if dated => {
                json!({"code": code, "message": message})
            }
            AuthError::Http {
                status,
                code,
                message,
            } => {
                let mut body = json!({"code": status.as_u16(), "error_code": code, "msg": message});
                if let (true, Some(id)) = (status.is_server_error(), error_id) {
                    body["error_id"] = json!(id);
                }
                body
            }
        };
        let mut response = json_response(self.status(), &body);
        if !matches!(self, AuthError::OAuth { .. }) {
            response
                .headers_mut()
                .insert(ERROR_CODE_HEADER, HeaderValue::from_static(self.code()));
        }
        if dated {
            response.headers_mut().insert(
                API_VERSION_HEADER,
                HeaderValue::from_static(API_VERSION_2024_01_01),
            );
        }
        response
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status().as_u16(),
            self.code(),
            self.message()
        )
    }
}

impl std::error::Error for AuthError {}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = self.render(false, None);
        response.extensions_mut().insert(self);
        response
    }
}

/// Whether `header` (an `X-Supabase-Api-Version` value) asks for the dated
/// error shape: a `YYYY-MM-DD` date on or after 2024-01-01. Anything else,
/// an unparsable value included, gets the original shape, as in GoTrue's
/// `DetermineClosestAPIVersion`.
pub(crate) fn wants_dated_errors(header: Option<&str>) -> bool {
    let Some(value) = header else { return false };
    let bytes = value.as_bytes();
    let well_formed = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    well_formed
        && chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok()
        && value >= API_VERSION_2024_01_01
}

/// Re-renders [`AuthError`] responses in the shape the request asked for.
pub(crate) async fn api_version(request: Request, next: Next) -> Response {
    let dated = wants_dated_errors(
        request
            .headers()
            .get(&API_VERSION_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let error_id = request_id(request.headers()).map(str::to_owned);
    let mut response = next.run(request).await;
    if let Some(error) = response.extensions_mut().remove::<AuthError>() {
        let needs_id = error.status().is_server_error() && error_id.is_some();
        if dated || needs_id {
            return error.render(dated, error_id.as_deref());
        }
    }
    response
}

/// Serializable form of a session or user answer; a helper for handlers.
pub(crate) fn ok_json(body: &impl Serialize) -> Response {
    json_response(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn original_shape_has_numeric_code_and_header() {
        let error = AuthError::bad_request(code::INVALID_CREDENTIALS, "Invalid login credentials");
        let response = error.render(false, None);
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.headers()[&ERROR_CODE_HEADER],
            "invalid_credentials"
        );
        assert!(response.headers().get(&API_VERSION_HEADER).is_none());
        assert_eq!(
            body(response).await,
            json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"})
        );
    }

    #[tokio::test]
    async fn dated_shape_has_string_code_and_echoes_the_version() {
        let error = AuthError::bad_request(code::INVALID_CREDENTIALS, "Invalid login credentials");
        let response = error.render(true, None);
        assert_eq!(response.headers()[&API_VERSION_HEADER], "2024-01-01");
        assert_eq!(
            body(response).await,
            json!({"code": "invalid_credentials", "message": "Invalid login credentials"})
        );
    }

    #[tokio::test]
    async fn weak_password_carries_reasons_in_both_shapes() {
        let error = AuthError::WeakPassword {
            message: "Password should be at least 6 characters.".into(),
            reasons: vec!["length"],
        };
        assert_eq!(
            body(error.render(false, None)).await,
            json!({"code": 422, "error_code": "weak_password",
                   "msg": "Password should be at least 6 characters.",
                   "weak_password": {"reasons": ["length"]}})
        );
        assert_eq!(
            body(error.render(true, None)).await,
            json!({"code": "weak_password", "message": "Password should be at least 6 characters.",
                   "weak_password": {"reasons": ["length"]}})
        );
    }

    #[tokio::test]
    async fn server_errors_get_an_error_id_in_the_original_shape() {
        let error = AuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::UNEXPECTED_FAILURE,
            "Database error",
        );
        let json = body(error.render(false, Some("req-1"))).await;
        assert_eq!(json["error_id"], "req-1");
    }

    #[test]
    fn version_header_parsing() {
        assert!(!wants_dated_errors(None));
        assert!(!wants_dated_errors(Some("")));
        assert!(!wants_dated_errors(Some("2023-12-31")));
        assert!(!wants_dated_errors(Some("garbage")));
        assert!(!wants_dated_errors(Some("2024-1-01")));
        assert!(wants_dated_errors(Some("2024-01-01")));
        assert!(wants_dated_errors(Some("2031-05-17")));
    }
}
