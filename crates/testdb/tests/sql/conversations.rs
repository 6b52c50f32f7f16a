//! public.conversations (owner reads and writes), chat_messages and
//! chat_events (owner reads, service role writes), tool_sessions (service
//! role only).

use crate::fixtures::{TwoUsers, assert_denied, chat, count};
use quire_testdb::tokio_postgres::error::SqlState;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn owner_creates_renames_archives_and_deletes_own_conversations() {
    // Arrange
    let t = TwoUsers::new().await;
    let a = t.as_a();

    // Act
    let id: Uuid = a
        .query_one(
            "insert into conversations (owner_id, title) values ($1, 'Glaciers') returning id",
            &[&t.a],
        )
        .await
        .unwrap()
        .get(0);
    let renamed = a
        .execute(
            "update conversations set title = 'Alpine glaciers', archived_at = now() where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let listed = a
        .query("select title from conversations", &[])
        .await
        .unwrap();
    let deleted = a
        .execute("delete from conversations where id = $1", &[&id])
        .await
        .unwrap();

    // Assert
    assert_eq!(renamed, 1);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].get::<_, String>(0), "Alpine glaciers");
    assert_eq!(deleted, 1);
    assert_eq!(
        count(&t.db, "select count(*) from conversations", &[]).await,
        0
    );
}

#[tokio::test]
async fn others_neither_see_nor_change_a_conversation() {
    // Arrange
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.a).await;

    // Act
    let b_reads = t
        .as_b()
        .query("select id from conversations", &[])
        .await
        .unwrap();
    let b_renames = t
        .as_b()
        .execute(
            "update conversations set title = 'mine' where id = $1",
            &[&c.conversation],
        )
        .await
        .unwrap();
    let b_deletes = t
        .as_b()
        .execute(
            "delete from conversations where id = $1",
            &[&c.conversation],
        )
        .await
        .unwrap();
    let anon_reads =
        t.db.as_anon()
            .query("select id from conversations", &[])
            .await;
    let anon_deletes =
        t.db.as_anon()
            .execute("delete from conversations", &[])
            .await;

    // Assert
    assert!(b_reads.is_empty());
    assert_eq!((b_renames, b_deletes), (0, 0));
    assert_denied(anon_reads);
    assert_denied(anon_deletes);
    let title: String =
        t.db.admin()
            .await
            .query_one(
                "select title from conversations where id = $1",
                &[&c.conversation],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(title, "Glaciers");
}

#[tokio::test]
async fn a_user_cannot_create_or_hand_over_conversations_for_someone_else() {
    // Arrange
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.a).await;

    // Act
    let spoofed_insert = t
        .as_a()
        .execute(
            "insert into conversations (owner_id, title) values ($1, 'planted')",
            &[&t.b],
        )
        .await;
    let hand_over = t
        .as_a()
        .execute(
            "update conversations set owner_id = $2 where id = $1",
            &[&c.conversation, &t.b],
        )
        .await;
    let anon_insert =
        t.db.as_anon()
            .execute(
                "insert into conversations (owner_id, title) values ($1, 'x')",
                &[&t.a],
            )
            .await;

    // Assert
    assert_denied(spoofed_insert);
    assert_denied(hand_over);
    assert_denied(anon_insert);
    assert_eq!(
        count(
            &t.db,
            "select count(*) from conversations where owner_id = $1",
            &[&t.b]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn only_the_service_role_sets_a_conversations_agent_session() {
    // Arrange
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.a).await;

    // Act
    let owner_sets = t
        .as_a()
        .execute(
            "update conversations set agent_session_id = 'sess_b0000000000b' where id = $1",
            &[&c.conversation],
        )
        .await;
    let owner_inserts = t.as_a()
        .execute("insert into conversations (owner_id, agent_session_id) values ($1, 'sess_b0000000000b')", &[&t.a]).await;
    let service_sets =
        t.db.as_service()
            .execute(
                "update conversations set agent_session_id = 'sess_a0000000000a' where id = $1",
                &[&c.conversation],
            )
            .await;

    // Assert
    assert_denied(owner_sets);
    assert_denied(owner_inserts);
    assert_eq!(service_sets.unwrap(), 1);
}

#[tokio::test]
async fn owner_reads_own_messages_and_events_and_no_one_else_does() {
    // Arrange
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.a).await;
    chat(&t.db, t.b).await;

    // Act
    let a_messages = t
        .as_a()
        .query("select id from chat_messages", &[])
        .await
        .unwrap();
    let a_events = t
        .as_a()
        .query(
            "select id, seq from chat_events where message_id = $1 and seq > 0",
            &[&c.message],
        )
        .await
        .unwrap();
    let b_messages = t
        .as_b()
        .query("select id from chat_messages where id = $1", &[&c.message])
        .await
        .unwrap();
    let b_events = t
        .as_b()
        .query("select id from chat_events where id = $1", &[&c.event])
        .await
        .unwrap();
    let anon_messages =
        t.db.as_anon()
            .query("select id from chat_messages", &[])
            .await;
    let anon_events =
        t.db.as_anon()
            .query("select id from chat_events", &[])
            .await;

    // Assert
    assert_eq!(
        a_messages
            .iter()
            .map(|r| r.get::<_, Uuid>(0))
            .collect::<Vec<_>>(),
        vec![c.message]
    );
    assert_eq!(
        a_events
            .iter()
            .map(|r| r.get::<_, Uuid>(0))
            .collect::<Vec<_>>(),
        vec![c.event]
    );
    assert!(b_messages.is_empty());
    assert!(b_events.is_empty());
    assert_denied(anon_messages);
    assert_denied(anon_events);
}

#[tokio::test]
async fn only_the_service_role_writes_messages_and_events() {
    // Arrange
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.a).await;
    let insert_message = "insert into chat_messages (owner_id, conversation_id, seq, role, content) \
                          values ($1, $2, 2, 'assistant', 'forged answer')";
    let insert_event = "insert into chat_events (owner_id, conversation_id, message_id, seq, kind) \
                        values ($1, $2, $3, 2, 'complete')";

    // Act
    let a_inserts_message = t
        .as_a()
        .execute(insert_message, &[&t.a, &c.conversation])
        .await;
    let b_inserts_message = t
        .as_b()
        .execute(insert_message, &[&t.b, &c.conversation])
        .await;
    let a_inserts_event = t
        .as_a()
        .execute(insert_event, &[&t.a, &c.conversation, &c.message])
        .await;
    let a_edits_message = t
        .as_a()
        .execute(
            "update chat_messages set content = 'edited' where id = $1",
            &[&c.message],
        )
        .await;
    let a_deletes_event = t
        .as_a()
        .execute("delete from chat_events where id = $1", &[&c.event])
        .await;
    let anon_inserts_event =
        t.db.as_anon()
            .execute(insert_event, &[&t.a, &c.conversation, &c.message])
            .await;
    let service_writes_b_into_a =
        t.db.as_service()
            .execute(insert_message, &[&t.b, &c.conversation])
            .await;

    // Assert
    assert_denied(a_inserts_message);
    assert_denied(b_inserts_message);
    assert_denied(a_inserts_event);
    assert_denied(a_edits_message);
    assert_denied(a_deletes_event);
    assert_denied(anon_inserts_event);
    let err = service_writes_b_into_a.expect_err("a message's owner is its conversation's owner");
    assert_eq!(err.code(), Some(&SqlState::FOREIGN_KEY_VIOLATION));
    assert_eq!(
        count(&t.db, "select count(*) from chat_messages", &[]).await,
        1
    );
    assert_eq!(
        count(&t.db, "select count(*) from chat_events", &[]).await,
        1
    );
}

#[tokio::test]
async fn deleting_a_conversation_removes_its_messages_events_and_tool_sessions() {
    // Arrange
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.a).await;
    let other = chat(&t.db, t.a).await;
    t.db.as_service()
        .execute(
            "insert into tool_sessions (token_hash, owner_id, conversation_id, expires_at) \
             values (repeat('ab', 32), $1, $2, now() + interval '5 minutes')",
            &[&t.a, &c.conversation],
        )
        .await
        .unwrap();

    // Act
    t.as_a()
        .execute(
            "delete from conversations where id = $1",
            &[&c.conversation],
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(
        count(
            &t.db,
            "select count(*) from chat_messages where conversation_id = $1",
            &[&c.conversation]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &t.db,
            "select count(*) from chat_events where conversation_id = $1",
            &[&c.conversation]
        )
        .await,
        0
    );
    assert_eq!(
        count(&t.db, "select count(*) from tool_sessions", &[]).await,
        0
    );
    assert_eq!(
        count(
            &t.db,
            "select count(*) from chat_events where conversation_id = $1",
            &[&other.conversation]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn tool_sessions_are_for_the_service_role_only() {
    // Arrange
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.a).await;
    let insert = "insert into tool_sessions (token_hash, owner_id, conversation_id, expires_at) \
                  values (repeat('cd', 32), $1, $2, now() + interval '5 minutes')";

    // Act
    let by_service =
        t.db.as_service()
            .execute(insert, &[&t.a, &c.conversation])
            .await;
    let a_reads = t
        .as_a()
        .query("select token_hash from tool_sessions", &[])
        .await;
    let a_inserts = t.as_a().execute(insert, &[&t.a, &c.conversation]).await;
    let b_reads = t
        .as_b()
        .query("select token_hash from tool_sessions", &[])
        .await;
    let anon_reads =
        t.db.as_anon()
            .query("select token_hash from tool_sessions", &[])
            .await;
    let service_reads =
        t.db.as_service()
            .query("select owner_id from tool_sessions", &[])
            .await
            .unwrap();

    // Assert
    assert_eq!(by_service.unwrap(), 1);
    assert_denied(a_reads);
    assert_denied(a_inserts);
    assert_denied(b_reads);
    assert_denied(anon_reads);
    assert_eq!(service_reads.len(), 1);
    assert_eq!(service_reads[0].get::<_, Uuid>(0), t.a);
}

#[tokio::test]
async fn a_claimed_role_does_not_lift_the_database_role() {
    // Arrange: A's token with `role` rewritten; PostgREST would reject the
    // signature, but even the claim alone must change nothing in SQL.
    let t = TwoUsers::new().await;
    let c = chat(&t.db, t.b).await;
    let tampered = t.as_a_with("role", json!("service_role"));

    // Act
    let reads = tampered
        .query("select id from chat_messages", &[])
        .await
        .unwrap();
    let writes = tampered
        .execute(
            "update chat_messages set content = 'x' where id = $1",
            &[&c.message],
        )
        .await;

    // Assert
    assert!(reads.is_empty());
    assert_denied(writes);
}
