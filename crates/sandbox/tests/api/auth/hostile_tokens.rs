//! Malformed, expired, wrong-audience, wrong-secret, `alg: none`,
//! algorithm-swapped and tampered tokens on `/user` and `/admin/users`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use super::support::{b64_json, claims_of, field, two_users, user_id};
use quire_testkit::{Stack, json_of, spawn_sandbox};

/// `token` with its payload replaced and its signature kept.
fn tampered(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = claims_of(token);
    change(&mut claims);
    format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2])
}

fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64_json(&json!({"alg": "none", "typ": "JWT"})),
        b64_json(claims)
    )
}

fn signed_with(secret: &[u8], algorithm: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn on_user(app: &Stack, token: &str) -> (u16, Value) {
    let (status, body) = json_of(app.get_user(Some(token)).await).await;
    (status.as_u16(), body)
}

async fn on_admin(app: &Stack, token: &str) -> (u16, Value) {
    let (status, body) = json_of(app.admin(Method::GET, None, Some(token), None).await).await;
    (status.as_u16(), body)
}

fn assert_bad_jwt((status, body): (u16, Value), reason: &str, what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    assert_eq!(body["code"], 403, "{what}");
    assert_eq!(body["error_code"], "bad_jwt", "{what}: {body}");
    let message = body["msg"].as_str().unwrap();
    assert!(
        message.starts_with("invalid JWT: unable to parse or verify signature, "),
        "{what}: {message}"
    );
    assert!(
        message.contains(reason),
        "{what}: {message} lacks {reason:?}"
    );
}

#[tokio::test]
async fn forged_and_broken_tokens_are_refused_everywhere() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;
    let a_token = field(&a, "access_token");
    let now = chrono::Utc::now().timestamp();
    let service_claims = json!({"role": "service_role", "iss": "supabase-demo", "exp": now + 600});
    let a_claims = claims_of(a_token);

    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "not-a-jwt".into(), "token is malformed"),
        ("two segments", "abc.def".into(), "token is malformed"),
        ("bad base64", "!!!.???.***".into(), "token is malformed"),
        (
            "expired",
            app.sign(&{
                let mut c = a_claims.clone();
                c["exp"] = json!(now - 5);
                c
            }),
            "token is expired",
        ),
        (
            "wrong secret, user claims",
            signed_with(
                b"some-other-secret-of-enough-length!!",
                Algorithm::HS256,
                &a_claims,
            ),
            "signature is invalid",
        ),
        (
            "wrong secret, service role",
            signed_with(
                b"some-other-secret-of-enough-length!!",
                Algorithm::HS256,
                &service_claims,
            ),
            "signature is invalid",
        ),
        (
            "alg none, service role",
            unsigned(&service_claims),
            "signing method none is invalid",
        ),
        (
            "alg none, user claims",
            unsigned(&a_claims),
            "signing method none is invalid",
        ),
        (
            "HS512 with the real secret",
            signed_with(
                app.jwt_secret().as_bytes(),
                Algorithm::HS512,
                &service_claims,
            ),
            "signing method HS512 is invalid",
        ),
        (
            "role tampered to service_role",
            tampered(a_token, |c| c["role"] = json!("service_role")),
            "signature is invalid",
        ),
        (
            "sub tampered to B",
            tampered(a_token, |c| c["sub"] = b["user"]["id"].clone()),
            "signature is invalid",
        ),
        (
            "exp extended",
            tampered(a_token, |c| c["exp"] = json!(now + 86_400 * 365)),
            "signature is invalid",
        ),
    ];

    for (what, token, reason) in &cases {
        assert_bad_jwt(
            on_user(&app, token).await,
            reason,
            &format!("/user, {what}"),
        );
        assert_bad_jwt(
            on_admin(&app, token).await,
            reason,
            &format!("/admin/users, {what}"),
        );
    }

    // None of it changed anything, and B's data was never shown.
    let users: i64 = app.count("select count(*) from auth.users", &[]).await;
    assert_eq!(users, 2);
}

#[tokio::test]
async fn wrong_audience_tokens() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let mut claims = claims_of(field(&a, "access_token"));
    claims["aud"] = json!("some-other-api");
    let token = app.sign(&claims);

    let (status, body) = on_user(&app, &token).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "validation_failed",
               "msg": "Token audience doesn't match request audience"})
    );
    let (status, body) = on_admin(&app, &token).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("not_admin"))
    );

    claims.as_object_mut().unwrap().remove("aud");
    let (status, _) = on_user(&app, &app.sign(&claims)).await;
    assert_eq!(
        status, 400,
        "a token without an audience is no user token either"
    );
}

#[tokio::test]
async fn tokens_naming_no_user_or_no_session() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let now = chrono::Utc::now().timestamp();
    let base = claims_of(field(&a, "access_token"));

    let mut no_sub = base.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    let (status, body) = on_user(&app, &app.sign(&no_sub)).await;
    assert_eq!(
        (status, body["msg"].as_str()),
        (403, Some("invalid claim: missing sub claim"))
    );

    let mut bad_sub = base.clone();
    bad_sub["sub"] = json!("service");
    let (status, body) = on_user(&app, &app.sign(&bad_sub)).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("bad_jwt"))
    );
    assert_eq!(body["msg"], "invalid claim: sub claim must be a UUID");

    let mut ghost = base.clone();
    ghost["sub"] = json!(uuid::Uuid::new_v4());
    let (status, body) = on_user(&app, &app.sign(&ghost)).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("user_not_found"))
    );

    let mut other_session = base.clone();
    other_session["session_id"] = json!(uuid::Uuid::new_v4());
    let (status, body) = on_user(&app, &app.sign(&other_session)).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("session_not_found"))
    );

    // A session-less token of A's (as a backend might mint) reads A only.
    let mut sessionless = base.clone();
    sessionless.as_object_mut().unwrap().remove("session_id");
    sessionless["exp"] = json!(now + 60);
    let (status, body) = on_user(&app, &app.sign(&sessionless)).await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], json!(user_id(&a)));
}

#[tokio::test]
async fn missing_or_odd_authorization_headers() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let token = field(&a, "access_token");

    for header in [
        None,
        Some(format!("Basic {token}")),
        Some(format!("Bearer  {token}")),
        Some("Bearer".to_owned()),
        Some(token.to_owned()),
    ] {
        let mut request = app
            .http
            .get(format!("{}/auth/v1/user", app.api_base()))
            .header("apikey", app.anon_key());
        if let Some(value) = &header {
            request = request.header("authorization", value);
        }
        let (status, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, 401, "{header:?}");
        assert_eq!(
            body,
            json!({"code": 401, "error_code": "no_authorization",
                   "msg": "This endpoint requires a valid Bearer token"}),
            "{header:?}"
        );
    }
    let response = app
        .http
        .get(format!("{}/auth/v1/user", app.api_base()))
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the scheme is case-insensitive");
}
