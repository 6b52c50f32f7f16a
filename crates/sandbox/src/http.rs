//! HTTP plumbing shared by every service: request ids, request logs that
//! never show a credential, and the catch-all answers.

use std::fmt;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

/// Header carrying the request id (set when the client sent none, echoed back).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request headers whose values are credentials.
pub const SENSITIVE_REQUEST_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("apikey"),
    HeaderName::from_static("x-api-key"),
];

/// Response headers whose values can carry credentials (`Location` carries
/// PKCE codes and, in the implicit flow, tokens).
pub const SENSITIVE_RESPONSE_HEADERS: [HeaderName; 2] = [header::SET_COOKIE, header::LOCATION];

/// Shows a header map with every credential replaced by `[redacted]`.
pub struct RedactedHeaders<'a>(pub &'a HeaderMap);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if value.is_sensitive()
                || SENSITIVE_REQUEST_HEADERS.contains(name)
                || SENSITIVE_RESPONSE_HEADERS.contains(name)
            {
                map.entry(&name.as_str(), &"[redacted]");
            } else {
                map.entry(&name.as_str(), &value.to_str().unwrap_or("[non-ascii]"));
            }
        }
        map.finish()
    }
}

/// Gives each request an id (kept from `x-request-id` when the client sent a
/// sane one), logs one line per request — method, path (never the query
/// string, which may hold tokens), status and latency — and echoes the id.
/// Headers are logged at `trace` level only, redacted.
pub async fn log_requests(mut request: Request, next: Next) -> Response {
    let start = Instant::now();
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    );
    tracing::trace!(parent: &span, headers = ?RedactedHeaders(request.headers()), "request headers");

    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(parent: &span, status = status.as_u16(), latency_ms, "request failed");
    } else {
        tracing::info!(parent: &span, status = status.as_u16(), latency_ms, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The request id [`log_requests`] assigned (for error ids in 5xx bodies).
pub fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok())
}

/// A JSON response with `status`.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(bytes),
    )
        .into_response()
}

/// Kong's answer for a path no service serves.
pub async fn no_route() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &serde_json::json!({"message": "no Route matched with those values"}),
    )
}

/// The answer to a handler that panicked (the panic itself is logged).
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "a handler panicked");
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &serde_json::json!({"message": "Internal Server Error"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "Bearer eyJ.secret.token".parse().unwrap(),
        );
        headers.insert("apikey", "eyJ.anon.key".parse().unwrap());
        headers.insert(header::COOKIE, "sb=abc".parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let shown = format!("{:?}", RedactedHeaders(&headers));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!shown.contains("anon.key"), "{shown}");
        assert!(!shown.contains("sb=abc"), "{shown}");
        assert!(shown.contains("application/json"), "{shown}");
    }
}
