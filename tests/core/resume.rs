//! An upload cut by quitting the app: on the next start it goes on from the
//! offset the server holds (TUS), or, when the file is gone, the document
//! stays `uploading` for the person to retry or delete. Only its owner can
//! resume it.

use std::path::Path;

use quire_core::{
    CancellationToken, DocumentStatus, ErrorCode, Quire, UploadEvent, UploadOptions, Uploading,
};
use quire_testkit::fixtures;
use quire_testkit::{PASSWORD_A, Stack};
use tokio::sync::mpsc;
use uuid::Uuid;

/// A real PDF of a hundred and twenty pages of text (about 300 KB).
fn big_pdf() -> Vec<u8> {
    let pages: Vec<String> = (1..=120)
        .map(|n| {
            format!(
                "Page {n}. {}",
                "Resumed lanterns float on the canal at dusk. ".repeat(40)
            )
        })
        .collect();
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    let pdf = fixtures::document_pdf(&pages);
    assert!(pdf.len() > 256 * 1024, "{} bytes", pdf.len());
    pdf
}

fn options() -> UploadOptions {
    UploadOptions {
        resumable_above: 64 * 1024,
        chunk_bytes: 64 * 1024,
        ..UploadOptions::default()
    }
}

/// Uploads `path` as A from a client of its own runtime, and ends it the
/// way quitting the app does once `cut_after` bytes are stored: the runtime
/// shut down with every task in it, nothing cleaned up. Returns the document
/// and the upload's URL.
fn cut_upload(stack: &Stack, path: &Path, cut_after: u64) -> (Uuid, String) {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                let cut = runtime.block_on(async {
                    let quire = next_start(stack).await;
                    let (events, mut received) = mpsc::unbounded_channel();
                    let paths = [path.to_owned()];
                    let uploading = {
                        let quire = quire.clone();
                        async move {
                            quire
                                .upload(&paths, &options(), Some(events), CancellationToken::new())
                                .await
                        }
                    };
                    tokio::spawn(uploading);
                    let (mut id, mut url) = (None, None);
                    while let Some(event) = received.recv().await {
                        match event {
                            UploadEvent::Registered { document_id, .. } => id = Some(document_id),
                            UploadEvent::Resumable { upload_url, .. } => url = Some(upload_url),
                            UploadEvent::Progress { sent, .. } if sent >= cut_after => break,
                            UploadEvent::Failed { error, .. } => {
                                panic!("the upload failed: {error:?}")
                            }
                            _ => {}
                        }
                    }
                    (id.expect("registered"), url.expect("a resumable upload"))
                });
                runtime.shutdown_background();
                cut
            })
            .join()
            .unwrap()
    })
}

async fn next_start(stack: &Stack) -> Quire {
    let (quire, _) = stack.client();
    quire
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    quire
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_upload_goes_on_from_the_servers_offset_on_the_next_start() {
    let stack = Stack::builder().with_companion().spawn().await;
    let a_id = stack.create_user("alice@example.com", PASSWORD_A).await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let pdf = big_pdf();
    let path = dir.path().join("Canal.pdf");
    std::fs::write(&path, &pdf).unwrap();

    let (id, url) = tokio::task::block_in_place(|| cut_upload(&stack, &path, 128 * 1024));
    let a = next_start(&stack).await;
    let documents = a.documents().await.unwrap();
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0].status, DocumentStatus::Uploading);

    // B cannot resume A's upload, nor learn it exists.
    let refused = b
        .resume_upload(id, &path, Some(&url), &options(), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::NotFound);

    let (events, mut received) = mpsc::unbounded_channel();
    a.resume_upload(id, &path, Some(&url), &options(), Some(events))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Ok(event) = received.try_recv() {
        seen.push(event);
    }
    let first_sent = seen.iter().find_map(|e| match e {
        UploadEvent::Progress { sent, .. } => Some(*sent),
        _ => None,
    });
    assert!(
        first_sent.is_some_and(|sent| sent >= 128 * 1024),
        "it went on from the server's offset: {seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, UploadEvent::Resumable { .. })),
        "no new upload was created: {seen:?}"
    );
    let settled = a.wait_settled(&[id], |_| {}).await.unwrap();
    assert!(
        a.document_pdf(id).await.unwrap() == pdf,
        "the stored bytes are the file's"
    );
    assert_eq!(settled[0].status, DocumentStatus::Ready, "{settled:?}");
    let size: i64 = stack
        .db
        .admin()
        .await
        .query_one(
            "select (metadata->>'size')::bigint from storage.objects where name = $1",
            &[&format!("{a_id}/{id}.pdf")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(size, pdf.len() as i64, "every byte arrived once");
    assert_eq!(a.document_pdf(id).await.unwrap(), pdf);
    assert!(b.documents().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_upload_whose_file_is_gone_stays_for_retry_or_delete() {
    let stack = Stack::builder().with_companion().spawn().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Canal.pdf");
    std::fs::write(&path, big_pdf()).unwrap();
    let (id, url) = tokio::task::block_in_place(|| cut_upload(&stack, &path, 64 * 1024));
    std::fs::remove_file(&path).unwrap();

    let a = next_start(&stack).await;
    let error = a
        .resume_upload(id, &path, Some(&url), &options(), None)
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::FileUnreadable);
    let shown = a.state().document(id).unwrap();
    assert_eq!(shown.status, DocumentStatus::Uploading);
    assert!(shown.upload.is_none());
    assert!(
        shown
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("Upload interrupted")),
        "{shown:?}"
    );
    let documents = a.documents().await.unwrap();
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0].status, DocumentStatus::Uploading);
    // Reading the documents again (the window's snapshot) keeps the interruption shown.
    let shown = a.state().document(id).unwrap();
    assert!(
        shown
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("Upload interrupted")),
        "{shown:?}"
    );

    // B cannot delete it; A can.
    assert_eq!(
        b.delete_document(id).await.unwrap_err().code(),
        ErrorCode::NotFound
    );
    a.delete_document(id).await.unwrap();
    assert!(a.documents().await.unwrap().is_empty());
}

/// Moves document `id`'s `updated_at` back by `hours`, as if that long had
/// passed since its last change (the trigger that stamps it is off for this
/// one statement).
async fn age(stack: &Stack, id: Uuid, hours: i32) {
    stack
        .db
        .admin()
        .await
        .batch_execute(&format!(
            "begin; set local session_replication_role = replica; \
             update public.documents set updated_at = now() - interval '{hours} hours' \
             where id = '{id}'; commit;"
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_device_sees_a_cut_upload_as_elsewhere_then_interrupted() {
    let stack = Stack::builder().with_companion().spawn().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Canal.pdf");
    let pdf = big_pdf();
    std::fs::write(&path, &pdf).unwrap();
    let (id, _url) = tokio::task::block_in_place(|| cut_upload(&stack, &path, 64 * 1024));

    // A second device: the upload is recent, so some device may still send it.
    let second = next_start(&stack).await;
    second.documents().await.unwrap();
    let shown = second.state().document(id).unwrap();
    assert_eq!(shown.status, DocumentStatus::Uploading);
    assert_eq!(shown.uploading, Some(Uploading::Elsewhere), "{shown:?}");

    // Past the server's in-flight window nothing sends it any more.
    age(&stack, id, 2).await;
    let later = next_start(&stack).await;
    later.documents().await.unwrap();
    let shown = later.state().document(id).unwrap();
    assert_eq!(shown.uploading, Some(Uploading::Interrupted), "{shown:?}");
    assert_eq!(
        later.state().documents()[0].uploading,
        Some(Uploading::Interrupted)
    );

    // Retry with a file of another size is refused and says why.
    let other = dir.path().join("Other.pdf");
    std::fs::write(&other, fixtures::document_pdf(&["Another file."])).unwrap();
    let refused = later
        .resume_upload(id, &other, None, &options(), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Conflict, "{refused:?}");
    assert!(
        refused.to_view().message.contains("not the file"),
        "{:?}",
        refused.to_view()
    );
    // Retry with the file itself sends it whole from this device.
    later
        .resume_upload(id, &path, None, &options(), None)
        .await
        .unwrap();
    let settled = later.wait_settled(&[id], |_| {}).await.unwrap();
    assert_eq!(settled[0].status, DocumentStatus::Ready, "{settled:?}");
    assert_eq!(later.document_pdf(id).await.unwrap(), pdf);
    assert_eq!(later.state().document(id).unwrap().uploading, None);

    // B sees none of it.
    assert!(b.documents().await.unwrap().is_empty());
    assert!(b.state().documents().is_empty());
}
