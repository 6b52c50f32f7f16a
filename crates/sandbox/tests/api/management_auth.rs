//! The service-role split: platform 0.7's auth on management routes,
//! emulated on request (the companion's start-up probe must tell such a
//! platform apart), and who may run the agent in a session the service role
//! created.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use quire_testkit::{Stack, json_of, spawn_sandbox, spawn_sandbox_with};

/// The 0.7 emulation (off by default): a user token passes the management
/// routes, as it did before 0.12 — what the companion's start-up probe must
/// detect. Two users: both are let through, which is exactly the hole.
#[tokio::test]
async fn the_0_7_emulation_lets_user_tokens_through_management_routes() {
    let now = chrono::Utc::now().timestamp();
    let token_for = |app: &Stack| {
        app.sign(&json!({"sub": Uuid::new_v4(), "aud": "authenticated",
                         "role": "authenticated", "exp": now + 600}))
    };
    let list = |app: &Stack, token: String| {
        app.request(reqwest::Method::GET, "/api/knowledge-bases", Some(&token))
            .send()
    };

    let current = spawn_sandbox().await;
    let (status, body) = json_of(list(&current, token_for(&current)).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let old = spawn_sandbox_with(|c| c.agents.emulate_0_7_management_auth = true).await;
    for _user in ["a", "b"] {
        let (status, body) = json_of(list(&old, token_for(&old)).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.is_array() || body.is_object(), "{body}");
    }
}

/// A session the service role creates with `user_id` is that user's: they may
/// run the agent in it with their own token (B may not). One created without
/// `user_id` — how the companion creates them — belongs to nobody, so no
/// user can run the agent in it directly and skip the companion's limits.
#[tokio::test]
async fn a_user_runs_only_in_a_service_session_created_for_them() {
    let app = spawn_sandbox_with(|c| c.agents.token_delay_ms = 0).await;
    let (status, agent) = json_of(
        app.service(Method::POST, "/api/agents")
            .json(&json!({"name": "Quire", "system_prompt": ""}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    let agent = agent["id"].as_str().unwrap().to_owned();
    let token_and_id = |session: Value| {
        (
            session["access_token"].as_str().unwrap().to_owned(),
            session["user"]["id"].as_str().unwrap().to_owned(),
        )
    };
    let (alice, alice_id) = token_and_id(
        app.signed_up("alice@example.com", "correct horse battery")
            .await,
    );
    let (bob, _) = token_and_id(
        app.signed_up("bob@example.com", "correct horse battery")
            .await,
    );

    let session = |body: Value| {
        let app = &app;
        let agent = agent.clone();
        async move {
            let (status, created) = json_of(
                app.service(Method::POST, &format!("/api/agents/{agent}/sessions"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            created["session_id"].as_str().unwrap().to_owned()
        }
    };
    let alices = session(json!({"user_id": alice_id})).await;
    let unowned = session(json!({})).await;

    let run = |token: &str, session_id: &str| {
        app.request(
            Method::POST,
            &format!("/api/agents/{agent}/run"),
            Some(token),
        )
        .json(&json!({"message": "hello", "session_id": session_id}))
        .send()
    };
    let not_found = json!({"error": "Session not found"});

    let (status, body) = json_of(run(&alice, &alices).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session_id"], alices.as_str(), "{body}");

    let (status, body) = json_of(run(&bob, &alices).await.unwrap()).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found.clone()));

    for token in [&alice, &bob] {
        let (status, body) = json_of(run(token, &unowned).await.unwrap()).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found.clone()));
    }
}
