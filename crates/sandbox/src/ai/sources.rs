//! Sources (`/api/sources`, service key only; powabase-ai `routes/sources.py`,
//! docs/platform-contract.md): upload with
//! project-wide sha256 dedup, background text extraction through
//! `pending → extracting → extracted | failed`, read, list, download, page
//! texts, delete.
//!
//! Files live under `<data_dir>/ai/` at the source's `storage_path`
//! (`sources/{id}/original/{filename}`, as in the platform's `sources`
//! bucket). Extracted page texts are files too,
//! `sources/{id}/page_text/page_NNNN.txt`, listed in
//! `derivatives.page_text = [{storage_path, format, page}]` as the
//! platform records its derivative objects (no character counts);
//! `derivatives.page_count` is the number of pages.
//!
//! The sandbox extracts PDFs (with [`super::extract`]) and plain text
//! (`.txt`, `.md`: one page). Other accepted types (Office files, images)
//! need the platform's converters or OCR: their extraction fails.
//!
//! A failed extraction is what the platform's extraction task records:
//! `extraction_status = failed` with an `error_message` and a NULL
//! `error_code` (the task never sets one for a file).

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;
use tokio_postgres::Row;
use uuid::Uuid;

use super::extract::{self, ExtractError};
use super::{
    ApiError, ServiceRole, contains_pattern, data_root, page_bounds, parse_id, sort_direction,
    timestamp,
};
use crate::state::AppState;

/// Extensions `POST /api/sources/upload` accepts.
pub(crate) const ALLOWED_EXTENSIONS: [&str; 13] = [
    ".pdf", ".txt", ".md", ".docx", ".xlsx", ".xls", ".pptx", ".png", ".jpg", ".jpeg", ".webp",
    ".gif", ".tiff",
];

/// `extraction_model` values the upload accepts. The sandbox extracts
/// with its own PDF reader whichever is asked for, and records the request.
const EXTRACTION_MODELS: [&str; 8] = [
    "auto",
    "mistral",
    "opendataloader",
    "paddleocr",
    "lighton",
    "llamaparse",
    "fitz",
    "pdfplumber",
];

const STATUSES: [&str; 6] = [
    "pending",
    "extracting",
    "extracted",
    "attention_required",
    "failed",
    "cancelled",
];

const SOURCE_NOT_FOUND: &str = "Source not found";

/// Columns of a source as the API returns it.
const SOURCE_COLUMNS: &str = "id, name, file_type, storage_path, extraction_status, derivatives, metadata, \
     auto_metadata, error_message, error_code, celery_task_id, created_at, updated_at";

/// `/api/sources/*`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        // The upload enforces the configured size limit itself, while streaming.
        .route(
            "/sources/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/sources", get(list))
        .route("/sources/{id}", get(get_one).delete(delete))
        .route("/sources/{id}/download", get(download))
        .route("/sources/{id}/page-texts", get(page_texts))
}

/// A source row as JSON (the shape of `GET /api/sources/{id}`).
fn source_json(row: &Row) -> Value {
    json!({
        "id": row.get::<_, Uuid>("id"),
        "name": row.get::<_, String>("name"),
        "file_type": row.get::<_, String>("file_type"),
        "storage_path": row.get::<_, Option<String>>("storage_path"),
        "extraction_status": row.get::<_, String>("extraction_status"),
        "derivatives": row.get::<_, Value>("derivatives"),
        "metadata": row.get::<_, Value>("metadata"),
        "auto_metadata": row.get::<_, Value>("auto_metadata"),
        "error_message": row.get::<_, Option<String>>("error_message"),
        "error_code": row.get::<_, Option<String>>("error_code"),
        "celery_task_id": row.get::<_, Option<String>>("celery_task_id"),
        "created_at": timestamp(row.get("created_at")),
        "updated_at": timestamp(row.get("updated_at")),
    })
}

async fn load_source(state: &AppState, id: Uuid) -> Result<Row, ApiError> {
    let client = state.db.ai.get().await?;
    client
        .query_opt(
            &format!("select {SOURCE_COLUMNS} from ai.sources where id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found(SOURCE_NOT_FOUND))
}

// ---------------------------------------------------------------- upload

/// The parts of an upload form, once the file has been streamed to disk.
struct UploadForm {
    file: Option<Spooled>,
    name: Option<String>,
    metadata: Option<String>,
    extraction_model: Option<String>,
}

/// An uploaded file written to a temporary path, with its digest.
struct Spooled {
    tmp: TempFile,
    filename: String,
    extension: String,
    sha256: String,
}

/// A file removed when dropped unless [`TempFile::persist`]ed.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn path(&self) -> &Path {
        self.0
            .as_deref()
            .expect("a temp file has a path until persisted")
    }

    async fn persist(mut self, to: &Path) -> io::Result<()> {
        let from = self.0.take().expect("persisted once");
        if let Some(parent) = to.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&from, to).await
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn upload(
    State(state): State<AppState>,
    _: ServiceRole,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    // Not multipart at all: Flask sees no files.
    let mut multipart = multipart.map_err(|_| ApiError::bad_request("No file provided"))?;
    let form = read_form(&state, &mut multipart).await?;

    let Some(file) = form.file else {
        return Err(ApiError::bad_request("No file provided"));
    };
    let metadata = match form.metadata.as_deref().map(str::trim) {
        None | Some("") => json!({}),
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(value @ Value::Object(_)) => value,
            _ => return Err(ApiError::bad_request("Invalid metadata JSON")),
        },
    };
    let extraction_model = match form.extraction_model.as_deref().map(str::trim) {
        None | Some("") => "auto".to_owned(),
        Some(model) if EXTRACTION_MODELS.contains(&model) => model.to_owned(),
        Some(model) => {
            return Err(ApiError::bad_request(format!(
                "Invalid extraction_model '{model}'. Valid options: {}",
                EXTRACTION_MODELS.join(", ")
            )));
        }
    };
    let name = form
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| file.filename.clone());
    if name.chars().count() > 255 {
        return Err(ApiError::bad_request("name must be at most 255 characters"));
    }

    let client = state.db.ai.get().await?;
    if let Some(existing) = find_duplicate(&client, &file.sha256).await? {
        return Err(duplicate_error(&existing));
    }

    let id = Uuid::new_v4();
    let task_id = Uuid::new_v4().to_string();
    let file_type = mime_for(&file.extension);
    let storage_path = format!(
        "sources/{id}/original/{}",
        safe_filename(&file.filename, &file.extension)
    );
    // The file is in place before its row exists: whoever sees a `pending` row (this request's
    // job, or a restarted sandbox resuming extractions) finds its bytes.
    let destination = data_root(&state).join(&storage_path);
    if let Err(err) = file.tmp.persist(&destination).await {
        return Err(
            ApiError::internal(format_args!("storing source {id}: {err}"))
                .with("error", "Storage error"),
        );
    }
    let auto_metadata = json!({
        "origin_path": file.filename,
        "extraction_model": extraction_model,
        "source_type": "upload",
    });
    let inserted = client
        .query_one(
            "insert into ai.sources (id, name, file_type, storage_path, metadata, auto_metadata, \
                                     content_hash, celery_task_id) \
             values ($1, $2, $3, $4, $5, $6, $7, $8) returning extraction_status",
            &[
                &id,
                &name,
                &file_type,
                &storage_path,
                &metadata,
                &auto_metadata,
                &file.sha256,
                &task_id,
            ],
        )
        .await;
    if let Err(err) = inserted {
        let _ = tokio::fs::remove_file(&destination).await;
        // Two identical uploads at once: the unique index picks the winner.
        if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            && let Some(existing) = find_duplicate(&client, &file.sha256).await?
        {
            return Err(duplicate_error(&existing));
        }
        return Err(err.into());
    }
    drop(client);

    spawn_extraction(state, id);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "id": id,
            "name": name,
            "file_type": file_type,
            "storage_path": storage_path,
            "extraction_status": "pending",
            "task_id": task_id,
        })),
    )
        .into_response())
}

async fn read_form(state: &AppState, multipart: &mut Multipart) -> Result<UploadForm, ApiError> {
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        ApiError::bad_request(format!("Invalid multipart body: {}", e.body_text()))
    };
    let mut form = UploadForm {
        file: None,
        name: None,
        metadata: None,
        extraction_model: None,
    };
    while let Some(field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name().unwrap_or_default() {
            "file" if form.file.is_none() => form.file = Some(spool(state, field).await?),
            "name" => form.name = Some(small_text(field).await?),
            "metadata" => form.metadata = Some(small_text(field).await?),
            "extraction_model" => form.extraction_model = Some(small_text(field).await?),
            // Unknown fields (and a second `file`) are read and ignored.
            _ => {
                let mut field = field;
                while field.chunk().await.map_err(bad_form)?.is_some() {}
            }
        }
    }
    Ok(form)
}

/// A text field, at most 64 KiB.
async fn small_text(mut field: Field<'_>) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("Invalid multipart body: {}", e.body_text())))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > 64 * 1024 {
            return Err(ApiError::bad_request("Form field too large"));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::bad_request("Form fields must be UTF-8 text"))
}

/// Streams the `file` field to a temporary file under the data directory,
/// hashing as it goes: the upload is never held in memory whole. Checks the
/// filename and extension first, and the size limit while streaming.
async fn spool(state: &AppState, mut field: Field<'_>) -> Result<Spooled, ApiError> {
    let filename = field.file_name().unwrap_or_default().trim().to_owned();
    if filename.is_empty() {
        return Err(ApiError::bad_request("No filename"));
    }
    let extension = extension_of(&filename);
    if !ALLOWED_EXTENSIONS.contains(&extension.as_str()) {
        let shown = if extension.is_empty() {
            "(none)".to_owned()
        } else {
            format!("'{extension}'")
        };
        return Err(ApiError::bad_request(format!(
            "Unsupported file type {shown}. Allowed: {}",
            ALLOWED_EXTENSIONS.join(", ")
        )));
    }

    let dir = data_root(state).join("tmp");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ApiError::internal(format_args!("creating {}: {e}", dir.display())))?;
    let tmp = TempFile(Some(dir.join(format!("upload-{}", Uuid::new_v4()))));
    let mut out = tokio::fs::File::create(tmp.path())
        .await
        .map_err(|e| ApiError::internal(format_args!("creating {}: {e}", tmp.path().display())))?;
    let limit = state.config.max_upload_bytes;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("Invalid multipart body: {}", e.body_text())))?
    {
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("File too large: the limit is {limit} bytes"),
            ));
        }
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::internal(format_args!("writing the upload: {e}")))?;
    }
    out.flush()
        .await
        .map_err(|e| ApiError::internal(format_args!("writing the upload: {e}")))?;
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Spooled {
        tmp,
        filename,
        extension,
        sha256,
    })
}

async fn find_duplicate(
    client: &deadpool_postgres::Client,
    sha256: &str,
) -> Result<Option<Row>, ApiError> {
    Ok(client
        .query_opt(
            "select id, name, file_type, extraction_status, created_at from ai.sources where content_hash = $1",
            &[&sha256],
        )
        .await?)
}

/// 409 for content that is already a source, anyone's.
fn duplicate_error(existing: &Row) -> ApiError {
    let name: String = existing.get("name");
    ApiError::new(StatusCode::CONFLICT, "duplicate_source")
        .with(
            "message",
            format!("A source with identical content already exists: '{name}'. Reuse its id instead of uploading again."),
        )
        .with(
            "duplicate",
            json!({
                "id": existing.get::<_, Uuid>("id"),
                "name": name,
                "file_type": existing.get::<_, String>("file_type"),
                "extraction_status": existing.get::<_, String>("extraction_status"),
                "created_at": timestamp(existing.get("created_at")),
            }),
        )
}

/// `.pdf` for `Report.PDF`; empty when there is no extension.
fn extension_of(filename: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    match base.rfind('.') {
        Some(dot) if dot > 0 || base.len() > 1 => base[dot..].to_ascii_lowercase(),
        _ => String::new(),
    }
}

fn mime_for(extension: &str) -> &'static str {
    match extension {
        ".pdf" => "application/pdf",
        ".txt" => "text/plain",
        ".md" => "text/markdown",
        ".docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ".xls" => "application/vnd.ms-excel",
        ".pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ".png" => "image/png",
        ".jpg" | ".jpeg" => "image/jpeg",
        ".webp" => "image/webp",
        ".gif" => "image/gif",
        ".tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// A filename safe on disk and in a path, as Werkzeug's `secure_filename`
/// makes it: ASCII letters, digits, `.`, `_`, `-`; spaces become `_`.
fn safe_filename(filename: &str, extension: &str) -> String {
    let base = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    let cleaned: String = base
        .chars()
        .filter_map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => Some(c),
            c if c.is_whitespace() => Some('_'),
            _ => None,
        })
        .collect();
    let cleaned = cleaned.trim_start_matches(['.', '_']).to_owned();
    if cleaned.is_empty() || cleaned == extension.trim_start_matches('.') {
        format!("file{extension}")
    } else {
        cleaned
    }
}

// ------------------------------------------------------------ extraction

/// At most this many extractions or indexings run at once: they are CPU
/// bound, and the machines this runs on are small.
fn worker_slots() -> Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| Arc::new(Semaphore::new(2))).clone()
}

/// Background jobs queued or running in this process, by kind and row id.
fn jobs_in_flight() -> &'static Mutex<HashSet<(&'static str, Uuid)>> {
    static IN_FLIGHT: OnceLock<Mutex<HashSet<(&'static str, Uuid)>>> = OnceLock::new();
    IN_FLIGHT.get_or_init(Mutex::default)
}

/// Removes a job from [`jobs_in_flight`] when it ends, however it ends.
struct InFlight((&'static str, Uuid));

impl Drop for InFlight {
    fn drop(&mut self) {
        jobs_in_flight()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// Runs `job` in the background once a worker slot is free, unless a job of
/// the same `kind` for the same row is already queued or running here (the
/// start-up [`super::resume`] can meet a row a request has just queued).
/// The sandbox's shutdown abandons the job; the next start resumes it.
pub(super) fn spawn_job<F>(state: &AppState, kind: &'static str, id: Uuid, job: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let newly_queued = jobs_in_flight()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert((kind, id));
    if !newly_queued {
        return;
    }
    let in_flight = InFlight((kind, id));
    let shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let Ok(_slot) = worker_slots().acquire_owned().await else {
            return;
        };
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = job => {}
        }
    });
}

fn spawn_extraction(state: AppState, id: Uuid) {
    let job_state = state.clone();
    spawn_job(&state, "extract", id, async move {
        if let Err(err) = extract_source(&job_state, id).await {
            tracing::error!(source_id = %id, error = %err, "source extraction could not finish");
        }
    });
}

/// Queues every source left `pending` or `extracting`.
pub(crate) async fn resume_extractions(state: &AppState) {
    let ids = async {
        let client = state.db.ai.get().await.map_err(|e| e.to_string())?;
        let rows = client
            .query(
                "select id from ai.sources where extraction_status in ('pending', 'extracting') \
                 order by created_at",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(rows.iter().map(|r| r.get::<_, Uuid>(0)).collect::<Vec<_>>())
    };
    match ids.await {
        Ok(ids) => {
            if !ids.is_empty() {
                tracing::info!(count = ids.len(), "resuming source extractions");
            }
            for id in ids {
                spawn_extraction(state.clone(), id);
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not look for unfinished source extractions")
        }
    }
}

/// How extracting one file ended.
enum Outcome {
    Pages(Vec<String>),
    Failed { code: &'static str, message: String },
}

/// Extracts one source: claims it (`extracting`), reads its file, writes the
/// page texts, and records `extracted` or `failed`. A source deleted
/// meanwhile is left alone (and its files removed).
async fn extract_source(state: &AppState, id: Uuid) -> Result<(), String> {
    let client = state.db.ai.get().await.map_err(|e| e.to_string())?;
    let claimed = client
        .query_opt(
            "update ai.sources set extraction_status = 'extracting', updated_at = now() \
             where id = $1 and extraction_status in ('pending', 'extracting') \
             returning storage_path, file_type",
            &[&id],
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = claimed else {
        return Ok(());
    };
    drop(client);
    let storage_path: Option<String> = row.get("storage_path");
    let file_type: String = row.get("file_type");
    let root = data_root(state);

    let outcome = match storage_path {
        None => Outcome::Failed {
            code: "missing_file",
            message: "The source has no stored file.".into(),
        },
        Some(path) => match tokio::fs::read(root.join(&path)).await {
            Err(err) => Outcome::Failed {
                code: "missing_file",
                message: format!("The source's file could not be read: {err}"),
            },
            Ok(bytes) => {
                let limit = Duration::from_secs(state.config.extraction_time_limit_secs);
                extract_within(extension_of(&path), file_type, bytes, limit).await
            }
        },
    };

    let (status, derivatives, page_count, error_message) = match outcome {
        Outcome::Pages(pages) => match write_page_texts(&root, id, &pages).await {
            Ok(entries) => (
                "extracted",
                json!({"page_text": entries, "page_count": pages.len()}),
                Some(pages.len()),
                None,
            ),
            Err(err) => (
                "failed",
                json!({}),
                None,
                Some(format!("Storing page texts failed: {err}")),
            ),
        },
        Outcome::Failed { code, message } => {
            tracing::debug!(source_id = %id, code, "extraction failed");
            ("failed", json!({}), None, Some(message))
        }
    };
    let error_code: Option<String> = None;
    let client = state.db.ai.get().await.map_err(|e| e.to_string())?;
    let updated = client
        .execute(
            "update ai.sources set extraction_status = $2, derivatives = $3, error_code = $4, \
                    error_message = $5, updated_at = now(), \
                    auto_metadata = auto_metadata || jsonb_strip_nulls(jsonb_build_object('page_count', $6::int)) \
             where id = $1 and extraction_status = 'extracting'",
            &[
                &id,
                &status,
                &derivatives,
                &error_code,
                &error_message,
                &page_count.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
    if updated == 0 {
        // Deleted meanwhile: its files were removed by the delete, but the
        // page texts written above may have landed after that.
        let gone = client
            .query_opt("select 1 from ai.sources where id = $1", &[&id])
            .await
            .map_err(|e| e.to_string())?
            .is_none();
        if gone {
            remove_source_files(&root, id).await;
        }
    } else {
        tracing::info!(source_id = %id, status, "source extraction finished");
    }
    Ok(())
}

/// Extracts on a thread of its own and waits for it at most `limit`. The PDF
/// reader stops itself at that deadline, and is told to stop if it has not;
/// a file that keeps it busy anyway (inside parsing) still ends `failed`, and
/// its thread is left to finish on its own: it holds no lock and writes
/// nothing.
async fn extract_within(
    extension: String,
    file_type: String,
    bytes: Vec<u8>,
    limit: Duration,
) -> Outcome {
    let (done, outcome) = tokio::sync::oneshot::channel();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader_stop = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("extract".into())
        .spawn(move || {
            let outcome = extract_bytes(&extension, &file_type, &bytes, limit, reader_stop);
            let _ = done.send(outcome);
        });
    if let Err(err) = spawned {
        return Outcome::Failed {
            code: "internal",
            message: format!("No thread to extract the file on: {err}"),
        };
    }
    // A moment past the limit, so that the reader's own deadline, which names
    // the limit the same way, is what normally answers.
    match tokio::time::timeout(limit + Duration::from_secs(1), outcome).await {
        Ok(Ok(outcome)) => outcome,
        // The thread ended without an answer: it panicked outside the reader's own guard.
        Ok(Err(_)) => Outcome::Failed {
            code: ExtractError::Corrupt(String::new()).code(),
            message: "The PDF is damaged and could not be read.".into(),
        },
        Err(_) => {
            // The reader checks this at every glyph and drawing operation, so
            // its thread ends instead of reading on for no one.
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let err = ExtractError::TimedOut(limit);
            Outcome::Failed {
                code: err.code(),
                message: err.to_string(),
            }
        }
    }
}

fn extract_bytes(
    extension: &str,
    file_type: &str,
    bytes: &[u8],
    limit: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Outcome {
    match extension {
        ".pdf" => match extract::extract_pdf_within(bytes, limit, stop) {
            Ok(pages) => Outcome::Pages(pages),
            Err(err) => Outcome::Failed {
                code: err.code(),
                message: err.to_string(),
            },
        },
        ".txt" | ".md" => Outcome::Pages(vec![String::from_utf8_lossy(bytes).trim().to_owned()]),
        _ => Outcome::Failed {
            code: "unsupported_format",
            message: format!(
                "The sandbox extracts text from PDF, .txt and .md files only; {file_type} needs the platform's converters."
            ),
        },
    }
}

fn page_text_path(id: Uuid, page: usize) -> String {
    format!("sources/{id}/page_text/page_{page:04}.txt")
}

async fn write_page_texts(root: &Path, id: Uuid, pages: &[String]) -> io::Result<Vec<Value>> {
    let mut entries = Vec::with_capacity(pages.len());
    for (i, text) in pages.iter().enumerate() {
        let page = i + 1;
        let storage_path = page_text_path(id, page);
        let path = root.join(&storage_path);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, text).await?;
        entries.push(json!({"storage_path": storage_path, "format": "plain", "page": page}));
    }
    Ok(entries)
}

async fn remove_source_files(root: &Path, id: Uuid) {
    let dir = root.join(format!("sources/{id}"));
    if let Err(err) = tokio::fs::remove_dir_all(&dir).await
        && err.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(source_id = %id, error = %err, "could not remove a source's files");
    }
}

/// The page texts of an extracted source, in page order (`[0]` is page 1),
/// read from the files `derivatives.page_text` lists. `None` when the source
/// has none (not extracted).
pub(super) async fn read_page_texts(
    state: &AppState,
    derivatives: &Value,
) -> io::Result<Option<Vec<String>>> {
    let Some(entries) = derivatives.get("page_text").and_then(Value::as_array) else {
        return Ok(None);
    };
    let root = data_root(state);
    let mut pages = Vec::with_capacity(entries.len());
    for entry in entries {
        let path = entry
            .get("storage_path")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "page_text entry without storage_path",
                )
            })?;
        pages.push(tokio::fs::read_to_string(root.join(path)).await?);
    }
    Ok(Some(pages))
}

// ------------------------------------------------------------ read routes

async fn get_one(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, SOURCE_NOT_FOUND)?;
    let row = load_source(&state, id).await?;
    Ok(axum::Json(source_json(&row)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _: ServiceRole,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page_bounds(query.limit.as_deref(), query.offset.as_deref(), 50, 200)?;
    let status = query.status.filter(|s| !s.is_empty());
    if let Some(status) = &status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "Invalid status '{status}'. Valid: {}",
            STATUSES.join(", ")
        )));
    }
    let sort = match query.sort.as_deref() {
        None | Some("") | Some("created_at") => "created_at",
        Some("name") => "name",
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort '{other}'. Valid: created_at, name"
            )));
        }
    };
    let order = sort_direction(query.order.as_deref())?;
    let pattern = contains_pattern(query.q);

    let client = state.db.ai.get().await?;
    let filter =
        "($1::text is null or extraction_status = $1) and ($2::text is null or name ilike $2)";
    let total: i64 = client
        .query_one(
            &format!("select count(*) from ai.sources where {filter}"),
            &[&status, &pattern],
        )
        .await?
        .get(0);
    // `sort` and `order` come from the fixed lists above, never from the request text.
    let rows = client
        .query(
            &format!(
                "select {SOURCE_COLUMNS} from ai.sources where {filter} \
                 order by {sort} {order}, id limit $3 offset $4"
            ),
            &[&status, &pattern, &limit, &offset],
        )
        .await?;
    Ok(axum::Json(json!({
        "sources": rows.iter().map(source_json).collect::<Vec<_>>(),
        "total": total,
        "limit": limit,
        "offset": offset,
    }))
    .into_response())
}

async fn download(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, SOURCE_NOT_FOUND)?;
    let row = load_source(&state, id).await?;
    let storage_path: Option<String> = row.get("storage_path");
    let file_type: String = row.get("file_type");
    let storage_path = storage_path.ok_or_else(|| ApiError::not_found("Source file not found"))?;
    let file = match tokio::fs::File::open(data_root(&state).join(&storage_path)).await {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(ApiError::not_found("Source file not found"));
        }
        Err(err) => {
            return Err(ApiError::internal(format_args!(
                "opening source {id}: {err}"
            )));
        }
    };
    let length = file.metadata().await.map(|m| m.len()).ok();
    let filename = storage_path.rsplit('/').next().unwrap_or("file").to_owned();
    let mut response = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    // `filename` went through `safe_filename`: plain ASCII, no quotes.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(response)
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<String>,
}

async fn page_texts(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, SOURCE_NOT_FOUND)?;
    let row = load_source(&state, id).await?;
    let status: String = row.get("extraction_status");
    let pages = read_page_texts(&state, &row.get("derivatives"))
        .await
        .map_err(|e| ApiError::internal(format_args!("reading page texts of {id}: {e}")))?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No page texts for this source (extraction_status: {status})"
            ))
        })?;
    let count = pages.len();
    match query.page.as_deref().filter(|p| !p.is_empty()) {
        None => Ok(axum::Json(json!({"page_texts": pages, "count": count})).into_response()),
        Some(raw) => {
            let page = raw
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request("page must be a positive integer"))?;
            let text = page
                .checked_sub(1)
                .and_then(|i| pages.get(i))
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Page {page} not found (the source has {count} pages)"
                    ))
                })?;
            Ok(axum::Json(json!({"text": text, "page": page, "count": count})).into_response())
        }
    }
}

async fn delete(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, SOURCE_NOT_FOUND)?;
    let client = state.db.ai.get().await?;
    let indexed_in: i64 = client
        .query_one(
            "select count(distinct knowledge_base_id) from ai.indexed_sources where source_id = $1",
            &[&id],
        )
        .await?
        .get(0);
    let deleted = client
        .execute("delete from ai.sources where id = $1", &[&id])
        .await?;
    if deleted == 0 {
        return Err(ApiError::not_found(SOURCE_NOT_FOUND));
    }
    drop(client);
    remove_source_files(&data_root(&state), id).await;
    let mut body = json!({"message": "Source deleted"});
    if indexed_in > 0 {
        // The sandbox's `ai.chunks` cascade from the source, so the chunks go too.
        body["warning"] = json!(format!(
            "This source was indexed in {indexed_in} knowledge base(s); its chunks were removed from them."
        ));
    }
    Ok(axum::Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_safe_names() {
        assert_eq!(extension_of("Report.PDF"), ".pdf");
        assert_eq!(extension_of("archive.tar.gz"), ".gz");
        assert_eq!(extension_of("README"), "");
        assert_eq!(extension_of("dir.d/file"), "");
        assert_eq!(
            safe_filename("My Report (final).pdf", ".pdf"),
            "My_Report_final.pdf"
        );
        assert_eq!(safe_filename("../../etc/passwd.pdf", ".pdf"), "passwd.pdf");
        assert_eq!(safe_filename("résumé.pdf", ".pdf"), "rsum.pdf");
        assert_eq!(safe_filename("日本.pdf", ".pdf"), "file.pdf");
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(
            contains_pattern(Some("50%_a\\b".into())).as_deref(),
            Some("%50\\%\\_a\\\\b%")
        );
        assert_eq!(contains_pattern(Some(String::new())), None);
    }
}
