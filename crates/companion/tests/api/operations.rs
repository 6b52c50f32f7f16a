//! What an operator's tools see: `/ready` follows the platform and its
//! database, `/metrics` lives on its own listener and moves with the work.

use std::net::SocketAddr;

use quire_testkit::fixtures::{self, MANUAL};
use quire_testkit::{Stack, eventually, json_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn ready(app: &Stack) -> (StatusCode, Value) {
    json_of(
        app.companion_request(Method::GET, "/ready", None)
            .send()
            .await
            .expect("GET /ready"),
    )
    .await
}

/// Refuses new connections to this test's database and ends the open ones
/// (the sandbox's included): its database is down for the platform.
async fn database_down(app: &Stack, down: bool) {
    use quire_testdb::tokio_postgres;
    let name = app.db.name();
    let cluster = app.db.url().replace(&format!("/{name}"), "/postgres");
    let (admin, connection) = tokio_postgres::connect(&cluster, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let allow = if down { "false" } else { "true" };
    admin
        .batch_execute(&format!(
            "alter database \"{name}\" with allow_connections {allow}"
        ))
        .await
        .unwrap();
    if down {
        admin
            .execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1",
                &[&name],
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn ready_answers_503_while_the_database_is_down_and_200_once_it_is_back() {
    let app = Stack::builder().with_companion().spawn().await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"platform": "ok", "database": "ok"}})
    );

    database_down(&app, true).await;
    let (status, body) = ready(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"], "failed");
    let text = body.to_string();
    assert!(
        !text.contains("PGRST"),
        "the platform's words stay in the log: {text}"
    );
    // Liveness is not readiness: the process itself is fine.
    let health = app
        .companion_request(Method::GET, "/health", None)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    database_down(&app, false).await;
    eventually(30, "/ready is 200 again", async || {
        ready(&app).await.0 == StatusCode::OK
    })
    .await;
}

async fn scrape(at: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{at}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

/// The value of the sample named exactly `series` (labels included).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_are_only_on_their_own_listener_and_move_with_answers_and_ingestion() {
    // This companion ingests nothing, so a document waits in the queue.
    let app = Stack::builder()
        .companion(|c| {
            c.ingest.workers = 0;
            c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        })
        .spawn()
        .await;
    let metrics = app.companion().metrics_addr().expect("a metrics listener");
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;

    for user in [None, Some(&b.token)] {
        let public = app
            .companion_request(Method::GET, "/metrics", user.map(String::as_str))
            .send()
            .await
            .unwrap();
        assert_eq!(
            public.status(),
            StatusCode::NOT_FOUND,
            "not on the public listener"
        );
    }
    let other = reqwest::get(format!("http://{metrics}/api/chat"))
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        StatusCode::NOT_FOUND,
        "nothing else on the metrics one"
    );

    let before = scrape(metrics).await;
    assert_eq!(
        sample(&before, "quire_runs_in_flight"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(sample(&before, "quire_ingest_queue_documents"), Some(0.0));
    assert_eq!(sample(&before, "quire_ingest_queue_scrape_ok"), Some(1.0));

    let document = app
        .upload(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let waiting = scrape(metrics).await;
    assert_eq!(
        sample(&waiting, "quire_ingest_queue_documents"),
        Some(1.0),
        "{waiting}"
    );
    assert!(sample(&waiting, "quire_ingest_queue_oldest_seconds").is_some());

    let mut config = app.companion_config().clone();
    config.ingest.workers = 1;
    let worker = quire_companion::spawn(config).await.unwrap();
    assert_eq!(app.wait_document(document).await.0, "ready");
    let hits = app.search(&a, "warranty motor").await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let question = "How long is the warranty on the motor?";
    let events = app
        .ask(&a, &json!({"message": question, "chunk_ids": ids}))
        .await;
    assert_eq!(events.last().unwrap()["kind"], "complete");

    let after = scrape(metrics).await;
    let complete = "quire_run_duration_seconds_count{outcome=\"complete\"}";
    assert_eq!(sample(&after, complete), Some(1.0), "{after}");
    assert_eq!(
        sample(
            &after,
            "quire_run_duration_seconds_bucket{outcome=\"complete\",le=\"+Inf\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&after, "quire_runs_in_flight"), Some(0.0));
    assert_eq!(sample(&after, "quire_ingest_queue_documents"), Some(0.0));
    // Numbers only: nobody's identity, documents or words.
    for private in [
        a.id.to_string(),
        "a@example.com".to_owned(),
        "X200".to_owned(),
        question.to_owned(),
        document.to_string(),
    ] {
        assert!(!after.contains(&private), "{private} in\n{after}");
    }
    worker.shutdown().await.unwrap();
}
