//! Issue 17, item 1, in the real window: asking about chosen documents. A adds one document as
//! a chip from the sidebar ("Ask about …") and another by typing `#` and part of its title in
//! the composer (Enter takes the suggestion and removes the `#…` text); the question's sources
//! are only those documents, never the third one, which answers the question just as well. The
//! scope is stored on the conversation: A's second device shows the chips when it opens it, and
//! follows live when A removes one with its ×. B reads none of it.
//!
//! A stack of the test's own (as `own_model.rs`), so the documents can be made ready through
//! the API without dragging files onto the window.

use anyhow::{Context, Result, ensure};
use quire_testkit::{Stack, fixtures};

use crate::driver::{App, INGEST, Profile, UI, message_css};
use crate::support::{self, DevStack as _, QUESTION};

/// The parade test document's pages with a catalogue number of its own (new bytes each time).
fn parade_pdf() -> Vec<u8> {
    let mut pages = support::parade_pages();
    pages[2].push_str(&format!("\n\nCatalogue number {}.", support::unique()));
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    fixtures::text_pdf(&pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chips_from_the_sidebar_and_by_hash_limit_the_sources_and_a_second_device_shows_them()
-> Result<()> {
    let stack = Stack::builder().with_companion().spawn().await;
    let a = stack.new_user("scope-a").await?;
    let b = stack.new_user("scope-b").await?;
    let (a_session, b_session) = (stack.tokens(&a).await?, stack.tokens(&b).await?);
    let files = tempfile::tempdir()?;
    let unique = support::unique();
    // Two documents about the parade, and one about the glacier and the orchard.
    let (left_out, chosen, other) = (
        format!("Harbour almanac {unique}"),
        format!("Parade notes {unique}"),
        format!("Glacier survey {unique}"),
    );
    let other_pdf = std::fs::read(support::write_other_pdf(files.path(), &other)?)?;
    let mut ids = Vec::new();
    for (title, bytes) in [
        (&left_out, parade_pdf()),
        (&chosen, parade_pdf()),
        (&other, other_pdf),
    ] {
        ids.push(
            stack
                .ready_document(&a_session, title, bytes)
                .await
                .to_string(),
        );
    }
    let (left_out_id, chosen_id, other_id) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    // Without a scope the question finds both parade documents.
    let unscoped = stack.search(&a_session, QUESTION).await;
    for id in [&left_out_id, &chosen_id] {
        ensure!(
            unscoped.iter().any(|h| h["document_id"] == id.as_str()),
            "positive control: {id} is not found without a scope"
        );
    }

    let profile = Profile::on("scope-a1", stack.api())?;
    let a1 = App::launch("scope", "a1", &profile).await?;
    a1.sign_in(&a.email, &a.password).await?;
    for title in [&left_out, &chosen, &other] {
        a1.wait_document(title, "ready", INGEST).await?;
    }

    // A chip from the sidebar.
    a1.click(
        "document-ask",
        &format!(r#"[aria-label="Ask about {chosen}"]"#),
    )
    .await?;
    a1.wait_item("scope-chip", &format!(r#"[data-id="{chosen_id}"]"#), UI)
        .await?;
    // A chip by `#` and part of a title: the suggestion list offers it, Enter takes it.
    a1.type_into("composer", "#glacier sur").await?;
    let offered = a1
        .wait_item(
            "scope-suggestion",
            &format!(r#"[data-id="{other_id}"]"#),
            UI,
        )
        .await?;
    ensure!(offered.visible, "the suggestion is not shown: {offered:?}");
    a1.screenshot("scope-suggestions").await?;
    a1.element("composer", "")
        .await?
        .send_keys("\u{e007}")
        .await?;
    a1.wait_item("scope-chip", &format!(r#"[data-id="{other_id}"]"#), UI)
        .await?;
    let composer = a1.item("composer", "").await?.context("no composer")?;
    ensure!(
        composer.value.as_deref() == Some(""),
        "the #text was not removed from the composer: {composer:?}"
    );
    let chips: Vec<String> = a1
        .items("scope-chip", "")
        .await?
        .into_iter()
        .map(|c| c.data("id").to_owned())
        .collect();
    ensure!(
        chips == [chosen_id.clone(), other_id.clone()],
        "chips {chips:?}"
    );
    a1.screenshot("scope-chips").await?;

    // The question: its sources are only the chosen documents.
    a1.ask(QUESTION).await?;
    let answer = a1.wait_answer().await?;
    let id = answer.data("id").to_owned();
    let answer = a1.wait_answer_settled(&id).await?;
    a1.screenshot("scoped-answer").await?;
    ensure!(answer.data("status") == "complete", "{answer:?}");
    let sources: Vec<String> = a1
        .items_css(&format!(
            r#"{} [data-testid="source-chip"]"#,
            message_css(&id)
        ))
        .await?
        .into_iter()
        .map(|c| c.data("documentId").to_owned())
        .collect();
    ensure!(
        sources.contains(&chosen_id),
        "the chosen document is not a source: {sources:?}"
    );
    ensure!(
        sources.iter().all(|s| *s == chosen_id || *s == other_id),
        "a source outside the chips ({left_out_id} left out): {sources:?}"
    );
    let stored = stack
        .rows(&format!(
            "conversations?select=id,owner_id,document_ids&owner_id=eq.{}",
            a.id
        ))
        .await;
    ensure!(stored.len() == 1, "{stored:?}");
    ensure!(
        stored[0]["document_ids"] == serde_json::json!([chosen_id, other_id]),
        "stored scope {stored:?}"
    );
    let conversation = stored[0]["id"].as_str().unwrap_or_default().to_owned();

    // A's second device shows the chips when it opens the conversation.
    let profile2 = Profile::on("scope-a2", stack.api())?;
    let a2 = App::launch("scope", "a2", &profile2).await?;
    a2.sign_in(&a.email, &a.password).await?;
    let extra = format!(r#"[data-id="{conversation}"]"#);
    a2.wait_item("conversation", &extra, UI).await?;
    a2.click("conversation", &extra).await?;
    a2.wait_item("scope-chip", &format!(r#"[data-id="{other_id}"]"#), UI)
        .await?;
    let chips2: Vec<String> = a2
        .items("scope-chip", "")
        .await?
        .into_iter()
        .map(|c| c.data("id").to_owned())
        .collect();
    a2.screenshot("second-device-chips").await?;
    ensure!(chips2 == chips, "the second device shows {chips2:?}");

    // × removes a chip, here and in the stored scope.
    a1.click(
        "scope-chip-remove",
        &format!(r#"[aria-label="Stop asking only about {other}"]"#),
    )
    .await?;
    a1.wait_until("scope-chip", UI, |items| (items.len() == 1).then_some(()))
        .await?;
    let stored = stack
        .rows(&format!(
            "conversations?select=document_ids&id=eq.{conversation}"
        ))
        .await;
    ensure!(
        stored[0]["document_ids"] == serde_json::json!([chosen_id]),
        "stored scope after ×: {stored:?}"
    );
    // The second device, with the conversation open, follows live.
    a2.wait_until("scope-chip", UI, |items| {
        (items.len() == 1 && items[0].data("id") == chosen_id).then_some(())
    })
    .await
    .context("the second device did not follow the removed chip")?;
    a2.screenshot("second-device-after-remove").await?;

    // B reads none of it.
    for table in ["conversations", "chat_messages", "documents"] {
        let seen = stack
            .rows_as(&b_session, &format!("{table}?select=id"))
            .await;
        ensure!(seen.is_empty(), "B reads A's {table}: {seen:?}");
    }
    a2.close().await?;
    a1.close().await
}
