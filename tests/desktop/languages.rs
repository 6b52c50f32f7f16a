//! Pages in other scripts, as people drop them: a Chinese and an Arabic page printed to PDF by
//! Chromium (from `tests/pdf-corpus`) are read, found and cited like English ones, and the
//! answers are shown in their own script and direction.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};

use crate::driver::{ANSWER, App, INGEST, Profile, message_css};
use crate::support::{self, DevStack as _, stack};

/// A corpus PDF copied under a title of its own (`<title>.pdf`), so each run uploads a
/// document with its own name.
fn corpus_pdf(dir: &std::path::Path, name: &str, title: &str) -> Result<PathBuf> {
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("pdf-corpus/pdf/{name}.pdf"));
    let to = dir.join(format!("{title}.pdf"));
    std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
    Ok(to)
}

/// Asks `question` and checks that the settled answer quotes `quote` and cites page 1 of
/// `doc_id`; takes a screenshot named `shot`.
async fn ask_and_check(
    app: &App,
    question: &str,
    quote: &str,
    doc_id: &str,
    shot: &str,
) -> Result<()> {
    let before: Vec<String> = app
        .items_css(r#"[data-testid="message"][data-role="assistant"]"#)
        .await?
        .iter()
        .map(|m| m.data("id").to_owned())
        .collect();
    app.ask(question).await?;
    let answer = app
        .wait_until(r#"message[data-role="assistant"]"#, ANSWER, |items| {
            items
                .into_iter()
                .find(|m| !before.iter().any(|id| id == m.data("id")))
        })
        .await?;
    let id = answer.data("id").to_owned();
    let answer = app.wait_answer_settled(&id).await?;
    let body = answer.body.clone().unwrap_or_default();
    ensure!(
        answer.data("status") == "complete"
            && support::squash(&body).contains(&support::squash(quote)),
        "the answer to {question:?} does not quote {quote:?}: {body:?}"
    );
    let citations = app
        .items_css(&format!(r#"{} [data-testid="citation"]"#, message_css(&id)))
        .await?;
    ensure!(
        !citations.is_empty()
            && citations
                .iter()
                .all(|c| c.data("documentId") == doc_id && c.data("page") == "1"),
        "the answer to {question:?} is not cited to page 1 of {doc_id}: {citations:?}"
    );
    app.screenshot(shot).await?;
    Ok(())
}

#[tokio::test]
async fn chinese_and_arabic_pages_are_answered_with_their_citations() -> Result<()> {
    let stack = stack()?;
    let a = stack.new_user("lang-a").await?;
    let b = stack.new_user("lang-b").await?;
    let files = tempfile::tempdir()?;
    let unique = support::unique();
    let zh_title = format!("春天的早晨 {unique}");
    let ar_title = format!("رحلة إلى البحر {unique}");
    let zh = corpus_pdf(files.path(), "chromium-zh", &zh_title)?;
    let ar = corpus_pdf(files.path(), "chromium-ar", &ar_title)?;

    let profile = Profile::new("languages")?;
    let app = App::launch("languages", "a", &profile).await?;
    app.sign_in(&a.email, &a.password).await?;
    app.drop_files(&[&zh, &ar]).await?;
    let zh_id = app
        .wait_document(&zh_title, "ready", INGEST)
        .await?
        .data("id")
        .to_owned();
    let ar_id = app
        .wait_document(&ar_title, "ready", INGEST)
        .await?
        .data("id")
        .to_owned();

    ask_and_check(
        &app,
        "孩子们背着书包走过哪里？",
        "孩子们背着书包走过石桥",
        &zh_id,
        "chinese-answer",
    )
    .await?;
    ask_and_check(
        &app,
        "متى جلسنا في مطعم صغير؟",
        "جلسنا في مطعم صغير",
        &ar_id,
        "arabic-answer",
    )
    .await?;

    let b_tokens = stack.tokens(&b).await?;
    for table in ["documents", "document_chunks", "chat_messages"] {
        let seen = stack
            .rows_as(&b_tokens, &format!("{table}?select=id"))
            .await;
        ensure!(seen.is_empty(), "B reads A's {table}: {seen:?}");
    }
    app.close().await
}
