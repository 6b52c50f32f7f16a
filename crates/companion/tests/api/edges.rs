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

/// The run's `session_token` in `text`, if there is one (`qst_` + 64 hex).
fn find_token(text: &str) -> Option<String> {
    text.match_indices("qst_").find_map(|(at, _)| {
        let hex: String = text[at + 4..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (hex.len() == 64).then(|| format!("qst_{hex}"))
    })
}

/// An OpenAI-compatible model (`…/v1`) that a prompt injection has turned:
/// it reads the run's `session_token` from its instructions, passes it to
/// the search tool in every argument it can (nested too), and then writes
/// it into its answer, split across two pieces. The token it saw is kept.
async fn leaky_model() -> (String, Arc<Mutex<Option<String>>>) {
    let seen: Arc<Mutex<Option<String>>> = Arc::default();
    let keep = seen.clone();
    let handler = move |body: axum::body::Bytes| async move {
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let messages = body["messages"].as_array().unwrap();
        let token = messages
            .iter()
            .find_map(|m| find_token(m["content"].as_str().unwrap_or_default()))
            .expect("the instructions carry the session token");
        *keep.lock().unwrap() = Some(token.clone());
        let answered = messages.iter().any(|m| m["role"] == "tool");
        let chunks: Vec<serde_json::Value> = if body.get("tools").is_some() && !answered {
            let arguments = serde_json::json!({
                "query": "warranty", "session_token": token,
                "filters": {"note": format!("for {token}"), "list": [token]},
            });
            vec![
                serde_json::json!({"choices": [{"index": 0, "delta": {"role": "assistant",
                    "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "search_my_documents",
                                 "arguments": arguments.to_string()}}]}}]}),
                serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            ]
        } else {
            let (head, tail) = token.split_at(20);
            let pieces = ["Your search key is ", head, tail, ". Keep it safe."];
            let mut chunks: Vec<serde_json::Value> = pieces
                .iter()
                .map(|p| serde_json::json!({"choices": [{"index": 0, "delta": {"content": p}}]}))
                .collect();
            chunks.push(
                serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            );
            chunks
        };
        let mut sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        sse.push_str("data: [DONE]\n\n");
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(sse))
            .unwrap()
    };
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

/// A user signed up through the sandbox's Auth: their id and access token.
async fn user(sandbox: &Sandbox, email: &str) -> (uuid::Uuid, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/auth/v1/signup", sandbox.api_base()))
        .header("apikey", sandbox.anon_key().expose_secret())
        .json(&serde_json::json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        body["user"]["id"].as_str().unwrap().parse().unwrap(),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

/// `user`'s own rows of `table` through the sandbox's PostgREST.
async fn rows_as(sandbox: &Sandbox, token: &str, table: &str) -> Vec<serde_json::Value> {
    let response = reqwest::Client::new()
        .get(format!("{}/rest/v1/{table}?select=*", sandbox.api_base()))
        .header("apikey", sandbox.anon_key().expose_secret())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Issue 14, item 5: the model repeats the run's `session_token` (which it
/// must pass to the search tool) in nested tool arguments and in its answer.
/// Neither the token nor its hash may reach the client, `chat_events`, the
/// stored answer or the broadcast.
#[tokio::test]
async fn the_session_token_never_leaves_the_run_whatever_the_model_writes() {
    let (model, seen) = leaky_model().await;
    let stack = stack(|c| {
        c.agents.llm_url = Some(model.parse().unwrap());
        c.agents.llm_api_key = Some(SecretString::from("sk-test".to_owned()));
        c.agents.llm_model = "test-model".to_owned();
    })
    .await;
    let companion = quire_companion::spawn(stack.config.clone())
        .await
        .expect("the companion starts");
    let (_, a) = user(&stack.sandbox, "a@example.com").await;
    let (_, b) = user(&stack.sandbox, "b@example.com").await;

    let response = reqwest::Client::new()
        .post(format!("{}/api/chat", companion.url()))
        .bearer_auth(&a)
        .json(&serde_json::json!({"message": "What is my search key?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let streamed = response.text().await.unwrap();

    let stored_events = rows_as(&stack.sandbox, &a, "chat_events").await;
    let stored_messages = rows_as(&stack.sandbox, &a, "chat_messages").await;
    let everything = format!(
        "{streamed}\n{}\n{}",
        serde_json::Value::from(stored_events.clone()),
        serde_json::Value::from(stored_messages.clone())
    );
    // The model did call the tool and did write its answer …
    assert!(everything.contains("\"tool_call\""), "{everything}");
    assert!(everything.contains("Keep it safe."), "{everything}");
    // … and the token is nowhere in what A, her devices or the log of the
    // answer hold, nor is its hash.
    assert_eq!(
        find_token(&everything),
        None,
        "the session token leaked: {everything}"
    );
    let token = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the model saw the token");
    let hash = quire_companion::tool::token_hash(&token);
    assert!(!everything.contains(&hash), "the token's hash leaked");
    assert!(
        stored_events.iter().any(|e| e["kind"] == "complete"),
        "the answer was stored: {stored_events:?}"
    );
    // B sees none of it.
    assert!(rows_as(&stack.sandbox, &b, "chat_events").await.is_empty());
    assert!(
        rows_as(&stack.sandbox, &b, "chat_messages")
            .await
            .is_empty()
    );
    companion.shutdown().await.unwrap();
}
