//! storage.objects in the private `documents` bucket: a user uploads, reads
//! and deletes under their own first folder only. Statements run as Storage
//! runs them: the caller's role and claims set for the transaction.

use crate::fixtures::{TwoUsers, assert_denied, count};
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

#[tokio::test]
async fn owner_uploads_reads_and_deletes_under_own_folder() {
    // Arrange
    let t = TwoUsers::new().await;
    let a = t.as_a();
    let name = key(t.a);

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
    assert_eq!(deleted, 1);
}

#[tokio::test]
async fn no_one_uploads_into_another_users_folder_or_elsewhere() {
    // Arrange
    let t = TwoUsers::new().await;
    t.db.admin()
        .await
        .batch_execute("insert into storage.buckets (id, name) values ('avatars', 'avatars')")
        .await
        .unwrap();

    // Act
    let a_into_b = t
        .as_a()
        .execute(UPLOAD_BLIND, &[&"documents", &key(t.b), &t.a])
        .await;
    let a_at_root = t
        .as_a()
        .execute(UPLOAD_BLIND, &[&"documents", &"loose.pdf", &t.a])
        .await;
    let a_other_bucket = t
        .as_a()
        .execute(UPLOAD_BLIND, &[&"avatars", &key(t.a), &t.a])
        .await;
    let anon =
        t.db.as_anon()
            .execute(UPLOAD_BLIND, &[&"documents", &key(t.a), &t.a])
            .await;

    // Assert
    assert_denied(a_into_b);
    assert_denied(a_at_root);
    assert_denied(a_other_bucket);
    assert_denied(anon);
    assert_eq!(
        count(&t.db, "select count(*) from storage.objects", &[]).await,
        0
    );
}

#[tokio::test]
async fn others_neither_see_replace_nor_delete_a_users_files() {
    // Arrange
    let t = TwoUsers::new().await;
    let name = key(t.a);
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
    // No UPDATE policy: even the owner cannot overwrite or move a stored file.
    let a_overwrites = t
        .as_a()
        .execute(
            "update storage.objects set metadata = '{}' where name = $1",
            &[&name],
        )
        .await
        .unwrap();

    // Assert
    assert!(b_lists.is_empty());
    assert_eq!(
        (b_deletes, b_renames, anon_deletes, a_overwrites),
        (0, 0, 0, 0)
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
    t.as_a()
        .query_one(UPLOAD, &[&"documents", &key(t.a), &t.a])
        .await
        .unwrap();
    t.as_b()
        .query_one(UPLOAD, &[&"documents", &key(t.b), &t.b])
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
