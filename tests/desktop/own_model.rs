//! Your own model in the local stack (README.md, "Your own model"): the sandbox's agent answers
//! through an OpenAI-compatible server, and a person asking in the window sees that model's
//! answer stream in with its citation.
//!
//! The model is a fake in the test process that speaks as llama.cpp's `llama-server` does:
//! `POST /v1/chat/completions`, an SSE stream of `choices[0].delta` chunks ending in
//! `data: [DONE]`. Offered tools, it first calls `search_my_documents` with the run's
//! `session_token`; then it answers, citing the context item that holds the parade. It holds the
//! answer after its first sentence until the test has seen that sentence in the window, so the
//! streaming is proven without relying on any pace.
//!
//! The other window tests share the dev stack, whose sandbox answers with the offline model, and
//! a sandbox's model is chosen when it starts. So this test brings a stack of its own
//! (quire-testkit: the sandbox and the companion in the test process, over a database of its
//! own), its model set as `QUIRE_SANDBOX_LLM_URL`, `_API_KEY` and `_MODEL` set the dev stack's,
//! and launches the app against it ([`Profile::on`]); the dev stack is left as it is.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use quire_testkit::{Stack, fixtures};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::chat::upload_ready;
use crate::driver::{ANSWER, App, Profile, message_css};
use crate::support::{self, DevStack as _, QUESTION, squash};

/// The model's name, as `QUIRE_SANDBOX_LLM_MODEL` gives it.
const MODEL: &str = "qwen2.5-7b-instruct-q4_k_m";
/// The tool the companion gives Quire's agent (`tool::TOOL_NAME`).
const TOOL: &str = "search_my_documents";
/// The answer's first sentence, which the model streams before it waits for the test.
const FIRST: &str = "During the harbour lantern parade the fishing families carry paper lanterns \
                     along the harbour wall at dusk";
/// The rest of the answer, streamed once the test has seen the first sentence.
const REST: &str = "At the slipway the lanterns are set afloat on rafts and drift out on the ebbing \
                    tide until the last one burns out beyond the breakwater";
/// B's document: about a lantern parade too, so that a search that leaked would find it.
const B_PASSAGE: &str = "At the Saltmere harbour lantern parade every lantern is lit from one \
                         candle carried by the youngest child, and the parade committee keeps \
                         its accounts under the name marigold kestrel.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_from_your_own_model_streams_into_the_window_with_its_citation() -> Result<()> {
    let model = FakeModel::start().await?;
    let key = format!("sk-own-model-{}", support::unique());
    let stack = Stack::builder()
        .sandbox({
            let (url, key) = (model.url.clone(), key.clone());
            move |c| {
                c.agents.llm_url = Some(url.parse().expect("the fake model's URL"));
                c.agents.llm_api_key = Some(key.into());
                c.agents.llm_model = MODEL.to_owned();
            }
        })
        .with_companion()
        .spawn()
        .await;
    let a = stack.new_user("own-model-a").await?;
    let b = stack.new_user("own-model-b").await?;
    let b_session = stack.tokens(&b).await?;
    let b_doc = stack
        .ready_document(
            &b_session,
            "Saltmere notes",
            fixtures::text_pdf(&[&fixtures::wrap(B_PASSAGE, 88)]),
        )
        .await
        .to_string();

    let files = tempfile::tempdir()?;
    let title = format!("Port Ellery almanac {}", support::unique());
    let profile = Profile::on("own-model", stack.api())?;
    let app = App::launch("own-model", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    let doc_id = upload_ready(&app, files.path(), &title).await?;

    app.ask(QUESTION).await?;
    let arriving = app
        .wait_until(r#"message[data-role="assistant"]"#, ANSWER, |answers| {
            answers.into_iter().find(|m| {
                m.data("status") == "streaming"
                    && squash(m.body.as_deref().unwrap_or_default()).contains(FIRST)
            })
        })
        .await
        .context("the model's first sentence was not shown while the answer streamed")?;
    app.screenshot("answer-arriving").await?;
    ensure!(
        !squash(arriving.body.as_deref().unwrap_or_default()).contains(&REST[..20]),
        "the rest of the answer was shown before the model sent it: {arriving:?}"
    );
    model.release();
    let id = arriving.data("id").to_owned();
    let answer = app.wait_answer_settled(&id).await?;
    app.screenshot("answer-complete").await?;
    ensure!(
        answer.data("status") == "complete",
        "the answer ended {:?}: {answer:?}",
        answer.data("status")
    );
    let body = squash(answer.body.as_deref().unwrap_or_default());
    ensure!(
        body.contains(FIRST) && body.contains(REST),
        "the window does not show the model's answer: {body:?}"
    );

    // The answer's citation and its source chip point at page 2 of A's document, not at B's.
    let citations = app
        .items_css(&format!(r#"{} [data-testid="citation"]"#, message_css(&id)))
        .await?;
    ensure!(
        !citations.is_empty(),
        "the answer has no citation: {body:?}"
    );
    for c in &citations {
        ensure!(
            c.data("documentId") == doc_id && c.data("page") == "2",
            "a citation points elsewhere than page 2 of {doc_id}: {c:?}"
        );
    }
    let chips = app
        .items_css(&format!(
            r#"{} [data-testid="source-chip"]"#,
            message_css(&id)
        ))
        .await?;
    ensure!(
        chips.iter().any(|c| c.data("documentId") == doc_id),
        "no source chip for the document: {chips:?}"
    );
    ensure!(
        chips.iter().all(|c| c.data("documentId") != b_doc),
        "a source chip names B's document: {chips:?}"
    );

    check_what_the_model_got(&model.calls(), &key)?;

    let page = app.page_text().await?;
    ensure!(!page.contains(&key), "the model's key is in the web view");
    ensure!(
        !page.contains("marigold kestrel"),
        "B's document is in A's window"
    );
    let rows = stack
        .rows(&format!(
            "chat_messages?id=eq.{id}&select=owner_id,status,citations"
        ))
        .await;
    let row = rows
        .first()
        .context("no chat_messages row for the answer")?;
    ensure!(
        row["owner_id"] == a.id.as_str() && row["status"] == "complete",
        "{row}"
    );
    let stored = row["citations"].as_array().cloned().unwrap_or_default();
    ensure!(
        !stored.is_empty() && stored.iter().all(|c| c["page"] == 2),
        "stored citations: {stored:?}"
    );
    for table in ["conversations", "chat_messages", "chat_events"] {
        let seen = stack
            .rows_as(&b_session, &format!("{table}?select=id"))
            .await;
        ensure!(seen.is_empty(), "B reads A's {table}: {seen:?}");
    }
    app.close().await
}

/// The model was called twice, as configured (its name, the key as a bearer token, streaming):
/// first with the search tool and A's passage in the run's context, then with the tool's
/// result, which is A's passage too. Nothing of B's document ever reached it.
fn check_what_the_model_got(calls: &[Call], key: &str) -> Result<()> {
    ensure!(
        calls.len() == 2,
        "the model was called {} times",
        calls.len()
    );
    let passage = "paper lanterns shaped like herring, crabs and sailing boats";
    for call in calls {
        ensure!(call.body["model"] == MODEL, "model {}", call.body["model"]);
        ensure!(
            call.authorization.as_deref() == Some(format!("Bearer {key}").as_str()),
            "the model's key was not sent as a bearer token"
        );
        ensure!(call.body["stream"] == true, "not a streamed call");
        ensure!(
            !call.body.to_string().contains("marigold kestrel"),
            "B's document reached the model: {}",
            call.body
        );
        let messages = call.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ensure!(
            messages
                .iter()
                .any(|m| m["role"] == "user" && m["content"] == QUESTION),
            "the question is not among the messages"
        );
        let system = text_of(&messages, "system");
        ensure!(
            squash(&system).contains(passage),
            "the run's context does not hold A's passage: {system:?}"
        );
    }
    ensure!(
        calls[0].body["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == TOOL)),
        "the first call offered no {TOOL}: {}",
        calls[0].body
    );
    let messages = calls[1].body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // The companion's tool answers `{"results": [{text, …}, …]}` (crates/companion/src/tool.rs).
    let result = text_of(&messages, "tool");
    let found: Value = serde_json::from_str(&result)
        .with_context(|| format!("the search tool's result is not JSON: {result:?}"))?;
    let texts: Vec<&str> = found["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hit| hit["text"].as_str())
        .collect();
    ensure!(
        squash(&texts.join("\n")).contains(passage),
        "the search tool's result does not hold A's passage: {result:?}"
    );
    Ok(())
}

/// The text of the messages of `role`, joined.
fn text_of(messages: &[Value], role: &str) -> String {
    messages
        .iter()
        .filter(|m| m["role"] == role)
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

// --- The fake model --------------------------------------------------------------------------

/// One request the model got.
#[derive(Debug, Clone)]
struct Call {
    authorization: Option<String>,
    body: Value,
}

/// An OpenAI-compatible server on a free loopback port; its base URL ends in `/v1`, as
/// llama-server's, Ollama's and vLLM's do.
struct FakeModel {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    /// Lets the held answer go on.
    release: Arc<Notify>,
}

impl FakeModel {
    async fn start() -> Result<FakeModel> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let model = FakeModel {
            url: format!("http://{}/v1", listener.local_addr()?),
            calls: Arc::default(),
            release: Arc::new(Notify::new()),
        };
        let (calls, release) = (model.calls.clone(), model.release.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, calls.clone(), release.clone()));
            }
        });
        Ok(model)
    }

    /// Lets the answer go on past its first sentence.
    fn release(&self) {
        self.release.notify_one();
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("the calls").clone()
    }
}

/// Answers one connection: a `POST /v1/chat/completions` with a stream of chunks, anything
/// else with 404.
async fn answer(mut stream: TcpStream, calls: Arc<Mutex<Vec<Call>>>, release: Arc<Notify>) {
    let Ok(Some((head, body))) = read_request(&mut stream).await else {
        return;
    };
    if !head.starts_with("POST /v1/chat/completions ") {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    calls.lock().expect("the calls").push(Call {
        authorization: header(&head, "authorization"),
        body: body.clone(),
    });
    let (now, later) = reply(&body);
    let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                    cache-control: no-cache\r\nconnection: close\r\n\r\n"
        .to_vec();
    for chunk in &now {
        out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    }
    if stream.write_all(&out).await.is_err() {
        return;
    }
    if !later.is_empty() {
        release.notified().await;
    }
    let mut out = Vec::new();
    for chunk in &later {
        out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    }
    let usage = json!({"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960});
    let last = json!({"id": "chatcmpl-own", "object": "chat.completion.chunk", "created": 0,
                      "model": MODEL, "choices": [], "usage": usage});
    out.extend_from_slice(format!("data: {last}\n\ndata: [DONE]\n\n").as_bytes());
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// The chunks to send at once and those to send after the release: a call of the search tool
/// when it is offered and not yet called, else the answer, citing the context item about the
/// parade.
fn reply(request: &Value) -> (Vec<Value>, Vec<Value>) {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let system = text_of(&messages, "system");
    let offered = request["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == TOOL));
    if offered && !messages.iter().any(|m| m["role"] == "tool") {
        let arguments = json!({
            "query": "harbour lantern parade",
            "session_token": session_token(&system).unwrap_or_default(),
        })
        .to_string();
        let (head, tail) = arguments.split_at(arguments.len() / 2);
        let call = json!({"index": 0, "id": "call_own_1", "type": "function",
                          "function": {"name": TOOL, "arguments": ""}});
        let piece = |arguments: &str| {
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
                None,
            )
        };
        let now = vec![
            chunk(
                json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                None,
            ),
            piece(head),
            piece(tail),
            chunk(json!({}), Some("tool_calls")),
        ];
        return (now, Vec::new());
    }
    let n = cited_item(&system, "lantern parade").unwrap_or(1);
    let words = |text: &str| -> Vec<Value> {
        text.split_inclusive(' ')
            .map(|word| chunk(json!({"content": word}), None))
            .collect()
    };
    let mut now = vec![chunk(json!({"role": "assistant", "content": null}), None)];
    now.extend(words(&format!("{FIRST} [{n}]. ")));
    let mut later = words(&format!("{REST} [{n}]."));
    later.push(chunk(json!({}), Some("stop")));
    (now, later)
}

/// One streamed chunk, as llama-server writes it.
fn chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({"id": "chatcmpl-own", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
}

/// The `n` of the context item (`[n] text`, as the platform writes a run's context into the
/// system prompt) that mentions `phrase`.
fn cited_item(system: &str, phrase: &str) -> Option<usize> {
    let context = &system[system.find("Context:")?..];
    (1..=50).find(|n| {
        let Some(start) = context.find(&format!("[{n}] ")) else {
            return false;
        };
        let end = context
            .find(&format!("[{}] ", n + 1))
            .unwrap_or(context.len());
        start < end && squash(&context[start..end]).contains(phrase)
    })
}

/// The run's `session_token` (`qst_` and 64 hex digits), which the companion gives the model
/// in the run's context for the search tool.
fn session_token(text: &str) -> Option<String> {
    text.match_indices("qst_").find_map(|(at, _)| {
        let hex: String = text[at + 4..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect();
        (hex.len() == 64).then(|| format!("qst_{hex}"))
    })
}

/// Reads one request: its head and its body (of `content-length` bytes).
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut piece).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = stream.read(&mut piece).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&piece[..n]);
    }
    Ok(Some((head, buffer[head_end..head_end + length].to_vec())))
}

/// A header's value in a request head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}
