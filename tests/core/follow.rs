//! The Realtime follower: a second device sees an answer live, exactly once
//! and in order; after a cut it catches up from the log; it stays joined
//! across token refreshes; B receives nothing of A's.

use std::sync::Arc;
use std::time::Duration;

use quire_core::{DocumentStatus, FollowOptions, FollowStatus, MessageStatus, Quire, Role, Update};
use quire_testkit::client::MemoryTokens;
use quire_testkit::{PASSWORD_A, Stack, eventually, spawn_sandbox, spawn_sandbox_with};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::proxy::Proxy;

/// Writes an answer the way the companion does: the question and the
/// `streaming` answer row, then `chat_events` rows (seq 0 = context, then
/// deltas), then `complete` and the final row. `between` runs after each
/// delta (to cut connections mid-answer).
pub struct AnswerWriter {
    pub conversation: Uuid,
    pub question: Uuid,
    pub answer: Uuid,
    owner: Uuid,
    seq: i32,
}

impl AnswerWriter {
    pub async fn start(stack: &Stack, owner: Uuid, question: &str) -> AnswerWriter {
        let db = stack.db.admin().await;
        let conversation: Uuid = db
            .query_one(
                "insert into public.conversations (owner_id, title) values ($1, $2) returning id",
                &[&owner, &question],
            )
            .await
            .unwrap()
            .get(0);
        let question_id: Uuid = db
            .query_one(
                "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content) \
                 values ($1, $2, 0, 'user', 'complete', $3) returning id",
                &[&conversation, &owner, &question],
            )
            .await
            .unwrap()
            .get(0);
        let answer: Uuid = db
            .query_one(
                "insert into public.chat_messages (conversation_id, owner_id, seq, role, status) \
                 values ($1, $2, 1, 'assistant', 'streaming') returning id",
                &[&conversation, &owner],
            )
            .await
            .unwrap()
            .get(0);
        let mut writer = AnswerWriter {
            conversation,
            question: question_id,
            answer,
            owner,
            seq: 0,
        };
        writer
            .event(
                stack,
                "context",
                json!({"user_message_id": question_id, "chunks": [], "dropped": 0}),
            )
            .await;
        writer
    }

    pub async fn event(&mut self, stack: &Stack, kind: &str, payload: Value) {
        stack
            .db
            .admin()
            .await
            .execute(
                "insert into public.chat_events (conversation_id, message_id, owner_id, seq, kind, payload) \
                 values ($1, $2, $3, $4, $5, $6)",
                &[&self.conversation, &self.answer, &self.owner, &self.seq, &kind, &payload],
            )
            .await
            .unwrap();
        self.seq += 1;
    }

    pub async fn delta(&mut self, stack: &Stack, text: &str) {
        self.event(stack, "delta", json!({"text": text})).await;
    }

    pub async fn complete(&mut self, stack: &Stack, content: &str) {
        self.event(
            stack,
            "complete",
            json!({"status": "complete", "content": content, "citations": [], "run_id": "run_1"}),
        )
        .await;
        stack
            .db
            .admin()
            .await
            .execute(
                "update public.chat_messages set status = 'complete', content = $2 where id = $1",
                &[&self.answer, &content],
            )
            .await
            .unwrap();
    }
}

fn quick() -> FollowOptions {
    FollowOptions {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..FollowOptions::default()
    }
}

/// The text announced as appended for `message`, in order.
fn appended_text(updates: &mut broadcast::Receiver<Update>, message: Uuid) -> String {
    let mut text = String::new();
    while let Ok(update) = updates.try_recv() {
        if let Update::Message {
            message: m,
            appended: Some(piece),
        } = update
            && m.id == message
        {
            text.push_str(&piece);
        }
    }
    text
}

const PIECES: [&str; 8] = [
    "Pets ",
    "are ",
    "allowed ",
    "with ",
    "the ",
    "landlord's ",
    "written ",
    "consent [1].",
];

#[tokio::test]
async fn a_second_device_follows_an_answer_live_and_b_receives_nothing() {
    let stack = spawn_sandbox().await;
    let (device2, a_id) = stack.signed_in("alice@example.com").await;
    let (device3, _) = stack.signed_in("bob@example.com").await;
    let follower2 = device2.follow_with(quick());
    let follower3 = device3.follow_with(quick());
    follower2.ready().await;
    follower3.ready().await;
    let mut updates2 = device2.state().subscribe();
    let mut updates3 = device3.state().subscribe();

    let mut writer = AnswerWriter::start(&stack, a_id, "Are pets allowed?").await;
    for piece in PIECES {
        writer.delta(&stack, piece).await;
    }
    let full: String = PIECES.concat();
    writer.complete(&stack, &full).await;

    eventually(60, "device 2 has the whole answer", async || {
        device2
            .state()
            .message(writer.answer)
            .is_some_and(|m| m.status == MessageStatus::Complete)
    })
    .await;
    let answer = device2.state().message(writer.answer).unwrap();
    assert_eq!(answer.content, full);
    assert_eq!(answer.question_id, Some(writer.question));
    assert_eq!(
        appended_text(&mut updates2, writer.answer),
        full,
        "every delta once, in order"
    );
    eventually(60, "device 2 shows the question", async || {
        device2
            .state()
            .message(writer.question)
            .is_some_and(|q| q.role == Role::User && q.content == "Are pets allowed?")
    })
    .await;
    assert!(
        device2
            .state()
            .conversations()
            .iter()
            .any(|c| c.id == writer.conversation)
    );

    // B was joined all along and got nothing of it.
    assert!(updates3.try_recv().is_err(), "B received an update");
    assert!(device3.state().message(writer.answer).is_none());
    assert!(device3.state().conversations().is_empty());
    assert_eq!(follower2.joins(), 1);
    follower2.stop().await;
    follower3.stop().await;
}

#[tokio::test]
async fn after_a_cut_mid_answer_the_follower_catches_up_with_nothing_lost_or_doubled() {
    let stack = spawn_sandbox().await;
    let a_id = stack.create_user("alice@example.com", PASSWORD_A).await;
    let proxy = Proxy::start(stack.sandbox.addr()).await;
    let config =
        quire_core::Config::new(&proxy.url(), &stack.anon_key(), "http://127.0.0.1:9").unwrap();
    let device2 = Quire::with_token_store(config, Arc::new(MemoryTokens::default()));
    device2
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    let follower = device2.follow_with(quick());
    follower.ready().await;

    let mut writer = AnswerWriter::start(&stack, a_id, "Are pets allowed?").await;
    for (n, piece) in PIECES.iter().enumerate() {
        if n == 3 {
            proxy.cut();
            // Rows written while nobody listens are never broadcast.
            eventually(60, "the follower notices", async || {
                !matches!(follower.status(), FollowStatus::Joined { .. })
            })
            .await;
        }
        writer.delta(&stack, piece).await;
    }
    let full: String = PIECES.concat();
    writer.complete(&stack, &full).await;

    eventually(60, "device 2 caught up", async || {
        device2
            .state()
            .message(writer.answer)
            .is_some_and(|m| m.status == MessageStatus::Complete)
    })
    .await;
    assert_eq!(
        device2.state().message(writer.answer).unwrap().content,
        full
    );
    assert!(follower.joins() >= 2, "it rejoined");
    follower.stop().await;
}

#[tokio::test]
async fn missed_rows_are_backfilled_by_seq_before_the_answer_ends() {
    let stack = spawn_sandbox().await;
    let a_id = stack.create_user("alice@example.com", PASSWORD_A).await;
    let proxy = Proxy::start(stack.sandbox.addr()).await;
    let config =
        quire_core::Config::new(&proxy.url(), &stack.anon_key(), "http://127.0.0.1:9").unwrap();
    let device2 = Quire::with_token_store(config, Arc::new(MemoryTokens::default()));
    device2
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    let follower = device2.follow_with(quick());
    follower.ready().await;

    let mut writer = AnswerWriter::start(&stack, a_id, "Are pets allowed?").await;
    writer.delta(&stack, PIECES[0]).await;
    eventually(60, "the first piece", async || {
        device2
            .state()
            .message(writer.answer)
            .is_some_and(|m| m.content == PIECES[0])
    })
    .await;
    proxy.cut();
    eventually(60, "the follower notices", async || {
        !matches!(follower.status(), FollowStatus::Joined { .. })
    })
    .await;
    for piece in &PIECES[1..4] {
        writer.delta(&stack, piece).await;
    }
    // Still streaming: the rejoin's backfill alone must bring the missed rows.
    eventually(60, "the missed rows", async || {
        device2
            .state()
            .message(writer.answer)
            .is_some_and(|m| m.content == PIECES[..4].concat())
    })
    .await;
    assert_eq!(
        device2.state().message(writer.answer).unwrap().status,
        MessageStatus::Streaming
    );
    follower.stop().await;
}

#[tokio::test]
async fn the_follower_stays_joined_across_many_token_refreshes() {
    let stack = spawn_sandbox_with(|c| c.jwt_expiry_secs = 3).await;
    let (device2, a_id) = stack.signed_in("alice@example.com").await;
    let follower = device2.follow_with(quick());
    follower.ready().await;
    let start = device2.auth().refreshes();

    eventually(120, "six refreshes", async || {
        device2.auth().refreshes() >= start + 6
    })
    .await;

    assert_eq!(
        follower.joins(),
        1,
        "never rejoined: every token reached the channel in time"
    );
    assert_eq!(follower.status(), FollowStatus::Joined { backfilled: true });
    // And the channel still delivers.
    let mut writer = AnswerWriter::start(&stack, a_id, "Still there?").await;
    writer.delta(&stack, "Yes.").await;
    eventually(60, "a live delta", async || {
        device2
            .state()
            .message(writer.answer)
            .is_some_and(|m| m.content == "Yes.")
    })
    .await;
    follower.stop().await;
}

#[tokio::test]
async fn document_status_changes_arrive_live() {
    let stack = spawn_sandbox().await;
    let (device2, a_id) = stack.signed_in("alice@example.com").await;
    let (device3, _) = stack.signed_in("bob@example.com").await;
    let follower = device2.follow_with(quick());
    let follower3 = device3.follow_with(quick());
    follower.ready().await;
    follower3.ready().await;
    let db = stack.db.admin().await;

    let id: Uuid = db
        .query_one(
            "insert into public.documents (owner_id, title, byte_size) values ($1, 'Lease', 10) returning id",
            &[&a_id],
        )
        .await
        .unwrap()
        .get(0);
    for status in ["stored", "extracting", "indexing", "ready"] {
        db.execute(
            "update public.documents set status = $2 where id = $1",
            &[&id, &status],
        )
        .await
        .unwrap();
    }
    eventually(60, "the document is ready", async || {
        device2
            .state()
            .document(id)
            .is_some_and(|d| d.status == DocumentStatus::Ready)
    })
    .await;
    assert_eq!(device2.state().document(id).unwrap().title, "Lease");

    db.execute("delete from public.documents where id = $1", &[&id])
        .await
        .unwrap();
    eventually(60, "the document is gone", async || {
        device2.state().document(id).is_none()
    })
    .await;
    assert!(device3.state().documents().is_empty(), "B saw nothing");
    follower.stop().await;
    follower3.stop().await;
}

#[tokio::test]
async fn signing_out_stops_following() {
    let stack = spawn_sandbox().await;
    let (device2, _) = stack.signed_in("alice@example.com").await;
    let follower = device2.follow_with(quick());
    follower.ready().await;
    device2.sign_out().await.unwrap();
    eventually(60, "the follower rests", async || {
        follower.status() == FollowStatus::SignedOut
    })
    .await;
}

#[tokio::test]
async fn a_sandbox_restart_mid_answer_loses_nothing_and_doubles_nothing() {
    let mut stack = spawn_sandbox().await;
    let (device2, a_id) = stack.signed_in("alice@example.com").await;
    let follower = device2.follow_with(quick());
    follower.ready().await;

    let mut writer = AnswerWriter::start(&stack, a_id, "Are pets allowed?").await;
    for piece in &PIECES[..3] {
        writer.delta(&stack, piece).await;
    }
    eventually(60, "the first pieces", async || {
        device2
            .state()
            .message(writer.answer)
            .is_some_and(|m| m.content == PIECES[..3].concat())
    })
    .await;

    stack.stop_sandbox();
    eventually(60, "the follower notices", async || {
        !matches!(follower.status(), FollowStatus::Joined { .. })
    })
    .await;
    // The companion goes on writing while the platform's API is down.
    for piece in &PIECES[3..6] {
        writer.delta(&stack, piece).await;
    }
    stack.restart_sandbox().await;
    for piece in &PIECES[6..] {
        writer.delta(&stack, piece).await;
    }
    let full: String = PIECES.concat();
    writer.complete(&stack, &full).await;

    eventually(120, "device 2 caught up", async || {
        device2
            .state()
            .message(writer.answer)
            .is_some_and(|m| m.status == MessageStatus::Complete)
    })
    .await;
    assert_eq!(
        device2.state().message(writer.answer).unwrap().content,
        full
    );
    assert!(follower.joins() >= 2);
    follower.stop().await;
}
