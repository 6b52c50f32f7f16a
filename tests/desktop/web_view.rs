//! What a compromised web view can reach outside the window (issue 14, "links and paths from
//! the web view"; ARCHITECTURE.md, invariant 5). The page is driven as an attacker would drive
//! it, through `window.__TAURI_INTERNALS__` and plain DOM calls, and the test looks at what
//! reached the platform and the system browser:
//!
//! * `upload_files` takes only files dropped on the window (a real XDND drop), each once;
//!   `/etc/passwd` or `~/Documents/…` named by the page are `forbidden` and nothing is stored;
//! * a page that navigates by itself opens nothing in the browser;
//! * a link in an answer shows where it goes while pointed at, and opens only once the person
//!   said yes in the dialog (`QUIRE_E2E_CONFIRM_LINKS` answers it, docs/desktop-on-linux.md
//!   §4).
//!
//! What the app opens is recorded by an `xdg-open` of the test's own, first in the app's
//! `PATH` (tauri-plugin-opener runs `xdg-open` first on Linux).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fantoccini::Locator;
use quire_testkit::fixtures;
use serde_json::{Value, json};

use crate::driver::{App, INGEST, Profile, UI, message_css};
use crate::support::{self, DevStack as _, PARADE, QUESTION, stack};

/// The link the answer quotes.
const LINK: &str = "https://lanterns.example.org/parade";
/// The sentence that carries it: every word of the question, so the sandbox's model quotes it.
const LINK_SENTENCE: &str = "What happens during the harbour lantern parade is drawn on the \
     map of the route at https://lanterns.example.org/parade for everyone who walks along.";

/// An `xdg-open` that writes down what it was asked to open instead of opening it.
struct Recorder {
    dir: tempfile::TempDir,
}

impl Recorder {
    fn new() -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("xdg-open");
        let log = dir.path().join("opened.txt");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n", log.display()),
        )?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { dir })
    }

    /// The app's `PATH`: the recorder first.
    fn path_env(&self) -> (&'static str, String) {
        let path = std::env::var("PATH").unwrap_or_default();
        ("PATH", format!("{}:{path}", self.dir.path().display()))
    }

    /// Everything the app asked to open so far.
    fn opened(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("opened.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Waits until the app's log has `count` lines containing `needle`, and returns them.
async fn log_lines(app: &App, needle: &str, count: usize) -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(&app.log).unwrap_or_default();
        let lines: Vec<String> = log
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect();
        if lines.len() >= count {
            return Ok(lines);
        }
        if start.elapsed() > UI {
            bail!(
                "the app's log ({}) has {} of {count} lines with {needle:?}",
                app.log.display(),
                lines.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn forbidden(got: &Result<Value, Value>) -> bool {
    matches!(got, Err(e) if e["code"] == "forbidden")
}

#[tokio::test]
async fn the_web_view_uploads_only_files_dropped_on_the_window() -> Result<()> {
    let _x_input = support::x_input();
    let stack = stack()?;
    let a = stack.new_user("granted-a").await?;
    let b = stack.new_user("granted-b").await?;
    let files = tempfile::tempdir()?;
    let documents = files.path().join("Documents");
    std::fs::create_dir(&documents)?;
    let secret_title = format!("Tax return {}", support::unique());
    let secret = support::write_parade_pdf(&documents, &secret_title)?;
    let title = format!("Dropped almanac {}", support::unique());
    let pdf = support::write_parade_pdf(files.path(), &title)?;

    let profile = Profile::new("granted")?;
    let app = App::launch("granted", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    app.record_events().await?;

    // The attack: the page names files nobody dropped, a PDF among them.
    let sneaked = documents
        .join("..")
        .join("Documents")
        .join(secret.file_name().context("a file name")?);
    for paths in [
        vec![PathBuf::from("/etc/passwd")],
        vec![secret.clone()],
        vec![pdf.clone(), secret.clone()],
        vec![sneaked],
    ] {
        let got = app
            .invoke("upload_files", json!({ "paths": paths }))
            .await?;
        ensure!(
            forbidden(&got),
            "upload_files took {paths:?} that nobody dropped: {got:?}"
        );
    }
    let refusal = app
        .invoke("upload_files", json!({ "paths": ["/etc/passwd"] }))
        .await?
        .expect_err("refused above");
    eprintln!("web_view: the page's upload was refused: {refusal}");

    // The door that stays open: the file dropped on the window for real is uploaded, once.
    app.drop_files(&[&pdf]).await?;
    let doc = app.wait_document(&title, "ready", INGEST).await?;
    app.screenshot("dropped-ready").await?;
    let again = app
        .invoke("upload_files", json!({ "paths": [&pdf] }))
        .await?;
    ensure!(
        forbidden(&again),
        "a drop's grant was used twice: {again:?}"
    );

    // What reached the platform: the dropped file only.
    let rows = stack
        .rows(&format!("documents?owner_id=eq.{}&select=id,title", a.id))
        .await;
    ensure!(
        rows.len() == 1 && rows[0]["id"] == doc.data("id") && rows[0]["title"] == title.as_str(),
        "A's documents: {rows:?}"
    );
    let uploads: Vec<Value> = app
        .recorded_events()
        .await?
        .into_iter()
        .filter(|e| e["event"] == "quire://upload")
        .collect();
    ensure!(
        uploads.iter().all(|e| {
            let text = e["payload"].to_string();
            !text.contains("passwd") && !text.contains(&secret_title)
        }),
        "an upload started for a file nobody dropped: {uploads:?}"
    );
    let b_tokens = stack.tokens(&b).await?;
    let seen = stack.rows_as(&b_tokens, "documents?select=id,title").await;
    ensure!(seen.is_empty(), "B reads documents: {seen:?}");
    app.close().await
}

#[tokio::test]
async fn a_page_that_navigates_by_itself_opens_nothing_in_the_browser() -> Result<()> {
    let recorder = Recorder::new()?;
    let profile = Profile::new("navigate")?;
    // Were the app to ask, the answer would be yes: nothing stands between a navigation and
    // the browser but the guard.
    let env = [
        ("QUIRE_E2E_CONFIRM_LINKS", "yes".to_owned()),
        recorder.path_env(),
    ];
    let app = App::launch_with("navigate", "a", &profile, &env).await?;
    app.wait_item("sign-in-email", "", UI).await?;

    app.js(
        "const a = document.createElement('a');
         a.href = 'mailto:victim@evil.example?subject=hi';
         document.body.append(a);
         a.click();
         setTimeout(() => { location.href = 'https://evil.example/phish'; }, 0);
         return true;",
        vec![],
    )
    .await?;
    // The guard saw both (the old guard logged that it opened them in the browser).
    let seen = |l: &str| l.contains("refused a navigation") || l.contains("a link left the window");
    let start = Instant::now();
    while std::fs::read_to_string(&app.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| seen(l))
        .count()
        < 2
    {
        ensure!(
            start.elapsed() < UI,
            "the navigation guard did not see both navigations (log {})",
            app.log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened = recorder.opened();
    ensure!(
        opened.is_empty(),
        "the page's own navigations opened {opened:?} in the browser"
    );
    let here = app.js("return String(location.href);", vec![]).await?;
    ensure!(
        here.as_str()
            .is_some_and(|h| h.starts_with("tauri://localhost")),
        "the window left the app: {here}"
    );
    app.wait_item("sign-in-email", "", UI).await?;
    app.screenshot("navigations-refused").await?;
    app.close().await
}

/// Writes a one-page PDF whose parade passage carries [`LINK`].
fn write_link_pdf(dir: &Path, title: &str) -> Result<PathBuf> {
    let page = format!(
        "{}\n\n{}\n\nCatalogue number {}.",
        fixtures::wrap(LINK_SENTENCE, 88),
        fixtures::wrap(PARADE[1], 88),
        support::unique()
    );
    let path = dir.join(format!("{title}.pdf"));
    std::fs::write(&path, fixtures::text_pdf(&[&page]))?;
    Ok(path)
}

/// The link to [`LINK`] in the answer `id`, once it is drawn.
async fn answer_link(app: &App, id: &str) -> Result<fantoccini::elements::Element> {
    let css = format!(
        r#"{} [data-testid="message-body"] a[href="{LINK}"]"#,
        message_css(id)
    );
    let start = Instant::now();
    loop {
        match app.client.find(Locator::Css(&css)).await {
            Ok(link) => return Ok(link),
            Err(e) if start.elapsed() > UI => {
                app.try_screenshot("no-link").await;
                return Err(e).with_context(|| format!("the answer has no link to {LINK}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Clicks the link to [`LINK`] in the answer `id`, finding it again when the page drew the
/// answer anew in between (a conversation's messages are drawn from the sidebar's state,
/// then from the page the shell reads).
async fn click_link(app: &App, id: &str) -> Result<()> {
    let start = Instant::now();
    loop {
        match answer_link(app, id).await?.click().await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > UI => {
                return Err(e).context("clicking the link in the answer");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn a_link_in_an_answer_shows_its_destination_and_opens_only_after_a_yes() -> Result<()> {
    let stack = stack()?;
    let a = stack.new_user("link-a").await?;
    let b = stack.new_user("link-b").await?;
    let files = tempfile::tempdir()?;
    let title = format!("Lantern route {}", support::unique());
    let pdf = write_link_pdf(files.path(), &title)?;
    let recorder = Recorder::new()?;
    let profile = Profile::new("links")?;

    // The person says no.
    let env = [
        ("QUIRE_E2E_CONFIRM_LINKS", "no".to_owned()),
        recorder.path_env(),
    ];
    let app = App::launch_with("links", "no", &profile, &env).await?;
    app.sign_in(&a.email, &a.password).await?;
    app.drop_files(&[&pdf]).await?;
    app.wait_document(&title, "ready", INGEST).await?;
    app.ask(QUESTION).await?;
    let id = app.wait_answer().await?.data("id").to_owned();
    let answer = app.wait_answer_settled(&id).await?;
    ensure!(
        answer.data("status") == "complete",
        "the answer ended {:?}: {answer:?}",
        answer.data("status")
    );
    let link = answer_link(&app, &id).await?;
    ensure!(
        link.attr("title").await?.as_deref() == Some(LINK),
        "the link's title is not its destination"
    );

    // Pointing at it (the X pointer, moved to the link's middle) shows where it goes.
    let middle = app
        .js(
            "const r = arguments[0].getBoundingClientRect();
             return [Math.round(r.left + r.width / 2), Math.round(r.top + r.height / 2)];",
            vec![serde_json::to_value(&link)?],
        )
        .await?;
    let (x, y) = serde_json::from_value::<(i16, i16)>(middle)?;
    let pid = app.pid;
    tokio::task::spawn_blocking(move || crate::xdnd::point_at(pid, x, y))
        .await?
        .context("pointing at the link")?;
    let status = app.wait_item("link-status", "", UI).await?;
    app.screenshot("link-hover").await?;
    ensure!(
        status.visible && support::squash(&status.text) == LINK,
        "the status line does not show the destination: {status:?}"
    );

    click_link(&app, &id).await?;
    let asked = log_lines(&app, "answered the link dialog", 1).await?;
    ensure!(
        asked[0].contains("Open https://lanterns.example.org in your browser?"),
        "the dialog does not name the link's origin: {asked:?}"
    );
    log_lines(&app, "opened=false", 1).await?;
    app.screenshot("link-declined").await?;
    let opened = recorder.opened();
    ensure!(opened.is_empty(), "a declined link opened: {opened:?}");
    app.close().await?;

    // The same device again; the person says yes.
    let env = [
        ("QUIRE_E2E_CONFIRM_LINKS", "yes".to_owned()),
        recorder.path_env(),
    ];
    let app = App::launch_with("links", "yes", &profile, &env).await?;
    app.wait_signed_in().await?;
    app.click("conversation", "").await?;
    answer_link(&app, &id).await?;
    app.screenshot("reopened").await?;
    click_link(&app, &id).await?;
    log_lines(&app, "opened=true", 1).await?;
    let start = Instant::now();
    while recorder.opened().is_empty() && start.elapsed() < UI {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.screenshot("link-opened").await?;
    let opened = recorder.opened();
    ensure!(opened == [LINK], "the browser was asked to open {opened:?}");

    // B reads none of A's answer.
    let b_tokens = stack.tokens(&b).await?;
    for table in ["documents", "conversations", "chat_messages"] {
        let seen = stack
            .rows_as(&b_tokens, &format!("{table}?select=id"))
            .await;
        ensure!(seen.is_empty(), "B reads {table}: {seen:?}");
    }
    app.close().await
}
