//! Documents: registration, the status path and its broadcasts, asking to
//! ingest twice, the upload limit, and deletion down to the platform.

use std::time::Duration;

use quire_testkit::fixtures;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use quire_testkit::fixtures::MANUAL;
use quire_testkit::{PATIENCE, Stack, spawn_stack};

#[tokio::test]
async fn a_document_goes_from_uploading_to_ready_and_every_step_reaches_its_owner() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let bytes = fixtures::text_pdf(&MANUAL);
    let (status, body) = app
        .register(
            &a,
            &json!({"title": "  X200 manual.pdf ", "byte_size": bytes.len()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "uploading");
    let id = body["document_id"].as_str().unwrap().to_owned();
    let document: Uuid = id.parse().unwrap();
    assert_eq!(
        app.put_object(&a, body["storage_path"].as_str().unwrap(), bytes)
            .await,
        StatusCode::OK
    );
    let (status, body) = app.ingest(&a, &id).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("stored"))
    );
    let (status, body) = app.ingest(&a, &id).await;
    assert_eq!(status, StatusCode::OK, "asking again is harmless: {body}");
    let (status, error) = app.wait_document(document).await;
    assert_eq!((status.as_str(), error), ("ready", None));

    let db = app.db.admin().await;
    let row = db
        .query_one(
            "select title, source_id is not null, page_count from public.documents where id = $1",
            &[&document],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "X200 manual.pdf");
    assert!(row.get::<_, bool>(1));
    assert_eq!(row.get::<_, Option<i32>>(2), Some(3));
    let pages: Vec<Option<i32>> = db
        .query(
            "select distinct page from public.document_chunks where document_id = $1 order by page",
            &[&document],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // The platform chunks the page texts joined: these three short pages are
    // one chunk, stored at its first page.
    assert_eq!(pages, [Some(1)]);

    // Every status change was broadcast to user:<A>, in order.
    let statuses: Vec<String> = db
        .query(
            "select payload->>'status' from realtime.messages where topic = $1 and event = 'document_status' \
             order by sandbox_seq",
            &[&format!("user:{}", a.id)],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        statuses,
        ["uploading", "stored", "extracting", "indexing", "ready"]
    );
    let (status, _) = app.ingest(&a, &id).await;
    assert_eq!(status, StatusCode::OK, "a ready document stays ready");
}

#[tokio::test]
async fn deleting_a_document_removes_it_everywhere() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let document = app
        .ready_document(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let db = app.db.admin().await;
    let source: Uuid = db
        .query_one(
            "select source_id from public.documents where id = $1",
            &[&document],
        )
        .await
        .unwrap()
        .get(0);

    let (status, _) = app.delete_document(&a, &document.to_string()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(app.document_status(document).await.is_none());
    assert_eq!(
        app.count("select count(*) from public.document_chunks", &[])
            .await,
        0
    );
    // The file and the source go after the row, drained from the outbox
    // (db/app/97_document_deletions.sql).
    let started = std::time::Instant::now();
    while app
        .count(
            "select count(*) from storage.objects where bucket_id = 'documents'",
            &[],
        )
        .await
        > 0
    {
        assert!(started.elapsed() < PATIENCE, "the file is removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while app
        .count("select count(*) from ai.sources where id = $1", &[&source])
        .await
        > 0
    {
        assert!(started.elapsed() < PATIENCE, "the unused source is removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.count("select count(*) from ai.indexed_sources", &[])
            .await,
        0
    );
    assert!(app.search(&a, "warranty motor").await.is_empty());
    let (status, _) = app.delete_document(&a, &document.to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already gone");
}

#[tokio::test]
async fn a_user_with_too_many_uploads_in_flight_is_told_to_wait() {
    let app = Stack::builder()
        .companion(|c| c.limits.max_uploads_per_user = 2)
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let body = json!({"title": "x.pdf", "byte_size": 100});
    assert_eq!(app.register(&a, &body).await.0, StatusCode::CREATED);
    assert_eq!(app.register(&a, &body).await.0, StatusCode::CREATED);
    let response = app
        .companion_request(reqwest::Method::POST, "/api/documents", Some(&a.token))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "30");
    assert_eq!(
        app.register(&b, &body).await.0,
        StatusCode::CREATED,
        "B is not limited by A"
    );
    assert_eq!(
        app.count(
            "select count(*) from public.documents where owner_id = $1",
            &[&a.id]
        )
        .await,
        2
    );
}

#[tokio::test]
async fn health_needs_no_token() {
    let app = spawn_stack().await;
    let response = app
        .companion_request(reqwest::Method::GET, "/health", None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["agent_id"], json!(app.ids().agent_id));
}
