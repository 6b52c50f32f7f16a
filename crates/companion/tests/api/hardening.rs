//! Attacks by a signed-in user on the companion's checks and on everyone
//! else's share of the service (issue 14, items 1, 2, 6 and 10): swapped
//! files, unbounded queries, limits that must hold under concurrency and
//! across replicas, accounts anyone can mint (anonymous sign-ins). Each
//! test performs the attack, and B's data must come through intact.

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
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
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

#[tokio::test]
async fn registrations_sent_at_once_never_pass_the_uploads_in_flight_limit() {
    // Arrange
    let app = Stack::builder()
        .companion(|c| c.limits.max_uploads_per_user = 2)
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;

    // Act: twelve registrations at once.
    let body = json!({"title": "Report.pdf", "byte_size": 1000});
    let answers = futures_util::future::join_all((0..12).map(|_| app.register(&a, &body))).await;
    let (b_status, b_body) = app.register(&b, &body).await;

    // Assert
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 2, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "rate_limited", "{body}");
    }
    assert_eq!(b_status, StatusCode::CREATED, "{b_body}");
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
async fn a_user_with_as_many_documents_as_quire_keeps_is_told_so() {
    // Arrange: A has 1,000 documents.
    let app = Stack::builder().with_companion().spawn().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    app.db
        .admin()
        .await
        .execute(
            "insert into public.documents (owner_id, title, byte_size, status) \
             select $1, 'Old ' || n, 1, 'ready' from generate_series(1, 1000) n",
            &[&a.id],
        )
        .await
        .unwrap();

    // Act
    let body = json!({"title": "One more.pdf", "byte_size": 1000});
    let (status, answer) = app.register(&a, &body).await;
    let (b_status, b_answer) = app.register(&b, &body).await;

    // Assert
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"], "limit_reached", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("1,000") && m.contains("Delete")),
        "{answer}"
    );
    assert_eq!(b_status, StatusCode::CREATED, "{b_answer}");
}

#[tokio::test]
async fn a_users_answers_are_limited_across_every_companion() {
    // Arrange: two companions over one platform, one answer at a time per
    // user, answers slow enough to still run when the next question comes.
    let app = Stack::builder()
        .token_delay_ms(100)
        .companion(|c| c.limits.max_runs_per_user = 1)
        .spawn()
        .await;
    let second = quire_companion::spawn(app.companion_config().clone())
        .await
        .unwrap();
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let ask_second = |token: &str| {
        app.http
            .post(format!("{}/api/chat", second.url()))
            .bearer_auth(token)
            .json(
                &json!({"message": "What do my documents say about warranties?", "chunk_ids": []}),
            )
            .send()
    };

    // Act: A's first answer runs on the first companion; A asks the second.
    let first = app
        .chat_response(
            &a,
            &json!({"message": "What do my documents say about warranties?", "chunk_ids": []}),
        )
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let sessions = || app.count("select count(*) from ai.agent_sessions", &[]);
    let conversations = || async {
        app.count(
            "select count(*) from public.conversations where owner_id = $1",
            &[&a.id],
        )
        .await
    };
    let sessions_before = sessions().await;
    let conversations_before = conversations().await;
    let refused = ask_second(&a.token).await.unwrap();
    let refused_status = refused.status();
    let refused_body: serde_json::Value = refused.json().await.unwrap();
    // The second companion made a platform session for the new
    // conversation before the database refused the slot: it is gone again.
    let sessions_after = sessions().await;
    let conversations_after = conversations().await;
    let b_answer = ask_second(&b.token).await.unwrap();
    let b_status = b_answer.status();
    let _ = b_answer.text().await;
    // Once A's first answer has ended, A may ask again anywhere.
    let _ = first.text().await;
    let again = ask_second(&a.token).await.unwrap();
    let again_status = again.status();
    let _ = again.text().await;

    // Assert
    assert_eq!(
        refused_status,
        StatusCode::TOO_MANY_REQUESTS,
        "{refused_body}"
    );
    assert_eq!(refused_body["error"], "rate_limited");
    assert_eq!(
        sessions_after, sessions_before,
        "a refused question leaves no platform session"
    );
    assert_eq!(
        conversations_after, conversations_before,
        "nor a conversation"
    );
    assert_eq!(b_status, StatusCode::OK, "B is not limited by A");
    assert_eq!(again_status, StatusCode::OK);
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_user_with_as_many_conversations_as_quire_keeps_is_told_so_and_leaves_no_session() {
    // Arrange: A has 10,000 conversations.
    let app = Stack::builder().with_companion().spawn().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    app.db
        .admin()
        .await
        .execute(
            "insert into public.conversations (owner_id, title) \
             select $1, 'Old ' || n from generate_series(1, 10000) n",
            &[&a.id],
        )
        .await
        .unwrap();
    let sessions = || app.count("select count(*) from ai.agent_sessions", &[]);
    let before = sessions().await;

    // Act: A asks in a new conversation; so does B.
    let question = json!({"message": "What is in my documents?", "chunk_ids": []});
    let refused = app.chat_response(&a, &question).await;
    let status = refused.status();
    let body: serde_json::Value = refused.json().await.unwrap();
    let after = sessions().await;
    let theirs = app.chat_response(&b, &question).await;
    let b_status = theirs.status();
    let _ = theirs.text().await;

    // Assert
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "limit_reached", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("10,000")),
        "{body}"
    );
    assert_eq!(
        after, before,
        "the refused conversation's platform session is gone"
    );
    assert_eq!(b_status, StatusCode::OK);
}

/// The claims of an access token (its payload, not verified).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Issue 14, item 10: A signs in anonymously (GoTrue's anonymous sign-in: an
/// `authenticated` token with `is_anonymous: true`; the sandbox issues the
/// claim from `auth.users.is_anonymous`). Asking a question or uploading
/// through the companion is refused 403 `anonymous_not_allowed` and writes
/// nothing, while B, signed in with an email, is served. A companion with
/// `QUIRE_COMPANION_ALLOW_ANONYMOUS_USERS=true` serves A too.
#[tokio::test]
async fn anonymous_users_are_refused_unless_the_companion_allows_them() {
    let mut app = Stack::builder().with_companion().spawn().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    app.connect_db()
        .await
        .execute(
            "update auth.users set is_anonymous = true where id = $1",
            &[&a.id],
        )
        .await
        .unwrap();
    let a = app
        .session("a@example.com", quire_testkit::PASSWORD_A)
        .await;
    assert_eq!(claims_of(&a.token)["is_anonymous"], true);
    assert_eq!(claims_of(&b.token)["is_anonymous"], false);

    let question = json!({"message": "What does the warranty cover?", "chunk_ids": []});
    let pdf = fixtures::text_pdf(&MANUAL);
    let registration = json!({"title": "Manual.pdf", "byte_size": pdf.len()});
    let (status, refused) = quire_testkit::json_of(app.chat_response(&a, &question).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"], "anonymous_not_allowed", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("anonymous"),
        "{refused}"
    );
    let (status, refused) = app.register(&a, &registration).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"], "anonymous_not_allowed", "{refused}");
    for table in ["documents", "conversations", "chat_messages"] {
        let rows = app.rows_as(&a, &format!("{table}?select=id")).await;
        assert!(rows.is_empty(), "{table}: {rows:?}");
    }

    // B is served as ever.
    app.ready_document(&b, "B's manual", pdf.clone()).await;
    let answer = app.ask(&b, &question).await;
    assert_eq!(answer.last().unwrap()["kind"], "complete", "{answer:?}");

    // A companion that allows anonymous users serves A, and B still.
    app.start_companion(None, |c| c.allow_anonymous_users = true)
        .await;
    let answer = app.ask(&a, &question).await;
    assert_eq!(answer.last().unwrap()["kind"], "complete", "{answer:?}");
    let (status, registered) = app.register(&a, &registration).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let answer = app.ask(&b, &question).await;
    assert_eq!(answer.last().unwrap()["kind"], "complete", "{answer:?}");
    assert_eq!(app.rows_as(&b, "documents?select=id").await.len(), 1);
    assert_eq!(app.rows_as(&a, "documents?select=id").await.len(), 1);
}
