//! `POST /signup`.

use serde_json::{Value, json};
use uuid::Uuid;

use super::support::{PASSWORD_A, claims_of, count, field, two_users, user_id};
use quire_testkit::{json_of, spawn_sandbox, spawn_sandbox_with};

/// Alice signs up (a mixed-case address, a display name): the session.
async fn alice_signs_up(app: &quire_testkit::Stack) -> Value {
    let (status, session) = json_of(
        app.signup_with(&json!({
            "email": "Alice@Example.com",
            "password": PASSWORD_A,
            "data": {"display_name": "Alice"}
        }))
        .await,
    )
    .await;

    assert_eq!(status, 200, "{session}");
    session
}

#[tokio::test]
async fn signup_answers_with_a_session_in_gotrues_shape() {
    let app = spawn_sandbox().await;
    let session = alice_signs_up(&app).await;

    let keys: Vec<&str> = session
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
        "refresh_token",
        "user",
    ] {
        assert!(keys.contains(&key), "{key} missing from {session}");
    }
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], 3600);
    let expires_at = session["expires_at"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        (now + 3590..=now + 3610).contains(&expires_at),
        "{expires_at}"
    );

    let user = &session["user"];
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["role"], "authenticated");
    assert_eq!(
        user["email"], "alice@example.com",
        "addresses are lower-cased"
    );
    assert_eq!(user["phone"], "");
    assert!(user["email_confirmed_at"].is_string(), "autoconfirm");
    assert!(user["confirmed_at"].is_string());
    assert!(user["last_sign_in_at"].is_string());
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "email", "providers": ["email"]})
    );
    assert_eq!(
        user["user_metadata"],
        json!({"display_name": "Alice", "email_verified": true})
    );
    assert_eq!(user["is_anonymous"], false);
    let identities = user["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0]["provider"], "email");
    assert_eq!(identities[0]["id"], user["id"]);
    assert_eq!(identities[0]["identity_data"]["email"], "alice@example.com");
}

#[tokio::test]
async fn the_signup_access_token_carries_exactly_gotrues_claims() {
    let app = spawn_sandbox().await;
    let session = alice_signs_up(&app).await;
    let user = &session["user"];
    let expires_at = session["expires_at"].as_i64().unwrap();

    // The access token carries exactly GoTrue's claims.
    let claims = claims_of(field(&session, "access_token"));
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "aal",
            "amr",
            "app_metadata",
            "aud",
            "email",
            "exp",
            "iat",
            "is_anonymous",
            "iss",
            "phone",
            "role",
            "session_id",
            "sub",
            "user_metadata"
        ]
    );
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["aud"], "authenticated", "a string, not an array");
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["iss"], format!("{}/auth/v1", app.api_base()));
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["phone"], "");
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(claims["amr"][0]["method"], "password");
    assert!(claims["amr"][0]["timestamp"].is_i64());
    assert_eq!(claims["exp"].as_i64().unwrap(), expires_at);
    assert_eq!(claims["app_metadata"], user["app_metadata"]);
    assert_eq!(claims["user_metadata"], user["user_metadata"]);
    assert_eq!(claims["is_anonymous"], false);
}

#[tokio::test]
async fn signup_stores_a_hashed_password_a_session_and_its_refresh_token() {
    let app = spawn_sandbox().await;
    let session = alice_signs_up(&app).await;
    let claims = claims_of(field(&session, "access_token"));

    // The rows behind it.
    let id = user_id(&session);
    let db = app.db.admin().await;
    let row = db
        .query_one(
            "select email, encrypted_password, email_confirmed_at is not null, aud, role \
             from auth.users where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice@example.com");
    let hash: String = row.get(1);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD_A));
    assert!(row.get::<_, bool>(2));
    assert_eq!(row.get::<_, String>(3), "authenticated");
    assert_eq!(row.get::<_, String>(4), "authenticated");
    let session_id = Uuid::parse_str(claims["session_id"].as_str().unwrap()).unwrap();
    let owner: Uuid = db
        .query_one(
            "select user_id from auth.sessions where id = $1",
            &[&session_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, id);
    let token_row = db
        .query_one(
            "select session_id, revoked from auth.refresh_tokens where token = $1",
            &[&field(&session, "refresh_token")],
        )
        .await
        .unwrap();
    assert_eq!(token_row.get::<_, Uuid>(0), session_id);
    assert!(!token_row.get::<_, bool>(1));
    assert_eq!(
        count(
            &app,
            "select count(*) from auth.identities where user_id = $1",
            id
        )
        .await,
        1
    );
}

#[tokio::test]
async fn two_users_get_their_own_accounts_and_sessions() {
    let app = spawn_sandbox().await;
    let (a, b) = two_users(&app).await;

    assert_ne!(user_id(&a), user_id(&b));
    for (session, email) in [(&a, "alice@example.com"), (&b, "bob@example.com")] {
        let (status, user) =
            json_of(app.get_user(Some(field(session, "access_token"))).await).await;
        assert_eq!(status, 200);
        assert_eq!(user["email"], email);
        assert_eq!(user["id"], session["user"]["id"]);
    }
    assert_ne!(
        claims_of(field(&a, "access_token"))["session_id"],
        claims_of(field(&b, "access_token"))["session_id"]
    );
}

#[tokio::test]
async fn an_address_can_only_be_taken_once() {
    let app = spawn_sandbox().await;
    app.signed_up("alice@example.com", PASSWORD_A).await;

    let response = app
        .signup("ALICE@example.com", "something else entirely")
        .await;

    assert_eq!(response.headers()["x-sb-error-code"], "user_already_exists");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"code": 422, "error_code": "user_already_exists", "msg": "User already registered"})
    );
    let users: i64 = app.count("select count(*) from auth.users", &[]).await;
    assert_eq!(users, 1);
}

#[tokio::test]
async fn weak_passwords_are_refused_with_reasons() {
    let app = spawn_sandbox().await;

    let (status, body) = json_of(app.signup("alice@example.com", "12345").await).await;

    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({
            "code": 422,
            "error_code": "weak_password",
            "msg": "Password should be at least 6 characters.",
            "weak_password": {"reasons": ["length"]}
        })
    );
    let users: i64 = app.count("select count(*) from auth.users", &[]).await;
    assert_eq!(users, 0, "nothing is written");
}

#[tokio::test]
async fn malformed_signups_are_refused() {
    let app = spawn_sandbox().await;
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"email": "alice@example.com"}),
            400,
            "validation_failed",
            "Signup requires a valid password",
        ),
        (
            json!({"email": "not-an-address", "password": PASSWORD_A}),
            400,
            "validation_failed",
            "Unable to validate email address: invalid format",
        ),
        (
            json!({"password": PASSWORD_A}),
            422,
            "anonymous_provider_disabled",
            "Anonymous sign-ins are disabled",
        ),
        (
            json!({"email": "a@example.com", "phone": "+15555550100", "password": PASSWORD_A}),
            400,
            "validation_failed",
            "Only an email address or phone number should be provided on signup.",
        ),
        (
            json!({"email": 7, "password": PASSWORD_A}),
            400,
            "bad_json",
            "",
        ),
    ];
    for (body, status, code, message) in cases {
        let (got_status, got) = json_of(app.signup_with(&body).await).await;
        assert_eq!(got_status, status, "{body} → {got}");
        assert_eq!(got["error_code"], code, "{body} → {got}");
        if !message.is_empty() {
            assert_eq!(got["msg"], message, "{body}");
        }
    }
    let raw = app
        .request(reqwest::Method::POST, "/auth/v1/signup", None)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(raw).await;
    assert_eq!(status, 400);
    assert_eq!(body["error_code"], "bad_json");
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .starts_with("Could not parse request body as JSON: ")
    );
}

#[tokio::test]
async fn signups_can_be_disabled() {
    let app = spawn_sandbox_with(|config| config.disable_signup = true).await;

    let (status, body) = json_of(app.signup("alice@example.com", PASSWORD_A).await).await;

    assert_eq!(status, 422);
    assert_eq!(body["error_code"], "signup_disabled");
    assert_eq!(body["msg"], "Signups not allowed for this instance");
}
