//! Conversations and history through PostgREST, as each user sees them.
//! (Answers themselves stream from the companion: see `follow.rs` for the
//! event log written the way the companion writes it.)

use quire_core::{ErrorCode, MessageStatus, Role};
use quire_testkit::{Stack, spawn_sandbox};
use uuid::Uuid;

/// A conversation of `owner` with `pairs` question/answer pairs, written as
/// the companion writes them. Returns its id and the answers' ids.
pub async fn conversation(
    stack: &Stack,
    owner: Uuid,
    title: &str,
    pairs: usize,
) -> (Uuid, Vec<Uuid>) {
    let db = stack.db.admin().await;
    let id: Uuid = db
        .query_one(
            "insert into public.conversations (owner_id, title) values ($1, $2) returning id",
            &[&owner, &title],
        )
        .await
        .unwrap()
        .get(0);
    let mut answers = Vec::new();
    for n in 0..pairs {
        let seq = (n * 2) as i32;
        db.execute(
            "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content) \
             values ($1, $2, $3, 'user', 'complete', $4)",
            &[&id, &owner, &seq, &format!("Question {n}?")],
        )
        .await
        .unwrap();
        let answer: Uuid = db
            .query_one(
                "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content) \
                 values ($1, $2, $3, 'assistant', 'complete', $4) returning id",
                &[&id, &owner, &(seq + 1), &format!("Answer {n}.")],
            )
            .await
            .unwrap()
            .get(0);
        answers.push(answer);
    }
    (id, answers)
}

#[tokio::test]
async fn each_user_lists_renames_and_deletes_only_their_own_conversations() {
    let stack = spawn_sandbox().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let (b, b_id) = stack.signed_in("bob@example.com").await;
    let (alices, _) = conversation(&stack, a_id, "Lease questions", 1).await;
    conversation(&stack, b_id, "Bob's", 1).await;

    let listed = a.conversations(50, 0, false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, alices);

    let renamed = a
        .rename_conversation(alices, "  Pets and rent ")
        .await
        .unwrap();
    assert_eq!(renamed.title.as_deref(), Some("Pets and rent"));
    assert_eq!(
        a.state().conversations()[0].title.as_deref(),
        Some("Pets and rent")
    );

    // B can neither rename nor delete A's conversation, and learns nothing.
    let error = b.rename_conversation(alices, "mine now").await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotFound);
    assert_eq!(
        b.delete_conversation(alices).await.unwrap_err().code(),
        ErrorCode::NotFound
    );
    assert_eq!(b.history(alices, None, 50).await.unwrap().messages.len(), 0);

    let archived = a.archive_conversation(alices, true).await.unwrap();
    assert!(archived.archived_at.is_some());
    assert!(a.conversations(50, 0, false).await.unwrap().is_empty());
    assert_eq!(a.conversations(50, 0, true).await.unwrap().len(), 1);

    a.delete_conversation(alices).await.unwrap();
    assert!(a.conversations(50, 0, true).await.unwrap().is_empty());
    assert!(a.state().conversations().is_empty());
    let left: i64 = stack
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from public.chat_messages where conversation_id = $1",
            &[&alices],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "its messages went with it");
}

#[tokio::test]
async fn a_new_conversation_belongs_to_its_creator() {
    let stack = spawn_sandbox().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let created = a.create_conversation("Fresh").await.unwrap();
    let owner: Uuid = stack
        .db
        .admin()
        .await
        .query_one(
            "select owner_id from public.conversations where id = $1",
            &[&created.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, a_id);
}

#[tokio::test]
async fn history_pages_backwards_oldest_first_within_a_page() {
    let stack = spawn_sandbox().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let (id, _) = conversation(&stack, a_id, "Long", 5).await;

    let latest = a.history(id, None, 4).await.unwrap();
    let seqs: Vec<i32> = latest.messages.iter().map(|m| m.seq.unwrap()).collect();
    assert_eq!(seqs, [6, 7, 8, 9]);
    assert_eq!(latest.messages[0].role, Role::User);
    assert_eq!(latest.messages[3].content, "Answer 4.");
    assert_eq!(latest.messages[3].status, MessageStatus::Complete);

    let older = a.history(id, latest.before, 4).await.unwrap();
    assert_eq!(
        older
            .messages
            .iter()
            .map(|m| m.seq.unwrap())
            .collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    let oldest = a.history(id, older.before, 4).await.unwrap();
    assert_eq!(
        oldest
            .messages
            .iter()
            .map(|m| m.seq.unwrap())
            .collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(oldest.before, None);
    assert_eq!(a.state().messages(id).len(), 10);
}

#[tokio::test]
async fn asking_without_a_companion_is_offline_after_the_sources_are_found() {
    let stack = spawn_sandbox().await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let error = a.ask(None, "anything").await.err().unwrap();
    assert_eq!(error.code(), ErrorCode::Offline);
    assert!(error.to_string().contains("companion"), "{error}");
}

#[tokio::test]
async fn search_finds_titles_and_message_text_of_ones_own_conversations_only() {
    let stack = spawn_sandbox().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let (b, b_id) = stack.signed_in("bob@example.com").await;
    let (lease, _) = conversation(&stack, a_id, "Lease questions", 1).await;
    let (pets, _) = conversation(&stack, a_id, "Pets", 1).await;
    let (other, _) = conversation(&stack, a_id, "Groceries", 1).await;
    let (bobs, _) = conversation(&stack, b_id, "Bob's lease", 1).await;
    let db = stack.db.admin().await;
    // A message of A's that mentions what B will search for, and a literal %.
    db.execute(
        "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content) \
         values ($1, $2, 2, 'user', 'complete', 'Can the PINEAPPLE tree stay? 100% sure?')",
        &[&pets, &a_id],
    )
    .await
    .unwrap();
    db.execute(
        "update public.conversations set updated_at = now() + interval '1 minute' where id = $1",
        &[&pets],
    )
    .await
    .unwrap();

    let by_title = a.search_conversations("LEASE").await.unwrap();
    let by_text = a.search_conversations("pineapple").await.unwrap();
    let both = a.search_conversations("e").await.unwrap();
    let literal = a.search_conversations("0% s").await.unwrap();
    let wildcard_is_literal = a.search_conversations("1_0").await.unwrap();

    assert_eq!(by_title.iter().map(|c| c.id).collect::<Vec<_>>(), [lease]);
    assert_eq!(by_text.iter().map(|c| c.id).collect::<Vec<_>>(), [pets]);
    assert_eq!(
        both.first().map(|c| c.id),
        Some(pets),
        "newest first: {both:?}"
    );
    assert!(both.iter().all(|c| c.id != bobs));
    assert_eq!(literal.iter().map(|c| c.id).collect::<Vec<_>>(), [pets]);
    assert!(wildcard_is_literal.is_empty(), "_ is not a wildcard");
    assert!(
        a.search_conversations("Question 0")
            .await
            .unwrap()
            .iter()
            .all(|c| [lease, pets, other].contains(&c.id))
    );

    // B's matching text never returns A's conversations.
    assert!(
        b.search_conversations("pineapple")
            .await
            .unwrap()
            .is_empty()
    );
    let bs = b.search_conversations("lease").await.unwrap();
    assert_eq!(bs.iter().map(|c| c.id).collect::<Vec<_>>(), [bobs]);
    let bs = b.search_conversations("Question").await.unwrap();
    assert_eq!(bs.iter().map(|c| c.id).collect::<Vec<_>>(), [bobs]);
    assert!(
        b.state().conversations().iter().all(|c| c.id == bobs),
        "nothing of A's entered B's state"
    );
}

#[tokio::test]
async fn one_client_signed_out_and_in_as_someone_else_keeps_nothing_of_the_first() {
    let stack = spawn_sandbox().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let b_id = stack
        .create_user("bob@example.com", quire_testkit::PASSWORD_B)
        .await;
    conversation(&stack, a_id, "Alice's lease", 1).await;
    let (bobs, _) = conversation(&stack, b_id, "Bob's", 1).await;
    a.conversations(50, 0, true).await.unwrap();
    assert_eq!(a.state().conversations().len(), 1);

    a.sign_out().await.unwrap();
    assert!(
        a.state().conversations().is_empty(),
        "signing out empties the state"
    );
    a.sign_in_with_password("bob@example.com", quire_testkit::PASSWORD_B)
        .await
        .unwrap();
    a.conversations(50, 0, true).await.unwrap();

    let ids: Vec<Uuid> = a.state().conversations().iter().map(|c| c.id).collect();
    assert_eq!(ids, [bobs]);
}
