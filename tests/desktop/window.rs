//! The app starts and shows its window with the bundled UI (a placeholder until the desktop
//! issue): the page's own script ran, so the CSP lets bundled scripts through.

use std::time::Duration;

use fantoccini::Locator;

use crate::driver::{App, eventually};

#[tokio::test]
async fn the_window_opens_and_runs_its_bundled_script() -> anyhow::Result<()> {
    let app = App::launch("window-opens").await?;

    let title = app
        .client
        .find(Locator::Css("#title"))
        .await?
        .text()
        .await?;
    assert_eq!(title, "Quire");
    let status = eventually(Duration::from_secs(10), "the UI script to run", || async {
        let text = app
            .client
            .find(Locator::Css("#status"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (text != "Starting…").then_some(text)
    })
    .await?;
    assert!(
        status.contains("Chat with your own documents"),
        "status line: {status}"
    );
    assert_eq!(app.client.title().await?, "Quire");

    app.screenshot("window").await?;
    app.close().await
}
