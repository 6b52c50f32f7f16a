//! Bad input gets a clear 4xx, and nothing is written.

use quire_testkit::fixtures;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use quire_testkit::{Stack, User, json_of, spawn_stack};

async fn nothing_written(app: &Stack) {
    for table in [
        "conversations",
        "chat_messages",
        "chat_events",
        "tool_sessions",
    ] {
        let n = app
            .count(&format!("select count(*) from public.{table}"), &[])
            .await;
        assert_eq!(n, 0, "{table}");
    }
}

async fn chat_raw(app: &Stack, user: &User, body: &str) -> (StatusCode, Value) {
    json_of(
        app.companion_request(Method::POST, "/api/chat", Some(&user.token))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn bad_questions_are_refused_before_anything_is_written() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let long = "x".repeat(8001);
    let many: Vec<String> = (0..21).map(|_| Uuid::new_v4().to_string()).collect();
    let cases = [
        (
            json!({"message": ""}).to_string(),
            StatusCode::BAD_REQUEST,
            "empty_message",
        ),
        (
            json!({"message": "   \n\t "}).to_string(),
            StatusCode::BAD_REQUEST,
            "empty_message",
        ),
        (
            json!({"message": long}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_long",
        ),
        (
            json!({"message": "hi", "chunk_ids": many}).to_string(),
            StatusCode::BAD_REQUEST,
            "too_many_chunks",
        ),
        (
            json!({"message": "hi", "chunk_ids": ["not-a-uuid"]}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"message": 42}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"chunk_ids": []}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "{not json".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            json!({"message": "hi", "conversation_id": Uuid::new_v4()}).to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"message": "hi", "conversation_id": "nope"}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = chat_raw(&app, &a, &body).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"], code, "{body}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let huge = format!(r#"{{"message": "{}"}}"#, "y".repeat(300 * 1024));
    let (got, _) = chat_raw(&app, &a, &huge).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);
    nothing_written(&app).await;
}

#[tokio::test]
async fn bad_registrations_are_refused() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let cases = [
        (
            json!({"title": "x.pdf", "byte_size": 0}),
            StatusCode::BAD_REQUEST,
            "empty_file",
        ),
        (
            json!({"title": "x.pdf", "byte_size": -5}),
            StatusCode::BAD_REQUEST,
            "empty_file",
        ),
        (
            json!({"title": "   ", "byte_size": 10}),
            StatusCode::BAD_REQUEST,
            "invalid_title",
        ),
        (
            json!({"title": "x.pdf", "byte_size": 10, "sha256": "abc"}),
            StatusCode::BAD_REQUEST,
            "invalid_sha256",
        ),
        (
            json!({"title": "x.pdf", "byte_size": 300u64 * 1024 * 1024}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            json!({"title": "x.pdf"}),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = app.register(&a, &body).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    assert_eq!(
        app.count("select count(*) from public.documents", &[])
            .await,
        0
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_pdf_or_is_empty_or_missing_is_not_queued() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;

    let register = |size: usize| {
        let app = &app;
        let a = &a;
        async move {
            let (status, body) = app
                .register(a, &json!({"title": "f.pdf", "byte_size": size}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            (
                body["document_id"].as_str().unwrap().to_owned(),
                body["storage_path"].as_str().unwrap().to_owned(),
            )
        }
    };

    // Not uploaded yet.
    let (missing, _) = register(10).await;
    let (status, body) = app.ingest(&a, &missing).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("not_uploaded")),
        "{body}"
    );

    // Not a PDF.
    let text = fixtures::not_a_pdf();
    let (not_pdf, path) = register(text.len()).await;
    assert_eq!(app.put_object(&a, &path, text).await, StatusCode::OK);
    let (status, body) = app.ingest(&a, &not_pdf).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_a_pdf")),
        "{body}"
    );

    // Empty.
    let (empty, path) = register(10).await;
    let stored = app.put_object(&a, &path, Vec::new()).await;
    if stored == StatusCode::OK {
        let (status, body) = app.ingest(&a, &empty).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("empty_file")),
            "{body}"
        );
    }

    // Not the registered size.
    let pdf = fixtures::text_pdf(&["Hello there."]);
    let (wrong, path) = register(pdf.len() + 1).await;
    assert_eq!(app.put_object(&a, &path, pdf).await, StatusCode::OK);
    let (status, body) = app.ingest(&a, &wrong).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("size_mismatch")),
        "{body}"
    );

    // Unknown ids.
    let (status, body) = app.ingest(&a, &Uuid::new_v4().to_string()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Nothing was queued; every document is still `uploading`.
    assert_eq!(
        app.count("select count(*) from private.ingest_jobs", &[])
            .await,
        0
    );
    assert_eq!(
        app.count(
            "select count(*) from public.documents where status <> 'uploading'",
            &[]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn pdfs_the_platform_cannot_read_end_with_a_reason_or_no_text() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let scanned = app
        .upload(&a, "Scan.pdf", fixtures::image_only_pdf(2))
        .await;
    let locked = app
        .upload(
            &a,
            "Locked.pdf",
            fixtures::encrypted_pdf(&["Top secret."], "hunter2"),
        )
        .await;
    let broken = app
        .upload(
            &a,
            "Broken.pdf",
            fixtures::truncated(&fixtures::text_pdf(&["Some text here."])),
        )
        .await;

    let (status, error) = app.wait_document(scanned).await;
    assert_eq!((status.as_str(), error), ("no_text", None));
    let pages: Option<i32> = app
        .db
        .admin()
        .await
        .query_one(
            "select page_count from public.documents where id = $1",
            &[&scanned],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pages, Some(2));

    // The platform records a failed extraction with a message and a NULL
    // error_code; A sees Quire's own sentence, never the platform's text.
    let (status, error) = app.wait_document(locked).await;
    assert_eq!(status, "failed");
    assert_eq!(
        error.as_deref(),
        Some(
            "This PDF is protected with a password. Save a copy without the password and upload that."
        )
    );

    let (status, error) = app.wait_document(broken).await;
    assert_eq!(status, "failed");
    assert_eq!(
        error.as_deref(),
        Some(
            "This PDF is damaged or incomplete. Download or export it again, then upload the new copy."
        )
    );
    assert_eq!(
        app.count("select count(*) from public.document_chunks", &[])
            .await,
        0
    );
    // B sees none of A's documents or their reasons.
    let b = app.user("b@example.com").await;
    let seen = app.rows_as(&b, "documents?select=id,status,error").await;
    assert_eq!(seen, Vec::<Value>::new());
}

#[tokio::test]
async fn a_registration_over_the_documents_bucket_limit_is_refused() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let limit: i64 = 52_428_800;

    let (status, answer) = app
        .register(&a, &json!({"title": "big.pdf", "byte_size": limit + 1}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"], "too_large");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("50 MB"), "{message}");
    let (status, answer) = app
        .register(&b, &json!({"title": "fits.pdf", "byte_size": limit}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    // The bucket's limit is the one number: lowered there, it applies at once.
    app.db
        .admin()
        .await
        .execute(
            "update storage.buckets set file_size_limit = 2000000 where id = 'documents'",
            &[],
        )
        .await
        .unwrap();
    let (status, answer) = app
        .register(&b, &json!({"title": "b.pdf", "byte_size": 2_000_001}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("1.9 MB"),
        "{answer}"
    );

    let owners: Vec<(Uuid, i64)> = app
        .db
        .admin()
        .await
        .query("select owner_id, byte_size from public.documents", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        owners,
        [(b.id, limit)],
        "only B's fitting file was registered"
    );
}
