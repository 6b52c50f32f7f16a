//! Uploads (ARCHITECTURE.md, "Upload"): for each file, before anything is sent,
//! check that its bytes say PDF and its size is within the limit; then ask
//! the companion to register it, stream it from disk to Storage with
//! progress (TUS resumable upload above the single-request threshold,
//! resuming after a dropped connection), and ask the companion to ingest
//! it. Many files run at once with bounded concurrency; a batch can be
//! cancelled (a cancelled file's registration is deleted).
//!
//! Storage details (docs/platform/supabase.md §4): the raw-body upload is
//! `POST /storage/v1/object/documents/<uid>/<id>.pdf`; Storage reports most
//! errors as HTTP 400 with the real status in the body; TUS errors carry the
//! real status and a plain-text body. A retried single upload that meets 409
//! means the earlier attempt landed (the bucket never overwrites).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use quire_protocol::backoff::Backoff;
use reqwest::{Body, StatusCode};
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{Error, ErrorView, Result, Service};
use crate::http;
use crate::quire::Quire;
use crate::state::{Document, DocumentStatus};

/// How uploads behave. The largest file is not an option: it is the
/// `documents` bucket's `file_size_limit`, asked of Storage ([`size_limit`]).
/// Defaults: TUS above 6 MiB (Supabase's advice for resumable uploads), 6 MiB TUS
/// chunks (what Storage's S3 backend requires), three files at once.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Files larger than this go through TUS.
    pub resumable_above: u64,
    /// TUS chunk size (all chunks but the last).
    pub chunk_bytes: u64,
    /// Files uploaded at once.
    pub concurrency: usize,
    /// Attempts per request before a file fails (transient errors only).
    pub attempts: u32,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            resumable_above: 6 * 1024 * 1024,
            chunk_bytes: 6 * 1024 * 1024,
            concurrency: 3,
            attempts: 8,
        }
    }
}

/// What happens to one file, for a progress view.
#[derive(Debug, Clone, PartialEq, Serialize, ts_rs::TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UploadEvent {
    /// The file passed the checks.
    Checked {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        bytes: u64,
    },
    /// The companion registered it.
    Registered {
        /// The file.
        path: PathBuf,
        /// The document it became.
        document_id: Uuid,
    },
    /// Bytes stored so far.
    Progress {
        /// The document being uploaded.
        document_id: Uuid,
        /// Bytes sent so far.
        sent: u64,
        /// The file's size in bytes.
        total: u64,
    },
    /// A resumable (TUS) upload was created at `upload_url`: kept, an upload
    /// cut by quitting goes on from where the server stands
    /// ([`Quire::resume_upload`]).
    Resumable {
        /// The document being uploaded.
        document_id: Uuid,
        /// The upload's URL on Storage.
        upload_url: String,
    },
    /// Stored and handed to ingestion; status changes follow in the state.
    Stored {
        /// The document stored.
        document_id: Uuid,
    },
    /// It failed (or was refused before sending).
    Failed {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: ErrorView,
    },
}

/// A file that passed the checks.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub path: PathBuf,
    pub bytes: u64,
    pub title: String,
}

/// A PDF's header (`%PDF-`) must appear in its first 1024 bytes, where PDF
/// readers look for it.
const HEADER_WINDOW: usize = 1024;

/// How many times registering waits for room when the companion says too
/// many of the user's documents are in flight (about ten minutes).
const REGISTER_WAITS: u32 = 70;

/// Checks a file before anything is sent: it exists, is not empty, is within
/// `max_bytes`, and its bytes say PDF (not its name).
pub async fn check_pdf(path: &Path, max_bytes: u64) -> Result<u64> {
    check(path, max_bytes).await.map(|c| c.bytes)
}

pub(crate) async fn check(path: &Path, max_bytes: u64) -> Result<Checked> {
    let unreadable = |source| Error::FileUnreadable {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    let metadata = file.metadata().await.map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(Error::NotAPdf {
            path: path.to_owned(),
        });
    }
    let bytes = metadata.len();
    if bytes == 0 {
        return Err(Error::EmptyFile {
            path: path.to_owned(),
        });
    }
    if bytes > max_bytes {
        return Err(Error::TooLarge {
            path: path.to_owned(),
            size: bytes,
            limit: max_bytes,
        });
    }
    let mut head = vec![0u8; HEADER_WINDOW.min(bytes as usize)];
    file.read_exact(&mut head).await.map_err(unreadable)?;
    if !looks_like_pdf(&head) {
        return Err(Error::NotAPdf {
            path: path.to_owned(),
        });
    }
    let title = path
        .file_stem()
        .map(|s| s.to_string_lossy().trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "Untitled".to_owned());
    Ok(Checked {
        path: path.to_owned(),
        bytes,
        title,
    })
}

/// Whether `head` (a file's first bytes) holds the PDF header `%PDF-1.x` /
/// `%PDF-2.x`.
pub fn looks_like_pdf(head: &[u8]) -> bool {
    head.windows(7)
        .any(|w| w.starts_with(b"%PDF-") && (w[5] == b'1' || w[5] == b'2') && w[6] == b'.')
}

/// The largest PDF Quire stores: the `documents` bucket's `file_size_limit`,
/// read with `GET /storage/v1/bucket/documents` under the user's token
/// (Storage reads the bucket as the caller; db/app lets a signed-in user read
/// this one bucket). No file byte is sent before it is known
/// (docs/platform-contract.md).
pub async fn size_limit(quire: &Quire) -> Result<u64> {
    #[derive(serde::Deserialize)]
    struct Bucket {
        file_size_limit: Option<u64>,
    }
    let url = storage_url(quire, &["bucket"], "documents")?;
    let response = crate::rest::authorized(&quire.auth, Service::Storage, |token| {
        quire
            .api
            .http
            .get(&url)
            .header("apikey", quire.api.anon_key())
            .bearer_auth(secrecy::ExposeSecret::expose_secret(token))
    })
    .await?;
    let bucket: Bucket = http::json(Service::Storage, response).await?;
    bucket
        .file_size_limit
        .filter(|limit| *limit > 0)
        .ok_or_else(|| {
            Error::NotConfigured(
                "the documents bucket has no size limit; the platform's database setup for Quire \
                 was not applied"
                    .into(),
            )
        })
}

/// Uploads `paths` (at most `options.concurrency` at once); the results are
/// in the order of `paths`. Every file is checked before any request is made
/// for any of them; files that fail the check are reported and skipped.
pub(crate) async fn upload_all(
    quire: &Quire,
    paths: &[PathBuf],
    options: &UploadOptions,
    events: Option<mpsc::UnboundedSender<UploadEvent>>,
    cancel: CancellationToken,
) -> Vec<Result<Document>> {
    let report = |event: UploadEvent| {
        if let Some(events) = &events {
            let _ = events.send(event);
        }
    };
    let mut checked: Vec<Option<Result<Checked>>> = Vec::with_capacity(paths.len());
    let mut limit = None;
    for path in paths {
        let result = match limit {
            Some(limit) => check(path, limit).await,
            None => match size_limit(quire).await {
                Ok(known) => {
                    limit = Some(known);
                    check(path, known).await
                }
                Err(e) => Err(e),
            },
        };
        match &result {
            Ok(c) => report(UploadEvent::Checked {
                path: c.path.clone(),
                bytes: c.bytes,
            }),
            Err(e) => report(UploadEvent::Failed {
                path: path.clone(),
                error: e.to_view(),
            }),
        }
        checked.push(Some(result));
    }
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let tasks: Vec<_> = checked
        .into_iter()
        .map(|result| {
            let (quire, options, events, cancel, permits) = (
                quire.clone(),
                options.clone(),
                events.clone(),
                cancel.clone(),
                permits.clone(),
            );
            tokio::spawn(async move {
                let file = result.expect("each file once")?;
                let _permit = permits
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Cancelled)?;
                let path = file.path.clone();
                let outcome = upload_one(&quire, file, &options, events.as_ref(), &cancel).await;
                if let (Err(e), Some(events)) = (&outcome, &events) {
                    let _ = events.send(UploadEvent::Failed {
                        path,
                        error: e.to_view(),
                    });
                }
                outcome
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap_or_else(|e| {
            Err(Error::unexpected(
                Service::Storage,
                format!("the upload task failed: {e}"),
                "",
            ))
        }));
    }
    results
}

async fn upload_one(
    quire: &Quire,
    file: Checked,
    options: &UploadOptions,
    events: Option<&mpsc::UnboundedSender<UploadEvent>>,
    cancel: &CancellationToken,
) -> Result<Document> {
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    // The companion limits documents in flight per user (429): wait for
    // ingestion to make room rather than fail the file.
    let mut waits = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let registered = loop {
        match quire
            .companion
            .register(&file.title, file.bytes, None)
            .await
        {
            Err(Error::RateLimited { .. }) if waits.attempts() < REGISTER_WAITS => {
                tokio::select! {
                    () = cancel.cancelled() => return Err(Error::Cancelled),
                    () = tokio::time::sleep(waits.next()) => {}
                }
            }
            other => break other?,
        }
    };
    let id = registered.document_id;
    if let Some(events) = events {
        let _ = events.send(UploadEvent::Registered {
            path: file.path.clone(),
            document_id: id,
        });
    }
    // The epoch: any news from the server about this document is newer.
    quire.state.apply_document(&Document {
        id,
        title: file.title.clone(),
        status: DocumentStatus::Uploading,
        error: None,
        page_count: None,
        byte_size: i64::try_from(file.bytes).ok(),
        updated_at: chrono::DateTime::UNIX_EPOCH,
        // Sent from here from the start (not "uploading elsewhere").
        upload: Some(crate::state::UploadProgress {
            sent: 0,
            total: file.bytes,
        }),
        uploading: None,
    });
    let progress = |sent: u64| {
        quire.state.upload_progress(id, sent, file.bytes);
        if let Some(events) = events {
            let _ = events.send(UploadEvent::Progress {
                document_id: id,
                sent,
                total: file.bytes,
            });
        }
    };
    let stored = tokio::select! {
        () = cancel.cancelled() => Err(Error::Cancelled),
        stored = async {
            if file.bytes > options.resumable_above {
                let created = |url: &str| {
                    if let Some(events) = events {
                        let _ = events.send(UploadEvent::Resumable {
                            document_id: id,
                            upload_url: url.to_owned(),
                        });
                    }
                };
                let storage = &registered.storage_path;
                resumable(quire, &file, storage, options, &progress, None, &created).await
            } else {
                single(quire, &file, &registered.storage_path, options, &progress).await
            }
        } => stored,
    };
    if let Err(e) = stored {
        // Do not leave a document that will never arrive.
        if let Err(cleanup) = quire.companion.delete_document(id).await {
            tracing::warn!(error = %cleanup, "could not delete an abandoned registration");
        }
        quire.state.remove_document(id);
        return Err(e);
    }
    // Asking again is harmless (the companion answers a queued document's
    // status), so a 502 or a cut connection is tried again, not the file
    // failed with its bytes already stored.
    retrying(options, || quire.companion.ingest(id)).await?;
    if let Some(events) = events {
        let _ = events.send(UploadEvent::Stored { document_id: id });
    }
    Ok(quire.state.document(id).unwrap_or(Document {
        id,
        title: file.title,
        status: DocumentStatus::Uploading,
        error: None,
        page_count: None,
        byte_size: i64::try_from(file.bytes).ok(),
        updated_at: chrono::DateTime::UNIX_EPOCH,
        upload: None,
        uploading: None,
    }))
}

/// Goes on with the upload of document `id` from `path` after it was cut
/// (the app quit): the document must still be `uploading`, and the file must
/// still be a PDF of the size registered. A resumable upload continues from
/// the offset the server holds at `upload_url`; a small file is sent again
/// whole (a 409 says the earlier run had stored it). Then ingestion starts.
/// Unlike a fresh upload, a failure leaves the document for Retry or Delete.
pub(crate) async fn resume(
    quire: &Quire,
    id: Uuid,
    path: &Path,
    upload_url: Option<&str>,
    options: &UploadOptions,
    events: Option<&mpsc::UnboundedSender<UploadEvent>>,
) -> Result<Document> {
    let row = crate::documents::row(quire, id).await?;
    if row.status != DocumentStatus::Uploading {
        return Err(Error::Conflict {
            service: Service::Database,
            message: format!(
                "only a document whose upload was cut can be resumed; this one is {}",
                row.status.as_str()
            ),
        });
    }
    let document = Document {
        id,
        title: row.title,
        status: DocumentStatus::Uploading,
        error: None,
        page_count: None,
        byte_size: row.byte_size,
        updated_at: row.updated_at,
        // Sent from here from now on (not "uploading elsewhere").
        upload: Some(crate::state::UploadProgress {
            sent: 0,
            total: row
                .byte_size
                .and_then(|b| u64::try_from(b).ok())
                .unwrap_or(0),
        }),
        uploading: None,
    };
    quire.state.apply_document(&document);
    let file = check(path, size_limit(quire).await?).await?;
    if row.byte_size != i64::try_from(file.bytes).ok() {
        return Err(Error::Conflict {
            service: Service::Storage,
            message: format!(
                "{} is not the file this upload began with (its size differs)",
                path.display()
            ),
        });
    }
    let progress = |sent: u64| {
        quire.state.upload_progress(id, sent, file.bytes);
        if let Some(events) = events {
            let _ = events.send(UploadEvent::Progress {
                document_id: id,
                sent,
                total: file.bytes,
            });
        }
    };
    let created = |url: &str| {
        if let Some(events) = events {
            let _ = events.send(UploadEvent::Resumable {
                document_id: id,
                upload_url: url.to_owned(),
            });
        }
    };
    let stored = if file.bytes > options.resumable_above {
        resumable(
            quire,
            &file,
            &row.storage_path,
            options,
            &progress,
            upload_url,
            &created,
        )
        .await
    } else {
        match single(quire, &file, &row.storage_path, options, &progress).await {
            Err(Error::Conflict { .. }) => {
                progress(file.bytes);
                Ok(())
            }
            other => other,
        }
    };
    stored?;
    retrying(options, || quire.companion.ingest(id)).await?;
    if let Some(events) = events {
        let _ = events.send(UploadEvent::Stored { document_id: id });
    }
    Ok(quire.state.document(id).unwrap_or(document))
}

/// The file from `offset`, `len` bytes, as a body that reports progress.
async fn body_from(
    path: &Path,
    offset: u64,
    len: u64,
    base: u64,
) -> Result<(Body, tokio::sync::mpsc::UnboundedReceiver<u64>)> {
    let unreadable = |source| Error::FileUnreadable {
        path: path.to_owned(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(unreadable)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut sent = base;
    let stream = ReaderStream::with_capacity(file.take(len), 64 * 1024).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            sent += bytes.len() as u64;
            let _ = tx.send(sent);
        }
        chunk
    });
    Ok((Body::wrap_stream(stream), rx))
}

/// Reports progress from `rx` while `request` runs (at most every 256 KiB
/// or at the end, so the state model is not flooded).
async fn with_progress<T>(
    request: impl std::future::Future<Output = T>,
    mut rx: mpsc::UnboundedReceiver<u64>,
    progress: &(dyn Fn(u64) + Sync),
) -> T {
    let mut last = 0u64;
    let watch = async {
        while let Some(sent) = rx.recv().await {
            if sent >= last + 256 * 1024 {
                last = sent;
                progress(sent);
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = request => result,
        () = watch => unreachable!("pending never ends"),
    }
}

/// One raw-body `POST` of the whole file, retried on transient failures.
async fn single(
    quire: &Quire,
    file: &Checked,
    storage_path: &str,
    options: &UploadOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let url = object_url(quire, storage_path)?;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let generation = quire.auth.generation();
        let token = quire.auth.access_token().await?;
        let (body, rx) = body_from(&file.path, 0, file.bytes, 0).await?;
        let request = quire
            .api
            .http
            .post(&url)
            .header("apikey", quire.api.anon_key())
            .bearer_auth(token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/pdf")
            .header(reqwest::header::CONTENT_LENGTH, file.bytes)
            .header("cache-control", "max-age=3600")
            .body(body);
        let outcome = with_progress(http::send(Service::Storage, request), rx, progress).await;
        let error = match outcome {
            Ok(response) if response.status().is_success() => {
                progress(file.bytes);
                return Ok(());
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                match http::error_from(Service::Storage, status, &text) {
                    // A retry that meets its own earlier, successful attempt.
                    Error::Conflict { .. } if attempt > 1 => {
                        progress(file.bytes);
                        return Ok(());
                    }
                    Error::NotSignedIn if attempt == 1 => {
                        if let Some(generation) = generation {
                            quire.auth.rejected(generation).await?;
                        }
                        continue;
                    }
                    other => other,
                }
            }
            Err(e) => e,
        };
        if !error.is_transient() || attempt >= options.attempts {
            return Err(error);
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

const TUS_VERSION: &str = "1.0.0";

/// A TUS upload: create (or, given the `known` upload of an earlier run,
/// ask it where it stands), then `PATCH` chunk by chunk; after a failure ask
/// the server where it stands (`HEAD`) and go on from there. `created` hears
/// a new upload's URL.
async fn resumable(
    quire: &Quire,
    file: &Checked,
    storage_path: &str,
    options: &UploadOptions,
    progress: &(dyn Fn(u64) + Sync),
    known: Option<&str>,
    created: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    if let Some(location) = known {
        match head(quire, location).await {
            Ok(offset) => {
                progress(offset);
                return patch_from(quire, file, location, offset, options, progress).await;
            }
            // Expired or never finished creating: start again.
            Err(Error::NotFound { .. } | Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let metadata = format!(
        "bucketName {},objectName {},contentType {},cacheControl {}",
        b64("documents"),
        b64(storage_path),
        b64("application/pdf"),
        b64("3600")
    );
    let create_url = quire.api.url("/storage/v1/upload/resumable");
    let location = retrying(options, || async {
        let token = quire.auth.access_token().await?;
        let response = http::send(
            Service::Storage,
            quire
                .api
                .http
                .post(&create_url)
                .header("apikey", quire.api.anon_key())
                .bearer_auth(token.expose_secret())
                .header("tus-resumable", TUS_VERSION)
                .header("upload-length", file.bytes)
                .header("upload-metadata", &metadata),
        )
        .await?;
        if response.status() != StatusCode::CREATED {
            return Err(tus_error(response).await);
        }
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::unexpected(Service::Storage, "a TUS upload without a Location", "")
            })
    })
    .await?;
    created(&location);
    patch_from(quire, file, &location, 0, options, progress).await
}

/// The `PATCH`es of a TUS upload from `offset` to the end of the file.
async fn patch_from(
    quire: &Quire,
    file: &Checked,
    location: &str,
    mut offset: u64,
    options: &UploadOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let mut failures = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    while offset < file.bytes {
        let len = options.chunk_bytes.max(1).min(file.bytes - offset);
        let outcome = patch(quire, file, location, offset, len, progress).await;
        match outcome {
            Ok(next) => {
                offset = next;
                failures.reset();
                progress(offset);
            }
            Err(e)
                if (e.is_transient() || matches!(e, Error::Conflict { .. }))
                    && failures.attempts() + 1 < options.attempts =>
            {
                tracing::info!(error = %e, offset, "resumable upload interrupted; resuming");
                tokio::time::sleep(failures.next()).await;
                // Where the server stands now (it may have kept part of the chunk).
                match head(quire, location).await {
                    Ok(at) => offset = at,
                    Err(e) if e.is_transient() => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn patch(
    quire: &Quire,
    file: &Checked,
    location: &str,
    offset: u64,
    len: u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let token = quire.auth.access_token().await?;
    let (body, rx) = body_from(&file.path, offset, len, offset).await?;
    let request = quire
        .api
        .http
        .patch(location)
        .header("apikey", quire.api.anon_key())
        .bearer_auth(token.expose_secret())
        .header("tus-resumable", TUS_VERSION)
        .header("upload-offset", offset)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/offset+octet-stream",
        )
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(body);
    let response = with_progress(http::send(Service::Storage, request), rx, progress).await?;
    if response.status() != StatusCode::NO_CONTENT {
        return Err(tus_error(response).await);
    }
    upload_offset(&response)
}

async fn head(quire: &Quire, location: &str) -> Result<u64> {
    let token = quire.auth.access_token().await?;
    let response = http::send(
        Service::Storage,
        quire
            .api
            .http
            .head(location)
            .header("apikey", quire.api.anon_key())
            .bearer_auth(token.expose_secret())
            .header("tus-resumable", TUS_VERSION),
    )
    .await?;
    if !response.status().is_success() {
        return Err(tus_error(response).await);
    }
    upload_offset(&response)
}

fn upload_offset(response: &reqwest::Response) -> Result<u64> {
    response
        .headers()
        .get("upload-offset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            Error::unexpected(Service::Storage, "a TUS answer without Upload-Offset", "")
        })
}

/// TUS errors: the real status, a plain-text message.
async fn tus_error(response: reqwest::Response) -> Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    http::error_from(Service::Storage, status, &text)
}

/// Runs `attempt` until it succeeds, fails for good, or runs out of tries.
async fn retrying<T, F, Fut>(options: &UploadOptions, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match attempt().await {
            // The try that just failed was number `attempts() + 1`.
            Err(e) if e.is_transient() && backoff.attempts() + 1 < options.attempts => {
                tokio::time::sleep(backoff.next()).await;
            }
            other => return other,
        }
    }
}

/// `<api_url>/storage/v1/object/documents/<key>`, each key segment
/// percent-encoded.
fn object_url(quire: &Quire, key: &str) -> Result<String> {
    storage_url(quire, &["object", "documents"], key)
}

/// `<api_url>/storage/v1/<route…>/<key>`, each key segment percent-encoded.
pub(crate) fn storage_url(quire: &Quire, route: &[&str], key: &str) -> Result<String> {
    let mut url = quire.api.config.api_url.clone();
    url.path_segments_mut()
        .map_err(|()| Error::NotConfigured("api_url cannot have a path".into()))?
        .pop_if_empty()
        .extend(["storage", "v1"])
        .extend(route)
        .extend(key.split('/'));
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[tokio::test]
    async fn the_bytes_decide_not_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let real = write(&dir, "lease.bin", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n");
        let fake = write(&dir, "fake.pdf", b"<html>not a pdf</html>");
        assert_eq!(check(&real, 1000).await.unwrap().title, "lease");
        assert_eq!(
            check(&fake, 1000).await.unwrap_err().code(),
            crate::ErrorCode::NotAPdf
        );
    }

    #[tokio::test]
    async fn a_header_after_some_junk_is_still_a_pdf_but_not_after_1024_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut junk = vec![b' '; 500];
        junk.extend_from_slice(b"%PDF-1.4\n");
        assert!(check(&write(&dir, "a.pdf", &junk), 10_000).await.is_ok());
        let mut late = vec![b' '; 1100];
        late.extend_from_slice(b"%PDF-1.4\n");
        assert_eq!(
            check(&write(&dir, "b.pdf", &late), 10_000)
                .await
                .unwrap_err()
                .code(),
            crate::ErrorCode::NotAPdf
        );
        assert!(!looks_like_pdf(b"%PDF-x"));
        assert!(looks_like_pdf(b"%PDF-2.0"));
    }

    #[tokio::test]
    async fn empty_large_missing_and_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(&dir, "empty.pdf", b"");
        assert_eq!(
            check(&empty, 1000).await.unwrap_err().code(),
            crate::ErrorCode::EmptyFile
        );
        let big = write(
            &dir,
            "big.pdf",
            &[b"%PDF-1.7\n".as_slice(), &[0u8; 2000]].concat(),
        );
        let error = check(&big, 1024 * 1024).await;
        assert!(error.is_ok(), "a file under the limit passes: {error:?}");
        let error = check(&big, 1000).await.unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::TooLarge);
        assert!(
            error.to_string().starts_with("big.pdf is larger than "),
            "{error}"
        );
        let missing = dir.path().join("missing.pdf");
        assert_eq!(
            check(&missing, 1000).await.unwrap_err().code(),
            crate::ErrorCode::FileUnreadable
        );
        assert_eq!(
            check(dir.path(), 1000).await.unwrap_err().code(),
            crate::ErrorCode::NotAPdf
        );
    }

    #[tokio::test]
    async fn object_keys_are_encoded_per_segment() {
        let config =
            crate::Config::new("http://127.0.0.1:54321/", "anon", "http://127.0.0.1:9").unwrap();
        let quire =
            Quire::with_token_store(config, Arc::new(crate::auth::store::MemoryStore::default()));
        assert_eq!(
            object_url(&quire, "u1/a b.pdf").unwrap(),
            "http://127.0.0.1:54321/storage/v1/object/documents/u1/a%20b.pdf"
        );
    }
}
