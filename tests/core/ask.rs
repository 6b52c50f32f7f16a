//! Asking through the real companion: sources first, the answer streaming,
//! citations pointing at the right page; Stop; a second device following.

use std::path::PathBuf;

use quire_core::{
    CancellationToken, DocumentStatus, EventBody, MessageStatus, Quire, UploadOptions,
};
use quire_testkit::fixtures;
use quire_testkit::{Stack, eventually};

/// A three-page lease; the pet rule is on page 2.
pub const LEASE: [&str; 3] = [
    "Tenancy agreement between the landlord and the tenant.\nThe rent is 900 euros per month.",
    "Pets are allowed only with the landlord's written consent.\nSmoking is not allowed inside the flat.",
    "The deposit is two months of rent.\nIt is returned within thirty days of moving out.",
];

/// Uploads the lease for `quire` and waits until it is ready.
pub async fn ready_lease(quire: &Quire, dir: &tempfile::TempDir) -> uuid::Uuid {
    let path: PathBuf = dir.path().join("Lease.pdf");
    std::fs::write(&path, fixtures::document_pdf(&LEASE)).unwrap();
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
    eventually(120, "the lease is ready", async || {
        quire
            .state()
            .document(id)
            .is_some_and(|d| d.status == DocumentStatus::Ready)
    })
    .await;
    follower.stop().await;
    id
}

async fn full(stack_delay: u64) -> (Stack, Quire, tempfile::TempDir) {
    let stack = Stack::builder()
        .token_delay_ms(stack_delay)
        .with_companion()
        .spawn()
        .await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    (stack, a, dir)
}

#[tokio::test]
async fn an_answer_streams_after_its_sources_and_cites_the_right_page() {
    let (stack, a, dir) = full(0).await;
    let lease = ready_lease(&a, &dir).await;
    let (device2, _) = stack.client();
    device2
        .sign_in_with_password("alice@example.com", quire_testkit::PASSWORD_A)
        .await
        .unwrap();
    let follower = device2.follow();
    follower.ready().await;

    let mut answer = a.ask(None, "Are pets allowed in the flat?").await.unwrap();

    assert!(!answer.sources.is_empty());
    assert_eq!(answer.sources[0].document_id, lease);
    assert_eq!(answer.sources[0].page, Some(2));
    let mut streamed = String::new();
    let mut last = None;
    while let Some(event) = answer.next().await {
        let event = event.unwrap();
        if let EventBody::Delta { text } = &event.body {
            streamed.push_str(text);
        }
        last = Some(event);
    }
    let last = last.unwrap();
    let EventBody::Complete {
        status,
        content,
        citations,
        ..
    } = &last.body
    else {
        panic!("ended with {last:?}");
    };
    assert_eq!(*status, MessageStatus::Complete);
    assert_eq!(*content, streamed);
    assert!(content.contains("Pets are allowed"), "{content}");
    assert!(
        citations
            .iter()
            .any(|c| c.document_id == Some(lease) && c.page == Some(2)),
        "{citations:?}"
    );
    let message = a.state().message(last.message_id).unwrap();
    assert_eq!(message.content, streamed);
    assert_eq!(message.status, MessageStatus::Complete);

    // The second device ends with exactly the same text.
    eventually(60, "device 2 has the answer", async || {
        device2
            .state()
            .message(last.message_id)
            .is_some_and(|m| m.status == MessageStatus::Complete)
    })
    .await;
    assert_eq!(
        device2.state().message(last.message_id).unwrap().content,
        streamed
    );
    follower.stop().await;
}

#[tokio::test]
async fn stop_ends_an_answer_as_stopped() {
    // A slow model, so there is time to stop.
    let (_stack, a, dir) = full(40).await;
    ready_lease(&a, &dir).await;
    let mut answer = a
        .ask(
            None,
            "What does the lease say about the deposit and the rent?",
        )
        .await
        .unwrap();
    let stopper = answer.stopper();
    assert!(
        answer.message_id().is_some(),
        "the ids arrive with the headers"
    );

    // First piece of text, then Stop.
    loop {
        let event = answer.next().await.unwrap().unwrap();
        if matches!(event.body, EventBody::Delta { .. }) {
            break;
        }
    }
    let status = stopper.stop().await.unwrap();
    assert_eq!(status, "stopped");
    let mut last = None;
    while let Some(event) = answer.next().await {
        last = Some(event.unwrap());
    }
    match last.map(|e| e.body) {
        Some(EventBody::Complete { status, .. }) => assert_eq!(status, MessageStatus::Stopped),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn start_answer_drives_the_answer_into_the_askers_state_only() {
    let (stack, a, dir) = full(0).await;
    let lease = ready_lease(&a, &dir).await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let question = "Are pets allowed in the flat?";
    let sources = a
        .search(question, quire_core::search::DEFAULT_MATCH_COUNT, None)
        .await
        .unwrap();

    // No follower runs: what reaches A's state comes from start_answer alone.
    let asked = a.start_answer(None, question, sources).await.unwrap();

    eventually(60, "the answer is complete in A's state", async || {
        a.state()
            .message(asked.message_id)
            .is_some_and(|m| m.status == MessageStatus::Complete)
    })
    .await;
    let answer = a.state().message(asked.message_id).unwrap();
    assert_eq!(answer.conversation_id, asked.conversation_id);
    assert!(answer.content.contains("Pets are allowed"), "{answer:?}");
    assert!(
        answer
            .citations
            .iter()
            .any(|c| c.document_id == Some(lease) && c.page == Some(2))
    );
    eventually(30, "the question and the new conversation", async || {
        a.state()
            .conversations()
            .iter()
            .any(|c| c.id == asked.conversation_id)
            && a.state()
                .messages(asked.conversation_id)
                .iter()
                .any(|m| m.role == quire_core::Role::User && m.content == question)
    })
    .await;

    // B learns nothing of it, and cannot stop it.
    assert!(b.state().message(asked.message_id).is_none());
    assert!(
        b.history(asked.conversation_id, None, 50)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert_eq!(
        b.stop(asked.message_id).await.unwrap_err().code(),
        quire_core::ErrorCode::NotFound
    );
    assert!(
        b.search_conversations("").await.unwrap().is_empty(),
        "B sees none of A's conversations"
    );
}

#[tokio::test]
async fn start_answer_continues_the_conversation_it_is_given() {
    let (stack, a, dir) = full(0).await;
    ready_lease(&a, &dir).await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let first = a
        .start_answer(None, "How much is the rent?", Vec::new())
        .await
        .unwrap();

    let second = a
        .start_answer(Some(first.conversation_id), "And the deposit?", Vec::new())
        .await
        .unwrap();

    assert_eq!(second.conversation_id, first.conversation_id);
    assert_ne!(second.message_id, first.message_id);
    // B cannot add to A's conversation.
    let error = b
        .start_answer(Some(first.conversation_id), "Mine now?", Vec::new())
        .await
        .unwrap_err();
    assert_eq!(error.code(), quire_core::ErrorCode::NotFound);
}
