//! realtime.messages: who may join `user:<uid>`, that nobody publishes into
//! it directly, and the triggers that broadcast chat events and document
//! status changes.

use crate::fixtures::{TwoUsers, assert_denied, chat, count, document};
use quire_testdb::TestDb;
use serde_json::{Value, json};
use uuid::Uuid;

/// The broadcast rows a topic has received, oldest first: (event, private, payload).
async fn broadcasts(db: &TestDb, topic: &str) -> Vec<(String, bool, Value)> {
    db.admin()
        .await
        .query(
            "select event, private, payload from realtime.messages \
             where topic = $1 and extension = 'broadcast' order by inserted_at, sandbox_xid",
            &[&topic],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn topic(user: Uuid) -> String {
    format!("user:{user}")
}

#[tokio::test]
async fn only_the_user_joins_their_private_topic() {
    // Arrange
    let t = TwoUsers::new().await;
    let own = topic(t.a);

    // Act
    let a_joins_own = t.as_a().can_join(&own).await.unwrap();
    let b_joins_a = t.as_b().can_join(&own).await.unwrap();
    let anon_joins_a = t.db.as_anon().can_join(&own).await.unwrap();
    let a_joins_b = t.as_a().can_join(&topic(t.b)).await.unwrap();
    let a_joins_other_topic = t.as_a().can_join(&format!("room:{}", t.a)).await.unwrap();
    let forged_claims_join = t
        .as_a_with("sub", json!(t.b.to_string()))
        .can_join(&own)
        .await
        .unwrap();

    // Assert
    assert!(a_joins_own);
    assert!(!b_joins_a);
    assert!(!anon_joins_a);
    assert!(!a_joins_b);
    assert!(!a_joins_other_topic);
    assert!(!forged_claims_join, "claims naming B are B, not A");
}

#[tokio::test]
async fn nobody_inserts_into_realtime_messages_directly() {
    // Arrange
    let t = TwoUsers::new().await;
    let insert = "insert into realtime.messages (topic, extension, event, payload, private) \
                  values ($1, 'broadcast', 'delta', '{\"text\": \"forged\"}', true)";

    // Act
    let a_own = t.as_a().execute(insert, &[&topic(t.a)]).await;
    let a_into_b = t.as_a().execute(insert, &[&topic(t.b)]).await;
    let b_into_a = t.as_b().execute(insert, &[&topic(t.a)]).await;
    let anon = t.db.as_anon().execute(insert, &[&topic(t.a)]).await;

    // Assert
    assert_denied(a_own);
    assert_denied(a_into_b);
    assert_denied(b_into_a);
    assert_denied(anon);
    assert_eq!(
        count(&t.db, "select count(*) from realtime.messages", &[]).await,
        0
    );
}

#[tokio::test]
async fn messages_are_not_readable_outside_a_join() {
    // Arrange
    let t = TwoUsers::new().await;
    chat(&t.db, t.a).await;

    // Act: a plain select has no realtime.topic set, as over PostgREST.
    let a_reads = t
        .as_a()
        .query("select id from realtime.messages", &[])
        .await
        .unwrap();
    let b_reads = t
        .as_b()
        .query("select id from realtime.messages", &[])
        .await
        .unwrap();

    // Assert
    assert!(a_reads.is_empty());
    assert!(b_reads.is_empty());
    assert_eq!(
        count(&t.db, "select count(*) from realtime.messages", &[]).await,
        1
    );
}

#[tokio::test]
async fn a_chat_event_is_broadcast_once_on_its_owners_private_topic() {
    // Arrange
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.a).await;
    let before = broadcasts(&t.db, &topic(t.a)).await.len();

    // Act
    t.db.as_service()
        .execute(
            "insert into chat_events (owner_id, conversation_id, message_id, seq, kind, payload) \
             values ($1, $2, $3, 7, 'tool_call', $4)",
            &[
                &t.a,
                &c.conversation,
                &c.message,
                &json!({"tool_name": "search_my_documents"}),
            ],
        )
        .await
        .unwrap();

    // Assert
    let sent = broadcasts(&t.db, &topic(t.a)).await;
    assert_eq!(sent.len(), before + 1, "exactly one broadcast per event");
    let (event, private, payload) = sent.last().unwrap();
    assert_eq!(event, "tool_call");
    assert!(private);
    assert_eq!(payload["seq"], 7);
    assert_eq!(payload["kind"], "tool_call");
    assert_eq!(payload["message_id"], json!(c.message));
    assert_eq!(payload["conversation_id"], json!(c.conversation));
    assert_eq!(
        payload["payload"],
        json!({"tool_name": "search_my_documents"})
    );
    assert!(payload["id"].is_string(), "realtime.send adds a message id");
    assert!(broadcasts(&t.db, &topic(t.b)).await.is_empty());
}

#[tokio::test]
async fn document_status_changes_are_broadcast_on_the_owners_topic() {
    // Arrange
    let t = TwoUsers::new().await;
    let doc = document(&t.db, t.a, "Glacier report", "uploading").await;
    let service = t.db.as_service();

    // Act
    service
        .execute(
            "update documents set status = 'stored' where id = $1",
            &[&doc],
        )
        .await
        .unwrap();
    service
        .execute(
            "update documents set sha256 = repeat('0', 64) where id = $1",
            &[&doc],
        )
        .await
        .unwrap();
    service
        .execute(
            "update documents set status = 'stored' where id = $1",
            &[&doc],
        )
        .await
        .unwrap();
    service
        .execute(
            "update documents set status = 'failed', error = 'no pages' where id = $1",
            &[&doc],
        )
        .await
        .unwrap();
    t.as_a()
        .execute("delete from documents where id = $1", &[&doc])
        .await
        .unwrap();

    // Assert
    let sent = broadcasts(&t.db, &topic(t.a)).await;
    let summary: Vec<(&str, &str)> = sent
        .iter()
        .map(|(event, _, payload)| (event.as_str(), payload["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("document_status", "uploading"),
            ("document_status", "stored"),
            ("document_status", "failed"),
            ("document_deleted", "deleted"),
        ],
        "one broadcast per status change; none for other columns or a status rewritten unchanged"
    );
    assert!(
        sent.iter()
            .all(|(_, private, payload)| *private && payload["document_id"] == json!(doc))
    );
    assert_eq!(sent[2].2["error"], "no pages");
    assert_eq!(sent[2].2["title"], "Glacier report");
    assert!(broadcasts(&t.db, &topic(t.b)).await.is_empty());
}

#[tokio::test]
async fn realtime_send_turns_failures_into_warnings() {
    // Arrange: A has no INSERT policy on realtime.messages.
    let t = TwoUsers::new().await;
    let a = t.as_a();

    // Act
    let sent = a
        .execute(
            "select realtime.send('{\"text\": \"hi\"}', 'delta', $1, true)",
            &[&topic(t.a)],
        )
        .await;

    // Assert
    assert!(sent.is_ok(), "send must not raise: {sent:?}");
    let notices = a.take_notices();
    assert!(
        notices.iter().any(|n| n.severity() == "WARNING"
            && n.message().starts_with("ErrorSendingBroadcastMessage: ")
            && n.message().contains("row-level security")),
        "expected the swallowed error as a WARNING, got {notices:?}"
    );
    assert_eq!(
        count(&t.db, "select count(*) from realtime.messages", &[]).await,
        0
    );
}
