//! `POST /token?grant_type=refresh_token`: rotation, the reuse window, and
//! what reuse after it costs.

use serde_json::json;
use uuid::Uuid;

use super::support::{claims_of, field, two_users, user_id};
use quire_testkit::{Stack, json_of, spawn_sandbox};

/// Pretends `token` was rotated `seconds` ago.
async fn age_token(app: &Stack, token: &str, seconds: i32) {
    app.db
        .admin()
        .await
        .execute(
            "update auth.refresh_tokens set updated_at = now() - make_interval(secs => $2) \
             where token = $1",
            &[&token, &f64::from(seconds)],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn refreshing_rotates_the_token_within_the_session() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let first = field(&a, "refresh_token");

    let (status, refreshed) = json_of(app.refresh(first).await).await;

    assert_eq!(status, 200, "{refreshed}");
    let second = field(&refreshed, "refresh_token");
    assert_ne!(second, first);
    assert_eq!(refreshed["user"]["id"], a["user"]["id"]);
    assert_eq!(refreshed["token_type"], "bearer");
    let old = claims_of(field(&a, "access_token"));
    let new = claims_of(field(&refreshed, "access_token"));
    assert_eq!(new["session_id"], old["session_id"], "same session");
    assert_eq!(
        new["amr"], old["amr"],
        "refreshing keeps how the session began"
    );

    let db = app.db.admin().await;
    let rows = db
        .query(
            "select token, revoked, parent from auth.refresh_tokens \
             where user_id = $1 order by id",
            &[&user_id(&a)],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, String>(0), first);
    assert!(rows[0].get::<_, bool>(1), "the used token is revoked");
    assert_eq!(rows[1].get::<_, String>(0), second);
    assert!(!rows[1].get::<_, bool>(1));
    assert_eq!(rows[1].get::<_, Option<String>>(2).as_deref(), Some(first));

    let (status, _) = json_of(app.refresh(second).await).await;
    assert_eq!(status, 200, "the new token works in its turn");
}

#[tokio::test]
async fn reuse_inside_the_interval_answers_with_the_current_session() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let first = field(&a, "refresh_token");
    let (_, refreshed) = json_of(app.refresh(first).await).await;
    let current = field(&refreshed, "refresh_token").to_owned();

    // The client lost the answer and retries with the old token.
    let (status, again) = json_of(app.refresh(first).await).await;

    assert_eq!(status, 200, "{again}");
    assert_eq!(field(&again, "refresh_token"), current, "no new branch");
    assert_eq!(
        claims_of(field(&again, "access_token"))["session_id"],
        claims_of(field(&a, "access_token"))["session_id"]
    );
    let tokens: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from auth.refresh_tokens where user_id = $1",
            &[&user_id(&a)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tokens, 2);
}

#[tokio::test]
async fn reuse_after_the_interval_revokes_the_session() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;
    let first = field(&a, "refresh_token");
    let (_, refreshed) = json_of(app.refresh(first).await).await;
    age_token(&app, first, 11).await;

    let response = app.refresh(first).await;

    assert_eq!(
        response.headers()["x-sb-error-code"],
        "refresh_token_already_used"
    );
    let (status, body) = json_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "refresh_token_already_used",
               "msg": "Invalid Refresh Token: Already Used"})
    );
    // The whole session is gone: its current refresh token and its access
    // tokens stop working.
    let session_id = Uuid::parse_str(
        claims_of(field(&a, "access_token"))["session_id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let db = app.db.admin().await;
    let sessions: i64 = db
        .query_one(
            "select count(*) from auth.sessions where id = $1",
            &[&session_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 0);
    let (status, _) = json_of(app.refresh(field(&refreshed, "refresh_token")).await).await;
    assert_eq!(status, 400);
    let (status, body) = json_of(app.get_user(Some(field(&refreshed, "access_token"))).await).await;
    assert_eq!(status, 403);
    assert_eq!(body["error_code"], "session_not_found");

    // B is not affected.
    let (status, _) = json_of(app.refresh(field(&b, "refresh_token")).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unknown_and_missing_tokens() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;

    let (status, body) = json_of(app.refresh("not-a-real-token").await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "refresh_token_not_found",
               "msg": "Invalid Refresh Token: Refresh Token Not Found"})
    );

    let (status, body) = json_of(app.token("refresh_token", &json!({})).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": "refresh_token required"}),
        "GoTrue answers this one in the OAuth shape"
    );
}

#[tokio::test]
async fn a_refresh_token_only_ever_yields_its_own_users_session() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;

    let (_, from_a) = json_of(app.refresh(field(&a, "refresh_token")).await).await;
    let (_, from_b) = json_of(app.refresh(field(&b, "refresh_token")).await).await;

    assert_eq!(from_a["user"]["id"], a["user"]["id"]);
    assert_eq!(from_b["user"]["id"], b["user"]["id"]);
    assert_eq!(
        claims_of(field(&from_a, "access_token"))["sub"],
        a["user"]["id"]
    );
    assert_eq!(
        claims_of(field(&from_b, "access_token"))["sub"],
        b["user"]["id"]
    );
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_agree() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let first = field(&a, "refresh_token");

    let (one, two) = tokio::join!(app.refresh(first), app.refresh(first));
    let (s1, b1) = json_of(one).await;
    let (s2, b2) = json_of(two).await;

    assert_eq!((s1.as_u16(), s2.as_u16()), (200, 200), "{b1} {b2}");
    assert_eq!(
        field(&b1, "refresh_token"),
        field(&b2, "refresh_token"),
        "both get the one child token"
    );
}

#[tokio::test]
async fn short_lived_access_tokens_expire_and_refreshing_renews_them() {
    let app = quire_testkit::spawn_sandbox_with(|config| config.jwt_expiry_secs = 1).await;
    let (a, _b) = two_users(&app).await;
    assert_eq!(a["expires_in"], 1);

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    let (status, body) = json_of(app.get_user(Some(field(&a, "access_token"))).await).await;
    assert_eq!(status, 403);
    assert_eq!(body["error_code"], "bad_jwt");
    assert!(
        body["msg"].as_str().unwrap().ends_with("token is expired"),
        "{body}"
    );
    let (status, refreshed) = json_of(app.refresh(field(&a, "refresh_token")).await).await;
    assert_eq!(status, 200);
    let (status, _) = json_of(app.get_user(Some(field(&refreshed, "access_token"))).await).await;
    assert_eq!(status, 200);
}
