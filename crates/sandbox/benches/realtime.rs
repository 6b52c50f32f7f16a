//! `cargo xtask bench` (Realtime part): how long a row that `realtime.send()` commits takes to
//! reach the vsn 1.0.0 WebSocket clients joined to the private channel `realtime:user:<uid>`.
//!
//! 1. Latency, one message at a time, from the `select realtime.send(…)` statement being sent
//!    (it commits on its own) to the broadcast frame read by each subscriber — p50, p99, with
//!    1 and with 100 subscribers.
//! 2. Messages per second delivered: a burst sent back to back, counted until every
//!    subscriber has read all of it.
//!
//! The sandbox and its database run in a child process (this binary run again,
//! `quire_testkit::serve`), so the subscribers' numbers do not include the server's scheduling.
//!
//! Supabase's published figures stand beside them (not measured here). Numbers are printed,
//! never asserted: benchmarks measure, tests decide.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use quire_testkit::{Api, Stack};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const WARMUP: usize = 20;
const LATENCY_MESSAGES_ONE: usize = 500;
const LATENCY_MESSAGES_MANY: usize = 150;
const BURST_ONE: usize = 2000;
const BURST_MANY: usize = 200;
const PATIENCE: Duration = Duration::from_secs(30);

/// Supabase Realtime's published benchmark medians (supabase.com/docs/guides/realtime/benchmarks).
const SUPABASE_BROADCAST_MEDIAN_MS: f64 = 6.0;
const SUPABASE_RLS_MEDIAN_MS: f64 = 19.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = quire_testkit::serve::stack_in_child(Stack::builder).await;
    let ws_base = stack.api_base().replacen("http", "ws", 1);
    let anon = stack.anon_key();
    let admin = stack.connect_db().await;

    println!(
        "realtime benchmarks (2 cores, loopback, private channel realtime:user:<uid>, the sandbox \
         in a child process)\n"
    );
    println!(
        "  {:<28} {:>10} {:>10} {:>14}",
        "", "p50", "p99", "delivered/s"
    );
    let mut results = Vec::new();
    for (subscribers, latency_messages, burst) in [
        (1, LATENCY_MESSAGES_ONE, BURST_ONE),
        (100, LATENCY_MESSAGES_MANY, BURST_MANY),
    ] {
        let (p50, p99, per_sec) = run(
            &stack,
            &admin,
            &ws_base,
            &anon,
            subscribers,
            latency_messages,
            burst,
        )
        .await?;
        let name = format!(
            "{subscribers} subscriber{}",
            if subscribers == 1 { "" } else { "s" }
        );
        println!("  {name:<28} {p50:>10.2?} {p99:>10.2?} {per_sec:>14.0}");
        results.push((subscribers, p50));
    }
    println!(
        "  latency = statement sent (autocommit) → frame read; delivered/s = burst of {BURST_ONE} \
         (1 subscriber) / {BURST_MANY} (100 subscribers) messages"
    );
    println!("\n  Supabase's published medians, for reference (not measured here):");
    println!(
        "  {:<28} {:>7.0} ms",
        "broadcast", SUPABASE_BROADCAST_MEDIAN_MS
    );
    println!(
        "  {:<28} {:>7.0} ms",
        "RLS-authorized channels", SUPABASE_RLS_MEDIAN_MS
    );
    for (subscribers, p50) in results {
        let ms = p50.as_secs_f64() * 1000.0;
        println!(
            "  ratio p50 here (loopback) / Supabase RLS median (cloud): {subscribers} subscriber(s) {:.2}x",
            ms / SUPABASE_RLS_MEDIAN_MS
        );
    }
    println!();
    Ok(())
}

/// One run: `subscribers` clients of a fresh user's private channel; the latency of
/// `latency_messages` sent one at a time (p50, p99), then deliveries per second of a `burst`.
async fn run(
    stack: &Api,
    admin: &tokio_postgres::Client,
    ws_base: &str,
    anon: &str,
    subscribers: usize,
    latency_messages: usize,
    burst: usize,
) -> anyhow::Result<(Duration, Duration, f64)> {
    // A fresh user per run, so the two runs share no topic.
    let uid = stack
        .create_user(
            &format!("bench-{subscribers}@example.test"),
            "bench password, long enough",
        )
        .await;
    let token = stack.sign(&json!({
        "sub": uid, "role": "authenticated", "aud": "authenticated",
        "iat": chrono::Utc::now().timestamp(),
        "exp": chrono::Utc::now().timestamp() + 3600,
        "session_id": Uuid::new_v4(),
    }));
    let topic = format!("realtime:user:{uid}");
    let (tx, mut rx) = mpsc::unbounded_channel::<(i64, Instant)>();
    let mut readers = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        readers.push(subscribe(ws_base, anon, &topic, &token, tx.clone()).await?);
    }
    drop(tx);
    let send = |n: i64| {
        let topic = format!("user:{uid}");
        async move {
            admin
                .execute(
                    "select realtime.send($1::jsonb, 'delta', $2, true)",
                    &[&json!({"n": n}), &topic],
                )
                .await
        }
    };

    let mut n: i64 = 0;
    for _ in 0..WARMUP {
        send(n).await?;
        receive(&mut rx, n, subscribers).await?;
        n += 1;
    }

    let mut samples = Vec::with_capacity(latency_messages * subscribers);
    for _ in 0..latency_messages {
        let sent = Instant::now();
        send(n).await?;
        for at in receive(&mut rx, n, subscribers).await? {
            samples.push(at.saturating_duration_since(sent));
        }
        n += 1;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let (p50, p99) = (at(0.50), at(0.99));

    let first = n;
    let start = Instant::now();
    for _ in 0..burst {
        send(n).await?;
        n += 1;
    }
    let mut delivered = 0usize;
    while delivered < burst * subscribers {
        match tokio::time::timeout(PATIENCE, rx.recv()).await {
            Ok(Some((m, _))) if m >= first => delivered += 1,
            Ok(Some(_)) => {}
            _ => anyhow::bail!(
                "only {delivered} of {} deliveries arrived",
                burst * subscribers
            ),
        }
    }
    let per_sec = delivered as f64 / start.elapsed().as_secs_f64();
    for reader in readers {
        reader.abort();
    }
    Ok((p50, p99, per_sec))
}

/// Connects, joins `topic` as a private channel, and spawns a reader that reports each
/// broadcast's `n` with the instant it was read.
async fn subscribe(
    ws_base: &str,
    anon: &str,
    topic: &str,
    token: &str,
    tx: mpsc::UnboundedSender<(i64, Instant)>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let (mut ws, _) = connect_async(format!(
        "{ws_base}/realtime/v1/websocket?apikey={anon}&vsn=1.0.0"
    ))
    .await?;
    let join = json!({
        "topic": topic, "event": "phx_join", "ref": "1", "join_ref": "1",
        "payload": {
            "config": {"broadcast": {"self": false, "ack": false},
                       "presence": {"enabled": false, "key": ""},
                       "postgres_changes": [], "private": true},
            "access_token": token,
        },
    });
    ws.send(Message::text(join.to_string())).await?;
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no join reply"))?;
        if let Some(Ok(Message::Text(text))) = frame {
            let frame: Value = serde_json::from_str(text.as_str())?;
            if frame["event"] == "phx_reply" && frame["ref"] == "1" {
                anyhow::ensure!(frame["payload"]["status"] == "ok", "join refused: {frame}");
                break;
            }
        } else if !matches!(frame, Some(Ok(Message::Ping(_) | Message::Pong(_)))) {
            anyhow::bail!("the socket ended before the join reply");
        }
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let at = Instant::now();
            let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if frame["event"] != "broadcast" {
                continue;
            }
            if let Some(n) = frame["payload"]["payload"]["n"].as_i64()
                && tx.send((n, at)).is_err()
            {
                return;
            }
        }
    }))
}

/// The receipt instants of message `n`, one per subscriber.
async fn receive(
    rx: &mut mpsc::UnboundedReceiver<(i64, Instant)>,
    n: i64,
    subscribers: usize,
) -> anyhow::Result<Vec<Instant>> {
    let mut instants = Vec::with_capacity(subscribers);
    while instants.len() < subscribers {
        match tokio::time::timeout(PATIENCE, rx.recv()).await {
            Ok(Some((m, at))) if m == n => instants.push(at),
            Ok(Some(_)) => {}
            _ => anyhow::bail!("message {n} reached {} of {subscribers}", instants.len()),
        }
    }
    Ok(instants)
}
