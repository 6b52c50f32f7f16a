//! `POST /logout?scope=global|local|others`.

use serde_json::{Value, json};

use super::support::{PASSWORD_A, field, two_users, user_id};
use quire_testkit::{Stack, json_of, spawn_sandbox};

/// Three sessions of A (sign-up plus two sign-ins) and one of B.
async fn sessions(app: &Stack) -> (Vec<Value>, Value) {
    let (a, b) = two_users(app).await;
    let (_, a2) = json_of(app.sign_in("alice@example.com", PASSWORD_A).await).await;
    let (_, a3) = json_of(app.sign_in("alice@example.com", PASSWORD_A).await).await;
    (vec![a, a2, a3], b)
}

async fn user_status(app: &Stack, session: &Value) -> u16 {
    app.get_user(Some(field(session, "access_token")))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn global_logout_ends_every_session_of_the_user_only() {
    let app = spawn_sandbox().await;
    let (a, b) = sessions(&app).await;

    let response = app.logout(field(&a[0], "access_token"), None).await;

    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    for session in &a {
        let (status, body) =
            json_of(app.get_user(Some(field(session, "access_token"))).await).await;
        assert_eq!(status, 403);
        assert_eq!(
            body,
            json!({"code": 403, "error_code": "session_not_found",
                   "msg": "Session from session_id claim in JWT does not exist"})
        );
        let (status, _) = json_of(app.refresh(field(session, "refresh_token")).await).await;
        assert_eq!(status, 400);
    }
    let left: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from auth.sessions where user_id = $1",
            &[&user_id(&a[0])],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(user_status(&app, &b).await, 200, "B is still signed in");
}

#[tokio::test]
async fn local_logout_ends_only_this_session() {
    let app = spawn_sandbox().await;
    let (a, b) = sessions(&app).await;

    let response = app
        .logout(field(&a[1], "access_token"), Some("local"))
        .await;

    assert_eq!(response.status(), 204);
    assert_eq!(user_status(&app, &a[0]).await, 200);
    assert_eq!(user_status(&app, &a[1]).await, 403);
    assert_eq!(user_status(&app, &a[2]).await, 200);
    assert_eq!(user_status(&app, &b).await, 200);
}

#[tokio::test]
async fn others_logout_keeps_only_this_session() {
    let app = spawn_sandbox().await;
    let (a, b) = sessions(&app).await;

    let response = app
        .logout(field(&a[1], "access_token"), Some("others"))
        .await;

    assert_eq!(response.status(), 204);
    assert_eq!(user_status(&app, &a[0]).await, 403);
    assert_eq!(user_status(&app, &a[1]).await, 200);
    assert_eq!(user_status(&app, &a[2]).await, 403);
    assert_eq!(user_status(&app, &b).await, 200);
}

#[tokio::test]
async fn unknown_scopes_and_missing_tokens_are_refused() {
    let app = spawn_sandbox().await;
    let (a, _b) = sessions(&app).await;

    let (status, body) = json_of(
        app.logout(field(&a[0], "access_token"), Some("everyone"))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "validation_failed",
               "msg": "Unsupported logout scope \"everyone\""})
    );

    let response = app
        .http
        .post(format!("{}/auth/v1/logout", app.api_base()))
        .header("apikey", app.anon_key())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["error_code"], "no_authorization");
    assert_eq!(
        user_status(&app, &a[0]).await,
        200,
        "nothing was logged out"
    );
}
