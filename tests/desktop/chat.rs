//! Asking: the answer streams into the window with citations, a citation opens the viewer at
//! the cited page, and Stop ends an answer and keeps its text (after a reload and a restart
//! too).
//!
//! The sandbox's offline model streams word by word (30 ms a word by default); the question
//! is about three long sentences of page 2, so an answer streams for several seconds. The
//! tests do not rely on that pace for what they assert: intermediate states are recorded by a
//! `MutationObserver` in the page, not by polling.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

use crate::driver::{self, App, INGEST, Item, Profile, Seen, UI, message_css};
use crate::support::{self, DevStack as _, QUESTION, stack};

/// Drops the three-page test PDF titled `title` on `app` and waits until it is ready;
/// returns its id.
pub async fn upload_ready(app: &App, dir: &Path, title: &str) -> Result<String> {
    let pdf = support::write_parade_pdf(dir, title)?;
    app.drop_files(&[&pdf]).await?;
    let doc = app.wait_document(title, "ready", INGEST).await?;
    Ok(doc.data("id").to_owned())
}

/// The conversation selected in the sidebar.
pub async fn current_conversation(app: &App) -> Result<Item> {
    app.wait_item("conversation", r#"[aria-current="page"]"#, UI)
        .await
}

/// The streaming states `observed` recorded for message `id` that had text: proof that the
/// answer was shown while it streamed.
pub fn streaming_states(observed: &[Seen], id: &str) -> Vec<String> {
    let mut texts: Vec<String> = observed
        .iter()
        .filter(|s| s.data("id") == id && s.data("status") == "streaming")
        .map(|s| support::squash(&s.text))
        .filter(|t| !t.is_empty())
        .collect();
    texts.dedup();
    texts
}

/// Checks that the answer was seen streaming: at least two growing partial texts, each
/// shorter than the final one.
pub fn ensure_streamed(observed: &[Seen], id: &str, last: &str, who: &str) -> Result<()> {
    let partial = streaming_states(observed, id);
    let last = support::squash(last);
    ensure!(
        partial.len() >= 2,
        "{who}: the answer was not seen streaming (streaming states with text: {partial:?})"
    );
    ensure!(
        partial.iter().all(|p| p.len() < last.len() || *p == last),
        "{who}: a streaming state was longer than the final answer"
    );
    ensure!(
        partial.windows(2).any(|w| w[1].len() > w[0].len()),
        "{who}: the streaming text never grew: {partial:?}"
    );
    eprintln!(
        "{who}: {} streaming states seen, the first {:?}",
        partial.len(),
        partial
            .first()
            .map(|p| p.chars().take(60).collect::<String>())
    );
    Ok(())
}

/// A passage that runs across a page break is cited with both pages ("pp. 1–2") and opens the
/// viewer at the first. B reads none of A's document or answer.
#[tokio::test]
async fn a_citation_across_a_page_break_names_both_pages_and_opens_the_first() -> Result<()> {
    let stack = stack()?;
    let a = stack.new_user("span-a").await?;
    let b = stack.new_user("span-b").await?;
    let files = tempfile::tempdir()?;
    let title = format!("Port Ellery leaflet {}", support::unique());

    let profile = Profile::new("span")?;
    let app = App::launch("span", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    let pdf = support::write_page_break_pdf(files.path(), &title)?;
    app.drop_files(&[&pdf]).await?;
    let doc_id = app
        .wait_document(&title, "ready", INGEST)
        .await?
        .data("id")
        .to_owned();

    app.ask(QUESTION).await?;
    let answer = app.wait_answer().await?;
    let id = answer.data("id").to_owned();
    let answer = app.wait_answer_settled(&id).await?;
    ensure!(
        answer.data("status") == "complete",
        "the answer ended {:?}: {answer:?}",
        answer.data("status")
    );
    let citations = app
        .items_css(&format!(r#"{} [data-testid="citation"]"#, message_css(&id)))
        .await?;
    ensure!(!citations.is_empty(), "the answer has no citations");
    for c in &citations {
        ensure!(
            c.data("documentId") == doc_id && c.data("page") == "1" && c.data("pageEnd") == "2",
            "a citation does not span pages 1–2 of {doc_id}: {c:?}"
        );
    }
    let chips = app
        .items_css(&format!(
            r#"{} [data-testid="source-chip"]"#,
            message_css(&id)
        ))
        .await?;
    ensure!(
        chips
            .iter()
            .any(|c| c.data("documentId") == doc_id && c.text.contains("pp. 1–2")),
        "no source chip says pp. 1–2: {chips:?}"
    );
    app.screenshot("citation-across-a-page-break").await?;

    app.client
        .find(fantoccini::Locator::Css(&format!(
            r#"{} [data-testid="citation"]"#,
            message_css(&id)
        )))
        .await?
        .click()
        .await?;
    let viewer = app.wait_item("pdf-viewer", "", UI).await?;
    ensure!(
        viewer.data("documentId") == doc_id,
        "the viewer shows {:?}, not the cited document",
        viewer.data("documentId")
    );
    app.wait_item("pdf-viewer", r#"[data-page="1"]"#, UI)
        .await
        .context("the viewer did not open at the first cited page")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.screenshot("viewer-at-first-page-of-a-span").await?;

    let b_tokens = stack.tokens(&b).await?;
    for table in ["documents", "document_chunks", "chat_messages"] {
        let seen = stack
            .rows_as(&b_tokens, &format!("{table}?select=id"))
            .await;
        ensure!(seen.is_empty(), "B reads A's {table}: {seen:?}");
    }
    app.close().await
}

#[tokio::test]
async fn an_answer_streams_with_citations_and_a_citation_opens_the_cited_page() -> Result<()> {
    let stack = stack()?;
    let a = stack.new_user("ask-a").await?;
    let b = stack.new_user("ask-b").await?;
    let files = tempfile::tempdir()?;
    let title = format!("Port Ellery almanac {}", support::unique());

    let profile = Profile::new("ask")?;
    let app = App::launch("ask", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    let doc_id = upload_ready(&app, files.path(), &title).await?;
    app.screenshot("document-ready").await?;

    app.observe("messages", "message").await?;
    app.ask(QUESTION).await?;
    app.wait_until(r#"message[data-role="user"]"#, UI, |m| {
        m.into_iter()
            .find(|m| support::squash(&m.text).contains(QUESTION))
    })
    .await
    .context("the question is not shown")?;
    let answer = app.wait_answer().await?;
    let id = answer.data("id").to_owned();
    app.screenshot("answer-arriving").await?;
    let answer = app.wait_answer_settled(&id).await?;
    app.screenshot("answer-complete").await?;
    ensure!(
        answer.data("status") == "complete",
        "the answer ended {:?}: {answer:?}",
        answer.data("status")
    );
    let body = answer.body.clone().unwrap_or_default();
    ensure!(
        body.contains("lantern"),
        "the answer does not quote page 2: {body:?}"
    );
    ensure_streamed(&app.observed("messages").await?, &id, &body, "A")?;
    ensure!(
        app.item("no-sources", "").await?.is_none(),
        "the no-sources notice is shown for a question the document answers"
    );

    // Citations in the answer point at page 2 of the document.
    let citations = app
        .items_css(&format!(r#"{} [data-testid="citation"]"#, message_css(&id)))
        .await?;
    ensure!(
        !citations.is_empty(),
        "the answer has no citations: {body:?}"
    );
    for c in &citations {
        ensure!(
            c.data("page") == "2" && c.data("documentId") == doc_id,
            "a citation points elsewhere than page 2 of {doc_id}: {c:?}"
        );
    }
    let chips = app
        .items_css(&format!(
            r#"{} [data-testid="source-chip"]"#,
            message_css(&id)
        ))
        .await?;
    ensure!(
        chips.iter().any(|c| c.data("documentId") == doc_id),
        "no source chip for the document: {chips:?}"
    );

    // What is stored agrees.
    let rows = stack
        .rows(&format!(
            "chat_messages?id=eq.{id}&select=owner_id,status,content,citations"
        ))
        .await;
    let row = rows
        .first()
        .context("no chat_messages row for the answer")?;
    assert_eq!(row["owner_id"], a.id.as_str());
    assert_eq!(row["status"], "complete");
    let stored = row["citations"].as_array().cloned().unwrap_or_default();
    ensure!(!stored.is_empty(), "no citations stored: {row}");
    ensure!(
        stored.iter().all(|c| c["page"] == 2),
        "stored citations: {stored:?}"
    );

    // Clicking a citation opens the viewer on the cited page with the passage to find.
    app.client
        .find(fantoccini::Locator::Css(&format!(
            r#"{} [data-testid="citation"]"#,
            message_css(&id)
        )))
        .await?
        .click()
        .await?;
    // The viewer opens on page 1 and moves to the cited page once the PDF is loaded.
    let viewer = app.wait_item("pdf-viewer", "", UI).await?;
    ensure!(
        viewer.data("documentId") == doc_id,
        "the viewer shows {:?}, not the cited document {doc_id}",
        viewer.data("documentId")
    );
    app.wait_item("pdf-viewer", r#"[data-page="2"]"#, UI)
        .await
        .context("the viewer did not show the cited page 2")?;
    // pdf.js draws the page and the find highlight a few seconds later under Xvfb on a busy
    // machine; the picture is for a person to look at.
    tokio::time::sleep(Duration::from_secs(4)).await;
    app.screenshot("viewer-at-cited-page").await?;
    let find = app.wait_item("pdf-find", "", UI).await?;
    let passage = support::squash(find.value.as_deref().unwrap_or_default());
    let passage = passage.trim_end_matches('…').trim();
    let start: String = passage.chars().take(30).collect();
    ensure!(
        start.len() >= 10 && support::squash(&support::parade_pages()[1]).contains(&start),
        "the find box does not hold a passage of page 2: {passage:?}"
    );

    // B reads none of A's conversation.
    let b_tokens = stack.tokens(&b).await?;
    for table in ["conversations", "chat_messages", "chat_events"] {
        let seen = stack
            .rows_as(&b_tokens, &format!("{table}?select=id"))
            .await;
        ensure!(seen.is_empty(), "B reads {table}: {seen:?}");
    }
    app.close().await
}

#[tokio::test]
async fn stop_ends_an_answer_and_keeps_its_text_after_a_reload_and_a_restart() -> Result<()> {
    let stack = stack()?;
    let a = stack.new_user("stop-a").await?;
    let b = stack.new_user("stop-b").await?;
    let files = tempfile::tempdir()?;
    let title = format!("Harbour diary {}", support::unique());

    let profile = Profile::new("stop")?;
    let app = App::launch("stop", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    upload_ready(&app, files.path(), &title).await?;

    app.ask(QUESTION).await?;
    let streaming = app
        .wait_until(
            r#"message[data-role="assistant"][data-status="streaming"]"#,
            driver::ANSWER,
            |m| {
                m.into_iter()
                    .last()
                    .filter(|m| m.body.as_deref().is_some_and(|b| !b.trim().is_empty()))
            },
        )
        .await?;
    let id = streaming.data("id").to_owned();
    // Stop at once: a screenshot first takes long enough on a loaded machine for the answer to
    // finish before the click (seen with four window tests at once).
    app.click("stop", "").await?;
    let stopped = app.wait_answer_settled(&id).await?;
    app.screenshot("stopped").await?;
    if stopped.data("status") == "complete" {
        bail!("the answer completed although Stop was clicked while it streamed");
    }
    ensure!(
        stopped.data("status") == "stopped",
        "after Stop the answer is {:?}",
        stopped.data("status")
    );
    let kept = support::squash(stopped.body.as_deref().unwrap_or_default());
    ensure!(!kept.is_empty(), "Stop threw the text away");
    ensure!(
        kept.len() >= support::squash(streaming.body.as_deref().unwrap_or_default()).len(),
        "after Stop the answer is shorter than what was shown before it"
    );

    // Nothing more arrives.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = app
        .item("message", &format!(r#"[data-id="{id}"]"#))
        .await?
        .context("the stopped answer disappeared")?;
    assert_eq!(later.data("status"), "stopped");
    assert_eq!(
        support::squash(later.body.as_deref().unwrap_or_default()),
        kept
    );

    let rows = stack
        .rows(&format!("chat_messages?id=eq.{id}&select=status,content"))
        .await;
    let row = rows
        .first()
        .context("no chat_messages row for the answer")?;
    assert_eq!(row["status"], "stopped");
    let content = row["content"].as_str().unwrap_or_default();
    ensure!(!content.trim().is_empty(), "the stored answer is empty");
    let complete_len: usize = support::PARADE.iter().map(|s| s.len()).sum();
    ensure!(
        content.len() < complete_len,
        "the stored answer is as long as a whole one ({} bytes)",
        content.len()
    );
    let conversation = current_conversation(&app).await?.data("id").to_owned();

    // A reload of the web view shows the same stopped answer.
    app.client.refresh().await?;
    app.wait_signed_in().await?;
    reopen(&app, &conversation, &id, &kept).await?;
    app.screenshot("after-reload").await?;
    app.close().await?;

    // So does the app restarted on the same profile.
    let again = App::launch("stop", "a-restarted", &profile).await?;
    again.wait_signed_in().await?;
    reopen(&again, &conversation, &id, &kept).await?;
    again.screenshot("after-restart").await?;

    let b_tokens = stack.tokens(&b).await?;
    let seen = stack
        .rows_as(&b_tokens, &format!("chat_messages?id=eq.{id}&select=id"))
        .await;
    ensure!(seen.is_empty(), "B reads A's stopped answer: {seen:?}");
    again.close().await
}

/// Opens `conversation` (unless it is open) and checks its answer `id` is stopped with `kept`.
async fn reopen(app: &App, conversation: &str, id: &str, kept: &str) -> Result<()> {
    let extra = format!(r#"[data-id="{conversation}"]"#);
    let item = app.wait_item("conversation", &extra, UI).await?;
    if item.current.as_deref() != Some("page") {
        app.click("conversation", &extra).await?;
    }
    // The row may be drawn a frame before its text: wait for the text, then compare.
    let message = app
        .wait_until(&format!(r#"message[data-id="{id}"]"#), UI, |m| {
            m.into_iter().next().filter(|m| {
                m.data("status") != "streaming"
                    && !support::squash(m.body.as_deref().unwrap_or_default()).is_empty()
            })
        })
        .await
        .context("the reopened answer shows no text")?;
    ensure!(
        message.data("status") == "stopped",
        "the reopened answer is {:?}",
        message.data("status")
    );
    let text = support::squash(message.body.as_deref().unwrap_or_default());
    ensure!(
        text == kept,
        "the reopened answer's text differs:\n  before: {kept:?}\n  now:    {text:?}"
    );
    Ok(())
}
