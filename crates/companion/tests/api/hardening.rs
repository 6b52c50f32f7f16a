//! Attacks by a signed-in user on the companion's checks and on everyone
//! else's share of the service (issue 14, items 1, 2 and 6): swapped files,
//! unbounded queries, limits that must hold under concurrency and across
//! replicas. Each test performs the attack, and B's data must come through
//! intact.

use reqwest::StatusCode;
use serde_json::json;

use quire_testkit::fixtures;

use quire_testkit::Stack;
use quire_testkit::fixtures::MANUAL;

/// A stack whose companion does not ingest: documents wait, `stored`.
async fn without_workers() -> Stack {
    Stack::builder()
        .companion(|c| c.ingest.workers = 0)
        .spawn()
        .await
}

/// Stores `bytes` at `path` with the service key, over what is there:
/// anything that rewrites a stored file behind Quire's back. The database
/// refuses it (db/app/80_document_files.sql), so its guard is lifted for
/// the moment.
async fn rewrite_behind_quires_back(app: &Stack, path: &str, bytes: Vec<u8>) {
    let admin = app.db.admin().await;
    admin
        .batch_execute(
            "alter table storage.objects disable trigger documents_files_are_written_once",
        )
        .await
        .unwrap();
    let res = app
        .http
        .post(format!(
            "{}/storage/v1/object/documents/{path}",
            app.sandbox.api_base()
        ))
        .header("apikey", app.anon_key())
        .bearer_auth(app.service_key())
        .header("content-type", "application/pdf")
        .header("x-upsert", "true")
        .body(bytes)
        .send()
        .await
        .unwrap();
    admin
        .batch_execute(
            "alter table storage.objects enable trigger documents_files_are_written_once",
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn a_file_changed_after_its_check_never_reaches_the_platform() {
    // Arrange: A's two documents and B's pass the companion's check and wait
    // for a worker.
    let app = without_workers().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let manual = fixtures::text_pdf(&MANUAL);
    let same_size = app.upload(&a, "Manual.pdf", manual.clone()).await;
    let larger = app.upload(&a, "Manual copy.pdf", manual.clone()).await;
    let theirs = app
        .upload(
            &b,
            "B.pdf",
            fixtures::text_pdf(&["B keeps the ladder in the shed."]),
        )
        .await;

    // Act: the files change: a non-PDF of the registered size, a PDF larger
    // than registered. Then a worker starts.
    let mut not_a_pdf = b"<html>".to_vec();
    not_a_pdf.resize(manual.len(), b' ');
    rewrite_behind_quires_back(&app, &format!("{}/{same_size}.pdf", a.id), not_a_pdf).await;
    let bigger = fixtures::text_pdf(&[MANUAL[0], MANUAL[1], MANUAL[2], "An extra page."]);
    assert!(bigger.len() > manual.len());
    rewrite_behind_quires_back(&app, &format!("{}/{larger}.pdf", a.id), bigger).await;
    let mut config = app.companion_config().clone();
    config.ingest.workers = 1;
    let worker = quire_companion::spawn(config).await.unwrap();

    // Assert: both fail with a sentence of Quire's; the platform got
    // neither; B's document is ready and found.
    let (status, error) = app.wait_document(same_size).await;
    assert_eq!(status, "failed");
    assert!(
        error.as_deref().unwrap_or_default().contains("not a PDF"),
        "{error:?}"
    );
    let (status, error) = app.wait_document(larger).await;
    assert_eq!(status, "failed");
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .contains("not the one that was uploaded"),
        "{error:?}"
    );
    let names = [same_size.to_string(), larger.to_string()];
    assert_eq!(
        app.count(
            "select count(*) from ai.sources where name = any($1)",
            &[&names.as_slice()]
        )
        .await,
        0,
        "no source was made of A's changed files"
    );
    let (status, error) = app.wait_document(theirs).await;
    assert_eq!(status, "ready", "{error:?}");
    let hits = app.search(&b, "ladder shed").await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["document_id"], json!(theirs));
    assert!(app.search(&a, "ladder shed").await.is_empty());
    worker.shutdown().await.unwrap();
}
