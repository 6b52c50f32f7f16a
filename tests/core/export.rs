//! Export: a conversation as Markdown with its citations as footnotes, read
//! under the user's token, so another user's conversation is not found.

use quire_core::ErrorCode;
use quire_testkit::spawn_sandbox;
use uuid::Uuid;

#[tokio::test]
async fn a_conversation_exports_with_footnotes_and_only_for_its_owner() {
    let stack = spawn_sandbox().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let db = stack.db.admin().await;
    let id: Uuid = db
        .query_one(
            "insert into public.conversations (owner_id, title) values ($1, 'Pets') returning id",
            &[&a_id],
        )
        .await
        .unwrap()
        .get(0);
    let citations = serde_json::json!([
        {"key": "1", "title": "Lease 2024", "page": 3, "page_end": 4},
        {"key": "2", "title": "House rules", "page": 1, "page_end": 1}
    ]);
    db.execute(
        "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content) \
         values ($1, $2, 0, 'user', 'complete', 'Can I keep a cat?')",
        &[&id, &a_id],
    )
    .await
    .unwrap();
    db.execute(
        "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content, citations) \
         values ($1, $2, 1, 'assistant', 'complete', 'Cats need a deposit [1] and consent [2].', $3)",
        &[&id, &a_id, &citations],
    )
    .await
    .unwrap();

    let found = a.find_conversation("pets").await.unwrap();
    assert_eq!(found, id);
    let markdown = a.export_conversation(id).await.unwrap();
    assert_eq!(
        markdown,
        "# Pets\n\n## You\n\nCan I keep a cat?\n\n## Quire\n\n\
         Cats need a deposit [^1] and consent [^2].\n\n\
         [^1]: Lease 2024, pp. 3–4\n[^2]: House rules, p. 1\n"
    );

    // B can neither find nor export A's conversation, by id or by title.
    let error = b.export_conversation(id).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotFound);
    assert_eq!(
        b.find_conversation("Pets").await.unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert!(b.state().message(id).is_none());
    assert_eq!(b.history(id, None, 50).await.unwrap().messages.len(), 0);
}
