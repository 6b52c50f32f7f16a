//! First questions that work, and export (issue 17, items 4 and 5). A person with the demo's
//! two PDFs sees questions drawn from those documents in the empty conversation; the first,
//! "Summarise the key points of my documents", is answered from both, cited; the conversation
//! then saves, through the native save dialog (driven with `xdotool`, as a person types a
//! path and presses Enter), as Markdown whose citations are footnotes, and Copy on the answer
//! puts its text with its sources on the clipboard. B sees none of it.
//!
//! The summary is the sandbox's offline model as this build has it, so the test brings a stack
//! of its own (quire-testkit, as `own_model.rs` does); the dev stack is left as it is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use quire_testkit::Stack;
use serde_json::json;

use crate::driver::{App, INGEST, Profile, UI, artifacts, message_css};
use crate::support::{DevStack as _, squash};

const BIRDS: &str = "Backyard Birds Field Guide";
const ESPRESSO: &str = "Brewline Duo Espresso Machine Manual";
const SUMMARY: &str = "Summarise the key points of my documents";

fn demo(title: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../demo")
        .join(format!("{title}.pdf"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_suggestion_summarises_both_documents_and_the_conversation_exports_with_footnotes()
-> Result<()> {
    let _x_input = crate::support::x_input();
    let stack = Stack::builder().with_companion().spawn().await;
    let a = stack.new_user("suggest-a").await?;
    let b = stack.new_user("suggest-b").await?;
    let profile = Profile::on("suggestions", stack.api())?;
    let app = App::launch("suggestions", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    let (birds, espresso) = (demo(BIRDS), demo(ESPRESSO));
    app.drop_files(&[birds.as_path(), espresso.as_path()])
        .await?;
    let birds_id = app
        .wait_document(BIRDS, "ready", INGEST)
        .await?
        .data("id")
        .to_owned();
    let espresso_id = app
        .wait_document(ESPRESSO, "ready", INGEST)
        .await?
        .data("id")
        .to_owned();

    // Questions from the documents themselves, not generic ones.
    let offered = app
        .wait_until("suggestion", UI, |items| {
            (items.len() == 3).then_some(items)
        })
        .await
        .context("three suggestions")?;
    // The first frame after signing in can reach WebDriver's snapshot late.
    tokio::time::sleep(Duration::from_secs(1)).await;
    app.screenshot("suggestions").await?;
    let texts: Vec<String> = offered.iter().map(|s| squash(&s.text)).collect();
    ensure!(texts[0] == SUMMARY, "{texts:?}");
    ensure!(
        texts[1..]
            .iter()
            .all(|t| t.starts_with("What do my documents say about ")),
        "{texts:?}"
    );

    app.click("suggestion", "").await?;
    let answer = app.wait_answer().await?;
    let id = answer.data("id").to_owned();
    let answer = app.wait_answer_settled(&id).await?;
    app.screenshot("summary-answer").await?;
    let body = squash(answer.body.as_deref().unwrap_or_default());
    ensure!(answer.data("status") == "complete", "{answer:?}");
    ensure!(
        !body.contains("couldn't find"),
        "the summary found nothing: {body}"
    );
    ensure!(
        !body.contains("]?"),
        "a heading was quoted as a sentence: {body}"
    );
    let cited: Vec<String> = app
        .items_css(&format!(r#"{} [data-testid="citation"]"#, message_css(&id)))
        .await?
        .iter()
        .map(|c| c.data("documentId").to_owned())
        .collect();
    ensure!(
        cited.contains(&birds_id) && cited.contains(&espresso_id),
        "the summary does not cite both documents: {cited:?} ({body})"
    );

    // Copy: the answer with its sources (what the page hands the clipboard, recorded).
    app.js(
        "window.__copied = null;
         navigator.clipboard.writeText = t => { window.__copied = t; return Promise.resolve(); };
         return true;",
        vec![],
    )
    .await?;
    app.click("copy", "").await?;
    let start = Instant::now();
    let copied = loop {
        let got = app.js("return window.__copied;", vec![]).await?;
        if let Some(text) = got.as_str() {
            break text.to_owned();
        }
        ensure!(start.elapsed() < UI, "Copy put nothing on the clipboard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        copied.contains("\n\nSources:\n[1] ")
            && copied.contains(BIRDS)
            && copied.contains(ESPRESSO),
        "Copy gave {copied:?}"
    );

    // Export through the native dialog.
    let dir = tempfile::tempdir()?;
    let dest = dir.path().join("summary").with_extension("md");
    app.click("conversation-export", "").await?;
    answer_save_dialog(app.pid, "Export conversation", &dest)?;
    let markdown = wait_file(&dest, UI)?;
    ensure!(markdown.starts_with("# "), "{markdown}");
    ensure!(
        markdown.contains(&format!("## You\n\n{SUMMARY}\n\n## Quire\n\n")),
        "{markdown}"
    );
    ensure!(markdown.contains("[^1]"), "no footnote marker: {markdown}");
    ensure!(
        markdown.contains(&format!("]: {BIRDS}, p"))
            && markdown.contains(&format!("]: {ESPRESSO}, p")),
        "the footnotes do not name both documents with pages: {markdown}"
    );
    std::fs::write(
        artifacts()
            .join("suggestions-a-export")
            .with_extension("md"),
        &markdown,
    )?;
    show_rendered(&app, &markdown).await?;
    app.screenshot("export-rendered").await?;

    // B sees none of A's conversation or documents.
    let b_session = stack.tokens(&b).await?;
    for table in ["conversations", "chat_messages", "documents"] {
        let rows = stack
            .rows_as(&b_session, &format!("{table}?select=id"))
            .await;
        ensure!(rows.is_empty(), "B reads A's {table}: {rows:?}");
    }
    app.close().await
}

/// Waits for the GTK save dialog titled `title` of the app process `pid` and saves to `dest`:
/// the name field takes a whole path, then Enter. Only this app's dialog: the window tests share
/// one X display, and the security sweep opens the same dialog in its own app.
fn answer_save_dialog(pid: u32, title: &str, dest: &Path) -> Result<()> {
    let pid = pid.to_string();
    let start = Instant::now();
    let window = loop {
        let found = Command::new("xdotool")
            .args([
                "search",
                "--all",
                "--onlyvisible",
                "--pid",
                &pid,
                "--name",
                title,
            ])
            .output()
            .context("running xdotool")?;
        let ids = String::from_utf8_lossy(&found.stdout);
        if let Some(id) = ids.lines().next() {
            break id.trim().to_owned();
        }
        if start.elapsed() > UI {
            bail!("no \"{title}\" dialog appeared");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::thread::sleep(Duration::from_millis(500));
    for args in [
        vec!["windowfocus", "--sync", window.as_str()],
        vec!["key", "--clearmodifiers", "ctrl+a"],
        vec!["type", "--delay", "20", &dest.display().to_string()],
        vec!["key", "Return"],
    ] {
        let status = Command::new("xdotool").args(&args).status()?;
        ensure!(status.success(), "xdotool {args:?} failed");
    }
    Ok(())
}

fn wait_file(path: &Path, within: Duration) -> Result<String> {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(text);
        }
        if start.elapsed() > within {
            bail!("{} was not written", path.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Shows the exported Markdown rendered (Python-Markdown with footnotes) in the window, for
/// the screenshot: the test's own HTML of the test's own file.
async fn show_rendered(app: &App, markdown: &str) -> Result<()> {
    use std::io::Write as _;
    let mut child = Command::new("markdown_py")
        .args(["-x", "footnotes"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running markdown_py (package python3-markdown)")?;
    child
        .stdin
        .take()
        .context("markdown_py's stdin")?
        .write_all(markdown.as_bytes())?;
    let html = String::from_utf8(child.wait_with_output()?.stdout)?;
    app.js(
        "document.body.innerHTML = '<article style=\"max-width: 46rem; margin: 2rem auto; \
         font: 15px/1.55 sans-serif; overflow: auto; height: calc(100vh - 4rem)\"></article>';
         document.querySelector('article').innerHTML = arguments[0];
         return true;",
        vec![json!(html)],
    )
    .await?;
    Ok(())
}
