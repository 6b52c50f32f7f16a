//! Issue 17, items 2 and 3, through the real companion: an answer keeps the
//! chunks it was given however it ends (a reopened, stopped answer shows the
//! same sources), and Regenerate makes a version of the same answer, which a
//! second device follows live and history and export show as chosen (the
//! latest). B can neither read nor regenerate A's.

use quire_core::versions::{chosen, versions_of};
use quire_core::{ErrorCode, EventBody, MessageStatus, Quire, Role, Update};
use quire_testkit::{Stack, eventually};
use uuid::Uuid;

use crate::ask::ready_lease;

const QUESTION: &str = "What does the lease say about the deposit and the rent?";

async fn stack_with_lease() -> (Stack, Quire, tempfile::TempDir) {
    // A slow model, so there is time to stop and to watch it stream.
    let stack = Stack::builder()
        .token_delay_ms(40)
        .with_companion()
        .spawn()
        .await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    ready_lease(&a, &dir).await;
    (stack, a, dir)
}

/// A's app on another device, or started again: a new client, signed in.
async fn alice_again(stack: &Stack) -> Quire {
    let (quire, _) = stack.client();
    quire
        .sign_in_with_password("alice@example.com", quire_testkit::PASSWORD_A)
        .await
        .unwrap();
    quire
}

/// Asks `QUESTION` and stops the answer after its first piece of text.
/// Returns the conversation, the answer, and the ids of the chunks it was
/// given.
async fn ask_and_stop(a: &Quire) -> (Uuid, Uuid, Vec<Uuid>) {
    let mut answer = a.ask(None, QUESTION).await.unwrap();
    let given: Vec<Uuid> = answer.sources.iter().map(|s| s.id).collect();
    assert!(!given.is_empty());
    let stopper = answer.stopper();
    loop {
        let event = answer.next().await.unwrap().unwrap();
        if matches!(event.body, EventBody::Delta { .. }) {
            break;
        }
    }
    assert_eq!(stopper.stop().await.unwrap(), "stopped");
    let mut text = String::new();
    while let Some(event) = answer.next().await {
        if let EventBody::Complete { content, .. } = event.unwrap().body {
            text = content;
        }
    }
    assert!(!text.contains('['), "stopped before any marker: {text}");
    (
        answer.conversation_id().unwrap(),
        answer.message_id().unwrap(),
        given,
    )
}

#[tokio::test]
async fn a_stopped_answer_shows_the_same_sources_after_a_restart() {
    let (stack, a, _dir) = stack_with_lease().await;
    let (conversation, answer, given) = ask_and_stop(&a).await;

    // The app started again: a new client, nothing in memory.
    let restarted = alice_again(&stack).await;
    let history = restarted.history(conversation, None, 50).await.unwrap();
    let reopened = history
        .messages
        .iter()
        .find(|m| m.id == answer)
        .expect("the answer is in history");
    assert_eq!(reopened.status, MessageStatus::Stopped);
    assert!(reopened.citations.is_empty(), "nothing was cited yet");
    assert_eq!(
        reopened.sources.iter().map(|s| s.id).collect::<Vec<_>>(),
        given,
        "the chunks it was given, in order"
    );
    assert!(
        reopened
            .sources
            .iter()
            .all(|s| s.title == "Lease" && s.page.is_some()),
        "{:?}",
        reopened.sources
    );
    let question = history
        .messages
        .iter()
        .find(|m| m.role == Role::User)
        .unwrap();
    assert_eq!(reopened.question_id, Some(question.id));

    // B reads none of it.
    let (b, _) = stack.signed_in("bob@example.com").await;
    assert!(
        b.history(conversation, None, 50)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    assert!(b.state().message(answer).is_none());
}

#[tokio::test]
async fn regenerate_makes_a_version_that_a_second_device_follows_and_history_and_export_choose() {
    let (stack, a, _dir) = stack_with_lease().await;
    let device2 = alice_again(&stack).await;
    let follower = device2.follow();
    follower.ready().await;
    let mut updates2 = device2.state().subscribe();
    let (conversation, first, _) = ask_and_stop(&a).await;
    let sources = a
        .search(QUESTION, quire_core::search::DEFAULT_MATCH_COUNT, None)
        .await
        .unwrap();

    // B cannot regenerate A's answer: not found, as an unknown one.
    let (b, _) = stack.signed_in("bob@example.com").await;
    let refused = b
        .regenerate_with_sources(first, sources.clone())
        .await
        .err()
        .expect("B's regenerate is refused");
    assert_eq!(refused.code(), ErrorCode::NotFound);
    let unknown = b
        .regenerate_with_sources(Uuid::new_v4(), vec![])
        .await
        .err()
        .expect("an unknown answer");
    assert_eq!(unknown.code(), ErrorCode::NotFound);

    let asked = a.start_regenerate(first, sources).await.unwrap();
    assert_eq!(asked.conversation_id, conversation);
    let version = asked.message_id;
    assert_ne!(version, first);
    eventually(60, "the version is complete on both devices", async || {
        [&a, &device2].iter().all(|q| {
            q.state()
                .message(version)
                .is_some_and(|m| m.status == MessageStatus::Complete)
        })
    })
    .await;
    let text = a.state().message(version).unwrap().content;
    assert!(text.contains("deposit"), "{text}");

    // Device 2 saw it live: streaming first, then its text in pieces.
    let mut streaming_seen = false;
    let mut appended = String::new();
    while let Ok(update) = updates2.try_recv() {
        if let Update::Message {
            message,
            appended: piece,
        } = update
            && message.id == version
        {
            streaming_seen |= message.status == MessageStatus::Streaming;
            appended.push_str(piece.as_deref().unwrap_or(""));
        }
    }
    assert!(
        streaming_seen,
        "device 2 followed the version while it was written"
    );
    assert_eq!(appended, text);
    let on_device2 = device2.state().message(version).unwrap();
    let question_id = device2.state().message(first).unwrap().question_id;
    assert!(question_id.is_some());
    assert_eq!(
        on_device2.question_id, question_id,
        "a version of the same answer"
    );

    // History on a restarted app: both versions, the latest chosen.
    let restarted = alice_again(&stack).await;
    let messages = restarted
        .history(conversation, None, 50)
        .await
        .unwrap()
        .messages;
    let ids = |list: Vec<quire_core::Message>| list.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(versions_of(&messages, first)), [first, version]);
    assert_eq!(ids(chosen(&messages)), [question_id.unwrap(), version]);
    let old = messages.iter().find(|m| m.id == first).unwrap();
    assert_eq!(
        old.status,
        MessageStatus::Stopped,
        "earlier versions stay readable"
    );
    assert!(!old.content.is_empty());

    // Export shows the chosen version only.
    let markdown = restarted.export_conversation(conversation).await.unwrap();
    assert_eq!(markdown.matches("## Quire").count(), 1, "{markdown}");
    assert!(!markdown.contains("*Stopped.*"), "{markdown}");
    assert!(markdown.contains("deposit"), "{markdown}");

    // B got nothing of it.
    assert!(b.state().message(version).is_none());
    assert!(
        b.history(conversation, None, 50)
            .await
            .unwrap()
            .messages
            .is_empty()
    );
    follower.stop().await;
}
