//! `cargo xtask bench` (companion part): what the companion adds to an answer, measured side by
//! side in one run with the same context and the sandbox's offline model at zero pace.
//!
//! 1. Time to the first delta and to `complete` through the companion's `POST /api/chat`
//!    (user token) vs the sandbox's `POST /api/agents/{id}/run/stream` called directly with the
//!    service key, the same chunks as `context_items` by value — p50, p99, ratio.
//! 2. Rows the companion writes per answer (`chat_events`, `chat_messages`).
//!
//! The sandbox, the companion and the database run in a child process (this binary run again,
//! `quire_testkit::serve`), so the client's numbers do not include the servers' scheduling.
//!
//! Numbers are printed, never asserted: benchmarks measure, tests decide.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use quire_testkit::fixtures::{self, MANUAL};
use quire_testkit::{Api, Stack, User};
use serde_json::{Value, json};
use uuid::Uuid;

const WARMUP: usize = 3;
const RUNS: usize = 30;
const QUESTION: &str = "How long is the warranty on the motor?";
const PATIENCE: Duration = Duration::from_secs(90);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = quire_testkit::serve::stack_in_child(|| {
        Stack::builder().token_delay_ms(0).with_companion()
    })
    .await;

    // A user with one ready three-page document.
    let user = stack.user("bench@example.test").await;
    stack
        .ready_document(&user, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let hits = stack.search(&user, QUESTION).await;
    anyhow::ensure!(!hits.is_empty(), "search found no chunk");

    let (through, rows) = through_the_companion(&stack, &user, &hits).await?;
    let direct = directly(&stack, &user, &hits).await?;
    report(&through, &direct, rows);
    Ok(())
}

/// [`RUNS`] answers through the companion's `POST /api/chat` in one conversation (after
/// [`WARMUP`]), and the rows (`chat_events`, `chat_messages`) they wrote.
async fn through_the_companion(
    stack: &Api,
    user: &User,
    hits: &[Value],
) -> anyhow::Result<(Vec<Timing>, (i64, i64))> {
    let url = stack.companion_url().context("a companion")?;
    let chunk_ids: Vec<&str> = hits.iter().filter_map(|h| h["id"].as_str()).collect();
    let http = reqwest::Client::new();
    let ask = |conversation: Option<String>| {
        let request = http
            .post(format!("{url}/api/chat"))
            .bearer_auth(&user.token)
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
    let admin = stack.connect_db().await;
    let rows_before = count_rows(&admin).await?;
    let mut through = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        through.push(ask(Some(conversation.clone())).await?);
    }
    let rows_after = count_rows(&admin).await?;
    let written = (rows_after.0 - rows_before.0, rows_after.1 - rows_before.1);
    Ok((through, written))
}

/// [`RUNS`] runs of the sandbox's `run/stream` called directly (after [`WARMUP`]): the same
/// chunks by value, an instruction item like the companion's, a session of the user's made by
/// the service role.
async fn directly(stack: &Api, user: &User, hits: &[Value]) -> anyhow::Result<Vec<Timing>> {
    let (api, service) = (stack.api_base(), stack.service_key());
    let agent_id = stack.info.agent_id.context("an agent")?;
    let http = reqwest::Client::new();
    let platform_session: Value = http
        .post(format!("{api}/api/agents/{agent_id}/sessions"))
        .header("apikey", &service)
        .bearer_auth(&service)
        .json(&json!({"user_id": user.id}))
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
            .post(format!("{api}/api/agents/{agent_id}/run/stream"))
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
    Ok(direct)
}

/// Prints both sides, their ratios, and the rows the companion wrote per answer.
fn report(through: &[Timing], direct: &[Timing], rows: (i64, i64)) {
    let quantiles = |runs: &[Timing], pick: fn(&Timing) -> Duration| {
        let mut v: Vec<Duration> = runs.iter().map(pick).collect();
        v.sort();
        let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
        (at(0.50), at(0.99))
    };
    println!(
        "chat benchmarks (2 cores, loopback, offline model at zero pace, the servers in a child \
         process, {RUNS} answers each)\n"
    );
    println!(
        "  {:<36} {:>10} {:>10} {:>10} {:>10}",
        "", "1st p50", "1st p99", "end p50", "end p99"
    );
    let (c_first, c_end) = (
        quantiles(through, |t| t.first_delta),
        quantiles(through, |t| t.complete),
    );
    let (d_first, d_end) = (
        quantiles(direct, |t| t.first_delta),
        quantiles(direct, |t| t.complete),
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
        deltas(through),
        deltas(direct)
    );
    println!(
        "\n  rows written per answer by the companion: chat_events {:.1}, chat_messages {:.1} \
         (the question and the answer)\n",
        rows.0 as f64 / RUNS as f64,
        rows.1 as f64 / RUNS as f64,
    );
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
