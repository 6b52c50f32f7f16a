//! The companion's HTTP errors: a status and the JSON body
//! `{"error": "<code>", "message": "<for a person>"}` (`quire-protocol`'s
//! [`ErrorBody`], its codes [`ErrorCode`]).
//!
//! The code is what clients switch on (`unauthorized`, `not_found`,
//! `rate_limited`, `platform_unavailable`, …); the message says what
//! happened and what to do. Server-side causes go to the log, never to the
//! client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use quire_protocol::{ErrorBody, ErrorCode};

use crate::platform::PlatformError;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What clients switch on.
    pub code: ErrorCode,
    /// What happened and what to do, in Quire's words.
    pub message: String,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error answer with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401, the same for every reason a token is refused.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "Sign in again: the access token is missing, invalid or expired.",
        )
    }

    /// 404 `not_found`: the same answer whether the thing does not exist or
    /// belongs to someone else.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("No such {what}."),
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                message,
            )
        }
    }

    /// 502 `platform_unavailable`; `cause` goes to the log.
    pub fn platform(cause: &PlatformError) -> Self {
        tracing::warn!(error = %cause, "a platform call failed");
        Self::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::PlatformUnavailable,
            "The document service is not answering right now. Try again in a moment.",
        )
    }

    /// 500 `internal`; `cause` goes to the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "Something went wrong on Quire's server. Try again.",
        )
    }
}

impl From<PlatformError> for ApiError {
    fn from(err: PlatformError) -> Self {
        ApiError::platform(&err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.code,
                message: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
