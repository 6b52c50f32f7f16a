//! `quire-cli export`: a conversation as Markdown, named by id or title, to
//! standard output or a file; another user's conversation is not found.

use quire_testkit::client::in_keyring_session;
use quire_testkit::{PASSWORD_A, Stack};
use uuid::Uuid;

use super::{cli, stack_file};

const EXPECTED: &str = "# Pets\n\n## You\n\nCan I keep a cat?\n\n## Quire\n\n\
                        Cats need a deposit [^1].\n\n[^1]: Lease 2024, pp. 3–4\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_prints_or_writes_a_conversation_only_its_owner_can_read() {
    if !in_keyring_session("export::export_prints_or_writes_a_conversation_only_its_owner_can_read")
    {
        return;
    }
    let stack = Stack::builder().with_companion().spawn().await;
    let a = stack.create_user("alice@example.com", PASSWORD_A).await;
    stack.create_user("bob@example.com", PASSWORD_A).await;
    let db = stack.db.admin().await;
    let id: Uuid = db
        .query_one(
            "insert into public.conversations (owner_id, title) values ($1, 'Pets') returning id",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    let citations =
        serde_json::json!([{"key": "1", "title": "Lease 2024", "page": 3, "page_end": 4}]);
    db.execute(
        "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content) \
         values ($1, $2, 0, 'user', 'complete', 'Can I keep a cat?')",
        &[&id, &a],
    )
    .await
    .unwrap();
    db.execute(
        "insert into public.chat_messages \
         (conversation_id, owner_id, seq, role, status, content, citations) \
         values ($1, $2, 1, 'assistant', 'complete', 'Cats need a deposit [1].', $3)",
        &[&id, &a, &citations],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = stack_file(&stack, &dir);
    for (profile, email) in [("a", "alice@example.com"), ("b", "bob@example.com")] {
        let run = cli(
            &file,
            &[
                "--profile",
                profile,
                "login",
                "--email",
                email,
                "--password-stdin",
            ],
            &format!("{PASSWORD_A}\n"),
        )
        .await;
        assert!(run.ok, "{}", run.stderr);
    }

    let run = cli(&file, &["--profile", "a", "export", "pets"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout, EXPECTED);
    let out = dir.path().join("pets").with_extension("md");
    let run = cli(
        &file,
        &[
            "--profile",
            "a",
            "export",
            &id.to_string(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), EXPECTED);

    // B finds A's conversation neither by id nor by title.
    for name in [id.to_string(), "Pets".to_owned()] {
        let run = cli(&file, &["--profile", "b", "export", &name], "").await;
        assert!(!run.ok, "B exported A's conversation: {}", run.stdout);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.starts_with("quire-cli: "), "{}", run.stderr);
    }
}
