//! `GET /authorize`, its sign-in page, and `grant_type=pkce`, driven over
//! HTTP the way a browser and a desktop app drive them.

use std::collections::HashMap;

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use serde_json::json;
use url::Url;
use uuid::Uuid;

use super::support::{PASSWORD_A, PASSWORD_B, claims_of, field, form_state, pkce_pair, two_users};
use quire_testkit::{Stack, json_of, spawn_sandbox};

const CALLBACK: &str = "http://127.0.0.1:53123/callback";

/// What the browser ends up with after signing in on the page.
struct Redirect {
    url: Url,
    query: HashMap<String, String>,
}

async fn open_page(app: &Stack, challenge: &str, redirect_to: &str) -> String {
    let response = app
        .authorize(&[
            ("provider", "github"),
            ("redirect_to", redirect_to),
            ("code_challenge", challenge),
            ("code_challenge_method", "s256"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Opens the page, submits the form, and follows nothing: returns where the
/// sandbox sends the browser.
async fn sign_in_through_page(
    app: &Stack,
    challenge: &str,
    redirect_to: &str,
    email: &str,
    password: &str,
) -> Redirect {
    let page = open_page(app, challenge, redirect_to).await;
    let state = form_state(&page);
    let response = app
        .submit_sign_in(&[
            ("state", &state),
            ("email", email),
            ("password", password),
            ("action", "sign_in"),
        ])
        .await;
    assert_eq!(
        response.status(),
        302,
        "{}",
        response.text().await.unwrap_or_default()
    );
    let url = Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
    let query = url.query_pairs().into_owned().collect();
    Redirect { url, query }
}

#[tokio::test]
async fn the_full_pkce_flow_as_a_browser_and_an_app_drive_it() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let (verifier, challenge) = pkce_pair();

    // The browser opens the sign-in page.
    let response = app
        .authorize(&[
            ("provider", "github"),
            ("redirect_to", CALLBACK),
            ("code_challenge", &challenge),
            ("code_challenge_method", "s256"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = response.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "no script is allowed: {csp}");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:53123"),
        "{csp}"
    );
    let page = response.text().await.unwrap();
    assert!(!page.contains("<script"), "the page has no script");
    assert!(page.contains("type=\"password\""));
    assert!(page.contains("GitHub"));

    // The flow state waits for a user.
    let db = app.db.admin().await;
    let row = db
        .query_one(
            "select user_id, code_challenge, code_challenge_method, provider_type, redirect_to \
             from auth.flow_state",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<Uuid>>(0), None);
    assert_eq!(row.get::<_, String>(1), challenge);
    assert_eq!(row.get::<_, String>(2), "s256");
    assert_eq!(row.get::<_, String>(3), "github");
    assert_eq!(row.get::<_, Option<String>>(4).as_deref(), Some(CALLBACK));

    // The person signs in; the browser is sent to the loopback callback.
    let state = form_state(&page);
    let response = app
        .submit_sign_in(&[
            ("state", &state),
            ("email", "alice@example.com"),
            ("password", PASSWORD_A),
            ("action", "sign_in"),
        ])
        .await;
    assert_eq!(response.status(), 302);
    let location = Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(&location.as_str()[..CALLBACK.len()], CALLBACK, "{location}");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    assert!(Uuid::parse_str(&code).is_ok(), "the code is a uuid: {code}");
    let bound: Option<Uuid> = db
        .query_one(
            "select user_id from auth.flow_state where auth_code = $1",
            &[&code],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bound, Some(super::support::user_id(&a)));

    // The app exchanges the code with its verifier.
    let (status, session) = json_of(app.exchange_code(&code, &verifier).await).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["id"], a["user"]["id"]);
    let claims = claims_of(field(&session, "access_token"));
    assert_eq!(claims["amr"][0]["method"], "oauth");
    let (status, user) = json_of(app.get_user(Some(field(&session, "access_token"))).await).await;
    assert_eq!(status, 200);
    assert_eq!(user["email"], "alice@example.com");

    // The code is single use and its flow state is gone.
    let flows: i64 = db
        .query_one("select count(*) from auth.flow_state", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(flows, 0);
    let (status, body) = json_of(app.exchange_code(&code, &verifier).await).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"code": 404, "error_code": "flow_state_not_found",
               "msg": "invalid flow state, no valid flow state found"})
    );
}

#[tokio::test]
async fn a_wrong_verifier_is_refused_and_the_code_survives() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;
    let (verifier, challenge) = pkce_pair();
    let (other_verifier, _) = pkce_pair();
    let redirect =
        sign_in_through_page(&app, &challenge, CALLBACK, "alice@example.com", PASSWORD_A).await;
    let code = &redirect.query["code"];

    let (status, body) = json_of(app.exchange_code(code, &other_verifier).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "bad_code_verifier",
               "msg": "code challenge does not match previously saved code verifier"})
    );

    let (status, _) = json_of(app.exchange_code(code, &verifier).await).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn codes_expire() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;
    let (verifier, challenge) = pkce_pair();
    let redirect =
        sign_in_through_page(&app, &challenge, CALLBACK, "alice@example.com", PASSWORD_A).await;
    let code = &redirect.query["code"];
    app.db
        .admin()
        .await
        .execute(
            "update auth.flow_state set created_at = now() - interval '301 seconds' where auth_code = $1",
            &[code],
        )
        .await
        .unwrap();

    let (status, body) = json_of(app.exchange_code(code, &verifier).await).await;

    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"code": 422, "error_code": "flow_state_expired",
               "msg": "invalid flow state, flow state has expired"})
    );
}

#[tokio::test]
async fn unknown_codes_and_empty_fields() {
    let app = spawn_sandbox().await;
    let (verifier, _) = pkce_pair();

    let (status, body) = json_of(
        app.exchange_code(&Uuid::new_v4().to_string(), &verifier)
            .await,
    )
    .await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (404, Some("flow_state_not_found"))
    );

    let (status, body) = json_of(app.exchange_code("", &verifier).await).await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (400, Some("validation_failed"))
    );
}

#[tokio::test]
async fn b_cannot_use_a_code_issued_to_a() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;
    let (_verifier_a, challenge_a) = pkce_pair();
    let (verifier_b, challenge_b) = pkce_pair();
    let for_a = sign_in_through_page(
        &app,
        &challenge_a,
        CALLBACK,
        "alice@example.com",
        PASSWORD_A,
    )
    .await;
    let for_b =
        sign_in_through_page(&app, &challenge_b, CALLBACK, "bob@example.com", PASSWORD_B).await;

    // B has A's code (a leaked redirect) but only B's own verifier.
    let (status, body) = json_of(app.exchange_code(&for_a.query["code"], &verifier_b).await).await;
    assert_eq!(
        (status.as_u16(), body["error_code"].as_str()),
        (400, Some("bad_code_verifier"))
    );

    let (status, session) =
        json_of(app.exchange_code(&for_b.query["code"], &verifier_b).await).await;
    assert_eq!(status, 200);
    assert_eq!(session["user"]["email"], "bob@example.com");
}

#[tokio::test]
async fn wrong_credentials_keep_the_page_and_send_nothing() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;
    let (_verifier, challenge) = pkce_pair();
    let page = open_page(&app, &challenge, CALLBACK).await;
    let state = form_state(&page);

    let response = app
        .submit_sign_in(&[
            ("state", &state),
            ("email", "alice@example.com"),
            ("password", PASSWORD_B),
            ("action", "sign_in"),
        ])
        .await;

    assert_eq!(response.status(), 400);
    assert!(response.headers().get(LOCATION).is_none());
    let html = response.text().await.unwrap();
    assert!(html.contains("Invalid login credentials"));
    assert!(
        html.contains("value=\"alice@example.com\""),
        "the address is kept"
    );
    let bound: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from auth.flow_state where user_id is not null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bound, 0);
}

#[tokio::test]
async fn cancelling_sends_an_error_back_to_the_app() {
    let app = spawn_sandbox().await;
    let (_verifier, challenge) = pkce_pair();
    let page = open_page(&app, &challenge, CALLBACK).await;

    let response = app
        .submit_sign_in(&[("state", &form_state(&page)), ("action", "cancel")])
        .await;

    assert_eq!(response.status(), 302);
    let location = Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/callback");
    let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query["error"], "access_denied");
    assert!(query.contains_key("error_description"));
    let fragment = location.fragment().unwrap();
    assert!(fragment.contains("error=access_denied"), "{fragment}");
    assert!(fragment.contains("sb="), "{fragment}");
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn redirect_targets_follow_gotrues_rule() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;
    let (_verifier, challenge) = pkce_pair();

    // Any loopback IP literal and port is fine.
    let redirect = sign_in_through_page(
        &app,
        &challenge,
        "http://[::1]:61000/cb?keep=1",
        "alice@example.com",
        PASSWORD_A,
    )
    .await;
    assert_eq!(redirect.url.host_str(), Some("[::1]"));
    assert_eq!(redirect.url.port(), Some(61000));
    assert_eq!(redirect.query["keep"], "1", "existing parameters survive");
    assert!(redirect.query.contains_key("code"));

    // Anything else falls back to the site URL.
    for elsewhere in [
        "https://evil.example.com/steal",
        "http://localhost:61000/cb",
        "http://2130706433/cb",
        "http://127.0.0.1@evil.example.com/cb",
    ] {
        let redirect =
            sign_in_through_page(&app, &challenge, elsewhere, "alice@example.com", PASSWORD_A)
                .await;
        assert_eq!(
            redirect.url.origin().ascii_serialization(),
            "http://127.0.0.1:3000",
            "{elsewhere} → {}",
            redirect.url
        );
    }
}

#[tokio::test]
async fn bad_authorize_requests_are_refused_before_the_page() {
    let app = spawn_sandbox().await;
    let (_verifier, challenge) = pkce_pair();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("provider", "myspace"), ("redirect_to", CALLBACK)],
            "Unsupported provider: provider myspace could not be found",
        ),
        (
            vec![("provider", "github"), ("code_challenge", &challenge)],
            "PKCE flow requires code_challenge_method and code_challenge",
        ),
        (
            vec![
                ("provider", "github"),
                ("code_challenge", "too-short"),
                ("code_challenge_method", "s256"),
            ],
            "code challenge has to be between 43 and 128 characters",
        ),
    ];
    for (query, message) in cases {
        let (status, body) = json_of(app.authorize(&query).await).await;
        assert_eq!(status, 400, "{query:?}");
        assert_eq!(
            body,
            json!({"code": 400, "error_code": "validation_failed", "msg": message})
        );
    }
    let flows: i64 = app.count("select count(*) from auth.flow_state", &[]).await;
    assert_eq!(flows, 0);
}

#[tokio::test]
async fn a_forged_or_stale_form_state_goes_nowhere() {
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;
    let now = chrono::Utc::now().timestamp();
    // Signed with the project secret itself: still not a valid page state.
    let forged = app.sign(&json!({
        "exp": now + 300,
        "redirect_to": "https://evil.example.com/",
        "provider": "github",
    }));

    for state in [forged.as_str(), "", "garbage"] {
        let response = app
            .submit_sign_in(&[
                ("state", state),
                ("email", "alice@example.com"),
                ("password", PASSWORD_A),
                ("action", "sign_in"),
            ])
            .await;
        assert_eq!(response.status(), 400);
        assert!(response.headers().get(LOCATION).is_none());
    }
}

#[tokio::test]
async fn without_pkce_the_implicit_flow_puts_tokens_in_the_fragment() {
    let app = spawn_sandbox().await;
    let (a, _b) = two_users(&app).await;
    let page = app
        .authorize(&[("provider", "google"), ("redirect_to", CALLBACK)])
        .await
        .text()
        .await
        .unwrap();

    let response = app
        .submit_sign_in(&[
            ("state", &form_state(&page)),
            ("email", "alice@example.com"),
            ("password", PASSWORD_A),
        ])
        .await;

    assert_eq!(response.status(), 302);
    let location = Url::parse(response.headers()[LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(location.query(), None, "no tokens in the query");
    let fragment: HashMap<String, String> =
        url::form_urlencoded::parse(location.fragment().unwrap().as_bytes())
            .into_owned()
            .collect();
    assert_eq!(fragment["token_type"], "bearer");
    assert_eq!(claims_of(&fragment["access_token"])["sub"], a["user"]["id"]);
    assert!(!fragment["refresh_token"].is_empty());
}

#[tokio::test]
async fn the_provider_page_refuses_oauth_parameters_that_override_gotrues_own() {
    // GoTrue passes every query parameter but its four own to the provider,
    // and they override the client_id, redirect_uri and state it sets itself:
    // a real provider then fails. The stand-in page refuses them the same way.
    let app = spawn_sandbox().await;
    let (_a, _b) = two_users(&app).await;
    let (_verifier, challenge) = pkce_pair();
    for (name, value) in [
        ("client_id", "quire"),
        ("state", "abc"),
        ("response_type", "code"),
        ("redirect_uri", CALLBACK),
    ] {
        let response = app
            .authorize(&[
                ("provider", "github"),
                ("redirect_to", CALLBACK),
                ("code_challenge", &challenge),
                ("code_challenge_method", "s256"),
                (name, value),
            ])
            .await;
        assert_eq!(response.status(), 400, "{name}");
        assert!(response.headers().get(LOCATION).is_none());
        let page = response.text().await.unwrap();
        assert!(page.contains(&format!("“{name}”")), "{name}: {page}");
        assert!(!page.contains("<form"), "{name}: {page}");
    }

    // What supabase-js sends (skip_http_redirect included) still gets the page.
    let response = app
        .authorize(&[
            ("provider", "github"),
            ("redirect_to", CALLBACK),
            ("scopes", "read:user"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "s256"),
            ("skip_http_redirect", "true"),
        ])
        .await;
    assert_eq!(response.status(), 200);
}
