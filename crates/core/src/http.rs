//! The one HTTP client every part of the core shares, and the mapping of
//! each service's error shape to [`Error`].
//!
//! Error shapes (docs/platform/supabase.md §3.6, §4.2, §5.4):
//! GoTrue `{code, error_code, msg}` or `{code, message}`; PostgREST
//! `{code, message, details, hint}`; Storage `{statusCode, error, message}`
//! with the real status in `statusCode` (HTTP is usually 400); TUS a plain
//! text body with the real status; the companion `{error, code?}`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::Value;

use quire_protocol::ErrorBody;

use crate::config::Config;
use crate::error::{Error, ErrorCode, Service};

/// How long a plain request (not a stream, not an upload) may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared client and the project configuration.
#[derive(Clone)]
pub(crate) struct Api {
    pub http: reqwest::Client,
    pub config: Arc<Config>,
}

impl Api {
    pub fn new(config: Config) -> Api {
        let http = reqwest::Client::builder()
            .redirect(same_origin_redirects())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("quire-core/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend initializes");
        Api {
            http,
            config: Arc::new(config),
        }
    }

    /// `<api_url><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_base())
    }

    /// `<companion_url><path>`.
    pub fn companion_url(&self, path: &str) -> String {
        format!("{}{path}", self.config.companion_base())
    }

    pub fn anon_key(&self) -> &str {
        &self.config.anon_key
    }
}

/// Redirects are followed within the origin that was called, and no
/// further: a 307/308 re-sends the body (a password, a refresh token) and
/// reqwest keeps `apikey` across hosts. A redirect elsewhere comes back as
/// the 3xx itself, which [`check`] turns into an error.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let called = attempt.previous().first().map(reqwest::Url::origin);
        if attempt.previous().len() > 10 {
            attempt.error("too many redirects")
        } else if called == Some(attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Sends a request, turning transport failures into [`Error::Offline`].
pub(crate) async fn send(
    service: Service,
    request: reqwest::RequestBuilder,
) -> Result<Response, Error> {
    request.send().await.map_err(|e| Error::offline(service, e))
}

/// A successful response's JSON, or the service's error.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(
    service: Service,
    response: Response,
) -> Result<T, Error> {
    let response = check(service, response).await?;
    let text = response
        .text()
        .await
        .map_err(|e| Error::offline(service, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::unexpected(
            service,
            format!("an answer that is not the expected JSON: {e}"),
            &text,
        )
    })
}

/// The response when its status is a success, else the service's error.
pub(crate) async fn check(service: Service, response: Response) -> Result<Response, Error> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(error_from(service, status, &body))
}

/// A service's error body as an [`Error`].
pub(crate) fn error_from(service: Service, status: StatusCode, body: &str) -> Error {
    let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    // Storage answers 400 with the real status in `statusCode` (a string).
    let status = match json.get("statusCode") {
        Some(Value::String(s)) => s
            .parse::<u16>()
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(status),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(status),
        _ => status,
    };
    let message = message_of(&json).unwrap_or_else(|| {
        let text = body.trim();
        if text.is_empty() || text.len() > 300 {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text.to_owned()
        }
    });
    // The companion names its error; a code Quire knows decides what the UI
    // is told (ErrorCode::for_companion), else the status does.
    let named = match service {
        Service::Companion => serde_json::from_value::<ErrorBody>(json)
            .ok()
            .and_then(|body| ErrorCode::for_companion(&body.error)),
        _ => None,
    };
    match named.unwrap_or_else(|| ErrorCode::for_status(status.as_u16())) {
        ErrorCode::NotSignedIn => Error::NotSignedIn,
        ErrorCode::Forbidden => Error::Forbidden { service, message },
        ErrorCode::NotFound => Error::NotFound {
            what: match service {
                Service::Storage => "file".into(),
                _ => "item".into(),
            },
        },
        ErrorCode::Conflict => Error::Conflict { service, message },
        ErrorCode::BadInput if status == StatusCode::PAYLOAD_TOO_LARGE => Error::BadInput {
            service,
            message: format!("the file is larger than {service} accepts ({message})"),
        },
        ErrorCode::BadInput => Error::BadInput { service, message },
        ErrorCode::RateLimited => Error::RateLimited { service },
        ErrorCode::PlatformUnavailable => Error::PlatformUnavailable {
            service,
            status: status.as_u16(),
            body: crate::error::cut(body),
        },
        _ => Error::unexpected(service, format!("HTTP {}", status.as_u16()), body),
    }
}

/// The human message of any of the services' error shapes, as supabase-js
/// reads it: `msg`, `message`, `error_description`, `error`.
pub(crate) fn message_of(json: &Value) -> Option<String> {
    ["msg", "message", "error_description", "error"]
        .iter()
        .find_map(|key| json.get(*key).and_then(Value::as_str))
        .map(str::to_owned)
}

/// GoTrue's machine code: `error_code`, or `code` when it is a string.
pub(crate) fn auth_code_of(json: &Value) -> Option<String> {
    json.get("error_code")
        .and_then(Value::as_str)
        .or_else(|| json.get("code").and_then(Value::as_str))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_use_the_status_in_the_body() {
        let body = r#"{"statusCode":"409","code":"Duplicate","error":"Duplicate","message":"The resource already exists"}"#;
        let error = error_from(Service::Storage, StatusCode::BAD_REQUEST, body);
        assert_eq!(error.code(), crate::ErrorCode::Conflict);
        let body = r#"{"statusCode":"403","error":"Unauthorized","message":"new row violates row-level security policy"}"#;
        let error = error_from(Service::Storage, StatusCode::BAD_REQUEST, body);
        assert_eq!(error.code(), crate::ErrorCode::Forbidden);
        assert!(error.to_string().contains("row-level security"), "{error}");
    }

    #[test]
    fn postgrest_and_gotrue_messages_are_kept() {
        let body = r#"{"code":"22P02","message":"invalid input syntax for type uuid","details":null,"hint":null}"#;
        let error = error_from(Service::Database, StatusCode::BAD_REQUEST, body);
        assert_eq!(error.code(), crate::ErrorCode::BadInput);
        assert!(
            error.to_string().contains("invalid input syntax"),
            "{error}"
        );
        let body = r#"{"code":400,"error_code":"validation_failed","msg":"bad"}"#;
        assert_eq!(
            auth_code_of(&serde_json::from_str(body).unwrap()).as_deref(),
            Some("validation_failed")
        );
    }

    #[test]
    fn each_companion_code_reaches_the_ui_as_its_status_would_say() {
        use quire_protocol::ErrorCode as Companion;
        // Every code with the status the companion answers it with
        // (crates/companion/EVENTS.md, "Errors before the stream").
        let answers = [
            (Companion::InvalidBody, 400),
            (Companion::EmptyMessage, 400),
            (Companion::TooManyChunks, 400),
            (Companion::InvalidTitle, 400),
            (Companion::InvalidSha256, 400),
            (Companion::EmptyFile, 422),
            (Companion::Unauthorized, 401),
            (Companion::AnonymousNotAllowed, 403),
            (Companion::NotFound, 404),
            (Companion::NotRunning, 409),
            (Companion::AnswerInProgress, 409),
            (Companion::NotUploaded, 409),
            (Companion::LimitReached, 409),
            (Companion::MessageTooLong, 413),
            (Companion::TooLarge, 413),
            (Companion::NotAPdf, 422),
            (Companion::SizeMismatch, 422),
            (Companion::RateLimited, 429),
            (Companion::Misconfigured, 500),
            (Companion::Internal, 500),
            (Companion::PlatformUnavailable, 502),
        ];
        for (code, status) in answers {
            let body = serde_json::json!({"error": code, "message": "m"}).to_string();
            let status = StatusCode::from_u16(status).unwrap();
            let error = error_from(Service::Companion, status, &body);
            assert_eq!(
                Some(error.code()),
                ErrorCode::for_companion(&code),
                "{code}"
            );
            assert_eq!(
                error.code(),
                ErrorCode::for_status(status.as_u16()),
                "{code}"
            );
        }
        // A code this version does not know: the status decides.
        let body = r#"{"error":"teapot","message":"short and stout"}"#;
        let error = error_from(Service::Companion, StatusCode::CONFLICT, body);
        assert_eq!(error.code(), ErrorCode::Conflict);
    }

    #[test]
    fn server_errors_keep_the_raw_body() {
        let error = error_from(
            Service::Companion,
            StatusCode::BAD_GATEWAY,
            "<html>upstream</html>",
        );
        match error {
            Error::PlatformUnavailable { status, body, .. } => {
                assert_eq!(status, 502);
                assert_eq!(body, "<html>upstream</html>");
            }
            other => panic!("{other:?}"),
        }
    }
}
