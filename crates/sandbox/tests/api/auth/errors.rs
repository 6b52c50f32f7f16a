//! Both of GoTrue's error shapes, `/health` and `/settings`.

use reqwest::Method;
use serde_json::json;

use super::support::PASSWORD_A;
use quire_testkit::{json_of, spawn_sandbox};

#[tokio::test]
async fn the_dated_api_version_gets_the_newer_error_shape() {
    let app = spawn_sandbox().await;
    app.signed_up("alice@example.com", PASSWORD_A).await;

    let response = app
        .request(Method::POST, "/auth/v1/token?grant_type=password", None)
        .header("X-Supabase-Api-Version", "2024-01-01")
        .json(&json!({"email": "alice@example.com", "password": "wrong password"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["x-supabase-api-version"], "2024-01-01");
    assert_eq!(response.headers()["x-sb-error-code"], "invalid_credentials");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": "invalid_credentials", "message": "Invalid login credentials"})
    );

    let response = app
        .request(Method::POST, "/auth/v1/signup", None)
        .header("X-Supabase-Api-Version", "2024-01-01")
        .json(&json!({"email": "bob@example.com", "password": "123"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"code": "weak_password", "message": "Password should be at least 6 characters.",
               "weak_password": {"reasons": ["length"]}})
    );
}

#[tokio::test]
async fn old_or_unparsable_versions_get_the_original_shape() {
    let app = spawn_sandbox().await;
    for version in [None, Some("2023-06-01"), Some("yesterday")] {
        let mut request = app
            .request(Method::POST, "/auth/v1/token?grant_type=password", None)
            .json(&json!({"email": "nobody@example.com", "password": "whatever"}));
        if let Some(version) = version {
            request = request.header("X-Supabase-Api-Version", version);
        }
        let response = request.send().await.unwrap();
        assert!(response.headers().get("x-supabase-api-version").is_none());
        let (status, body) = json_of(response).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}),
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn health_and_settings() {
    let app = spawn_sandbox().await;

    let (status, health) = json_of(app.health().await).await;
    assert_eq!(status, 200);
    assert_eq!(health["name"], "GoTrue");
    assert_eq!(health["version"], "v2.189.0");

    let (status, settings) = json_of(app.settings().await).await;
    assert_eq!(status, 200);
    assert_eq!(settings["external"]["email"], true);
    assert_eq!(settings["external"]["github"], true);
    assert_eq!(settings["external"]["phone"], false);
    assert_eq!(settings["disable_signup"], false);
    assert_eq!(settings["mailer_autoconfirm"], true);
}

/// GoTrue v2.189.0 `internal/api/settings.go`: `external` has every provider
/// GoTrue knows, each `true` or `false`.
const GOTRUE_EXTERNAL: [&str; 26] = [
    "anonymous_users",
    "apple",
    "azure",
    "bitbucket",
    "discord",
    "email",
    "facebook",
    "figma",
    "fly",
    "github",
    "gitlab",
    "google",
    "kakao",
    "keycloak",
    "linkedin",
    "linkedin_oidc",
    "notion",
    "phone",
    "slack",
    "slack_oidc",
    "snapchat",
    "spotify",
    "twitch",
    "twitter",
    "workos",
    "zoom",
];

#[tokio::test]
async fn settings_list_every_provider_and_only_the_enabled_ones_are_true() {
    let app = quire_testkit::Stack::builder()
        .sandbox(|config| config.oauth_providers = vec!["gitlab".into(), "azure".into()])
        .spawn()
        .await;

    let (status, settings) = json_of(app.settings().await).await;

    assert_eq!(status, 200);
    let mut keys: Vec<&str> = settings
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "disable_signup",
            "external",
            "mailer_autoconfirm",
            "passkeys_enabled",
            "phone_autoconfirm",
            "saml_enabled",
            "sms_provider"
        ]
    );
    let external = settings["external"].as_object().unwrap();
    let mut names: Vec<&str> = external.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, GOTRUE_EXTERNAL);
    let on: Vec<&str> = GOTRUE_EXTERNAL
        .into_iter()
        .filter(|name| external[*name] == true)
        .collect();
    assert_eq!(on, ["azure", "email", "gitlab"]);
    assert!(external.values().all(serde_json::Value::is_boolean));

    // A provider the project did not enable is refused as GoTrue refuses it.
    let (status, body) = json_of(
        app.authorize(&[
            ("provider", "github"),
            ("redirect_to", "http://127.0.0.1:1/cb"),
        ])
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "validation_failed",
               "msg": "Unsupported provider: provider is not enabled"})
    );
    let page = app
        .authorize(&[
            ("provider", "gitlab"),
            ("redirect_to", "http://127.0.0.1:1/cb"),
        ])
        .await;
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn unknown_paths_get_the_gateways_answer() {
    let app = spawn_sandbox().await;
    let (status, body) = json_of(
        app.http
            .get(format!("{}/nowhere/v1/x", app.api_base()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"message": "no Route matched with those values"})
    );

    let response = app
        .http
        .delete(format!("{}/auth/v1/signup", app.api_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
}
