//! `cargo xtask bench` (companion part): what the companion adds to an answer, measured side by
//! side in one run with the same context and the sandbox's offline model at zero pace.
//!
//! 1. Time to the first delta and to `complete` through the companion's `POST /api/chat`
//!    (user token) vs the sandbox's `POST /api/agents/{id}/run/stream` called directly with the
//!    service key, the same chunks as `context_items` by value — p50, p99, ratio.
//! 2. Rows the companion writes per answer (`chat_events`, `chat_messages`).
//!
//! Numbers are printed, never asserted: benchmarks measure, tests decide.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use quire_companion::config::{Config, PlatformConfig};
use quire_companion::platform::Platform;
use quire_companion::provision;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use uuid::Uuid;

const WARMUP: usize = 3;
const RUNS: usize = 30;
const QUESTION: &str = "How long is the warranty on the motor?";
const PATIENCE: Duration = Duration::from_secs(90);
const MANUAL: [&str; 3] = [
    "The X200 blender has a 1200 W motor.\nIt ships with two glass jars.",
    "Cleaning: rinse the jars with warm water after every use.\nNever put the motor base in water.",
    "Warranty: the motor is covered for five years.\nThe jars are covered for one year only.",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = quire_testdb::TestDb::new().await;
    let data_dir = tempfile::tempdir()?;
    let mut sandbox_config = quire_sandbox::Config::new(data_dir.path(), db.url());
    sandbox_config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
    sandbox_config.agents.allow_loopback_tool_endpoints = true;
    sandbox_config.agents.token_delay_ms = 0;
    let sandbox = quire_sandbox::spawn(sandbox_config).await?;
    let api = sandbox.api_base().to_owned();
    let anon = sandbox.anon_key().expose_secret().to_owned();
    let service = sandbox.service_role_key().expose_secret().to_owned();
    let platform = PlatformConfig {
        api_url: api.parse()?,
        anon_key: sandbox.anon_key().clone(),
        service_role_key: sandbox.service_role_key().clone(),
    };
    let ids = provision::provision(&Platform::new(&platform)?, None).await?;
    let mut config = Config::new(
        platform,
        sandbox.jwt_secret().clone(),
        ids.agent_id,
        ids.knowledge_base_id,
        SecretString::from(format!("tool-secret-{}", Uuid::new_v4().simple())),
    );
    config.ingest.poll_initial = Duration::from_millis(20);
    config.ingest.poll_max = Duration::from_millis(300);
    // The sandbox allows loopback tool endpoints; the real platform does not.
    config.dev_allow_private_tool_url = true;
    let companion = quire_companion::spawn(config).await?;
    let url = companion.url();
    let http = reqwest::Client::new();

    // A user with one ready three-page document.
    let session: Value = http
        .post(format!("{api}/auth/v1/signup"))
        .header("apikey", &anon)
        .json(&json!({"email": "bench@example.test", "password": "bench-password"}))
        .send()
        .await?
        .json()
        .await?;
    let token = session["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let uid = session["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pdf = quire_testkit::fixtures::text_pdf(&MANUAL);
    let registered: Value = http
        .post(format!("{url}/api/documents"))
        .bearer_auth(&token)
        .json(&json!({"title": "X200 manual.pdf", "byte_size": pdf.len()}))
        .send()
        .await?
        .json()
        .await?;
    let document = registered["document_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let path = registered["storage_path"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let stored = http
        .post(format!("{api}/storage/v1/object/documents/{path}"))
        .header("apikey", &anon)
        .bearer_auth(&token)
        .header("content-type", "application/pdf")
        .body(pdf)
        .send()
        .await?;
    anyhow::ensure!(
        stored.status() == 200,
        "upload answered {}",
        stored.status()
    );
    let ingest = http
        .post(format!("{url}/api/documents/{document}/ingest"))
        .bearer_auth(&token)
        .send()
        .await?;
    anyhow::ensure!(
        ingest.status() == 202,
        "ingest answered {}",
        ingest.status()
    );
    let admin = db.admin().await;
    let started = Instant::now();
    loop {
        let status: String = admin
            .query_one(
                "select status from public.documents where id = $1::text::uuid",
                &[&document],
            )
            .await?
            .get(0);
        match status.as_str() {
            "ready" => break,
            "failed" | "no_text" => anyhow::bail!("the document ended {status}"),
            _ if started.elapsed() > PATIENCE => anyhow::bail!("the document is still {status}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let hits: Vec<Value> = http
        .post(format!("{api}/rest/v1/rpc/search_chunks"))
        .header("apikey", &anon)
        .bearer_auth(&token)
        .json(&json!({"query": QUESTION}))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(!hits.is_empty(), "search found no chunk");
    let chunk_ids: Vec<&str> = hits.iter().filter_map(|h| h["id"].as_str()).collect();

    // The companion: one conversation, asked again and again.
    let ask = |conversation: Option<String>| {
        let request = http
            .post(format!("{url}/api/chat"))
            .bearer_auth(&token)
            .json(
                &json!({"conversation_id": conversation, "message": QUESTION,
                          "chunk_ids": chunk_ids}),
            );
        timed(request, "delta", "complete")
    };
    let first = ask(None).await?;
    let conversation = first
        .conversation
        .ok_or_else(|| anyhow::anyhow!("the first answer named no conversation"))?;
    for _ in 1..WARMUP {
        ask(Some(conversation.clone())).await?;
    }
    let rows_before = count_rows(&admin).await?;
    let mut through = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        through.push(ask(Some(conversation.clone())).await?);
    }
    let rows_after = count_rows(&admin).await?;

    // Directly: the same chunks by value, an instruction item like the companion's, a
    // session of the user's made by the service role.
    let platform_session: Value = http
        .post(format!("{api}/api/agents/{}/sessions", ids.agent_id))
        .header("apikey", &service)
        .bearer_auth(&service)
        .json(&json!({"user_id": uid}))
        .send()
        .await?
        .json()
        .await?;
    let mut items: Vec<Value> = hits
        .iter()
        .map(|h| {
            json!({"text": h["text"], "meta": {"chunk_id": h["id"], "document_id": h["document_id"],
                   "page": h["page"], "title": "X200 manual.pdf"}})
        })
        .collect();
    items.push(json!({
        "text": format!(
            "To search the user's documents beyond this context, call search_my_documents with \
             session_token = {} and the user's question as query.",
            Uuid::new_v4().simple()
        ),
        "meta": {"kind": "instruction"},
    }));
    let run = || {
        let request = http
            .post(format!("{api}/api/agents/{}/run/stream", ids.agent_id))
            .header("apikey", &service)
            .bearer_auth(&service)
            .header("Accept", "text/event-stream")
            .json(
                &json!({"message": QUESTION, "session_id": platform_session["session_id"],
                          "context_items": items, "citations_enabled": true}),
            );
        timed(request, "content_delta", "complete")
    };
    for _ in 0..WARMUP {
        run().await?;
    }
    let mut direct = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        direct.push(run().await?);
    }

    let quantiles = |runs: &[Timing], pick: fn(&Timing) -> Duration| {
        let mut v: Vec<Duration> = runs.iter().map(pick).collect();
        v.sort();
        let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
        (at(0.50), at(0.99))
    };
    println!(
        "chat benchmarks (2 cores, loopback, offline model at zero pace, {RUNS} answers each)\n"
    );
    println!(
        "  {:<36} {:>10} {:>10} {:>10} {:>10}",
        "", "1st p50", "1st p99", "end p50", "end p99"
    );
    let (c_first, c_end) = (
        quantiles(&through, |t| t.first_delta),
        quantiles(&through, |t| t.complete),
    );
    let (d_first, d_end) = (
        quantiles(&direct, |t| t.first_delta),
        quantiles(&direct, |t| t.complete),
    );
    for (name, first, end) in [
        ("companion POST /api/chat", c_first, c_end),
        ("sandbox run/stream, service key", d_first, d_end),
    ] {
        println!(
            "  {name:<36} {:>10.2?} {:>10.2?} {:>10.2?} {:>10.2?}",
            first.0, first.1, end.0, end.1
        );
    }
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "  ratio companion/direct: first delta p50 {:.2}x p99 {:.2}x, complete p50 {:.2}x p99 {:.2}x",
        ratio(c_first.0, d_first.0),
        ratio(c_first.1, d_first.1),
        ratio(c_end.0, d_end.0),
        ratio(c_end.1, d_end.1),
    );
    let deltas =
        |runs: &[Timing]| runs.iter().map(|t| t.deltas).sum::<usize>() as f64 / RUNS as f64;
    println!(
        "  deltas per answer: companion {:.1}, direct {:.1}",
        deltas(&through),
        deltas(&direct)
    );
    println!(
        "\n  rows written per answer by the companion: chat_events {:.1}, chat_messages {:.1} \
         (the question and the answer)\n",
        (rows_after.0 - rows_before.0) as f64 / RUNS as f64,
        (rows_after.1 - rows_before.1) as f64 / RUNS as f64,
    );
    drop(companion);
    Ok(())
}

struct Timing {
    first_delta: Duration,
    complete: Duration,
    deltas: usize,
    conversation: Option<String>,
}

/// Sends `request` and reads its SSE stream to the end, timing the first `delta_event` and
/// `end_event` (named by the `event:` line, or by the data's `event`/`type` field).
async fn timed(
    request: reqwest::RequestBuilder,
    delta_event: &str,
    end_event: &str,
) -> anyhow::Result<Timing> {
    let start = Instant::now();
    let response = request.send().await?;
    anyhow::ensure!(
        response.status() == 200,
        "{} {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let (mut first_delta, mut complete, mut deltas, mut conversation) = (None, None, 0, None);
    while let Some(piece) = tokio::time::timeout(PATIENCE, body.next()).await? {
        buffer.push_str(&String::from_utf8_lossy(&piece?));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut name = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
            let name = name.unwrap_or_else(|| {
                data.get("event")
                    .or_else(|| data.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            });
            if conversation.is_none() {
                conversation = data["conversation_id"].as_str().map(str::to_owned);
            }
            if name == delta_event {
                deltas += 1;
                first_delta.get_or_insert_with(|| start.elapsed());
            } else if name == end_event {
                complete.get_or_insert_with(|| start.elapsed());
            } else if name == "error" {
                anyhow::bail!("the stream carried an error: {data}");
            }
        }
    }
    Ok(Timing {
        first_delta: first_delta.ok_or_else(|| anyhow::anyhow!("no {delta_event} event"))?,
        complete: complete.ok_or_else(|| anyhow::anyhow!("no {end_event} event"))?,
        deltas,
        conversation,
    })
}

async fn count_rows(admin: &tokio_postgres::Client) -> anyhow::Result<(i64, i64)> {
    let row = admin
        .query_one(
            "select (select count(*) from public.chat_events), (select count(*) from public.chat_messages)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
