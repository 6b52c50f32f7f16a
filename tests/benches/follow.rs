//! `cargo xtask bench` (core part): second-device lag — from a `chat_events` delta row being
//! committed (as the companion writes it; the row's trigger broadcasts it on
//! `realtime:user:<uid>`) to a `quire_core` follower of the same user having applied it to
//! its state model — p50 and p99 with 1 and with 50 followers, on loopback.
//!
//! The sandbox and its database run in a child process (this binary run again,
//! `quire_testkit::serve`), so the followers' numbers do not include the server's scheduling.
//!
//! Numbers are printed, never asserted: benchmarks measure, tests decide.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_core::{Config, FollowOptions, Quire, Update};
use quire_testkit::Stack;
use quire_testkit::client::MemoryTokens;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

const PASSWORD: &str = "bench password, long enough";
const WARMUP: usize = 10;
const DELTAS_ONE: usize = 300;
const DELTAS_MANY: usize = 100;
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stack = quire_testkit::serve::stack_in_child(Stack::builder).await;
    let api = stack.api_base().to_owned();
    let anon = stack.anon_key();
    let admin = stack.connect_db().await;

    println!(
        "second-device lag (2 cores, loopback, the sandbox in a child process): delta row \
         committed → follower applied it\n"
    );
    println!("  {:<16} {:>10} {:>10}", "", "p50", "p99");
    for (followers, deltas) in [(1, DELTAS_ONE), (50, DELTAS_MANY)] {
        let email = format!("bench-{followers}@example.test");
        let owner = stack.create_user(&email, PASSWORD).await;

        let (tx, mut rx) = mpsc::unbounded_channel::<(i64, Instant)>();
        let mut devices = Vec::with_capacity(followers);
        for _ in 0..followers {
            let device = Quire::with_token_store(
                Config::new(&api, &anon, "http://127.0.0.1:9")?,
                Arc::new(MemoryTokens::default()),
            );
            device.sign_in_with_password(&email, PASSWORD).await?;
            let follower = device.follow_with(FollowOptions::default());
            tokio::time::timeout(PATIENCE, follower.ready()).await?;
            let reader = tokio::spawn(applied(device.state().subscribe(), tx.clone()));
            devices.push((device, follower, reader));
        }
        drop(tx);

        // The companion's rows: a conversation, the question, a `streaming` answer.
        let conversation: Uuid = admin
            .query_one(
                "insert into public.conversations (owner_id, title) values ($1, 'bench') returning id",
                &[&owner],
            )
            .await?
            .get(0);
        admin
            .execute(
                "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content) \
                 values ($1, $2, 0, 'user', 'complete', 'bench?')",
                &[&conversation, &owner],
            )
            .await?;
        let answer: Uuid = admin
            .query_one(
                "insert into public.chat_messages (conversation_id, owner_id, seq, role, status) \
                 values ($1, $2, 1, 'assistant', 'streaming') returning id",
                &[&conversation, &owner],
            )
            .await?
            .get(0);
        let mut seq: i32 = 0;
        let event = |seq: i32, kind: &'static str, payload: Value| {
            let admin = &admin;
            async move {
                admin
                    .execute(
                        "insert into public.chat_events (conversation_id, message_id, owner_id, seq, kind, payload) \
                         values ($1, $2, $3, $4, $5, $6)",
                        &[&conversation, &answer, &owner, &seq, &kind, &payload],
                    )
                    .await
            }
        };
        event(seq, "context", json!({"chunks": [], "dropped": 0})).await?;
        seq += 1;

        let mut samples = Vec::with_capacity(deltas * followers);
        for n in 0..(WARMUP + deltas) as i64 {
            let sent = Instant::now();
            event(seq, "delta", json!({"text": format!("<{n}>")})).await?;
            seq += 1;
            let mut seen = 0;
            while seen < followers {
                match tokio::time::timeout(PATIENCE, rx.recv()).await {
                    Ok(Some((m, at))) if m == n => {
                        seen += 1;
                        if n >= WARMUP as i64 {
                            samples.push(at.saturating_duration_since(sent));
                        }
                    }
                    Ok(Some(_)) => {}
                    _ => anyhow::bail!("delta {n} reached {seen} of {followers} followers"),
                }
            }
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        let name = format!(
            "{followers} follower{}",
            if followers == 1 { "" } else { "s" }
        );
        println!("  {name:<16} {:>10.2?} {:>10.2?}", at(0.50), at(0.99));

        for (_, follower, reader) in devices {
            reader.abort();
            follower.stop().await;
        }
    }
    println!(
        "  ({DELTAS_ONE} deltas with 1 follower, {DELTAS_MANY} with 50; lag = insert sent \
         (autocommit) → state update seen)\n"
    );
    Ok(())
}

/// Reports the `<n>` of every piece appended to a message, with the instant it was applied.
async fn applied(
    mut updates: broadcast::Receiver<Update>,
    tx: mpsc::UnboundedSender<(i64, Instant)>,
) {
    loop {
        let update = match updates.recv().await {
            Ok(update) => update,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let at = Instant::now();
        let Update::Message {
            appended: Some(piece),
            ..
        } = update
        else {
            continue;
        };
        let number = piece
            .strip_prefix('<')
            .and_then(|p| p.strip_suffix('>'))
            .and_then(|p| p.parse().ok());
        if let Some(n) = number
            && tx.send((n, at)).is_err()
        {
            return;
        }
    }
}
