//! Attacks on the companion's edges (issue 14): a platform that redirects,
//! a model that repeats the run's `session_token`, a service key that the
//! platform refuses for a while, a user token PostgREST refuses, an agent
//! with a knowledge base attached. Each test performs the attack against
//! a real sandbox and asserts what the attacker, the user and the other
//! user see.
//!
//! The stacks here are built by hand ([`stack`]) because each puts something
//! of its own between the companion and the sandbox: a [`front`] that
//! forwards to the sandbox but answers chosen requests itself, or a model
//! endpoint that plays a prompt-injected LLM.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use quire_companion::config::{Config, PlatformConfig};
use quire_companion::platform::Platform;
use quire_companion::provision;
use quire_sandbox::Sandbox;
use quire_testdb::TestDb;
use secrecy::{ExposeSecret as _, SecretString};
use tempfile::TempDir;

/// A sandbox with Quire's agent and knowledge base, and a companion
/// configuration for it (not started).
struct Stack {
    _db: TestDb,
    _dir: TempDir,
    sandbox: Sandbox,
    config: Config,
}

async fn stack(adjust: impl FnOnce(&mut quire_sandbox::Config)) -> Stack {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("a temp data directory");
    let mut sandbox_config = quire_sandbox::Config::new(dir.path(), db.url());
    sandbox_config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
    sandbox_config.agents.allow_loopback_tool_endpoints = true;
    sandbox_config.agents.token_delay_ms = 0;
    adjust(&mut sandbox_config);
    let sandbox = quire_sandbox::spawn(sandbox_config)
        .await
        .expect("the sandbox starts");
    let platform = PlatformConfig {
        api_url: sandbox.api_base().parse().expect("a platform URL"),
        anon_key: sandbox.anon_key().clone(),
        service_role_key: sandbox.service_role_key().clone(),
    };
    let ids = provision::provision(&Platform::new(&platform).unwrap(), None)
        .await
        .expect("provisioning the agent and knowledge base");
    let mut config = Config::new(
        platform,
        sandbox.jwt_secret().clone(),
        ids.agent_id,
        ids.knowledge_base_id,
        SecretString::from(format!("tool-secret-{}", uuid::Uuid::new_v4().simple())),
    );
    config.ingest.poll_initial = std::time::Duration::from_millis(20);
    config.ingest.poll_max = std::time::Duration::from_millis(300);
    config.ingest.idle_poll = std::time::Duration::from_millis(200);
    config.dev_allow_private_tool_url = true;
    Stack {
        _db: db,
        _dir: dir,
        sandbox,
        config,
    }
}

/// What a [`front`] answers itself: `Some` takes the request, `None` lets it
/// through to the sandbox.
type Intercept = Arc<dyn Fn(&Method, &str, &HeaderMap) -> Option<Response> + Send + Sync>;

struct Front {
    upstream: String,
    intercept: Intercept,
    http: reqwest::Client,
}

/// A server that forwards every request to `upstream` (streaming the
/// answer back) unless `intercept` answers it; its base URL.
async fn front(upstream: &str, intercept: Intercept) -> String {
    let front = Arc::new(Front {
        upstream: upstream.to_owned(),
        intercept,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    });
    let app = axum::Router::new().fallback(forward).with_state(front);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn forward(State(front): State<Arc<Front>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Some(answer) = (front.intercept)(&parts.method, &path, &parts.headers) {
        return answer;
    }
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut upstream = front
        .http
        .request(parts.method.clone(), format!("{}{path}", front.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .unwrap()
}

/// A request an attacker's server received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HeaderMap,
    body: String,
}

/// An attacker's server on another origin: records every request and
/// answers `{}`.
async fn attacker() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let log = log.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            log.lock().unwrap().push(Seen {
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            axum::Json(serde_json::json!({}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

/// `status` with `Location: to`.
fn redirect(status: u16, to: &str) -> Response {
    Response::builder()
        .status(status)
        .header("location", to)
        .body(Body::empty())
        .unwrap()
}

/// Issue 14, item 3: the platform (or whatever answers at its URL) redirects
/// the companion's calls to another origin. `reqwest` would follow, drop
/// `Authorization` and keep `apikey`, which carries the service key.
#[tokio::test]
async fn a_redirect_from_the_platform_never_carries_the_service_key_elsewhere() {
    let stack = stack(|_| {}).await;
    let (evil, seen) = attacker().await;
    let to = evil.clone();
    let front = front(
        stack.sandbox.api_base(),
        Arc::new(move |_, path, _| {
            path.starts_with("/api/tools")
                .then(|| redirect(307, &format!("{to}{path}")))
        }),
    )
    .await;
    let mut config = stack.config.clone();
    config.platform.api_url = front.parse().unwrap();

    let started = quire_companion::spawn(config).await;

    let service_key = stack.sandbox.service_role_key().expose_secret().to_owned();
    let seen = seen.lock().unwrap().clone();
    for request in &seen {
        let carried = request.body.contains(&service_key)
            || request
                .headers
                .values()
                .any(|v| v.to_str().is_ok_and(|v| v.contains(&service_key)));
        assert!(
            !carried,
            "{} reached {evil} with the service key",
            request.path
        );
    }
    assert!(
        seen.is_empty(),
        "nothing is sent to the other origin: {seen:?}"
    );
    let err = match started {
        Ok(companion) => {
            companion.shutdown().await.unwrap();
            panic!("the companion started although the platform only redirects");
        }
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("307"), "the operator learns why: {err}");
    assert!(!err.contains(&service_key), "{err}");
}
