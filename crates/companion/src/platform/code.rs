//! What a platform's error answer means to the companion ([`ApiCode`]),
//! read once from its status, its body and the identity it was made with,
//! when the answer arrives ([`super::status_error`]). Callers switch on the
//! code, never on a status number or the platform's wording.

use serde_json::Value;
use uuid::Uuid;

/// The meaning of an error answer from `/api`, `/rest/v1` or `/storage/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCode {
    /// 400 from `run` or `run/stream`: the agent's model has neither a
    /// platform nor a BYOK key (docs/platform/ai-api.md §5.6). Only the
    /// project's administrator can fix it.
    ModelWithoutKey,
    /// Any other 400: a body the platform would not take.
    BadRequest,
    /// 401 or 403 to a call made with the service key: the key is wrong or
    /// was rotated. The operator's to fix; worth retrying once they have.
    ServiceKeyRefused,
    /// 401 to a call made with a user's token: it expired or was revoked,
    /// and the user's client should refresh it.
    UserTokenRefused,
    /// 403 to a call made with a user's token: not theirs to do.
    Forbidden,
    /// 402 `insufficient_credits`: the project has run out of AI credits.
    InsufficientCredits,
    /// 404: missing, or not visible to the caller.
    NotFound,
    /// 409 `duplicate_source`: the same bytes are already a source, whose id
    /// is given (docs/platform/ai-api.md §7.2).
    DuplicateSource(Option<Uuid>),
    /// 409 from db/app's ingest functions (`PT409`, "ingest lease lost"):
    /// another worker holds the job, or the document was deleted.
    LeaseLost,
    /// 409 or 429 from db/app's per-user limits (`PT409`/`PT429` with a
    /// `too_many_…` hint: `too_many_documents`, `too_many_conversations`,
    /// `too_many_uploads`; db/app/83_per_user_limits.sql): the user has as
    /// many as they may. The hint is kept.
    UserLimit(String),
    /// Any other 409.
    Conflict,
    /// 413: more than the platform accepts.
    TooLarge,
    /// 408, 429 or 5xx: worth retrying later.
    Unavailable,
    /// Anything else.
    Other,
}

impl ApiCode {
    /// Reads an error answer: its effective `status` (Storage's from its
    /// body), its `body`, and whether it was made with the service key.
    pub fn read(status: u16, body: &str, as_service: bool) -> Self {
        let json: Option<Value> = serde_json::from_str(body).ok();
        let field = |key: &str| json.as_ref()?.get(key)?.as_str().map(str::to_owned);
        match status {
            401 | 403 if as_service => ApiCode::ServiceKeyRefused,
            401 => ApiCode::UserTokenRefused,
            403 => ApiCode::Forbidden,
            // Flask's HTML page for `check_model_available`'s abort.
            400 if body.contains("requires BYOK") => ApiCode::ModelWithoutKey,
            400 => ApiCode::BadRequest,
            402 => ApiCode::InsufficientCredits,
            404 => ApiCode::NotFound,
            409 if field("error").as_deref() == Some("duplicate_source") => {
                ApiCode::DuplicateSource(
                    json.as_ref()
                        .and_then(|b| b.get("duplicate")?.get("id")?.as_str()?.parse().ok()),
                )
            }
            409 if field("message").is_some_and(|m| m.contains("lease lost")) => ApiCode::LeaseLost,
            409 | 429 if field("hint").is_some_and(|h| h.starts_with("too_many_")) => {
                ApiCode::UserLimit(field("hint").unwrap_or_default())
            }
            409 => ApiCode::Conflict,
            413 => ApiCode::TooLarge,
            408 | 429 | 500..=599 => ApiCode::Unavailable,
            _ => ApiCode::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_status_body_and_identity() {
        let id = Uuid::from_bytes([7; 16]);
        let cases = [
            (401, "{}", true, ApiCode::ServiceKeyRefused),
            (403, "{}", true, ApiCode::ServiceKeyRefused),
            (401, "{}", false, ApiCode::UserTokenRefused),
            (403, "{}", false, ApiCode::Forbidden),
            (
                400,
                "<p>Model m requires BYOK. Add an API key for x in Settings</p>",
                true,
                ApiCode::ModelWithoutKey,
            ),
            (
                400,
                r#"{"error":"message is required"}"#,
                true,
                ApiCode::BadRequest,
            ),
            (
                402,
                r#"{"error":"insufficient_credits"}"#,
                true,
                ApiCode::InsufficientCredits,
            ),
            (404, "", true, ApiCode::NotFound),
            (
                409,
                r#"{"code":"PT409","message":"ingest lease lost","details":null}"#,
                true,
                ApiCode::LeaseLost,
            ),
            (
                409,
                r#"{"error":"duplicate_source","duplicate":{"id":"07070707-0707-0707-0707-070707070707"}}"#,
                true,
                ApiCode::DuplicateSource(Some(id)),
            ),
            (
                409,
                r#"{"error":"duplicate_source"}"#,
                true,
                ApiCode::DuplicateSource(None),
            ),
            (
                409,
                r#"{"code":"PT409","message":"a user has at most 1000 documents","hint":"too_many_documents"}"#,
                true,
                ApiCode::UserLimit("too_many_documents".to_owned()),
            ),
            (
                429,
                r#"{"code":"PT429","message":"a user has at most 8 documents in flight","hint":"too_many_uploads"}"#,
                true,
                ApiCode::UserLimit("too_many_uploads".to_owned()),
            ),
            (409, "{}", true, ApiCode::Conflict),
            (413, "", true, ApiCode::TooLarge),
            (429, "", false, ApiCode::Unavailable),
            (503, "", true, ApiCode::Unavailable),
            (408, "", true, ApiCode::Unavailable),
            (418, "", true, ApiCode::Other),
        ];
        for (status, body, service, code) in cases {
            assert_eq!(
                ApiCode::read(status, body, service),
                code,
                "{status} {body}"
            );
        }
    }
}
