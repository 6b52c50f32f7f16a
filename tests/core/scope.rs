//! Issue 17, item 1: asking about chosen documents. A conversation's scope
//! (`Conversation::document_ids`) is stored on the conversation
//! (db/app/92_conversation_scope.sql): retrieval keeps to it, a second device
//! reads it, and nobody can put another person's document in a scope.

use quire_core::{CancellationToken, DocumentStatus, ErrorCode, EventBody, Quire, UploadOptions};
use quire_testkit::fixtures;
use quire_testkit::fixtures::MANUAL;
use quire_testkit::{Stack, eventually};
use uuid::Uuid;

use crate::ask::LEASE;

/// Uploads `pages` as `name` for `quire` and waits until it is ready.
async fn ready(quire: &Quire, dir: &tempfile::TempDir, name: &str, pages: &[&str]) -> Uuid {
    let path = dir.path().join(name);
    std::fs::write(&path, fixtures::document_pdf(pages)).unwrap();
    let follower = quire.follow();
    follower.ready().await;
    let results = quire
        .upload(
            &[path],
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await;
    let id = results.into_iter().next().unwrap().unwrap().id;
    eventually(120, "the document is ready", async || {
        quire
            .state()
            .document(id)
            .is_some_and(|d| d.status == DocumentStatus::Ready)
    })
    .await;
    follower.stop().await;
    id
}

/// A limits a new conversation to her lease: a question about the manual's
/// warranty retrieves nothing of the manual, and the answer is given only
/// the lease's chunks. Her second device reads the scope with the
/// conversation, and has it live when she widens it to the manual; then
/// retrieval follows; emptied, it counts every document again.
#[tokio::test]
async fn a_scoped_question_retrieves_only_from_the_chosen_documents() {
    let stack = Stack::builder().with_companion().spawn().await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let lease = ready(&a, &dir, "Lease.pdf", &LEASE).await;
    let manual = ready(&a, &dir, "X200 manual.pdf", &MANUAL).await;

    let unscoped = a
        .retrieve(None, "How long is the motor's warranty?")
        .await
        .unwrap();
    assert!(
        unscoped.iter().any(|h| h.document_id == manual),
        "positive control"
    );

    let conversation = a
        .create_conversation_in_scope("Lease questions", &[lease, lease])
        .await
        .unwrap();
    assert_eq!(conversation.document_ids, [lease]);
    let hits = a
        .retrieve(Some(conversation.id), "How long is the motor's warranty?")
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.document_id == lease), "{hits:?}");

    let mut answer = a
        .ask(
            Some(conversation.id),
            "Are pets allowed? And the motor's warranty?",
        )
        .await
        .unwrap();
    assert!(!answer.sources.is_empty());
    assert!(answer.sources.iter().all(|h| h.document_id == lease));
    let mut given = None;
    while let Some(event) = answer.next().await {
        if let EventBody::Context { chunks, .. } = event.unwrap().body {
            given = Some(chunks);
        }
    }
    let given = given.expect("a context event");
    assert!(!given.is_empty());
    assert!(given.iter().all(|c| c.document_id == lease), "{given:?}");

    // The second device reads the scope with the conversation.
    let (device2, _) = stack.client();
    device2
        .sign_in_with_password("alice@example.com", quire_testkit::PASSWORD_A)
        .await
        .unwrap();
    let listed = device2.conversations(50, 0, false).await.unwrap();
    let seen = listed.iter().find(|c| c.id == conversation.id).unwrap();
    assert_eq!(seen.document_ids, [lease]);

    // A widens it on her first device; the second, following, has it live.
    let follower = device2.follow();
    follower.ready().await;
    let widened = a.set_scope(conversation.id, &[manual]).await.unwrap();
    assert_eq!(widened.document_ids, [manual]);
    eventually(30, "the second device has the new scope", async || {
        device2
            .state()
            .conversations()
            .iter()
            .any(|c| c.id == conversation.id && c.document_ids == [manual])
    })
    .await;
    follower.stop().await;
    let hits = a
        .retrieve(Some(conversation.id), "How long is the motor's warranty?")
        .await
        .unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.document_id == manual), "{hits:?}");

    let all = a.set_scope(conversation.id, &[]).await.unwrap();
    assert!(all.document_ids.is_empty());
    let hits = a
        .retrieve(Some(conversation.id), "pets allowed warranty motor")
        .await
        .unwrap();
    assert!(hits.iter().any(|h| h.document_id == lease));
    assert!(hits.iter().any(|h| h.document_id == manual));
}

/// B cannot put A's document in a scope of B's (a new conversation or one of
/// B's), cannot change or search in A's scoped conversation, and B's own
/// scoped search shows nothing of A's. Each refusal is "not found", the same
/// as for an id that does not exist; nothing is stored.
#[tokio::test]
async fn b_cannot_scope_to_a_document_of_a_nor_see_a_through_a_scope() {
    let stack = Stack::builder().with_companion().spawn().await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let lease = ready(&a, &dir, "Lease.pdf", &LEASE).await;
    let manual = ready(&b, &dir, "X200 manual.pdf", &MANUAL).await;
    let a_conversation = a
        .create_conversation_in_scope("Lease", &[lease])
        .await
        .unwrap();

    let err = b
        .create_conversation_in_scope("Stolen", &[lease])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    let err = b
        .create_conversation_in_scope("Unknown", &[Uuid::new_v4()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    assert!(b.conversations(50, 0, true).await.unwrap().is_empty());

    let own = b
        .create_conversation_in_scope("Mine", &[manual])
        .await
        .unwrap();
    let err = b.set_scope(own.id, &[manual, lease]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    let listed = b.conversations(50, 0, true).await.unwrap();
    assert_eq!(
        listed[0].document_ids,
        [manual],
        "the scope stays as it was"
    );

    // B's scoped search: only B's chunks, even for words of A's lease.
    let hits = b
        .retrieve(Some(own.id), "pets landlord consent")
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.document_id == manual), "{hits:?}");

    let err = b
        .retrieve(Some(a_conversation.id), "pets landlord consent")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    let err = b.set_scope(a_conversation.id, &[manual]).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");
    let Err(err) = b.ask(Some(a_conversation.id), "What about pets?").await else {
        panic!("B asked in A's conversation");
    };
    assert_eq!(err.code(), ErrorCode::NotFound, "{err}");

    let a_sees = a.conversations(50, 0, true).await.unwrap();
    assert_eq!(a_sees.len(), 1);
    assert_eq!(a_sees[0].document_ids, [lease]);
}
