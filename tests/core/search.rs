//! Retrieval through `search_chunks` under each user's own token.

use quire_core::ErrorCode;
use quire_testkit::{Stack, spawn_sandbox};
use uuid::Uuid;

/// A `ready` document of `owner` with one chunk per page, written as the
/// companion would (service role bypasses RLS).
pub async fn ready_document(stack: &Stack, owner: Uuid, title: &str, pages: &[&str]) -> Uuid {
    let db = stack.db.admin().await;
    let id: Uuid = db
        .query_one(
            "insert into public.documents (owner_id, title, byte_size, status, page_count) \
             values ($1, $2, 1000, 'ready', $3) returning id",
            &[&owner, &title, &(pages.len() as i32)],
        )
        .await
        .unwrap()
        .get(0);
    for (n, text) in pages.iter().enumerate() {
        db.execute(
            "insert into public.document_chunks (owner_id, document_id, chunk_id, page, ordinal, text) \
             values ($1, $2, gen_random_uuid(), $3, $4, $5)",
            &[&owner, &id, &(n as i32 + 1), &(n as i32), text],
        )
        .await
        .unwrap();
    }
    id
}

#[tokio::test]
async fn each_user_finds_only_their_own_chunks() {
    let stack = spawn_sandbox().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let (b, b_id) = stack.signed_in("bob@example.com").await;
    let lease = ready_document(
        &stack,
        a_id,
        "Tenancy agreement",
        &[
            "The rent is due on the first day of each month.",
            "Pets are allowed with the landlord's written consent.",
        ],
    )
    .await;
    ready_document(&stack, b_id, "Bob's lease", &["Bob pays rent weekly."]).await;

    let hits = a.search("pets allowed", 8, None).await.unwrap();

    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].document_id, lease);
    assert_eq!(hits[0].title, "Tenancy agreement");
    assert_eq!(hits[0].page, Some(2));
    assert!(hits[0].text.contains("Pets are allowed"));
    assert!(hits[0].score > 0.0);

    let bobs = b.search("pets allowed", 8, None).await.unwrap();
    assert!(bobs.is_empty(), "B sees nothing of A: {bobs:?}");
    let bobs = b.search("rent", 8, Some(&[lease])).await.unwrap();
    assert!(
        bobs.is_empty(),
        "naming A's document does not help B: {bobs:?}"
    );
    let rent = b.search("rent", 8, None).await.unwrap();
    assert_eq!(rent.len(), 1);
    assert_eq!(rent[0].title, "Bob's lease");
}

#[tokio::test]
async fn a_hit_whose_chunk_crosses_a_page_break_names_its_first_and_last_page() {
    let stack = spawn_sandbox().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let (b, b_id) = stack.signed_in("bob@example.com").await;
    let db = stack.db.admin().await;
    let mut documents = Vec::new();
    for (owner, title, page, page_end) in [
        (a_id, "Boiler manual", 3, 4),
        (b_id, "Bob's boiler manual", 1, 1),
    ] {
        let id: Uuid = db
            .query_one(
                "insert into public.documents (owner_id, title, byte_size, status, page_count) \
                 values ($1, $2, 1000, 'ready', 4) returning id",
                &[&owner, &title],
            )
            .await
            .unwrap()
            .get(0);
        db.execute(
            "insert into public.document_chunks (owner_id, document_id, chunk_id, page, page_end, ordinal, text) \
             values ($1, $2, gen_random_uuid(), $3, $4, 0, 'Bleed the radiators every autumn.')",
            &[&owner, &id, &page, &page_end],
        )
        .await
        .unwrap();
        documents.push(id);
    }

    let hits = a.search("bleed radiators", 8, None).await.unwrap();
    let bobs = b.search("bleed radiators", 8, None).await.unwrap();

    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].document_id, documents[0]);
    assert_eq!((hits[0].page, hits[0].page_end), (Some(3), Some(4)));
    assert_eq!(bobs.len(), 1, "B finds only their own: {bobs:?}");
    assert_eq!(bobs[0].document_id, documents[1]);
    assert_eq!((bobs[0].page, bobs[0].page_end), (Some(1), Some(1)));
}

#[tokio::test]
async fn searching_signed_out_is_not_signed_in() {
    let stack = spawn_sandbox().await;
    let (quire, _) = stack.client();
    let error = quire.search("anything", 8, None).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotSignedIn);
}

#[tokio::test]
async fn many_tasks_needing_a_token_share_one_refresh() {
    let stack = quire_testkit::spawn_sandbox_with(|c| c.jwt_expiry_secs = 2).await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    ready_document(&stack, a_id, "Notes", &["Quire keeps notes."]).await;
    // Let the token run past its refresh point without anyone asking.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let before = a.auth().refreshes();

    let searches = (0..20).map(|_| {
        let a = a.clone();
        tokio::spawn(async move { a.search("notes", 8, None).await })
    });
    for search in searches {
        assert_eq!(search.await.unwrap().unwrap().len(), 1);
    }

    assert!(
        a.auth().refreshes() - before <= 1,
        "one refresh served all twenty"
    );
}
