//! Accounts in the app: sign-up with the confirmation mail, and a forgotten
//! password, end to end through the sandbox's mailbox file.

use quire_core::{ErrorCode, SignUp};
use quire_testkit::{PASSWORD_A, PASSWORD_B, Stack};
use reqwest::StatusCode;
use serde_json::Value;

/// The mails sent to `to`, oldest first.
fn mails_to(stack: &Stack, to: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(stack.sandbox_config.mailbox()).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|mail| mail["to"] == to)
        .collect()
}

async fn confirming_stack() -> Stack {
    Stack::builder()
        .sandbox(|config| config.confirm_email = true)
        .spawn()
        .await
}

/// Opens a mail's link as a browser would, without following the redirect.
async fn open_link(link: &str) -> (StatusCode, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(link).send().await.unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    (response.status(), location)
}

#[tokio::test]
async fn sign_up_asks_to_check_email_and_the_mails_link_lets_that_person_in_only() {
    let stack = confirming_stack().await;
    let (a, _) = stack.client();
    let (b, _) = stack.client();

    let signed_up = a.sign_up("alice@example.com", PASSWORD_A).await.unwrap();
    b.sign_up("bob@example.com", PASSWORD_B).await.unwrap();

    assert_eq!(
        signed_up,
        SignUp::CheckEmail {
            email: "alice@example.com".into()
        }
    );
    let refused = a
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("not confirmed"), "{refused}");
    let mails = mails_to(&stack, "alice@example.com");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["type"], "signup");
    let (status, location) = open_link(mails[0]["link"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("#access_token="), "{location}");
    let (again, location) = open_link(mails[0]["link"].as_str().unwrap()).await;
    assert_eq!(again, StatusCode::SEE_OTHER);
    assert!(
        location.contains("error_code=otp_expired"),
        "a link works once: {location}"
    );

    let user = a
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    // Alice's link confirmed Alice alone.
    let error = b
        .sign_in_with_password("bob@example.com", PASSWORD_B)
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::BadInput, "{error}");
    assert!(error.to_string().contains("not confirmed"), "{error}");
}

#[tokio::test]
async fn a_project_that_confirms_automatically_signs_the_new_account_in() {
    let stack = Stack::builder().spawn().await;
    let (a, _) = stack.client();

    let signed_up = a.sign_up("alice@example.com", PASSWORD_A).await.unwrap();

    assert!(
        matches!(signed_up, SignUp::SignedIn { .. }),
        "{signed_up:?}"
    );
    assert!(mails_to(&stack, "alice@example.com").is_empty());
    let again = a
        .sign_up("alice@example.com", PASSWORD_A)
        .await
        .unwrap_err();
    assert_eq!(again.code(), ErrorCode::AccountExists, "{again}");
}

#[tokio::test]
async fn a_closed_project_says_it_takes_no_new_accounts() {
    let stack = Stack::builder()
        .sandbox(|config| config.disable_signup = true)
        .spawn()
        .await;
    let (a, _) = stack.client();

    let error = a
        .sign_up("alice@example.com", PASSWORD_A)
        .await
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::SignUpClosed, "{error}");
}

#[tokio::test]
async fn a_forgotten_password_is_reset_with_the_mailed_code_and_only_for_its_owner() {
    let stack = confirming_stack().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    stack.create_user("bob@example.com", PASSWORD_B).await;
    let (a, _) = stack.client();
    let (b, _) = stack.client();
    let new_password = "a new password for alice";

    a.send_password_reset("alice@example.com").await.unwrap();
    b.send_password_reset("bob@example.com").await.unwrap();
    a.send_password_reset("nobody@example.com").await.unwrap();

    assert!(mails_to(&stack, "nobody@example.com").is_empty());
    let alice_mail = &mails_to(&stack, "alice@example.com")[0];
    let bob_mail = &mails_to(&stack, "bob@example.com")[0];
    assert_eq!(alice_mail["type"], "recovery");
    // Bob's code does not open Alice's account.
    let error = b
        .reset_password(
            "alice@example.com",
            bob_mail["code"].as_str().unwrap(),
            "bob owns alice now",
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::BadInput, "{error}");
    assert!(
        error.to_string().contains("wrong or has expired"),
        "{error}"
    );

    let user = a
        .reset_password(
            "alice@example.com",
            alice_mail["code"].as_str().unwrap(),
            new_password,
        )
        .await
        .unwrap();

    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    let (fresh, _) = stack.client();
    let old = fresh
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap_err();
    assert_eq!(old.code(), ErrorCode::InvalidCredentials);
    fresh
        .sign_in_with_password("alice@example.com", new_password)
        .await
        .unwrap();
    let (bob, _) = stack.client();
    bob.sign_in_with_password("bob@example.com", PASSWORD_B)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_reset_mails_link_pasted_into_the_app_resets_that_persons_password_only() {
    let stack = confirming_stack().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    stack.create_user("bob@example.com", PASSWORD_B).await;
    let (a, _) = stack.client();
    let (b, _) = stack.client();
    a.send_password_reset("alice@example.com").await.unwrap();
    b.send_password_reset("bob@example.com").await.unwrap();
    let alice_link = mails_to(&stack, "alice@example.com")[0]["link"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_link = mails_to(&stack, "bob@example.com")[0]["link"]
        .as_str()
        .unwrap()
        .to_owned();

    // A link of another server, or not a reset link, is refused before anything is sent.
    for foreign in [
        alice_link.replace("127.0.0.1", "localhost"),
        alice_link.replace("type=recovery", "type=signup"),
        "https://evil.example/auth/v1/verify?token=x&type=recovery".to_owned(),
    ] {
        let error = a
            .reset_password("alice@example.com", &foreign, "new password 1")
            .await
            .unwrap_err();
        assert_eq!(error.code(), ErrorCode::BadInput, "{foreign}: {error}");
        let message = error.to_string();
        assert!(
            message.contains("six-digit code") && !message.contains("refused"),
            "{error}"
        );
    }
    let user = a
        .reset_password("", &format!("  {alice_link}\n"), "alice's new password")
        .await
        .unwrap();

    assert_eq!(user.email.as_deref(), Some("alice@example.com"));
    let used = b
        .reset_password("", &alice_link, "bob owns alice now")
        .await
        .unwrap_err();
    assert!(used.to_string().contains("wrong or has expired"), "{used}");
    let (fresh, _) = stack.client();
    fresh
        .sign_in_with_password("alice@example.com", "alice's new password")
        .await
        .unwrap();
    fresh
        .sign_in_with_password("bob@example.com", PASSWORD_B)
        .await
        .unwrap();
    // Bob's link, never pasted, still works for Bob alone.
    let bob = b
        .reset_password("", &bob_link, "bob's new password")
        .await
        .unwrap();
    assert_eq!(bob.email.as_deref(), Some("bob@example.com"));
}
