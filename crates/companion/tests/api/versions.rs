//! Issue 17, items 2 and 3: an answer keeps the chunks it was given
//! (`chat_messages.sources`) however it ends, and Regenerate makes a new
//! version of the same answer (db/app/93_answer_ground.sql).

use quire_testkit::fixtures;
use quire_testkit::fixtures::MANUAL;
use quire_testkit::sse::{SseReader, kinds, one, parse_sse, streamed_text};
use quire_testkit::{Stack, User, json_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `POST /api/chat/{answer}/regenerate` as `user` with `chunk_ids`.
async fn regenerate(
    app: &Stack,
    user: &User,
    answer: &str,
    chunk_ids: &[&Value],
) -> reqwest::Response {
    app.companion_request(
        Method::POST,
        &format!("/api/chat/{answer}/regenerate"),
        Some(&user.token),
    )
    .json(&json!({ "chunk_ids": chunk_ids }))
    .send()
    .await
    .expect("POST /api/chat/{id}/regenerate")
}

/// An answer stopped before its text cited anything keeps the chunks it was
/// given: read back under A's token (as a reopening client reads it) they
/// are the `context` event's chunks. B reads nothing of it.
#[tokio::test]
async fn a_stopped_answer_keeps_the_chunks_it_was_given() {
    let app = Stack::builder()
        .token_delay_ms(150)
        .with_companion()
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let document = app
        .ready_document(&a, "X200 manual.pdf", fixtures::document_pdf(&MANUAL))
        .await;
    let hits = app.search(&a, "warranty motor").await;
    assert!(!hits.is_empty());
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let response = app
        .chat_response(
            &a,
            &json!({"message": "How long is the warranty on the motor?", "chunk_ids": ids}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader::new(response);
    let mut events = Vec::new();
    while let Some(event) = reader.next().await {
        let is_delta = event["kind"] == "delta";
        events.push(event);
        if is_delta {
            break;
        }
    }
    let message_id = events[0]["message_id"].as_str().unwrap().to_owned();
    let (status, body) = app.stop(&a, &message_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    while let Some(event) = reader.next().await {
        events.push(event);
    }
    let last = events.last().unwrap();
    assert_eq!(last["payload"]["status"], "stopped", "{last}");
    assert!(
        !streamed_text(&events).contains('['),
        "stopped before any marker"
    );

    let context = one(&events, "context");
    let answer =
        format!("chat_messages?select=status,sources,question_id,citations&id=eq.{message_id}");
    let stored = app.rows_as(&a, &answer).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["status"], "stopped");
    assert_eq!(stored[0]["sources"], context["payload"]["chunks"]);
    assert_eq!(
        stored[0]["question_id"],
        context["payload"]["user_message_id"]
    );
    let sources = stored[0]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), hits.len());
    assert!(
        sources
            .iter()
            .all(|s| s["document_id"] == json!(document) && s["title"] == "X200 manual.pdf"),
        "{sources:?}"
    );
    assert!(
        sources.iter().all(|s| s.get("text").is_none()),
        "no chunk text is stored twice"
    );
    assert_eq!(app.rows_as(&b, &answer).await, Vec::<Value>::new());
}

/// Regenerate answers the same question again as a new version: a new
/// answer row naming the same question, the conversation's next seq, no new
/// question row, its own sources. B can neither regenerate nor read A's
/// answer; A cannot regenerate a question, nor an answer while a version of
/// it is being written.
#[tokio::test]
async fn regenerate_makes_a_version_of_the_same_answer_only_for_its_owner() {
    let app = Stack::builder()
        .token_delay_ms(60)
        .with_companion()
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    app.ready_document(&a, "X200 manual.pdf", fixtures::document_pdf(&MANUAL))
        .await;
    let question = "How long is the warranty on the motor?";
    let hits = app.search(&a, question).await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let first = app
        .ask(&a, &json!({"message": question, "chunk_ids": ids}))
        .await;
    let context = one(&first, "context");
    let answer = context["message_id"].as_str().unwrap().to_owned();
    let conversation = context["conversation_id"].as_str().unwrap().to_owned();
    let question_id = context["payload"]["user_message_id"].clone();

    // B: not found, exactly as an unknown answer; nothing written.
    let refused = regenerate(&app, &b, &answer, &[]).await;
    let (status, body) = json_of(refused).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "{body}"
    );
    let unknown = regenerate(&app, &b, &uuid::Uuid::new_v4().to_string(), &[]).await;
    let (status_unknown, body_unknown) = json_of(unknown).await;
    assert_eq!(status_unknown, status);
    assert_eq!(body_unknown, body);
    // A question is not an answer.
    let (status, _) = json_of(regenerate(&app, &a, question_id.as_str().unwrap(), &[]).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let all = format!("chat_messages?select=id&conversation_id=eq.{conversation}");
    assert_eq!(app.rows(&all).await.len(), 2, "nothing was written");

    // A: a new version, streamed as an answer is.
    let response = regenerate(&app, &a, &answer, &ids).await;
    assert_eq!(response.status(), StatusCode::OK);
    let version_id = response.headers()["x-quire-message-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(version_id, answer);
    let second = parse_sse(&response.text().await.unwrap());
    let names = kinds(&second);
    assert_eq!(names[0], "context");
    assert_eq!(names.last(), Some(&"complete"), "{names:?}");
    let context = one(&second, "context");
    assert_eq!(context["message_id"], json!(version_id));
    assert_eq!(context["conversation_id"], json!(conversation));
    assert_eq!(
        context["payload"]["user_message_id"], question_id,
        "the same question"
    );
    assert!(!streamed_text(&second).is_empty());

    let rows = app
        .rows_as(
            &a,
            &format!(
                "chat_messages?select=id,seq,role,status,question_id,sources&conversation_id=eq.{conversation}&order=seq"
            ),
        )
        .await;
    let roles: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r["role"].as_str().unwrap(), r["seq"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [("user", 0), ("assistant", 1), ("assistant", 2)],
        "{rows:?}"
    );
    assert_eq!(rows[1]["id"], json!(answer));
    assert_eq!(rows[2]["id"], json!(version_id));
    assert_eq!(rows[2]["status"], "complete");
    assert_eq!(rows[1]["question_id"], question_id);
    assert_eq!(rows[2]["question_id"], question_id);
    assert_eq!(rows[2]["sources"], context["payload"]["chunks"]);
    assert_eq!(
        app.rows_as(&b, &format!("chat_messages?select=id&id=eq.{version_id}"))
            .await,
        Vec::<Value>::new()
    );

    // While a version is being written, no other is begun.
    let slow = regenerate(&app, &a, &version_id, &ids).await;
    assert_eq!(slow.status(), StatusCode::OK);
    let mut reader = SseReader::new(slow);
    let _context = reader.next().await.expect("the third version's context");
    let (status, body) = json_of(regenerate(&app, &a, &answer, &ids).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("answer_in_progress")),
        "{body}"
    );
    while reader.next().await.is_some() {}
}
