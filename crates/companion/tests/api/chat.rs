//! The whole path: upload → ready → search → ask → events → rows →
//! Realtime; and Stop, limits, the client going away.

use std::collections::BTreeMap;

use quire_testkit::fixtures;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use quire_testkit::fixtures::MANUAL;
use quire_testkit::sse::{SseReader, kinds, one, streamed_text};
use quire_testkit::{Stack, User, json_of, spawn_stack};

/// Asks `question` with the user's top search hits, as the core does.
async fn ask_with_hits(app: &Stack, user: &User, question: &str) -> (Vec<Value>, Vec<Value>) {
    let hits = app.search(user, question).await;
    let ids: Vec<&str> = hits.iter().map(|h| h["id"].as_str().unwrap()).collect();
    let events = app
        .ask(user, &json!({"message": question, "chunk_ids": ids}))
        .await;
    (hits, events)
}

#[tokio::test]
async fn a_question_about_an_uploaded_pdf_is_answered_streamed_cited_and_persisted() {
    let app = Stack::builder()
        // Several coalescing intervals per answer.
        .token_delay_ms(15)
        .with_companion()
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let document = app
        .ready_document(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let page_count: Option<i32> = app
        .db
        .admin()
        .await
        .query_one(
            "select page_count from public.documents where id = $1",
            &[&document],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(page_count, Some(3));

    let question = "How long is the warranty on the motor?";
    let (hits, events) = ask_with_hits(&app, &a, question).await;
    assert!(!hits.is_empty(), "the user's search finds their chunks");

    // The stream: context, running, the tool, deltas, then complete — last.
    let names = kinds(&events);
    assert_eq!(names[0], "context");
    assert_eq!(names[1], "status");
    assert_eq!(names.last(), Some(&"complete"));
    let first_delta = names.iter().position(|k| *k == "delta").expect("deltas");
    assert!(
        names[first_delta..names.len() - 1]
            .iter()
            .all(|k| *k == "delta"),
        "{names:?}"
    );
    assert!(
        names.contains(&"tool_call") && names.contains(&"tool_result"),
        "{names:?}"
    );
    assert!(
        names.iter().filter(|k| **k == "delta").count() > 3,
        "streamed in pieces"
    );

    let context = one(&events, "context");
    let message_id: Uuid = context["message_id"].as_str().unwrap().parse().unwrap();
    let conversation_id: Uuid = context["conversation_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(context["seq"], 0);
    assert_eq!(context["payload"]["dropped"], 0);
    let sent: Vec<&Value> = context["payload"]["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(sent.len(), hits.len());
    for (chunk, hit) in sent.iter().zip(&hits) {
        assert_eq!(chunk["id"], hit["id"]);
        assert_eq!(chunk["document_id"], json!(document));
        assert_eq!(chunk["title"], "X200 manual.pdf");
    }
    for event in &events {
        assert_eq!(event["message_id"], json!(message_id));
        assert_eq!(event["conversation_id"], json!(conversation_id));
    }
    let status = one(&events, "status");
    assert_eq!(status["payload"]["state"], "running");
    assert!(
        status["payload"]["run_id"]
            .as_str()
            .unwrap()
            .starts_with("run_")
    );

    // The tool searched A's documents as A, and its session_token never left.
    let call = one(&events, "tool_call");
    assert_eq!(call["payload"]["tool_name"], "search_my_documents");
    assert_eq!(call["payload"]["arguments"], json!({"query": question}));
    let result = one(&events, "tool_result");
    assert!(
        result["payload"]["preview"]
            .as_str()
            .unwrap()
            .contains("X200 blender"),
        "{result}"
    );

    let complete = one(&events, "complete");
    let payload = &complete["payload"];
    assert_eq!(payload["status"], "complete");
    let content = payload["content"].as_str().unwrap();
    assert!(content.contains("five years"), "{content}");
    assert_eq!(content, streamed_text(&events), "the deltas are the answer");
    assert_eq!(payload["run_id"], status["payload"]["run_id"]);
    let citations = payload["citations"].as_array().unwrap();
    assert!(!citations.is_empty(), "{payload}");
    for citation in citations {
        assert_eq!(citation["document_id"], json!(document));
        assert_eq!(citation["title"], "X200 manual.pdf");
        let key = citation["key"].as_str().unwrap();
        assert!(content.contains(&format!("[{key}]")), "{key} in {content}");
        let chunk = sent[key.parse::<usize>().unwrap() - 1];
        assert_eq!(citation["chunk_id"], chunk["id"]);
        assert_eq!(citation["page"], chunk["page"]);
        assert_eq!(citation["page_end"], chunk["page_end"]);
    }
    let warranty = citations
        .iter()
        .find(|c| c["excerpt"].as_str().unwrap().contains("five years"))
        .expect("the warranty passage is cited");
    // The platform chunks the page texts joined, so the manual's three short
    // pages are one chunk spanning pages 1-3, cited at its first page.
    assert_eq!(
        warranty["page"], 1,
        "the chunk holding the warranty starts on page 1"
    );
    assert_eq!(warranty["page_end"], 3, "and ends on page 3");

    // The rows match what was streamed.
    let db = app.db.admin().await;
    let messages = db
        .query(
            "select id, role, status, content, citations, run_id, owner_id, seq from public.chat_messages \
             where conversation_id = $1 order by seq",
            &[&conversation_id],
        )
        .await
        .unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].get::<_, String>("role"), "user");
    assert_eq!(messages[0].get::<_, String>("content"), question);
    assert_eq!(
        messages[0].get::<_, Uuid>("id").to_string(),
        context["payload"]["user_message_id"].as_str().unwrap()
    );
    assert_eq!(messages[1].get::<_, Uuid>("id"), message_id);
    assert_eq!(messages[1].get::<_, String>("status"), "complete");
    assert_eq!(messages[1].get::<_, String>("content"), content);
    assert_eq!(
        &messages[1].get::<_, Value>("citations"),
        &payload["citations"]
    );
    assert_eq!(
        messages[1].get::<_, Option<String>>("run_id").as_deref(),
        payload["run_id"].as_str()
    );
    assert!(
        messages
            .iter()
            .all(|m| m.get::<_, Uuid>("owner_id") == a.id)
    );

    let rows = db
        .query(
            "select seq, kind, payload, owner_id from public.chat_events where message_id = $1 order by seq",
            &[&message_id],
        )
        .await
        .unwrap();
    let seqs: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        seqs,
        (0..rows.len() as i32).collect::<Vec<_>>(),
        "strictly increasing from 0"
    );
    let mut streamed: BTreeMap<i64, (String, Value)> = BTreeMap::new();
    for event in &events {
        let seq = event["seq"].as_i64().unwrap();
        let kind = event["kind"].as_str().unwrap().to_owned();
        match streamed.get_mut(&seq) {
            Some((k, payload)) => {
                assert_eq!(
                    (k.as_str(), kind.as_str()),
                    ("delta", "delta"),
                    "only deltas share a seq"
                );
                let joined = format!(
                    "{}{}",
                    payload["text"].as_str().unwrap(),
                    event["payload"]["text"].as_str().unwrap()
                );
                payload["text"] = json!(joined);
            }
            None => {
                streamed.insert(seq, (kind, event["payload"].clone()));
            }
        }
    }
    assert_eq!(streamed.len(), rows.len());
    for row in &rows {
        let seq = i64::from(row.get::<_, i32>(0));
        let (kind, payload) = &streamed[&seq];
        assert_eq!(&row.get::<_, String>(1), kind, "seq {seq}");
        assert_eq!(&row.get::<_, Value>(2), payload, "seq {seq}");
        assert_eq!(row.get::<_, Uuid>(3), a.id);
    }
    let delta_rows = rows
        .iter()
        .filter(|r| r.get::<_, String>(1) == "delta")
        .count();
    let delta_events = events.iter().filter(|e| e["kind"] == "delta").count();
    assert!(
        delta_rows >= 1 && delta_rows <= delta_events,
        "deltas are coalesced"
    );

    // Realtime: every row went to user:<A>, nothing anywhere else.
    let topics = db
        .query(
            "select topic, event, payload from realtime.messages where payload->>'message_id' = $1",
            &[&message_id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(topics.len(), rows.len());
    for t in &topics {
        assert_eq!(t.get::<_, String>(0), format!("user:{}", a.id));
    }
    let elsewhere: i64 = db
        .query_one(
            "select count(*) from realtime.messages where topic <> $1",
            &[&format!("user:{}", a.id)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        elsewhere, 0,
        "nothing went to any other topic, B's included ({})",
        b.id
    );

    // The run's token is gone: nobody can search with it any more.
    let sessions: i64 = db
        .query_one("select count(*) from public.tool_sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn a_second_question_continues_the_conversation() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    app.ready_document(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let (_, first) = ask_with_hits(&app, &a, "What power does the motor have?").await;
    let conversation = first[0]["conversation_id"].clone();
    let hits = app.search(&a, "warranty jars").await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let second = app
        .ask(&a, &json!({"conversation_id": conversation, "message": "And the warranty on the jars?", "chunk_ids": ids}))
        .await;
    assert_eq!(second[0]["conversation_id"], conversation);
    assert_eq!(one(&second, "complete")["payload"]["status"], "complete");
    let seqs: Vec<i32> = app
        .db
        .admin()
        .await
        .query(
            "select seq from public.chat_messages where conversation_id = $1 order by seq",
            &[&conversation.as_str().unwrap().parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    let sessions: i64 = app
        .count(
            "select count(distinct agent_session_id) from public.conversations",
            &[],
        )
        .await;
    assert_eq!(sessions, 1, "one platform session per conversation");
}

#[tokio::test]
async fn a_conversation_the_client_created_gets_its_platform_session() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let conversation = Uuid::new_v4();
    app.db
        .as_user(a.id)
        .execute(
            "insert into public.conversations (id, owner_id, title) values ($1, $2, 'mine')",
            &[&conversation, &a.id],
        )
        .await
        .unwrap();
    let events = app
        .ask(
            &a,
            &json!({"conversation_id": conversation, "message": "Hello?", "chunk_ids": []}),
        )
        .await;
    assert_eq!(events[0]["conversation_id"], json!(conversation));
    assert_eq!(kinds(&events).last(), Some(&"complete"));
    let session: Option<String> = app
        .db
        .admin()
        .await
        .query_one(
            "select agent_session_id from public.conversations where id = $1",
            &[&conversation],
        )
        .await
        .unwrap()
        .get(0);
    assert!(session.unwrap().starts_with("sess_"));
}

#[tokio::test]
async fn stop_ends_the_answer_as_stopped_and_keeps_what_was_written() {
    let app = Stack::builder()
        .token_delay_ms(150)
        .with_companion()
        .spawn()
        .await;
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
    assert_eq!(body["status"], "stopped");
    while let Some(event) = reader.next().await {
        events.push(event);
    }
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "complete");
    assert_eq!(last["payload"]["status"], "stopped");
    let partial = streamed_text(&events);
    assert!(!partial.is_empty());
    assert_eq!(last["payload"]["content"], partial);

    let (status, content) = app.wait_message(message_id.parse().unwrap()).await;
    assert_eq!(
        (status.as_str(), content.as_str()),
        ("stopped", partial.as_str())
    );
    let (again, body) = app.stop(&a, &message_id).await;
    assert_eq!(
        again,
        StatusCode::ACCEPTED,
        "stopping twice is harmless: {body}"
    );
}

/// An answer stopped after its first `[n]` marker keeps the citation the
/// reader already saw: stored with the stopped answer and sent in its final
/// event, so the marker still leads to its page after a reload. B reads none
/// of it.
#[tokio::test]
async fn a_stopped_answer_keeps_the_citations_its_text_shows() {
    let app = Stack::builder()
        .token_delay_ms(60)
        .with_companion()
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let document = app
        .ready_document(&a, "X200 manual.pdf", fixtures::document_pdf(&MANUAL))
        .await;
    let hits = app.search(&a, "warranty motor jars covered").await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let response = app
        .chat_response(
            &a,
            &json!({"message": "How long are the motor and the jars covered by the warranty?", "chunk_ids": ids}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut reader = SseReader::new(response);
    let mut events = Vec::new();
    while let Some(event) = reader.next().await {
        events.push(event);
        if streamed_text(&events).contains(']') {
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
    let sent = last["payload"]["citations"].as_array().unwrap();
    assert!(!sent.is_empty(), "{last}");
    assert!(
        sent.iter()
            .all(|c| c["document_id"] == json!(document) && c["page"] == 3),
        "{sent:?}"
    );

    let answer = format!("chat_messages?select=status,citations&id=eq.{message_id}");
    let stored = app.rows_as(&a, &answer).await;
    assert_eq!(stored[0]["status"], "stopped", "{stored:?}");
    assert_eq!(&stored[0]["citations"], &last["payload"]["citations"]);
    assert_eq!(app.rows_as(&b, &answer).await, Vec::<Value>::new());
}

#[tokio::test]
async fn a_user_with_too_many_answers_running_is_told_to_wait() {
    let app = Stack::builder()
        .token_delay_ms(100)
        .companion(|c| c.limits.max_runs_per_user = 1)
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    app.ready_document(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;
    let hits = app.search(&a, "warranty motor").await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let body = json!({"message": "How long is the warranty on the motor?", "chunk_ids": ids});
    let first = app.chat_response(&a, &body).await;
    assert_eq!(first.status(), StatusCode::OK);
    let mut reader = SseReader::new(first);
    let context = reader.next().await.unwrap();

    let second = app.chat_response(&a, &body).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers()["retry-after"], "5");
    let (_, error) = json_of(second).await;
    assert_eq!(error["error"], "rate_limited");
    let other = app.chat_response(&b, &json!({"message": "hello?"})).await;
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "another user is not limited"
    );
    drop(other);

    let message_id: Uuid = context["message_id"].as_str().unwrap().parse().unwrap();
    let (status, _) = app.stop(&a, &message_id.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    while reader.next().await.is_some() {}
    let third = app.chat_response(&a, &body).await;
    assert_eq!(third.status(), StatusCode::OK, "the slot came back");
}

#[tokio::test]
async fn answers_written_at_once_are_each_stored_whole_in_order_and_as_their_askers() {
    // Arrange: A and B, a manual each; several coalescing intervals per
    // answer, so that the four answers' rows reach the event writer
    // together and are written in shared calls.
    let app = Stack::builder()
        .token_delay_ms(15)
        .with_companion()
        .spawn()
        .await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    for user in [&a, &b] {
        app.ready_document(user, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
            .await;
    }
    let question = json!({"message": "How long is the warranty on the motor?", "chunk_ids": []});

    // Act: each asks twice (their run limit), all four at once.
    let (a1, a2, b1, b2) = tokio::join!(
        app.ask(&a, &question),
        app.ask(&a, &question),
        app.ask(&b, &question),
        app.ask(&b, &question),
    );

    // Assert: every answer's stored rows are its streamed events — seqs
    // 0..n without a gap, each once, its deltas' text in order — under its
    // asker and its conversation, and end in `complete`.
    let admin = app.db.admin().await;
    for (user, events) in [(&a, a1), (&a, a2), (&b, b1), (&b, b2)] {
        let message_id: Uuid = events[0]["message_id"].as_str().unwrap().parse().unwrap();
        let conversation_id: Uuid = events[0]["conversation_id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let rows = admin
            .query(
                "select seq, kind, payload, owner_id, conversation_id from public.chat_events \
                 where message_id = $1 order by seq",
                &[&message_id],
            )
            .await
            .unwrap();
        let seqs: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        let mut streamed: Vec<i32> = events
            .iter()
            .map(|e| i32::try_from(e["seq"].as_i64().unwrap()).unwrap())
            .collect();
        streamed.dedup();
        assert_eq!(seqs, (0..seqs.len() as i32).collect::<Vec<_>>(), "no gap");
        assert_eq!(seqs, streamed, "the rows are the streamed events");
        let stored_text: String = rows
            .iter()
            .filter(|r| r.get::<_, String>(1) == "delta")
            .map(|r| r.get::<_, Value>(2)["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(stored_text, streamed_text(&events));
        assert!(stored_text.contains("five years"), "{stored_text}");
        assert!(
            rows.iter()
                .all(|r| r.get::<_, Uuid>(3) == user.id && r.get::<_, Uuid>(4) == conversation_id)
        );
        assert_eq!(
            rows.last().map(|r| r.get::<_, String>(1)).as_deref(),
            Some("complete")
        );
        let (status, content) = app.wait_message(message_id).await;
        assert_eq!(
            (status.as_str(), content.as_str()),
            ("complete", stored_text.as_str())
        );
    }
}

#[tokio::test]
async fn a_client_that_goes_away_stops_nothing() {
    let app = Stack::builder()
        .token_delay_ms(40)
        .with_companion()
        .spawn()
        .await;
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
    let context = reader.next().await.unwrap();
    loop {
        if reader.next().await.unwrap()["kind"] == "delta" {
            break;
        }
    }
    drop(reader);

    let message_id: Uuid = context["message_id"].as_str().unwrap().parse().unwrap();
    let (status, content) = app.wait_message(message_id).await;
    assert_eq!(status, "complete");
    assert!(content.contains("five years"), "{content}");
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
    assert_eq!(last, "complete");
}

/// Lines of Latin placeholder prose (no English word, so they answer no
/// question), each a sentence of its own, different for every `seed`.
fn placeholder_lines(seed: usize, count: usize) -> Vec<String> {
    const WORDS: [&str; 12] = [
        "lorem",
        "ipsum",
        "dolor",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "tempor",
        "incididunt",
        "labore",
        "magna",
        "aliqua",
    ];
    (0..count)
        .map(|line| {
            let words: Vec<&str> = (0..9)
                .map(|w| WORDS[(seed * 7 + line * 5 + w * 3) % WORDS.len()])
                .collect();
            format!("{} {}.", capitalized(words[0]), words[1..].join(" "))
        })
        .collect()
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_citation_of_a_passage_across_a_page_break_names_both_pages() {
    // Arrange: A's manual has a short page 1 that ends with the answer and a
    // long page 2 that goes on about it, so the platform's first chunk (1,000
    // characters of the pages joined) starts on page 1 and ends on page 2. B
    // has the same sentence on the one page of their own manual.
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let mut page_1 = placeholder_lines(1, 4);
    page_1.push("The descaling cycle is forty minutes long.".to_owned());
    let mut page_2 = vec!["Use one sachet of citric acid for each descaling cycle.".to_owned()];
    page_2.extend(placeholder_lines(2, 22));
    let page_3 = placeholder_lines(3, 4);
    let pages = [page_1.join("\n"), page_2.join("\n"), page_3.join("\n")];
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    let document = app
        .ready_document(&a, "Espresso machine.pdf", fixtures::text_pdf(&pages))
        .await;
    let b_document = app
        .ready_document(
            &b,
            "B's espresso machine.pdf",
            fixtures::text_pdf(&["The descaling cycle is forty minutes long."]),
        )
        .await;
    let question = "How long is the descaling cycle?";

    // Act
    let (hits, events) = ask_with_hits(&app, &a, question).await;
    let b_hits = app.search(&b, question).await;

    // Assert: A's search finds the chunk with the range of pages it spans.
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0]["document_id"], json!(document));
    assert_eq!(
        (&hits[0]["page"], &hits[0]["page_end"]),
        (&json!(1), &json!(2))
    );
    // The answer was given that chunk, and cites it at pages 1-2.
    let context = one(&events, "context");
    let chunks = context["payload"]["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(
        (&chunks[0]["page"], &chunks[0]["page_end"]),
        (&json!(1), &json!(2))
    );
    let complete = one(&events, "complete");
    let content = complete["payload"]["content"].as_str().unwrap();
    assert!(content.contains("forty minutes"), "{content}");
    let citations = complete["payload"]["citations"].as_array().unwrap();
    assert_eq!(citations.len(), 1, "{citations:?}");
    let citation = &citations[0];
    assert_eq!(citation["document_id"], json!(document));
    assert_eq!(citation["title"], "Espresso machine.pdf");
    assert_eq!(
        (&citation["page"], &citation["page_end"]),
        (&json!(1), &json!(2))
    );
    // What is stored is what was streamed.
    let message_id: Uuid = context["message_id"].as_str().unwrap().parse().unwrap();
    let stored: Value = app
        .db
        .admin()
        .await
        .query_one(
            "select citations from public.chat_messages where id = $1",
            &[&message_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(&stored, &complete["payload"]["citations"]);
    // B finds only their own one-page chunk; nothing of A's.
    assert_eq!(b_hits.len(), 1, "{b_hits:?}");
    assert_eq!(b_hits[0]["document_id"], json!(b_document));
    assert_eq!(
        (&b_hits[0]["page"], &b_hits[0]["page_end"]),
        (&json!(1), &json!(1))
    );
}
