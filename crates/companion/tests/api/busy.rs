//! A companion running as many answers as it may: the next question is
//! refused at once with "busy, try again" rather than queued, and taken
//! again once an answer has ended.

use reqwest::StatusCode;
use serde_json::{Value, json};

use quire_testkit::fixtures::{self, MANUAL};
use quire_testkit::sse::SseReader;
use quire_testkit::{Stack, json_of};

#[tokio::test]
async fn a_question_past_the_answers_in_flight_is_refused_at_once_until_one_ends() {
    let app = Stack::builder()
        // A's answer streams for a while: it holds the only place.
        .token_delay_ms(100)
        .companion(|c| {
            c.limits.max_answers_in_flight = 1;
            c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        })
        .spawn()
        .await;
    let metrics = app.companion().metrics_addr().expect("a metrics listener");
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    app.ready_document(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let hits = app.search(&a, "warranty motor").await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let question = json!({"message": "How long is the warranty on the motor?", "chunk_ids": ids});
    let first = app.chat_response(&a, &question).await;
    assert_eq!(first.status(), StatusCode::OK);
    let mut reader = SseReader::new(first);
    let context = reader.next().await.unwrap();
    assert_eq!(context["kind"], "context", "{context}");

    // B asks while A's answer streams: a refusal, not a stream that hangs.
    let refused = app.chat_response(&b, &json!({"message": "hello?"})).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "2");
    let (_, error) = json_of(refused).await;
    assert_eq!(error["error"], "rate_limited", "{error}");
    assert_eq!(
        error["message"],
        "Quire is busy answering others right now. Try again in a moment."
    );
    // Nothing of B's question was written; the operator sees one refusal.
    assert_eq!(
        app.rows_as(&b, "conversations?select=id").await,
        Vec::<Value>::new()
    );
    assert_eq!(busy_refusals(metrics).await, 1.0);

    let mut last = context;
    while let Some(event) = reader.next().await {
        last = event;
    }
    assert_eq!(last["kind"], "complete", "{last}");

    let retried = app.ask(&b, &json!({"message": "hello?"})).await;
    let end = retried.last().unwrap();
    assert_eq!(end["kind"], "complete", "{end}");
    let mine = app.rows_as(&b, "conversations?select=id").await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    let theirs = format!(
        "conversations?select=id&id=eq.{}",
        mine[0]["id"].as_str().unwrap()
    );
    assert_eq!(app.rows_as(&a, &theirs).await, Vec::<Value>::new());

    // The place came back when B's answer ended too.
    let again = app.chat_response(&a, &question).await;
    assert_eq!(again.status(), StatusCode::OK, "the place came back");
    assert_eq!(busy_refusals(metrics).await, 1.0, "no other refusal");
}

/// `quire_busy_refusals_total` on the companion's `/metrics`.
async fn busy_refusals(at: std::net::SocketAddr) -> f64 {
    let text = reqwest::get(format!("http://{at}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| {
            line.strip_prefix("quire_busy_refusals_total ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no quire_busy_refusals_total in {text}"))
}
