//! `POST /token?grant_type=password` and unsupported grants.

use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use super::support::{PASSWORD_A, PASSWORD_B, claims_of, field, two_users, user_id};
use quire_testkit::{json_of, spawn_sandbox, spawn_sandbox_with};

#[tokio::test]
async fn the_right_password_opens_a_new_session() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;

    let (status, session) = json_of(app.sign_in("Alice@example.com", PASSWORD_A).await).await;

    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["id"], a["user"]["id"]);
    assert!(session.get("weak_password").is_none());
    let first = claims_of(field(&a, "access_token"));
    let second = claims_of(field(&session, "access_token"));
    assert_ne!(first["session_id"], second["session_id"], "a new session");
    assert_eq!(second["amr"][0]["method"], "password");

    let sessions: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from auth.sessions where user_id = $1",
            &[&user_id(&a)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 2);
}

#[tokio::test]
async fn wrong_credentials_all_look_the_same() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;

    for (email, password) in [
        ("alice@example.com", "wrong password"),
        ("alice@example.com", PASSWORD_B),
        ("bob@example.com", PASSWORD_A),
        ("nobody@example.com", PASSWORD_A),
    ] {
        let response = app.sign_in(email, password).await;
        assert_eq!(response.headers()["x-sb-error-code"], "invalid_credentials");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 400, "{email}");
        assert_eq!(
            body,
            json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}),
            "{email}"
        );
    }
    // B's password never opened a session for anyone.
    let sessions: i64 = app.count("select count(*) from auth.sessions", &[]).await;
    assert_eq!(sessions, 2, "only the two sign-up sessions");
}

/// An address with no account costs a sign-in the same Argon2 work as a
/// wrong password, and gets the same bytes back: neither the answer nor its
/// time tells whether the address has an account (stricter than GoTrue,
/// which answers an unknown address before hashing: docs/platform-contract.md
/// §1). Not a race against a clock: Argon2 dominates a failed sign-in, so
/// without the dummy verification an unknown address answers in a small
/// fraction of a wrong password's time; attempts alternate, so a busy
/// machine slows both alike.
#[tokio::test]
async fn an_unknown_address_costs_a_sign_in_the_same_hash_work_as_a_wrong_password() {
    // Costlier hashes than the tests' default, so that Argon2 is most of an answer's time.
    let app = spawn_sandbox_with(|c| c.password_hash_memory_kib = 4096).await;
    let (_a, _b) = two_users(&app).await;

    const ROUNDS: usize = 15;
    let mut known: Vec<Duration> = Vec::new();
    let mut unknown: Vec<Duration> = Vec::new();
    let mut answers = Vec::new();
    // One warm-up round of each, then the measured ones, alternating which goes first.
    for round in 0..=ROUNDS {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_known in order {
            let email = if is_known {
                "alice@example.com"
            } else {
                "nobody@example.com"
            };
            let started = Instant::now();
            let response = app.sign_in(email, "wrong password").await;
            let status = response.status();
            let code = response.headers()["x-sb-error-code"].clone();
            let body = response.bytes().await.unwrap();
            let took = started.elapsed();
            answers.push((status, code, body));
            if round > 0 {
                if is_known { &mut known } else { &mut unknown }.push(took);
            }
        }
    }
    let (status, code, body) = &answers[0];
    assert_eq!(*status, 400);
    assert_eq!(code, "invalid_credentials");
    assert_eq!(
        &body[..],
        br#"{"code":400,"error_code":"invalid_credentials","msg":"Invalid login credentials"}"#
    );
    assert!(
        answers.iter().all(|answer| answer == &answers[0]),
        "every answer is byte for byte the same: {answers:?}"
    );

    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    assert!(
        unknown * 2 >= known,
        "an unknown address answers in {unknown:?}, a wrong password in {known:?} (medians of \
         {ROUNDS}): the unknown address skips the password hash"
    );
}

#[tokio::test]
async fn unconfirmed_and_banned_users_cannot_sign_in() {
    let app = spawn_sandbox().await;
    let (status, _) = json_of(
        app.admin(
            reqwest::Method::POST,
            None,
            None,
            Some(&json!({"email": "unconfirmed@example.com", "password": PASSWORD_A})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = json_of(app.sign_in("unconfirmed@example.com", PASSWORD_A).await).await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (400, Some("email_not_confirmed"))
    );

    let (_, banned) = json_of(
        app.admin(
            reqwest::Method::POST,
            None,
            None,
            Some(
                &json!({"email": "banned@example.com", "password": PASSWORD_A,
                         "email_confirm": true, "ban_duration": "24h"}),
            ),
        )
        .await,
    )
    .await;
    assert!(banned["banned_until"].is_string(), "{banned}");
    let (status, body) = json_of(app.sign_in("banned@example.com", PASSWORD_A).await).await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (400, Some("user_banned"))
    );
}

#[tokio::test]
async fn grants_and_bodies_are_checked() {
    let app = spawn_sandbox().await;

    let (status, body) = json_of(app.token("client_credentials", &json!({})).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "invalid_credentials", "msg": "unsupported_grant_type"})
    );

    let (status, body) = json_of(app.token("password", &json!({"password": "x"})).await).await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (400, Some("validation_failed"))
    );

    let (status, body) = json_of(
        app.token(
            "password",
            &json!({"email": "a@example.com", "phone": "+15555550100", "password": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (400, Some("validation_failed"))
    );

    let missing = app
        .request(reqwest::Method::POST, "/auth/v1/token", None)
        .json(&json!({"email": "a@example.com", "password": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(missing).await;
    assert_eq!(
        (status.as_u16(), body["msg"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn signing_in_records_the_time_and_the_client() {
    let app = spawn_sandbox().await;
    let (a, _) = two_users(&app).await;
    let before: chrono::DateTime<chrono::Utc> = app
        .db
        .admin()
        .await
        .query_one(
            "select last_sign_in_at from auth.users where id = $1",
            &[&user_id(&a)],
        )
        .await
        .unwrap()
        .get(0);

    let session = app
        .request(
            reqwest::Method::POST,
            "/auth/v1/token?grant_type=password",
            None,
        )
        .header("user-agent", "quire-tests/1.0")
        .json(&json!({"email": "alice@example.com", "password": PASSWORD_A}))
        .send()
        .await
        .unwrap();
    let (_, session) = json_of(session).await;

    let db = app.db.admin().await;
    let after: chrono::DateTime<chrono::Utc> = db
        .query_one(
            "select last_sign_in_at from auth.users where id = $1",
            &[&user_id(&a)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(after > before);
    let session_id = Uuid::parse_str(
        claims_of(field(&session, "access_token"))["session_id"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let row = db
        .query_one(
            "select user_agent, host(ip) from auth.sessions where id = $1",
            &[&session_id],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("quire-tests/1.0")
    );
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("127.0.0.1")
    );
}
