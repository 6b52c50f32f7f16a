//! The body of `POST /api/chat`, validated at the edge: once
//! [`ChatRequest::parse`] has returned, the handler holds only values that
//! may be acted on — a trimmed, non-empty question within the length limit
//! and at most `max_chunk_ids` distinct chunk ids. Nothing in it is trusted
//! beyond its shape: the conversation and the chunks are re-read under the
//! user's identity afterwards (ARCHITECTURE.md, invariant 4).

use std::collections::HashSet;

use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::config::Limits;
use crate::error::{ApiError, ErrorCode};

/// A question as the client asked it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// The conversation to continue; `None` starts a new one.
    pub conversation_id: Option<Uuid>,
    /// The question.
    pub question: Question,
    /// The chunks the client ranked for it, best first.
    pub chunk_ids: ChunkIds,
}

/// A question: trimmed, not empty, at most `max_message_chars` characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question(String);

impl Question {
    /// The question's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Chunk ids: each once, in the order first given, at most `max_chunk_ids`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkIds(Vec<Uuid>);

impl ChunkIds {
    /// The ids, in order.
    pub fn as_slice(&self) -> &[Uuid] {
        &self.0
    }
}

/// The body as it arrives.
#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    conversation_id: Option<Uuid>,
    message: String,
    #[serde(default)]
    chunk_ids: Vec<Uuid>,
}

impl ChatRequest {
    /// Checks `body` against `limits`, in this order: JSON of the right
    /// shape (400 `invalid_body`), a question (400 `empty_message`), its
    /// length (413 `message_too_long`), the number of chunk ids (400
    /// `too_many_chunks`). Repeated chunk ids are dropped, not refused.
    pub fn parse(body: &[u8], limits: &Limits) -> Result<ChatRequest, ApiError> {
        let body: Body = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidBody,
                format!(
                    "The request body must be JSON {{conversation_id?, message, chunk_ids}}: {e}"
                ),
            )
        })?;
        let question = Question::parse(&body.message, limits.max_message_chars)?;
        let chunk_ids = ChunkIds::parse(body.chunk_ids, limits.max_chunk_ids)?;
        Ok(ChatRequest {
            conversation_id: body.conversation_id,
            question,
            chunk_ids,
        })
    }
}

/// A new version of an answer (`POST /api/chat/{message_id}/regenerate`),
/// checked: the chunks the client ranked for the answer's question again.
/// The question itself is the answer's own, read from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegenerateRequest {
    /// The chunks the client ranked for it, best first.
    pub chunk_ids: ChunkIds,
}

/// The regenerate body as it arrives.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegenerateBody {
    #[serde(default)]
    chunk_ids: Vec<Uuid>,
}

impl RegenerateRequest {
    /// Checks `body` (empty means no chunks): JSON `{chunk_ids}` (400
    /// `invalid_body`), at most `max_chunk_ids` of them (400
    /// `too_many_chunks`).
    pub fn parse(body: &[u8], limits: &Limits) -> Result<RegenerateRequest, ApiError> {
        let body: RegenerateBody = if body.iter().all(u8::is_ascii_whitespace) {
            RegenerateBody {
                chunk_ids: Vec::new(),
            }
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::InvalidBody,
                    format!("The request body must be JSON {{chunk_ids}}: {e}"),
                )
            })?
        };
        Ok(RegenerateRequest {
            chunk_ids: ChunkIds::parse(body.chunk_ids, limits.max_chunk_ids)?,
        })
    }
}

impl Question {
    fn parse(message: &str, max_chars: usize) -> Result<Question, ApiError> {
        let question = message.trim();
        if question.is_empty() {
            return Err(ApiError::bad_request(
                ErrorCode::EmptyMessage,
                "The message is empty. Type a question.",
            ));
        }
        if question.chars().count() > max_chars {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::MessageTooLong,
                format!("The message is longer than {max_chars} characters. Shorten it."),
            ));
        }
        Ok(Question(question.to_owned()))
    }
}

impl ChunkIds {
    fn parse(mut ids: Vec<Uuid>, max: usize) -> Result<ChunkIds, ApiError> {
        if ids.len() > max {
            return Err(ApiError::bad_request(
                ErrorCode::TooManyChunks,
                format!("At most {max} chunk ids may be sent with a question."),
            ));
        }
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(*id));
        Ok(ChunkIds(ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_message_chars: 10,
            max_chunk_ids: 2,
            ..Limits::default()
        }
    }

    fn refusal(body: &str) -> (StatusCode, ErrorCode) {
        let err = ChatRequest::parse(body.as_bytes(), &limits()).unwrap_err();
        (err.status, err.code)
    }

    #[test]
    fn only_valid_questions_get_through() {
        let a = Uuid::from_bytes([1; 16]);
        let b = Uuid::from_bytes([2; 16]);
        let body = format!(r#"{{"message": "  Why?  ", "chunk_ids": ["{a}", "{b}", "{a}"]}}"#);
        let parsed = ChatRequest::parse(body.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(parsed.question.as_str(), "Why?");
        assert_eq!(parsed.chunk_ids.as_slice(), [a, b]);
        assert_eq!(parsed.conversation_id, None);

        assert_eq!(
            refusal(r#"{"chunk_ids": []}"#),
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidBody)
        );
        assert_eq!(
            refusal(r#"{"message": " \n "}"#),
            (StatusCode::BAD_REQUEST, ErrorCode::EmptyMessage)
        );
        assert_eq!(
            refusal(r#"{"message": "12345678901"}"#),
            (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::MessageTooLong)
        );
        // Ten characters after trimming are within the limit.
        assert!(ChatRequest::parse(br#"{"message": " 1234567890 "}"#, &limits()).is_ok());
        let three = format!(r#"{{"message": "Why?", "chunk_ids": ["{a}", "{b}", "{a}"]}}"#);
        assert_eq!(
            refusal(&three),
            (StatusCode::BAD_REQUEST, ErrorCode::TooManyChunks)
        );
    }
}
