//! storage.objects in the private `documents` bucket: a user reads their own
//! folder, and writes only the file of their own document while it is
//! `uploading`, once; nobody replaces or moves a file, and only the service
//! role deletes one (db/app/80_document_files.sql). Statements run as Storage
//! runs them: the caller's role and claims set for the transaction.

use crate::fixtures::{TwoUsers, assert_denied, count, document};
use quire_testdb::TestDb;
use uuid::Uuid;

const UPLOAD: &str = "insert into storage.objects (bucket_id, name, owner, metadata) \
                      values ($1, $2, $3, '{\"mimetype\": \"application/pdf\"}') returning id";

/// The same without RETURNING, so that only the INSERT policy is checked
/// (RETURNING would also need the SELECT policy to pass).
const UPLOAD_BLIND: &str =
    "insert into storage.objects (bucket_id, name, owner) values ($1, $2, $3)";

fn key(owner: Uuid) -> String {
    format!("{owner}/{}.pdf", Uuid::new_v4())
}

/// Quire's size limit: 50 MiB, Storage's default global `FILE_SIZE_LIMIT`,
/// which a bucket's limit may lower but never raise.
const DOCUMENT_LIMIT: i64 = 52_428_800;

#[tokio::test]
async fn the_documents_bucket_is_private_pdf_only_and_capped_at_50_mib() {
    // Arrange
    let t = TwoUsers::new().await;
    t.db.admin()
        .await
        .execute(
            "insert into storage.buckets (id, name) values ('other', 'other')",
            &[],
        )
        .await
        .unwrap();

    // Act
    let row =
        t.db.admin()
            .await
            .query_one(
                "select public, allowed_mime_types, file_size_limit \
                 from storage.buckets where id = 'documents'",
                &[],
            )
            .await
            .unwrap();
    let seen = |rows: Vec<quire_testdb::tokio_postgres::Row>| -> Vec<(String, Option<i64>)> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let read = "select id, file_size_limit from storage.buckets order by id";
    let seen_by_a = seen(t.as_a().query(read, &[]).await.unwrap());
    let seen_by_b = seen(t.as_b().query(read, &[]).await.unwrap());
    let updated_by_a = t
        .as_a()
        .execute(
            "update storage.buckets set file_size_limit = 1 where id = 'documents'",
            &[],
        )
        .await;

    // Assert
    assert!(!row.get::<_, bool>(0));
    assert_eq!(
        row.get::<_, Vec<String>>(1),
        vec!["application/pdf".to_owned()]
    );
    assert_eq!(row.get::<_, Option<i64>>(2), Some(DOCUMENT_LIMIT));
    let documents = vec![("documents".to_owned(), Some(DOCUMENT_LIMIT))];
    assert_eq!(
        seen_by_a, documents,
        "a user reads the documents bucket only"
    );
    assert_eq!(seen_by_b, documents);
    assert!(
        matches!(updated_by_a, Ok(0) | Err(_)),
        "no user changes the bucket: {updated_by_a:?}"
    );
}

/// The storage path of a new document of `owner` in `status`.
async fn document_path(db: &TestDb, owner: Uuid, status: &str) -> String {
    let id = document(db, owner, "Manual", status).await;
    format!("{owner}/{id}.pdf")
}

#[tokio::test]
async fn owner_uploads_the_file_of_their_document_being_uploaded_and_reads_it() {
    // Arrange
    let t = TwoUsers::new().await;
    let a = t.as_a();
    let name = document_path(&t.db, t.a, "uploading").await;

    // Act
    let uploaded = a.query_one(UPLOAD, &[&"documents", &name, &t.a]).await;
    let listed = a
        .query(
            "select name from storage.objects where bucket_id = 'documents'",
            &[],
        )
        .await
        .unwrap();
    let deleted = a
        .execute(
            "delete from storage.objects where bucket_id = 'documents' and name = $1",
            &[&name],
        )
        .await
        .unwrap();

    // Assert
    assert!(uploaded.is_ok(), "{uploaded:?}");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].get::<_, String>(0), name);
    assert_eq!(
        deleted, 0,
        "an owner deletes through the companion, not Storage"
    );
    assert_eq!(
        count(
            &t.db,
            "select count(*) from storage.objects where name = $1",
            &[&name]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn no_one_uploads_anywhere_but_at_their_own_document_being_uploaded() {
    // Arrange
    let t = TwoUsers::new().await;
    t.db.admin()
        .await
        .batch_execute("insert into storage.buckets (id, name) values ('avatars', 'avatars')")
        .await
        .unwrap();
    let b_uploading = document_path(&t.db, t.b, "uploading").await;
    let a_stored = document_path(&t.db, t.a, "stored").await;
    let a_ready = document_path(&t.db, t.a, "ready").await;
    let a_uploading = document_path(&t.db, t.a, "uploading").await;

    // Act
    let a = t.as_a();
    let attempts = [
        ("B's document", "documents", b_uploading.clone()),
        ("any key under A's folder", "documents", key(t.a)),
        ("A's document once stored", "documents", a_stored),
        ("A's document once ready", "documents", a_ready),
        ("the bucket's root", "documents", "loose.pdf".to_owned()),
        ("another bucket", "avatars", key(t.a)),
        (
            "A's document path with a suffix",
            "documents",
            format!("{a_uploading}/x.pdf"),
        ),
    ];
    let mut refused = Vec::new();
    for (what, bucket, name) in &attempts {
        refused.push((*what, a.execute(UPLOAD_BLIND, &[bucket, name, &t.a]).await));
    }
    let anon =
        t.db.as_anon()
            .execute(UPLOAD_BLIND, &[&"documents", &a_uploading, &t.a])
            .await;
    let b_own = t
        .as_b()
        .execute(UPLOAD_BLIND, &[&"documents", &b_uploading, &t.b])
        .await;

    // Assert
    for (what, result) in refused {
        assert!(
            matches!(&result, Err(e) if e.code() == Some(&quire_testdb::tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)),
            "{what}: {result:?}"
        );
    }
    assert_denied(anon);
    assert_eq!(b_own.ok(), Some(1), "B uploads their own document's file");
    assert_eq!(
        count(&t.db, "select count(*) from storage.objects", &[]).await,
        1
    );
}

#[tokio::test]
async fn a_file_is_written_once_and_replaced_by_no_one_not_even_storages_super_user() {
    // Arrange: Storage checks an upload before its body and writes the row
    // as its super user with an upsert (docs/platform-contract.md,
    // "Storage"): the database must refuse the replacement itself.
    let t = TwoUsers::new().await;
    let name = document_path(&t.db, t.a, "uploading").await;
    let b_name = document_path(&t.db, t.b, "uploading").await;
    t.as_a()
        .query_one(UPLOAD, &[&"documents", &name, &t.a])
        .await
        .unwrap();
    t.as_b()
        .query_one(UPLOAD, &[&"documents", &b_name, &t.b])
        .await
        .unwrap();
    let upsert = "insert into storage.objects (bucket_id, name, owner, metadata) \
                  values ('documents', $1, $2, '{\"swapped\": true}') \
                  on conflict (bucket_id, name) do update set metadata = excluded.metadata";

    // Act
    let again = t
        .as_a()
        .execute(UPLOAD_BLIND, &[&"documents", &name, &t.a])
        .await;
    let own_upsert = t.as_a().execute(upsert, &[&name, &t.a]).await;
    let super_user_upsert = t.db.as_service().execute(upsert, &[&name, &t.a]).await;
    let moved =
        t.db.as_service()
            .execute(
                "update storage.objects set name = $2 where name = $1",
                &[&name, &format!("{}/moved.pdf", t.a)],
            )
            .await;
    let moved_out =
        t.db.as_service()
            .execute(
                "update storage.objects set bucket_id = 'elsewhere' where name = $1",
                &[&name],
            )
            .await;
    // Once the companion has checked the file, nothing is written there
    // again: not after a delete, not by the service role.
    t.db.as_service()
        .execute(
            "update documents set status = 'stored' where storage_path = $1",
            &[&name],
        )
        .await
        .unwrap();
    let deleted =
        t.db.as_service()
            .execute("delete from storage.objects where name = $1", &[&name])
            .await;
    let rewritten =
        t.db.as_service()
            .execute(UPLOAD_BLIND, &[&"documents", &name, &t.a])
            .await;

    // Assert
    assert!(
        matches!(&again, Err(e) if e.code() == Some(&quire_testdb::tokio_postgres::error::SqlState::UNIQUE_VIOLATION)),
        "{again:?}"
    );
    assert_denied(own_upsert);
    assert_denied(super_user_upsert);
    assert_denied(moved);
    assert_denied(moved_out);
    assert_eq!(
        deleted.ok(),
        Some(1),
        "the companion deletes with the service role"
    );
    assert_denied(rewritten);
    assert_eq!(
        count(
            &t.db,
            "select count(*) from storage.objects where name = $1",
            &[&name]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &t.db,
            "select count(*) from storage.objects where name = $1 and metadata is distinct from '{\"swapped\": true}'",
            &[&b_name]
        )
        .await,
        1,
        "B's file is untouched"
    );
}

#[tokio::test]
async fn others_neither_see_replace_nor_delete_a_users_files() {
    // Arrange
    let t = TwoUsers::new().await;
    let name = document_path(&t.db, t.a, "uploading").await;
    t.as_a()
        .query_one(UPLOAD, &[&"documents", &name, &t.a])
        .await
        .unwrap();
    let b = t.as_b();

    // Act
    let b_lists = b
        .query("select name from storage.objects", &[])
        .await
        .unwrap();
    let b_deletes = b
        .execute("delete from storage.objects where name = $1", &[&name])
        .await
        .unwrap();
    let b_renames = b
        .execute(
            "update storage.objects set name = $2 where name = $1",
            &[&name, &key(t.b)],
        )
        .await
        .unwrap();
    let anon_lists =
        t.db.as_anon()
            .query("select name from storage.objects", &[])
            .await
            .unwrap();
    let anon_deletes =
        t.db.as_anon()
            .execute("delete from storage.objects", &[])
            .await
            .unwrap();
    // No UPDATE or DELETE policy: even the owner cannot overwrite, move or
    // delete a stored file.
    let a_overwrites = t
        .as_a()
        .execute(
            "update storage.objects set metadata = '{}' where name = $1",
            &[&name],
        )
        .await
        .unwrap();
    let a_deletes = t
        .as_a()
        .execute("delete from storage.objects where name = $1", &[&name])
        .await
        .unwrap();

    // Assert
    assert!(b_lists.is_empty());
    assert_eq!(
        (b_deletes, b_renames, anon_deletes, a_overwrites, a_deletes),
        (0, 0, 0, 0, 0)
    );
    assert!(anon_lists.is_empty());
    assert_eq!(
        count(
            &t.db,
            "select count(*) from storage.objects where name = $1 and metadata <> '{}'",
            &[&name]
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_service_role_reads_every_users_files() {
    // Arrange
    let t = TwoUsers::new().await;
    let a_name = document_path(&t.db, t.a, "uploading").await;
    let b_name = document_path(&t.db, t.b, "uploading").await;
    t.as_a()
        .query_one(UPLOAD, &[&"documents", &a_name, &t.a])
        .await
        .unwrap();
    t.as_b()
        .query_one(UPLOAD, &[&"documents", &b_name, &t.b])
        .await
        .unwrap();

    // Act
    let seen =
        t.db.as_service()
            .query("select name from storage.objects", &[])
            .await
            .unwrap();

    // Assert
    assert_eq!(seen.len(), 2);
}
