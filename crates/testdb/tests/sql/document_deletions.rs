//! private.document_deletions (db/app/97_document_deletions.sql): every
//! deleted document — by its owner, directly or through an account's
//! cascade — leaves its file and source in an outbox only the service role
//! reads and writes; a user enqueues nothing but what was theirs.

use crate::fixtures::{TwoUsers, assert_denied, count, document};
use quire_testdb::TestDb;
use uuid::Uuid;

async fn with_source(db: &TestDb, document: Uuid, source: Uuid) {
    db.as_service()
        .execute(
            "update documents set source_id = $2 where id = $1",
            &[&document, &source],
        )
        .await
        .expect("service role records a source");
}

/// The outbox as the superuser sees it: (document, owner, storage_path, source).
async fn outbox(db: &TestDb) -> Vec<(Uuid, Uuid, String, Option<Uuid>)> {
    db.admin()
        .await
        .query(
            "select document_id, owner_id, storage_path, source_id \
             from private.document_deletions order by created_at, document_id",
            &[],
        )
        .await
        .expect("reading the outbox")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn the_outbox_is_neither_readable_nor_writable_by_users_or_anon() {
    let t = TwoUsers::new().await;
    let doc_b = document(&t.db, t.b, "B's notes", "ready").await;
    t.db.admin()
        .await
        .execute("delete from documents where id = $1", &[&doc_b])
        .await
        .unwrap();
    assert_eq!(outbox(&t.db).await.len(), 1, "B's deletion is pending");

    for caller in [t.as_a(), t.db.as_anon()] {
        assert_denied(
            caller
                .query("select * from private.document_deletions", &[])
                .await,
        );
        assert_denied(
            caller
                .execute(
                    "insert into private.document_deletions (document_id, owner_id, storage_path) \
                     values (gen_random_uuid(), $1, $2)",
                    &[&t.b, &format!("{}/{}.pdf", t.b, Uuid::new_v4())],
                )
                .await,
        );
        assert_denied(
            caller
                .execute("delete from private.document_deletions", &[])
                .await,
        );
        assert_denied(
            caller
                .query("select * from public.pending_document_deletions(50)", &[])
                .await,
        );
        assert_denied(
            caller
                .execute("select public.forget_document_deletion($1)", &[&doc_b])
                .await,
        );
        assert_denied(
            caller
                .execute("select private.enqueue_document_deletion()", &[])
                .await,
        );
    }
    assert_eq!(
        outbox(&t.db).await.len(),
        1,
        "B's deletion is still pending"
    );
}

#[tokio::test]
async fn a_user_enqueues_only_the_file_and_source_of_her_own_deleted_document() {
    let t = TwoUsers::new().await;
    let doc_a = document(&t.db, t.a, "Glacier report", "ready").await;
    let doc_b = document(&t.db, t.b, "B's notes", "ready").await;
    let source_a = Uuid::new_v4();
    let source_b = Uuid::new_v4();
    with_source(&t.db, doc_a, source_a).await;
    with_source(&t.db, doc_b, source_b).await;

    // A tries B's document: nothing is deleted, nothing is enqueued.
    let a_deletes_b = t
        .as_a()
        .execute("delete from documents where id = $1", &[&doc_b])
        .await
        .unwrap();
    assert_eq!(a_deletes_b, 0);
    // Nor can A point her row at B's file or source before deleting it.
    assert_denied(
        t.as_a()
            .execute(
                "update documents set source_id = $2 where id = $1",
                &[&doc_a, &source_b],
            )
            .await,
    );
    assert_eq!(outbox(&t.db).await, vec![]);

    // A deletes her own, behind the companion's back.
    let a_deletes_a = t
        .as_a()
        .execute("delete from documents", &[])
        .await
        .unwrap();
    assert_eq!(a_deletes_a, 1);
    assert_eq!(
        outbox(&t.db).await,
        vec![(doc_a, t.a, format!("{}/{doc_a}.pdf", t.a), Some(source_a))]
    );
    assert_eq!(
        count(
            &t.db,
            "select count(*) from documents where id = $1",
            &[&doc_b]
        )
        .await,
        1,
        "B's document stays"
    );
}

#[tokio::test]
async fn deleting_an_account_enqueues_each_of_its_documents() {
    let t = TwoUsers::new().await;
    let first = document(&t.db, t.a, "Glacier report", "ready").await;
    let second = document(&t.db, t.a, "Moraine notes", "uploading").await;
    document(&t.db, t.b, "B's notes", "ready").await;

    t.db.admin()
        .await
        .execute("delete from auth.users where id = $1", &[&t.a])
        .await
        .unwrap();

    let mut pending: Vec<Uuid> = outbox(&t.db).await.iter().map(|r| r.0).collect();
    pending.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(pending, expected, "A's two documents, and nothing of B's");
}

#[tokio::test]
async fn a_shared_source_is_reported_in_use_until_its_last_document_goes() {
    let t = TwoUsers::new().await;
    let doc_a = document(&t.db, t.a, "Manual", "ready").await;
    let doc_b = document(&t.db, t.b, "Same manual", "ready").await;
    let shared = Uuid::new_v4();
    with_source(&t.db, doc_a, shared).await;
    with_source(&t.db, doc_b, shared).await;

    t.as_a()
        .execute("delete from documents where id = $1", &[&doc_a])
        .await
        .unwrap();
    let pending = t
        .db
        .as_service()
        .query(
            "select document_id, source_id, source_still_used from public.pending_document_deletions(50)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].get::<_, Uuid>(0), doc_a);
    assert!(pending[0].get::<_, bool>(2), "B's document still uses it");

    t.as_b()
        .execute("delete from documents where id = $1", &[&doc_b])
        .await
        .unwrap();
    let pending =
        t.db.as_service()
            .query(
                "select document_id, source_still_used from public.pending_document_deletions(50)",
                &[],
            )
            .await
            .unwrap();
    assert_eq!(pending.len(), 2);
    assert!(
        pending.iter().all(|r| !r.get::<_, bool>(1)),
        "nobody uses it now"
    );

    t.db.as_service()
        .execute("select public.forget_document_deletion($1)", &[&doc_a])
        .await
        .unwrap();
    let left: Vec<Uuid> = outbox(&t.db).await.iter().map(|r| r.0).collect();
    assert_eq!(left, vec![doc_b]);
    let attempts: i32 =
        t.db.admin()
            .await
            .query_one(
                "select attempts from private.document_deletions where document_id = $1",
                &[&doc_b],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(attempts, 1, "each read counts an attempt");
}

/// Rows whose cleaning keeps failing (each pick counts an attempt) do not hold up the deletions
/// that came after them: the drain is handed the fewest attempts first.
#[tokio::test]
async fn a_deletion_that_keeps_failing_does_not_hold_up_later_ones() {
    let t = TwoUsers::new().await;
    let stuck = document(&t.db, t.a, "Stuck", "ready").await;
    t.as_a()
        .execute("delete from documents where id = $1", &[&stuck])
        .await
        .unwrap();
    for _ in 0..3 {
        let picked =
            t.db.as_service()
                .query(
                    "select document_id from public.pending_document_deletions(1)",
                    &[],
                )
                .await
                .unwrap();
        assert_eq!(picked[0].get::<_, Uuid>(0), stuck);
    }
    let later = document(&t.db, t.b, "Later", "ready").await;
    t.as_b()
        .execute("delete from documents where id = $1", &[&later])
        .await
        .unwrap();
    let picked =
        t.db.as_service()
            .query(
                "select document_id from public.pending_document_deletions(1)",
                &[],
            )
            .await
            .unwrap();
    assert_eq!(
        picked[0].get::<_, Uuid>(0),
        later,
        "the later deletion first"
    );
}
