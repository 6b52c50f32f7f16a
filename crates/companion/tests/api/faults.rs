//! Faults: the platform's stream dying mid-answer, the companion killed
//! mid-ingest, two companions sharing the work, the same file from two users.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use quire_testkit::fixtures;
use serde_json::{Value, json};
use uuid::Uuid;

use quire_testkit::fixtures::MANUAL;
use quire_testkit::sse::{SseReader, one, streamed_text};
use quire_testkit::{PATIENCE, Stack, spawn_stack};

#[tokio::test]
async fn a_platform_stream_that_dies_mid_answer_fails_the_answer_and_keeps_its_text() {
    // The companion reaches the platform through a proxy that cuts every
    // run/stream after 3 deltas; the companion's tool is on loopback.
    let mut app = Stack::builder()
        .token_delay_ms(5)
        .sandbox(|c| c.agents.allow_loopback_tool_endpoints = true)
        .spawn()
        .await;
    let (platform_url, proxy) = crate::proxy::start_proxy(app.api_base().to_owned(), 3).await;
    app.start_companion(Some(&platform_url), |_| {}).await;
    let a = app.user("a@example.com").await;
    app.ready_document(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let hits = app.search(&a, "warranty motor").await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();

    let events = app
        .ask(
            &a,
            &json!({"message": "How long is the warranty on the motor?", "chunk_ids": ids}),
        )
        .await;
    assert_eq!(
        proxy.cut.load(Ordering::SeqCst),
        1,
        "the proxy cut the stream"
    );
    let error = one(&events, "error");
    assert_eq!(events.last().unwrap(), error, "error is the last event");
    assert_eq!(error["payload"]["code"], "platform_stream_ended");
    let partial = streamed_text(&events);
    assert!(!partial.is_empty(), "three deltas arrived");
    assert_eq!(error["payload"]["content"], partial);
    assert!(events.iter().all(|e| e["kind"] != "complete"));

    let message_id: Uuid = error["message_id"].as_str().unwrap().parse().unwrap();
    let row = app
        .db
        .admin()
        .await
        .query_one(
            "select status, content, error from public.chat_messages where id = $1",
            &[&message_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), partial, "the partial text is kept");
    assert!(
        row.get::<_, Option<String>>(2)
            .unwrap()
            .contains("stopped in the middle")
    );
    let last: String = app
        .db
        .admin()
        .await
        .query_one(
            "select kind from public.chat_events where message_id = $1 order by seq desc limit 1",
            &[&message_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, "error");
}

#[tokio::test]
async fn a_platform_that_refuses_the_run_fails_the_answer_with_an_error_event() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    // The agent disappears after start-up: run/stream answers 404.
    app.db
        .admin()
        .await
        .execute(
            "delete from ai.agents where id = $1",
            &[&app.ids().agent_id],
        )
        .await
        .unwrap();
    let conversation = Uuid::new_v4();
    app.db
        .admin()
        .await
        .execute(
            "insert into public.conversations (id, owner_id, agent_session_id) values ($1, $2, 'sess_gone')",
            &[&conversation, &a.id],
        )
        .await
        .unwrap();
    let events = app
        .ask(
            &a,
            &json!({"conversation_id": conversation, "message": "Anyone there?"}),
        )
        .await;
    let error = one(&events, "error");
    assert_eq!(error["payload"]["code"], "platform_unavailable");
    let (status, _) = app
        .wait_message(error["message_id"].as_str().unwrap().parse().unwrap())
        .await;
    assert_eq!(status, "failed");
}

/// A project whose agent model has no API key: the platform refuses the run
/// with 400 and its HTML page before streaming. A's answer fails with Quire's
/// own sentence for the administrator (never the platform's "Settings → LLM
/// Provider Keys"), stored with the answer; B sees none of it.
#[tokio::test]
async fn a_model_without_a_key_fails_the_answer_saying_the_server_is_not_set_up() {
    let app = Stack::builder()
        .sandbox(|c| c.agents.model_without_key = true)
        .with_companion()
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let events = app
        .ask(&a, &json!({"message": "What does the warranty cover?"}))
        .await;
    let error = one(&events, "error");
    assert_eq!(error["payload"]["code"], "model_not_configured", "{error}");
    let said = error["payload"]["message"].as_str().unwrap();
    // Quire's sentence, then the reference its log line carries.
    let sentence = "The AI model of this Quire server is not set up — ask its administrator.";
    assert!(said.starts_with(&format!("{sentence} (ref ")), "{said}");
    assert!(!said.contains("BYOK"), "{said}");
    let message_id: Uuid = error["message_id"].as_str().unwrap().parse().unwrap();
    let (status, _) = app.wait_message(message_id).await;
    assert_eq!(status, "failed");
    let stored: Option<String> = app
        .db
        .admin()
        .await
        .query_one(
            "select error from public.chat_messages where id = $1",
            &[&message_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.as_deref(), Some(said));
    // A reads the reason under their own token; B reads nothing of A's.
    let answers = "chat_messages?select=id,status,error&role=eq.assistant";
    let seen = app.rows_as(&a, answers).await;
    assert_eq!(seen[0]["error"], said, "{seen:?}");
    assert_eq!(app.rows_as(&b, answers).await, Vec::<Value>::new());
}

/// The companion binary, configured by environment (as the shutdown tests start it), quiet.
fn companion_process(app: &Stack, poll_initial_ms: u64, lease_secs: u64) -> tokio::process::Child {
    crate::shutdown::companion_command(app)
        .env(
            "QUIRE_COMPANION_POLL_INITIAL_MS",
            poll_initial_ms.to_string(),
        )
        .env("QUIRE_COMPANION_POLL_MAX_MS", poll_initial_ms.to_string())
        .env("QUIRE_COMPANION_INGEST_IDLE_MS", "100")
        .env("QUIRE_COMPANION_INGEST_LEASE_SECS", lease_secs.to_string())
        .env("QUIRE_COMPANION_WORKER_ID", "doomed")
        .env("QUIRE_COMPANION_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the companion binary starts")
}

#[tokio::test]
async fn a_companion_killed_mid_ingest_is_resumed_by_the_next_without_duplicates() {
    // This test's own companion does not ingest: the doomed process does.
    let app = Stack::builder()
        .companion(|c| c.ingest.workers = 0)
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    // A process that, once extraction has started, waits a minute before
    // looking again: it is killed while it waits.
    let mut doomed = companion_process(&app, 60_000, 3);
    let document = app
        .upload(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let started = Instant::now();
    loop {
        let row = app
            .db
            .admin()
            .await
            .query_opt(
                "select d.status, j.lease_owner from public.documents d \
                 join private.ingest_jobs j on j.document_id = d.id where d.id = $1",
                &[&document],
            )
            .await
            .unwrap();
        if let Some(row) = row
            && matches!(row.get::<_, String>(0).as_str(), "extracting" | "indexing")
            && row
                .get::<_, Option<String>>(1)
                .is_some_and(|o| o.starts_with("doomed"))
        {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the doomed companion never started extracting"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill().await.unwrap();
    let _ = doomed.wait().await;
    let status = app.document_status(document).await.unwrap().0;
    assert!(
        matches!(status.as_str(), "extracting" | "indexing"),
        "killed mid-ingest: {status}"
    );

    // The next companion waits out the dead one's lease, then resumes.
    let mut config = app.companion_config().clone();
    config.ingest.workers = 1;
    let resumed = quire_companion::spawn(config).await.unwrap();
    let (status, error) = app.wait_document(document).await;
    assert_eq!(status, "ready", "{error:?}");

    let db = app.db.admin().await;
    let row = db
        .query_one("select attempts, lease_owner, finished_at is not null from private.ingest_jobs where document_id = $1", &[&document])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i32>(0),
        2,
        "claimed by the dead one, then by the next"
    );
    assert_eq!(row.get::<_, Option<String>>(1), None);
    assert!(row.get::<_, bool>(2));
    let chunks: i64 = db
        .query_one(
            "select count(*) from public.document_chunks where document_id = $1",
            &[&document],
        )
        .await
        .unwrap()
        .get(0);
    let distinct: i64 = db
        .query_one(
            "select count(distinct chunk_id) from public.document_chunks where document_id = $1",
            &[&document],
        )
        .await
        .unwrap()
        .get(0);
    let platform: i64 = db
        .query_one(
            "select count(*) from ai.chunks c join public.documents d on d.source_id = c.source_id where d.id = $1",
            &[&document],
        )
        .await
        .unwrap()
        .get(0);
    assert!(chunks > 0);
    assert_eq!((chunks, distinct), (platform, platform), "every chunk once");
    let sources: i64 = db
        .query_one("select count(*) from ai.sources", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sources, 1, "the file was uploaded to the AI service once");
    resumed.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_companions_ingest_ten_documents_and_none_is_processed_twice() {
    let app = Stack::builder()
        .companion(|c| {
            c.limits.max_uploads_per_user = 20;
            c.ingest.worker_id = Some("first".to_owned());
        })
        .spawn()
        .await;
    let mut second_config = app.companion_config().clone();
    second_config.ingest.worker_id = Some("second".to_owned());
    let second = quire_companion::spawn(second_config).await.unwrap();

    let a = app.user("a@example.com").await;
    let mut documents = Vec::new();
    for n in 0..10 {
        let pages = [
            format!("Report number {n} covers the quarter.\nRevenue grew by {n} percent."),
            format!("Appendix {n}: the auditors signed on day {n}."),
        ];
        let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
        documents.push(
            app.upload(&a, &format!("Report {n}.pdf"), fixtures::text_pdf(&pages))
                .await,
        );
    }
    for document in &documents {
        let (status, error) = app.wait_document(*document).await;
        assert_eq!(status, "ready", "{error:?}");
    }

    let db = app.db.admin().await;
    let jobs = db
        .query("select attempts, lease_owner from private.ingest_jobs", &[])
        .await
        .unwrap();
    assert_eq!(jobs.len(), 10);
    for job in &jobs {
        assert_eq!(job.get::<_, i32>(0), 1, "claimed exactly once");
        assert_eq!(job.get::<_, Option<String>>(1), None);
    }
    let per_document = db
        .query(
            "select d.id, count(c.*), count(distinct c.chunk_id), \
                    (select count(*) from ai.chunks p where p.source_id = d.source_id) \
             from public.documents d left join public.document_chunks c on c.document_id = d.id \
             group by d.id, d.source_id",
            &[],
        )
        .await
        .unwrap();
    for row in per_document {
        let (all, distinct, platform): (i64, i64, i64) = (row.get(1), row.get(2), row.get(3));
        assert!(all > 0);
        assert_eq!((all, distinct), (platform, platform));
    }
    let sources: i64 = db
        .query_one("select count(*) from ai.sources", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sources, 10);
    // Both registered the search tool at start-up: one tool, assigned once.
    let tools: i64 = db
        .query_one(
            "select count(*) from ai.tools where name = 'search_my_documents'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let assignments: i64 = db
        .query_one(
            "select count(*) from ai.agent_tools where tool_name = 'search_my_documents'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!((tools, assignments), (1, 1));
    second.shutdown().await.unwrap();
}

/// Issue 14 item 8: the platform de-duplicates sources by their bytes across the project, so a
/// file another user had uploaded came back already extracted and indexed, and was ready
/// sooner: the time to "Ready" told B that someone had uploaded the same file. Each user's
/// sources are their own now (the companion sends the owner's mark after the file); the same
/// user's second upload of a file still reuses their source.
#[tokio::test]
async fn the_same_file_from_a_second_user_becomes_their_own_source_and_document() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let bytes = fixtures::text_pdf(&MANUAL);
    let mine = app.ready_document(&a, "Manual A.pdf", bytes.clone()).await;
    let theirs = app.ready_document(&b, "Manual B.pdf", bytes.clone()).await;
    let again = app.ready_document(&b, "Manual B again.pdf", bytes).await;

    let db = app.db.admin().await;
    let sources = |x: Uuid, y: Uuid| {
        let db = &db;
        async move {
            db.query_one(
                "select a.source_id = b.source_id from public.documents a, public.documents b \
                 where a.id = $1 and b.id = $2",
                &[&x, &y],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
        }
    };
    assert!(
        !sources(mine, theirs).await,
        "B's upload of A's file is a source of B's own"
    );
    assert!(
        sources(theirs, again).await,
        "B's second upload reuses B's own source"
    );
    let indexed: i64 = db
        .query_one("select count(*) from ai.indexed_sources", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexed, 2, "indexed once for A and once for B");
    let owners: Vec<(Uuid, i64)> = db
        .query(
            "select owner_id, count(*) from public.document_chunks group by owner_id order by owner_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(owners.len(), 2, "each user has their own rows");

    // Each finds the text in their own documents only.
    let hits_b = app.search(&b, "warranty motor").await;
    assert!(!hits_b.is_empty());
    assert!(
        hits_b
            .iter()
            .all(|h| h["document_id"] == json!(theirs) || h["document_id"] == json!(again))
    );
    let hits_a = app.search(&a, "warranty motor").await;
    assert!(hits_a.iter().all(|h| h["document_id"] == json!(mine)));

    // A deletes theirs: B's keeps working.
    let (status, _) = app.delete_document(&a, &mine.to_string()).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    assert!(!app.search(&b, "warranty motor").await.is_empty());
}

#[tokio::test]
async fn stop_sent_to_another_companion_ends_the_answer_where_it_runs() {
    let app = Stack::builder()
        .token_delay_ms(150)
        .with_companion()
        .spawn()
        .await;
    let other = quire_companion::spawn(app.companion_config().clone())
        .await
        .unwrap();
    let a = app.user("a@example.com").await;
    app.ready_document(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let hits = app.search(&a, "warranty motor").await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let response = app
        .chat_response(
            &a,
            &json!({"message": "How long is the warranty on the motor?", "chunk_ids": ids}),
        )
        .await;
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

    let response = reqwest::Client::new()
        .post(format!("{}/api/chat/{message_id}/stop", other.url()))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);

    while let Some(event) = reader.next().await {
        events.push(event);
    }
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "complete");
    assert_eq!(last["payload"]["status"], "stopped");
    let (status, content) = app.wait_message(message_id.parse().unwrap()).await;
    assert_eq!(status, "stopped");
    assert_eq!(content, streamed_text(&events));
    other.shutdown().await.unwrap();
}
