//! `/admin/users` with the service role — and without it.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use super::support::{PASSWORD_A, claims_of, field, two_users, user_id};
use quire_testkit::{json_of, spawn_sandbox};

#[tokio::test]
async fn the_service_role_manages_users() {
    let app = spawn_sandbox().await;

    // Create, confirmed, with metadata only an admin may set.
    let (status, created) = json_of(
        app.admin(
            Method::POST,
            None,
            None,
            Some(&json!({
                "email": "Carol@Example.com",
                "password": PASSWORD_A,
                "email_confirm": true,
                "user_metadata": {"name": "Carol"},
                "app_metadata": {"plan": "pro"}
            })),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["email"], "carol@example.com");
    assert!(created["email_confirmed_at"].is_string());
    assert_eq!(
        created["app_metadata"],
        json!({"provider": "email", "providers": ["email"], "plan": "pro"})
    );
    assert_eq!(created["user_metadata"]["name"], "Carol");
    let id = created["id"].as_str().unwrap().to_owned();

    // The new user signs in; admin-set app_metadata is in the token.
    let (status, session) = json_of(app.sign_in("carol@example.com", PASSWORD_A).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        claims_of(field(&session, "access_token"))["app_metadata"]["plan"],
        "pro"
    );

    // Get.
    let (status, got) = json_of(app.admin(Method::GET, Some(&id), None, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(got["id"], id.as_str());

    // Update: metadata merged, role, ban.
    let (status, updated) = json_of(
        app.admin(
            Method::PUT,
            Some(&id),
            None,
            Some(&json!({"app_metadata": {"plan": null, "tier": 2}, "user_metadata": {"name": "C."}})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        updated["app_metadata"],
        json!({"provider": "email", "providers": ["email"], "tier": 2})
    );
    assert_eq!(updated["user_metadata"]["name"], "C.");

    // Delete: the user and everything of theirs goes.
    let (status, body) = json_of(app.admin(Method::DELETE, Some(&id), None, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({}));
    let uuid = Uuid::parse_str(&id).unwrap();
    let db = app.db.admin().await;
    for table in [
        "auth.users where id",
        "auth.sessions where user_id",
        "auth.identities where user_id",
    ] {
        let n: i64 = db
            .query_one(&format!("select count(*) from {table} = $1"), &[&uuid])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    let (status, body) = json_of(app.admin(Method::GET, Some(&id), None, None).await).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"code": 404, "error_code": "user_not_found", "msg": "User not found"})
    );
    let (status, body) = json_of(app.get_user(Some(field(&session, "access_token"))).await).await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (403, Some("user_not_found"))
    );
}

#[tokio::test]
async fn listing_pages_through_users_newest_first() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;
    app.signed_up("carol@example.com", PASSWORD_A).await;

    let response = app
        .service(Method::GET, "/auth/v1/admin/users?page=1&per_page=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "3");
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("page=2&per_page=2>; rel=\"next\""), "{link}");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["aud"], "authenticated");
    let emails: Vec<&str> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["carol@example.com", "bob@example.com"]);

    let (_, page2) = json_of(
        app.service(Method::GET, "/auth/v1/admin/users?page=2&per_page=2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page2["users"][0]["id"], a["user"]["id"]);

    let (_, filtered) = json_of(
        app.service(Method::GET, "/auth/v1/admin/users?filter=bob")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let users = filtered["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["id"], b["user"]["id"]);
}

#[tokio::test]
async fn only_the_service_role_is_admin() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;
    let a_id = a["user"]["id"].as_str().unwrap().to_owned();
    let b_id = b["user"]["id"].as_str().unwrap().to_owned();
    let now = chrono::Utc::now().timestamp();
    // Even a correctly signed token of an authenticated user is no admin.
    let claims_admin_group = app.sign(&json!({
        "sub": a_id, "aud": "authenticated", "role": "authenticated",
        "app_metadata": {"role": "admin"}, "exp": now + 60
    }));
    let not_admins = [
        app.anon_key(),
        field(&a, "access_token").to_owned(),
        field(&b, "access_token").to_owned(),
        claims_admin_group,
    ];

    for token in &not_admins {
        for (method, id, body) in [
            (Method::GET, None, None),
            (
                Method::POST,
                None,
                Some(json!({"email": "x@example.com", "password": PASSWORD_A})),
            ),
            (Method::GET, Some(a_id.as_str()), None),
            (
                Method::PUT,
                Some(a_id.as_str()),
                Some(json!({"user_metadata": {"pwned": true}})),
            ),
            (
                Method::PUT,
                Some(b_id.as_str()),
                Some(json!({"password": "taken over!"})),
            ),
            (Method::DELETE, Some(b_id.as_str()), None),
        ] {
            let (status, answer) = json_of(
                app.admin(method.clone(), id, Some(token), body.as_ref())
                    .await,
            )
            .await;
            assert_eq!(status, 403, "{method} {id:?}: {answer}");
            assert_eq!(
                answer,
                json!({"code": 403, "error_code": "not_admin", "msg": "User not allowed"})
            );
        }
    }

    let response = app
        .http
        .get(format!("{}/auth/v1/admin/users", app.api_base()))
        .header("apikey", app.service_key())
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 401, "the apikey header alone is not a bearer");
    assert_eq!(
        body,
        json!({"code": 401, "error_code": "no_authorization",
               "msg": "This endpoint requires a valid Bearer token"})
    );

    // Nothing changed for either user.
    let db = app.db.admin().await;
    for (id, email) in [
        (user_id(&a), "alice@example.com"),
        (user_id(&b), "bob@example.com"),
    ] {
        let row = db
            .query_one(
                "select email, raw_user_meta_data from auth.users where id = $1",
                &[&id],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), email);
        assert_eq!(row.get::<_, Value>(1), json!({"email_verified": true}));
    }
    let (status, _) = json_of(
        app.sign_in("bob@example.com", super::support::PASSWORD_B)
            .await,
    )
    .await;
    assert_eq!(status, 200, "B's password was not changed");
    let users: i64 = db
        .query_one("select count(*) from auth.users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 2, "no user was created");
}

#[tokio::test]
async fn admin_requests_are_validated() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;

    let (status, body) =
        json_of(app.admin(Method::GET, Some("not-a-uuid"), None, None).await).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"code": 404, "error_code": "validation_failed", "msg": "user_id must be an UUID"})
    );

    let (status, body) = json_of(
        app.admin(
            Method::POST,
            None,
            None,
            Some(&json!({"email": "alice@example.com"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["error_code"], "email_exists");

    let (status, body) = json_of(app.admin(Method::POST, None, None, Some(&json!({}))).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["msg"],
        "Cannot create a user without either an email or phone"
    );

    let (status, body) = json_of(
        app.admin(
            Method::POST,
            None,
            None,
            Some(&json!({"email": "d@example.com", "ban_duration": "forever"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn an_admin_password_reset_signs_the_user_out_everywhere() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;
    let id = a["user"]["id"].as_str().unwrap();

    let (status, _) = json_of(
        app.admin(
            Method::PUT,
            Some(id),
            None,
            Some(&json!({"password": "reset by admin"})),
        )
        .await,
    )
    .await;

    assert_eq!(status, 200);
    assert_eq!(
        app.get_user(Some(field(&a, "access_token"))).await.status(),
        403
    );
    assert_eq!(
        app.get_user(Some(field(&b, "access_token"))).await.status(),
        200
    );
    let (status, _) = json_of(app.sign_in("alice@example.com", "reset by admin").await).await;
    assert_eq!(status, 200);
}
