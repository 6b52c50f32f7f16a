//! The companion's HTTP errors: a status and the JSON body
//! `{"error": "<code>", "message": "<for a person>"}` (`quire-protocol`'s
//! [`ErrorBody`], its codes [`ErrorCode`]).
//!
//! The code is what clients switch on (`unauthorized`, `not_found`,
//! `rate_limited`, `platform_unavailable`, …); the message says what
//! happened and what to do. Server-side causes go to the log, never to the
//! client: a person gets Quire's sentence and a [`Reference`], the log line
//! with the cause (the platform's own text included) carries the same
//! reference, so an operator can find it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use quire_protocol::{ErrorBody, ErrorCode};

use crate::platform::{ApiCode, PlatformError};

/// A short random id that ties what a person is told to the log line that
/// holds the cause: shown as `ref 5c1e9a03`, logged as `reference=5c1e9a03`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(String);

impl Reference {
    /// A fresh reference.
    pub fn new() -> Self {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).expect("the OS random number generator works");
        Reference(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The id alone, as logged.
    pub fn id(&self) -> &str {
        &self.0
    }
}

impl Default for Reference {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ref {}", self.0)
    }
}

/// What a person is told of a failure whose `cause` they must not see (the
/// platform's text, a body): Quire's `sentence` followed by a fresh
/// [`Reference`], under which `cause` is logged. For `documents.error`,
/// `chat_messages.error` and error answers alike.
pub fn for_person(sentence: &str, cause: &dyn std::fmt::Display) -> String {
    let reference = Reference::new();
    tracing::warn!(reference = reference.id(), %cause, "{sentence}");
    format!("{sentence} ({reference})")
}

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

    /// 403 `anonymous_not_allowed`: a user signed in anonymously, on a
    /// companion that does not serve them ([`crate::auth`]).
    pub fn anonymous_not_allowed() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AnonymousNotAllowed,
            "This server does not serve anonymous accounts. Sign in with an account that has an email address or a sign-in provider.",
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

    /// 502 `platform_unavailable`, or 401 when PostgREST refused the
    /// user's own token (so the client refreshes it rather than retrying);
    /// `cause` goes to the log under the message's [`Reference`].
    pub fn platform(cause: &PlatformError) -> Self {
        if cause.code() == Some(&ApiCode::UserTokenRefused) {
            tracing::info!(error = %cause, "the platform refused a user's token");
            return Self::unauthorized();
        }
        Self::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::PlatformUnavailable,
            for_person(
                "The document service is not answering right now. Try again in a moment.",
                cause,
            ),
        )
    }

    /// 500 `internal`; `cause` goes to the log under the message's
    /// [`Reference`].
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let reference = Reference::new();
        tracing::error!(reference = reference.id(), error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("Something went wrong on Quire's server. Try again. ({reference})"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_gets_quires_sentence_and_a_reference_never_the_cause() {
        let said = for_person(
            "The document service refused this file. Delete it and upload it again.",
            &"400: Unsupported file type .exe at /srv/x",
        );
        assert!(
            said.starts_with(
                "The document service refused this file. Delete it and upload it again. (ref "
            ),
            "{said}"
        );
        assert!(
            !said.contains("Unsupported") && !said.contains("/srv"),
            "{said}"
        );
        let id = said.trim_end_matches(')').rsplit(' ').next().unwrap();
        assert_eq!(id.len(), 8);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert_ne!(Reference::new(), Reference::new());
    }
}
