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
use quire_testkit::Stack;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

/// A sandbox that lets the companion's loopback tool endpoint through,
/// `adjust`ed; no companion yet.
async fn sandbox(adjust: impl FnOnce(&mut quire_sandbox::Config) + Send) -> Stack {
    Stack::builder()
        .sandbox(|c| {
            c.agents.allow_loopback_tool_endpoints = true;
            c.agents.token_delay_ms = 0;
            adjust(c);
        })
        .spawn()
        .await
}

/// What a [`front`] answers itself: `Some` takes the request, `None` lets it
/// through to the sandbox.
type Intercept = Arc<dyn Fn(&Method, &str, &HeaderMap) -> Option<Response> + Send + Sync>;

/// What a [`front`] forwards instead of a request's body: given its path
/// and body.
type Rewrite = Arc<dyn Fn(&str, axum::body::Bytes) -> axum::body::Bytes + Send + Sync>;

struct Front {
    upstream: String,
    intercept: Intercept,
    rewrite: Rewrite,
    http: reqwest::Client,
}

/// A server that forwards every request to `upstream` (streaming the
/// answer back) unless `intercept` answers it; its base URL.
async fn front(upstream: &str, intercept: Intercept) -> String {
    front_with(upstream, intercept, Arc::new(|_, body| body)).await
}

/// [`front`], forwarding what `rewrite` makes of each request's body.
async fn front_with(upstream: &str, intercept: Intercept, rewrite: Rewrite) -> String {
    let front = Arc::new(Front {
        upstream: upstream.to_owned(),
        intercept,
        rewrite,
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
    let body = (front.rewrite)(&path, body);
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
            axum::Json(json!({}))
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
    let stack = sandbox(|_| {}).await;
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
    let config = stack.provision_companion(Some(&front)).await;

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
        let body: Value = serde_json::from_slice(&body).unwrap();
        let messages = body["messages"].as_array().unwrap();
        let token = messages
            .iter()
            .find_map(|m| find_token(m["content"].as_str().unwrap_or_default()))
            .expect("the instructions carry the session token");
        *keep.lock().unwrap() = Some(token.clone());
        let answered = messages.iter().any(|m| m["role"] == "tool");
        let chunks: Vec<Value> = if body.get("tools").is_some() && !answered {
            let arguments = json!({
                "query": "warranty", "session_token": token,
                "filters": {"note": format!("for {token}"), "list": [token]},
            });
            vec![
                json!({"choices": [{"index": 0, "delta": {"role": "assistant",
                    "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "search_my_documents",
                                 "arguments": arguments.to_string()}}]}}]}),
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            ]
        } else {
            let (head, tail) = token.split_at(20);
            let pieces = ["Your search key is ", head, tail, ". Keep it safe."];
            let mut chunks: Vec<Value> = pieces
                .iter()
                .map(|p| json!({"choices": [{"index": 0, "delta": {"content": p}}]}))
                .collect();
            chunks.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
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

/// Issue 14, item 5: the model repeats the run's `session_token` (which it
/// must pass to the search tool) in nested tool arguments and in its answer.
/// Neither the token nor its hash may reach the client, `chat_events`, the
/// stored answer or the broadcast.
#[tokio::test]
async fn the_session_token_never_leaves_the_run_whatever_the_model_writes() {
    let (model, seen) = leaky_model().await;
    let mut stack = sandbox(|c| {
        c.agents.llm_url = Some(model.parse().unwrap());
        c.agents.llm_api_key = Some(SecretString::from("sk-test".to_owned()));
        c.agents.llm_model = "test-model".to_owned();
    })
    .await;
    stack.start_companion(None, |_| {}).await;
    let a = stack.user("a@example.com").await;
    let b = stack.user("b@example.com").await;

    let response = stack
        .chat_response(&a, &json!({"message": "What is my search key?"}))
        .await;
    assert_eq!(response.status(), 200);
    let streamed = response.text().await.unwrap();

    let stored_events = stack.rows_as(&a, "chat_events?select=*").await;
    let stored_messages = stack.rows_as(&a, "chat_messages?select=*").await;
    let everything = format!(
        "{streamed}\n{}\n{}",
        Value::from(stored_events.clone()),
        Value::from(stored_messages.clone())
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
    assert!(stack.rows_as(&b, "chat_events?select=*").await.is_empty());
    assert!(stack.rows_as(&b, "chat_messages?select=*").await.is_empty());
}

/// Issue 14, item 7: the platform refuses the companion's service key for a
/// while (a key rotated under it) just as two users' documents are being
/// read. That is the operator's to fix: the documents wait and are retried,
/// they do not all end `failed`, and no platform text reaches them.
#[tokio::test]
async fn a_refused_service_key_is_retried_and_fails_no_ones_document() {
    let mut stack = sandbox(|_| {}).await;
    let service_key = stack.service_key();
    let refusals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = refusals.clone();
    let front = front(
        stack.sandbox.api_base(),
        Arc::new(move |method, path, headers| {
            use std::sync::atomic::Ordering;
            let polling_a_source = *method == Method::GET && path.starts_with("/api/sources/");
            let with_service_key =
                headers.get("apikey").and_then(|v| v.to_str().ok()) == Some(service_key.as_str());
            (polling_a_source && with_service_key && counted.fetch_add(1, Ordering::SeqCst) < 4)
                .then(|| {
                    Response::builder()
                        .status(401)
                        .header("content-type", "application/json")
                        .body(Body::from(
                            r#"{"error":"Invalid token: Signature verification failed"}"#,
                        ))
                        .unwrap()
                })
        }),
    )
    .await;
    stack.start_companion(Some(&front), |_| {}).await;
    let a = stack.user("a@example.com").await;
    let b = stack.user("b@example.com").await;

    let pdf = |fact: &str| quire_testkit::fixtures::document_pdf(&[fact]);
    let a_doc = stack
        .upload(
            &a,
            "A's manual",
            pdf("The X200 blender has a 1200 W motor."),
        )
        .await;
    let b_doc = stack
        .upload(
            &b,
            "B's notes",
            pdf("The garden hose is fifteen metres long."),
        )
        .await;

    for id in [a_doc, b_doc] {
        let (status, error) = stack.wait_document(id).await;
        assert_eq!(status, "ready", "{id}: {error:?}");
        assert_eq!(error, None);
    }
    assert!(
        refusals.load(std::sync::atomic::Ordering::SeqCst) >= 4,
        "the platform did refuse the key"
    );
    // Each sees their own document, and only it.
    let documents = "documents?select=id,status,error";
    let seen_by_a = stack.rows_as(&a, documents).await;
    assert_eq!(seen_by_a.len(), 1, "{seen_by_a:?}");
    assert_eq!(seen_by_a[0]["id"], a_doc.to_string());
    let seen_by_b = stack.rows_as(&b, documents).await;
    assert_eq!(seen_by_b.len(), 1, "{seen_by_b:?}");
    assert_eq!(seen_by_b[0]["id"], b_doc.to_string());
}

/// Issue 14, item 7: a token the companion accepts but PostgREST refuses
/// (here: issued "in the future", which PostgREST refuses beyond 30 s of
/// skew and the companion does not check) must reach the client as 401, so
/// that it refreshes the token, not as a 502 it would retry with the same
/// token.
#[tokio::test]
async fn a_user_token_postgrest_refuses_is_a_401_for_the_client() {
    let stack = Stack::builder().with_companion().spawn().await;
    let a = stack.user("a@example.com").await;
    let b = stack.user("b@example.com").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let refused = stack.sign(&json!({
        "sub": a.id, "role": "authenticated", "aud": "authenticated",
        "iat": now + 120, "exp": now + 3600,
    }));
    let conversation = uuid::Uuid::new_v4();
    let body = json!({"conversation_id": conversation, "message": "What does the warranty cover?"});

    let response = stack
        .companion_request(Method::POST, "/api/chat", Some(&refused))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let challenge = response.headers().get("www-authenticate").cloned();
    let answer: Value = response.json().await.unwrap();

    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "unauthorized", "{answer}");
    assert_eq!(
        challenge.as_ref().map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    // B's valid token on the same (not her) conversation: not found, as ever.
    let (status, answer) = quire_testkit::json_of(stack.chat_response(&b, &body).await).await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        stack
            .rows_as(&a, "chat_messages?select=id")
            .await
            .is_empty()
    );
    assert!(
        stack
            .rows_as(&b, "chat_messages?select=id")
            .await
            .is_empty()
    );
}

/// Issue 14, item 7: the platform refuses a document with its own words
/// (which may name its internals). The owner reads Quire's sentence and a
/// reference the operator can find in the log; never the platform's text.
/// B's document is unaffected and B sees nothing of A's.
#[tokio::test]
async fn a_platform_refusal_reaches_the_owner_in_quires_words_with_a_reference() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut stack = sandbox(|_| {}).await;
    let refusing = Arc::new(AtomicBool::new(false));
    let on = refusing.clone();
    let front = front(
        stack.sandbox.api_base(),
        Arc::new(move |method, path, _| {
            let refuse = on.load(Ordering::SeqCst)
                && *method == Method::GET
                && path.starts_with("/api/sources/");
            refuse.then(|| {
                Response::builder()
                    .status(400)
                    .header("content-type", "application/json")
                    .body(Body::from(
                        r#"{"error":"extractor crashed at /srv/powabase/workers/7 (tenant 42)"}"#,
                    ))
                    .unwrap()
            })
        }),
    )
    .await;
    stack.start_companion(Some(&front), |_| {}).await;
    let a = stack.user("a@example.com").await;
    let b = stack.user("b@example.com").await;
    let pdf = |fact: &str| quire_testkit::fixtures::document_pdf(&[fact]);
    let b_doc = stack
        .ready_document(
            &b,
            "B's notes",
            pdf("The garden hose is fifteen metres long."),
        )
        .await;

    // From now on the platform refuses to say how a source is doing.
    refusing.store(true, Ordering::SeqCst);
    let a_doc = stack
        .upload(
            &a,
            "A's manual",
            pdf("The X200 blender has a 1200 W motor."),
        )
        .await;
    let (status, error) = stack.wait_document(a_doc).await;

    assert_eq!(status, "failed");
    let error = error.expect("a reason");
    assert!(
        !error.contains("/srv") && !error.contains("extractor crashed"),
        "{error}"
    );
    assert!(error.contains("(ref "), "{error}");
    let seen_by_a = stack.rows_as(&a, "documents?select=id,error").await;
    assert_eq!(seen_by_a.len(), 1, "{seen_by_a:?}");
    assert_eq!(seen_by_a[0]["error"], error.as_str());
    let seen_by_b = stack.rows_as(&b, "documents?select=id,status").await;
    assert_eq!(seen_by_b.len(), 1, "{seen_by_b:?}");
    assert_eq!(seen_by_b[0]["id"], b_doc.to_string());
    assert_eq!(seen_by_b[0]["status"], "ready");
}

/// Issue 14, item 8: a knowledge base attached to Quire's agent becomes its
/// `knowledge_search` tool, which searches the whole knowledge base — every
/// user's documents — for whoever asks (docs/platform/ai-api.md §5.1). The
/// companion refuses to start on such an agent, and starts once it is
/// detached.
#[tokio::test]
async fn the_companion_refuses_an_agent_with_a_knowledge_base_attached() {
    let stack = sandbox(|_| {}).await;
    let config = stack.provision_companion(None).await;
    let attached_path = format!("/api/agents/{}/knowledge-bases", config.agent_id);
    let (status, attached) = quire_testkit::json_of(
        stack
            .service(Method::POST, &attached_path)
            .json(&json!({"knowledge_base_id": config.knowledge_base_id}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{attached}");

    let err = match quire_companion::spawn(config.clone()).await {
        Ok(companion) => {
            companion.shutdown().await.unwrap();
            panic!("the companion started with a knowledge base on its agent");
        }
        Err(err) => err,
    };
    let typed = err
        .downcast_ref::<quire_companion::startup::StartupError>()
        .unwrap_or_else(|| panic!("a StartupError, got: {err:#}"));
    assert!(
        matches!(
            typed,
            quire_companion::startup::StartupError::KnowledgeBaseAttached { .. }
        ),
        "{typed:?}"
    );
    let said = format!("{err:#}");
    assert!(
        said.contains(&config.knowledge_base_id.to_string()),
        "{said}"
    );

    let detach = format!("{attached_path}/{}", attached["id"].as_str().unwrap());
    let response = stack.service(Method::DELETE, &detach).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let companion = quire_companion::spawn(config)
        .await
        .expect("the companion starts on an agent without knowledge bases");
    companion.shutdown().await.unwrap();
}

/// Issue 14, item 8: the platform's answer for A's source also holds items
/// of B's source (here: the request is widened on its way, as a platform bug
/// or anything between would). Copying checks each item's `source_id`, so
/// none of B's text becomes A's, and A's searches never find it.
#[tokio::test]
async fn chunks_of_another_source_are_never_copied_into_a_users_document() {
    let mut stack = sandbox(|_| {}).await;
    let widen_with: Arc<Mutex<Option<String>>> = Arc::default();
    let extra = widen_with.clone();
    let front = front_with(
        stack.sandbox.api_base(),
        Arc::new(|_, _, _| None),
        Arc::new(move |path, body| {
            let Some(other) = extra.lock().unwrap().clone() else {
                return body;
            };
            if !path.ends_with("/items") {
                return body;
            }
            let mut asked: Value = serde_json::from_slice(&body).unwrap();
            asked["source_ids"]
                .as_array_mut()
                .unwrap()
                .push(json!(other));
            serde_json::to_vec(&asked).unwrap().into()
        }),
    )
    .await;
    stack.start_companion(Some(&front), |_| {}).await;
    let a = stack.user("a@example.com").await;
    let b = stack.user("b@example.com").await;
    let pdf = |fact: &str| quire_testkit::fixtures::document_pdf(&[fact]);
    let b_doc = stack
        .ready_document(
            &b,
            "B's notes",
            pdf("The garden hose is fifteen metres long."),
        )
        .await;
    let b_source = stack
        .rows(&format!("documents?select=source_id&id=eq.{b_doc}"))
        .await[0]["source_id"]
        .as_str()
        .unwrap()
        .to_owned();

    *widen_with.lock().unwrap() = Some(b_source);
    stack
        .ready_document(
            &a,
            "A's manual",
            pdf("The X200 blender has a 1200 W motor."),
        )
        .await;

    assert!(
        stack.search(&a, "garden hose").await.is_empty(),
        "A finds B's text"
    );
    let a_chunks = stack.rows_as(&a, "document_chunks?select=text").await;
    assert!(!a_chunks.is_empty());
    assert!(
        a_chunks
            .iter()
            .all(|c| !c["text"].as_str().unwrap().contains("garden hose")),
        "B's text was copied into A's document"
    );
    assert!(!stack.search(&a, "blender motor").await.is_empty());
    assert!(!stack.search(&b, "garden hose").await.is_empty());
}

/// Issue 14, item 10: Storage, or whatever answers at the platform's URL,
/// starts sending A's file and stops mid-answer. The companion's check of
/// the upload (`POST /api/documents/{id}/ingest`) ends with an error once
/// the platform client's read timeout passes, instead of holding the
/// request for ever; B's upload, at the same time, comes through.
#[tokio::test]
async fn storage_that_stops_mid_answer_ends_the_upload_check_with_an_error() {
    use futures_util::StreamExt as _;
    use std::time::Duration;

    let mut stack = sandbox(|_| {}).await;
    let a = stack.user("a@example.com").await;
    let b = stack.user("b@example.com").await;
    let a_files = format!("/storage/v1/object/authenticated/documents/{}/", a.id);
    let front = front(
        stack.sandbox.api_base(),
        Arc::new(move |method, path, _| {
            (*method == Method::GET && path.starts_with(&a_files)).then(|| {
                let head = futures_util::stream::once(async {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"%PDF-1.7\n"))
                });
                Response::builder()
                    .header("content-type", "application/pdf")
                    .header("content-length", "4096")
                    .body(Body::from_stream(
                        head.chain(futures_util::stream::pending()),
                    ))
                    .unwrap()
            })
        }),
    )
    .await;
    stack
        .start_companion(Some(&front), |c| {
            c.platform.timeouts.read = Duration::from_secs(2);
            c.platform.timeouts.call = Duration::from_secs(4);
        })
        .await;

    let pdf = quire_testkit::fixtures::document_pdf(&["The X200 blender has a 1200 W motor."]);
    let (status, registered) = stack
        .register(&a, &json!({"title": "A's manual", "byte_size": pdf.len()}))
        .await;
    assert_eq!(status, 201, "{registered}");
    let id = registered["document_id"].as_str().unwrap().to_owned();
    let path = registered["storage_path"].as_str().unwrap().to_owned();
    assert_eq!(stack.put_object(&a, &path, pdf).await, 200);

    // The outer timeout only detects a hang; the bound is the companion's.
    let (checked, b_doc) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(90), stack.ingest(&a, &id)),
        stack.upload(
            &b,
            "B's notes",
            quire_testkit::fixtures::document_pdf(&["The garden hose is fifteen metres long."]),
        ),
    );
    let (status, answer) = checked.expect("the upload check ends instead of hanging");
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["error"], "platform_unavailable", "{answer}");
    let a_rows = stack.rows_as(&a, "documents?select=id,status").await;
    assert_eq!(a_rows, vec![json!({"id": id, "status": "uploading"})]);

    let (status, error) = stack.wait_document(b_doc).await;
    assert_eq!(status, "ready", "{error:?}");
    let b_rows = stack.rows_as(&b, "documents?select=id").await;
    assert_eq!(b_rows, vec![json!({"id": b_doc.to_string()})]);
}

/// Issue 14, item 10: a platform that accepts the connection and never
/// answers. Draining the session-deletion outbox against it (here a
/// server of the test's own: it answers the outbox's `rpc` and holds every
/// `DELETE` open) ends, the session left for the next drain, once the
/// platform client's total timeout passes.
#[tokio::test]
async fn a_session_deletion_the_platform_never_answers_ends() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let deletes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = deletes.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut piece = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut piece).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&piece[..n]);
                    let text = String::from_utf8_lossy(&buffer).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    if text.starts_with("DELETE ") {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // Accepted, never answered.
                        std::future::pending::<()>().await;
                    }
                    let length: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    buffer.drain(..end + 4 + length);
                    let body = if text.contains("/rpc/pending_session_deletions") {
                        r#"["3f0b8a52-5a4c-4c43-9d7e-6a1f1e0f7c11"]"#
                    } else {
                        "null"
                    };
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut config = quire_companion::config::PlatformConfig {
        api_url: base.parse().unwrap(),
        anon_key: SecretString::from("anon"),
        service_role_key: SecretString::from("service"),
        timeouts: Default::default(),
    };
    config.timeouts.call = Duration::from_secs(2);
    let platform = quire_companion::platform::Platform::new(&config).unwrap();

    // The outer timeout only detects a hang; the bound is the client's.
    let drained = tokio::time::timeout(
        Duration::from_secs(60),
        quire_companion::sessions::drain_once(&platform, &uuid::Uuid::new_v4().to_string()),
    )
    .await
    .expect("the drain ends instead of hanging");
    assert_eq!(
        drained.unwrap(),
        0,
        "the session is left for the next drain"
    );
    assert_eq!(deletes.load(std::sync::atomic::Ordering::SeqCst), 1);
}
