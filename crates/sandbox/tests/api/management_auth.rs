//! Platform 0.7's auth on management routes, emulated on request: the
//! companion's start-up probe must be able to tell such a platform apart.

use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, json_of, spawn_app, spawn_app_with};

/// The 0.7 emulation (off by default): a user token passes the management
/// routes, as it did before 0.12 — what the companion's start-up probe must
/// detect. Two users: both are let through, which is exactly the hole.
#[tokio::test]
async fn the_0_7_emulation_lets_user_tokens_through_management_routes() {
    let now = chrono::Utc::now().timestamp();
    let token_for = |app: &TestApp| {
        app.sign(&json!({"sub": Uuid::new_v4(), "aud": "authenticated",
                         "role": "authenticated", "exp": now + 600}))
    };
    let list = |app: &TestApp, token: String| {
        app.request(reqwest::Method::GET, "/api/knowledge-bases", Some(&token))
            .send()
    };

    let current = spawn_app().await;
    let (status, body) = json_of(list(&current, token_for(&current)).await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let old = spawn_app_with(|c| c.agents.emulate_0_7_management_auth = true).await;
    for _user in ["a", "b"] {
        let (status, body) = json_of(list(&old, token_for(&old)).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.is_array() || body.is_object(), "{body}");
    }
}
