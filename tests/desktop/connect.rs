//! Connecting with one address (src-tauri/IPC.md, "The server"): a first run asks for the Quire
//! server's address, says what is wrong with a wrong one, and a right one leads to the sign-in
//! screen, which offers exactly the sign-in methods the project enabled and names the server.
//!
//! The app is given nothing of the project ([`Profile::first_run`]), as after installing. The
//! stack is the test's own (quire-testkit: sandbox and companion in the test process), its
//! sandbox enabling two OAuth providers that the dev stack does not, so the buttons can only
//! come from this project's settings.

use anyhow::{Context, Result, ensure};
use quire_testkit::Stack;
use serde_json::json;

use crate::driver::{App, Item, Profile, UI};
use crate::support::{DevStack as _, squash};

/// The providers this test's project enables, as GoTrue names them.
const PROVIDERS: [&str; 2] = ["azure", "gitlab"];

/// Types `address` into the connect screen, submits it and waits for the error it gets.
async fn refused(app: &App, address: &str) -> Result<Item> {
    app.type_into("connect-address", address).await?;
    app.click("connect-submit", "").await?;
    let error = app
        .wait_until("connect-error", UI, |items| {
            items.into_iter().find(|e| e.visible && !e.text.is_empty())
        })
        .await?;
    ensure!(error.role.as_deref() == Some("alert"), "{error:?}");
    // The submit button is back: the check is over.
    app.wait_until("connect-submit", UI, |items| {
        items.into_iter().find(|b| b.text.trim() == "Connect")
    })
    .await?;
    Ok(app.item("connect-error", "").await?.unwrap_or(error))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_run_asks_for_the_server_says_what_is_wrong_and_offers_the_projects_sign_ins()
-> Result<()> {
    let stack = Stack::builder()
        .sandbox(|c| c.oauth_providers = PROVIDERS.map(str::to_owned).to_vec())
        .with_companion()
        .spawn()
        .await;
    let companion = stack
        .api()
        .companion_url()
        .context("the test's stack has a companion")?
        .trim_end_matches('/')
        .to_owned();
    let a = stack.new_user("connect-a").await?;
    let b = stack.new_user("connect-b").await?;
    let profile = Profile::first_run("connect", stack.api())?;
    let app = App::launch("connect", "a", &profile).await?;

    app.wait_item("connect-address", "", UI).await?;
    ensure!(
        app.item("sign-in-email", "").await?.is_none(),
        "a first run shows the sign-in form before it knows a server"
    );
    app.screenshot("first-run").await?;

    // Plain http to another computer: refused before anything is sent.
    let error = refused(&app, "http://quire.example.com").await?;
    app.screenshot("connect-error-not-https").await?;
    ensure!(error.data("code") == "insecure_server", "{error:?}");
    ensure!(error.text.contains("https"), "{error:?}");
    // Nothing answers there.
    let error = refused(&app, "http://127.0.0.1:9").await?;
    ensure!(error.data("code") == "server_unreachable", "{error:?}");
    ensure!(error.text.contains("127.0.0.1"), "{error:?}");
    // Something answers, but it is the project, not a Quire server.
    let error = refused(&app, stack.api_base()).await?;
    app.screenshot("connect-error-not-quire").await?;
    ensure!(error.data("code") == "not_a_quire_server", "{error:?}");
    ensure!(
        app.item("sign-in-email", "").await?.is_none(),
        "a wrong address led on to sign-in"
    );

    app.type_into("connect-address", &companion).await?;
    app.click("connect-submit", "").await?;
    app.wait_item("sign-in-email", "", UI).await?;
    let server = app.wait_item("sign-in-server", "", UI).await?;
    let host = companion.trim_start_matches("http://");
    ensure!(
        squash(&server.text).starts_with(&format!("Server: {host} Change")),
        "{server:?}"
    );
    let buttons = app
        .wait_until("sign-in-provider", UI, |items| {
            (items.len() == PROVIDERS.len()).then_some(items)
        })
        .await?;
    app.screenshot("sign-in-with-providers").await?;
    let offered: Vec<(&str, &str)> = buttons
        .iter()
        .map(|b| (b.data("provider"), b.text.trim()))
        .collect();
    ensure!(
        offered
            == [
                ("azure", "Continue with Microsoft"),
                ("gitlab", "Continue with GitLab")
            ],
        "the provider buttons: {offered:?}"
    );
    ensure!(
        app.item("create-account", "").await?.is_some(),
        "the project takes sign-ups"
    );

    // Change: a wrong address keeps the known server; going back keeps it too.
    app.click("change-server", "").await?;
    let error = refused(&app, "http://10.0.0.2:54380").await?;
    ensure!(error.data("code") == "insecure_server", "{error:?}");
    app.click("connect-cancel", "").await?;
    let server = app.wait_item("sign-in-server", "", UI).await?;
    ensure!(server.text.contains(host), "{server:?}");

    app.sign_in(&a.email, &a.password).await?;
    let session = app
        .invoke("session", json!({}))
        .await?
        .map_err(|e| anyhow::anyhow!("session rejected: {e}"))?;
    ensure!(
        session["server"]["address"] == companion.as_str(),
        "{session}"
    );
    ensure!(session["server"]["managed"] == false, "{session}");
    ensure!(
        session["status"]["user"]["id"] == a.id.as_str(),
        "{session}"
    );
    // Signed in, the server is not changed from under the session.
    let refused_change = app
        .invoke("connect", json!({ "address": stack.api_base() }))
        .await?;
    ensure!(refused_change.is_err(), "{refused_change:?}");
    app.close().await?;

    // The profile keeps its server: the next start goes straight to the signed-in window.
    let again = App::launch("connect", "a-again", &profile).await?;
    again.wait_signed_in().await?;
    again.screenshot("restarted-signed-in").await?;
    again.close().await?;

    // B signs in on a profile of their own on the same server and sees A on neither.
    let profile_b = Profile::first_run("connect-b", stack.api())?;
    let app_b = App::launch("connect", "b", &profile_b).await?;
    app_b.wait_item("connect-address", "", UI).await?;
    app_b.type_into("connect-address", &companion).await?;
    app_b.click("connect-submit", "").await?;
    app_b.sign_in(&b.email, &b.password).await?;
    let page = app_b.page_text().await?;
    ensure!(!page.contains(&a.email), "B's window shows A's address");
    app_b.close().await?;
    // What the profile keeps of the server is the discovery document's public values; no
    // token of A's is on disk.
    ensure!(
        crate::signin::file_containing(profile.dirs()[1], &companion)?.is_some(),
        "the profile did not keep its server"
    );
    for token in stack.refresh_tokens(&a.id).await? {
        for dir in profile.dirs() {
            if let Some(file) = crate::signin::file_containing(dir, &token)? {
                anyhow::bail!("a refresh token of A's is on disk in {}", file.display());
            }
        }
    }
    Ok(())
}
