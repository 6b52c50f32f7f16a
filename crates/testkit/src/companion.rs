//! The companion in front of the sandbox: starting it on a [`Stack`], and a
//! method per companion endpoint on [`Api`] (so a bench's parent can call a
//! companion running in its child too).

use std::time::{Duration, Instant};

use quire_companion::Companion;
use quire_companion::config::{Config, PlatformConfig};
use quire_companion::platform::Platform;
use quire_companion::provision::{self, Provisioned};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{Api, StackInfo, User, json_of};
use crate::sse::parse_sse;
use crate::{PATIENCE, Stack};

/// A companion a [`Stack`] started, with the configuration it started with.
pub(crate) struct Running {
    companion: Companion,
    config: Config,
}

impl Stack {
    /// Provisions Quire's agent and knowledge base on the sandbox and returns
    /// a companion configuration for them with test defaults (port 0, short
    /// ingest polls and lease, the sandbox's loopback tool URL allowed),
    /// talking to the platform at `platform_url` (the sandbox itself when
    /// `None`; a fault proxy in front of it, say).
    pub async fn provision_companion(&self, platform_url: Option<&str>) -> Config {
        let platform = PlatformConfig {
            api_url: platform_url
                .unwrap_or(self.sandbox.api_base())
                .parse()
                .expect("a platform URL"),
            anon_key: self.sandbox.anon_key().clone(),
            service_role_key: self.sandbox.service_role_key().clone(),
            timeouts: Default::default(),
        };
        let ids = provision::provision(&Platform::new(&platform).unwrap(), None)
            .await
            .expect("provisioning the agent and knowledge base");
        let mut config = Config::new(
            platform,
            self.sandbox.jwt_secret().clone(),
            ids.agent_id,
            ids.knowledge_base_id,
            SecretString::from(format!("tool-secret-{}", Uuid::new_v4().simple())),
        );
        test_defaults(&mut config);
        config
    }

    /// Starts the companion on port 0 with [`Stack::provision_companion`]'s
    /// configuration, changed by `adjust` first. The sandbox must allow
    /// loopback tool endpoints (as [`crate::Builder::companion`] makes it).
    pub async fn start_companion(
        &mut self,
        platform_url: Option<&str>,
        adjust: impl FnOnce(&mut Config),
    ) {
        let mut config = self.provision_companion(platform_url).await;
        adjust(&mut config);
        let companion = quire_companion::spawn(config.clone())
            .await
            .expect("the companion starts");
        let info = self.info_mut();
        info.companion_url = Some(companion.url());
        info.agent_id = Some(config.agent_id);
        info.knowledge_base_id = Some(config.knowledge_base_id);
        self.companion = Some(Running { companion, config });
    }

    fn running(&self) -> &Running {
        self.companion
            .as_ref()
            .expect("this stack has no companion (Stack::builder().with_companion())")
    }

    /// The running companion.
    pub fn companion(&self) -> &Companion {
        &self.running().companion
    }

    /// The companion's configuration (platform, keys, ids), to start more.
    pub fn companion_config(&self) -> &Config {
        &self.running().config
    }

    /// Quire's agent and knowledge base on the sandbox.
    pub fn ids(&self) -> Provisioned {
        let config = self.companion_config();
        Provisioned {
            agent_id: config.agent_id,
            knowledge_base_id: config.knowledge_base_id,
        }
    }

    /// The secret the platform sends to the companion's tool endpoint.
    pub fn tool_secret(&self) -> String {
        self.companion_config()
            .tool_secret
            .expose_secret()
            .to_owned()
    }
}

/// The test defaults of a companion: short ingest polls and lease, the
/// sandbox's loopback tool URL allowed.
fn test_defaults(config: &mut Config) {
    config.ingest.poll_initial = Duration::from_millis(20);
    config.ingest.poll_max = Duration::from_millis(300);
    config.ingest.idle_poll = Duration::from_millis(200);
    config.ingest.lease = Duration::from_secs(10);
    // The sandbox allows loopback tool endpoints; the real platform does not.
    config.dev_allow_private_tool_url = true;
}

/// A companion configuration with test defaults for the stack `info`
/// describes (already provisioned: its agent and knowledge base) and the
/// tool secret its first companion registered: a replica's
/// ([`crate::serve::Served::replica`]).
pub(crate) fn config_for(info: &StackInfo, tool_secret: &str) -> Config {
    let platform = PlatformConfig {
        api_url: info.api_url.parse().expect("a platform URL"),
        anon_key: SecretString::from(info.anon_key.clone()),
        service_role_key: SecretString::from(info.service_role_key.clone()),
        timeouts: Default::default(),
    };
    let mut config = Config::new(
        platform,
        SecretString::from(info.jwt_secret.clone()),
        info.agent_id.expect("a provisioned agent"),
        info.knowledge_base_id
            .expect("a provisioned knowledge base"),
        SecretString::from(tool_secret.to_owned()),
    );
    test_defaults(&mut config);
    config
}

impl Api {
    fn companion_base(&self) -> &str {
        self.companion_url()
            .expect("this stack has no companion (Stack::builder().with_companion())")
    }

    /// A request to the companion's `path` with `bearer`.
    pub fn companion_request(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
    ) -> RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}{path}", self.companion_base()));
        match bearer {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `POST /api/chat` as `user`, the response unread.
    pub async fn chat_response(&self, user: &User, body: &Value) -> Response {
        self.companion_request(Method::POST, "/api/chat", Some(&user.token))
            .json(body)
            .send()
            .await
            .expect("POST /api/chat")
    }

    /// `POST /api/chat` as `user`, read to its end: the events (panics unless
    /// a 200 event stream).
    pub async fn ask(&self, user: &User, body: &Value) -> Vec<Value> {
        let response = self.chat_response(user, body).await;
        let status = response.status();
        if status != StatusCode::OK {
            panic!(
                "ask: {status} {}",
                response.text().await.unwrap_or_default()
            );
        }
        let kind = response.headers()["content-type"].to_str().unwrap_or("");
        assert!(kind.starts_with("text/event-stream"), "ask answered {kind}");
        parse_sse(&response.text().await.expect("the answer's body"))
    }

    /// `POST /api/documents` as `user`.
    pub async fn register(&self, user: &User, body: &Value) -> (StatusCode, Value) {
        self.companion_json(Method::POST, "/api/documents", user, Some(body))
            .await
    }

    /// `POST /api/documents/{id}/ingest` as `user`.
    pub async fn ingest(&self, user: &User, id: &str) -> (StatusCode, Value) {
        let path = format!("/api/documents/{id}/ingest");
        self.companion_json(Method::POST, &path, user, None).await
    }

    /// `DELETE /api/documents/{id}` as `user`.
    pub async fn delete_document(&self, user: &User, id: &str) -> (StatusCode, Value) {
        let path = format!("/api/documents/{id}");
        self.companion_json(Method::DELETE, &path, user, None).await
    }

    /// `POST /api/chat/{message_id}/stop` as `user`.
    pub async fn stop(&self, user: &User, message_id: &str) -> (StatusCode, Value) {
        let path = format!("/api/chat/{message_id}/stop");
        self.companion_json(Method::POST, &path, user, None).await
    }

    /// The companion's tool endpoint with `secret` (none when `None`) and `body`.
    pub async fn call_tool(&self, secret: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let request = self
            .companion_request(Method::POST, "/internal/tools/search-documents", secret)
            .json(body);
        json_of(request.send().await.expect("the tool endpoint")).await
    }

    async fn companion_json(
        &self,
        method: Method,
        path: &str,
        user: &User,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.companion_request(method, path, Some(&user.token));
        if let Some(body) = body {
            request = request.json(body);
        }
        json_of(request.send().await.expect("the companion answers")).await
    }

    /// Registers, uploads and asks to ingest a PDF as `user`; returns the
    /// document's id.
    pub async fn upload(&self, user: &User, title: &str, bytes: Vec<u8>) -> Uuid {
        let body = json!({"title": title, "byte_size": bytes.len()});
        let (status, body) = self.register(user, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["document_id"].as_str().unwrap().to_owned();
        let path = body["storage_path"].as_str().unwrap().to_owned();
        assert_eq!(path, format!("{}/{id}.pdf", user.id));
        assert_eq!(self.put_object(user, &path, bytes).await, StatusCode::OK);
        let (status, body) = self.ingest(user, &id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        id.parse().unwrap()
    }

    /// Uploads and waits for `ready`.
    pub async fn ready_document(&self, user: &User, title: &str, bytes: Vec<u8>) -> Uuid {
        let id = self.upload(user, title, bytes).await;
        let (status, error) = self.wait_document(id).await;
        assert_eq!(status, "ready", "{title}: {error:?}");
        id
    }

    /// A document's status and error, read from the database.
    pub async fn document_status(&self, id: Uuid) -> Option<(String, Option<String>)> {
        self.connect_db()
            .await
            .query_opt(
                "select status, error from public.documents where id = $1",
                &[&id],
            )
            .await
            .expect("reading a document")
            .map(|r| (r.get(0), r.get(1)))
    }

    /// Waits until the document reaches a final status; returns it and its error.
    pub async fn wait_document(&self, id: Uuid) -> (String, Option<String>) {
        let db = self.connect_db().await;
        let started = Instant::now();
        loop {
            let row = db
                .query_opt(
                    "select status, error from public.documents where id = $1",
                    &[&id],
                )
                .await
                .expect("reading a document")
                .expect("the document exists");
            let status: String = row.get(0);
            if matches!(status.as_str(), "ready" | "no_text" | "failed") {
                return (status, row.get(1));
            }
            assert!(
                started.elapsed() < PATIENCE,
                "document {id} is still {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the answer's row is no longer `streaming`; returns its
    /// status and content.
    pub async fn wait_message(&self, id: Uuid) -> (String, String) {
        let db = self.connect_db().await;
        let started = Instant::now();
        loop {
            let row = db
                .query_one(
                    "select status, content from public.chat_messages where id = $1",
                    &[&id],
                )
                .await
                .expect("reading an answer");
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
}
