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
