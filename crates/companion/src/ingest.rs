//! The ingestion worker (ARCHITECTURE.md, "Upload"): from a stored PDF to a
//! `ready` document whose chunks the user can search.
//!
//! State lives in Postgres (`private.ingest_jobs`, `public.documents`;
//! db/app/60_ingest.sql), reached through PostgREST RPCs with the service
//! key. Each worker loop claims one job at a time under a lease
//! (`claim_ingest_job`: `for update skip locked`; fair between users, so one
//! user's queue never holds every worker), renews it while working,
//! and records every step under it — so a restarted companion resumes where
//! the last one stopped, and two companions never work on one document.
//!
//! The steps, each skipped when a previous attempt already recorded it:
//!
//! 1. stream the object from Storage into `POST /api/sources/upload`
//!    (never held in memory; a 409 duplicate reuses `duplicate.id`, docs/platform/ai-api.md §7.2)
//!    → `extracting`. The object is checked again as it streams — it must
//!    begin with a PDF header and be exactly the registered size, and no
//!    byte past that size is sent — whatever was checked when it was
//!    uploaded: the worker reads with the service key, so it trusts nothing
//!    of what the owner could have put there (db/app/80_document_files.sql);
//! 2. wait for extraction, polling with backoff; a PDF without a text layer
//!    is `no_text`; a failed extraction is `failed` with a reason a person
//!    can act on;
//! 3. add the source to the knowledge base (unless it is already there —
//!    another user's copy of the same file) → `indexing`;
//! 4. wait for indexing;
//! 5. copy the chunks (`items`) into `document_chunks` (idempotent);
//!    `ready`, or `no_text` when there were none.
//!
//! Transient failures (the platform unreachable, 5xx) put the job back with
//! a growing delay; after `max_attempts` claims the document is `failed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use quire_protocol::Backoff;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::for_person;
use crate::platform::{ApiCode, Auth, ItemsPage, PlatformError};
use crate::server::AppState;

/// Chunks copied per `items` page.
const ITEMS_PAGE: i64 = 500;
/// Chunks copied per `copy_ingest_chunks` call. Each call is one statement
/// under PostgREST's 8-second `statement_timeout` (db/app/00_prerequisites.sql),
/// and indexing a chunk in every language costs: 100 chunks of 2,400
/// characters take about 0.4 s.
const COPY_BATCH: usize = 100;
/// Timeout of the upload of one file into the AI service.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// Times one job may find its source gone and start over within one claim.
const MAX_RESTARTS: u32 = 2;
/// Bytes at the start of a file in which PDF readers look for `%PDF-`.
const HEADER_BYTES: usize = 1024;
/// What the owner of a stored file that is not the one registered is told.
const NOT_THE_REGISTERED_FILE: &str = "The stored file is not the one that was uploaded and checked. \
                                       Delete this document and upload the PDF again.";
/// What the owner of a stored file that is not a PDF is told.
const NOT_A_PDF: &str = "The stored file is not a PDF. Delete this document and upload a PDF.";

/// A claimed job (`claim_ingest_job`): the document and what earlier
/// attempts recorded.
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    /// The document being ingested.
    pub document_id: Uuid,
    /// Its owner.
    pub owner_id: Uuid,
    /// Its file's key in the `documents` bucket.
    pub storage_path: String,
    /// Its title (never sent to the platform: sources are project-wide).
    pub title: String,
    /// The size registered for it: the only size of file the worker sends.
    pub byte_size: i64,
    /// Its status when claimed (`stored`, `extracting` or `indexing`).
    pub status: String,
    /// Its platform source, once uploaded.
    pub source_id: Option<Uuid>,
    /// The source's entry in the knowledge base, once added.
    pub indexed_source_id: Option<Uuid>,
    /// Claims of this job so far, this one included.
    pub attempts: i32,
}

/// Why a job did not finish in this claim.
#[derive(Debug)]
enum Stop {
    /// Worth another attempt later.
    Transient(String),
    /// The document cannot be ingested; the reason is for its owner.
    Permanent(String),
    /// Another worker holds the job, or the document was deleted.
    LeaseLost,
    /// This companion is shutting down.
    Shutdown,
}

impl From<PlatformError> for Stop {
    /// The platform's own words never reach the owner: they read Quire's
    /// sentence and a reference under which the cause is logged.
    fn from(err: PlatformError) -> Self {
        match err.code() {
            Some(ApiCode::LeaseLost) => Stop::LeaseLost,
            _ if err.is_transient() => Stop::Transient(err.to_string()),
            _ => Stop::Permanent(for_person(
                "The document service refused this file. Delete it and upload it again.",
                &err,
            )),
        }
    }
}

/// How a job ended.
struct Done {
    status: &'static str,
    page_count: Option<i32>,
}

/// Starts the configured number of worker loops.
pub fn start(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    (0..state.config.ingest.workers)
        .map(|n| {
            let state = state.clone();
            tokio::spawn(async move { worker(state, n).await })
        })
        .collect()
}

async fn worker(state: AppState, n: usize) {
    let worker_id = format!("{}#{n}", state.worker_id);
    // The first worker also clears uploads cut long ago.
    let mut swept: Option<tokio::time::Instant> = None;
    loop {
        if state.shutdown.is_cancelled() {
            return;
        }
        if n == 0 && swept.is_none_or(|at| at.elapsed() >= STALE_SWEEP_EVERY) {
            swept = Some(tokio::time::Instant::now());
            delete_stale_uploads(&state).await;
        }
        let claimed: Result<Vec<Job>, PlatformError> = state
            .platform
            .rpc(
                Auth::Service,
                "claim_ingest_job",
                &json!({"worker": worker_id, "lease_seconds": lease_secs(&state),
                        "max_per_owner": max_per_owner(&state)}),
            )
            .await;
        match claimed {
            Ok(jobs) if !jobs.is_empty() => {
                for job in jobs {
                    process(&state, &worker_id, job).await;
                }
                continue;
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "could not look for documents to ingest"),
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = state.ingest_wakeup.notified() => {}
            () = tokio::time::sleep(state.config.ingest.idle_poll) => {}
        }
    }
}

/// How often the first worker looks for uploads cut long ago.
const STALE_SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Documents one sweep deletes at most; the rest wait for the next.
const STALE_SWEEP_ROWS: i32 = 100;

/// Deletes documents still `uploading` [`IngestConfig::stale_upload`] after
/// their last change (db/app/96_stale_uploads.sql: one statement). Their
/// Storage objects are deleted after them, as after any other deletion of a
/// document, by [`crate::deletions`] (db/app/97_document_deletions.sql). A
/// failure is logged, and the next sweep tries again.
///
/// [`IngestConfig::stale_upload`]: crate::config::IngestConfig::stale_upload
async fn delete_stale_uploads(state: &AppState) {
    #[derive(Deserialize)]
    struct Stale {
        document_id: Uuid,
    }
    let older_than = i32::try_from(state.config.ingest.stale_upload.as_secs()).unwrap_or(i32::MAX);
    let deleted: Result<Vec<Stale>, PlatformError> = state
        .platform
        .rpc(
            Auth::Service,
            "delete_stale_uploads",
            &json!({"older_than_seconds": older_than, "max_rows": STALE_SWEEP_ROWS}),
        )
        .await;
    match deleted {
        Ok(deleted) => {
            for stale in deleted {
                tracing::info!(document_id = %stale.document_id, "deleted an upload cut long ago");
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not look for uploads cut long ago"),
    }
}

/// Leases one user may hold at once: all of this companion's workers but
/// one, so another user's document never waits for a whole queue
/// (db/app/81_fair_ingest.sql).
fn max_per_owner(state: &AppState) -> usize {
    state.config.ingest.workers.saturating_sub(1).max(1)
}

fn lease_secs(state: &AppState) -> i64 {
    i64::try_from(state.config.ingest.lease.as_secs()).unwrap_or(60)
}

/// Works on one claimed job until it finishes, must wait, or is lost.
async fn process(state: &AppState, worker: &str, job: Job) {
    let document_id = job.document_id;
    tracing::info!(%document_id, attempts = job.attempts, "ingesting");
    let lost = CancellationToken::new();
    let keeper = tokio::spawn(keep_lease(
        state.clone(),
        worker.to_owned(),
        document_id,
        lost.clone(),
    ));

    let outcome = if job.attempts > i32::try_from(state.config.ingest.max_attempts).unwrap_or(8) {
        Err(Stop::Permanent(
            "Quire could not process this document after several attempts. Delete it and upload it again later."
                .to_owned(),
        ))
    } else {
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => Err(Stop::Shutdown),
            () = lost.cancelled() => Err(Stop::LeaseLost),
            outcome = steps(state, worker, &job) => outcome,
        }
    };
    keeper.abort();

    let result = match outcome {
        Ok(done) => {
            tracing::info!(%document_id, status = done.status, "ingestion finished");
            finish(
                state,
                worker,
                document_id,
                done.status,
                None,
                done.page_count,
            )
            .await
        }
        Err(Stop::Permanent(reason)) => {
            tracing::info!(%document_id, %reason, "ingestion failed");
            finish(state, worker, document_id, "failed", Some(&reason), None).await
        }
        Err(Stop::Transient(cause)) => {
            let delay = 2i64.saturating_pow(u32::try_from(job.attempts.clamp(1, 8)).unwrap_or(8));
            tracing::warn!(%document_id, %cause, delay, "ingestion will be retried");
            retry(state, worker, document_id, delay, &cause).await
        }
        Err(Stop::Shutdown) => retry(state, worker, document_id, 0, "the companion stopped").await,
        Err(Stop::LeaseLost) => {
            tracing::info!(%document_id, "another companion has this document now, or it was deleted");
            Ok(())
        }
    };
    if let Err(err) = result {
        tracing::warn!(%document_id, error = %err, "could not record the end of an ingestion attempt");
    }
}

async fn finish(
    state: &AppState,
    worker: &str,
    document_id: Uuid,
    status: &str,
    error: Option<&str>,
    page_count: Option<i32>,
) -> Result<(), PlatformError> {
    state
        .platform
        .rpc::<Value>(
            Auth::Service,
            "finish_ingest_job",
            &json!({"document_id": document_id, "worker": worker, "status": status,
                    "error": error, "page_count": page_count}),
        )
        .await
        .map(drop)
}

async fn retry(
    state: &AppState,
    worker: &str,
    document_id: Uuid,
    delay_seconds: i64,
    error: &str,
) -> Result<(), PlatformError> {
    state
        .platform
        .rpc::<Value>(
            Auth::Service,
            "retry_ingest_job",
            &json!({"document_id": document_id, "worker": worker,
                    "delay_seconds": delay_seconds, "error": error}),
        )
        .await
        .map(drop)
}

/// Renews the lease every third of its length; cancels `lost` when it is gone.
async fn keep_lease(state: AppState, worker: String, document_id: Uuid, lost: CancellationToken) {
    let every = state.config.ingest.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let renewed = state
            .platform
            .rpc::<Value>(
                Auth::Service,
                "renew_ingest_lease",
                &json!({"document_id": document_id, "worker": worker,
                        "lease_seconds": lease_secs(&state)}),
            )
            .await;
        match renewed {
            Ok(_) => {}
            Err(err) if err.code() == Some(&ApiCode::LeaseLost) => {
                lost.cancel();
                return;
            }
            Err(err) => {
                tracing::warn!(%document_id, error = %err, "could not renew an ingest lease")
            }
        }
    }
}

/// `record_ingest_step` under the lease.
async fn record(
    state: &AppState,
    worker: &str,
    document_id: Uuid,
    step: Value,
) -> Result<(), Stop> {
    let mut args = json!({"document_id": document_id, "worker": worker});
    if let (Some(args), Some(step)) = (args.as_object_mut(), step.as_object()) {
        args.extend(step.clone());
    }
    state
        .platform
        .rpc::<Value>(Auth::Service, "record_ingest_step", &args)
        .await?;
    Ok(())
}

/// What a source's extraction came to.
struct Extracted {
    name: String,
    page_count: Option<i32>,
}

async fn steps(state: &AppState, worker: &str, job: &Job) -> Result<Done, Stop> {
    let document_id = job.document_id;
    let mut source_id = job.source_id;
    let mut indexed = job.indexed_source_id;
    let mut status = job.status.clone();
    let mut restarts = 0;

    loop {
        let source = match source_id {
            Some(id) => id,
            None => {
                let id = upload(state, job).await?;
                record(
                    state,
                    worker,
                    document_id,
                    json!({"status": "extracting", "source_id": id}),
                )
                .await?;
                status = "extracting".to_owned();
                source_id = Some(id);
                id
            }
        };
        if status == "stored" {
            record(state, worker, document_id, json!({"status": "extracting"})).await?;
            status = "extracting".to_owned();
        }

        let Some(extracted) = wait_for_extraction(state, source).await? else {
            // The source vanished (deleted by the last other owner of the
            // same file): upload again.
            restarts += 1;
            if restarts > MAX_RESTARTS {
                return Err(Stop::Transient(
                    "the platform source keeps vanishing".to_owned(),
                ));
            }
            record(state, worker, document_id, json!({"forget_source": true})).await?;
            source_id = None;
            indexed = None;
            continue;
        };

        let kb = state.config.knowledge_base_id;
        let entry = match indexed {
            Some(entry) => entry,
            None => {
                let entry = add_to_knowledge_base(state, kb, source, &extracted.name).await?;
                // One status change, one broadcast: the page count travels with it.
                record(
                    state,
                    worker,
                    document_id,
                    json!({"status": "indexing", "indexed_source_id": entry,
                           "page_count": extracted.page_count}),
                )
                .await?;
                status = "indexing".to_owned();
                entry
            }
        };
        if status != "indexing" {
            record(state, worker, document_id, json!({"status": "indexing"})).await?;
            status = "indexing".to_owned();
        }

        if !wait_for_indexing(state, kb, source, entry, &extracted.name).await? {
            // The entry was removed meanwhile: add it again.
            restarts += 1;
            if restarts > MAX_RESTARTS {
                return Err(Stop::Transient(
                    "the knowledge-base entry keeps vanishing".to_owned(),
                ));
            }
            indexed = None;
            continue;
        }

        // The platform's page-text records carry no sizes: a source has no
        // text when indexing yields no chunks.
        let copied = copy_chunks(state, worker, document_id, kb, source).await?;
        return Ok(Done {
            status: if copied == 0 { "no_text" } else { "ready" },
            page_count: extracted.page_count,
        });
    }
}

/// Streams the object from Storage into `POST /api/sources/upload`, followed
/// by its owner's mark ([`owner_mark`]); the source's id (an existing one for
/// a duplicate of the same owner's). The object must be a PDF of the
/// document's registered size: its header is read first, and the stream
/// stops with an error at the first byte past that size (or when it ends
/// short of it), so the platform never receives another file.
async fn upload(state: &AppState, job: &Job) -> Result<Uuid, Stop> {
    let path = format!(
        "/storage/v1/object/authenticated/documents/{}",
        job.storage_path
    );
    let object = state
        .platform
        .send(
            "GET /storage/v1/object/authenticated/documents/…",
            state.platform.request(Method::GET, &path, Auth::Service),
        )
        .await
        .map_err(|err| match err.code() {
            Some(ApiCode::NotFound) => Stop::Permanent(
                "The uploaded file is missing from storage. Delete this document and upload it again."
                    .to_owned(),
            ),
            _ => Stop::from(err),
        })?;
    let size = u64::try_from(job.byte_size).unwrap_or(0);
    if object.content_length().is_some_and(|length| length != size) {
        return Err(Stop::Permanent(NOT_THE_REGISTERED_FILE.to_owned()));
    }
    let mut rest = object.bytes_stream();
    let head = read_head(&mut rest).await?;
    if !head[..head.len().min(HEADER_BYTES)]
        .windows(5)
        .any(|w| w == b"%PDF-")
    {
        return Err(Stop::Permanent(NOT_A_PDF.to_owned()));
    }
    let wrong_size = Arc::new(AtomicBool::new(false));
    let mark = owner_mark(job.owner_id);
    let sent = size + mark.len() as u64;
    let file = exactly(head, rest, size, wrong_size.clone())
        .chain(futures_util::stream::once(async move { Ok(mark) }));
    let body = reqwest::Body::wrap_stream(file);
    let part = Part::stream_with_length(body, sent)
        .file_name(format!("{}.pdf", job.document_id))
        .mime_str("application/pdf")
        .map_err(|e| Stop::Transient(e.to_string()))?;
    // The source is named after the document, not its title: sources are
    // project-wide and a title can be personal.
    let form = Form::new()
        .text("name", job.document_id.to_string())
        .part("file", part);
    let uploaded = state
        .platform
        .send(
            "POST /api/sources/upload",
            state
                .platform
                .request(Method::POST, "/api/sources/upload", Auth::Service)
                .timeout(UPLOAD_TIMEOUT)
                .multipart(form),
        )
        .await;
    if wrong_size.load(Ordering::SeqCst) {
        return Err(Stop::Permanent(NOT_THE_REGISTERED_FILE.to_owned()));
    }
    let body: Value = match uploaded {
        Ok(response) => response
            .json()
            .await
            .map_err(|e| Stop::Transient(format!("reading the upload's answer: {e}")))?,
        Err(err) => return duplicate_or_refusal(err),
    };
    body.get("id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Stop::Transient(format!("the upload's answer has no id: {body}")))
}

/// A PDF comment line naming the file's owner, sent after the file's last
/// byte, so that each user's sources are their own.
///
/// The platform de-duplicates sources by the sha256 of their bytes across the
/// whole project (docs/platform/ai-api.md §7.2). Without the mark, a file
/// another user had uploaded came back as that user's source, already
/// extracted and indexed, and was ready sooner than a new file: the time to
/// "Ready" told a user that someone else had uploaded the same file. Measured
/// on the local stack (five rounds of two-page PDFs, B uploading A's file and
/// then a new one): 211–312 ms against 368–765 ms, and on a real project,
/// where extraction and embedding take seconds, the gap is wider. With the
/// mark the same bytes from two users are two sources, extracted and indexed
/// each; one user's repeated upload still reuses their own. PDF readers find
/// the cross-reference table from the end of the file within its last
/// kilobyte and read nothing after `%%EOF` as content, so the mark changes no
/// text.
fn owner_mark(owner: Uuid) -> Bytes {
    Bytes::from(format!("\n%Quire-owner {owner}\n"))
}

/// The first pieces of a download, at least [`HEADER_BYTES`] of them unless
/// the object is shorter.
async fn read_head<S>(stream: &mut S) -> Result<Bytes, Stop>
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin,
{
    let mut head = Vec::with_capacity(HEADER_BYTES);
    while head.len() < HEADER_BYTES {
        match stream.next().await {
            Some(Ok(piece)) => head.extend_from_slice(&piece),
            Some(Err(err)) => {
                return Err(Stop::Transient(format!("reading the stored file: {err}")));
            }
            None => break,
        }
    }
    Ok(Bytes::from(head))
}

/// `head` then `rest`, as long as together they are exactly `size` bytes:
/// a piece that would go past `size` is not sent, and the stream ends with
/// an error instead (as it does when it ends short of `size`), after
/// setting `wrong_size`. A transport error of `rest` ends it too.
fn exactly<S>(
    head: Bytes,
    rest: S,
    size: u64,
    wrong_size: Arc<AtomicBool>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    S: Stream<Item = reqwest::Result<Bytes>> + Unpin + Send + 'static,
{
    let start = (Some(head), rest, 0u64);
    futures_util::stream::unfold(Some(start), move |state| {
        let wrong_size = wrong_size.clone();
        async move {
            let (head, mut rest, sent) = state?;
            let piece = match head {
                Some(head) => head,
                None => match rest.next().await {
                    Some(Ok(piece)) => piece,
                    Some(Err(err)) => return Some((Err(std::io::Error::other(err)), None)),
                    None if sent == size => return None,
                    None => {
                        wrong_size.store(true, Ordering::SeqCst);
                        let short =
                            std::io::Error::other("the stored file is shorter than registered");
                        return Some((Err(short), None));
                    }
                },
            };
            let sent = sent + piece.len() as u64;
            if sent > size {
                wrong_size.store(true, Ordering::SeqCst);
                let long = std::io::Error::other("the stored file is larger than registered");
                return Some((Err(long), None));
            }
            Some((Ok(piece), Some((None, rest, sent))))
        }
    })
}

/// A refused `POST /api/sources/upload`: the existing source of a duplicate,
/// or why the document cannot be ingested.
fn duplicate_or_refusal(err: PlatformError) -> Result<Uuid, Stop> {
    // The same bytes, owner's mark included, already uploaded: by this owner
    // (docs/platform/ai-api.md §7.2, `owner_mark`).
    if let Some(ApiCode::DuplicateSource(Some(existing))) = err.code() {
        return Ok(*existing);
    }
    Err(match err.code() {
        Some(ApiCode::InsufficientCredits) => Stop::Permanent(
            "The project has run out of AI credits. Ask its owner to top them up, then upload again."
                .to_owned(),
        ),
        Some(ApiCode::TooLarge) => Stop::Permanent(
            "This file is larger than the document service accepts. Split it and upload the parts."
                .to_owned(),
        ),
        _ => Stop::from(err),
    })
}

/// Polls the source until extraction ends; `None` when the source is gone.
async fn wait_for_extraction(state: &AppState, source: Uuid) -> Result<Option<Extracted>, Stop> {
    let mut backoff = polling(state);
    loop {
        let fetched: Result<Value, PlatformError> = state
            .platform
            .json(
                "GET /api/sources/{id}",
                state.platform.request(
                    Method::GET,
                    &format!("/api/sources/{source}"),
                    Auth::Service,
                ),
            )
            .await;
        let body = match fetched {
            Ok(body) => body,
            Err(err) if err.code() == Some(&ApiCode::NotFound) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let status = body
            .get("extraction_status")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match status {
            "extracted" => return Ok(Some(extracted(&body))),
            "failed" => return Err(Stop::Permanent(extraction_failure(&body))),
            "attention_required" => {
                return Err(Stop::Permanent(
                    "Only part of this PDF could be read. Export it again as PDF (or print it to PDF) and upload the new copy."
                        .to_owned(),
                ));
            }
            "cancelled" => {
                return Err(Stop::Permanent(
                    "The text extraction of this PDF was cancelled. Delete it and upload it again."
                        .to_owned(),
                ));
            }
            _ => {}
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// How a worker polls the platform's work on its document: from
/// `poll_initial`, doubling, up to `poll_max`. No jitter: one worker polls
/// its own job, there is no crowd to spread out.
fn polling(state: &AppState) -> Backoff {
    Backoff::without_jitter(
        state.config.ingest.poll_initial,
        state.config.ingest.poll_max,
    )
}

fn extracted(source: &Value) -> Extracted {
    let derivatives = source.get("derivatives").cloned().unwrap_or(Value::Null);
    let pages = derivatives.get("page_text").and_then(Value::as_array);
    let page_count = derivatives
        .get("page_count")
        .or_else(|| source.get("auto_metadata")?.get("page_count"))
        .and_then(Value::as_i64)
        .or_else(|| pages.map(|p| p.len() as i64))
        .and_then(|n| i32::try_from(n).ok());
    Extracted {
        name: source
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        page_count,
    }
}

/// A reason a person can act on, in Quire's own words. The platform records
/// a failed file extraction with an `error_message` (the extractor's
/// exception text) and a NULL `error_code` (docs/platform-contract.md), so
/// the reason is read from the message's wording; the message itself is
/// never shown.
fn extraction_failure(source: &Value) -> String {
    let message = source
        .get("error_message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    let mentions = |words: &[&str]| words.iter().any(|w| message.contains(w));
    if mentions(&["password", "encrypt", "decrypt"]) {
        "This PDF is protected with a password. Save a copy without the password and upload that."
            .to_owned()
    } else if mentions(&["not a pdf", "%pdf", "unsupported", "file type"]) {
        "This file is not a PDF Quire can read. Export it as a PDF and upload it again.".to_owned()
    } else if mentions(&[
        "damaged",
        "corrupt",
        "truncated",
        "eof",
        "xref",
        "trailer",
        "syntax",
    ]) {
        "This PDF is damaged or incomplete. Download or export it again, then upload the new copy."
            .to_owned()
    } else if mentions(&["timed out", "timeout"]) {
        "Reading the text of this PDF took too long. Delete it and upload it again; if that fails too, split it into smaller PDFs."
            .to_owned()
    } else {
        "The text of this PDF could not be extracted. Delete it and upload it again; if that fails too, export it again as PDF."
            .to_owned()
    }
}

/// The knowledge base's entry for `source`, if it has one.
async fn find_entry(
    state: &AppState,
    kb: Uuid,
    source: Uuid,
    name: &str,
) -> Result<Option<Value>, Stop> {
    let mut offset = 0;
    loop {
        let page: Value = state
            .platform
            .json(
                "GET /api/knowledge-bases/{id}/sources",
                state
                    .platform
                    .request(
                        Method::GET,
                        &format!("/api/knowledge-bases/{kb}/sources"),
                        Auth::Service,
                    )
                    .query(&[
                        ("q", name.to_owned()),
                        ("limit", "200".to_owned()),
                        ("offset", offset.to_string()),
                    ]),
            )
            .await?;
        let items = page
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(found) = items.iter().find(|i| {
            i.get("source_id").and_then(Value::as_str) == Some(source.to_string().as_str())
        }) {
            return Ok(Some(found.clone()));
        }
        let total = page.get("total").and_then(Value::as_i64).unwrap_or(0);
        offset += items.len() as i64;
        if items.is_empty() || offset >= total {
            return Ok(None);
        }
    }
}

/// Adds `source` to the knowledge base, or reuses its entry when it is
/// already there and not failed (re-adding would re-index another user's
/// document under them).
async fn add_to_knowledge_base(
    state: &AppState,
    kb: Uuid,
    source: Uuid,
    name: &str,
) -> Result<Uuid, Stop> {
    if let Some(entry) = find_entry(state, kb, source, name).await?
        && !matches!(
            entry.get("index_status").and_then(Value::as_str),
            Some("failed" | "cancelled")
        )
        && let Some(id) = entry
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
    {
        return Ok(id);
    }
    let added: Value = state
        .platform
        .json(
            "POST /api/knowledge-bases/{id}/sources",
            state
                .platform
                .request(
                    Method::POST,
                    &format!("/api/knowledge-bases/{kb}/sources"),
                    Auth::Service,
                )
                .json(&json!({"source_id": source})),
        )
        .await
        .map_err(|err| match err.code() {
            // "Source must be extracted first": it was, a moment ago.
            Some(ApiCode::BadRequest) => Stop::Transient(err.to_string()),
            _ => Stop::from(err),
        })?;
    added
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Stop::Transient(format!("adding to the knowledge base answered {added}")))
}

/// Polls the entry until indexing ends: `true` when indexed, `false` when
/// the entry is gone.
async fn wait_for_indexing(
    state: &AppState,
    kb: Uuid,
    source: Uuid,
    entry: Uuid,
    name: &str,
) -> Result<bool, Stop> {
    let mut backoff = polling(state);
    loop {
        let Some(found) = find_entry(state, kb, source, name).await? else {
            return Ok(false);
        };
        if found.get("id").and_then(Value::as_str) != Some(entry.to_string().as_str()) {
            return Ok(false);
        }
        match found.get("index_status").and_then(Value::as_str) {
            Some("indexed") => return Ok(true),
            Some("failed") => {
                let detail = found
                    .get("error_message")
                    .and_then(Value::as_str)
                    .unwrap_or("no details");
                return Err(Stop::Permanent(for_person(
                    "Indexing this PDF failed. Delete it and upload it again later.",
                    &detail,
                )));
            }
            Some("cancelled") => return Ok(false),
            _ => {}
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Copies the source's chunks into the document's owner's index; the
/// number of chunks the source has.
async fn copy_chunks(
    state: &AppState,
    worker: &str,
    document_id: Uuid,
    kb: Uuid,
    source: Uuid,
) -> Result<i64, Stop> {
    let mut offset = 0i64;
    let mut seen = 0i64;
    loop {
        let page: Value = state
            .platform
            .json(
                "POST /api/knowledge-bases/{id}/items",
                state
                    .platform
                    .request(
                        Method::POST,
                        &format!("/api/knowledge-bases/{kb}/items"),
                        Auth::Service,
                    )
                    .json(&json!({"source_ids": [source], "limit": ITEMS_PAGE, "offset": offset})),
            )
            .await?;
        // Only the items of `source` are its chunks, whatever else the
        // answer holds: anything else is another user's text.
        let page = ItemsPage::read(&page, source);
        if page.received == 0 {
            return Ok(seen);
        }
        let chunks: Vec<Value> = page
            .items
            .iter()
            .filter_map(|item| {
                let chunk_id = item.get("id")?.as_str()?;
                let text = item.get("text")?.as_str()?;
                let (page, page_end) = page_range(item);
                let ordinal = item.get("chunk_index").and_then(Value::as_i64).unwrap_or(0);
                Some(
                    json!({"chunk_id": chunk_id, "page": page, "page_end": page_end,
                            "ordinal": ordinal, "text": text}),
                )
            })
            .collect();
        for batch in chunks.chunks(COPY_BATCH) {
            state
                .platform
                .rpc::<Value>(
                    Auth::Service,
                    "copy_ingest_chunks",
                    &json!({"document_id": document_id, "worker": worker, "chunks": batch}),
                )
                .await?;
        }
        seen += page.items.len() as i64;
        offset += page.received as i64;
        if offset >= page.total {
            return Ok(seen);
        }
    }
}

/// The first and last of the platform's `meta.pages` (the 1-based pages a
/// chunk spans; a chunk may cross a page break), or neither when the item
/// has no pages (an extraction without page texts).
fn page_range(item: &Value) -> (Option<i64>, Option<i64>) {
    let pages = item
        .get("meta")
        .and_then(|m| m.get("pages"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .filter(|p| *p >= 1);
    pages.fold((None, None), |(first, last), p| {
        (
            Some(first.map_or(p, |f: i64| f.min(p))),
            Some(last.map_or(p, |l: i64| l.max(p))),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_keeps_the_first_and_last_of_its_pages() {
        let item = |meta: Value| json!({"id": "c", "text": "t", "meta": meta});
        assert_eq!(
            page_range(&item(json!({"pages": [3, 4]}))),
            (Some(3), Some(4))
        );
        assert_eq!(page_range(&item(json!({"pages": [2]}))), (Some(2), Some(2)));
        assert_eq!(
            page_range(&item(json!({"pages": [5, 6, 7]}))),
            (Some(5), Some(7))
        );
        assert_eq!(
            page_range(&item(json!({"strategy": "markdown_header"}))),
            (None, None)
        );
        assert_eq!(page_range(&item(json!({"pages": []}))), (None, None));
    }

    #[test]
    fn the_page_count_comes_from_the_platform_records() {
        let source = json!({"name": "d", "derivatives": {"page_count": 2, "page_text": [
            {"storage_path": "sources/x/page_text/page_1.txt", "format": "plain", "page": 1},
            {"storage_path": "sources/x/page_text/page_2.txt", "format": "plain", "page": 2}]}});
        assert_eq!(extracted(&source).page_count, Some(2));
        assert_eq!(
            extracted(&json!({"name": "d", "derivatives": {}})).page_count,
            None
        );
    }

    /// What `exactly` lets through of `head` + `rest` for `size`: the bytes,
    /// whether it ended in an error, and whether the size was wrong.
    async fn streamed(head: &[u8], rest: &[&[u8]], size: u64) -> (Vec<u8>, bool, bool) {
        let rest: Vec<reqwest::Result<Bytes>> =
            rest.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
        let wrong = Arc::new(AtomicBool::new(false));
        let mut stream = std::pin::pin!(exactly(
            Bytes::copy_from_slice(head),
            futures_util::stream::iter(rest),
            size,
            wrong.clone(),
        ));
        let (mut sent, mut failed) = (Vec::new(), false);
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(piece) => sent.extend_from_slice(&piece),
                Err(_) => failed = true,
            }
        }
        (sent, failed, wrong.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn the_worker_sends_exactly_the_registered_size_and_nothing_past_it() {
        assert_eq!(
            streamed(b"%PDF-", &[b"12", b"345"], 10).await,
            (b"%PDF-12345".to_vec(), false, false)
        );
        let (sent, failed, wrong) = streamed(b"%PDF-", &[b"12", b"345", b"evil"], 10).await;
        assert_eq!(
            (sent.as_slice(), failed, wrong),
            (&b"%PDF-12345"[..], true, true)
        );
        let (sent, failed, wrong) = streamed(b"%PDF-", &[b"12", b"345evil"], 10).await;
        assert_eq!(
            (sent.as_slice(), failed, wrong),
            (&b"%PDF-12"[..], true, true)
        );
        let (sent, failed, wrong) = streamed(b"%PDF-", &[b"12"], 10).await;
        assert_eq!(
            (sent.as_slice(), failed, wrong),
            (&b"%PDF-12"[..], true, true)
        );
    }

    #[test]
    fn failures_say_what_to_do_in_quires_words() {
        let cases = [
            ("File has not been decrypted", "password"),
            (
                "The PDF is encrypted with a password; upload a copy without a password.",
                "password",
            ),
            ("EOF marker not found", "damaged"),
            ("Extraction timed out", "too long"),
            ("something new", "could not be extracted"),
        ];
        for (message, expected) in cases {
            let reason = extraction_failure(&json!({"error_code": null, "error_message": message}));
            assert!(reason.contains(expected), "{message}: {reason}");
            assert!(
                !reason.contains(message),
                "never the platform's text: {reason}"
            );
        }
    }
}
