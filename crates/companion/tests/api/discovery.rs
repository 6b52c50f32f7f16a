//! `GET /.well-known/quire`: the one address a person types leads the app to
//! the project, and to nothing secret.

use quire_testkit::{Stack, json_of};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

async fn discovery(app: &Stack) -> (StatusCode, Value) {
    json_of(
        app.companion_request(Method::GET, "/.well-known/quire", None)
            .send()
            .await
            .expect("GET /.well-known/quire"),
    )
    .await
}

#[tokio::test]
async fn the_document_holds_the_project_and_its_sign_in_methods_and_never_a_secret() {
    let app = Stack::builder().with_companion().spawn().await;

    let (status, body) = discovery(&app).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["quire"], 1);
    assert_eq!(body["api_url"], app.api_base());
    assert_eq!(body["anon_key"], app.anon_key());
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["anon_key", "api_url", "auth", "quire"]);
    assert_eq!(body["auth"]["password"], true);
    assert_eq!(body["auth"]["signup"], true);
    let providers = body["auth"]["providers"].as_array().unwrap();
    // GoTrue lists every provider it knows, false unless enabled: only the enabled ones
    // (the sandbox's default, github and google) are offered.
    assert_eq!(providers, &[json!("github"), json!("google")], "{body}");
    for switch in ["email", "phone", "anonymous_users"] {
        assert!(
            !providers.contains(&json!(switch)),
            "{switch} is no provider: {body}"
        );
    }
    let text = body.to_string();
    let config = app.companion_config();
    for (name, secret) in [
        (
            "service role key",
            config.platform.service_role_key.expose_secret().to_owned(),
        ),
        ("JWT secret", config.jwt_secret.expose_secret().to_owned()),
        ("tool secret", config.tool_secret.expose_secret().to_owned()),
        ("database URL", app.db.url().to_owned()),
    ] {
        assert!(!text.contains(&secret), "the document holds the {name}");
    }
}

#[tokio::test]
async fn the_document_hands_out_the_public_api_url_when_the_companion_reaches_the_project_privately()
 {
    // The companion reaches the platform on a private address; people's
    // apps are told the public one.
    let public = "https://project.example.com";
    let app = Stack::builder()
        .companion(|config| config.public_api_url = Some(public.parse().unwrap()))
        .spawn()
        .await;

    let (status, body) = discovery(&app).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["api_url"], public);
    assert_ne!(app.api_base(), public);
    assert!(!body.to_string().contains(app.api_base()), "{body}");
    // The companion itself still reaches the project where it did.
    assert_eq!(body["auth"]["providers"], json!(["github", "google"]));
}

#[tokio::test]
async fn a_project_closed_to_sign_ups_says_so() {
    let app = Stack::builder()
        .sandbox(|config| config.disable_signup = true)
        .with_companion()
        .spawn()
        .await;

    let (status, body) = discovery(&app).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth"]["signup"], false);
}

#[tokio::test]
async fn an_unreachable_platform_answers_502_in_quires_words() {
    let app = Stack::builder().with_companion().spawn().await;
    app.stop_sandbox();

    let (status, body) = discovery(&app).await;

    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "platform_unavailable", "{body}");
    assert!(body.get("anon_key").is_none());
}
