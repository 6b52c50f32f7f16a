//! User B, with every kind of bad token or with A's ids, learns nothing of A
//! — no content, and no difference in status between "A's" and "nobody's".

use base64::Engine as _;
use quire_testkit::fixtures;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use quire_testkit::fixtures::MANUAL;
use quire_testkit::sse::{kinds, one, streamed_text};
use quire_testkit::{Stack, User, json_of, spawn_stack};

const SECRET_FACT: &str = "The vault code is 7431 and the spare key is under the blue pot.";

/// A (with a ready document and a finished answer) and B.
struct Scene {
    app: Stack,
    a: User,
    b: User,
    document: Uuid,
    conversation: String,
    message: String,
    chunk_ids: Vec<Value>,
}

async fn scene() -> Scene {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let pages = [MANUAL[0], MANUAL[1], SECRET_FACT];
    let document = app
        .ready_document(&a, "Private.pdf", fixtures::text_pdf(&pages))
        .await;
    let hits = app.search(&a, "vault code spare key").await;
    assert!(!hits.is_empty());
    let chunk_ids: Vec<Value> = hits.iter().map(|h| h["id"].clone()).collect();
    let events = app
        .ask(
            &a,
            &json!({"message": "What is the vault code?", "chunk_ids": chunk_ids}),
        )
        .await;
    assert!(
        one(&events, "complete")["payload"]["content"]
            .as_str()
            .unwrap()
            .contains("7431")
    );
    Scene {
        conversation: events[0]["conversation_id"].as_str().unwrap().to_owned(),
        message: events[0]["message_id"].as_str().unwrap().to_owned(),
        app,
        a,
        b,
        document,
        chunk_ids,
    }
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn claims(sub: Uuid, exp_offset: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + exp_offset})
}

#[tokio::test]
async fn every_bad_token_gets_the_same_401_on_every_user_route() {
    let s = scene().await;
    let app = &s.app;
    let a = s.a.id;
    let hs256 = |secret: &str, claims: &Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let mut wrong_aud = claims(a, 600);
    wrong_aud["aud"] = json!("somebody-else");
    let mut service_claim = claims(a, 600);
    service_claim["role"] = json!("service_role");
    let mut no_exp = claims(a, 600);
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut not_uuid = claims(a, 600);
    not_uuid["sub"] = json!("a@example.com");
    let tokens: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("garbage", Some("not.a.token".to_owned())),
        (
            "forged",
            Some(hs256(
                "a-secret-that-is-not-the-projects-one!",
                &claims(a, 600),
            )),
        ),
        ("expired", Some(app.sign(&claims(a, -3600)))),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims(a, 600))
            )),
        ),
        ("wrong audience", Some(app.sign(&wrong_aud))),
        ("role service_role", Some(app.sign(&service_claim))),
        ("the service key", Some(app.service_key())),
        ("the anon key", Some(app.anon_key())),
        ("no exp", Some(app.sign(&no_exp))),
        ("sub not a uuid", Some(app.sign(&not_uuid))),
    ];
    let routes = [
        (
            Method::POST,
            "/api/chat".to_owned(),
            json!({"conversation_id": s.conversation, "message": "hi", "chunk_ids": s.chunk_ids}),
        ),
        (
            Method::POST,
            "/api/documents".to_owned(),
            json!({"title": "x.pdf", "byte_size": 10}),
        ),
        (
            Method::POST,
            format!("/api/documents/{}/ingest", s.document),
            json!({}),
        ),
        (
            Method::DELETE,
            format!("/api/documents/{}", s.document),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/chat/{}/stop", s.message),
            json!({}),
        ),
    ];
    let mut first: Option<Value> = None;
    for (name, token) in &tokens {
        for (method, path, body) in &routes {
            let response = app
                .companion_request(method.clone(), path, token.as_deref())
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.headers()["www-authenticate"], "Bearer");
            let (status, body) = json_of(response).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} on {path}: {body}");
            match &first {
                None => first = Some(body),
                Some(f) => assert_eq!(&body, f, "{name} on {path}: the same answer every time"),
            }
        }
    }
    // Nothing changed for A.
    assert_eq!(app.document_status(s.document).await.unwrap().0, "ready");
    assert_eq!(
        app.count("select count(*) from public.chat_messages", &[])
            .await,
        2
    );
    assert_eq!(
        app.count("select count(*) from public.documents", &[])
            .await,
        1
    );
}

#[tokio::test]
async fn b_cannot_use_as_conversation_document_or_answer_ids() {
    let s = scene().await;
    let app = &s.app;
    let random = Uuid::new_v4().to_string();

    // A's conversation: the same 404 as a conversation that does not exist.
    let mine = app
        .chat_response(
            &s.b,
            &json!({"conversation_id": s.conversation, "message": "What is the vault code?"}),
        )
        .await;
    let nobodys = app
        .chat_response(
            &s.b,
            &json!({"conversation_id": random, "message": "What is the vault code?"}),
        )
        .await;
    let (mine, nobodys) = (json_of(mine).await, json_of(nobodys).await);
    assert_eq!(mine.0, StatusCode::NOT_FOUND);
    assert_eq!(mine, nobodys);

    // A's document, on ingest and delete.
    let doc = s.document.to_string();
    assert_eq!(
        app.ingest(&s.b, &doc).await,
        app.ingest(&s.b, &random).await
    );
    assert_eq!(app.ingest(&s.b, &doc).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete_document(&s.b, &doc).await,
        app.delete_document(&s.b, &random).await
    );
    assert_eq!(
        app.delete_document(&s.b, &doc).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.ingest(&s.b, "not-a-uuid").await.0,
        StatusCode::NOT_FOUND
    );

    // A's answer, on stop.
    assert_eq!(
        app.stop(&s.b, &s.message).await,
        app.stop(&s.b, &random).await
    );
    assert_eq!(app.stop(&s.b, &s.message).await.0, StatusCode::NOT_FOUND);

    // Nothing of A's changed, nothing was written for B.
    assert_eq!(app.document_status(s.document).await.unwrap().0, "ready");
    assert!(
        app.count(
            "select count(*) from public.document_chunks where document_id = $1",
            &[&s.document]
        )
        .await
            > 0
    );
    let b_rows = app
        .count(
            "select count(*) from public.chat_messages where owner_id = $1",
            &[&s.b.id],
        )
        .await;
    assert_eq!(b_rows, 0);
    let status: String = app
        .db
        .admin()
        .await
        .query_one(
            "select status from public.chat_messages where id = $1",
            &[&s.message.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "complete");
}

#[tokio::test]
async fn as_chunk_ids_give_b_nothing() {
    let s = scene().await;
    let app = &s.app;
    let events = app
        .ask(
            &s.b,
            &json!({"message": "What is the vault code?", "chunk_ids": s.chunk_ids}),
        )
        .await;
    let context = one(&events, "context");
    assert_eq!(context["payload"]["chunks"], json!([]));
    assert_eq!(context["payload"]["dropped"], s.chunk_ids.len());
    let raw = serde_json::to_string(&events).unwrap();
    assert!(!raw.contains("7431") && !raw.contains("blue pot"), "{raw}");
    assert!(!raw.contains("Private.pdf"), "{raw}");
    let complete = one(&events, "complete");
    assert_eq!(complete["payload"]["citations"], json!([]));
    assert_eq!(complete["payload"]["content"], streamed_text(&events));

    // What B's run was given, as the platform recorded it: nothing of A's.
    let recorded: Value = app
        .db
        .admin()
        .await
        .query_one(
            "select retrieved_context from ai.agent_runs where run_id = $1",
            &[&one(&events, "status")["payload"]["run_id"]
                .as_str()
                .unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!recorded.to_string().contains("7431"), "{recorded}");
    assert_eq!(kinds(&events).last(), Some(&"complete"));
}

#[tokio::test]
async fn the_tool_endpoint_answers_only_the_platform_with_a_live_token() {
    let s = scene().await;
    let app = &s.app;
    let secret = app.tool_secret();
    let query = json!({"query": "vault code", "session_token": "qst_0000"});

    // A live token of A's, made the way the companion makes them.
    let live = format!("qst_{}", "ab".repeat(32));
    let hash = quire_companion::tool::token_hash(&live);
    let conversation: Uuid = s.conversation.parse().unwrap();
    app.db
        .admin()
        .await
        .execute(
            "insert into public.tool_sessions (token_hash, owner_id, conversation_id, expires_at) \
             values ($1, $2, $3, now() + interval '5 minutes')",
            &[&hash, &s.a.id, &conversation],
        )
        .await
        .unwrap();
    let (status, body) = app
        .call_tool(
            Some(&secret),
            &json!({"query": "vault code", "session_token": live}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("7431"),
        "positive control: {body}"
    );
    assert_eq!(body["results"][0]["document_id"], json!(s.document));

    // An expired one.
    let expired = format!("qst_{}", "cd".repeat(32));
    app.db
        .admin()
        .await
        .execute(
            "insert into public.tool_sessions (token_hash, owner_id, conversation_id, expires_at) \
             values ($1, $2, $3, now() - interval '1 second')",
            &[
                &quire_companion::tool::token_hash(&expired),
                &s.a.id,
                &conversation,
            ],
        )
        .await
        .unwrap();

    let refusals = [
        (None, json!({"query": "vault code", "session_token": live})),
        (
            Some("wrong-secret"),
            json!({"query": "vault code", "session_token": live}),
        ),
        (Some(secret.as_str()), query.clone()),
        (
            Some(secret.as_str()),
            json!({"query": "vault code", "session_token": expired}),
        ),
        (
            Some(secret.as_str()),
            json!({"query": "vault code", "session_token": live.to_uppercase()}),
        ),
        (Some(secret.as_str()), json!({"query": "vault code"})),
        (
            Some(secret.as_str()),
            json!({"query": "vault code", "session_token": hash}),
        ),
    ];
    for (i, (secret, body)) in refusals.iter().enumerate() {
        let (status, answer) = app.call_tool(*secret, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "#{i}");
        assert_eq!(
            answer,
            json!({"error": "unauthorized"}),
            "#{i}: nothing else said"
        );
    }

    // A's finished run left no usable token behind.
    assert_eq!(
        app.count(
            "select count(*) from public.tool_sessions where expires_at > now()",
            &[]
        )
        .await,
        1,
        "only the one this test inserted"
    );
}

#[tokio::test]
async fn a_token_from_bs_own_run_only_ever_finds_bs_documents() {
    let s = scene().await;
    let app = &s.app;
    // B asks with no context: the agent's tool call carries B's token, and
    // the search under it finds none of A's chunks.
    let events = app
        .ask(&s.b, &json!({"message": "What is the vault code?"}))
        .await;
    let result = one(&events, "tool_result");
    let preview = result["payload"]["preview"].as_str().unwrap_or_default();
    assert!(!preview.contains("7431"), "{preview}");
    let content = one(&events, "complete")["payload"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!content.contains("7431"), "{content}");
}
