//! Sign-in: password, PKCE through the authorize page, sign-out, refresh,
//! and the refresh token in the real keyring.

use std::sync::Arc;

use quire_core::{
    AuthStatus, BrowserSignIn, ErrorCode, KeyringStore, Profile, Quire, SignOutReason, TokenStore,
};
use quire_testkit::client::{PageDriver, in_keyring_session};
use quire_testkit::{PASSWORD_A, PASSWORD_B, eventually, spawn_sandbox, spawn_sandbox_with};
use serde_json::json;

#[tokio::test]
async fn password_sign_in_keeps_only_the_refresh_token_in_the_store() {
    let stack = spawn_sandbox().await;
    let a = stack.create_user("alice@example.com", PASSWORD_A).await;
    let (quire, tokens) = stack.client();

    let user = quire
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();

    assert_eq!(user.id, a);
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    assert_eq!(quire.status(), AuthStatus::SignedIn { user: user.clone() });
    let saved = tokens.get().expect("the refresh token is saved");
    assert!(
        !saved.contains('.'),
        "the saved token is the opaque refresh token, not the JWT"
    );
}

#[tokio::test]
async fn a_wrong_password_is_invalid_credentials_and_nobody_is_signed_in() {
    let stack = spawn_sandbox().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let (quire, tokens) = stack.client();

    let error = quire
        .sign_in_with_password("alice@example.com", PASSWORD_B)
        .await
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::InvalidCredentials);
    assert_eq!(quire.status(), AuthStatus::SignedOut { reason: None });
    assert!(tokens.get().is_none());
}

#[tokio::test]
async fn the_sandbox_being_down_is_offline() {
    let stack = spawn_sandbox().await;
    let config = stack.config(None);
    drop(stack);
    let (quire, _) = (
        Quire::with_token_store(
            config,
            Arc::new(quire_testkit::client::MemoryTokens::default()),
        ),
        (),
    );
    let error = quire
        .sign_in_with_password("a@example.com", "x")
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::Offline, "{error}");
}

#[tokio::test]
async fn pkce_sign_in_through_the_authorize_page() {
    let stack = spawn_sandbox().await;
    let a = stack.create_user("alice@example.com", PASSWORD_A).await;
    stack.create_user("bob@example.com", PASSWORD_B).await;
    let (quire, tokens) = stack.client();
    let browser = PageDriver::new(&stack, "alice@example.com", PASSWORD_A);

    let user = quire
        .sign_in_with_browser(&browser, &BrowserSignIn::new("github"))
        .await
        .unwrap();

    assert_eq!(user.id, a);
    assert!(tokens.get().is_some());
    let opened = browser.opened.lock().unwrap().clone().unwrap();
    let query: std::collections::HashMap<_, _> = opened.query_pairs().into_owned().collect();
    assert_eq!(opened.path(), "/auth/v1/authorize");
    // GoTrue passes any other parameter on to the provider, where it
    // overrides GoTrue's own client_id, redirect_uri or state.
    let mut names: Vec<&str> = query.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "code_challenge",
            "code_challenge_method",
            "provider",
            "redirect_to"
        ]
    );
    assert_eq!(query["provider"], "github");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    let redirect = url::Url::parse(&query["redirect_to"]).unwrap();
    assert_eq!(redirect.host_str(), Some("127.0.0.1"));
    assert_eq!(redirect.path(), "/callback");
    assert!(
        redirect
            .query_pairs()
            .any(|(k, v)| k == "state" && v.len() > 10)
    );
    eventually(30, "the browser tab shows its page", async || {
        browser.landing.lock().unwrap().is_some()
    })
    .await;
    let (status, page) = browser.landing.lock().unwrap().clone().unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("You can close this tab"), "{page}");
}

#[tokio::test]
async fn pkce_cancelled_in_the_browser_is_reported_and_signs_nobody_in() {
    let stack = spawn_sandbox().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let (quire, tokens) = stack.client();
    let mut browser = PageDriver::new(&stack, "alice@example.com", PASSWORD_A);
    browser.cancel = true;

    let error = quire
        .sign_in_with_browser(&browser, &BrowserSignIn::new("github"))
        .await
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::SignInCancelled);
    assert!(error.to_string().contains("denied"), "{error}");
    assert!(tokens.get().is_none());
    eventually(30, "the browser tab shows its page", async || {
        browser.landing.lock().unwrap().is_some()
    })
    .await;
    let (status, page) = browser.landing.lock().unwrap().clone().unwrap();
    assert_eq!(status, 400);
    assert!(page.contains("close this tab"), "{page}");
}

#[tokio::test]
async fn sign_out_ends_the_server_session_and_clears_the_store() {
    let stack = spawn_sandbox().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let (quire, tokens) = stack.client();
    quire
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    let refresh_token = tokens.get().unwrap();

    quire.sign_out().await.unwrap();

    assert_eq!(quire.status(), AuthStatus::SignedOut { reason: None });
    assert!(tokens.get().is_none());
    let response = stack
        .http
        .post(format!(
            "{}/auth/v1/token?grant_type=refresh_token",
            stack.api_base()
        ))
        .header("apikey", stack.anon_key())
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_client_error(),
        "the old refresh token is dead"
    );
}

#[tokio::test]
async fn the_session_is_refreshed_ahead_of_expiry_and_a_refused_refresh_signs_out_with_a_reason() {
    let stack = spawn_sandbox_with(|c| c.jwt_expiry_secs = 2).await;
    let a = stack.create_user("alice@example.com", PASSWORD_A).await;
    let (quire, tokens) = stack.client();
    quire
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    let first = tokens.get().unwrap();

    eventually(60, "two refreshes", async || quire.auth().refreshes() >= 2).await;
    assert_ne!(
        tokens.get().unwrap(),
        first,
        "the rotated refresh token replaced the first"
    );
    assert!(matches!(quire.status(), AuthStatus::SignedIn { .. }));

    // The server forgets every session of A (as a revocation elsewhere would).
    stack
        .db
        .admin()
        .await
        .execute("delete from auth.sessions where user_id = $1", &[&a])
        .await
        .unwrap();

    eventually(60, "the refresher notices", async || {
        matches!(quire.status(), AuthStatus::SignedOut { .. })
    })
    .await;
    match quire.status() {
        AuthStatus::SignedOut {
            reason: Some(SignOutReason::SessionEnded { message }),
        } => assert!(!message.is_empty()),
        other => panic!("{other:?}"),
    }
    assert!(tokens.get().is_none(), "the dead refresh token is removed");
    let error = quire.auth().user().unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotSignedIn);
    assert!(error.to_string().contains("sign in again"), "{error}");
}

/// Runs inside its own D-Bus session with gnome-keyring (Secret Service),
/// see `quire_testkit::client::in_keyring_session`.
#[tokio::test]
async fn keyring_holds_the_sign_in_across_clients_until_sign_out() {
    if !in_keyring_session("signin::keyring_holds_the_sign_in_across_clients_until_sign_out") {
        return;
    }
    let stack = spawn_sandbox().await;
    let a = stack.create_user("alice@example.com", PASSWORD_A).await;
    let config = stack.config(None);
    let keyring = KeyringStore::new(&config.api_url);
    assert!(keyring.load().unwrap().is_none());

    let first = Quire::new(config.clone());
    first
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    assert!(
        keyring.load().unwrap().is_some(),
        "the refresh token is in the keyring"
    );
    drop(first);

    // A new client (a restarted app) resumes from the keyring alone.
    let second = Quire::new(config.clone());
    let user = second.restore().await.unwrap().expect("a saved session");
    assert_eq!(user.id, a);

    second.sign_out().await.unwrap();
    assert!(
        keyring.load().unwrap().is_none(),
        "sign-out removes the keyring entry"
    );
    let third = Quire::new(config);
    assert_eq!(third.restore().await.unwrap(), None);
}

#[tokio::test]
async fn keyring_pkce_sign_in() {
    if !in_keyring_session("signin::keyring_pkce_sign_in") {
        return;
    }
    let stack = spawn_sandbox().await;
    let a = stack.create_user("alice@example.com", PASSWORD_A).await;
    let config = stack.config(None);
    let quire = Quire::new(config.clone());
    let browser = PageDriver::new(&stack, "alice@example.com", PASSWORD_A);

    let user = quire
        .sign_in_with_browser(&browser, &BrowserSignIn::new("github"))
        .await
        .unwrap();

    assert_eq!(user.id, a);
    assert!(KeyringStore::new(&config.api_url).load().unwrap().is_some());
    quire.sign_out().await.unwrap();
}

/// Two profiles on one machine are two keyring entries: A's second "device"
/// and B sign in side by side, and one signing out leaves the other.
#[tokio::test]
async fn keyring_profiles_keep_separate_sign_ins() {
    if !in_keyring_session("signin::keyring_profiles_keep_separate_sign_ins") {
        return;
    }
    let stack = spawn_sandbox().await;
    let a = stack.create_user("alice@example.com", PASSWORD_A).await;
    let b = stack.create_user("bob@example.com", PASSWORD_B).await;
    let config = stack.config(None);
    let profile_b = Profile::new("B").unwrap();
    Quire::new(config.clone())
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    Quire::with_profile(config.clone(), &profile_b)
        .sign_in_with_password("bob@example.com", PASSWORD_B)
        .await
        .unwrap();

    let default_again = Quire::with_profile(config.clone(), &Profile::default());
    let b_again = Quire::with_profile(config.clone(), &profile_b);

    assert_eq!(default_again.restore().await.unwrap().unwrap().id, a);
    assert_eq!(b_again.restore().await.unwrap().unwrap().id, b);
    b_again.sign_out().await.unwrap();
    assert!(
        KeyringStore::for_profile(&config.api_url, &profile_b)
            .load()
            .unwrap()
            .is_none()
    );
    assert!(
        KeyringStore::new(&config.api_url).load().unwrap().is_some(),
        "the default profile is still signed in"
    );
    default_again.sign_out().await.unwrap();
}

#[tokio::test]
async fn signing_in_again_ends_the_replaced_session_on_the_server_and_no_other() {
    let stack = spawn_sandbox().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    stack.create_user("bob@example.com", PASSWORD_B).await;
    let (quire, tokens) = stack.client();
    let (elsewhere, elsewhere_tokens) = stack.client();
    elsewhere
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    quire
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    let replaced = tokens.get().unwrap();

    // The same device signs in again, as Bob.
    let bob = quire
        .sign_in_with_password("bob@example.com", PASSWORD_B)
        .await
        .unwrap();

    assert_eq!(bob.email.as_deref(), Some("bob@example.com"));
    let current = tokens.get().unwrap();
    assert_ne!(current, replaced);
    let (status, body) = quire_testkit::json_of(stack.refresh(&replaced).await).await;
    assert_eq!(status, 400, "the replaced session still refreshes: {body}");
    // Bob's new session and Alice's session on another device are untouched.
    let (status, _) = quire_testkit::json_of(stack.refresh(&current).await).await;
    assert_eq!(status, 200);
    let (status, _) =
        quire_testkit::json_of(stack.refresh(&elsewhere_tokens.get().unwrap()).await).await;
    assert_eq!(status, 200, "Alice's other device was signed out");
}
