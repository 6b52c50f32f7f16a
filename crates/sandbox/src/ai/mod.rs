//! The AI service (`/api`): sources, knowledge bases, agents and runs, over
//! the `ai` schema, answering as the current platform does
//! (powabase-ai `auth.py`, `routes/`, `tasks/`; docs/platform-contract.md
//! lists what Quire depends on, with sources and the tests that pin it).
//!
//! Shared by every `/api` module:
//! - [`ApiError`], the `{"error": …}` envelope every failure is sent in;
//! - the gateway's `apikey` check ([`check_gateway_key`], Kong's `key-auth`)
//!   and the bearer-token extractors of `auth.py`: [`ApiCaller`] (`@require_user_auth`:
//!   the service key or a user's access token) and [`ServiceRole`]
//!   (`@require_service_role`: the service key only; a user token gets 403);
//! - [`JsonBody`], a request body parsed as JSON with the API's error shape;
//! - [`timestamp`], how the service writes times.
//!
//! Background work (extraction, indexing) runs in tasks of the server's
//! runtime; [`resume`] re-queues what a previous run left unfinished.

pub(crate) mod chunking;
pub(crate) mod extract;
pub(crate) mod knowledge_bases;
pub(crate) mod sources;
// The agents module (agents, tools, sessions, runs, streaming, the offline
// model) declares itself here:
pub mod agents;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::http::json_response;
use crate::jwt::{JwtError, bearer_token};
use crate::state::AppState;

/// Every `/api` route. Nested under `/api` by the server.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(sources::router())
        .merge(knowledge_bases::router())
        // Agents, tools, sessions and runs:
        .merge(agents::router())
        .fallback(not_found)
}

/// Re-queues the background work a previous run of the sandbox left
/// unfinished: sources still `pending`/`extracting`, indexed sources still
/// `pending`/`indexing`. Called once at start-up; failures are logged.
pub(crate) async fn resume(state: &AppState) {
    sources::resume_extractions(state).await;
    knowledge_bases::resume_indexing(state).await;
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not found")
}

/// A failed `/api` request: a status and the JSON body
/// `{"error": "<message>", …}`. Server errors are logged with their
/// cause and answered without it.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Map<String, Value>,
    /// Set for Flask's `abort(status, description=…)`: the service has no
    /// JSON error handler, so Werkzeug answers with its HTML error page.
    html_description: Option<String>,
}

impl ApiError {
    /// `{"error": message}` with `status`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(message.into()));
        ApiError {
            status,
            body,
            html_description: None,
        }
    }

    /// What Flask's `abort(status, description=…)` gives on the platform:
    /// Werkzeug's HTML error page (`text/html`), not JSON.
    pub(crate) fn werkzeug_abort(status: StatusCode, description: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Map::new(),
            html_description: Some(description.into()),
        }
    }

    /// 400 `{"error": message}`.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 `{"error": message}`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 401 `{"error": message}`.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403 `{"error": message}`.
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 500 `{"error": "Internal error"}`; `cause` (what was being attempted
    /// and why it failed) goes to the log only.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "/api request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
    }

    /// Kong's own 401 in front of the service: `{"message": …}`, no `error`.
    fn gateway(message: &str) -> Self {
        let mut body = Map::new();
        body.insert("message".into(), Value::String(message.into()));
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            body,
            html_description: None,
        }
    }

    /// Adds a field next to `error` (e.g. `code`, `message`, `duplicate`).
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.body.insert(key.into(), value.into());
        self
    }

    /// The HTTP status.
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self.html_description {
            Some(description) => werkzeug_page(self.status, &description),
            None => json_response(self.status, &self.body),
        }
    }
}

/// Werkzeug's `HTTPException.get_body()`: the status line as title and
/// heading, the escaped description as a paragraph.
fn werkzeug_page(status: StatusCode, description: &str) -> Response {
    let code = status.as_u16();
    let name = status.canonical_reason().unwrap_or("Error");
    let escaped = description
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;");
    let page = format!(
        "<!doctype html>\n<html lang=en>\n<title>{code} {name}</title>\n<h1>{name}</h1>\n<p>{escaped}</p>\n"
    );
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(err: tokio_postgres::Error) -> Self {
        ApiError::internal(format_args!("database: {err}"))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        ApiError::internal(format_args!("database pool: {err}"))
    }
}

/// The `403` text of `@require_service_role`.
pub(crate) const SERVICE_ROLE_REQUIRED: &str =
    "This endpoint requires the project's service role key";

/// Who called an `/api` route, as `@require_user_auth` decides.
#[derive(Debug, Clone)]
pub(crate) enum ApiCaller {
    /// The bearer was exactly the project's service-role key.
    ServiceRole,
    /// A user's access token: HS256, `aud` `authenticated`, `exp` and a UUID `sub`.
    User {
        /// `sub`.
        id: Uuid,
    },
}

impl ApiCaller {
    /// The user id, or `None` for the service role.
    pub(crate) fn user_id(&self) -> Option<Uuid> {
        match self {
            ApiCaller::ServiceRole => None,
            ApiCaller::User { id, .. } => Some(*id),
        }
    }

    /// True for the service role.
    pub(crate) fn is_service_role(&self) -> bool {
        matches!(self, ApiCaller::ServiceRole)
    }

    /// Authenticates the `Authorization` header. Only a bearer equal to the
    /// service key is the service role — a user token claiming
    /// `role: service_role` is still a user token and must pass the user checks.
    pub(crate) fn authenticate(
        state: &AppState,
        headers: &axum::http::HeaderMap,
    ) -> Result<Self, ApiError> {
        let token = api_bearer(headers)
            .ok_or_else(|| ApiError::unauthorized("Authorization header required"))?;
        let service_key = state.keys.service_role_key().expose_secret().as_bytes();
        if bool::from(token.as_bytes().ct_eq(service_key)) {
            return Ok(ApiCaller::ServiceRole);
        }
        let claims = state
            .jwt
            .verify(token)
            .map_err(|e| ApiError::unauthorized(token_error_text(&e)))?;
        let Some(sub) = claims.claims().get("sub") else {
            return Err(ApiError::unauthorized(
                r#"Invalid token: Token is missing the "sub" claim"#,
            ));
        };
        let audiences = claims.audiences();
        if claims.claims().get("aud").is_none() {
            return Err(ApiError::unauthorized(
                r#"Invalid token: Token is missing the "aud" claim"#,
            ));
        }
        if !audiences.contains(&"authenticated") {
            return Err(ApiError::unauthorized("Invalid token audience"));
        }
        let id = sub
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| ApiError::unauthorized("Invalid token: sub must be a user id"))?;
        Ok(ApiCaller::User { id })
    }
}

/// The bearer of `Authorization`, split on whitespace as the service does
/// (`header.split()`; anything but exactly `Bearer <token>` is missing).
fn api_bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(token) = bearer_token(headers) {
        return Some(token);
    }
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let mut parts = value.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(scheme), Some(token), None) if scheme.eq_ignore_ascii_case("bearer") => Some(token),
        _ => None,
    }
}

/// PyJWT's wording for a refused token, as the service reports it.
fn token_error_text(err: &JwtError) -> String {
    match err {
        JwtError::Expired => "Token has expired".into(),
        JwtError::BadSignature => "Invalid token: Signature verification failed".into(),
        JwtError::WrongAlgorithm(_) => {
            "Invalid token: The specified alg value is not allowed".into()
        }
        JwtError::NotYetValid => "Invalid token: The token is not yet valid (nbf)".into(),
        JwtError::MissingExpiry => r#"Invalid token: Token is missing the "exp" claim"#.into(),
        JwtError::Malformed(reason) => format!("Invalid token: {reason}"),
    }
}

/// Kong's `key-auth` in front of `/api`: the `apikey` header or query
/// parameter must be the anon or the service-role key. A user's JWT is not
/// a consumer key.
pub(crate) fn check_gateway_key(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    let from_query = || {
        url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .find(|(name, _)| name == "apikey")
            .map(|(_, value)| value.into_owned())
    };
    let given = match parts.headers.get("apikey") {
        Some(value) => value.to_str().ok().map(str::to_owned),
        None => from_query(),
    };
    let Some(given) = given else {
        return Err(ApiError::gateway("No API key found in request"));
    };
    let known = [state.keys.anon_key(), state.keys.service_role_key()];
    if known
        .iter()
        .any(|key| bool::from(key.expose_secret().as_bytes().ct_eq(given.as_bytes())))
    {
        Ok(())
    } else {
        Err(ApiError::gateway("Invalid authentication credentials"))
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_gateway_key(state, parts)?;
        ApiCaller::authenticate(state, &parts.headers)
    }
}

/// Extractor for `@require_service_role` routes: the bearer must be the
/// service-role key. No or a bad token ⇒ 401 as [`ApiCaller`]; a valid user
/// token ⇒ 403 [`SERVICE_ROLE_REQUIRED`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceRole;

impl FromRequestParts<AppState> for ServiceRole {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_gateway_key(state, parts)?;
        match ApiCaller::authenticate(state, &parts.headers)? {
            ApiCaller::ServiceRole => Ok(ServiceRole),
            // Platform 0.7 let user tokens through; emulated only on request.
            ApiCaller::User { .. } if state.config.agents.emulate_0_7_management_auth => {
                Ok(ServiceRole)
            }
            ApiCaller::User { .. } => Err(ApiError::forbidden(SERVICE_ROLE_REQUIRED)),
        }
    }
}

/// A JSON request body, as the service reads it (`request.get_json() or {}`):
/// an empty body is `{}`, anything that is not JSON is 400
/// `{"error":"Invalid JSON body"}`. Field validation is the handler's.
#[derive(Debug, Clone)]
pub(crate) struct JsonBody(pub Value);

impl JsonBody {
    /// The body as an object (`{}` for a non-object body).
    pub(crate) fn object(&self) -> Map<String, Value> {
        self.0.as_object().cloned().unwrap_or_default()
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(json!({})));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|_| ApiError::bad_request("Invalid JSON body"))
    }
}

/// A time as the service writes it: ISO 8601 with microseconds and `+00:00`
/// (Python's `datetime.isoformat()`).
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// Parses a path id; anything but a UUID is the resource's 404.
pub(crate) fn parse_id(raw: &str, not_found: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(not_found))
}

/// The `ilike` pattern for a list route's `q`: a substring match with `%`, `_` and `\` taken
/// literally; `None` when `q` is absent or empty.
pub(crate) fn contains_pattern(q: Option<String>) -> Option<String> {
    q.filter(|q| !q.is_empty()).map(|q| {
        let escaped: String = q
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("%{escaped}%")
    })
}

/// A list route's `order` parameter: `asc`, or `desc` by default (any case); anything else is
/// the platform's 400.
pub(crate) fn sort_direction(order: Option<&str>) -> Result<&'static str, ApiError> {
    match order.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("desc") => Ok("desc"),
        Some("asc") => Ok("asc"),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid order '{other}'. Valid: asc, desc"
        ))),
    }
}

/// `limit`/`offset` query values with the service's bounds: `limit` in
/// `1..=max` (default `default`), `offset ≥ 0`; anything else is 400.
pub(crate) fn page_bounds(
    limit: Option<&str>,
    offset: Option<&str>,
    default: i64,
    max: i64,
) -> Result<(i64, i64), ApiError> {
    let limit = match limit {
        None | Some("") => default,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit must be an integer between 1 and {max}"))
            })?,
    };
    let offset = match offset {
        None | Some("") => 0,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::bad_request("offset must be a non-negative integer"))?,
    };
    Ok((limit, offset))
}

/// The `ai` schema's data directory: `<data_dir>/ai`.
pub(crate) fn data_root(state: &AppState) -> std::path::PathBuf {
    state.config.data_dir.join("ai")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn bearer_is_split_on_whitespace() {
        let mut headers = HeaderMap::new();
        assert_eq!(api_bearer(&headers), None);
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer   abc ", Some("abc")),
            ("Bearer", None),
            ("Bearer a b", None),
            ("Token abc", None),
        ] {
            headers.insert(axum::http::header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(api_bearer(&headers), expected, "{value:?}");
        }
    }

    #[test]
    fn page_bounds_are_checked() {
        assert_eq!(page_bounds(None, None, 50, 200).unwrap(), (50, 0));
        assert_eq!(
            page_bounds(Some("200"), Some("5"), 50, 200).unwrap(),
            (200, 5)
        );
        assert!(page_bounds(Some("201"), None, 50, 200).is_err());
        assert!(page_bounds(Some("0"), None, 50, 200).is_err());
        assert!(page_bounds(None, Some("-1"), 50, 200).is_err());
    }

    #[test]
    fn timestamps_look_like_python_isoformat() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T12:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(at), "2024-05-01T12:00:00.500000+00:00");
    }
}
