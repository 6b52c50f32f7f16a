//! Calling the platform: `/rest/v1` (PostgREST), `/storage/v1`, `/api` —
//! the only ways the companion reaches Powabase (ARCHITECTURE.md, "Code map").
//!
//! Two identities ([`Auth`]): the service role (`apikey` and bearer both the
//! service key, docs/platform/ai-api.md §1) for what only the companion
//! may do, and a user (anon `apikey`, the user's bearer) for everything that
//! must pass the user's row-level security — re-reading chunk ids,
//! conversations, documents, checking a Storage object.
//!
//! The client follows no redirects: a 3xx is an error, so neither key ever
//! travels to another origin.
//!
//! Errors ([`PlatformError`]) separate "could not reach it" from "it said
//! no", and keep the raw body of any unexpected answer. What a "no" means
//! is read once, when it arrives ([`ApiCode`]), and so is every event of a
//! run's stream ([`PlatformEvent`]): past this module the companion matches
//! on enums, not on the platform's JSON.

pub mod code;
pub mod events;
pub mod items;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{PlatformConfig, Timeouts};
use crate::metrics::Metrics;
pub use code::ApiCode;
pub use events::{PlatformCitation, PlatformEvent};
pub use items::ItemsPage;

/// Timeout of an ordinary (non-streaming) platform call: the default of
/// [`Timeouts::call`], which every call without a timeout of its own gets.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest silence of an answer, streams included: the default of
/// [`Timeouts::read`] (why two minutes: there).
pub const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Timeout of a download from Storage, in all: a document (up to the
/// bucket's 50 MiB) is read as it is sent on to the AI service, in the ten
/// minutes its upload there is given ([`Platform::send`]).
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Characters of an unexpected body kept in an error.
const BODY_KEPT: usize = 2000;

/// Who a call is made as.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// The service-role key: bypasses RLS; every `/api` route.
    Service,
    /// A user's access token (or one the companion signed for them).
    User(&'a str),
}

/// A platform call that failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// No answer: connection refused, reset, timed out.
    #[error("{what}: no answer from the platform: {source}")]
    Transport {
        /// The call, as `METHOD /path`.
        what: String,
        /// Why there was no answer.
        #[source]
        source: reqwest::Error,
    },
    /// An answer with an error status. For Storage, `status` is the real one
    /// from the body's `statusCode` (Storage answers most errors with HTTP
    /// 400, docs/platform/supabase.md §4.2).
    #[error("{what}: the platform answered {status}: {body}")]
    Status {
        /// The call, as `METHOD /path`.
        what: String,
        /// The effective status.
        status: u16,
        /// What the answer means ([`ApiCode::read`]).
        code: ApiCode,
        /// The body, cut to its first characters.
        body: String,
    },
    /// A success whose body is not what was expected.
    #[error("{what}: unexpected answer ({detail}): {body}")]
    Decode {
        /// The call, as `METHOD /path`.
        what: String,
        /// What was wrong with it.
        detail: String,
        /// The body, cut to its first characters.
        body: String,
    },
}

impl PlatformError {
    /// The (effective) HTTP status of a [`PlatformError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            PlatformError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What a [`PlatformError::Status`] means; `None` for the other kinds.
    pub fn code(&self) -> Option<&ApiCode> {
        match self {
            PlatformError::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Worth retrying later: no answer, 5xx, 429, 408 — and the service key
    /// refused ([`ApiCode::ServiceKeyRefused`]): the operator's to fix, not
    /// a reason to fail the work in flight (an alert is logged).
    pub fn is_transient(&self) -> bool {
        match self {
            PlatformError::Transport { .. } => true,
            PlatformError::Status { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || *status == 408
                    || *code == ApiCode::ServiceKeyRefused
            }
            PlatformError::Decode { .. } => false,
        }
    }

    /// The body of a [`PlatformError::Status`] as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        match self {
            PlatformError::Status { body, .. } => serde_json::from_str(body).ok(),
            _ => None,
        }
    }

    /// The `/api` error message (`{"error": …}`) or PostgREST's `message`.
    pub fn message(&self) -> Option<String> {
        let body = self.body_json()?;
        ["message", "error", "msg"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_str).map(str::to_owned))
    }
}

/// The platform client (cheap to clone).
#[derive(Clone)]
pub struct Platform {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every call: a total timeout unless the call sets its own, and a read
    /// (silence) timeout ([`Timeouts`]).
    http: reqwest::Client,
    /// Calls whose body is a stream (a document sent to the AI service): the
    /// total timeout only, as reqwest's read timeout also counts the time
    /// the body takes to send.
    uploads: reqwest::Client,
    base: String,
    anon_key: SecretString,
    service_key: SecretString,
    /// Where failed calls are counted, in a serving companion.
    metrics: Option<Arc<Metrics>>,
}

impl Platform {
    /// A client for `config`'s platform.
    pub fn new(config: &PlatformConfig) -> anyhow::Result<Platform> {
        Self::build(config, None)
    }

    /// A client that counts its failed calls in `metrics`.
    pub fn counted(config: &PlatformConfig, metrics: Arc<Metrics>) -> anyhow::Result<Platform> {
        Self::build(config, Some(metrics))
    }

    fn build(config: &PlatformConfig, metrics: Option<Arc<Metrics>>) -> anyhow::Result<Platform> {
        // No redirects: a redirected call would carry `apikey` (the service
        // key, for service calls) to wherever it points; reqwest drops only
        // `Authorization` across hosts. A 3xx is an error like any other.
        // Every call is bounded (issue 14 item 10): a platform that accepts
        // and never answers, or stops mid-answer, ends the call with a
        // `Transport` error instead of holding it for ever.
        let Timeouts {
            connect,
            call,
            read,
        } = config.timeouts;
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(connect)
                .timeout(call)
                .pool_idle_timeout(Duration::from_secs(30))
        };
        let http = builder().read_timeout(read).build()?;
        let uploads = builder().build()?;
        Ok(Platform {
            inner: Arc::new(Inner {
                http,
                uploads,
                base: config.base().to_owned(),
                anon_key: config.anon_key.clone(),
                service_key: config.service_role_key.clone(),
                metrics,
            }),
        })
    }

    /// The base URL (no trailing slash).
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// A request to `path` (starting with `/`) as `auth`, bounded by
    /// [`Timeouts::call`] unless it sets a `timeout` of its own, and by
    /// [`Timeouts::read`] whatever it sets; [`Platform::send`] gives the
    /// calls that stream longer bounds.
    pub fn request(&self, method: Method, path: &str, auth: Auth<'_>) -> RequestBuilder {
        let url = format!("{}{path}", self.inner.base);
        let (apikey, bearer) = match auth {
            Auth::Service => (
                self.inner.service_key.expose_secret(),
                self.inner.service_key.expose_secret(),
            ),
            Auth::User(token) => (self.inner.anon_key.expose_secret(), token),
        };
        self.inner
            .http
            .request(method, url)
            .header("apikey", apikey)
            .bearer_auth(bearer)
    }

    /// Sends `request`; a non-2xx answer becomes [`PlatformError::Status`].
    ///
    /// Calls that stream get their bounds here, so that no caller has to
    /// remember them: a download of a Storage object is given
    /// [`DOWNLOAD_TIMEOUT`] in all unless it set its own timeout (a
    /// document is read as it is sent on to the AI service), and a call whose
    /// body is a stream (a document's upload) goes without the read timeout,
    /// which would also count the time the body takes to send; it sets its
    /// own total timeout.
    pub async fn send(
        &self,
        what: &str,
        request: RequestBuilder,
    ) -> Result<Response, PlatformError> {
        let transport = |source| PlatformError::Transport {
            what: what.to_owned(),
            source,
        };
        let (client, request) = request.build_split();
        let mut request = request.map_err(transport)?;
        if request.timeout().is_none()
            && request.method() == Method::GET
            && request.url().path().contains("/storage/v1/object/")
        {
            *request.timeout_mut() = Some(DOWNLOAD_TIMEOUT);
        }
        let streamed_body = request.body().is_some_and(|b| b.as_bytes().is_none());
        let client = if streamed_body {
            self.inner.uploads.clone()
        } else {
            client
        };
        let as_service = self.is_service_call(&request);
        if let Some(metrics) = &self.inner.metrics {
            metrics.platform_request(service(request.url().path()));
        }
        let response = match client.execute(request).await {
            Ok(response) => response,
            Err(source) => return Err(self.count(transport(source))),
        };
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self.count(status_error(what, response, as_service).await))
    }

    /// Counts a failed call ([`crate::metrics`]) and hands the error on.
    fn count(&self, err: PlatformError) -> PlatformError {
        if let Some(metrics) = &self.inner.metrics {
            metrics.platform_error(&err);
        }
        err
    }

    /// Whether `request` carries the service key (its `apikey`).
    fn is_service_call(&self, request: &reqwest::Request) -> bool {
        request
            .headers()
            .get("apikey")
            .is_some_and(|key| key.as_bytes() == self.inner.service_key.expose_secret().as_bytes())
    }

    /// Sends `request` and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        what: &str,
        request: RequestBuilder,
    ) -> Result<T, PlatformError> {
        let response = self.send(what, request).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| PlatformError::Transport {
                what: what.to_owned(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            self.count(PlatformError::Decode {
                what: what.to_owned(),
                detail: e.to_string(),
                body: decoded_body(what, &bytes),
            })
        })
    }

    /// Sends `request`, ignoring the body.
    pub async fn call(&self, what: &str, request: RequestBuilder) -> Result<(), PlatformError> {
        self.send(what, request).await?;
        Ok(())
    }

    // ------------------------------------------------------------ PostgREST

    /// `GET /rest/v1/<table>?<query>` → rows.
    pub async fn select<T: DeserializeOwned>(
        &self,
        auth: Auth<'_>,
        table: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>, PlatformError> {
        let what = format!("GET /rest/v1/{table}");
        self.json(
            &what,
            self.request(Method::GET, &format!("/rest/v1/{table}"), auth)
                .query(query),
        )
        .await
    }

    /// `POST /rest/v1/<table>` with `Prefer: return=representation` → the
    /// inserted rows.
    pub async fn insert<T: DeserializeOwned>(
        &self,
        auth: Auth<'_>,
        table: &str,
        body: &impl Serialize,
    ) -> Result<Vec<T>, PlatformError> {
        let what = format!("POST /rest/v1/{table}");
        self.json(
            &what,
            self.request(Method::POST, &format!("/rest/v1/{table}"), auth)
                .header("Prefer", "return=representation")
                .json(body),
        )
        .await
    }

    /// `PATCH /rest/v1/<table>?<filters>` with `Prefer: return=representation`.
    pub async fn update<T: DeserializeOwned>(
        &self,
        auth: Auth<'_>,
        table: &str,
        filters: &[(&str, String)],
        body: &impl Serialize,
    ) -> Result<Vec<T>, PlatformError> {
        let what = format!("PATCH /rest/v1/{table}");
        self.json(
            &what,
            self.request(Method::PATCH, &format!("/rest/v1/{table}"), auth)
                .query(filters)
                .header("Prefer", "return=representation")
                .json(body),
        )
        .await
    }

    /// `DELETE /rest/v1/<table>?<filters>`.
    pub async fn delete(
        &self,
        auth: Auth<'_>,
        table: &str,
        filters: &[(&str, String)],
    ) -> Result<(), PlatformError> {
        let what = format!("DELETE /rest/v1/{table}");
        self.call(
            &what,
            self.request(Method::DELETE, &format!("/rest/v1/{table}"), auth)
                .query(filters),
        )
        .await
    }

    /// `POST /rest/v1/rpc/<function>` with named arguments → its JSON result
    /// (rows for a set-returning function, a scalar otherwise; `null` for
    /// `void`, which PostgREST answers with 204).
    pub async fn rpc<T: DeserializeOwned>(
        &self,
        auth: Auth<'_>,
        function: &str,
        args: &Value,
    ) -> Result<T, PlatformError> {
        let what = format!("POST /rest/v1/rpc/{function}");
        let response = self
            .send(
                &what,
                self.request(Method::POST, &format!("/rest/v1/rpc/{function}"), auth)
                    .json(args),
            )
            .await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|source| PlatformError::Transport {
                what: what.clone(),
                source,
            })?;
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| {
            self.count(PlatformError::Decode {
                detail: e.to_string(),
                body: decoded_body(&what, bytes),
                what,
            })
        })
    }
}

/// The platform service a path belongs to, as `/metrics` counts calls.
fn service(path: &str) -> &'static str {
    ["rest", "api", "storage", "auth"]
        .into_iter()
        .find(|s| {
            path.strip_prefix('/')
                .and_then(|p| p.strip_prefix(s))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .unwrap_or("other")
}

/// Reads an error answer into [`PlatformError::Status`]; `as_service` says
/// whether the call was made with the service key.
pub async fn status_error(what: &str, response: Response, as_service: bool) -> PlatformError {
    let http_status = response.status();
    let body = response.text().await.unwrap_or_default();
    let status = effective_status(http_status, &body);
    let code = ApiCode::read(status, &body, as_service);
    if code == ApiCode::ServiceKeyRefused {
        tracing::error!(
            what,
            status,
            "ALERT: the platform refused the service key; QUIRE_COMPANION_SERVICE_ROLE_KEY is \
             wrong or was rotated. Work in flight is retried until it is fixed."
        );
    }
    PlatformError::Status {
        what: what.to_owned(),
        status,
        code,
        body: kept(&without_row_contents(&body)),
    }
}

/// An error body as kept (and so logged): PostgREST's `details` name the
/// row that broke a constraint, with its values, so they are left out.
fn without_row_contents(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(mut fields)) if fields.contains_key("details") => {
            fields.remove("details");
            Value::Object(fields).to_string()
        }
        _ => body.to_owned(),
    }
}

/// The body of an answer that could not be read, as kept: PostgREST's
/// answers are rows, whose contents are never kept; other services' bodies
/// are, cut.
fn decoded_body(what: &str, bytes: &[u8]) -> String {
    if what.contains(" /rest/v1/") {
        format!("({} bytes of rows, not kept)", bytes.len())
    } else {
        kept(&String::from_utf8_lossy(bytes))
    }
}

/// Storage puts the real status in the body's `statusCode` (a string) and
/// answers HTTP 400 (docs/platform/supabase.md §4.2); other services use the
/// HTTP status.
fn effective_status(status: StatusCode, body: &str) -> u16 {
    if status == StatusCode::BAD_REQUEST
        && let Ok(json) = serde_json::from_str::<Value>(body)
        && let Some(code) = json
            .get("statusCode")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u16>().ok())
    {
        return code;
    }
    status.as_u16()
}

fn kept(body: &str) -> String {
    if body.chars().count() <= BODY_KEPT {
        body.to_owned()
    } else {
        let mut cut: String = body.chars().take(BODY_KEPT).collect();
        cut.push('…');
        cut
    }
}

/// `in.(a,b,c)` for a PostgREST filter.
pub fn in_list<T: std::fmt::Display>(values: &[T]) -> String {
    let joined: Vec<String> = values.iter().map(ToString::to_string).collect();
    format!("in.({})", joined.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_carry_their_real_status_in_the_body() {
        let body = r#"{"statusCode":"404","error":"not_found","message":"Object not found"}"#;
        assert_eq!(effective_status(StatusCode::BAD_REQUEST, body), 404);
        assert_eq!(effective_status(StatusCode::BAD_REQUEST, "{}"), 400);
        assert_eq!(effective_status(StatusCode::CONFLICT, body), 409);
    }

    #[test]
    fn transient_errors_are_told_apart() {
        let status = |s| PlatformError::Status {
            what: "x".into(),
            status: s,
            code: ApiCode::read(s, "", true),
            body: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(404).is_transient());
        assert!(!status(409).is_transient());
    }

    #[test]
    fn a_refused_service_key_is_retried_and_row_contents_are_never_kept() {
        let refused = PlatformError::Status {
            what: "x".into(),
            status: 401,
            code: ApiCode::read(401, "{}", true),
            body: String::new(),
        };
        assert!(refused.is_transient());
        let user = PlatformError::Status {
            what: "x".into(),
            status: 401,
            code: ApiCode::read(401, "{}", false),
            body: String::new(),
        };
        assert!(!user.is_transient());

        let conflict = r#"{"code":"23505","message":"duplicate key value","details":"Key (owner_id, sha256)=(7, secret-title) already exists.","hint":null}"#;
        let kept = without_row_contents(conflict);
        assert!(!kept.contains("secret-title"), "{kept}");
        assert!(kept.contains("duplicate key value"), "{kept}");
        assert_eq!(
            without_row_contents("<html>oops</html>"),
            "<html>oops</html>"
        );
        let rows = br#"[{"title": "My private diary"}]"#;
        let body = decoded_body("GET /rest/v1/documents", rows);
        assert!(!body.contains("diary"), "{body}");
        assert!(decoded_body("GET /api/tools", b"{\"tools\": 1}").contains("tools"));
    }

    #[test]
    fn messages_come_from_either_envelope() {
        let api = PlatformError::Status {
            what: "x".into(),
            status: 400,
            code: ApiCode::BadRequest,
            body: r#"{"error":"Source must be extracted first"}"#.into(),
        };
        assert_eq!(
            api.message().as_deref(),
            Some("Source must be extracted first")
        );
        let rest = PlatformError::Status {
            what: "x".into(),
            status: 409,
            code: ApiCode::LeaseLost,
            body: r#"{"code":"PT409","message":"ingest lease lost","details":null,"hint":null}"#
                .into(),
        };
        assert_eq!(rest.message().as_deref(), Some("ingest lease lost"));
    }
}
