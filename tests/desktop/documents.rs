//! Uploads through the drop path (`upload_files`, the command a drop on the window calls): a
//! PDF goes from uploading to ready (the shell's updates, and the sidebar); a file named `.pdf` that is not a PDF is
//! refused, with its name and the reason, and nothing of it is stored.

use anyhow::{Context, Result, ensure};

use crate::driver::{App, INGEST, Profile, UI};
use crate::signin::readable;
use crate::support::{self, DevStack as _, stack};

/// The document lifecycle (ARCHITECTURE.md, "Data model"), in order.
const LIFECYCLE: &[&str] = &["uploading", "stored", "extracting", "indexing", "ready"];

#[tokio::test]
async fn a_dropped_pdf_becomes_ready_and_a_non_pdf_is_refused_with_its_name() -> Result<()> {
    let stack = stack()?;
    let a = stack.new_user("docs-a").await?;
    let b = stack.new_user("docs-b").await?;
    let files = tempfile::tempdir()?;
    let title = format!("Harbour notes {}", support::unique());
    let pdf = support::write_parade_pdf(files.path(), &title)?;
    let bad_name = format!("Holiday photo {}.pdf", support::unique());
    let bad = support::write_not_a_pdf(files.path(), &bad_name)?;

    let profile = Profile::new("docs")?;
    let app = App::launch("documents", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    app.observe("documents", "document").await?;
    app.record_events().await?;
    app.screenshot("signed-in").await?;

    // One drop with both files: the PDF is taken, the other refused.
    app.drop_files(&[&pdf, &bad]).await?;

    let refused = app.wait_item("upload-error", "", UI).await?;
    app.screenshot("non-pdf-refused").await?;
    ensure!(refused.visible, "the upload error is not visible");
    ensure!(
        refused.role.as_deref() == Some("alert"),
        "the upload error is not an alert: {refused:?}"
    );
    ensure!(
        refused.text.contains(&bad_name),
        "the upload error does not name the file {bad_name:?}: {:?}",
        refused.text
    );
    ensure!(
        refused.text.contains("PDF"),
        "the upload error does not say why (not a PDF): {:?}",
        refused.text
    );
    readable(&refused.text)?;

    let ready = app.wait_document(&title, "ready", INGEST).await?;
    app.screenshot("ready").await?;
    let doc_id = ready.data("id").to_owned();
    ensure!(!doc_id.is_empty(), "the document has no data-id: {ready:?}");

    // The shell sent the whole lifecycle of the document, in order: uploading … ready.
    let events = app.recorded_events().await?;
    let sent: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "quire://update")
        .map(|e| &e["payload"]["update"])
        .filter(|u| u["type"] == "document" && u["id"] == doc_id.as_str())
        .map(|u| u["status"].as_str().unwrap_or("?").to_owned())
        .collect();
    ensure!(
        sent.first().is_some_and(|s| s == "uploading") && sent.last().is_some_and(|s| s == "ready"),
        "the shell's document updates do not go from uploading to ready: {sent:?}"
    );
    in_lifecycle_order(&sent).context("the shell's document updates")?;

    // The sidebar showed it, in lifecycle order, ending at ready. The UI renders once per
    // animation frame, so which intermediate states a person sees depends on the frame rate;
    // they are reported, not required.
    let seen: Vec<_> = app
        .observed("documents")
        .await?
        .into_iter()
        .filter(|s| s.data("title") == title)
        .collect();
    let states: Vec<String> = seen.iter().map(|s| s.data("status").to_owned()).collect();
    ensure!(
        states.last().is_some_and(|s| s == "ready"),
        "the sidebar's last state is not ready: {states:?}"
    );
    in_lifecycle_order(&states).context("the sidebar")?;
    let timeline = |status: &str, at: f64| format!("{status}@{at:.0}ms");
    let shown: Vec<String> = seen
        .iter()
        .map(|s| timeline(s.data("status"), s.at))
        .collect();
    let arrived: Vec<String> = events
        .iter()
        .filter(|e| e["payload"]["update"]["id"] == doc_id.as_str())
        .map(|e| {
            timeline(
                e["payload"]["update"]["status"].as_str().unwrap_or("?"),
                e["at"].as_f64().unwrap_or_default(),
            )
        })
        .collect();
    eprintln!("documents: the shell sent {arrived:?}; the sidebar showed {shown:?}");

    // The sidebar lists only the PDF.
    let listed: Vec<String> = app
        .items("document", "")
        .await?
        .into_iter()
        .map(|d| d.data("title").to_owned())
        .collect();
    ensure!(listed == [title.clone()], "the sidebar lists {listed:?}");

    // What is stored: one ready document of three pages for A, nothing for the non-PDF.
    let rows = stack
        .rows(&format!(
            "documents?owner_id=eq.{}&select=id,title,status,page_count",
            a.id
        ))
        .await;
    ensure!(rows.len() == 1, "A's document rows: {rows:?}");
    assert_eq!(rows[0]["id"], doc_id.as_str());
    assert_eq!(rows[0]["title"], title.as_str());
    assert_eq!(rows[0]["status"], "ready");
    assert_eq!(rows[0]["page_count"], 3);

    // B sees none of it.
    let b_tokens = stack.tokens(&b).await?;
    let seen = stack.rows_as(&b_tokens, "documents?select=id,title").await;
    ensure!(seen.is_empty(), "B reads documents: {seen:?}");
    let seen = stack
        .rows_as(
            &b_tokens,
            &format!("document_chunks?document_id=eq.{doc_id}&select=id"),
        )
        .await;
    ensure!(seen.is_empty(), "B reads A's chunks: {seen:?}");

    app.close().await
}

/// Checks that `states` are document statuses that never go backwards in the lifecycle.
fn in_lifecycle_order(states: &[String]) -> Result<()> {
    let positions: Vec<usize> = states
        .iter()
        .map(|s| LIFECYCLE.iter().position(|l| l == s))
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow::anyhow!("a state outside the lifecycle: {states:?}"))?;
    ensure!(
        positions.windows(2).all(|w| w[0] <= w[1]),
        "the document went backwards: {states:?}"
    );
    Ok(())
}
