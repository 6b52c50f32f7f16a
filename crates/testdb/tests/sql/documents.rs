//! public.documents and public.document_chunks: the owner reads (and deletes
//! documents); only the service role writes; nobody else sees anything.

use crate::fixtures::{TwoUsers, assert_denied, chunk, count, document};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn owner_reads_own_documents_and_no_one_else_does() {
    // Arrange
    let t = TwoUsers::new().await;
    let doc = document(&t.db, t.a, "Glacier report", "ready").await;
    document(&t.db, t.b, "B's notes", "ready").await;

    // Act
    let seen_by_a = t
        .as_a()
        .query("select id from documents", &[])
        .await
        .unwrap();
    let seen_by_b = t
        .as_b()
        .query("select id from documents where id = $1", &[&doc])
        .await
        .unwrap();
    let seen_by_anon = t.db.as_anon().query("select id from documents", &[]).await;

    // Assert
    let ids: Vec<Uuid> = seen_by_a.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![doc]);
    assert!(seen_by_b.is_empty());
    assert_denied(seen_by_anon);
}

#[tokio::test]
async fn owner_deletes_own_document_and_its_chunks_but_not_others() {
    // Arrange
    let t = TwoUsers::new().await;
    let doc_a = document(&t.db, t.a, "Glacier report", "ready").await;
    chunk(&t.db, t.a, doc_a, 1, "The glacier retreated.").await;
    let doc_b = document(&t.db, t.b, "B's notes", "ready").await;

    // Act
    let b_deletes_a = t
        .as_b()
        .execute("delete from documents where id = $1", &[&doc_a])
        .await
        .unwrap();
    let a_deletes_b = t
        .as_a()
        .execute("delete from documents where id = $1", &[&doc_b])
        .await
        .unwrap();
    // Without a WHERE clause only the DELETE policy applies (no SELECT policy).
    let b_deletes_all = t
        .as_b()
        .execute("delete from documents", &[])
        .await
        .unwrap();
    let anon_deletes = t.db.as_anon().execute("delete from documents", &[]).await;
    let a_deletes_a = t
        .as_a()
        .execute("delete from documents where id = $1", &[&doc_a])
        .await
        .unwrap();

    // Assert
    // B's unfiltered delete took B's own document only: A's was still there
    // for A to delete.
    assert_eq!(
        (b_deletes_a, a_deletes_b, b_deletes_all, a_deletes_a),
        (0, 0, 1, 1)
    );
    assert_denied(anon_deletes);
    assert_eq!(count(&t.db, "select count(*) from documents", &[]).await, 0);
    assert_eq!(
        count(
            &t.db,
            "select count(*) from document_chunks where document_id = $1",
            &[&doc_a]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn users_cannot_insert_documents_for_themselves_or_anyone() {
    // Arrange
    let t = TwoUsers::new().await;
    let insert = "insert into documents (owner_id, title, byte_size) values ($1, 'x.pdf', 1)";

    // Act
    let own = t.as_a().execute(insert, &[&t.a]).await;
    let spoofed = t.as_a().execute(insert, &[&t.b]).await;
    let anon = t.db.as_anon().execute(insert, &[&t.a]).await;

    // Assert
    assert_denied(own);
    assert_denied(spoofed);
    assert_denied(anon);
    assert_eq!(count(&t.db, "select count(*) from documents", &[]).await, 0);
}

#[tokio::test]
async fn only_the_service_role_moves_a_document_status() {
    // Arrange
    let t = TwoUsers::new().await;
    let doc = document(&t.db, t.a, "Glacier report", "indexing").await;
    let set_ready = "update documents set status = 'ready' where id = $1";

    // Act
    let by_owner = t.as_a().execute(set_ready, &[&doc]).await;
    let owner_moves_it_to_b = t
        .as_a()
        .execute(
            "update documents set owner_id = $2 where id = $1",
            &[&doc, &t.b],
        )
        .await;
    let by_b = t.as_b().execute(set_ready, &[&doc]).await;
    let by_role_claim = t
        .as_a_with("role", json!("service_role"))
        .execute(set_ready, &[&doc])
        .await;
    let by_anon = t.db.as_anon().execute(set_ready, &[&doc]).await;
    let status_after_users: String =
        t.db.admin()
            .await
            .query_one("select status from documents where id = $1", &[&doc])
            .await
            .unwrap()
            .get(0);
    let by_service = t.db.as_service().execute(set_ready, &[&doc]).await.unwrap();

    // Assert
    assert_denied(by_owner);
    assert_denied(owner_moves_it_to_b);
    assert_denied(by_b);
    assert_denied(by_role_claim);
    assert_denied(by_anon);
    assert_eq!(status_after_users, "indexing");
    assert_eq!(by_service, 1);
}

#[tokio::test]
async fn owner_reads_own_chunks_and_no_one_else_does() {
    // Arrange
    let t = TwoUsers::new().await;
    let doc_a = document(&t.db, t.a, "Glacier report", "ready").await;
    let chunk_a = chunk(
        &t.db,
        t.a,
        doc_a,
        1,
        "The glacier retreated two kilometres.",
    )
    .await;
    let doc_b = document(&t.db, t.b, "B's notes", "ready").await;
    chunk(&t.db, t.b, doc_b, 1, "Falcon launches in March.").await;

    // Act
    let by_a = t
        .as_a()
        .query("select id from document_chunks", &[])
        .await
        .unwrap();
    let by_b = t
        .as_b()
        .query("select id from document_chunks where id = $1", &[&chunk_a])
        .await
        .unwrap();
    let by_forged_sub = t
        .as_a_with("sub", json!("not-a-uuid"))
        .query("select id from document_chunks", &[])
        .await;
    let by_no_sub =
        t.db.as_claims("authenticated", json!({"role": "authenticated"}))
            .query("select id from document_chunks", &[])
            .await
            .unwrap();
    let by_anon =
        t.db.as_anon()
            .query("select id from document_chunks", &[])
            .await;
    let by_service =
        t.db.as_service()
            .query("select id from document_chunks", &[])
            .await
            .unwrap();

    // Assert
    assert_eq!(
        by_a.iter().map(|r| r.get::<_, Uuid>(0)).collect::<Vec<_>>(),
        vec![chunk_a]
    );
    assert!(by_b.is_empty());
    assert!(
        by_forged_sub.is_err(),
        "a sub that is not a uuid must not read anything"
    );
    assert!(by_no_sub.is_empty());
    assert_denied(by_anon);
    assert_eq!(by_service.len(), 2);
}

#[tokio::test]
async fn only_the_service_role_writes_chunks() {
    // Arrange
    let t = TwoUsers::new().await;
    let doc_a = document(&t.db, t.a, "Glacier report", "ready").await;
    let chunk_a = chunk(&t.db, t.a, doc_a, 1, "The glacier retreated.").await;
    let insert = "insert into document_chunks (owner_id, document_id, chunk_id, ordinal, text) \
                  values ($1, $2, gen_random_uuid(), 9, 'planted')";

    // Act
    let a_inserts = t.as_a().execute(insert, &[&t.a, &doc_a]).await;
    let b_inserts_into_a = t.as_b().execute(insert, &[&t.b, &doc_a]).await;
    let a_updates = t
        .as_a()
        .execute(
            "update document_chunks set text = 'edited' where id = $1",
            &[&chunk_a],
        )
        .await;
    let a_deletes = t
        .as_a()
        .execute("delete from document_chunks where id = $1", &[&chunk_a])
        .await;
    let anon_inserts = t.db.as_anon().execute(insert, &[&t.a, &doc_a]).await;
    let service_puts_b_chunk_in_a_doc = t.db.as_service().execute(insert, &[&t.b, &doc_a]).await;

    // Assert
    assert_denied(a_inserts);
    assert_denied(b_inserts_into_a);
    assert_denied(a_updates);
    assert_denied(a_deletes);
    assert_denied(anon_inserts);
    let err = service_puts_b_chunk_in_a_doc.expect_err("a chunk's owner is its document's owner");
    assert_eq!(
        err.code(),
        Some(&quire_testdb::tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
    );
    let text: String =
        t.db.admin()
            .await
            .query_one(
                "select text from document_chunks where id = $1",
                &[&chunk_a],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(text, "The glacier retreated.");
    assert_eq!(
        count(&t.db, "select count(*) from document_chunks", &[]).await,
        1
    );
}
