//! The app starts, shows its window with the bundled UI, and a fresh profile is signed out.

use anyhow::{Result, ensure};

use crate::driver::{App, Profile, UI};

#[tokio::test]
async fn the_window_opens_on_the_sign_in_form() -> Result<()> {
    let profile = Profile::new("window")?;
    // `launch` also checks the app's environment: the three project values and the profile,
    // nothing else of the test's QUIRE_* variables.
    let app = App::launch("window", "fresh", &profile).await?;

    let email = app.wait_item("sign-in-email", "", UI).await?;
    ensure!(email.visible, "the email field is not visible");
    app.wait_item("sign-in-password", "", UI).await?;
    app.wait_item("sign-in-submit", "", UI).await?;
    ensure!(
        app.item("composer", "").await?.is_none(),
        "a fresh profile shows the composer before anyone signed in"
    );
    assert_eq!(app.client.title().await?, "Quire");
    app.screenshot("sign-in-form").await?;
    app.close().await
}
