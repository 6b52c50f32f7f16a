//! The companion's HTTP error body, `{"error": "<code>", "message": "…"}`
//! (`crates/companion/EVENTS.md`, "Errors before the stream"). Clients
//! switch on the code, never on the message, which is written for a person.

use serde::{Deserialize, Serialize};

/// The body of every error answer of the companion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for the client to switch on.
    pub error: ErrorCode,
    /// What happened and what to do, for a person; never switched on.
    pub message: String,
}

/// The `error` of an [`ErrorBody`]. A code this version does not know is
/// kept as [`ErrorCode::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not the JSON the route takes.
    InvalidBody,
    /// 400: a question with no text.
    EmptyMessage,
    /// 400: more chunk ids than an answer may be given.
    TooManyChunks,
    /// 400: a document title that is empty or too long.
    InvalidTitle,
    /// 400: a `sha256` that is not 64 hexadecimal digits.
    InvalidSha256,
    /// 400 or 422: an empty file.
    EmptyFile,
    /// 401: missing, forged, expired, wrong-audience or non-user token —
    /// one answer for all.
    Unauthorized,
    /// 403: a user signed in anonymously, on a companion that does not serve
    /// anonymous users (`QUIRE_COMPANION_ALLOW_ANONYMOUS_USERS`).
    AnonymousNotAllowed,
    /// 404: something that does not exist or is not the user's — one
    /// answer for both.
    NotFound,
    /// 409: stopping an answer that already finished.
    NotRunning,
    /// 409: regenerating an answer while a version of it is being written.
    AnswerInProgress,
    /// 409: ingesting a document whose file is not in Storage yet.
    NotUploaded,
    /// 413: a question over the length limit.
    MessageTooLong,
    /// 413: a file over the size limit.
    TooLarge,
    /// 422: the stored file is not a PDF.
    NotAPdf,
    /// 422: the stored file's size is not the one registered.
    SizeMismatch,
    /// 429, with `Retry-After`: too many answers running, or documents
    /// uploading, for this user.
    RateLimited,
    /// 409: the user has as many documents or conversations as Quire keeps.
    LimitReached,
    /// 500: the companion is not set up for this route.
    Misconfigured,
    /// 500: the companion failed; the cause is in its log.
    Internal,
    /// 502: the platform did not answer.
    PlatformUnavailable,
    /// A code this version does not know.
    #[serde(untagged)]
    Unknown(String),
}

impl ErrorCode {
    /// The code as it is on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::EmptyMessage => "empty_message",
            ErrorCode::TooManyChunks => "too_many_chunks",
            ErrorCode::InvalidTitle => "invalid_title",
            ErrorCode::InvalidSha256 => "invalid_sha256",
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::AnonymousNotAllowed => "anonymous_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotRunning => "not_running",
            ErrorCode::AnswerInProgress => "answer_in_progress",
            ErrorCode::NotUploaded => "not_uploaded",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotAPdf => "not_a_pdf",
            ErrorCode::SizeMismatch => "size_mismatch",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::Misconfigured => "misconfigured",
            ErrorCode::Internal => "internal",
            ErrorCode::PlatformUnavailable => "platform_unavailable",
            ErrorCode::Unknown(code) => code,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_code_is_its_wire_word_and_unknown_codes_are_kept() {
        for code in [
            ErrorCode::InvalidBody,
            ErrorCode::EmptyMessage,
            ErrorCode::TooManyChunks,
            ErrorCode::InvalidTitle,
            ErrorCode::InvalidSha256,
            ErrorCode::EmptyFile,
            ErrorCode::Unauthorized,
            ErrorCode::AnonymousNotAllowed,
            ErrorCode::NotFound,
            ErrorCode::NotRunning,
            ErrorCode::AnswerInProgress,
            ErrorCode::NotUploaded,
            ErrorCode::MessageTooLong,
            ErrorCode::TooLarge,
            ErrorCode::NotAPdf,
            ErrorCode::SizeMismatch,
            ErrorCode::RateLimited,
            ErrorCode::LimitReached,
            ErrorCode::Misconfigured,
            ErrorCode::Internal,
            ErrorCode::PlatformUnavailable,
            ErrorCode::Unknown("teapot".into()),
        ] {
            let body = ErrorBody {
                error: code.clone(),
                message: "m".into(),
            };
            let wire = json!({"error": code.as_str(), "message": "m"});
            assert_eq!(serde_json::to_value(&body).unwrap(), wire);
            assert_eq!(serde_json::from_value::<ErrorBody>(wire).unwrap(), body);
        }
    }
}
