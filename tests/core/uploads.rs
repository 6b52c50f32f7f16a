//! Uploads: refused before any request, stored with progress, resumed after
//! a cut, many at once, through the companion to `ready`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use quire_core::{CancellationToken, DocumentStatus, ErrorCode, Quire, UploadEvent, UploadOptions};
use quire_testkit::client::MemoryTokens;
use quire_testkit::fixtures;
use quire_testkit::{PASSWORD_A, Stack, eventually, spawn_sandbox, spawn_stack};
use tokio::sync::mpsc;

use crate::proxy::Proxy;

fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A client whose API and companion traffic both go through `proxy`.
async fn client_through(stack: &Stack, proxy: &Proxy, companion: &str) -> Quire {
    let config = quire_core::Config::new(&proxy.url(), &stack.anon_key(), companion).unwrap();
    let quire = Quire::with_token_store(config, Arc::new(MemoryTokens::default()));
    quire
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    quire
}

#[tokio::test]
async fn bad_files_are_refused_before_any_request() {
    let stack = spawn_sandbox().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let proxy = Proxy::start(stack.sandbox.addr()).await;
    let companion_proxy = Proxy::start(stack.sandbox.addr()).await;
    let quire = client_through(&stack, &proxy, &companion_proxy.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let html = write(&dir, "report.pdf", b"<!doctype html><p>not a pdf</p>");
    let empty = write(&dir, "empty.pdf", b"");
    let big = write(
        &dir,
        "big.pdf",
        &[fixtures::text_pdf(&["x"]), vec![b' '; 4096]].concat(),
    );
    stack
        .db
        .admin()
        .await
        .execute(
            "update storage.buckets set file_size_limit = 4096 where id = 'documents'",
            &[],
        )
        .await
        .unwrap();
    let sent_before = proxy.uploaded.load(Ordering::SeqCst);
    let options = UploadOptions::default();
    let (events, mut received) = mpsc::unbounded_channel();

    let results = quire
        .upload(
            &[html, empty, big],
            &options,
            Some(events),
            CancellationToken::new(),
        )
        .await;

    let codes: Vec<ErrorCode> = results
        .iter()
        .map(|r| r.as_ref().unwrap_err().code())
        .collect();
    assert_eq!(
        codes,
        [
            ErrorCode::NotAPdf,
            ErrorCode::EmptyFile,
            ErrorCode::TooLarge
        ]
    );
    let sent = proxy.uploaded.load(Ordering::SeqCst) - sent_before;
    assert!(
        sent < 4096,
        "only the bucket's limit was asked for: {sent} bytes"
    );
    assert_eq!(
        companion_proxy.uploaded.load(Ordering::SeqCst),
        0,
        "nothing went to the companion"
    );
    let mut failures = 0;
    while let Ok(event) = received.try_recv() {
        assert!(matches!(event, UploadEvent::Failed { .. }), "{event:?}");
        failures += 1;
    }
    assert_eq!(failures, 3);
    let rows: i64 = stack
        .db
        .admin()
        .await
        .query_one("select count(*) from public.documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn a_file_over_the_documents_bucket_limit_is_refused_before_it_is_sent() {
    let stack = spawn_sandbox().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let proxy = Proxy::start(stack.sandbox.addr()).await;
    let companion_proxy = Proxy::start(stack.sandbox.addr()).await;
    let quire = client_through(&stack, &proxy, &companion_proxy.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let big = write(&dir, "big.pdf", &fixtures::text_pdf(&["x"]));
    // One byte over the bucket's 52,428,800 (sparse: nothing is written).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(52_428_801)
        .unwrap();
    let sent_before = proxy.uploaded.load(Ordering::SeqCst);

    let results = quire
        .upload(
            &[big],
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await;

    let error = results[0].as_ref().unwrap_err();
    assert_eq!(error.code(), ErrorCode::TooLarge, "{error}");
    assert_eq!(
        error.to_string(),
        "big.pdf is larger than 50 MB, the largest PDF Quire can store. \
         Choose a smaller PDF or split this one."
    );
    let sent = proxy.uploaded.load(Ordering::SeqCst) - sent_before;
    assert!(
        sent < 64 * 1024,
        "only the bucket's limit was asked for: {sent} bytes"
    );
    assert_eq!(
        companion_proxy.uploaded.load(Ordering::SeqCst),
        0,
        "nothing went to the companion"
    );
    let admin = stack.db.admin().await;
    for table in ["public.documents", "storage.objects"] {
        let rows: i64 = admin
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 0, "{table}");
    }
}

#[tokio::test]
async fn a_pdf_is_stored_with_progress_and_reaches_ready_on_every_device() {
    let stack = spawn_stack().await;
    let (a, a_id) = stack.signed_in("alice@example.com").await;
    let (device2, _) = (stack.client().0, ());
    device2
        .sign_in_with_password("alice@example.com", quire_testkit::PASSWORD_A)
        .await
        .unwrap();
    let follower = device2.follow();
    follower.ready().await;
    let dir = tempfile::tempdir().unwrap();
    let pdf = fixtures::text_pdf(&crate::ask::LEASE);
    let path = write(&dir, "Lease.pdf", &pdf);
    let (events, mut received) = mpsc::unbounded_channel();

    let results = a
        .upload(
            &[path],
            &UploadOptions::default(),
            Some(events),
            CancellationToken::new(),
        )
        .await;

    let document = results.into_iter().next().unwrap().unwrap();
    assert_eq!(document.title, "Lease");
    let mut last_progress = 0;
    let mut stored = false;
    while let Ok(event) = received.try_recv() {
        match event {
            UploadEvent::Progress { sent, total, .. } => {
                assert!(sent >= last_progress && sent <= total);
                last_progress = sent;
            }
            UploadEvent::Stored { document_id } => stored = document_id == document.id,
            _ => {}
        }
    }
    assert_eq!(
        last_progress,
        pdf.len() as u64,
        "progress reached the whole file"
    );
    assert!(stored);
    let object: i64 = stack
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from storage.objects where bucket_id = 'documents' and name = $1",
            &[&format!("{a_id}/{}.pdf", document.id)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(object, 1);
    eventually(120, "the second device sees it ready", async || {
        device2
            .state()
            .document(document.id)
            .is_some_and(|d| d.status == DocumentStatus::Ready)
    })
    .await;
    assert_eq!(
        device2.state().document(document.id).unwrap().page_count,
        Some(3)
    );
    follower.stop().await;
}

#[tokio::test]
async fn a_large_file_resumes_after_a_dropped_connection_instead_of_restarting() {
    let stack = spawn_stack().await;
    let (_, a_id) = stack.signed_in("alice@example.com").await;
    let proxy = Proxy::start(stack.sandbox.addr()).await;
    let quire = client_through(&stack, &proxy, stack.companion_url().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    // A real PDF with a long comment after the header: 3 MB of bytes.
    let mut pdf = b"%PDF-1.7\n%".to_vec();
    pdf.extend(std::iter::repeat_n(b'q', 3 * 1024 * 1024));
    pdf.push(b'\n');
    pdf.extend_from_slice(&fixtures::text_pdf(&["Big file."])[9..]);
    let path = write(&dir, "Big.pdf", &pdf);
    let options = UploadOptions {
        resumable_above: 256 * 1024,
        chunk_bytes: 512 * 1024,
        ..UploadOptions::default()
    };
    let sent_before = proxy.uploaded.load(Ordering::SeqCst);
    // The connection dies in the middle of the third chunk.
    proxy.cut_after_upload(1200 * 1024);

    let results = quire
        .upload(&[path], &options, None, CancellationToken::new())
        .await;

    let document = results.into_iter().next().unwrap().unwrap();
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the connection was cut once"
    );
    let sent = proxy.uploaded.load(Ordering::SeqCst) - sent_before;
    assert!(
        sent < pdf.len() as u64 + 2 * 512 * 1024,
        "resumed, not restarted: {sent} bytes sent for {}",
        pdf.len()
    );
    let size: i64 = stack
        .db
        .admin()
        .await
        .query_one(
            "select (metadata->>'size')::bigint from storage.objects where name = $1",
            &[&format!("{a_id}/{}.pdf", document.id)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(size, pdf.len() as i64, "every byte arrived once");
}

#[tokio::test]
async fn an_ingest_request_whose_answer_is_lost_is_asked_again_and_the_file_is_not_failed() {
    let stack = spawn_stack().await;
    let (_, a_id) = stack.signed_in("alice@example.com").await;
    let (bob, _) = stack.signed_in("bob@example.com").await;
    let companion: std::net::SocketAddr = stack
        .companion_url()
        .unwrap()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = Proxy::start(companion).await;
    let config =
        quire_core::Config::new(stack.api_base(), &stack.anon_key(), &proxy.url()).unwrap();
    let quire = Quire::with_token_store(config, Arc::new(MemoryTokens::default()));
    quire
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "Lease.pdf", &fixtures::text_pdf(&crate::ask::LEASE));
    // The companion queues the document; its answer never arrives.
    proxy.cut_answer_to("/ingest HTTP/1.1");

    let results = quire
        .upload(
            &[path],
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await;

    let document = results.into_iter().next().unwrap().unwrap();
    assert_eq!(
        proxy.cuts.load(Ordering::SeqCst),
        1,
        "the answer was cut once"
    );
    eventually(120, "the document is ready", async || {
        quire
            .state()
            .document(document.id)
            .is_some_and(|d| d.status == DocumentStatus::Ready)
            || quire
                .documents()
                .await
                .unwrap()
                .iter()
                .any(|d| d.id == document.id && d.status == DocumentStatus::Ready)
    })
    .await;
    let owners: Vec<(uuid::Uuid, String)> = stack
        .db
        .admin()
        .await
        .query("select owner_id, status from public.documents", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        owners,
        vec![(a_id, "ready".to_owned())],
        "one document, Alice's"
    );
    assert!(
        bob.documents().await.unwrap().is_empty(),
        "Bob sees none of it"
    );
}

#[tokio::test]
async fn ten_files_at_once_all_reach_ready() {
    let stack = spawn_stack().await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let follower = a.follow();
    follower.ready().await;
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..10)
        .map(|n| {
            let text = format!("Document number {n} talks about topic{n}.");
            write(&dir, &format!("Doc {n}.pdf"), &fixtures::text_pdf(&[&text]))
        })
        .collect();

    let results = a
        .upload(
            &paths,
            &UploadOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await;

    let ids: Vec<_> = results.into_iter().map(|r| r.unwrap().id).collect();
    eventually(300, "all ten are ready", async || {
        ids.iter().all(|id| {
            a.state()
                .document(*id)
                .is_some_and(|d| d.status == DocumentStatus::Ready)
        })
    })
    .await;
    let hits = a.search("topic7", 8, None).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].title, "Doc 7");
    follower.stop().await;
}

#[tokio::test]
async fn a_cancelled_upload_stops_and_leaves_no_document() {
    let stack = spawn_stack().await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let proxy = Proxy::start(stack.sandbox.addr()).await;
    let quire = client_through(&stack, &proxy, stack.companion_url().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut pdf = fixtures::text_pdf(&["Soon cancelled."]);
    pdf.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
    let path = write(&dir, "Cancelled.pdf", &pdf);
    // The storage connection hangs after 100 KB: only Cancel can end it.
    proxy.stall_after_upload(100 * 1024);
    let (events, mut received) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let uploading = {
        let (quire, cancel) = (quire.clone(), cancel.clone());
        tokio::spawn(async move {
            quire
                .upload(&[path], &UploadOptions::default(), Some(events), cancel)
                .await
        })
    };
    while let Some(event) = received.recv().await {
        if let UploadEvent::Progress { sent, .. } = event
            && sent > 0
        {
            break;
        }
    }

    cancel.cancel();

    let results = uploading.await.unwrap();
    assert_eq!(
        results[0].as_ref().unwrap_err().code(),
        ErrorCode::Cancelled
    );
    let rows: i64 = stack
        .db
        .admin()
        .await
        .query_one("select count(*) from public.documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "the registration was withdrawn");
    assert!(quire.state().documents().is_empty());
}

#[tokio::test]
async fn wait_settled_sees_each_change_and_ends_without_realtime_for_its_owner_only() {
    let stack = spawn_stack().await;
    let (a, _) = stack.signed_in("alice@example.com").await;
    let (b, _) = stack.signed_in("bob@example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "Lease.pdf", &fixtures::text_pdf(&crate::ask::LEASE));
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

    // No follower: the statuses come from reading the database again.
    let mut seen = Vec::new();
    let settled = a
        .wait_settled(&[document.id], |d| seen.push(d.status))
        .await
        .unwrap();

    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].id, document.id);
    assert_eq!(settled[0].status, DocumentStatus::Ready);
    assert_eq!(seen.last(), Some(&DocumentStatus::Ready), "{seen:?}");
    // B waiting on A's document learns only that there is no such document.
    let error = b.wait_settled(&[document.id], |_| {}).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::NotFound);
    assert!(b.state().document(document.id).is_none());
}
