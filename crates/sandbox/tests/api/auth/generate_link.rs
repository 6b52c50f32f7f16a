//! `POST /admin/generate_link`, GoTrue's (supabase/auth v2.184.0
//! `adminGenerateLink`): the service role only; the answer's `redirect_to`
//! is the requested one when the redirect rule allows it, else the site URL
//! (what `quire-companion doctor` reads, docs/platform-contract.md §10).
//! A acts; B's row is untouched by A's link.

use reqwest::Method;
use serde_json::{Value, json};

use quire_testkit::{json_of, spawn_sandbox_with};

#[tokio::test]
async fn a_link_keeps_an_allowed_redirect_and_otherwise_goes_to_the_site() {
    let app =
        spawn_sandbox_with(|c| c.site_url = "https://app.example.com/".parse().unwrap()).await;
    let a = app.user("gl-a@example.com").await;
    let b = app.user("gl-b@example.com").await;
    let link = |body: Value, key: Option<String>| {
        let key = key.unwrap_or_else(|| app.info.service_role_key.clone());
        let request = app
            .http
            .request(
                Method::POST,
                format!("{}/auth/v1/admin/generate_link", app.api_base()),
            )
            .header("apikey", &key)
            .bearer_auth(&key)
            .json(&body);
        async move { json_of(request.send().await.unwrap()).await }
    };

    let (status, kept) = link(
        json!({"type": "magiclink", "email": a.email, "redirect_to": "http://127.0.0.1:53682/callback"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["redirect_to"], "http://127.0.0.1:53682/callback");
    assert_eq!(kept["id"], a.id.to_string());
    assert_eq!(kept["verification_type"], "magiclink");
    let action = kept["action_link"].as_str().unwrap();
    assert!(
        action.starts_with(&format!("{}/auth/v1/verify?token=", app.api_base())),
        "{action}"
    );
    assert!(
        action.contains("redirect_to=http%3A%2F%2F127.0.0.1%3A53682%2Fcallback"),
        "{action}"
    );

    let (status, replaced) = link(
        json!({"type": "recovery", "email": a.email, "redirect_to": "https://evil.example.net/"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["redirect_to"], "https://app.example.com/");

    // A magic link for an unknown address signs it up, unconfirmed.
    let (status, signed_up) = link(
        json!({"type": "magiclink", "email": "gl-new@example.com"}),
        None,
    )
    .await;
    assert_eq!(status, 200, "{signed_up}");
    assert_eq!(signed_up["verification_type"], "signup");
    assert!(signed_up["email_confirmed_at"].is_null(), "{signed_up}");

    // A user's token is not the service role.
    let (status, _) = link(
        json!({"type": "magiclink", "email": b.email}),
        Some(a.token.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let b_token: Option<String> = app
        .db
        .admin()
        .await
        .query_one(
            "select nullif(recovery_token, '') from auth.users where id = $1",
            &[&b.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(b_token, None, "B's row is untouched");
}
