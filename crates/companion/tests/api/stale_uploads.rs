//! Uploads cut and never finished (issue 17, item 6): the companion's worker
//! deletes documents still `uploading` long after their last change
//! (`QUIRE_COMPANION_STALE_UPLOAD_SECS`, a day by default), with their
//! Storage object; everything else, and everyone else's, stays.

use quire_testkit::fixtures::{self, MANUAL};
use quire_testkit::{Stack, User, eventually, spawn_stack};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

/// Registers a document as `user`, with its file stored when `stored`;
/// returns its id and object key. It stays `uploading`.
async fn uploading(app: &Stack, user: &User, title: &str, stored: bool) -> (Uuid, String) {
    let bytes = fixtures::text_pdf(&MANUAL);
    let (status, body) = app
        .register(user, &json!({"title": title, "byte_size": bytes.len()}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let path = body["storage_path"].as_str().unwrap().to_owned();
    if stored {
        assert_eq!(app.put_object(user, &path, bytes).await, StatusCode::OK);
    }
    (body["document_id"].as_str().unwrap().parse().unwrap(), path)
}

/// Moves a document's last change `hours` back (its trigger, which stamps
/// every update with now, is off for this one statement).
async fn age(app: &Stack, id: Uuid, hours: i32) {
    app.connect_db()
        .await
        .batch_execute(&format!(
            "begin; set local session_replication_role = replica; \
             update public.documents set updated_at = now() - interval '{hours} hours' \
             where id = '{id}'; commit;"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_upload_still_uploading_a_day_later_is_deleted_with_its_file() {
    let mut app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let (stale, stale_path) = uploading(&app, &a, "Cut.pdf", true).await;
    let (recent, _) = uploading(&app, &a, "Going.pdf", false).await;
    let (failed, _) = uploading(&app, &a, "Broken.pdf", false).await;
    let (b_recent, b_path) = uploading(&app, &b, "Bob's.pdf", true).await;
    age(&app, stale, 25).await;
    // An hour past the in-flight window, not a day: still someone's to finish.
    age(&app, recent, 2).await;
    // Old, but not uploading: not the sweep's.
    app.connect_db()
        .await
        .execute(
            "update public.documents set status = 'failed', error = 'x' where id = $1",
            &[&failed],
        )
        .await
        .unwrap();
    age(&app, failed, 48).await;
    assert!(app.stored_file_exists(&stale_path).await);

    // A companion starting now sweeps at once (the first one swept when
    // nothing was stale yet).
    app.start_companion(None, |_| {}).await;
    eventually(30, "the stale upload is deleted", async || {
        !app.document_exists(stale).await
    })
    .await;
    // Its file goes after it, drained from the outbox
    // (db/app/97_document_deletions.sql).
    eventually(30, "its file goes with it", async || {
        !app.stored_file_exists(&stale_path).await
    })
    .await;
    assert!(app.document_exists(recent).await, "A's recent upload stays");
    assert!(
        app.document_exists(failed).await,
        "A's failed document stays"
    );
    assert!(app.document_exists(b_recent).await, "B's upload stays");
    assert!(app.stored_file_exists(&b_path).await, "B's file stays");
}
