//! Issue 17, items 2 and 3, in the real window: a stopped answer keeps its source chips after
//! the app is restarted, and they open their page; Regenerate makes a version of the same
//! answer (‹ 2/2 ›, the arrows show version 1 again), which a second instance of the app
//! follows live.
//!
//! Both tests bring a stack of their own (quire-testkit, as own_model.rs does: the dev stack's
//! ports are left alone) whose offline model writes a word every 60 or 150 ms, so an answer
//! streams long enough to be stopped and followed. Streaming is proven by the states the page
//! recorded ([`App::observe`]), not by the pace; the first test needs Stop to land before the
//! answer's first citation marker (some six seconds after its first word) and says so if it did
//! not.

use anyhow::{Context, Result, ensure};
use quire_testkit::Stack;

use crate::chat::{current_conversation, ensure_streamed, upload_ready};
use crate::driver::{ANSWER, App, Profile, UI, message_css};
use crate::support::{self, DevStack as _, QUESTION, squash};

/// A stack of the test's own, whose offline model writes a word every `word_ms`.
async fn slow_stack(word_ms: u64) -> Stack {
    Stack::builder()
        .token_delay_ms(word_ms)
        .with_companion()
        .spawn()
        .await
}

/// The source chips of message `id`: (document id, page) each.
async fn chips(app: &App, id: &str) -> Result<Vec<(String, String)>> {
    Ok(app
        .items_css(&format!(
            r#"{} [data-testid="source-chip"]"#,
            message_css(id)
        ))
        .await?
        .into_iter()
        .map(|c| (c.data("documentId").to_owned(), c.data("page").to_owned()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_answer_keeps_its_chips_after_a_restart_and_they_open_the_page() -> Result<()> {
    // A word every 150 ms: the first citation marker comes some six seconds after the first
    // word, and Stop is clicked at the first word.
    let stack = slow_stack(150).await;
    let a = stack.new_user("ground-a").await?;
    let b = stack.new_user("ground-b").await?;
    let files = tempfile::tempdir()?;
    let title = format!("Harbour diary {}", support::unique());
    let profile = Profile::on("ground", stack.api())?;
    let app = App::launch("ground", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    let doc_id = upload_ready(&app, files.path(), &title).await?;

    app.ask(QUESTION).await?;
    let streaming = app
        .wait_until(
            r#"message[data-role="assistant"][data-status="streaming"]"#,
            ANSWER,
            |m| {
                m.into_iter()
                    .last()
                    .filter(|m| m.body.as_deref().is_some_and(|b| !b.trim().is_empty()))
            },
        )
        .await?;
    let id = streaming.data("id").to_owned();
    app.click("stop", "").await?;
    let stopped = app.wait_answer_settled(&id).await?;
    ensure!(
        stopped.data("status") == "stopped",
        "after Stop the answer is {:?}",
        stopped.data("status")
    );
    // Stopped before its text cited anything (the markers are drawn as numbers, so the stored
    // row says it): its chips can only come from the chunks it was given.
    let row = stack
        .rows(&format!(
            "chat_messages?id=eq.{id}&select=citations,content"
        ))
        .await;
    let row = row.first().context("no row for the stopped answer")?;
    ensure!(
        row["citations"] == serde_json::json!([])
            && !row["content"].as_str().unwrap_or("").contains('['),
        "Stop came after a citation marker; this test is about an answer stopped before one: {row}"
    );
    let before = chips(&app, &id).await?;
    ensure!(
        !before.is_empty(),
        "the stopped answer shows no source chips"
    );
    ensure!(
        before
            .iter()
            .all(|(doc, page)| *doc == doc_id && !page.is_empty()),
        "a chip is not a page of A's document: {before:?}"
    );
    let conversation = current_conversation(&app).await?.data("id").to_owned();
    app.close().await?;

    // The app started again on the same profile: the same chips.
    let again = App::launch("ground", "a-restarted", &profile).await?;
    again.wait_signed_in().await?;
    let extra = format!(r#"[data-id="{conversation}"]"#);
    let item = again.wait_item("conversation", &extra, UI).await?;
    if item.current.as_deref() != Some("page") {
        again.click("conversation", &extra).await?;
    }
    let reopened = again.wait_answer_settled(&id).await?;
    ensure!(
        reopened.data("status") == "stopped",
        "reopened as {reopened:?}"
    );
    let shown = chips(&again, &id).await?;
    ensure!(
        shown == before,
        "after a restart the chips are {shown:?}, before they were {before:?}"
    );
    // The picture once the chips are drawn: a frame may lag the page's state.
    again
        .wait_until("source-chip", UI, |c| (!c.is_empty()).then_some(()))
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    again
        .screenshot("reopened-stopped-answer-with-chips")
        .await?;

    // A chip opens its page.
    let (_, page) = &before[0];
    again
        .client
        .find(fantoccini::Locator::Css(&format!(
            r#"{} [data-testid="source-chip"]"#,
            message_css(&id)
        )))
        .await?
        .click()
        .await?;
    let viewer = again.wait_item("pdf-viewer", "", UI).await?;
    ensure!(
        viewer.data("documentId") == doc_id,
        "the chip opened {:?}, not A's document",
        viewer.data("documentId")
    );
    again
        .wait_item("pdf-viewer", &format!(r#"[data-page="{page}"]"#), UI)
        .await
        .with_context(|| format!("the viewer did not open at the chip's page {page}"))?;
    again.screenshot("chip-opened-its-page").await?;

    let b_tokens = stack.tokens(&b).await?;
    let seen = stack
        .rows_as(
            &b_tokens,
            &format!("chat_messages?id=eq.{id}&select=id,sources"),
        )
        .await;
    ensure!(seen.is_empty(), "B reads A's stopped answer: {seen:?}");
    again.close().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_shows_versions_and_a_second_instance_follows_the_new_one_live() -> Result<()> {
    let stack = slow_stack(60).await;
    let a = stack.new_user("versions-a").await?;
    let b = stack.new_user("versions-b").await?;
    let files = tempfile::tempdir()?;
    let title = format!("Harbour diary {}", support::unique());
    let (p1, p2) = (
        Profile::on("versions-a1", stack.api())?,
        Profile::on("versions-a2", stack.api())?,
    );
    let a1 = App::launch("versions", "a1", &p1).await?;
    let a2 = App::launch("versions", "a2", &p2).await?;
    a1.sign_in(&a.email, &a.password).await?;
    a2.sign_in(&a.email, &a.password).await?;
    a2.wait_live().await?;
    upload_ready(&a1, files.path(), &title).await?;

    a1.ask(QUESTION).await?;
    let first = a1.wait_answer().await?.data("id").to_owned();
    let first_done = a1.wait_answer_settled(&first).await?;
    ensure!(first_done.data("status") == "complete", "{first_done:?}");
    let conversation = current_conversation(&a1).await?.data("id").to_owned();
    let extra = format!(r#"[data-id="{conversation}"]"#);
    a2.wait_item("conversation", &extra, UI).await?;
    a2.click("conversation", &extra).await?;
    a2.wait_answer_settled(&first).await?;

    // Regenerate on the first instance; the second follows the new version as it streams.
    a2.observe("version", "message").await?;
    a1.click("regenerate", "").await?;
    let version = a2
        .wait_until(r#"message[data-role="assistant"]"#, ANSWER, |answers| {
            answers
                .into_iter()
                .find(|m| m.data("id") != first && !m.data("id").is_empty())
        })
        .await
        .context("the second instance did not show the new version")?;
    let version_id = version.data("id").to_owned();
    let on_a1 = a1.wait_answer_settled(&version_id).await?;
    let on_a2 = a2.wait_answer_settled(&version_id).await?;
    ensure!(on_a1.data("status") == "complete", "{on_a1:?}");
    let text = on_a2.body.clone().unwrap_or_default();
    ensure!(
        on_a1.body.as_deref() == Some(text.as_str()),
        "the instances ended with other text"
    );
    ensure_streamed(
        &a2.observed("version").await?,
        &version_id,
        &text,
        "the second instance",
    )?;

    // One answer in the conversation, ‹ 2/2 ›, on both instances; the first version is gone
    // from view, not from the conversation.
    for app in [&a1, &a2] {
        let label = app.wait_item("version-label", "", UI).await?;
        ensure!(
            label.text.trim() == "2/2",
            "the versions read {:?}",
            label.text
        );
        let answers = app.items("message", r#"[data-role="assistant"]"#).await?;
        ensure!(
            answers.len() == 1 && answers[0].data("id") == version_id,
            "the conversation shows these answers: {answers:?}"
        );
        let questions = app.items("message", r#"[data-role="user"]"#).await?;
        ensure!(
            questions.len() == 1,
            "the question was asked again: {questions:?}"
        );
    }
    a1.screenshot("answer-with-versions").await?;

    // The left arrow shows version 1 again.
    a1.click("previous-version", "").await?;
    let back = a1
        .wait_until(r#"message[data-role="assistant"]"#, UI, |answers| {
            answers.into_iter().find(|m| m.data("id") == first)
        })
        .await?;
    ensure!(
        squash(back.body.as_deref().unwrap_or_default())
            == squash(first_done.body.as_deref().unwrap_or_default()),
        "version 1 reads otherwise than it was answered"
    );
    let label = a1.wait_item("version-label", "", UI).await?;
    ensure!(
        label.text.trim() == "1/2",
        "the versions read {:?}",
        label.text
    );
    a1.screenshot("answer-version-1").await?;

    let b_tokens = stack.tokens(&b).await?;
    let seen = stack
        .rows_as(
            &b_tokens,
            &format!("chat_messages?conversation_id=eq.{conversation}&select=id"),
        )
        .await;
    ensure!(seen.is_empty(), "B reads A's answers: {seen:?}");
    a1.close().await?;
    a2.close().await
}
