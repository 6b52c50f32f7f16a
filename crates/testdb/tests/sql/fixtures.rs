//! Rows written the way the companion writes them (as the service role),
//! and the assertions every security test uses.

use quire_testdb::tokio_postgres::Error;
use quire_testdb::tokio_postgres::error::SqlState;
use quire_testdb::{Caller, TestDb};
use serde_json::{Value, json};
use uuid::Uuid;

/// A fresh database with two signed-up users: A acts, B must see nothing.
pub struct TwoUsers {
    pub db: TestDb,
    pub a: Uuid,
    pub b: Uuid,
}

impl TwoUsers {
    pub async fn new() -> TwoUsers {
        let db = TestDb::new().await;
        let a = db.create_user("a@example.com").await;
        let b = db.create_user("b@example.com").await;
        TwoUsers { db, a, b }
    }

    pub fn as_a(&self) -> Caller {
        self.db.as_user(self.a)
    }

    pub fn as_b(&self) -> Caller {
        self.db.as_user(self.b)
    }

    /// User A's identity with any claim replaced, as a tampered token would
    /// carry it (the role stays `authenticated`).
    pub fn as_a_with(&self, key: &str, value: Value) -> Caller {
        let mut claims = self.as_a().claims().clone();
        claims[key] = value;
        self.db.as_claims("authenticated", claims)
    }
}

/// A document row as the companion registers it, then moved to `status`.
pub async fn document(db: &TestDb, owner: Uuid, title: &str, status: &str) -> Uuid {
    db.as_service()
        .query_one(
            "insert into documents (owner_id, title, byte_size, status) \
             values ($1, $2, 1000, $3) returning id",
            &[&owner, &title, &status],
        )
        .await
        .expect("service role inserts a document")
        .get(0)
}

/// A chunk copied into the owner's retrieval index.
pub async fn chunk(db: &TestDb, owner: Uuid, document: Uuid, page: i32, text: &str) -> Uuid {
    db.as_service()
        .query_one(
            "insert into document_chunks (owner_id, document_id, chunk_id, page, ordinal, text) \
             values ($1, $2, gen_random_uuid(), $3, \
               (select count(*) from document_chunks where document_id = $2)::int, $4) \
             returning id",
            &[&owner, &document, &page, &text],
        )
        .await
        .expect("service role inserts a chunk")
        .get(0)
}

pub async fn conversation(db: &TestDb, owner: Uuid) -> Uuid {
    db.as_service()
        .query_one(
            "insert into conversations (owner_id, title) values ($1, 'Glaciers') returning id",
            &[&owner],
        )
        .await
        .expect("service role inserts a conversation")
        .get(0)
}

pub async fn message(db: &TestDb, owner: Uuid, conversation: Uuid, seq: i32) -> Uuid {
    db.as_service()
        .query_one(
            "insert into chat_messages (owner_id, conversation_id, seq, role, status, content) \
             values ($1, $2, $3, 'assistant', 'streaming', '') returning id",
            &[&owner, &conversation, &seq],
        )
        .await
        .expect("service role inserts a message")
        .get(0)
}

pub async fn event(db: &TestDb, owner: Uuid, conversation: Uuid, message: Uuid, seq: i32) -> Uuid {
    db.as_service()
        .query_one(
            "insert into chat_events (owner_id, conversation_id, message_id, seq, kind, payload) \
             values ($1, $2, $3, $4, 'delta', $5) returning id",
            &[
                &owner,
                &conversation,
                &message,
                &seq,
                &json!({"text": "The glacier "}),
            ],
        )
        .await
        .expect("service role inserts an event")
        .get(0)
}

/// A conversation of `owner` with one streaming answer and one event.
pub struct Chat {
    pub conversation: Uuid,
    pub message: Uuid,
    pub event: Uuid,
}

pub async fn chat(db: &TestDb, owner: Uuid) -> Chat {
    let conversation = conversation(db, owner).await;
    let message = message(db, owner, conversation, 1).await;
    let event = event(db, owner, conversation, message, 1).await;
    Chat {
        conversation,
        message,
        event,
    }
}

/// The statement was refused for lack of privilege (a missing GRANT, or a
/// row an RLS `with check` rejects): SQLSTATE 42501.
#[track_caller]
pub fn assert_denied<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {}
        other => panic!("expected insufficient_privilege (42501), got {other:?}"),
    }
}

/// Row count of `sql` (a `select count(*) …`) as the superuser: what is
/// really in the table, whatever the callers could see.
pub async fn count(
    db: &TestDb,
    sql: &str,
    params: &[&(dyn quire_testdb::tokio_postgres::types::ToSql + Sync)],
) -> i64 {
    db.admin()
        .await
        .query_one(sql, params)
        .await
        .expect("count")
        .get(0)
}
