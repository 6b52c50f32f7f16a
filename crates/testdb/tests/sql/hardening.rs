//! Limits that hold whatever a signed-in user sends and however many
//! requests run at once (issue 14): fair ingest claims, bounded searches,
//! per-user caps counted and enforced in one statement, run slots shared by
//! every companion, capped answers. Two users in each: A pushes, B's share
//! and data come through.

use quire_testdb::Caller;
use uuid::Uuid;

use crate::fixtures::{TwoUsers, document};

/// A document of `owner` whose file the companion checked: queued.
async fn queued(t: &TwoUsers, owner: Uuid) -> Uuid {
    let id = document(&t.db, owner, "Report", "uploading").await;
    t.db.as_service()
        .query_one("select public.queue_ingest($1)", &[&id])
        .await
        .expect("queue_ingest");
    id
}

/// What `worker` claims, allowing each user `per_user` live leases.
async fn claim(service: &Caller, worker: &str, per_user: i32) -> Option<(Uuid, Uuid)> {
    service
        .query_opt(
            "select document_id, owner_id from public.claim_ingest_job($1, 60, $2)",
            &[&worker, &per_user],
        )
        .await
        .expect("claim_ingest_job")
        .map(|r| (r.get(0), r.get(1)))
}

#[tokio::test]
async fn one_users_queue_does_not_hold_every_worker() {
    // Arrange: A queues three documents, then B one.
    let t = TwoUsers::new().await;
    let a1 = queued(&t, t.a).await;
    let a2 = queued(&t, t.a).await;
    let _a3 = queued(&t, t.a).await;
    let b1 = queued(&t, t.b).await;
    let service = t.db.as_service();

    // Act: three workers, one live lease per user.
    let first = claim(&service, "w1", 1).await;
    let second = claim(&service, "w2", 1).await;
    let third = claim(&service, "w3", 1).await;
    // Two per user: the next free worker takes A's next document.
    let fourth = claim(&service, "w4", 2).await;

    // Assert
    assert_eq!(first, Some((a1, t.a)), "the oldest job first");
    assert_eq!(second, Some((b1, t.b)), "B's job before A's second");
    assert_eq!(third, None, "A already holds the one worker A may have");
    assert_eq!(fourth, Some((a2, t.a)));
}

/// A's ready document about a blender motor, and B's about a ladder.
async fn two_libraries(t: &TwoUsers) -> (Uuid, Uuid) {
    let a_doc = document(&t.db, t.a, "Blender manual", "ready").await;
    crate::fixtures::chunk(
        &t.db,
        t.a,
        a_doc,
        1,
        "Warranty: the motor is covered for five years; the jars for one year only.",
    )
    .await;
    let b_doc = document(&t.db, t.b, "Shed inventory", "ready").await;
    crate::fixtures::chunk(
        &t.db,
        t.b,
        b_doc,
        1,
        "The ladder hangs on the north wall of the shed.",
    )
    .await;
    (a_doc, b_doc)
}

/// `n` different words that no chunk holds.
fn filler(n: usize) -> String {
    (0..n)
        .map(|i| format!("zq{i}x"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test]
async fn only_the_first_words_of_a_long_query_are_searched() {
    // Arrange
    let t = TwoUsers::new().await;
    let (a_doc, _) = two_libraries(&t).await;
    let search = "select document_id from public.search_chunks($1)";

    // Act: the same word, first or after 100 others.
    let first = t
        .as_a()
        .query(search, &[&format!("motor {}", filler(100))])
        .await
        .unwrap();
    let last = t
        .as_a()
        .query(search, &[&format!("{} motor", filler(100))])
        .await
        .unwrap();
    let b_first = t
        .as_b()
        .query(search, &[&format!("motor {}", filler(100))])
        .await
        .unwrap();

    // Assert
    let ids = |rows: Vec<quire_testdb::tokio_postgres::Row>| -> Vec<Uuid> {
        rows.iter().map(|r| r.get(0)).collect()
    };
    assert_eq!(ids(first), vec![a_doc], "found by its first word");
    assert!(ids(last).is_empty(), "a word after the cap is not searched");
    assert!(ids(b_first).is_empty(), "B finds none of A's chunks");
}

#[tokio::test]
async fn a_query_of_megabytes_is_answered_within_the_users_statement_timeout() {
    // Arrange: authenticated's statement_timeout, as PostgREST applies it.
    let t = TwoUsers::new().await;
    let (a_doc, b_doc) = two_libraries(&t).await;
    let a = t.as_a().on_connect("set statement_timeout = '8s'");
    let b = t.as_b().on_connect("set statement_timeout = '8s'");
    let words = filler(200_000);
    let hostile = format!("motor {words}");
    assert!(hostile.len() > 1_000_000);

    // Act
    let a_hits = a
        .query(
            "select document_id from public.search_chunks($1)",
            &[&hostile],
        )
        .await;
    let b_hits = b
        .query(
            "select document_id from public.search_chunks($1)",
            &[&format!("ladder {words}")],
        )
        .await;

    // Assert (the error's SQLSTATE only: its message holds the query)
    let ids = |rows: Result<Vec<quire_testdb::tokio_postgres::Row>, _>| -> Vec<Uuid> {
        match rows {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(e) => panic!(
                "SQLSTATE {:?}",
                quire_testdb::tokio_postgres::Error::code(&e)
            ),
        }
    };
    let (a_hits, b_hits) = (ids(a_hits), ids(b_hits));
    assert_eq!(a_hits, vec![a_doc]);
    assert_eq!(b_hits, vec![b_doc]);
}

#[tokio::test]
async fn a_search_in_more_documents_than_a_user_may_have_is_refused() {
    // Arrange
    let t = TwoUsers::new().await;
    let (a_doc, _) = two_libraries(&t).await;
    let mut many: Vec<Uuid> = (0..5000).map(|_| Uuid::new_v4()).collect();
    many.push(a_doc);

    // Act
    let refused = t
        .as_a()
        .query(
            "select document_id from public.search_chunks('motor', 8, $1)",
            &[&many],
        )
        .await;
    let allowed = t
        .as_a()
        .query(
            "select document_id from public.search_chunks('motor', 8, $1)",
            &[&vec![a_doc]],
        )
        .await
        .unwrap();

    // Assert
    match refused {
        Err(e) => assert_eq!(
            e.code(),
            Some(&quire_testdb::tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE),
            "{e:?}"
        ),
        Ok(rows) => panic!("{} rows for 5001 document ids", rows.len()),
    }
    assert_eq!(allowed.len(), 1);
}

/// Runs `sql` with `params` as each of `callers`, all at once; what each got.
async fn all_at_once(
    callers: Vec<Caller>,
    sql: &'static str,
    owner: Uuid,
    max: Option<i32>,
) -> Vec<Result<u64, quire_testdb::tokio_postgres::Error>> {
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|caller| {
            tokio::spawn(async move {
                match max {
                    Some(max) => caller.execute(sql, &[&owner, &max]).await,
                    None => caller.execute(sql, &[&owner]).await,
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("a task"));
    }
    results
}

/// `register_document` for `owner` with at most `max_in_flight` in flight,
/// each call on a connection of its own, all at once: how many succeeded,
/// and the SQLSTATEs of the others.
async fn register_at_once(
    t: &TwoUsers,
    owner: Uuid,
    calls: usize,
    max_in_flight: i32,
) -> (usize, Vec<String>) {
    let callers: Vec<Caller> = (0..calls).map(|_| t.db.as_service()).collect();
    let results = all_at_once(
        callers,
        "select document_id from public.register_document($1, 'Report', 1000, null, $2)",
        owner,
        Some(max_in_flight),
    )
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let codes = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_default())
        .collect();
    (ok, codes)
}

#[tokio::test]
async fn the_uploads_in_flight_limit_is_counted_and_taken_in_one_statement() {
    // Arrange
    let t = TwoUsers::new().await;

    // Act: twelve registrations at once, two allowed in flight.
    let (a_ok, a_refused) = register_at_once(&t, t.a, 12, 2).await;
    let (b_ok, _) = register_at_once(&t, t.b, 1, 2).await;

    // Assert
    assert_eq!(a_ok, 2, "{a_refused:?}");
    assert!(a_refused.iter().all(|c| c == "PT429"), "{a_refused:?}");
    assert_eq!(b_ok, 1, "B is not limited by A");
    assert_eq!(
        crate::fixtures::count(
            &t.db,
            "select count(*) from documents where owner_id = $1",
            &[&t.a]
        )
        .await,
        2
    );
}

#[tokio::test]
async fn documents_and_conversations_per_user_are_capped_even_at_once() {
    // Arrange: A one short of each cap.
    let t = TwoUsers::new().await;
    let admin = t.db.admin().await;
    admin
        .execute(
            "insert into documents (owner_id, title, byte_size, status) \
             select $1, 'Old ' || n, 1, 'ready' from generate_series(1, 999) n",
            &[&t.a],
        )
        .await
        .unwrap();
    admin
        .execute(
            "insert into conversations (owner_id, title) \
             select $1, 'Old ' || n from generate_series(1, 9999) n",
            &[&t.a],
        )
        .await
        .unwrap();

    // Act: five documents at once (the companion's way) and five
    // conversations at once (A's own inserts through PostgREST).
    let (documents, refused) = register_at_once(&t, t.a, 5, 1000).await;
    let callers: Vec<Caller> = (0..5).map(|_| t.as_a()).collect();
    let conversations = all_at_once(
        callers,
        "insert into conversations (owner_id, title) values ($1, 'New')",
        t.a,
        None,
    )
    .await;
    let b_document = register_at_once(&t, t.b, 1, 1000).await.0;
    let b_conversation = t
        .as_b()
        .execute(
            "insert into conversations (owner_id, title) values ($1, 'Mine')",
            &[&t.b],
        )
        .await;

    // Assert
    assert_eq!(documents, 1, "{refused:?}");
    assert!(refused.iter().all(|c| c == "PT409"), "{refused:?}");
    let made = conversations.iter().filter(|r| r.is_ok()).count();
    assert_eq!(made, 1, "{conversations:?}");
    for refused in conversations.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(
            refused.code().map(|c| c.code()),
            Some("PT409"),
            "{refused:?}"
        );
    }
    assert_eq!((b_document, b_conversation.ok()), (1, Some(1)));
    assert_eq!(
        crate::fixtures::count(
            &t.db,
            "select count(*) from documents where owner_id = $1",
            &[&t.a]
        )
        .await,
        1000
    );
    assert_eq!(
        crate::fixtures::count(
            &t.db,
            "select count(*) from conversations where owner_id = $1",
            &[&t.a]
        )
        .await,
        10_000
    );
}

#[tokio::test]
async fn run_slots_are_counted_in_the_database_for_every_companion() {
    // Arrange
    let t = TwoUsers::new().await;
    let service = t.db.as_service();
    let take = |owner: Uuid, holder: &'static str| {
        let service = &service;
        async move {
            service
                .query_one(
                    "select public.take_run_slot($1, $2, 2, 60)",
                    &[&owner, &holder],
                )
                .await
                .expect("take_run_slot")
                .get::<_, Option<Uuid>>(0)
        }
    };

    // Act: A takes two slots on one companion, then asks for a third on
    // another; B takes one; A gives one back; A's other slot's lease runs out.
    let first = take(t.a, "companion-1").await;
    let second = take(t.a, "companion-1").await;
    let third = take(t.a, "companion-2").await;
    let b_slot = take(t.b, "companion-2").await;
    service
        .execute("select public.release_run_slot($1)", &[&first.unwrap()])
        .await
        .unwrap();
    let after_release = take(t.a, "companion-2").await;
    let renewed: bool = service
        .query_one("select public.renew_run_slot($1, 60)", &[&second.unwrap()])
        .await
        .unwrap()
        .get(0);
    t.db.admin()
        .await
        .execute(
            "update private.run_slots set lease_until = now() - interval '1 second' where id = $1",
            &[&second.unwrap()],
        )
        .await
        .unwrap();
    let after_expiry = take(t.a, "companion-2").await;
    let renewed_expired: bool = service
        .query_one("select public.renew_run_slot($1, 60)", &[&second.unwrap()])
        .await
        .unwrap()
        .get(0);

    // Assert
    assert!(first.is_some() && second.is_some());
    assert_eq!(
        third, None,
        "two running answers are A's limit, on any companion"
    );
    assert!(b_slot.is_some(), "B is not limited by A");
    assert!(after_release.is_some());
    assert!(renewed);
    assert!(
        after_expiry.is_some(),
        "a dead companion's slot frees itself"
    );
    assert!(!renewed_expired, "an expired slot is gone");
}

#[tokio::test]
async fn an_answer_stops_at_the_longest_quire_keeps() {
    // Arrange: a turn of A's and one of B's.
    let t = TwoUsers::new().await;
    let service = t.db.as_service();
    let turn = |owner: Uuid| {
        let (service, t) = (&service, &t);
        async move {
            let conversation = crate::fixtures::conversation(&t.db, owner).await;
            service
                .query_one(
                    "select message_id from public.begin_chat_turn($1, $2, 'Go on forever')",
                    &[&conversation, &owner],
                )
                .await
                .unwrap()
                .get::<_, Uuid>(0)
        }
    };
    let (a_answer, b_answer) = (turn(t.a).await, turn(t.b).await);
    let limit: i32 = service
        .query_one("select private.max_answer_chars()", &[])
        .await
        .unwrap()
        .get(0);
    let limit = usize::try_from(limit).unwrap();
    let long = "word ".repeat(limit / 5 + 1000);
    let delta = |seq: i32, text: &str| serde_json::json!([{"seq": seq, "kind": "delta", "payload": {"text": text}}]);

    // Act: A's answer grows past the limit; B's stays short.
    let a_streaming: bool = service
        .query_one(
            "select public.append_chat_events($1, $2, $3)",
            &[&a_answer, &delta(0, &long), &long],
        )
        .await
        .unwrap()
        .get(0);
    let b_streaming: bool = service
        .query_one(
            "select public.append_chat_events($1, $2, 'Short.')",
            &[&b_answer, &delta(0, "Short.")],
        )
        .await
        .unwrap()
        .get(0);
    let complete = serde_json::json!([{"seq": 1, "kind": "complete",
        "payload": {"status": "stopped", "content": long, "citations": []}}]);
    let a_final: Option<String> = service
        .query_one(
            "select public.finish_chat_message($1, $2, 'stopped', $3)",
            &[&a_answer, &complete, &long],
        )
        .await
        .unwrap()
        .get(0);

    // Assert
    assert!(!a_streaming, "the writer is told to end the run");
    assert!(b_streaming);
    assert_eq!(a_final.as_deref(), Some("stopped"));
    let row = t
        .db
        .admin()
        .await
        .query_one(
            "select char_length(m.content), m.error, \
                    (select max(char_length(e.payload->>'content')) from chat_events e where e.message_id = m.id) \
             from chat_messages m where m.id = $1",
            &[&a_answer],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), i32::try_from(limit).unwrap());
    assert!(
        row.get::<_, Option<String>>(1)
            .is_some_and(|e| e.contains("longest"))
    );
    assert_eq!(
        row.get::<_, Option<i32>>(2),
        Some(i32::try_from(limit).unwrap())
    );
    let b_content: String =
        t.db.admin()
            .await
            .query_one(
                "select content from chat_messages where id = $1",
                &[&b_answer],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(b_content, "Short.");
}

/// `begin_chat_answer` as the companion calls it: the new answer's id.
async fn begin_answer(
    service: &Caller,
    conversation: Uuid,
    owner: Uuid,
    token_hash: &str,
) -> Result<Uuid, quire_testdb::tokio_postgres::Error> {
    service
        .query_one(
            "select message_id from public.begin_chat_answer($1, $2, 'Why?', $3, \
             now() + interval '1 hour')",
            &[&conversation, &owner, &token_hash],
        )
        .await
        .map(|r| r.get(0))
}

#[tokio::test]
async fn an_answer_begins_and_ends_in_one_call_each_and_only_the_owners() {
    // Arrange: a conversation of A's, one of B's, and a run slot each.
    let t = TwoUsers::new().await;
    let service = t.db.as_service();
    let a_conversation = crate::fixtures::conversation(&t.db, t.a).await;
    let b_conversation = crate::fixtures::conversation(&t.db, t.b).await;
    let mut slots = Vec::new();
    for owner in [t.a, t.b] {
        let slot: Uuid = service
            .query_one(
                "select public.take_run_slot($1, 'companion-1', 2, 60)",
                &[&owner],
            )
            .await
            .unwrap()
            .get(0);
        slots.push(slot);
    }
    let (a_slot, b_slot) = (slots[0], slots[1]);
    let (a_hash, b_hash, forged_hash) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));

    // Act: each begins an answer in their own conversation; A's owner id on
    // B's conversation is refused; A's answer ends; A's own token cannot end
    // B's.
    let a_answer = begin_answer(&service, a_conversation, t.a, &a_hash)
        .await
        .expect("A's answer begins");
    let b_answer = begin_answer(&service, b_conversation, t.b, &b_hash)
        .await
        .expect("B's answer begins");
    let forged = begin_answer(&service, b_conversation, t.a, &forged_hash).await;
    let complete = serde_json::json!([{"seq": 0, "kind": "complete",
        "payload": {"status": "complete", "content": "Because.", "citations": []}}]);
    let status: Option<String> = service
        .query_one(
            "select public.finish_chat_answer($1, $2, 'complete', 'Because.', '[]', 'run_1', \
             null, $3, $4)",
            &[&a_answer, &complete, &a_hash, &a_slot],
        )
        .await
        .expect("finish_chat_answer")
        .get(0);
    let by_a = t
        .as_a()
        .query_one(
            "select public.finish_chat_answer($1, '[]', 'failed', '', '[]', null, null, $2, $3)",
            &[&b_answer, &b_hash, &b_slot],
        )
        .await;

    // Assert
    assert!(
        forged.is_err(),
        "A cannot begin an answer in B's conversation"
    );
    assert_eq!(status.as_deref(), Some("complete"));
    crate::fixtures::assert_denied(by_a);
    let sessions = "select count(*) from public.tool_sessions where token_hash = $1";
    let slot_rows = "select count(*) from private.run_slots where id = $1";
    let count = crate::fixtures::count;
    assert_eq!(
        count(&t.db, sessions, &[&a_hash]).await,
        0,
        "A's token is gone"
    );
    assert_eq!(
        count(&t.db, slot_rows, &[&a_slot]).await,
        0,
        "A's slot is free"
    );
    assert_eq!(
        count(&t.db, sessions, &[&b_hash]).await,
        1,
        "B's token stays"
    );
    assert_eq!(
        count(&t.db, slot_rows, &[&b_slot]).await,
        1,
        "B's slot stays"
    );
    assert_eq!(
        count(&t.db, sessions, &[&forged_hash]).await,
        0,
        "a refused answer leaves no token behind"
    );
    let b_status: String =
        t.db.admin()
            .await
            .query_one(
                "select status from public.chat_messages where id = $1",
                &[&b_answer],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(b_status, "streaming", "B's answer is untouched");
}

#[tokio::test]
async fn context_chunks_returns_only_the_callers_chunks_with_their_titles() {
    // Arrange: a chunk of A's and one of B's.
    let t = TwoUsers::new().await;
    let a_document = document(&t.db, t.a, "A's field notes", "ready").await;
    let b_document = document(&t.db, t.b, "B's diary", "ready").await;
    let a_chunk = crate::fixtures::chunk(&t.db, t.a, a_document, 2, "Moss grows north.").await;
    let b_chunk = crate::fixtures::chunk(&t.db, t.b, b_document, 1, "B's secret.").await;
    let ids = vec![b_chunk, a_chunk, Uuid::new_v4()];

    // Act: A asks for all three ids; B for A's; anon for both.
    let by_a = t
        .as_a()
        .query(
            "select id, title, page, text from public.context_chunks($1)",
            &[&ids],
        )
        .await
        .expect("context_chunks as A");
    let by_b = t
        .as_b()
        .query(
            "select id from public.context_chunks($1)",
            &[&vec![a_chunk]],
        )
        .await
        .expect("context_chunks as B");
    let by_anon =
        t.db.as_anon()
            .query("select id from public.context_chunks($1)", &[&ids])
            .await;

    // Assert
    assert_eq!(by_a.len(), 1, "only A's own chunk");
    assert_eq!(by_a[0].get::<_, Uuid>(0), a_chunk);
    assert_eq!(by_a[0].get::<_, String>(1), "A's field notes");
    assert_eq!(by_a[0].get::<_, i32>(2), 2);
    assert_eq!(by_a[0].get::<_, String>(3), "Moss grows north.");
    assert!(by_b.is_empty(), "B reads nothing of A's");
    crate::fixtures::assert_denied(by_anon);
}

/// The companion's identity for `search_with_tool_session`: `authenticated`
/// with the nil uuid as `sub` (db/app/94_tool_search.sql).
fn tool_caller(t: &TwoUsers) -> Caller {
    t.db.as_claims(
        "authenticated",
        serde_json::json!({"sub": Uuid::nil(), "role": "authenticated", "aud": "authenticated"}),
    )
}

/// A tool session of `owner` in `conversation` for `token`, live for
/// `seconds` (negative: expired), stored as the companion stores it.
async fn tool_session(t: &TwoUsers, owner: Uuid, conversation: Uuid, token: &str, seconds: i32) {
    t.db.admin()
        .await
        .execute(
            "insert into public.tool_sessions (token_hash, owner_id, conversation_id, expires_at) \
             values (encode(sha256(convert_to($1, 'UTF8')), 'hex'), $2, $3, \
                     now() + make_interval(secs => $4))",
            &[&token, &owner, &conversation, &f64::from(seconds)],
        )
        .await
        .expect("a tool session");
}

#[tokio::test]
async fn search_with_tool_session_searches_as_the_sessions_owner_and_finds_nothing_otherwise() {
    // Arrange: A and B each have a ready document about the motor and a live
    // tool session; A has an expired one too.
    let t = TwoUsers::new().await;
    let a_document = document(&t.db, t.a, "A's manual", "ready").await;
    let b_document = document(&t.db, t.b, "B's manual", "ready").await;
    let a_chunk = crate::fixtures::chunk(
        &t.db,
        t.a,
        a_document,
        3,
        "The motor warranty lasts five years.",
    )
    .await;
    crate::fixtures::chunk(&t.db, t.b, b_document, 1, "B's motor warranty is secret.").await;
    let a_conversation = crate::fixtures::conversation(&t.db, t.a).await;
    let b_conversation = crate::fixtures::conversation(&t.db, t.b).await;
    tool_session(&t, t.a, a_conversation, "qst_a_live", 60).await;
    tool_session(&t, t.a, a_conversation, "qst_a_expired", -1).await;
    tool_session(&t, t.b, b_conversation, "qst_b_live", 60).await;
    let search =
        "select id, title, page from public.search_with_tool_session($1, 'motor warranty')";
    let companion = tool_caller(&t);

    // Act
    let with_a = companion.query(search, &[&"qst_a_live"]).await;
    let with_b = companion.query(search, &[&"qst_b_live"]).await;
    let mut refused = Vec::new();
    for token in ["qst_a_expired", "qst_unknown", ""] {
        refused.push((token, companion.query(search, &[&token]).await));
    }
    let a_hash: String =
        t.db.admin()
            .await
            .query_one(
                "select encode(sha256(convert_to('qst_a_live', 'UTF8')), 'hex')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    // The stored hash of a live token is not a token.
    let by_hash = companion.query(search, &[&a_hash]).await;
    let by_a_user = t.as_a().query(search, &[&"qst_a_live"]).await;
    let by_b_user = t.as_b().query(search, &[&"qst_a_live"]).await;
    let by_anon = t.db.as_anon().query(search, &[&"qst_a_live"]).await;

    // Assert: A's token finds A's chunk only, B's token B's only.
    let with_a = with_a.expect("the companion searches with A's token");
    assert_eq!(with_a.len(), 1, "A's one chunk");
    assert_eq!(with_a[0].get::<_, Uuid>(0), a_chunk);
    assert_eq!(with_a[0].get::<_, String>(1), "A's manual");
    assert_eq!(with_a[0].get::<_, i32>(2), 3);
    let with_b = with_b.expect("the companion searches with B's token");
    assert_eq!(with_b.len(), 1, "B's one chunk");
    assert_ne!(
        with_b[0].get::<_, Uuid>(0),
        a_chunk,
        "B's token never finds A's"
    );
    for (token, result) in refused {
        let error = result.expect_err(token);
        assert_eq!(
            error.code().map(|c| c.code()),
            Some("PT401"),
            "{token}: {error:?}"
        );
    }
    let error = by_hash.expect_err("a hash is not a token");
    assert_eq!(error.code().map(|c| c.code()), Some("PT401"));
    // Signed-in users, A included, and anon may not call it at all.
    crate::fixtures::assert_denied(by_a_user);
    crate::fixtures::assert_denied(by_b_user);
    crate::fixtures::assert_denied(by_anon);
}
