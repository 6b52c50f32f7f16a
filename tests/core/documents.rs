//! A document's file back from Storage: the owner downloads and saves
//! exactly what was uploaded; another user gets nothing; a failed document
//! is uploaded again in its place.

use quire_core::{CancellationToken, DocumentStatus, ErrorCode, UploadEvent, UploadOptions};
use quire_testkit::fixtures;
use quire_testkit::{PASSWORD_A, eventually, spawn_stack};
use tokio::sync::mpsc;

#[tokio::test]
async fn the_owner_downloads_and_saves_the_bytes_and_nobody_else_does() {
    let stack = spawn_stack().await;
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
    let stack = spawn_stack().await;
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
async fn a_reupload_replaces_only_a_failed_document_and_bad_files_keep_it() {
    let stack = spawn_stack().await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let good_path = dir.path().join("Lease.pdf");
    std::fs::write(&good_path, fixtures::text_pdf(&crate::ask::LEASE)).unwrap();
    // Passes the client's checks (it is a PDF), fails extraction (encrypted).
    let broken_path = dir.path().join("Broken.pdf");
    std::fs::write(
        &broken_path,
        fixtures::encrypted_pdf(&["A locked page."], "secret"),
    )
    .unwrap();
    let mut uploaded = a
        .upload(
            &[good_path.clone(), broken_path.clone()],
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .into_iter()
        .map(Result::unwrap);
    let (good, broken) = (uploaded.next().unwrap(), uploaded.next().unwrap());
    eventually(60, "the encrypted PDF to fail", async || {
        a.documents()
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == broken.id && d.status == DocumentStatus::Failed)
    })
    .await;

    // A document that did not fail is never replaced.
    let error = a
        .reupload(
            good.id,
            &good_path,
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::Conflict, "{error}");

    // A file that is no longer a PDF: refused, reported, the old row stays.
    let junk = dir.path().join("junk.pdf");
    std::fs::write(&junk, b"not a pdf").unwrap();
    let (events, mut received) = mpsc::unbounded_channel();
    let error = a
        .reupload(
            broken.id,
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

    // B cannot use a reupload to delete A's document: to B it does not exist.
    std::fs::write(&broken_path, fixtures::text_pdf(&["The fixed page."])).unwrap();
    let error = b
        .reupload(
            broken.id,
            &broken_path,
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotFound);
    let ids = |docs: Vec<quire_core::Document>| {
        let mut ids: Vec<_> = docs.iter().map(|d| d.id).collect();
        ids.sort();
        ids
    };
    let mut both = vec![good.id, broken.id];
    both.sort();
    assert_eq!(ids(a.documents().await.unwrap()), both);
    assert!(b.documents().await.unwrap().is_empty());

    // The person fixed the file: it replaces the failed document.
    let second = a
        .reupload(
            broken.id,
            &broken_path,
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let mut expected = vec![good.id, second.id];
    expected.sort();
    assert_eq!(
        ids(a.documents().await.unwrap()),
        expected,
        "the failed document is gone, the good one and the new one are there"
    );
    assert_ne!(second.id, broken.id);
}
