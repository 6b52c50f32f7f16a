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

async fn row_exists(app: &Stack, id: Uuid) -> bool {
    app.count(
        "select count(*) from public.documents where id = $1",
        &[&id],
    )
    .await
        == 1
}

async fn object_exists(app: &Stack, path: &str) -> bool {
    app.count(
        "select count(*) from storage.objects where bucket_id = 'documents' and name = $1",
        &[&path],
    )
    .await
        == 1
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

/// `DELETE /rest/v1/documents?id=eq.<id>` under `user`'s own token, not
/// through the companion → rows deleted.
async fn delete_through_postgrest(app: &Stack, user: &User, id: Uuid) -> usize {
    let response = app
        .http
        .delete(format!("{}/rest/v1/documents", app.sandbox.api_base()))
        .query(&[("id", format!("eq.{id}"))])
        .header("apikey", app.anon_key())
        .header("Prefer", "return=representation")
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert!(status.is_success(), "{status} {body}");
    body.as_array().map_or(0, Vec::len)
}

/// B's document is whole: row, object, source indexed.
async fn assert_whole(app: &Stack, doc: &Doc, whose: &str) {
    assert!(row_exists(app, doc.id).await, "{whose} document stays");
    assert!(
        object_exists(app, &doc.path).await,
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
    assert_eq!(delete_through_postgrest(&app, &b, mine.id).await, 0);
    // A deletes hers straight through PostgREST, behind the companion.
    assert_eq!(delete_through_postgrest(&app, &a, mine.id).await, 1);

    eventually(30, "A's file is deleted from Storage", async || {
        !object_exists(&app, &mine.path).await
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
    assert!(!row_exists(&app, first.id).await && !row_exists(&app, second.id).await);

    for doc in [&first, &second] {
        eventually(30, "A's file is deleted from Storage", async || {
            !object_exists(&app, &doc.path).await
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

    assert_eq!(delete_through_postgrest(&app, &a, first.id).await, 1);
    eventually(30, "A's file is deleted from Storage", async || {
        !object_exists(&app, &first.path).await
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
    assert_eq!(delete_through_postgrest(&app, &a, second.id).await, 1);
    eventually(30, "the source nobody uses is deleted", async || {
        !source_exists(&app, second.source).await
    })
    .await;
    assert!(!object_exists(&app, &second.path).await);
    assert_whole(&app, &bs, "B's").await;
    assert!(!app.search(&b, "warranty motor").await.is_empty());
}
