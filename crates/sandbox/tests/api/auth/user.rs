//! `GET /user` and `PUT /user`.

use serde_json::json;

use super::support::{PASSWORD_A, PASSWORD_B, claims_of, field, two_users, user_id};
use quire_testkit::{json_of, spawn_sandbox};

#[tokio::test]
async fn get_user_answers_with_the_bare_user() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;

    let (status, user) = json_of(app.get_user(Some(field(&a, "access_token"))).await).await;

    assert_eq!(status, 200);
    let mut got = user.as_object().unwrap().clone();
    let mut signed_up = a["user"].as_object().unwrap().clone();
    // The same user; only the timestamps may be rendered afresh.
    got.retain(|k, _| !k.ends_with("_at") && k != "identities");
    signed_up.retain(|k, _| !k.ends_with("_at") && k != "identities");
    assert_eq!(got, signed_up);
    assert_eq!(user["identities"][0]["id"], a["user"]["id"]);
    assert!(user.get("user").is_none(), "not wrapped");
}

#[tokio::test]
async fn user_metadata_is_merged_and_nulls_remove_keys() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;
    let token = field(&a, "access_token");
    app.update_user(token, &json!({"data": {"theme": "dark", "lang": "en"}}))
        .await;

    let (status, user) = json_of(
        app.update_user(token, &json!({"data": {"lang": null, "font": "serif"}}))
            .await,
    )
    .await;

    assert_eq!(status, 200, "{user}");
    assert_eq!(
        user["user_metadata"],
        json!({"email_verified": true, "theme": "dark", "font": "serif"})
    );
    let stored: serde_json::Value = app
        .db
        .admin()
        .await
        .query_one(
            "select raw_user_meta_data from auth.users where id = $1",
            &[&user_id(&a)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, user["user_metadata"]);
    // B's row is untouched.
    let (_, b_user) = json_of(app.get_user(Some(field(&b, "access_token"))).await).await;
    assert_eq!(b_user["user_metadata"], json!({"email_verified": true}));
}

#[tokio::test]
async fn a_new_password_works_and_ends_the_other_sessions() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;
    let (_, second) = json_of(app.sign_in("alice@example.com", PASSWORD_A).await).await;

    let (status, _) = json_of(
        app.update_user(
            field(&a, "access_token"),
            &json!({"password": "a brand new secret"}),
        )
        .await,
    )
    .await;

    assert_eq!(status, 200);
    let (status, _) = json_of(app.sign_in("alice@example.com", PASSWORD_A).await).await;
    assert_eq!(status, 400, "the old password is gone");
    let (status, _) = json_of(app.sign_in("alice@example.com", "a brand new secret").await).await;
    assert_eq!(status, 200);
    // The session that changed it lives on; the other one does not.
    let (status, _) = json_of(app.get_user(Some(field(&a, "access_token"))).await).await;
    assert_eq!(status, 200);
    let (status, body) = json_of(app.get_user(Some(field(&second, "access_token"))).await).await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (403, Some("session_not_found"))
    );
    let (status, _) = json_of(app.refresh(field(&second, "refresh_token")).await).await;
    assert_eq!(status, 400);
    // B signs in as before.
    let (status, _) = json_of(app.sign_in("bob@example.com", PASSWORD_B).await).await;
    assert_eq!(status, 200);
    let (status, _) = json_of(app.get_user(Some(field(&b, "access_token"))).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn password_changes_are_checked() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let token = field(&a, "access_token");

    let (status, body) = json_of(
        app.update_user(token, &json!({"password": PASSWORD_A}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"code": 422, "error_code": "same_password",
               "msg": "New password should be different from the old password."})
    );

    let (status, body) = json_of(app.update_user(token, &json!({"password": "abc"})).await).await;
    assert_eq!(status, 422);
    assert_eq!(body["error_code"], "weak_password");
    assert_eq!(body["weak_password"], json!({"reasons": ["length"]}));
}

#[tokio::test]
async fn app_metadata_cannot_be_changed_by_the_user() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;

    let (status, body) = json_of(
        app.update_user(
            field(&a, "access_token"),
            &json!({"app_metadata": {"role": "admin"}, "data": {"x": 1}}),
        )
        .await,
    )
    .await;

    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"code": 403, "error_code": "not_admin",
               "msg": "Updating app_metadata requires admin privileges"})
    );
    let row = app
        .db
        .admin()
        .await
        .query_one(
            "select raw_app_meta_data, raw_user_meta_data from auth.users where id = $1",
            &[&user_id(&a)],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, serde_json::Value>(0),
        json!({"provider": "email", "providers": ["email"]})
    );
    assert_eq!(
        row.get::<_, serde_json::Value>(1),
        json!({"email_verified": true}),
        "nothing of the request was applied"
    );
}

#[tokio::test]
async fn email_changes_apply_and_cannot_take_anothers_address() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;
    let token = field(&a, "access_token");

    let (status, body) = json_of(
        app.update_user(token, &json!({"email": "BOB@example.com"}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error_code"], "email_exists");

    let (status, user) = json_of(
        app.update_user(token, &json!({"email": "Alice.New@example.com"}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "alice.new@example.com");
    assert_eq!(
        user["identities"][0]["identity_data"]["email"],
        "alice.new@example.com"
    );
    let (status, _) = json_of(app.sign_in("alice.new@example.com", PASSWORD_A).await).await;
    assert_eq!(status, 200);
    let (_, b_user) = json_of(app.get_user(Some(field(&b, "access_token"))).await).await;
    assert_eq!(b_user["email"], "bob@example.com");

    // The next access token carries the new address.
    let (_, refreshed) = json_of(app.refresh(field(&a, "refresh_token")).await).await;
    assert_eq!(
        claims_of(field(&refreshed, "access_token"))["email"],
        "alice.new@example.com"
    );
}

#[tokio::test]
async fn updates_need_a_signed_in_user() {
    let app = spawn_sandbox().await;

    let (status, body) =
        json_of(app.update_user(&app.anon_key(), &json!({"data": {}})).await).await;
    assert_eq!(status, 403);
    assert_eq!(body["error_code"], "bad_jwt");
    assert_eq!(body["msg"], "invalid claim: missing sub claim");
}
