//! The harness: [`spawn_app`] starts a real sandbox (in process, port 0, its
//! own database from `quire-testdb`), provisions Quire's agent and knowledge
//! base on it, and starts the companion on port 0 against it. [`TestApp`]
//! has one method per endpoint and the waits the tests need. Logs are
//! silent unless `TEST_LOG=1`.

use std::sync::Once;
use std::time::Duration;

use quire_companion::Companion;
use quire_companion::config::{Config, PlatformConfig};
use quire_companion::platform::Platform;
use quire_companion::provision::{self, Provisioned};
use quire_sandbox::Sandbox;
use quire_testdb::TestDb;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

/// Upper bound on any wait for background work (a hang guard, not a timing
/// assertion).
pub const PATIENCE: Duration = Duration::from_secs(90);

/// A sandbox, Quire's agent and knowledge base on it, a companion, a client.
pub struct TestApp {
    pub db: TestDb,
    pub sandbox: Sandbox,
    /// Kept alive for the test's duration.
    _companion: Companion,
    /// The companion's base URL.
    pub url: String,
    pub ids: Provisioned,
    pub tool_secret: String,
    pub client: reqwest::Client,
    /// The companion's configuration (platform, keys, ids), to start more.
    pub config: Config,
    /// The fault proxy, when the setup asked for one.
    pub proxy: Option<std::sync::Arc<crate::proxy::Proxy>>,
    _data_dir: TempDir,
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub token: String,
}

/// Settings of a test stack.
pub struct Setup {
    /// The offline model's pause between answer pieces (ms).
    pub token_delay_ms: u64,
    /// Adjusts the companion's configuration before it starts.
    pub companion: Box<dyn FnOnce(&mut Config) + Send>,
    /// Put a [`crate::proxy`] between the companion and the sandbox that
    /// cuts every `run/stream` after this many content deltas.
    pub cut_streams_after: Option<usize>,
    /// The sandbox plays a project whose agent model has no API key.
    pub model_without_key: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            token_delay_ms: 2,
            companion: Box::new(|_| {}),
            cut_streams_after: None,
            model_without_key: false,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Setup::default()).await
}

pub async fn spawn_app_with(setup: Setup) -> TestApp {
    init_logs();
    let db = TestDb::new().await;
    let data_dir = tempfile::tempdir().expect("a temp data directory");
    let mut sandbox_config = quire_sandbox::Config::new(data_dir.path(), db.url());
    sandbox_config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
    sandbox_config.agents.allow_loopback_tool_endpoints = true;
    sandbox_config.agents.token_delay_ms = setup.token_delay_ms;
    sandbox_config.agents.model_without_key = setup.model_without_key;
    let sandbox = quire_sandbox::spawn(sandbox_config)
        .await
        .expect("the sandbox starts");

    let (api_url, proxy) = match setup.cut_streams_after {
        Some(deltas) => {
            let (url, proxy) =
                crate::proxy::start_proxy(sandbox.api_base().to_owned(), deltas).await;
            (url, Some(proxy))
        }
        None => (sandbox.api_base().to_owned(), None),
    };
    let platform = PlatformConfig {
        api_url: api_url.parse().expect("a platform URL"),
        anon_key: sandbox.anon_key().clone(),
        service_role_key: sandbox.service_role_key().clone(),
    };
    let ids = provision::provision(&Platform::new(&platform).unwrap(), None)
        .await
        .expect("provisioning the agent and knowledge base");
    let tool_secret = format!("tool-secret-{}", Uuid::new_v4().simple());
    let mut config = Config::new(
        platform,
        sandbox.jwt_secret().clone(),
        ids.agent_id,
        ids.knowledge_base_id,
        SecretString::from(tool_secret.clone()),
    );
    config.ingest.poll_initial = Duration::from_millis(20);
    config.ingest.poll_max = Duration::from_millis(300);
    config.ingest.idle_poll = Duration::from_millis(200);
    config.ingest.lease = Duration::from_secs(10);
    // The sandbox allows loopback tool endpoints; the real platform does not.
    config.dev_allow_private_tool_url = true;
    (setup.companion)(&mut config);
    let companion = quire_companion::spawn(config.clone())
        .await
        .expect("the companion starts");
    TestApp {
        url: companion.url(),
        db,
        sandbox,
        _companion: companion,
        ids,
        tool_secret,
        client: reqwest::Client::new(),
        config,
        proxy,
        _data_dir: data_dir,
    }
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info,quire_companion=debug".into()),
                )
                .with_test_writer()
                .try_init();
        }
    });
}

/// A response's status and JSON body (`Null` when not JSON).
pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Three pages with known facts on known pages.
pub const MANUAL: [&str; 3] = [
    "The X200 blender has a 1200 W motor.\nIt ships with two glass jars.",
    "Cleaning: rinse the jars with warm water after every use.\nNever put the motor base in water.",
    "Warranty: the motor is covered for five years.\nThe jars are covered for one year only.",
];

impl TestApp {
    pub fn anon_key(&self) -> String {
        self.sandbox.anon_key().expose_secret().to_owned()
    }

    pub fn service_key(&self) -> String {
        self.sandbox.service_role_key().expose_secret().to_owned()
    }

    /// Signs `claims` with the project secret (HS256).
    pub fn sign(&self, claims: &impl Serialize) -> String {
        quire_sandbox::jwt::JwtKeys::new(self.sandbox.jwt_secret()).sign(claims)
    }

    /// A new user, signed up through the sandbox's Auth.
    pub async fn user(&self, email: &str) -> TestUser {
        let response = self
            .client
            .post(format!("{}/auth/v1/signup", self.sandbox.api_base()))
            .header("apikey", self.anon_key())
            .json(&json!({"email": email, "password": "correct horse battery"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "signup of {email}: {body}");
        TestUser {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            token: body["access_token"].as_str().unwrap().to_owned(),
        }
    }

    /// A request to the companion with `bearer`.
    pub fn companion(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.url));
        match bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `POST /api/chat`, the response unread.
    pub async fn chat_response(&self, user: &TestUser, body: &Value) -> Response {
        self.companion(Method::POST, "/api/chat", Some(&user.token))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST /api/chat`, read to its end: the events (panics unless 200).
    pub async fn ask(&self, user: &TestUser, body: &Value) -> Vec<Value> {
        let response = self.chat_response(user, body).await;
        let status = response.status();
        if status != StatusCode::OK {
            panic!(
                "ask: {status} {}",
                response.text().await.unwrap_or_default()
            );
        }
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        parse_sse(&response.text().await.unwrap())
    }

    /// `POST /api/documents`.
    pub async fn register(&self, user: &TestUser, body: &Value) -> (StatusCode, Value) {
        json_of(
            self.companion(Method::POST, "/api/documents", Some(&user.token))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Uploads `bytes` to Storage as `user` at `storage_path`.
    pub async fn put_object(
        &self,
        user: &TestUser,
        storage_path: &str,
        bytes: Vec<u8>,
    ) -> StatusCode {
        self.client
            .post(format!(
                "{}/storage/v1/object/documents/{storage_path}",
                self.sandbox.api_base()
            ))
            .header("apikey", self.anon_key())
            .bearer_auth(&user.token)
            .header("content-type", "application/pdf")
            .body(bytes)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `POST /api/documents/{id}/ingest`.
    pub async fn ingest(&self, user: &TestUser, id: &str) -> (StatusCode, Value) {
        json_of(
            self.companion(
                Method::POST,
                &format!("/api/documents/{id}/ingest"),
                Some(&user.token),
            )
            .send()
            .await
            .unwrap(),
        )
        .await
    }

    /// `DELETE /api/documents/{id}`.
    pub async fn delete_document(&self, user: &TestUser, id: &str) -> (StatusCode, Value) {
        json_of(
            self.companion(
                Method::DELETE,
                &format!("/api/documents/{id}"),
                Some(&user.token),
            )
            .send()
            .await
            .unwrap(),
        )
        .await
    }

    /// `POST /api/chat/{id}/stop`.
    pub async fn stop(&self, user: &TestUser, message_id: &str) -> (StatusCode, Value) {
        json_of(
            self.companion(
                Method::POST,
                &format!("/api/chat/{message_id}/stop"),
                Some(&user.token),
            )
            .send()
            .await
            .unwrap(),
        )
        .await
    }

    /// Registers, uploads and asks to ingest a PDF; returns the document id.
    pub async fn upload(&self, user: &TestUser, title: &str, bytes: Vec<u8>) -> Uuid {
        let (status, body) = self
            .register(user, &json!({"title": title, "byte_size": bytes.len()}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["document_id"].as_str().unwrap().to_owned();
        let path = body["storage_path"].as_str().unwrap().to_owned();
        assert_eq!(path, format!("{}/{id}.pdf", user.id));
        assert_eq!(self.put_object(user, &path, bytes).await, StatusCode::OK);
        let (status, body) = self.ingest(user, &id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        id.parse().unwrap()
    }

    /// A document's status, read directly from the database.
    pub async fn document_status(&self, id: Uuid) -> Option<(String, Option<String>)> {
        self.db
            .admin()
            .await
            .query_opt(
                "select status, error from public.documents where id = $1",
                &[&id],
            )
            .await
            .unwrap()
            .map(|r| (r.get(0), r.get(1)))
    }

    /// Waits until the document reaches a final status; returns it and its error.
    pub async fn wait_document(&self, id: Uuid) -> (String, Option<String>) {
        let started = std::time::Instant::now();
        loop {
            let (status, error) = self.document_status(id).await.expect("the document exists");
            if matches!(status.as_str(), "ready" | "no_text" | "failed") {
                return (status, error);
            }
            assert!(
                started.elapsed() < PATIENCE,
                "document {id} is still {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Uploads and waits for `ready`.
    pub async fn ready_document(&self, user: &TestUser, title: &str, bytes: Vec<u8>) -> Uuid {
        let id = self.upload(user, title, bytes).await;
        let (status, error) = self.wait_document(id).await;
        assert_eq!(status, "ready", "{title}: {error:?}");
        id
    }

    /// `rpc/search_chunks` through the sandbox's PostgREST as `user`.
    pub async fn search(&self, user: &TestUser, query: &str) -> Vec<Value> {
        let response = self
            .client
            .post(format!(
                "{}/rest/v1/rpc/search_chunks",
                self.sandbox.api_base()
            ))
            .header("apikey", self.anon_key())
            .bearer_auth(&user.token)
            .json(&json!({"query": query}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    /// Waits until the answer's row is no longer `streaming`.
    pub async fn wait_message(&self, id: Uuid) -> (String, String) {
        let started = std::time::Instant::now();
        loop {
            let row = self
                .db
                .admin()
                .await
                .query_one(
                    "select status, content from public.chat_messages where id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            let status: String = row.get(0);
            if status != "streaming" {
                return (status, row.get(1));
            }
            assert!(
                started.elapsed() < PATIENCE,
                "answer {id} is still streaming"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Counts rows of `table` (admin).
    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn quire_testdb::tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.db
            .admin()
            .await
            .query_one(sql, params)
            .await
            .unwrap()
            .get(0)
    }

    /// The tool endpoint with `secret` (none when `None`) and `body`.
    pub async fn call_tool(&self, secret: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}/internal/tools/search-documents", self.url))
            .json(body);
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        json_of(request.send().await.unwrap()).await
    }
}

/// The events of a whole SSE body (the JSON of each `data:`), checking that
/// each frame's `event:` names its `kind`.
pub fn parse_sse(raw: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for frame in raw.split("\n\n") {
        let mut name = None;
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if data.is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
        assert_eq!(name.as_deref(), event["kind"].as_str(), "{frame}");
        events.push(event);
    }
    events
}

/// Reads an SSE response piece by piece, yielding events as they come.
pub struct SseReader {
    response: Response,
    buffer: String,
}

impl SseReader {
    pub fn new(response: Response) -> SseReader {
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut events = parse_sse(&frame);
                if let Some(event) = events.pop() {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream goes on")
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// `kind`s of events, in order.
pub fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// The one event of `kind`.
pub fn one<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let all: Vec<&Value> = events.iter().filter(|e| e["kind"] == kind).collect();
    assert_eq!(all.len(), 1, "one {kind} in {:?}", kinds(events));
    all[0]
}

/// The streamed text: the deltas concatenated.
pub fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["kind"] == "delta")
        .map(|e| e["payload"]["text"].as_str().unwrap())
        .collect()
}
