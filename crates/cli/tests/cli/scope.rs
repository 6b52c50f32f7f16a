//! `quire-cli ask --doc`: a question about chosen documents, named by title
//! or id; the conversation keeps them. Another user's document is not found.

use quire_testkit::client::in_keyring_session;
use quire_testkit::fixtures::{self, MANUAL};
use quire_testkit::{PASSWORD_A, Stack};

use super::{LEASE, cli, stack_file};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_about_chosen_documents_only_the_owner_can_name() {
    if !in_keyring_session("scope::ask_about_chosen_documents_only_the_owner_can_name") {
        return;
    }
    let stack = Stack::builder().with_companion().spawn().await;
    let a = stack.user("alice@example.com").await;
    stack.create_user("bob@example.com", PASSWORD_A).await;
    let lease = stack
        .ready_document(&a, "Lease.pdf", fixtures::document_pdf(&LEASE))
        .await;
    let manual = stack
        .ready_document(&a, "X200 manual.pdf", fixtures::document_pdf(&MANUAL))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = stack_file(&stack, &dir);
    for (profile, email) in [("a", "alice@example.com"), ("b", "bob@example.com")] {
        let args = [
            "--profile",
            profile,
            "login",
            "--email",
            email,
            "--password-stdin",
        ];
        let run = cli(&file, &args, &format!("{PASSWORD_A}\n")).await;
        assert!(run.ok, "{}", run.stderr);
    }

    // Positive control: without --doc the warranty is found in the manual.
    let question = "How long is the motor's warranty?";
    let run = cli(&file, &["--profile", "a", "ask", question], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("X200 manual.pdf (page 3)"),
        "{}",
        run.stdout
    );

    // Limited to the lease (by title, any case): nothing of the manual.
    let args = ["--profile", "a", "ask", "--doc", "lease", question];
    let run = cli(&file, &args, "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(!run.stdout.contains("X200"), "{}", run.stdout);
    assert!(!run.stdout.contains("five years"), "{}", run.stdout);

    // By id, two of them: both count, and the conversation keeps them.
    let (lease, manual) = (lease.to_string(), manual.to_string());
    let args = [
        "--profile",
        "a",
        "ask",
        "--doc",
        &lease,
        "--doc",
        &manual,
        question,
    ];
    let run = cli(&file, &args, "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("X200 manual.pdf (page 3)"),
        "{}",
        run.stdout
    );
    let stored = stack
        .rows(&format!(
            "conversations?select=document_ids&owner_id=eq.{}&order=created_at.asc",
            a.id
        ))
        .await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(stored[1]["document_ids"], serde_json::json!([lease]));
    assert_eq!(
        stored[2]["document_ids"],
        serde_json::json!([lease, manual])
    );

    // B names A's documents by title or id: not found, one line, no conversation.
    for name in ["Lease", lease.as_str()] {
        let args = ["--profile", "b", "ask", "--doc", name, "Are pets allowed?"];
        let run = cli(&file, &args, "").await;
        assert!(!run.ok, "B asked about A's document: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains("not found"), "{}", run.stderr);
    }
    let b_rows = stack
        .rows("conversations?select=id&title=eq.Are%20pets%20allowed%3F")
        .await;
    assert!(b_rows.is_empty(), "{b_rows:?}");
}
