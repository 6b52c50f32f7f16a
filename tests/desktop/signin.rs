//! Signing in through the window: a wrong password is refused with a sentence a person can
//! read; the right one opens the window, keeps the refresh token in the keyring only, and a
//! restarted app is still signed in.

use std::path::Path;

use anyhow::{Result, ensure};
use serde_json::json;

use crate::driver::{App, Profile, UI};
use crate::support::{self, DevStack as _, stack};

#[tokio::test]
async fn a_wrong_password_is_refused_readably_and_the_right_one_signs_in() -> Result<()> {
    let stack = stack()?;
    let a = stack.new_user("signin-a").await?;
    let b = stack.new_user("signin-b").await?;
    let profile = Profile::new("signin")?;
    let account = profile.keyring_account(stack);
    let app = App::launch("signin", "a", &profile).await?;

    app.wait_item("sign-in-email", "", UI).await?;
    app.screenshot("signed-out").await?;

    // A's email with B's (valid, but not A's) password.
    app.submit_sign_in(&a.email, &b.password).await?;
    let error = app.wait_item("sign-in-error", "", UI).await?;
    app.screenshot("wrong-password").await?;
    ensure!(error.visible, "the sign-in error is not visible");
    ensure!(
        error.role.as_deref() == Some("alert"),
        "the sign-in error is not an alert: {error:?}"
    );
    readable(&error.text)?;
    ensure!(
        !error.text.contains(&b.password),
        "the error shows the password"
    );
    ensure!(
        app.item("composer", "").await?.is_none(),
        "the window opened on a wrong password"
    );
    ensure!(
        stack.keyring_secret(&account)?.is_none(),
        "a refused sign-in left a keyring entry"
    );

    app.submit_sign_in(&a.email, &a.password).await?;
    app.wait_signed_in().await?;
    app.screenshot("signed-in").await?;
    ensure!(
        app.item("sign-in-error", "").await?.is_none(),
        "the old error is still shown after signing in"
    );
    let session = app.invoke("session", json!({})).await?;
    let session = session.map_err(|e| anyhow::anyhow!("session rejected: {e}"))?;
    assert_eq!(session["status"]["state"], "signed_in", "{session}");
    assert_eq!(session["status"]["user"]["email"], a.email.as_str());
    assert_eq!(session["status"]["user"]["id"], a.id.as_str());
    assert_eq!(session["profile"], profile.name.as_str());

    // The refresh token is in the keyring, under this profile's account, and in no file of
    // the profile (web view storage included).
    let kept = stack
        .keyring_secret(&account)?
        .ok_or_else(|| anyhow::anyhow!("no keyring entry for {account} after signing in"))?;
    let issued = stack.refresh_tokens(&a.id).await?;
    ensure!(
        issued.iter().any(|t| kept.contains(t.as_str())),
        "the keyring entry for {account} holds none of A's refresh tokens"
    );
    for dir in profile.dirs() {
        for token in &issued {
            if let Some(file) = file_containing(dir, token)? {
                anyhow::bail!("a refresh token is on disk in {}", file.display());
            }
        }
    }
    app.close().await?;

    // The same device restarted: signed in from the keyring, without the form.
    let again = App::launch("signin", "a-restarted", &profile).await?;
    again.wait_signed_in().await?;
    again.screenshot("restarted-signed-in").await?;
    let session = again
        .invoke("session", json!({}))
        .await?
        .map_err(|e| anyhow::anyhow!("session rejected: {e}"))?;
    assert_eq!(session["status"]["user"]["email"], a.email.as_str());
    again.close().await
}

/// A sentence for a person: not empty, not an error code, not a data dump.
pub fn readable(text: &str) -> Result<()> {
    let text = text.trim();
    ensure!(
        text.len() >= 12,
        "the message is too short to explain anything: {text:?}"
    );
    ensure!(
        text.contains(' ') && text.chars().any(char::is_uppercase),
        "the message is not a sentence: {text:?}"
    );
    for raw in [
        "{",
        "}",
        "Error(",
        "invalid_grant",
        "not_signed_in",
        "\\n",
        "undefined",
        "null",
        "[object",
    ] {
        ensure!(!text.contains(raw), "the message shows `{raw}`: {text:?}");
    }
    Ok(())
}

/// The first file below `dir` whose bytes contain `needle`.
pub fn file_containing(dir: &Path, needle: &str) -> Result<Option<std::path::PathBuf>> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if let Some(found) = file_containing(&path, needle)? {
                return Ok(Some(found));
            }
        } else if kind.is_file() {
            // Lock files and sockets may be unreadable; they hold no data.
            if let Ok(bytes) = std::fs::read(&path)
                && support::contains(&bytes, needle)
            {
                return Ok(Some(path));
            }
        }
    }
    Ok(None)
}
