//! Deletion that cleans up (issue 14, item 9): however a document's row
//! goes — the owner's direct PostgREST `DELETE` behind the companion's back,
//! or the cascade when their account is deleted — its Storage object and
//! its platform source go too (db/app/97_document_deletions.sql, drained by
//! the companion), and nothing of anyone else's: a source two documents
//! share (the same bytes, docs/platform/ai-api.md §7.2) stays while one of
//! them still uses it.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use quire_testkit::fixtures::{self, MANUAL};
use quire_testkit::sse::one;
use quire_testkit::{Stack, User, eventually, json_of, spawn_stack};

/// A ready document of `user`: (id, object key, platform source).
struct Doc {
    id: Uuid,
    path: String,
    source: Uuid,
}

async fn ready(app: &Stack, user: &User, title: &str, bytes: Vec<u8>) -> Doc {
    let id = app.ready_document(user, title, bytes).await;
    let row = app
        .connect_db()
        .await
        .query_one(
            "select storage_path, source_id from public.documents where id = $1",
            &[&id],
        )
        .await
        .unwrap();
    Doc {
        id,
        path: row.get(0),
        source: row
            .get::<_, Option<Uuid>>(1)
            .expect("a ready document has a source"),
    }
}

async fn source_exists(app: &Stack, source: Uuid) -> bool {
    app.count("select count(*) from ai.sources where id = $1", &[&source])
        .await
        == 1
}

/// The source is still in Quire's knowledge base, indexed.
async fn source_indexed(app: &Stack, source: Uuid) -> bool {
    app.count(
        "select count(*) from ai.indexed_sources where source_id = $1 and index_status = 'indexed'",
        &[&source],
    )
    .await
        == 1
}

/// B's document is whole: row, object, source indexed.
async fn assert_whole(app: &Stack, doc: &Doc, whose: &str) {
    assert!(app.document_exists(doc.id).await, "{whose} document stays");
    assert!(
        app.stored_file_exists(&doc.path).await,
        "{whose} file stays in Storage"
    );
    assert!(
        source_exists(app, doc.source).await,
        "{whose} platform source stays"
    );
    assert!(
        source_indexed(app, doc.source).await,
        "{whose} source stays in the knowledge base"
    );
}

#[tokio::test]
async fn a_direct_postgrest_delete_removes_the_file_and_the_source_and_nothing_of_bs() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let mine = ready(&app, &a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL)).await;
    let bs = ready(
        &app,
        &b,
        "Shed.pdf",
        fixtures::text_pdf(&["B keeps the ladder in the shed."]),
    )
    .await;
    assert_ne!(mine.source, bs.source);

    // B cannot delete A's document, so nothing of A's goes.
    assert_eq!(
        app.delete_as(&b, "documents", &mine.id.to_string()).await,
        0
    );
    // A deletes hers straight through PostgREST, behind the companion.
    assert_eq!(
        app.delete_as(&a, "documents", &mine.id.to_string()).await,
        1
    );

    eventually(30, "A's file is deleted from Storage", async || {
        !app.stored_file_exists(&mine.path).await
    })
    .await;
    eventually(30, "A's platform source is deleted", async || {
        !source_exists(&app, mine.source).await
    })
    .await;
    assert_eq!(
        app.count(
            "select count(*) from ai.indexed_sources where source_id = $1",
            &[&mine.source]
        )
        .await,
        0,
        "its knowledge-base entry went with it"
    );
    assert_whole(&app, &bs, "B's").await;
    assert!(!app.search(&b, "ladder shed").await.is_empty());
    eventually(30, "the outbox is drained", async || {
        app.count("select count(*) from private.document_deletions", &[])
            .await
            == 0
    })
    .await;
}

#[tokio::test]
async fn deleting_an_account_removes_its_files_and_sources_and_nothing_of_bs() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let first = ready(&app, &a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL)).await;
    let second = ready(
        &app,
        &a,
        "Kettle.pdf",
        fixtures::text_pdf(&["The kettle boils a litre in three minutes."]),
    )
    .await;
    let bs = ready(
        &app,
        &b,
        "Shed.pdf",
        fixtures::text_pdf(&["B keeps the ladder in the shed."]),
    )
    .await;

    // An admin deletes A's account (GoTrue's admin API, service key): her
    // documents go with it by the foreign key's cascade.
    let response = app
        .admin(Method::DELETE, Some(&a.id.to_string()), None, None)
        .await;
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200, "{body}");
    assert!(!app.document_exists(first.id).await && !app.document_exists(second.id).await);

    for doc in [&first, &second] {
        eventually(30, "A's file is deleted from Storage", async || {
            !app.stored_file_exists(&doc.path).await
        })
        .await;
        eventually(30, "A's platform source is deleted", async || {
            !source_exists(&app, doc.source).await
        })
        .await;
    }
    assert_whole(&app, &bs, "B's").await;
    assert!(!app.search(&b, "ladder shed").await.is_empty());
}

#[tokio::test]
async fn a_source_two_documents_share_stays_while_the_other_still_uses_it() {
    let app = spawn_stack().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    // The same bytes, twice from A and once from B. The platform keeps one
    // source per sha256 (docs/platform/ai-api.md §7.2) and the companion
    // marks each file with its owner, so A's two documents share a source
    // and B's copy has one of its own.
    let bytes = fixtures::text_pdf(&MANUAL);
    let first = ready(&app, &a, "X200 manual.pdf", bytes.clone()).await;
    let second = ready(&app, &a, "X200 manual again.pdf", bytes.clone()).await;
    let bs = ready(&app, &b, "Blender.pdf", bytes).await;
    assert_eq!(first.source, second.source, "A's copies share a source");
    assert_ne!(first.source, bs.source, "B's copy is B's own");

    assert_eq!(
        app.delete_as(&a, "documents", &first.id.to_string()).await,
        1
    );
    eventually(30, "A's file is deleted from Storage", async || {
        !app.stored_file_exists(&first.path).await
    })
    .await;
    eventually(30, "the outbox is drained", async || {
        app.count("select count(*) from private.document_deletions", &[])
            .await
            == 0
    })
    .await;
    assert_whole(&app, &second, "A's other").await;
    assert_whole(&app, &bs, "B's").await;
    for user in [&a, &b] {
        let hits = app.search(user, "warranty motor").await;
        assert!(!hits.is_empty(), "{} still finds the text", user.email);
        let chunk = hits[0]["id"].clone();
        let events = app
            .ask(
                user,
                &json!({"message": "How long is the motor covered?", "chunk_ids": [chunk]}),
            )
            .await;
        let complete = one(&events, "complete");
        assert!(
            complete["payload"]["content"]
                .as_str()
                .is_some_and(|c| c.contains("five years")),
            "{} is still answered from it: {events:?}",
            user.email
        );
    }

    // A deletes her other copy: nothing uses her source now, and it goes;
    // B's stays.
    assert_eq!(
        app.delete_as(&a, "documents", &second.id.to_string()).await,
        1
    );
    eventually(30, "the source nobody uses is deleted", async || {
        !source_exists(&app, second.source).await
    })
    .await;
    assert!(!app.stored_file_exists(&second.path).await);
    assert_whole(&app, &bs, "B's").await;
    assert!(!app.search(&b, "warranty motor").await.is_empty());
}
