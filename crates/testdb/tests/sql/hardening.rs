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
