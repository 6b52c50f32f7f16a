//! Accounts in the window (src-tauri/IPC.md, `sign_up`, `send_password_reset`,
//! `reset_password`): creating an account on a project that confirms addresses says "check
//! your email", and the mailed link lets that person, and only them, sign in; a forgotten
//! password is reset with the reset email's link pasted into the window.
//!
//! The sandbox has no SMTP: its mails are JSON lines in `mailbox.jsonl`
//! (docs/platform/supabase.md §3.8), which the test reads as a person reads their inbox. The
//! stack is the test's own (quire-testkit), with `confirm_email` on, which the dev stack has
//! off; the app is set up as after installing ([`Profile::first_run`]) and connects to it.

use anyhow::{Context, Result, ensure};
use quire_testkit::Stack;
use serde_json::{Value, json};

use crate::driver::{App, Profile, UI};
use crate::support::{self, DevStack as _};

/// The mails sent to `to`, oldest first.
fn mails_to(stack: &Stack, to: &str) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(stack.sandbox_config.mailbox()).unwrap_or_default();
    let mut mails = Vec::new();
    for line in text.lines() {
        let mail: Value = serde_json::from_str(line)?;
        if mail["to"] == to {
            mails.push(mail);
        }
    }
    Ok(mails)
}

async fn confirming_stack() -> Stack {
    Stack::builder()
        .sandbox(|c| c.confirm_email = true)
        .with_companion()
        .spawn()
        .await
}

/// A first-run app connected to `stack`'s companion, on its sign-in screen.
async fn connected(test: &str, instance: &str, profile: &Profile, stack: &Stack) -> Result<App> {
    let companion = stack
        .api()
        .companion_url()
        .context("the test's stack has a companion")?
        .to_owned();
    let app = App::launch(test, instance, profile).await?;
    app.wait_item("connect-address", "", UI).await?;
    app.type_into("connect-address", &companion).await?;
    app.click("connect-submit", "").await?;
    app.wait_item("sign-in-email", "", UI).await?;
    Ok(app)
}

/// Opens a mail's link as the person's browser would (the sandbox confirms on `GET`).
async fn open_in_browser(link: &str) -> Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = http.get(link).send().await?;
    let location = response.headers()["location"].to_str()?.to_owned();
    ensure!(
        response.status() == 303 && location.contains("#access_token="),
        "the confirmation link did not confirm: {} {location}",
        response.status()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_account_checks_its_email_and_the_mailed_link_lets_that_person_in() -> Result<()> {
    let stack = confirming_stack().await;
    let email = format!("e2e-signup-a-{}@quire.test", support::unique());
    let password = format!("pw-{}", support::unique());
    let b_email = format!("e2e-signup-b-{}@quire.test", support::unique());
    let b_password = format!("pw-{}", support::unique());
    // B signed up too (elsewhere) and has not confirmed.
    let (b_client, _) = stack.client();
    b_client.sign_up(&b_email, &b_password).await?;
    let profile = Profile::first_run("signup", stack.api())?;
    let app = connected("signup", "a", &profile, &stack).await?;

    app.click("create-account", "").await?;
    app.type_into("sign-up-email", &email).await?;
    app.type_into("sign-up-password", &password).await?;
    app.screenshot("sign-up-form").await?;
    app.click("sign-up-submit", "").await?;
    let notice = app.wait_item("sign-up-check-email", "", UI).await?;
    app.screenshot("sign-up-check-email").await?;
    ensure!(notice.visible && notice.text.contains(&email), "{notice:?}");
    ensure!(
        app.item("composer", "").await?.is_none(),
        "signed in before confirming"
    );
    let mails = mails_to(&stack, &email)?;
    ensure!(
        mails.len() == 1 && mails[0]["type"] == "signup",
        "{mails:?}"
    );

    // Before the link is opened, the password is refused with a sentence.
    app.click("back-to-sign-in", "").await?;
    app.submit_sign_in(&email, &password).await?;
    let error = app.wait_item("sign-in-error", "", UI).await?;
    ensure!(error.text.contains("not confirmed"), "{error:?}");

    open_in_browser(mails[0]["link"].as_str().unwrap_or_default()).await?;
    app.submit_sign_in(&email, &password).await?;
    app.wait_signed_in().await?;
    app.screenshot("signed-in-after-confirming").await?;
    let session = app
        .invoke("session", json!({}))
        .await?
        .map_err(|e| anyhow::anyhow!("session rejected: {e}"))?;
    ensure!(
        session["status"]["user"]["email"] == email.as_str(),
        "{session}"
    );

    // A's link confirmed A alone: B is still refused, and got only their own mail.
    let refused = b_client
        .sign_in_with_password(&b_email, &b_password)
        .await
        .err()
        .context("B signed in without confirming")?;
    ensure!(refused.to_string().contains("not confirmed"), "{refused}");
    ensure!(mails_to(&stack, &b_email)?.len() == 1);
    ensure!(!app.page_text().await?.contains(&b_email));
    app.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_with_the_mailed_link_pasted_into_the_window() -> Result<()> {
    let stack = confirming_stack().await;
    let a = stack.new_user("reset-a").await?;
    let b = stack.new_user("reset-b").await?;
    let new_password = format!("new-{}", support::unique());
    let profile = Profile::first_run("reset", stack.api())?;
    let app = connected("reset", "a", &profile, &stack).await?;

    app.type_into("sign-in-email", &a.email).await?;
    app.click("forgot-password", "").await?;
    let prefilled = app.wait_item("reset-email", "", UI).await?;
    ensure!(
        prefilled.value.as_deref() == Some(a.email.as_str()),
        "{prefilled:?}"
    );
    app.click("reset-send", "").await?;
    app.wait_item("reset-code", "", UI).await?;
    app.screenshot("reset-sent").await?;
    let mails = mails_to(&stack, &a.email)?;
    ensure!(
        mails.len() == 1 && mails[0]["type"] == "recovery",
        "{mails:?}"
    );
    let link = mails[0]["link"].as_str().unwrap_or_default().to_owned();

    // A link that is not this server's reset link is refused in words, and nothing changes.
    app.type_into(
        "reset-code",
        "https://evil.example/auth/v1/verify?token=x&type=recovery",
    )
    .await?;
    app.type_into("reset-password", &new_password).await?;
    app.click("reset-submit", "").await?;
    let error = app.wait_item("account-error", "", UI).await?;
    ensure!(error.role.as_deref() == Some("alert"), "{error:?}");
    ensure!(error.text.contains("another Quire server"), "{error:?}");

    app.type_into("reset-code", &link).await?;
    app.type_into("reset-password", &new_password).await?;
    app.screenshot("reset-link-pasted").await?;
    app.click("reset-submit", "").await?;
    app.wait_signed_in().await?;
    let session = app
        .invoke("session", json!({}))
        .await?
        .map_err(|e| anyhow::anyhow!("session rejected: {e}"))?;
    ensure!(
        session["status"]["user"]["id"] == a.id.as_str(),
        "{session}"
    );

    // A's password is the new one; B's is untouched and B got no mail.
    let (fresh, _) = stack.client();
    ensure!(
        fresh
            .sign_in_with_password(&a.email, &a.password)
            .await
            .is_err(),
        "A's old password still works"
    );
    fresh.sign_in_with_password(&a.email, &new_password).await?;
    let (bob, _) = stack.client();
    bob.sign_in_with_password(&b.email, &b.password).await?;
    ensure!(mails_to(&stack, &b.email)?.is_empty());
    ensure!(!app.page_text().await?.contains(&b.email));
    app.close().await
}
