//! Three windows at once: A, A's second device (another profile, same user) and B. A's second
//! device shows A's answer while it streams and ends with exactly the same text; B's window
//! shows none of A's documents or conversations, and B's web view cannot reach them through
//! the shell's commands.

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::chat::{current_conversation, ensure_streamed, upload_ready};
use crate::driver::{App, INGEST, Profile, UI, message_css};
use crate::support::{self, DevStack as _, QUESTION, stack};

#[tokio::test]
async fn a_second_device_follows_the_answer_live_and_b_sees_none_of_it() -> Result<()> {
    let stack = stack()?;
    let a = stack.new_user("devices-a").await?;
    let b = stack.new_user("devices-b").await?;
    let files = tempfile::tempdir()?;
    let a_title = format!("Ellery secrets {}", support::unique());
    let b_title = format!("B logbook {}", support::unique());

    let (pa1, pa2, pb) = (
        Profile::new("devices-a1")?,
        Profile::new("devices-a2")?,
        Profile::new("devices-b")?,
    );
    let a1 = App::launch("devices", "a1", &pa1).await?;
    let a2 = App::launch("devices", "a2", &pa2).await?;
    let bw = App::launch("devices", "b", &pb).await?;
    // Everything the shell sends B's web view, from before B signs in.
    bw.record_events().await?;
    a1.sign_in(&a.email, &a.password).await?;
    a2.sign_in(&a.email, &a.password).await?;
    bw.sign_in(&b.email, &b.password).await?;
    a2.wait_live().await?;
    bw.wait_live().await?;

    // B has a document of its own (about other things), so B's sidebar is known to render
    // what B owns.
    let b_pdf = support::write_other_pdf(files.path(), &b_title)?;
    bw.drop_files(&[&b_pdf]).await?;
    let b_doc = bw
        .wait_document(&b_title, "ready", INGEST)
        .await?
        .data("id")
        .to_owned();
    let a_doc = upload_ready(&a1, files.path(), &a_title).await?;
    // A's second device learns of it live.
    a2.wait_document(&a_title, "ready", INGEST).await?;
    a2.screenshot("document-arrived").await?;

    a2.observe("follow", "message").await?;
    a1.ask(QUESTION).await?;
    let conversation = current_conversation(&a1).await?.data("id").to_owned();
    let extra = format!(r#"[data-id="{conversation}"]"#);
    // The second device lists the new conversation and opens it while the answer streams.
    a2.wait_item("conversation", &extra, UI).await?;
    a2.click("conversation", &extra).await?;
    let followed = a2.wait_answer().await?;
    let id = followed.data("id").to_owned();
    a2.screenshot("following-live").await?;

    let on_a1 = a1.wait_answer_settled(&id).await?;
    let on_a2 = a2.wait_answer_settled(&id).await?;
    a1.screenshot("answer-complete").await?;
    a2.screenshot("answer-complete").await?;
    assert_eq!(on_a1.data("status"), "complete");
    assert_eq!(on_a2.data("status"), "complete");
    let (text_a1, text_a2) = (
        on_a1.body.clone().unwrap_or_default(),
        on_a2.body.clone().unwrap_or_default(),
    );
    ensure!(!text_a1.trim().is_empty(), "A's answer is empty");
    ensure!(
        text_a1 == text_a2,
        "the second device ended with other text:\n  A:  {text_a1:?}\n  A2: {text_a2:?}"
    );
    ensure_streamed(
        &a2.observed("follow").await?,
        &id,
        &text_a2,
        "A's second device",
    )?;
    let (c1, c2) = (cited(&a1, &id).await?, cited(&a2, &id).await?);
    ensure!(
        !c1.is_empty() && c1 == c2,
        "citations differ: {c1:?} / {c2:?}"
    );

    // B's window: B's own document, nothing of A's.
    bw.screenshot("b-window").await?;
    let b_docs: Vec<String> = bw
        .items("document", "")
        .await?
        .into_iter()
        .map(|d| d.data("id").to_owned())
        .collect();
    ensure!(
        b_docs == [b_doc.clone()],
        "B's sidebar lists documents {b_docs:?}"
    );
    let b_convs = bw.items("conversation", "").await?;
    ensure!(
        b_convs.is_empty(),
        "B's sidebar lists conversations: {b_convs:?}"
    );
    let a_conv_title = a1
        .item("conversation", &extra)
        .await?
        .map(|c| c.text.trim().to_owned())
        .unwrap_or_default();
    let answer_piece: String = support::squash(&text_a1).chars().take(40).collect();
    let page = bw.page_text().await?;
    for (what, needle) in [
        ("A's document title", a_title.as_str()),
        ("A's document id", a_doc.as_str()),
        ("A's conversation id", conversation.as_str()),
        ("A's conversation title", a_conv_title.as_str()),
        ("A's answer id", id.as_str()),
        ("A's email", a.email.as_str()),
    ] {
        ensure!(
            needle.is_empty() || !page.contains(needle),
            "B's window shows {what} ({needle:?})"
        );
    }
    ensure!(
        !support::squash(&page).contains(&answer_piece),
        "B's window shows A's answer"
    );

    // Nothing the shell sent B's web view was about A's things.
    let b_events = bw.recorded_events().await?;
    ensure!(
        b_events
            .iter()
            .any(|e| e["payload"]["update"]["id"] == b_doc.as_str()),
        "B's web view got no update about B's own document: the event check would see nothing"
    );
    for event in &b_events {
        let text = event.to_string();
        for (what, needle) in [
            ("A's document id", a_doc.as_str()),
            ("A's conversation id", conversation.as_str()),
            ("A's answer id", id.as_str()),
            ("A's document title", a_title.as_str()),
            ("A's email", a.email.as_str()),
        ] {
            ensure!(
                !text.contains(needle),
                "B's web view was sent {what}: {text}"
            );
        }
        ensure!(
            !support::squash(&text).contains(&answer_piece),
            "B's web view was sent A's answer"
        );
    }

    // B's web view asking the shell for A's things directly.
    let attempts = [
        ("open_conversation", json!({ "id": conversation })),
        ("document_pdf", json!({ "id": a_doc })),
        (
            "rename_conversation",
            json!({ "id": conversation, "title": "B was here" }),
        ),
        ("delete_conversation", json!({ "id": conversation })),
        ("delete_document", json!({ "id": a_doc })),
        ("retry_document", json!({ "id": a_doc })),
        ("stop", json!({ "message_id": id })),
        ("regenerate", json!({ "message_id": id, "sources": [] })),
        ("search_conversations", json!({ "query": "lantern" })),
        ("retrieve", json!({ "text": QUESTION })),
        ("snapshot", json!({})),
    ];
    for (command, args) in attempts {
        let got = bw.invoke(command, args).await?;
        let text = match &got {
            Ok(v) => v.to_string(),
            Err(e) => e.to_string(),
        };
        for (what, needle) in [
            ("A's document id", a_doc.as_str()),
            ("A's conversation id", conversation.as_str()),
            ("A's document title", a_title.as_str()),
            ("A's answer", answer_piece.as_str()),
        ] {
            // `open_conversation` may echo the id it was asked for in its error.
            let echoed = got.is_err() && what.ends_with("id");
            ensure!(
                echoed || !text.contains(needle),
                "B's `{command}` returned {what}: {text}"
            );
        }
        match command {
            "open_conversation" => {
                if let Ok(v) = &got {
                    let messages = v["messages"].as_array().map(Vec::len).unwrap_or_default();
                    ensure!(messages == 0, "B opened A's conversation: {v}");
                }
            }
            "document_pdf" => ensure!(got.is_err(), "B downloaded A's PDF"),
            "retrieve" => {
                let hits = got
                    .as_ref()
                    .ok()
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                ensure!(
                    hits.iter().all(|h| h["document_id"] == b_doc.as_str()),
                    "B retrieved chunks that are not B's: {hits:?}"
                );
            }
            _ => {}
        }
    }
    bw.screenshot("b-after-attempts").await?;

    // A's things are untouched.
    let conv = stack
        .rows(&format!(
            "conversations?id=eq.{conversation}&select=title,owner_id"
        ))
        .await;
    let conv = conv
        .first()
        .context("B's commands deleted A's conversation")?;
    ensure!(conv["title"] != "B was here", "B renamed A's conversation");
    let doc = stack
        .rows(&format!("documents?id=eq.{a_doc}&select=status"))
        .await;
    ensure!(
        doc.first().is_some_and(|d| d["status"] == "ready"),
        "B's commands changed A's document: {doc:?}"
    );
    let msg = stack
        .rows(&format!("chat_messages?id=eq.{id}&select=status"))
        .await;
    ensure!(
        msg.first().is_some_and(|m| m["status"] == "complete"),
        "B's commands changed A's answer: {msg:?}"
    );
    a2.item("document", &format!(r#"[data-id="{a_doc}"]"#))
        .await?
        .context("A's document vanished from A's second device")?;

    a1.close().await?;
    a2.close().await?;
    bw.close().await
}

/// The (document, page) of each citation in answer `id`.
async fn cited(app: &App, id: &str) -> Result<Vec<(String, String)>> {
    let css = format!(r#"{} [data-testid="citation"]"#, message_css(id));
    Ok(app
        .items_css(&css)
        .await?
        .into_iter()
        .map(|c| (c.data("documentId").to_owned(), c.data("page").to_owned()))
        .collect())
}
