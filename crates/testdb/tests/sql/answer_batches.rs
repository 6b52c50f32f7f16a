//! An answer in fewer requests (db/app/98_answer_batches.sql, issue 18):
//! `begin_chat` takes the run slot, makes a new conversation and begins the
//! turn in one transaction; `write_chat_answers` appends and finishes many
//! answers in one. Two users in each: neither call lets one write into the
//! other's conversation, and only the service role may call them.

use quire_testdb::Caller;
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::{TwoUsers, assert_denied, count};

/// `begin_chat` for `owner` in `conversation` (`None`: a new one, whose
/// platform session is `sess_` and the hash's first 12 characters), at most
/// one answer at a time: (slot, conversation, question, answer), all `None`
/// when no slot was free.
async fn begin(
    caller: &Caller,
    owner: Uuid,
    conversation: Option<Uuid>,
    token_hash: &str,
) -> Result<[Option<Uuid>; 4], quire_testdb::tokio_postgres::Error> {
    caller
        .query_one(
            "select slot_id, conversation, user_message_id, message_id from public.begin_chat(\
             $1, 'companion-1', 1, 60, $2, 'sess_' || left($3, 12), 'Why is the sky blue?', \
             'Why is the sky blue?', $3, now() + interval '1 hour', '[]')",
            &[&owner, &conversation, &token_hash],
        )
        .await
        .map(|r| [r.get(0), r.get(1), r.get(2), r.get(3)])
}

#[tokio::test]
async fn a_question_begins_in_one_call_and_a_refused_one_writes_nothing() {
    // Arrange
    let t = TwoUsers::new().await;
    let service = t.db.as_service();
    let (a_hash, a_again, forged) = ("a".repeat(64), "d".repeat(64), "c".repeat(64));

    // Act: A asks in a new conversation; A asks again while that answer is
    // being written (one at a time); B asks in A's conversation; A calls
    // begin_chat with their own token.
    let first = begin(&service, t.a, None, &a_hash).await.expect("A begins");
    let [slot, conversation, question, answer] = first;
    let conversation = conversation.expect("a conversation");
    let second = begin(&service, t.a, Some(conversation), &a_again)
        .await
        .expect("A's second question is answered, not raised");
    let by_b = begin(&service, t.b, Some(conversation), &forged).await;
    let by_a_token = begin(&t.as_a(), t.a, None, &forged).await;

    // Assert
    assert!(slot.is_some() && question.is_some() && answer.is_some());
    let admin = t.db.admin().await;
    let row = admin
        .query_one(
            "select owner_id, title, agent_session_id from public.conversations where id = $1",
            &[&conversation],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Uuid>(0), t.a, "the new conversation is A's");
    assert_eq!(row.get::<_, String>(1), "Why is the sky blue?");
    assert_eq!(row.get::<_, String>(2), "sess_aaaaaaaaaaaa");
    let answer_status: String = admin
        .query_one(
            "select status from public.chat_messages where id = $1 and conversation_id = $2 \
             and question_id = $3",
            &[&answer, &conversation, &question],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(answer_status, "streaming");
    assert_eq!(second, [None; 4], "no slot: nothing begins");
    assert!(by_b.is_err(), "B cannot ask in A's conversation");
    assert_denied(by_a_token);
    let messages = "select count(*) from public.chat_messages where conversation_id = $1";
    assert_eq!(
        count(&t.db, messages, &[&conversation]).await,
        2,
        "one question and one answer: the refused ones wrote nothing"
    );
    let slots = "select count(*) from private.run_slots where owner_id = $1";
    assert_eq!(count(&t.db, slots, &[&t.a]).await, 1, "A holds one slot");
    assert_eq!(
        count(&t.db, slots, &[&t.b]).await,
        0,
        "B's refused question gave its slot back"
    );
    let sessions = "select count(*) from public.tool_sessions where token_hash = any($1)";
    assert_eq!(
        count(&t.db, sessions, &[&vec![a_again, forged]]).await,
        0,
        "refused questions leave no tool session"
    );
}

/// One `write_chat_answers` call: (message id, streaming, status) per batch.
async fn write(
    caller: &Caller,
    batches: serde_json::Value,
) -> Result<Vec<(Uuid, Option<bool>, Option<String>)>, quire_testdb::tokio_postgres::Error> {
    let rows = caller
        .query(
            "select message_id, streaming, status from public.write_chat_answers($1)",
            &[&batches],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Answer `message`'s stored rows: (seq, kind, the answer's status, its
/// text), in seq order.
async fn stored(t: &TwoUsers, message: Uuid) -> Vec<(i32, String, String, String)> {
    t.db.admin()
        .await
        .query(
            "select e.seq, e.kind, m.status, m.content from public.chat_events e \
             join public.chat_messages m on m.id = e.message_id \
             where e.message_id = $1 order by e.seq",
            &[&message],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn many_answers_are_written_in_one_call_in_order_and_finished() {
    // Arrange: an answer of A's and one of B's, begun.
    let t = TwoUsers::new().await;
    let service = t.db.as_service();
    let (a_hash, b_hash) = ("a".repeat(64), "b".repeat(64));
    let [a_slot, _, _, a_answer] = begin(&service, t.a, None, &a_hash).await.unwrap();
    let [_, _, _, b_answer] = begin(&service, t.b, None, &b_hash).await.unwrap();
    let delta =
        |seq: i32, text: &str| json!({"seq": seq, "kind": "delta", "payload": {"text": text}});

    // Act: both answers' first rows in one call; then A's last row and
    // finish with B's next rows in another; then A calls it with their token.
    let first = write(
        &service,
        json!([
            {"message_id": a_answer, "events": [delta(0, "Ray"), delta(1, "leigh")], "content": "Rayleigh"},
            {"message_id": b_answer, "events": [delta(0, "Blue")], "content": "Blue"},
        ]),
    )
    .await
    .expect("the first write");
    let second = write(
        &service,
        json!([
            {"message_id": a_answer,
             "events": [{"seq": 2, "kind": "complete", "payload": {"status": "complete"}}],
             "content": "Rayleigh scattering.",
             "finish": {"status": "complete", "citations": [], "run_id": "run_1", "error": null,
                        "token_hash": a_hash, "slot_id": a_slot}},
            {"message_id": b_answer, "events": [delta(1, " light")], "content": "Blue light"},
        ]),
    )
    .await
    .expect("the second write");
    let by_a = write(
        &t.as_a(),
        json!([{"message_id": b_answer, "events": [delta(2, "!")], "content": "!"}]),
    )
    .await;

    // Assert
    let (a_answer, b_answer) = (a_answer.unwrap(), b_answer.unwrap());
    assert_eq!(
        first,
        vec![(a_answer, Some(true), None), (b_answer, Some(true), None)]
    );
    assert_eq!(
        second,
        vec![
            (a_answer, None, Some("complete".to_owned())),
            (b_answer, Some(true), None)
        ]
    );
    assert_denied(by_a);
    let rows = |message: Uuid| stored(&t, message);
    let done = |seq: i32, kind: &str| {
        (
            seq,
            kind.to_owned(),
            "complete".to_owned(),
            "Rayleigh scattering.".to_owned(),
        )
    };
    assert_eq!(
        rows(a_answer).await,
        vec![done(0, "delta"), done(1, "delta"), done(2, "complete")]
    );
    let streaming = |seq: i32| {
        (
            seq,
            "delta".to_owned(),
            "streaming".to_owned(),
            "Blue light".to_owned(),
        )
    };
    assert_eq!(
        rows(b_answer).await,
        vec![streaming(0), streaming(1)],
        "B's answer has its own rows, and not A's token's write"
    );
    let sessions = "select count(*) from public.tool_sessions where token_hash = $1";
    assert_eq!(
        count(&t.db, sessions, &[&a_hash]).await,
        0,
        "A's token is gone"
    );
    assert_eq!(
        count(&t.db, sessions, &[&b_hash]).await,
        1,
        "B's token stays"
    );
    let slots = "select count(*) from private.run_slots where owner_id = $1";
    assert_eq!(count(&t.db, slots, &[&t.a]).await, 0, "A's slot is free");
    assert_eq!(count(&t.db, slots, &[&t.b]).await, 1, "B's slot stays");
}
