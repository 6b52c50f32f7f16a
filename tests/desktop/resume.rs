//! No loose ends (issue 17, item 6): an upload cut by quitting the app goes on at the next
//! start when its file is still there, and shows "Upload interrupted" with Retry and Delete when
//! it is not.
//!
//! The cut is made deterministic: the device's uploads are started by a client of the core in
//! the test, as A on this profile's stack, whose runtime is shut down mid-upload as quitting
//! does (nothing cleaned up), and the profile's files say what the app had recorded of them
//! (`uploads.json`: which file each document came from; `resumable.json`: its upload's URL;
//! IPC.md, "Launching the app"). The app is then started again on that profile.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use quire_core::{CancellationToken, UploadEvent, UploadOptions};
use quire_testkit::{Stack, fixtures};
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::driver::{ANSWER, App, INGEST, Profile, UI};
use crate::support::DevStack as _;

/// A PDF of a hundred and twenty pages of text (about 300 KB).
fn big_pdf(words: &str) -> Vec<u8> {
    let pages: Vec<String> = (1..=120)
        .map(|n| format!("Page {n}. {}", words.repeat(40)))
        .collect();
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    fixtures::document_pdf(&pages)
}

/// Uploads `path` as `email`, cut once 64 KiB are stored (the client's runtime shut down):
/// the document and its upload's URL.
fn cut_upload(stack: &Stack, email: &str, password: &str, path: &Path) -> (Uuid, String) {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                let cut = runtime.block_on(async {
                    let (quire, _) = stack.client();
                    quire.sign_in_with_password(email, password).await.unwrap();
                    let options = UploadOptions {
                        resumable_above: 64 * 1024,
                        chunk_bytes: 64 * 1024,
                        ..UploadOptions::default()
                    };
                    let (events, mut received) = mpsc::unbounded_channel();
                    let paths = [path.to_owned()];
                    tokio::spawn(async move {
                        quire
                            .upload(&paths, &options, Some(events), CancellationToken::new())
                            .await
                    });
                    let (mut id, mut url) = (None, None);
                    while let Some(event) = received.recv().await {
                        match event {
                            UploadEvent::Registered { document_id, .. } => id = Some(document_id),
                            UploadEvent::Resumable { upload_url, .. } => url = Some(upload_url),
                            UploadEvent::Progress { sent, .. } if sent >= 64 * 1024 => break,
                            UploadEvent::Failed { error, .. } => panic!("upload failed: {error:?}"),
                            _ => {}
                        }
                    }
                    (id.expect("registered"), url.expect("a resumable upload"))
                });
                runtime.shutdown_background();
                cut
            })
            .join()
            .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_upload_goes_on_at_the_next_start_or_shows_upload_interrupted() -> Result<()> {
    let stack = Stack::builder().with_companion().spawn().await;
    let a = stack.new_user("resume-a").await?;
    let b = stack.new_user("resume-b").await?;
    let profile = Profile::on("resume", stack.api())?;
    let app = App::launch("resume", "first", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    app.close().await?;

    let files = tempfile::tempdir()?;
    let kept: PathBuf = files.path().join("Canal lanterns.pdf");
    let gone: PathBuf = files.path().join("Harbour rafts.pdf");
    std::fs::write(
        &kept,
        big_pdf("Resumed lanterns float on the canal at dusk. "),
    )?;
    std::fs::write(&gone, big_pdf("Rafts drift out on the ebbing tide. "))?;
    let ((kept_id, kept_url), (gone_id, gone_url)) = tokio::task::block_in_place(|| {
        (
            cut_upload(&stack, &a.email, &a.password, &kept),
            cut_upload(&stack, &a.email, &a.password, &gone),
        )
    });
    std::fs::remove_file(&gone)?;
    let dir = profile.dirs()[1].join("quire/profiles").join(&profile.name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("uploads.json"),
        json!({ kept_id.to_string(): kept, gone_id.to_string(): gone }).to_string(),
    )?;
    std::fs::write(
        dir.join("resumable.json"),
        json!({ kept_id.to_string(): kept_url, gone_id.to_string(): gone_url }).to_string(),
    )?;

    // The next start: signed in from the keyring, the kept file's upload goes on.
    let app = App::launch("resume", "next", &profile).await?;
    app.wait_signed_in().await?;
    let resumed = app.wait_document("Canal lanterns", "ready", INGEST).await?;
    ensure!(resumed.data("id") == kept_id.to_string(), "{resumed:?}");
    let interrupted = app
        .wait_until("document[data-interrupted]", UI, |items| {
            items.into_iter().next()
        })
        .await
        .context("the document whose file is gone shows no interruption")?;
    app.screenshot("upload-interrupted").await?;
    ensure!(
        interrupted.data("id") == gone_id.to_string()
            && interrupted.data("status") == "uploading"
            && interrupted.text.contains("Upload interrupted"),
        "{interrupted:?}"
    );
    let css = format!(r#"[data-id="{gone_id}"] "#);
    ensure!(
        app.items_css(&format!(r#"{css}[data-testid="document-retry"]"#))
            .await?
            .len()
            == 1,
        "no Retry on the interrupted upload"
    );
    let stored = stack
        .rows(&format!("documents?id=eq.{kept_id}&select=status,owner_id"))
        .await;
    ensure!(
        stored
            .first()
            .is_some_and(|r| r["status"] == "ready" && r["owner_id"] == a.id.as_str()),
        "{stored:?}"
    );

    // Delete ends it, here and in the database.
    for button in ["document-delete", "confirm-delete"] {
        let clicked = app
            .js(
                "const [id, button] = arguments;
                 const el = document.querySelector(
                   `[data-testid=\"document\"][data-id=\"${id}\"] [data-testid=\"${button}\"]`);
                 if (el) el.click();
                 return !!el;",
                vec![json!(gone_id.to_string()), json!(button)],
            )
            .await?;
        ensure!(
            clicked == json!(true),
            "no {button} on the interrupted upload"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    app.wait_until("document", UI, |items| {
        (!items.iter().any(|d| d.data("id") == gone_id.to_string())).then_some(())
    })
    .await?;
    app.screenshot("interrupted-deleted").await?;
    ensure!(
        stack
            .rows(&format!("documents?id=eq.{gone_id}&select=id"))
            .await
            .is_empty(),
        "the interrupted document is still stored"
    );

    // B reads none of A's documents.
    let b_session = stack.tokens(&b).await?;
    let rows = stack.rows_as(&b_session, "documents?select=id").await;
    ensure!(rows.is_empty(), "B reads A's documents: {rows:?}");
    app.close().await
}

/// Clicks `button` (`document-delete`, then `confirm-delete`) on the document `id`.
async fn click_on_document(app: &App, id: Uuid, button: &str) -> Result<()> {
    let clicked = app
        .js(
            "const [id, button] = arguments;
             const el = document.querySelector(
               `[data-testid=\"document\"][data-id=\"${id}\"] [data-testid=\"${button}\"]`);
             if (el) el.click();
             return !!el;",
            vec![json!(id.to_string()), json!(button)],
        )
        .await?;
    ensure!(clicked == json!(true), "no {button} on document {id}");
    Ok(())
}

/// The same on A's other device (no record of the upload there): while recent, "Uploading from
/// another device" without a progress bar; past the server's in-flight hour (the row's
/// `updated_at` moved back, as time would), "Upload interrupted" with Retry and Delete. B sees
/// none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_upload_shows_on_another_device_as_elsewhere_then_interrupted() -> Result<()> {
    let stack = Stack::builder().with_companion().spawn().await;
    let a = stack.new_user("elsewhere-a").await?;
    let b = stack.new_user("elsewhere-b").await?;
    let files = tempfile::tempdir()?;
    let path = files.path().join("Tide tables.pdf");
    std::fs::write(
        &path,
        big_pdf("Tides turn twice a day at the harbour mouth. "),
    )?;
    let (id, _) = tokio::task::block_in_place(|| cut_upload(&stack, &a.email, &a.password, &path));

    let profile = Profile::on("elsewhere", stack.api())?;
    let app = App::launch("elsewhere", "recent", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    let shown = app
        .wait_until("document", UI, |items| {
            items.into_iter().find(|d| d.data("id") == id.to_string())
        })
        .await
        .context("the cut upload is not listed on the other device")?;
    // The software-rendered frame lags the DOM; give it time to show the list.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    app.screenshot("uploading-elsewhere").await?;
    ensure!(
        shown.data("uploading") == "elsewhere"
            && shown.text.contains("Uploading from another device"),
        "{shown:?}"
    );
    let css = format!(r#"[data-testid="document"][data-id="{id}"] "#);
    ensure!(
        app.items_css(&format!(r#"{css}[data-testid="document-progress"]"#))
            .await?
            .is_empty(),
        "a progress bar on an upload this device does not send"
    );
    app.close().await?;

    stack
        .db
        .admin()
        .await
        .batch_execute(&format!(
            "begin; set local session_replication_role = replica; \
             update public.documents set updated_at = now() - interval '2 hours' \
             where id = '{id}'; commit;"
        ))
        .await?;
    let app = App::launch("elsewhere", "later", &profile).await?;
    app.wait_signed_in().await?;
    let interrupted = app
        .wait_until("document[data-interrupted]", UI, |items| {
            items.into_iter().find(|d| d.data("id") == id.to_string())
        })
        .await
        .context("the stale upload shows no interruption")?;
    // The software-rendered frame lags the DOM; give it time to show the list.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    app.screenshot("interrupted-elsewhere").await?;
    ensure!(
        interrupted.data("uploading") == "interrupted"
            && interrupted.text.contains("Upload interrupted"),
        "{interrupted:?}"
    );
    for button in ["document-retry", "document-delete"] {
        ensure!(
            app.items_css(&format!(r#"{css}[data-testid="{button}"]"#))
                .await?
                .len()
                == 1,
            "no {button} on the interrupted upload"
        );
    }
    click_on_document(&app, id, "document-delete").await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    click_on_document(&app, id, "confirm-delete").await?;
    app.wait_until("document", UI, |items| {
        (!items.iter().any(|d| d.data("id") == id.to_string())).then_some(())
    })
    .await?;
    ensure!(
        stack
            .rows(&format!("documents?id=eq.{id}&select=id"))
            .await
            .is_empty(),
        "the interrupted document is still stored"
    );

    let b_session = stack.tokens(&b).await?;
    let rows = stack.rows_as(&b_session, "documents?select=id").await;
    ensure!(rows.is_empty(), "B reads A's documents: {rows:?}");
    app.close().await
}

/// Closing the last window while an answer streams asks nothing and loses nothing: the answer
/// goes on on the companion, and the next start shows it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_streaming_when_the_window_closes_is_whole_at_the_next_start() -> Result<()> {
    let stack = Stack::builder()
        .token_delay_ms(80)
        .with_companion()
        .spawn()
        .await;
    let a = stack.new_user("close-a").await?;
    let b = stack.new_user("close-b").await?;
    let profile = Profile::on("close", stack.api())?;
    let app = App::launch("close", "first", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    let files = tempfile::tempdir()?;
    let title = format!("Port Ellery almanac {}", crate::support::unique());
    crate::chat::upload_ready(&app, files.path(), &title).await?;
    app.ask(crate::support::QUESTION).await?;
    let streaming = app
        .wait_until(r#"message[data-role="assistant"]"#, ANSWER, |answers| {
            answers.into_iter().find(|m| {
                m.data("status") == "streaming" && !m.body.as_deref().unwrap_or_default().is_empty()
            })
        })
        .await?;
    app.screenshot("streaming-before-close").await?;
    let id = streaming.data("id").to_owned();
    app.close().await?;

    let app = App::launch("close", "next", &profile).await?;
    app.wait_signed_in().await?;
    app.click("conversation", "").await?;
    let answer = app.wait_answer_settled(&id).await?;
    app.screenshot("whole-after-restart").await?;
    ensure!(answer.data("status") == "complete", "{answer:?}");
    let shown = crate::support::squash(answer.body.as_deref().unwrap_or_default());
    let rows = stack
        .rows(&format!(
            "chat_messages?id=eq.{id}&select=status,content,owner_id"
        ))
        .await;
    let row = rows.first().context("no row for the answer")?;
    ensure!(
        row["status"] == "complete" && row["owner_id"] == a.id.as_str(),
        "{row}"
    );
    let stored = crate::support::squash(row["content"].as_str().unwrap_or_default());
    ensure!(
        shown.len() > streaming.body.as_deref().unwrap_or_default().len() && !stored.is_empty(),
        "the answer after the restart is not whole: {shown:?} (stored {stored:?})"
    );
    let b_session = stack.tokens(&b).await?;
    let rows = stack.rows_as(&b_session, "chat_messages?select=id").await;
    ensure!(rows.is_empty(), "B reads A's messages: {rows:?}");
    app.close().await
}
