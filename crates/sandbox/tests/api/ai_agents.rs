//! `/api/agents`, `/api/tools`, sessions and runs: the route split of the
//! current platform (service key vs a user's token), `run/stream` event by
//! event as powabase-ai's `routes/agents.py` streams them, the offline
//! model's answers and citations, custom HTTP tools (a tiny server on
//! loopback; endpoints the platform blocks, docs/platform-contract.md), and a
//! run that outlives its client.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use quire_sandbox::ai::agents::model::NOTHING_FOUND;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use quire_testkit::{Stack, json_of, spawn_sandbox_with};

const SERVICE_ONLY: &str = "This endpoint requires the project's service role key";
const ONLY_ONE: &str = "Only one of 'knowledge_bases', 'context_handler_id', 'context_override', or 'context_items' may be provided";

/// A sandbox that streams without pauses and lets tools call loopback.
async fn app() -> Stack {
    spawn_sandbox_with(|c| {
        c.agents.token_delay_ms = 0;
        c.agents.allow_loopback_tool_endpoints = true;
    })
    .await
}

/// Three context items from a blender manual, as Quire's companion sends them.
fn manual() -> Value {
    json!([
        {"text": "The X200 blender has a 1200 W motor. It ships with two jars.",
         "meta": {"chunk_id": "c-1", "document_id": "d-1", "page": 2, "title": "X200 manual"}},
        {"text": "The warranty covers the motor for five years. Jars are covered for one year.",
         "meta": {"chunk_id": "c-2", "document_id": "d-1", "page": 7, "title": "X200 manual"},
         "source_id": "dropped-by-the-platform"},
        {"text": "Clean the jars with warm water after every use.",
         "meta": {"chunk_id": "c-3", "document_id": "d-1", "page": 9, "title": "X200 manual"}}
    ])
}

async fn create_agent(app: &Stack, system_prompt: &str) -> String {
    let (status, body) = json_of(
        app.service(Method::POST, "/api/agents")
            .json(&json!({"name": "Quire", "system_prompt": system_prompt, "settings": {"temperature": 0}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Registers a custom tool at `endpoint` and assigns it to `agent`.
async fn add_tool(app: &Stack, agent: &str, name: &str, endpoint: &str, timeout_seconds: u64) {
    let (status, tool) = json_of(
        app.service(Method::POST, "/api/tools")
            .json(&json!({
                "name": name, "description": "Search the signed-in user's documents", "type": "http",
                "input_schema": {"type": "object", "properties": {
                    "query": {"type": "string"}, "session_token": {"type": "string"}},
                    "required": ["query", "session_token"]},
                "config": {"endpoint": endpoint, "method": "POST",
                           "headers": {"Authorization": "Bearer static-secret"},
                           "timeout_seconds": timeout_seconds}
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{tool}");
    let (status, body) = json_of(
        app.service(Method::POST, &format!("/api/agents/{agent}/tools"))
            .json(&json!({"tool_type": "custom", "tool_name": name, "tool_id": tool["id"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// A signed-up user: (access token, user id).
async fn user(app: &Stack, email: &str) -> (String, String) {
    let session = app.signed_up(email, "correct horse battery").await;
    (
        session["access_token"].as_str().unwrap().to_owned(),
        session["user"]["id"].as_str().unwrap().to_owned(),
    )
}

/// `POST path` with the service key (`bearer` `None`) or a user's token.
fn post(app: &Stack, path: &str, bearer: Option<&str>) -> reqwest::RequestBuilder {
    match bearer {
        None => app.service(Method::POST, path),
        Some(token) => app.request(Method::POST, path, Some(token)),
    }
}

/// A whole SSE response: its events (the JSON of each `data:` line) and its
/// comments, in order.
#[derive(Debug)]
struct Sse {
    events: Vec<Value>,
    comments: Vec<String>,
    raw: String,
}

impl Sse {
    fn parse(raw: String) -> Sse {
        let mut events = Vec::new();
        let mut comments = Vec::new();
        for frame in raw.split("\n\n").filter(|f| !f.is_empty()) {
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    events
                        .push(serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}")));
                } else if let Some(comment) = line.strip_prefix(':') {
                    comments.push(comment.trim().to_owned());
                } else {
                    panic!("unexpected SSE line {line:?} in {raw:?}");
                }
            }
        }
        Sse {
            events,
            comments,
            raw,
        }
    }

    fn names(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect()
    }

    fn one(&self, name: &str) -> &Value {
        let all: Vec<&Value> = self.events.iter().filter(|e| e["event"] == name).collect();
        assert_eq!(all.len(), 1, "exactly one {name} in {:?}", self.names());
        all[0]
    }

    fn deltas(&self) -> String {
        self.events
            .iter()
            .filter(|e| e["event"] == "content_delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect()
    }
}

/// `POST /api/agents/{agent}/run/stream`, read to its end: the response
/// headers and the events.
async fn stream(
    app: &Stack,
    agent: &str,
    bearer: Option<&str>,
    body: Value,
) -> (reqwest::header::HeaderMap, Sse) {
    let response = post(app, &format!("/api/agents/{agent}/run/stream"), bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    (headers, Sse::parse(response.text().await.unwrap()))
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

/// The `[n]` markers of an answer.
fn markers(content: &str) -> BTreeSet<String> {
    content
        .match_indices('[')
        .filter_map(|(i, _)| content[i + 1..].split(']').next())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_public_id(id: &Value, prefix: &str) -> bool {
    id.as_str().is_some_and(|s| {
        s.strip_prefix(prefix)
            .is_some_and(|hex| hex.len() == 12 && hex.chars().all(|c| c.is_ascii_hexdigit()))
    })
}

/// Polls `GET /api/agents/runs/{run_id}` (service key) until the run has
/// ended, for at most a minute.
async fn finished_run(app: &Stack, run_id: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, body) = json_of(
            app.service(Method::GET, &format!("/api/agents/runs/{run_id}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        if status == StatusCode::OK
            && matches!(body["status"].as_str(), Some("completed" | "failed"))
        {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run_id} did not finish; last answer: {last}");
}

/// What a custom tool endpoint does.
#[derive(Clone)]
enum Behaviour {
    Answer(Value),
    Fail,
    Slow(Duration),
}

/// The requests a tool endpoint received: headers and JSON body.
type ToolLog = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// A tool endpoint on 127.0.0.1; returns its URL and what it receives.
async fn tool_server(behaviour: Behaviour) -> (String, ToolLog) {
    let log: ToolLog = Arc::default();
    let seen = log.clone();
    let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
        let seen = seen.clone();
        let behaviour = behaviour.clone();
        async move {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            seen.lock().unwrap().push((headers, body));
            match behaviour {
                Behaviour::Answer(answer) => (axum::http::StatusCode::OK, answer.to_string()),
                Behaviour::Fail => (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "boom".to_owned(),
                ),
                Behaviour::Slow(pause) => {
                    tokio::time::sleep(pause).await;
                    (axum::http::StatusCode::OK, "too late".to_owned())
                }
            }
        }
    };
    let router = axum::Router::new().route("/tool", axum::routing::any(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/tool", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, log)
}

#[tokio::test]
async fn management_routes_refuse_user_tokens_with_the_platform_message() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let (token, _) = user(&app, "a@example.com").await;
    let some = uuid::Uuid::new_v4();
    let routes = [
        (
            Method::POST,
            "/api/agents".to_owned(),
            json!({"name": "mine"}),
        ),
        (Method::GET, "/api/agents".to_owned(), Value::Null),
        (Method::GET, format!("/api/agents/{agent}"), Value::Null),
        (
            Method::PATCH,
            format!("/api/agents/{agent}"),
            json!({"name": "x"}),
        ),
        (Method::DELETE, format!("/api/agents/{agent}"), Value::Null),
        (
            Method::POST,
            format!("/api/agents/{agent}/tools"),
            json!({"tool_type": "builtin", "tool_name": "web_search"}),
        ),
        (
            Method::GET,
            format!("/api/agents/{agent}/tools"),
            Value::Null,
        ),
        (Method::POST, "/api/tools".to_owned(), json!({})),
        (Method::GET, "/api/tools".to_owned(), Value::Null),
        (Method::GET, format!("/api/tools/{some}"), Value::Null),
        (
            Method::PUT,
            format!("/api/tools/{some}"),
            json!({"name": "x"}),
        ),
        (Method::DELETE, format!("/api/tools/{some}"), Value::Null),
        (
            Method::PATCH,
            format!("/api/agents/{agent}/tools/{some}"),
            json!({"config_override": {}}),
        ),
        (
            Method::DELETE,
            format!("/api/agents/{agent}/tools/{some}"),
            Value::Null,
        ),
    ];
    for (method, path, body) in routes {
        let request = app.request(method.clone(), &path, Some(&token));
        let request = if body.is_null() {
            request
        } else {
            request.json(&body)
        };
        let (status, answer) = json_of(request.send().await.unwrap()).await;
        assert_eq!(
            (status, answer),
            (StatusCode::FORBIDDEN, json!({"error": SERVICE_ONLY})),
            "{method} {path}"
        );

        let anonymous = app
            .http
            .request(method.clone(), format!("{}{path}", app.api_base()))
            .header("apikey", app.anon_key());
        let (status, answer) = json_of(anonymous.send().await.unwrap()).await;
        assert_eq!(
            (status, answer),
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "Authorization header required"})
            ),
            "{method} {path}"
        );
    }
    // The agent is still there: the refused DELETE did nothing.
    let (status, _) = json_of(
        app.service(Method::GET, &format!("/api/agents/{agent}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn agents_are_created_and_read_in_the_platforms_shape() {
    let app = app().await;
    let (status, body) = json_of(
        app.service(Method::POST, "/api/agents")
            .json(&json!({"model": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "Name is required"})
        )
    );

    let (status, created) = json_of(
        app.service(Method::POST, "/api/agents")
            .json(&json!({"name": "Quire", "system_prompt": "Be brief.", "temperature": 0.3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        keys(&created),
        set(&["id", "name", "model", "system_prompt", "settings"])
    );
    assert_eq!(
        created["settings"],
        json!({}),
        "top-level temperature is dropped"
    );
    let agent = created["id"].as_str().unwrap();
    let (status, got) = json_of(
        app.service(Method::GET, &format!("/api/agents/{agent}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["system_prompt"], "Be brief.");
    assert!(got["created_at"].as_str().unwrap().ends_with("+00:00"));
    let (status, body) = json_of(
        app.service(Method::GET, "/api/agents/not-a-uuid")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "Agent not found"}))
    );
}

/// Registers the custom tool `lookup` (not assigned to any agent).
async fn create_lookup_tool(app: &Stack) -> Value {
    let (status, tool) = json_of(
        app.service(Method::POST, "/api/tools")
            .json(&json!({"name": "lookup", "description": "d", "type": "http",
                          "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
                          "config": {"endpoint": "https://backend.example.com/tools/lookup"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{tool}");
    tool
}

#[tokio::test]
async fn tools_are_created_listed_with_the_builtins_and_deleted_in_the_platforms_shape() {
    let app = app().await;
    let (status, body) = json_of(
        app.service(Method::POST, "/api/tools")
            .json(&json!({"name": "t", "endpoint_url": "https://example.com/t", "method": "POST"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "name, description, type, and input_schema are required"})
        )
    );
    let tool = create_lookup_tool(&app).await;
    assert_eq!(
        keys(&tool),
        set(&[
            "id",
            "name",
            "description",
            "type",
            "input_schema",
            "config",
            "created_at"
        ])
    );

    let (_, all) = json_of(app.service(Method::GET, "/api/tools").send().await.unwrap()).await;
    let tools = all["tools"].as_array().unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t["name"] == "web_search" && t["id"].is_null() && t["type"] == "builtin")
    );
    assert!(tools.iter().any(|t| t["id"] == tool["id"]));
    let (status, body) = json_of(
        app.service(
            Method::DELETE,
            &format!("/api/tools/{}", tool["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"deleted": true})));
}

#[tokio::test]
async fn a_tool_is_assigned_to_an_agent_in_the_platforms_shape() {
    let app = app().await;
    let agent = create_agent(&app, "Be brief.").await;
    let agent = agent.as_str();
    let tool = create_lookup_tool(&app).await;
    let (status, body) = json_of(
        app.service(Method::POST, &format!("/api/agents/{agent}/tools"))
            .json(&json!({"tool_name": "lookup"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "tool_type and tool_name are required"})
        )
    );
    let (status, assigned) = json_of(
        app.service(Method::POST, &format!("/api/agents/{agent}/tools"))
            .json(&json!({"tool_type": "custom", "tool_name": "lookup", "tool_id": tool["id"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(keys(&assigned), set(&["id", "tool_name"]));
    let (_, listed) = json_of(
        app.service(Method::GET, &format!("/api/agents/{agent}/tools"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        listed,
        json!({"tools": [{"id": assigned["id"], "tool_type": "custom", "tool_name": "lookup",
                          "tool_id": tool["id"], "config_override": {}}]})
    );
}

#[tokio::test]
async fn any_tool_endpoint_is_accepted_at_registration() {
    // The platform stores a tool's config as given; the endpoint is checked
    // only when the tool is called.
    let strict = spawn_sandbox_with(|c| c.agents.token_delay_ms = 0).await;
    for (i, endpoint) in [
        "http://127.0.0.1:9/tool",
        "http://localhost:9/tool",
        "http://[::1]:9/tool",
        "http://10.0.0.7/tool",
        "http://169.254.169.254/latest",
        "ftp://example.com/x",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = json_of(
            strict
                .service(Method::POST, "/api/tools")
                .json(&json!({"name": format!("t{i}"), "description": "d", "type": "http",
                              "input_schema": {"type": "object"}, "config": {"endpoint": endpoint}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{endpoint}: {body}");
        assert_eq!(body["config"]["endpoint"], endpoint);
    }
}

/// A sandbox like the platform (no loopback tool endpoints) whose model is
/// [`fake_model`].
async fn strict_app_with_fake_model(model_url: &str) -> Stack {
    let model_url = url::Url::parse(model_url).unwrap();
    spawn_sandbox_with(move |c| {
        c.agents.token_delay_ms = 0;
        c.agents.llm_url = Some(model_url);
        c.agents.llm_api_key = Some(secrecy::SecretString::from("sk-test".to_owned()));
        c.agents.llm_model = "test-model".to_owned();
    })
    .await
}

/// The content of the `tool` message the model was given in `request`.
fn tool_message(request: &Value) -> String {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_else(|| panic!("no tool message in {request}"))
        .to_owned()
}

#[tokio::test]
async fn a_tool_call_to_a_blocked_endpoint_gives_the_model_url_blocked() {
    let (model_url, model_log) = fake_model().await;
    let (tool_url, tool_log) = tool_server(Behaviour::Answer(json!({"results": []}))).await;
    let app = strict_app_with_fake_model(&model_url).await;
    let port = tool_url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/tool");
    let cases = [
        (
            tool_url.clone(),
            "Error: URL blocked — URL targets internal network: 127.0.0.1",
        ),
        (
            format!("http://localhost:{port}/tool"),
            "Error: URL blocked — URL targets internal host: localhost",
        ),
        (
            format!("http://[::1]:{port}/tool"),
            "Error: URL blocked — URL targets internal host: ::1",
        ),
        (
            "http://192.168.1.10/tool".to_owned(),
            "Error: URL blocked — URL targets internal network: 192.168.1.10",
        ),
        (
            "http://169.254.169.254/latest".to_owned(),
            "Error: URL blocked — URL targets internal network: 169.254.169.254",
        ),
    ];
    let agent = create_agent(&app, "You answer from the user's documents.").await;
    add_tool(
        &app,
        &agent,
        "search_my_documents",
        "https://tools.example.com/search",
        30,
    )
    .await;
    let (_, listed) = json_of(app.service(Method::GET, "/api/tools").send().await.unwrap()).await;
    let tool_id = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "search_my_documents")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (i, (endpoint, expected)) in cases.iter().enumerate() {
        let (status, body) = json_of(
            app.service(Method::PUT, &format!("/api/tools/{tool_id}"))
                .json(&json!({"config": {"endpoint": endpoint, "method": "POST"}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "changing to {endpoint} is accepted: {body}"
        );
        let seen_before = model_log.lock().unwrap().len();
        let (_, sse) = stream(
            &app,
            &agent,
            None,
            json!({"message": format!("When is INV-{i} due?")}),
        )
        .await;
        assert_eq!(
            sse.one("tool_result")["result_preview"],
            *expected,
            "{endpoint}"
        );
        let complete = sse.one("complete");
        assert_eq!(
            complete["status"], "completed",
            "the run goes on: {complete}"
        );
        assert_eq!(complete["tool_calls"][0]["result"], *expected);
        let requests = model_log.lock().unwrap().clone();
        assert_eq!(requests.len(), seen_before + 2, "{endpoint}");
        assert_eq!(tool_message(&requests[seen_before + 1].1), *expected);
    }
    assert!(
        tool_log.lock().unwrap().is_empty(),
        "a blocked endpoint is never called"
    );
}

#[tokio::test]
async fn a_tool_answer_reaches_the_model_cut_to_10000_characters_without_a_suffix() {
    let (model_url, model_log) = fake_model().await;
    // 10 050 two-byte characters: the cut counts characters, not bytes.
    let long = "é".repeat(10_050);
    let (tool_url, _) = tool_server(Behaviour::Answer(json!(long))).await;
    let app = spawn_sandbox_with({
        let model_url = url::Url::parse(&model_url).unwrap();
        move |c| {
            c.agents.token_delay_ms = 0;
            c.agents.allow_loopback_tool_endpoints = true;
            c.agents.llm_url = Some(model_url);
            c.agents.llm_api_key = Some(secrecy::SecretString::from("sk-test".to_owned()));
            c.agents.llm_model = "test-model".to_owned();
        }
    })
    .await;
    let agent = create_agent(&app, "You answer from the user's documents.").await;
    add_tool(&app, &agent, "search_my_documents", &tool_url, 30).await;
    let (_, sse) = stream(&app, &agent, None, json!({"message": "When is INV-7 due?"})).await;
    assert_eq!(sse.one("complete")["status"], "completed");
    let requests = model_log.lock().unwrap().clone();
    // The tool answered the JSON string `"éé…é"`: its first 10 000 characters.
    let expected = format!("\"{}", "é".repeat(9_999));
    assert_eq!(tool_message(&requests[1].1), expected);
    assert_eq!(sse.one("tool_result")["result_meta"]["char_count"], 10_000);
}

/// A server on 127.0.0.1 answering every request with `status` and
/// `Location: to`: its base URL and how many requests it got.
async fn redirecting_server(status: u16, to: String) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let handler = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let to = to.clone();
        async move {
            axum::response::Response::builder()
                .status(status)
                .header("location", to)
                .body(axum::body::Body::empty())
                .unwrap()
        }
    };
    let router = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, hits)
}

/// Sandbox only, stricter than the platform (whose `requests` follows it):
/// a tool's redirect is not followed, so its static headers and the
/// arguments never reach where it points; the model reads an error in the
/// platform's shape and the run goes on (docs/platform-contract.md §6).
#[tokio::test]
async fn a_tool_answering_with_a_redirect_is_not_followed_and_the_model_reads_an_error() {
    let (model_url, model_log) = fake_model().await;
    let (elsewhere, elsewhere_log) = tool_server(Behaviour::Answer(json!({"results": []}))).await;
    let (redirecting, redirect_hits) = redirecting_server(302, elsewhere.clone()).await;
    let tool_url = format!("{redirecting}/tool");
    let app = spawn_sandbox_with({
        let model_url = url::Url::parse(&model_url).unwrap();
        move |c| {
            c.agents.token_delay_ms = 0;
            c.agents.allow_loopback_tool_endpoints = true;
            c.agents.llm_url = Some(model_url);
            c.agents.llm_api_key = Some(secrecy::SecretString::from("sk-test".to_owned()));
            c.agents.llm_model = "test-model".to_owned();
        }
    })
    .await;
    let agent = create_agent(&app, "You answer from the user's documents.").await;
    add_tool(&app, &agent, "search_my_documents", &tool_url, 30).await;

    let (_, sse) = stream(&app, &agent, None, json!({"message": "When is INV-7 due?"})).await;

    let expected = format!(
        "Error: 302 Found for url: {tool_url} (a redirect, not followed: refused by the sandbox's \
         guard, which is stricter than the platform)"
    );
    assert_eq!(sse.one("tool_result")["result_preview"], expected);
    let complete = sse.one("complete");
    assert_eq!(
        complete["status"], "completed",
        "the run goes on: {complete}"
    );
    assert_eq!(complete["tool_calls"][0]["result"], expected);
    let requests = model_log.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(tool_message(&requests[1].1), expected);
    assert_eq!(redirect_hits.load(Ordering::SeqCst), 1);
    assert!(
        elsewhere_log.lock().unwrap().is_empty(),
        "the redirect's target got a request (with the tool's static Authorization)"
    );
}

/// Sandbox only: the model's URL answering with a redirect fails the run with
/// the usual model error, and the API key never travels to where it points.
#[tokio::test]
async fn a_model_url_answering_with_a_redirect_is_not_followed_and_the_run_fails() {
    let (elsewhere, elsewhere_log) = fake_model().await;
    let to = format!("{elsewhere}/chat/completions");
    let (redirecting, redirect_hits) = redirecting_server(307, to.clone()).await;
    let app = spawn_sandbox_with({
        let model_url = url::Url::parse(&format!("{redirecting}/v1")).unwrap();
        move |c| {
            c.agents.token_delay_ms = 0;
            c.agents.llm_url = Some(model_url);
            c.agents.llm_api_key = Some(secrecy::SecretString::from("sk-test".to_owned()));
            c.agents.llm_model = "test-model".to_owned();
        }
    })
    .await;
    let agent = create_agent(&app, "").await;

    let (_, sse) = stream(&app, &agent, None, json!({"message": "Hello"})).await;

    assert_eq!(sse.names(), ["start", "error", "complete"]);
    let error = sse.one("error");
    assert_eq!(
        error["error"],
        format!(
            "the model answered 307, a redirect to {to:?}, which the sandbox does not follow: \
             set QUIRE_SANDBOX_LLM_URL (--llm-url) to the endpoint itself"
        )
    );
    let complete = sse.one("complete");
    assert_eq!(complete["status"], "failed");
    assert_eq!(complete["error"], error["error"]);
    let run = finished_run(&app, complete["run_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(redirect_hits.load(Ordering::SeqCst), 1);
    let reached = elsewhere_log.lock().unwrap().clone();
    assert!(
        reached.is_empty(),
        "the redirect's target got {} request(s), authorization {:?}",
        reached.len(),
        reached
            .iter()
            .map(|(headers, _)| headers.get("authorization").cloned())
            .collect::<Vec<_>>()
    );
}

const WARRANTY_QUESTION: &str = "How long is the warranty on the motor?";

/// The warranty question asked of the manual, with citations, on the plain path.
async fn plain_run(app: &Stack) -> (HeaderMap, Sse) {
    let agent = create_agent(app, "Answer from the user's documents.").await;
    stream(
        app,
        &agent,
        None,
        json!({"message": WARRANTY_QUESTION, "context_items": manual(), "citations_enabled": true}),
    )
    .await
}

#[tokio::test]
async fn a_plain_stream_is_start_deltas_chunk_complete_with_sse_headers() {
    let app = app().await;
    let (headers, sse) = plain_run(&app).await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");

    let names = sse.names();
    assert_eq!(names.first(), Some(&"start"));
    assert_eq!(&names[names.len() - 2..], ["chunk", "complete"]);
    assert!(
        names[1..names.len() - 2]
            .iter()
            .all(|n| *n == "content_delta"),
        "{names:?}"
    );
    assert!(
        names.len() > 4,
        "the answer is streamed in pieces: {names:?}"
    );
}

#[tokio::test]
async fn plain_stream_events_have_the_reference_fields() {
    let app = app().await;
    let (_, sse) = plain_run(&app).await;
    let start = sse.one("start");
    assert_eq!(
        keys(start),
        set(&[
            "event",
            "run_id",
            "session_id",
            "context_handler_id",
            "reasoning_requested",
            "citation_candidates"
        ])
    );
    assert!(is_public_id(&start["run_id"], "run_"), "{start}");
    assert!(is_public_id(&start["session_id"], "sess_"), "{start}");
    assert!(start["context_handler_id"].is_null());
    assert_eq!(start["reasoning_requested"], false);
    assert_eq!(start["citation_candidates"].as_array().unwrap().len(), 3);

    for delta in sse.events.iter().filter(|e| e["event"] == "content_delta") {
        assert_eq!(keys(delta), set(&["event", "type", "delta"]), "{delta}");
        assert_eq!(delta["type"], "content_delta");
    }
    let chunk = sse.one("chunk");
    assert_eq!(keys(chunk), set(&["event", "content"]));
    assert_eq!(
        chunk["content"],
        sse.deltas(),
        "chunk carries the whole answer once"
    );

    let complete = sse.one("complete");
    assert_eq!(
        keys(complete),
        set(&[
            "event",
            "run_id",
            "session_id",
            "context_handler_id",
            "content",
            "retrieved_items",
            "is_new_session",
            "status",
            "error",
            "citations"
        ])
    );
    assert_eq!(complete["run_id"], start["run_id"]);
    assert_eq!(complete["session_id"], start["session_id"]);
    assert_eq!(complete["content"], chunk["content"]);
    assert_eq!(complete["status"], "completed");
    assert!(complete["error"].is_null());
    assert_eq!(complete["retrieved_items"], 3);
    assert_eq!(complete["is_new_session"], true);
}

#[tokio::test]
async fn a_plain_answers_citations_match_its_markers_and_the_cited_items() {
    let app = app().await;
    let (_, sse) = plain_run(&app).await;
    let complete = sse.one("complete");
    let content = complete["content"].as_str().unwrap();
    assert!(content.contains("five years"), "{content}");
    let citations = complete["citations"].as_array().unwrap();
    let cited: BTreeSet<String> = citations
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        cited,
        markers(content),
        "citations match the markers of {content:?}"
    );
    let items = manual();
    for citation in citations {
        let n: usize = citation["key"].as_str().unwrap().parse().unwrap();
        let item = &items[n - 1];
        assert_eq!(citation["meta"], item["meta"]);
        assert_eq!(citation["chunk_id"], item["meta"]["chunk_id"]);
        assert_eq!(citation["page"], item["meta"]["page"]);
        assert_eq!(citation["source_name"], "X200 manual");
        assert!(
            item["text"]
                .as_str()
                .unwrap()
                .starts_with(citation["text"].as_str().unwrap())
        );
        assert!(citation["score"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(cited, BTreeSet::from(["2".to_owned()]));
}

#[tokio::test]
async fn a_plain_run_is_persisted_as_the_stream_reported_it() {
    let app = app().await;
    let (_, sse) = plain_run(&app).await;
    let start = sse.one("start");
    let complete = sse.one("complete");
    let content = complete["content"].as_str().unwrap();
    let items = manual();
    let question = WARRANTY_QUESTION;
    // Persisted: the row, and what GET /api/agents/runs/{id} shows.
    let run = finished_run(&app, start["run_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["content"], complete["content"]);
    assert_eq!(
        run["input_messages"],
        json!([{"role": "user", "content": question}])
    );
    assert_eq!(run["output_messages"][0]["content"], complete["content"]);
    let retrieved = run["retrieved_context"].as_array().unwrap();
    assert_eq!(
        retrieved[0],
        json!({"_type": "retrieval_diagnostics", "source": "context_items"})
    );
    assert_eq!(retrieved.len(), 4);
    assert_eq!(
        retrieved[2],
        json!({"text": items[1]["text"], "meta": items[1]["meta"]}),
        "only text and meta are kept"
    );
    assert!(run["started_at"].is_string() && run["completed_at"].is_string());
    let db = app.db.admin().await;
    let row = db
        .query_one(
            "select r.status, r.content, s.session_id from ai.agent_runs r join ai.agent_sessions s on s.id = r.session_id
              where r.run_id = $1",
            &[&start["run_id"].as_str().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "completed");
    assert_eq!(row.get::<_, String>(1), content);
    assert_eq!(
        row.get::<_, String>(2),
        start["session_id"].as_str().unwrap()
    );
}

const INVOICE_QUESTION: &str = "When is invoice INV-7 due?";

/// The invoice question on the tool path: the agent's search tool answers
/// from a server that logs what it received.
async fn tool_run(app: &Stack) -> (Sse, ToolLog) {
    let (endpoint, log) = tool_server(Behaviour::Answer(json!({
        "results": [{"text": "Invoice INV-7 is due on 3 March 2025.", "page": 2, "title": "Invoices"}]
    })))
    .await;
    let agent = create_agent(app, "You answer questions about the user's documents.").await;
    add_tool(app, &agent, "search_my_documents", &endpoint, 30).await;

    let mut items = manual();
    items.as_array_mut().unwrap().push(json!({
        "text": "To search the user's documents, call search_my_documents with session_token = tok_abc.",
        "meta": {"kind": "instruction"}
    }));
    let (_, sse) = stream(
        app,
        &agent,
        None,
        json!({"message": INVOICE_QUESTION, "context_items": items, "citations_enabled": true}),
    )
    .await;

    (sse, log)
}

#[tokio::test]
async fn the_tool_path_streams_the_agent_loops_events_in_order_with_seq_and_ts() {
    let app = app().await;
    let (sse, _) = tool_run(&app).await;
    let names = sse.names();
    let deltas = names.iter().filter(|n| **n == "content_delta").count();
    assert!(deltas > 1);
    let mut expected = vec![
        "start",
        "step_started",
        "tool_call",
        "tool_result",
        "step_completed",
        "step_started",
    ];
    expected.extend(std::iter::repeat_n("content_delta", deltas));
    expected.extend(["step_completed", "chunk", "complete"]);
    assert_eq!(names, expected);

    // Events from the agent loop repeat their name as `type` and carry seq 1, 2, … and ts.
    let loop_events: Vec<&Value> = sse
        .events
        .iter()
        .filter(|e| !matches!(e["event"].as_str(), Some("start" | "chunk" | "complete")))
        .collect();
    for (i, event) in loop_events.iter().enumerate() {
        assert_eq!(event["type"], event["event"], "{event}");
        assert_eq!(event["seq"], json!(i + 1), "{event}");
        assert!(
            event["ts"].as_str().is_some_and(|ts| ts.contains('T')),
            "{event}"
        );
    }
}

#[tokio::test]
async fn the_tool_paths_events_have_the_reference_fields() {
    let app = app().await;
    let (sse, _) = tool_run(&app).await;
    let question = INVOICE_QUESTION;
    let loop_keys = ["event", "type", "seq", "ts"];
    let with = |extra: &[&'static str]| -> BTreeSet<&'static str> {
        loop_keys.iter().chain(extra).copied().collect()
    };

    let start = sse.one("start");
    assert_eq!(
        keys(start),
        set(&[
            "event",
            "run_id",
            "session_id",
            "context_handler_id",
            "reasoning_requested"
        ])
    );
    let steps: Vec<&Value> = sse
        .events
        .iter()
        .filter(|e| e["event"] == "step_started")
        .collect();
    assert_eq!(keys(steps[0]), with(&["step", "is_last_step"]));
    assert_eq!(
        (steps[0]["step"].clone(), steps[1]["step"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(steps[0]["is_last_step"], false);

    let call = sse.one("tool_call");
    assert_eq!(
        keys(call),
        with(&["step", "tool_name", "arguments", "call_id"])
    );
    assert_eq!(call["step"], 1);
    assert_eq!(call["tool_name"], "search_my_documents");
    assert_eq!(
        call["arguments"],
        json!({"query": question, "session_token": "tok_abc"})
    );
    assert!(call["call_id"].as_str().unwrap().starts_with("call_"));

    let result = sse.one("tool_result");
    assert_eq!(
        keys(result),
        with(&[
            "step",
            "tool_name",
            "call_id",
            "result_preview",
            "result_meta",
            "duration_ms"
        ])
    );
    assert_eq!(result["call_id"], call["call_id"]);
    assert!(result["result_preview"].as_str().unwrap().contains("INV-7"));
    assert!(result["result_preview"].as_str().unwrap().chars().count() <= 200);
    assert_eq!(result["result_meta"]["result_type"], "text");
    assert!(result["result_meta"]["char_count"].as_u64().unwrap() > 0);
    assert!(result["duration_ms"].is_u64());

    let completed: Vec<&Value> = sse
        .events
        .iter()
        .filter(|e| e["event"] == "step_completed")
        .collect();
    assert_eq!(
        keys(completed[0]),
        with(&["step", "finish_reason", "has_tool_calls"])
    );
    assert_eq!(
        (
            completed[0]["finish_reason"].clone(),
            completed[0]["has_tool_calls"].clone()
        ),
        (json!("tool_calls"), json!(true))
    );
    assert_eq!(
        (
            completed[1]["finish_reason"].clone(),
            completed[1]["has_tool_calls"].clone()
        ),
        (json!("stop"), json!(false))
    );
    for delta in sse.events.iter().filter(|e| e["event"] == "content_delta") {
        assert_eq!(keys(delta), with(&["delta"]));
    }
}

#[tokio::test]
async fn the_tool_is_called_with_its_json_arguments_and_static_headers_only() {
    let app = app().await;
    let (_, log) = tool_run(&app).await;
    let question = INVOICE_QUESTION;
    // The tool got the JSON arguments and its static headers — nothing else.
    let requests = log.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (headers, body) = &requests[0];
    assert_eq!(
        body,
        &json!({"query": question, "session_token": "tok_abc"})
    );
    assert_eq!(headers["authorization"], "Bearer static-secret");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn the_tools_result_reaches_the_answer_and_complete() {
    let app = app().await;
    let (sse, _) = tool_run(&app).await;
    // Its result reaches the answer.
    let chunk = sse.one("chunk");
    assert_eq!(chunk["content"], sse.deltas());
    let complete = sse.one("complete");
    assert_eq!(
        keys(complete)
            .difference(&set(&["citations"]))
            .copied()
            .collect::<BTreeSet<_>>(),
        set(&[
            "event",
            "run_id",
            "session_id",
            "content",
            "status",
            "steps",
            "tool_calls",
            "usage",
            "error"
        ])
    );
    let content = complete["content"].as_str().unwrap();
    assert!(content.contains("due on 3 March 2025"), "{content}");
    assert!(
        !content.contains("tok_abc"),
        "instructions are not quoted: {content}"
    );
    assert_eq!(complete["steps"], 2);
    assert_eq!(complete["status"], "completed");
    assert!(complete["error"].is_null());
    let usage = &complete["usage"];
    assert_eq!(
        keys(usage),
        set(&[
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "cached_tokens",
            "total_tokens"
        ])
    );
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    let full = json!({"results": [{"text": "Invoice INV-7 is due on 3 March 2025.", "page": 2, "title": "Invoices"}]}).to_string();
    let calls = complete["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        keys(&calls[0]),
        set(&["step", "tool_name", "arguments", "result", "duration_ms"])
    );
    assert_eq!(
        calls[0]["result"], full,
        "complete.tool_calls has the full result"
    );
    // No marker points at a tool result; any marker cites a context item.
    let cited: BTreeSet<String> = complete["citations"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| c["key"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(cited, markers(content));
}

#[tokio::test]
async fn a_tool_run_is_persisted_with_its_calls_and_loop_events() {
    let app = app().await;
    let (sse, _) = tool_run(&app).await;
    let start = sse.one("start");
    let full = json!({"results": [{"text": "Invoice INV-7 is due on 3 March 2025.", "page": 2, "title": "Invoices"}]}).to_string();
    let run = finished_run(&app, start["run_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["steps"], 2);
    assert_eq!(run["tool_calls"][0]["result"], full);
    let events = run["events"].as_array().unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "step_started",
            "tool_call",
            "tool_result",
            "step_completed",
            "step_started",
            "step_completed"
        ],
        "persisted events leave the deltas out"
    );
}

#[tokio::test]
async fn failing_and_slow_tools_are_reported_as_the_platform_does() {
    let app = spawn_sandbox_with(|c| {
        c.agents.token_delay_ms = 0;
        c.agents.allow_loopback_tool_endpoints = true;
        c.agents.keepalive_ms = 100;
    })
    .await;
    let (failing, _) = tool_server(Behaviour::Fail).await;
    let (slow, slow_log) = tool_server(Behaviour::Slow(Duration::from_secs(5))).await;
    let agent = create_agent(
        &app,
        "Call broken_search and slow_search for every question.",
    )
    .await;
    add_tool(&app, &agent, "broken_search", &failing, 30).await;
    add_tool(&app, &agent, "slow_search", &slow, 1).await;

    let (_, sse) = stream(
        &app,
        &agent,
        None,
        json!({"message": "How long is the warranty?", "context_items": manual()}),
    )
    .await;
    let results: Vec<&Value> = sse
        .events
        .iter()
        .filter(|e| e["event"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 2, "{:?}", sse.names());
    assert_eq!(results[0]["tool_name"], "broken_search");
    assert_eq!(
        results[0]["result_preview"],
        format!("Error: 500 Server Error: Internal Server Error for url: {failing}")
    );
    let port = slow
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/tool");
    assert_eq!(
        results[1]["result_preview"],
        format!(
            "Error: HTTPConnectionPool(host='127.0.0.1', port={port}): Read timed out. (read timeout=1)"
        )
    );
    assert_eq!(slow_log.lock().unwrap().len(), 1);
    // The silence while the slow tool ran was broken by keepalive comments.
    assert!(
        sse.comments.iter().any(|c| c == "keepalive"),
        "{:?}",
        sse.raw
    );
    let keepalive_at = sse.raw.find(": keepalive\n\n").unwrap();
    let slow_result_at = sse.raw.find("Read timed out").unwrap();
    assert!(keepalive_at < slow_result_at);

    // The run goes on and answers from the context.
    let complete = sse.one("complete");
    assert_eq!(complete["status"], "completed");
    assert!(complete["content"].as_str().unwrap().contains("five years"));
    assert!(
        complete["tool_calls"][0]["result"]
            .as_str()
            .unwrap()
            .starts_with("Error: 500")
    );
}

#[tokio::test]
async fn a_question_the_context_cannot_answer_gets_the_plain_answer() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let (_, sse) = stream(
        &app,
        &agent,
        None,
        json!({"message": "What is the capital of France?", "context_items": manual(), "citations_enabled": true}),
    )
    .await;
    let complete = sse.one("complete");
    assert_eq!(complete["content"], NOTHING_FOUND);
    assert_eq!(sse.one("chunk")["content"], NOTHING_FOUND);
    assert!(
        complete.get("citations").is_none(),
        "no citations: {complete}"
    );
    assert!(markers(NOTHING_FOUND).is_empty());

    // Without any context at all, the same.
    let (_, sse) = stream(
        &app,
        &agent,
        None,
        json!({"message": "How long is the warranty?"}),
    )
    .await;
    assert_eq!(sse.one("complete")["content"], NOTHING_FOUND);
    assert_eq!(sse.one("complete")["retrieved_items"], 0);
}

#[tokio::test]
async fn a_run_whose_client_disconnects_still_completes_and_is_persisted() {
    let app = spawn_sandbox_with(|c| c.agents.token_delay_ms = 50).await;
    let agent = create_agent(&app, "").await;
    let body = json!({"message": "What about the jars and the motor warranty?", "context_items": manual(), "citations_enabled": true});

    let mut response = app
        .service(Method::POST, &format!("/api/agents/{agent}/run/stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = String::new();
    while !received.contains("\"content_delta\"") {
        let chunk = response
            .chunk()
            .await
            .unwrap()
            .expect("the stream goes on until a delta");
        received.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let start = Sse::parse(received.split("\n\n").next().unwrap().to_owned() + "\n\n");
    let run_id = start.one("start")["run_id"].as_str().unwrap().to_owned();
    drop(response);

    let run = finished_run(&app, &run_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    // The same question without a disconnect gives the same (deterministic) answer.
    let (status, whole) = json_of(
        app.service(Method::POST, &format!("/api/agents/{agent}/run"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["content"], whole["content"]);
    assert!(run["content"].as_str().unwrap().len() > 40);
    assert!(run["completed_at"].is_string());
}

/// Alice's session of a new agent, with one run in it; and Bob.
struct AlicesSession {
    agent: String,
    alice: String,
    bob: String,
    session: String,
    run_id: String,
}

async fn alices_session(app: &Stack) -> AlicesSession {
    let agent = create_agent(app, "").await;
    let (alice, _) = user(app, "alice@example.com").await;
    let (bob, _) = user(app, "bob@example.com").await;
    // Alice opens a session and runs in it with her own token.
    let (status, created) = json_of(
        post(app, &format!("/api/agents/{agent}/sessions"), Some(&alice))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let session = created["session_id"].as_str().unwrap().to_owned();
    assert!(is_public_id(&created["session_id"], "sess_"));
    let (_, sse) = stream(app, &agent, Some(&alice), json!({"message": "How long is the warranty?", "session_id": session, "context_items": manual()})).await;
    let complete = sse.one("complete");
    assert_eq!(complete["session_id"], session.as_str());
    assert_eq!(complete["is_new_session"], false);
    let run_id = complete["run_id"].as_str().unwrap().to_owned();

    AlicesSession {
        agent,
        alice,
        bob,
        session,
        run_id,
    }
}

#[tokio::test]
async fn bob_can_neither_continue_alices_session_nor_name_one_of_his_choosing() {
    let app = app().await;
    let AlicesSession {
        agent,
        bob,
        session,
        ..
    } = alices_session(&app).await;

    // Bob can neither continue it nor name a session of his own choosing.
    for target in [session.as_str(), "sess_made_up_by_bob"] {
        let (status, body) = json_of(
            post(&app, &format!("/api/agents/{agent}/run"), Some(&bob))
                .json(&json!({"message": "hi", "session_id": target}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({"error": "Session not found"})),
            "{target}"
        );
        let (_, sse) = stream(
            &app,
            &agent,
            Some(&bob),
            json!({"message": "hi", "session_id": target}),
        )
        .await;
        assert_eq!(
            sse.events,
            vec![json!({"event": "error", "error": "Session not found"})],
            "{target}"
        );
    }
    let db = app.db.admin().await;
    let made_up = db
        .query_opt(
            "select 1 from ai.agent_sessions where session_id = 'sess_made_up_by_bob'",
            &[],
        )
        .await
        .unwrap();
    assert!(
        made_up.is_none(),
        "a user never creates a session under an id of their choosing"
    );
}

#[tokio::test]
async fn each_user_lists_only_their_own_sessions_and_the_service_role_sees_all() {
    let app = app().await;
    let AlicesSession {
        agent,
        alice,
        bob,
        session,
        ..
    } = alices_session(&app).await;

    // A run without a session starts one owned by the caller.
    let (_, sse) = stream(&app, &agent, Some(&bob), json!({"message": "hi"})).await;
    let bobs_session = sse.one("complete")["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(sse.one("complete")["is_new_session"], true);

    // Each lists their own; the service role sees both.
    let list = |token: Option<String>| {
        let app = &app;
        let agent = agent.clone();
        async move {
            let path = format!("/api/agents/{agent}/sessions");
            let request = match &token {
                Some(t) => app.request(Method::GET, &path, Some(t)),
                None => app.service(Method::GET, &path),
            };
            let (status, body) = json_of(request.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            body["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["session_id"].as_str().unwrap().to_owned())
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(
        list(Some(alice.clone())).await,
        BTreeSet::from([session.clone()])
    );
    assert_eq!(
        list(Some(bob.clone())).await,
        BTreeSet::from([bobs_session.clone()])
    );
    assert_eq!(
        list(None).await,
        BTreeSet::from([session.clone(), bobs_session.clone()])
    );
}

#[tokio::test]
async fn a_run_is_read_by_its_sessions_owner_and_the_service_role_only() {
    let app = app().await;
    let AlicesSession {
        alice, bob, run_id, ..
    } = alices_session(&app).await;

    // Runs: Alice reads hers, Bob gets 404, the service role reads any.
    let path = format!("/api/agents/runs/{run_id}");
    let (status, run) = json_of(
        app.request(Method::GET, &path, Some(&alice))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["run_id"], run_id.as_str());
    let (status, body) = json_of(
        app.request(Method::GET, &path, Some(&bob))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "Run not found"}))
    );
    let (status, _) = json_of(app.service(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn only_alice_deletes_her_session_and_its_runs_go_with_it() {
    let app = app().await;
    let AlicesSession {
        agent,
        alice,
        bob,
        session,
        run_id,
        ..
    } = alices_session(&app).await;

    let path = format!("/api/agents/runs/{run_id}");
    // Deleting: Bob's attempt on Alice's session is 404, Alice's is 204.
    let delete = format!("/api/agents/{agent}/sessions/{session}");
    let (status, body) = json_of(
        app.request(Method::DELETE, &delete, Some(&bob))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "Session not found"}))
    );
    let response = app
        .request(Method::DELETE, &delete, Some(&alice))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = json_of(app.service(Method::GET, &path).send().await.unwrap()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the session's runs went with it"
    );
}

#[tokio::test]
async fn user_runs_may_not_name_stored_data_on_either_route() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let (token, _) = user(&app, "carol@example.com").await;

    let cases = [
        (
            json!({"message": "q", "knowledge_bases": [{"id": "00000000-0000-0000-0000-000000000000"}]}),
            "knowledge_bases may only be set with the project's service role key; an end user's run uses the knowledge bases configured on the agent",
        ),
        (
            json!({"message": "q", "context_items": [{"text": "fine"}, {"item_id": "00000000-0000-0000-0000-000000000000"}]}),
            "context_items[].item_id may only be set with the project's service role key; an end user's run uses the knowledge bases configured on the agent",
        ),
        (
            json!({"message": "q", "context_handler_id": "h", "runtime_knowledge_bases": [{"id": "k"}]}),
            "runtime_knowledge_bases, context_handler_id may only be set with the project's service role key; an end user's run uses the knowledge bases configured on the agent",
        ),
    ];
    for (body, message) in cases {
        for route in ["run", "run/stream"] {
            let (status, answer) = json_of(
                post(&app, &format!("/api/agents/{agent}/{route}"), Some(&token))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(
                (status, answer),
                (StatusCode::FORBIDDEN, json!({"error": message})),
                "{route} {body}"
            );
        }
    }
}

#[tokio::test]
async fn a_user_run_may_bring_its_own_text_as_context() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let (token, _) = user(&app, "carol@example.com").await;

    // What a user may send: their own text as context.
    let (_, sse) = stream(
        &app,
        &agent,
        Some(&token),
        json!({"message": "warranty?", "context_override": "The warranty lasts two years."}),
    )
    .await;
    assert_eq!(
        sse.one("complete")["content"],
        "The warranty lasts two years."
    );
}

#[tokio::test]
async fn only_the_service_role_names_a_sessions_owner_and_seeds_its_messages() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let (token, user_id) = user(&app, "carol@example.com").await;

    // Only the service role names a session's owner.
    let (status, body) = json_of(
        post(&app, &format!("/api/agents/{agent}/sessions"), Some(&token))
            .json(&json!({"user_id": user_id}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({"error": "Service role required to set user_id"})
        )
    );
    let (status, created) = json_of(
        app.service(Method::POST, &format!("/api/agents/{agent}/sessions"))
            .json(&json!({"user_id": user_id, "initial_messages": [
                {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi, how can I help?"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, listed) = json_of(
        app.request(
            Method::GET,
            &format!("/api/agents/{agent}/sessions"),
            Some(&token),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let mine: Vec<&Value> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["session_id"] == created["session_id"])
        .collect();
    assert_eq!(mine.len(), 1, "{listed}");
    assert_eq!(
        mine[0]["run_count"], 1,
        "the seed pair is one synthetic run"
    );
    assert_eq!(mine[0]["first_message"], "Hello");
    let (_, sse) = stream(
        &app,
        &agent,
        Some(&token),
        json!({"message": "warranty?", "session_id": created["session_id"]}),
    )
    .await;
    assert_eq!(
        sse.one("complete")["status"],
        "completed",
        "the user continues the session made for them"
    );
    let (status, body) = json_of(
        app.service(Method::POST, &format!("/api/agents/{agent}/sessions"))
            .json(&json!({"initial_messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "user_id is required to seed initial_messages as service role"})
        )
    );
}

#[tokio::test]
async fn run_bodies_are_checked_before_anything_runs() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let cases = [
        (json!({}), StatusCode::BAD_REQUEST, "message is required"),
        (
            json!({"message": ""}),
            StatusCode::BAD_REQUEST,
            "message is required",
        ),
        (
            json!({"message": "q", "context_override": "a", "context_items": [{"text": "b"}]}),
            StatusCode::BAD_REQUEST,
            ONLY_ONE,
        ),
        (
            json!({"message": "q", "knowledge_bases": [{"id": "k"}], "context_override": "a"}),
            StatusCode::BAD_REQUEST,
            ONLY_ONE,
        ),
        (
            json!({"message": "q", "session_id": "x".repeat(256)}),
            StatusCode::BAD_REQUEST,
            "session_id must be a string of at most 255 characters",
        ),
        (
            json!({"message": "q", "context_handler_id": "h"}),
            StatusCode::NOT_FOUND,
            "Context handler not found",
        ),
    ];
    for (body, status, message) in cases {
        for route in ["run", "run/stream"] {
            let (got, answer) = json_of(
                app.service(Method::POST, &format!("/api/agents/{agent}/{route}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(
                (got, answer),
                (status, json!({"error": message})),
                "{route} {body}"
            );
        }
    }
    // Empty context sources do not count for the only-one-of rule.
    let (_, sse) = stream(&app, &agent, None, json!({"message": "warranty", "context_items": [], "context_override": "Warranty: two years."})).await;
    assert_eq!(sse.one("complete")["status"], "completed");
    let (status, body) = json_of(
        app.service(
            Method::POST,
            "/api/agents/00000000-0000-0000-0000-000000000000/run/stream",
        )
        .json(&json!({"message": "q"}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "Agent not found"}))
    );
    let (status, _) = json_of(
        app.service(Method::POST, &format!("/api/agents/{agent}/run"))
            .json(&json!({"message": "q", "runtime_knowledge_bases": []}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_non_streaming_run_answers_with_citations() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let (status, body) = json_of(
        app.service(Method::POST, &format!("/api/agents/{agent}/run"))
            .json(&json!({"message": "How do I clean the jars?", "context_items": manual(), "citations_enabled": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        keys(&body),
        set(&[
            "run_id",
            "session_id",
            "context_handler_id",
            "content",
            "error",
            "usage",
            "retrieved_items",
            "status",
            "is_new_session",
            "citation_candidates",
            "citations"
        ])
    );
    assert_eq!(body["status"], "completed");
    assert_eq!(body["retrieved_items"], 3);
    assert_eq!(body["citation_candidates"].as_array().unwrap().len(), 3);
    let content = body["content"].as_str().unwrap();
    assert!(
        content.starts_with("Clean the jars with warm water after every use [3]."),
        "{content}"
    );
    let cited: BTreeSet<String> = body["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cited, markers(content));
}

#[tokio::test]
async fn by_reference_items_are_read_from_ai_chunks() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let db = app.db.admin().await;
    let chunk: uuid::Uuid = db
        .query_one(
            "with s as (insert into ai.sources (name, file_type, extraction_status) values ('handbook.pdf', 'application/pdf', 'extracted') returning id),
                  k as (insert into ai.knowledge_bases (name) values ('kb') returning id),
                  i as (insert into ai.indexed_sources (knowledge_base_id, source_id, index_status)
                        select k.id, s.id, 'indexed' from k, s returning id, knowledge_base_id, source_id)
             insert into ai.chunks (indexed_source_id, knowledge_base_id, source_id, text, chunk_index, meta)
             select i.id, i.knowledge_base_id, i.source_id, 'Holidays must be requested two weeks in advance.', 0, '{\"page\": 4}'
               from i returning id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (_, sse) = stream(
        &app,
        &agent,
        None,
        json!({"message": "When must holidays be requested?", "citations_enabled": true,
               "context_items": [{"item_id": chunk.to_string()}, {"item_id": uuid::Uuid::new_v4().to_string()}]}),
    )
    .await;
    let complete = sse.one("complete");
    assert_eq!(
        complete["content"],
        "Holidays must be requested two weeks in advance [1]."
    );
    assert_eq!(complete["retrieved_items"], 1, "unknown ids are skipped");
    let citation = &complete["citations"][0];
    assert_eq!(citation["item_id"], chunk.to_string());
    assert_eq!(citation["chunk_id"], chunk.to_string());
    assert_eq!(citation["source_name"], "handbook.pdf");
    assert_eq!(citation["page"], 4);
    assert!(citation["source_id"].is_string());
}

#[tokio::test]
async fn the_service_role_can_pre_retrieve_from_knowledge_bases() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let db = app.db.admin().await;
    let kb: uuid::Uuid = db
        .query_one(
            "with s as (insert into ai.sources (name, file_type, extraction_status)
                        values ('policies.pdf', 'application/pdf', 'extracted') returning id),
                  k as (insert into ai.knowledge_bases (name) values ('policies') returning id),
                  i as (insert into ai.indexed_sources (knowledge_base_id, source_id, index_status)
                        select k.id, s.id, 'indexed' from k, s returning id, knowledge_base_id, source_id),
                  c as (insert into ai.chunks (indexed_source_id, knowledge_base_id, source_id, text, chunk_index, meta)
                        select i.id, i.knowledge_base_id, i.source_id, t.text, t.n, jsonb_build_object('page', t.n + 1)
                          from i, (values (0, 'Expenses are reimbursed within ten working days.'),
                                          (1, 'The office is closed on public holidays.')) as t (n, text)
                        returning knowledge_base_id)
             select distinct knowledge_base_id from c",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (_, sse) = stream(
        &app,
        &agent,
        None,
        json!({"message": "How fast are expenses reimbursed?", "citations_enabled": true,
               "knowledge_bases": [{"id": kb.to_string(), "top_k": 3}]}),
    )
    .await;
    let complete = sse.one("complete");
    assert_eq!(
        complete["content"],
        "Expenses are reimbursed within ten working days [1]."
    );
    assert_eq!(complete["retrieved_items"], 1);
    assert_eq!(complete["citations"][0]["source_name"], "policies.pdf");
    assert_eq!(complete["citations"][0]["page"], 1);
    let run = finished_run(&app, sse.one("start")["run_id"].as_str().unwrap()).await;
    let retrieved = run["retrieved_context"].as_array().unwrap();
    assert_eq!(retrieved[0]["_type"], "retrieval_diagnostics");
    assert_eq!(retrieved[1]["knowledge_base_id"], kb.to_string());
    assert!(retrieved[1]["score"].as_f64().unwrap() > 0.0);
}

/// The requests a fake model received: headers and JSON body.
type ModelLog = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// An OpenAI-compatible endpoint on 127.0.0.1 (`…/v1`): it asks for
/// `search_my_documents` when tools are offered and no tool has answered
/// yet, then streams an answer quoting the tool; a message containing
/// `FAIL` gets a 500.
async fn fake_model() -> (String, ModelLog) {
    let log: ModelLog = Arc::default();
    let seen = log.clone();
    let handler = move |headers: HeaderMap, body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let body: Value = serde_json::from_slice(&body).unwrap();
            seen.lock().unwrap().push((headers, body.clone()));
            let messages = body["messages"].as_array().unwrap();
            if messages
                .iter()
                .any(|m| m["content"].as_str().is_some_and(|c| c.contains("FAIL")))
            {
                return axum::response::Response::builder()
                    .status(500)
                    .body(axum::body::Body::from(
                        r#"{"error":{"message":"model overloaded"}}"#,
                    ))
                    .unwrap();
            }
            let answered = messages.iter().any(|m| m["role"] == "tool");
            let chunks: Vec<Value> = if body.get("tools").is_some() && !answered {
                vec![
                    json!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0,
                        "id": "call_model_1", "type": "function",
                        "function": {"name": "search_my_documents", "arguments": "{\"query\": \"INV-7\","}}]}}]}),
                    json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
                        "function": {"arguments": " \"session_token\": \"tok_abc\"}"}}]}}]}),
                    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                    json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55}}),
                ]
            } else {
                let mut pieces: Vec<Value> =
                    ["Invoice ", "INV-7 ", "is due ", "on 3 March ", "[1][7]."]
                        .iter()
                        .map(|p| json!({"choices": [{"index": 0, "delta": {"content": p}}]}))
                        .collect();
                pieces
                    .push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
                pieces.push(json!({"choices": [], "usage": {"prompt_tokens": 80, "completion_tokens": 9, "total_tokens": 89}}));
                pieces
            };
            let mut sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
            sse.push_str("data: [DONE]\n\n");
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(axum::body::Body::from(sse))
                .unwrap()
        }
    };
    let router = axum::Router::new().route("/v1/chat/completions", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, log)
}

/// A sandbox whose agents run on a fake OpenAI-compatible model, and an agent
/// with the search tool; the model's and the tool's request logs.
async fn model_app() -> (Stack, String, ModelLog, ToolLog) {
    let (model_url, model_log) = fake_model().await;
    let (tool_url, tool_log) = tool_server(Behaviour::Answer(json!({
        "results": [{"text": "Invoice INV-7 is due on 3 March 2025."}]
    })))
    .await;
    let app = spawn_sandbox_with(|c| {
        c.agents.token_delay_ms = 0;
        c.agents.allow_loopback_tool_endpoints = true;
        c.agents.llm_url = Some(url::Url::parse(&model_url).unwrap());
        c.agents.llm_api_key = Some(secrecy::SecretString::from("sk-test".to_owned()));
        c.agents.llm_model = "test-model".to_owned();
    })
    .await;
    let agent = create_agent(&app, "You answer from the user's documents.").await;
    add_tool(&app, &agent, "search_my_documents", &tool_url, 30).await;

    (app, agent, model_log, tool_log)
}

/// The invoice question on the model's tool path, over one context item.
async fn model_tool_run(app: &Stack, agent: &str) -> Sse {
    let items =
        json!([{"text": "Invoices are issued monthly.", "meta": {"chunk_id": "c-9", "page": 1}}]);
    let (_, sse) = stream(
        app,
        agent,
        None,
        json!({"message": "When is INV-7 due?", "context_items": items, "citations_enabled": true}),
    )
    .await;
    sse
}

#[tokio::test]
async fn with_a_model_the_tool_path_streams_the_loop_and_calls_the_tool_the_model_asked_for() {
    let (app, agent, _, tool_log) = model_app().await;
    let sse = model_tool_run(&app, &agent).await;
    let names = sse.names();
    assert_eq!(
        &names[..6],
        [
            "start",
            "step_started",
            "tool_call",
            "tool_result",
            "step_completed",
            "step_started"
        ]
    );
    assert_eq!(
        &names[names.len() - 3..],
        ["step_completed", "chunk", "complete"]
    );
    assert_eq!(
        sse.events
            .iter()
            .filter(|e| e["event"] == "content_delta")
            .count(),
        5
    );

    let call = sse.one("tool_call");
    assert_eq!(call["call_id"], "call_model_1");
    assert_eq!(
        call["arguments"],
        json!({"query": "INV-7", "session_token": "tok_abc"})
    );
    assert_eq!(
        tool_log.lock().unwrap()[0].1,
        json!({"query": "INV-7", "session_token": "tok_abc"})
    );
}

#[tokio::test]
async fn with_a_model_chunk_is_what_streamed_and_complete_has_its_markers_checked() {
    let (app, agent, _, _) = model_app().await;
    let sse = model_tool_run(&app, &agent).await;
    // `chunk` is what streamed; `complete` has the markers checked against the one item.
    assert_eq!(
        sse.one("chunk")["content"],
        "Invoice INV-7 is due on 3 March [1][7]."
    );
    let complete = sse.one("complete");
    assert_eq!(complete["content"], "Invoice INV-7 is due on 3 March [1].");
    assert_eq!(complete["citations"][0]["chunk_id"], "c-9");
    assert_eq!(complete["steps"], 2);
    assert_eq!(complete["usage"]["total_tokens"], 144);
    assert_eq!(complete["status"], "completed");
}

#[tokio::test]
async fn the_model_is_asked_with_the_platforms_prompt_its_tools_and_the_tools_result() {
    let (app, agent, model_log, _) = model_app().await;
    model_tool_run(&app, &agent).await;
    let requests = model_log.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let (headers, first) = &requests[0];
    assert_eq!(headers["authorization"], "Bearer sk-test");
    assert_eq!(first["model"], "test-model");
    assert_eq!(first["stream"], true);
    assert_eq!(first["tools"][0]["function"]["name"], "search_my_documents");
    let system = first["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.starts_with(
            "You answer from the user's documents.\n\nContext:\n[1] Invoices are issued monthly."
        ),
        "{system}"
    );
    assert!(
        system.contains("include citations in brackets like [1], [2]"),
        "{system}"
    );
    assert_eq!(
        first["messages"][1],
        json!({"role": "user", "content": "When is INV-7 due?"})
    );
    let second = &requests[1].1;
    let tool_message = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert_eq!(tool_message["tool_call_id"], "call_model_1");
    assert!(
        tool_message["content"]
            .as_str()
            .unwrap()
            .contains("3 March 2025")
    );
}

#[tokio::test]
async fn the_next_run_in_a_session_gives_the_model_the_history_without_markers() {
    let (app, agent, model_log, _) = model_app().await;
    let sse = model_tool_run(&app, &agent).await;
    let complete = sse.one("complete");
    // The next run in the session gives the model the history, markers removed.
    let session = complete["session_id"].clone();
    let (_, sse) = stream(
        &app,
        &agent,
        None,
        json!({"message": "Thanks!", "session_id": session}),
    )
    .await;
    assert_eq!(sse.one("complete")["status"], "completed");
    let third = model_log.lock().unwrap()[2].1.clone();
    let history: Vec<&Value> = third["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .collect();
    assert_eq!(
        history[0],
        &json!({"role": "user", "content": "When is INV-7 due?"})
    );
    assert_eq!(
        history[1],
        &json!({"role": "assistant", "content": "Invoice INV-7 is due on 3 March."})
    );
    assert_eq!(history[2], &json!({"role": "user", "content": "Thanks!"}));
}

#[tokio::test]
async fn a_failing_model_fails_the_run_with_its_raw_error() {
    let (app, _, _, _) = model_app().await;
    // A failing model fails the run: on the plain path an `error` event, then `complete`.
    let plain = create_agent(&app, "").await;
    let (_, sse) = stream(&app, &plain, None, json!({"message": "FAIL please"})).await;
    assert_eq!(sse.names(), ["start", "error", "complete"]);
    let error = sse.one("error");
    assert_eq!(keys(error), set(&["event", "error", "run_id"]));
    assert!(error["error"].as_str().unwrap().contains("500"), "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("model overloaded"),
        "the raw body is kept: {error}"
    );
    let complete = sse.one("complete");
    assert_eq!(complete["status"], "failed");
    assert_eq!(complete["error"], error["error"]);
    let run = finished_run(&app, complete["run_id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], error["error"]);
}

/// Dora's (`alice`) session of a new agent with two turns (the first cited, over the
/// manual); and Eve (`bob`), another user.
struct DorasSession {
    agent: String,
    alice: String,
    alice_id: String,
    bob: String,
    run_id: String,
    complete: Value,
    base: String,
}

async fn doras_session(app: &Stack) -> DorasSession {
    let agent = create_agent(app, "").await;
    let (alice, alice_id) = user(app, "dora@example.com").await;
    let (bob, _) = user(app, "eve@example.com").await;
    let (_, sse) = stream(
        app,
        &agent,
        Some(&alice),
        json!({"message": "How long is the warranty on the motor?", "context_items": manual(), "citations_enabled": true}),
    )
    .await;
    let complete = sse.one("complete").clone();
    let session = complete["session_id"].as_str().unwrap().to_owned();
    let run_id = complete["run_id"].as_str().unwrap().to_owned();
    // A second turn in the same session.
    let (_, _) = stream(
        app,
        &agent,
        Some(&alice),
        json!({"message": "warranty?", "session_id": session}),
    )
    .await;

    DorasSession {
        agent,
        alice,
        alice_id,
        bob,
        run_id,
        complete,
        base: format!("/api/sessions/{session}"),
    }
}

/// GET `path` with a user's token, or with the service key.
async fn get_as(app: &Stack, path: String, token: Option<String>) -> (StatusCode, Value) {
    let request = match &token {
        Some(t) => app.request(Method::GET, &path, Some(t)),
        None => app.service(Method::GET, &path),
    };
    json_of(request.send().await.unwrap()).await
}

#[tokio::test]
async fn a_user_sees_their_session_in_the_platforms_shape() {
    let app = app().await;
    let DorasSession {
        agent,
        alice,
        alice_id,
        base,
        ..
    } = doras_session(&app).await;
    let (status, shown) = get_as(&app, base.clone(), Some(alice.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&shown),
        set(&[
            "id",
            "session_id",
            "agent_id",
            "user_id",
            "session_data",
            "metadata",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(shown["user_id"], alice_id.as_str());
    assert_eq!(shown["agent_id"], agent.as_str());
}

#[tokio::test]
async fn a_user_reads_their_sessions_messages_oldest_first_and_the_last_ones_by_limit() {
    let app = app().await;
    let DorasSession {
        alice,
        run_id,
        complete,
        base,
        ..
    } = doras_session(&app).await;
    let (status, messages) = get_as(&app, format!("{base}/messages"), Some(alice.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let list = messages["messages"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    assert_eq!(list[0]["role"], "user");
    assert_eq!(list[0]["content"], "How long is the warranty on the motor?");
    assert_eq!(list[1]["role"], "assistant");
    assert_eq!(list[1]["content"], complete["content"]);
    assert_eq!(list[1]["run_id"], run_id.as_str());
    assert_eq!(list[1]["citations"], complete["citations"]);
    let (_, last_two) = get_as(
        &app,
        format!("{base}/messages?limit=2"),
        Some(alice.clone()),
    )
    .await;
    assert_eq!(
        last_two["messages"].as_array().unwrap()[0]["content"],
        "warranty?"
    );
}

#[tokio::test]
async fn a_user_reads_their_sessions_runs_newest_first_and_a_runs_retrieved_context() {
    let app = app().await;
    let DorasSession {
        agent,
        alice,
        run_id,
        base,
        ..
    } = doras_session(&app).await;
    let (status, runs) = get_as(&app, format!("{base}/runs"), Some(alice.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2);
    assert_eq!(runs["runs"][1]["run_id"], run_id.as_str(), "newest first");
    assert_eq!(runs["runs"][1]["agent_id"], agent.as_str());
    let (status, retrieved) = get_as(
        &app,
        format!("{base}/runs/{run_id}/retrieved-context"),
        Some(alice.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retrieved["retrieved_context"][0]["source"], "context_items");
}

#[tokio::test]
async fn another_user_gets_404_on_every_session_route_and_the_service_role_200() {
    let app = app().await;
    let DorasSession {
        bob, run_id, base, ..
    } = doras_session(&app).await;
    for path in [
        base.clone(),
        format!("{base}/messages"),
        format!("{base}/runs"),
        format!("{base}/runs/{run_id}/retrieved-context"),
    ] {
        let (status, body) = get_as(&app, path.clone(), Some(bob.clone())).await;
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, json!({"error": "Session not found"})),
            "{path}"
        );
        let (status, _) = get_as(&app, path.clone(), None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn only_the_owner_deletes_a_session_through_the_session_routes() {
    let app = app().await;
    let DorasSession {
        alice, bob, base, ..
    } = doras_session(&app).await;
    let (status, body) = json_of(
        app.request(Method::DELETE, &base, Some(&bob))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::NOT_FOUND, json!({"error": "Session not found"}))
    );
    let (status, body) = json_of(
        app.request(Method::DELETE, &base, Some(&alice))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"success": true, "message": "Session deleted"})
        )
    );
    let (status, _) = get_as(&app, base, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A project whose agent model has no key: the platform's
/// `check_model_available` refuses `run` and `run/stream` with 400 before any
/// streaming, as Flask's HTML error page naming the model and the provider.
/// Off by default, where the same run streams.
#[tokio::test]
async fn a_model_without_a_key_is_refused_before_streaming_with_the_platform_page() {
    let keyed = app().await;
    let agent = create_agent(&keyed, "").await;
    let response = post(&keyed, &format!("/api/agents/{agent}/run/stream"), None)
        .json(&json!({"message": "What does the warranty cover?", "context_items": manual()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let unkeyed = spawn_sandbox_with(|c| {
        c.agents.token_delay_ms = 0;
        c.agents.model_without_key = true;
    })
    .await;
    let agent = create_agent(&unkeyed, "").await;
    for route in ["run", "run/stream"] {
        let response = post(&unkeyed, &format!("/api/agents/{agent}/{route}"), None)
            .json(&json!({"message": "What does the warranty cover?", "context_items": manual()}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{route}");
        let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(content_type, "text/html; charset=utf-8", "{route}");
        let page = response.text().await.unwrap();
        assert!(page.starts_with("<!doctype html>"), "{page}");
        assert!(
            page.contains(
                "<p>Model gpt-4o-mini requires BYOK. Add an API key for openai in Settings → LLM Provider Keys.</p>"
            ),
            "{page}"
        );
    }
    // An unknown agent is still 404 first, as on the platform.
    let response = post(
        &unkeyed,
        &format!("/api/agents/{}/run", uuid::Uuid::new_v4()),
        None,
    )
    .json(&json!({"message": "hi"}))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// An agent's knowledge bases, as powabase-ai's `routes/agents.py` keeps
/// them: the service role attaches, lists and detaches; a user gets 403.
/// Quire's companion reads the list at start-up (docs/platform-contract.md §5).
#[tokio::test]
async fn an_agents_knowledge_bases_are_attached_listed_and_detached_by_the_service_role() {
    let app = app().await;
    let agent = create_agent(&app, "").await;
    let other = create_agent(&app, "").await;
    let (status, kb) = json_of(
        post(&app, "/api/knowledge-bases", None)
            .json(&json!({"name": "shared"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{kb}");
    let kb = kb["id"].as_str().unwrap().to_owned();
    let path = format!("/api/agents/{agent}/knowledge-bases");
    let list = |agent: &str| {
        let path = format!("/api/agents/{agent}/knowledge-bases");
        let request = app.service(Method::GET, &path);
        async move { json_of(request.send().await.unwrap()).await }
    };
    assert_eq!(
        list(&agent).await,
        (StatusCode::OK, json!({"knowledge_bases": []}))
    );

    let attach = |body: Value| {
        let request = post(&app, &path, None).json(&body);
        async move { json_of(request.send().await.unwrap()).await }
    };
    assert_eq!(
        attach(json!({})).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "knowledge_base_id is required"})
        )
    );
    let (status, attached) = attach(json!({"knowledge_base_id": kb})).await;
    assert_eq!(status, StatusCode::CREATED, "{attached}");
    assert_eq!(attached["agent_id"], agent);
    assert_eq!(attached["knowledge_base_id"], kb);
    assert_eq!(attached["config"], json!({}));
    let assignment = attached["id"].as_str().unwrap().to_owned();
    assert_eq!(
        attach(json!({"knowledge_base_id": kb})).await,
        (
            StatusCode::CONFLICT,
            json!({"error": "KB already assigned to this agent"})
        )
    );
    let (status, listed) = list(&agent).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!({"knowledge_bases": [{"id": assignment, "knowledge_base_id": kb, "config": {}}]})
    );
    assert_eq!(list(&other).await.1, json!({"knowledge_bases": []}));

    // A user may do none of it.
    let (token, _) = user(&app, "a@example.com").await;
    let refused = json!({"error": "This endpoint requires the project's service role key"});
    let detach_path = format!("{path}/{assignment}");
    for (method, route) in [
        (Method::GET, path.clone()),
        (Method::POST, path.clone()),
        (Method::DELETE, detach_path.clone()),
    ] {
        let request = app
            .request(method.clone(), &route, Some(&token))
            .json(&json!({"knowledge_base_id": kb}));
        let answer = json_of(request.send().await.unwrap()).await;
        assert_eq!(
            answer,
            (StatusCode::FORBIDDEN, refused.clone()),
            "{method} {route}"
        );
    }

    // Detaching: only through its own agent, once.
    let detach = |route: String| {
        let request = app.service(Method::DELETE, &route);
        async move { json_of(request.send().await.unwrap()).await }
    };
    let not_found = (
        StatusCode::NOT_FOUND,
        json!({"error": "Assignment not found"}),
    );
    assert_eq!(
        detach(format!("/api/agents/{other}/knowledge-bases/{assignment}")).await,
        not_found
    );
    assert_eq!(
        detach(detach_path.clone()).await,
        (StatusCode::OK, json!({"deleted": true}))
    );
    assert_eq!(detach(detach_path).await, not_found);
    assert_eq!(list(&agent).await.1, json!({"knowledge_bases": []}));
}
