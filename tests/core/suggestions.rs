//! First questions: suggestions come from the person's own documents (titles
//! and headings, read under their token), and each one gets a real, cited
//! answer from the local stack: the demo's two PDFs, through the companion.

use std::path::PathBuf;

use quire_core::{CancellationToken, DocumentStatus, EventBody, Quire, UploadOptions};
use quire_testkit::{Stack, eventually};
use uuid::Uuid;

const NOTHING_FOUND: &str = "I couldn't find anything about that in your documents.";

/// Uploads the demo's PDFs for `quire` and waits until they are ready.
async fn ready_demo(quire: &Quire) -> Vec<Uuid> {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../demo");
    let paths = vec![
        demo.join("Backyard Birds Field Guide.pdf"),
        demo.join("Brewline Duo Espresso Machine Manual.pdf"),
    ];
    let follower = quire.follow();
    follower.ready().await;
    let results = quire
        .upload(
            &paths,
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await;
    let ids: Vec<Uuid> = results.into_iter().map(|r| r.unwrap().id).collect();
    eventually(180, "the demo documents are ready", async || {
        ids.iter().all(|id| {
            quire
                .state()
                .document(*id)
                .is_some_and(|d| d.status == DocumentStatus::Ready)
        })
    })
    .await;
    follower.stop().await;
    ids
}

/// The complete answer to `question`: its text and the documents it cites.
async fn answer(quire: &Quire, question: &str) -> (String, Vec<Uuid>) {
    let mut answer = quire.ask(None, question).await.unwrap();
    while let Some(event) = answer.next().await {
        if let EventBody::Complete {
            content, citations, ..
        } = event.unwrap().body
        {
            let cited = citations.iter().filter_map(|c| c.document_id).collect();
            return (content, cited);
        }
    }
    panic!("the answer to {question:?} ended without completing");
}

#[tokio::test]
async fn every_suggestion_comes_from_the_documents_and_gets_a_cited_answer() {
    let stack = Stack::builder().with_companion().spawn().await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    assert_eq!(a.suggestions().await.unwrap(), Vec::<String>::new());
    let documents = ready_demo(&a).await;

    let suggestions = a.suggestions().await.unwrap();
    assert_eq!(suggestions.len(), 3, "{suggestions:?}");
    assert_eq!(suggestions[0], "Summarise the key points of my documents");
    for suggestion in &suggestions[1..] {
        assert!(
            suggestion.starts_with("What do my documents say about "),
            "{suggestions:?}"
        );
    }

    for suggestion in &suggestions {
        let (content, cited) = answer(&a, suggestion).await;
        assert_ne!(content, NOTHING_FOUND, "{suggestion}");
        assert!(!cited.is_empty(), "{suggestion}: {content}");
        assert!(
            cited.iter().all(|id| documents.contains(id)),
            "{suggestion}"
        );
        assert!(!content.contains("]?"), "{suggestion}: {content}");
    }
    let (summary, cited) = answer(&a, &suggestions[0]).await;
    for document in &documents {
        assert!(cited.contains(document), "{summary}");
    }
    assert!(
        !summary.contains("Woodpecker or Hairy Woodpecker ["),
        "{summary}"
    );

    // B has no documents: no suggestions, and nothing of A's in an answer.
    assert_eq!(b.suggestions().await.unwrap(), Vec::<String>::new());
    let (_, cited) = answer(&b, &suggestions[0]).await;
    assert!(cited.is_empty());
}
