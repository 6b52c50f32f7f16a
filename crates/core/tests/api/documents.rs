//! A document's file back from Storage: the owner downloads and saves
//! exactly what was uploaded; another user gets nothing; a failed document
//! is uploaded again in its place.

use quire_core::{CancellationToken, ErrorCode, UploadEvent, UploadOptions};
use quire_sandbox::ai::fixtures;
use tokio::sync::mpsc;

use crate::support::{PASSWORD_A, spawn_full_stack};

#[tokio::test]
async fn the_owner_downloads_and_saves_the_bytes_and_nobody_else_does() {
    let stack = spawn_full_stack(0).await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let pdf = fixtures::text_pdf(&crate::ask::LEASE);
    let path = dir.path().join("Lease.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let document = a
        .upload(
            &[path],
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .pop()
        .unwrap()
        .unwrap();

    let bytes = a.document_pdf(document.id).await.unwrap();
    let dest = dir.path().join("saved").join("My lease.pdf");
    std::fs::create_dir(dest.parent().unwrap()).unwrap();
    let written = a.save_document(document.id, &dest).await.unwrap();

    assert_eq!(bytes, pdf, "the download is the uploaded file");
    assert_eq!(written, pdf.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), pdf);
    let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [std::ffi::OsString::from("My lease.pdf")],
        "no partial file is left"
    );

    // B, with A's document id, reads and writes nothing.
    let error = b.document_pdf(document.id).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotFound);
    let b_dest = dir.path().join("bob.pdf");
    assert_eq!(
        b.save_document(document.id, &b_dest)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::NotFound
    );
    assert!(!b_dest.exists());
    // Nor through Storage directly with B's own session.
    let (b_raw, _) = stack.client();
    b_raw
        .sign_in_with_password("bob@example.com", PASSWORD_A)
        .await
        .unwrap();
    assert_eq!(
        b_raw.document_pdf(document.id).await.unwrap_err().code(),
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn saving_where_nothing_can_be_written_is_file_unwritable() {
    let stack = spawn_full_stack(0).await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Lease.pdf");
    std::fs::write(&path, fixtures::text_pdf(&crate::ask::LEASE)).unwrap();
    let document = a
        .upload(
            &[path],
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .pop()
        .unwrap()
        .unwrap();

    let error = a
        .save_document(document.id, &dir.path().join("missing-dir").join("x.pdf"))
        .await
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::FileUnwritable);
}

#[tokio::test]
async fn a_reupload_replaces_the_document_and_bad_files_keep_it() {
    let stack = spawn_full_stack(0).await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Lease.pdf");
    std::fs::write(&path, fixtures::text_pdf(&crate::ask::LEASE)).unwrap();
    let first = a
        .upload(
            std::slice::from_ref(&path),
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .pop()
        .unwrap()
        .unwrap();

    // A file that is no longer a PDF: refused, reported, the old row stays.
    let junk = dir.path().join("junk.pdf");
    std::fs::write(&junk, b"not a pdf").unwrap();
    let (events, mut received) = mpsc::unbounded_channel();
    let error = a
        .reupload(
            first.id,
            &junk,
            &UploadOptions::default(),
            Some(events),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotAPdf);
    assert!(matches!(
        received.try_recv(),
        Ok(UploadEvent::Failed { .. })
    ));
    assert!(
        a.documents()
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == first.id)
    );

    // B cannot use a reupload to delete A's document.
    b.reupload(
        first.id,
        &path,
        &UploadOptions::default(),
        None,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(
        a.documents()
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == first.id)
    );

    let second = a
        .reupload(
            first.id,
            &path,
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();

    let ids: Vec<_> = a.documents().await.unwrap().iter().map(|d| d.id).collect();
    assert_eq!(
        ids,
        [second.id],
        "the old document is gone, the new one is there"
    );
    assert_ne!(second.id, first.id);
}
