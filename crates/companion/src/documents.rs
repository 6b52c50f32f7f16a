//! `POST /api/documents`, `POST /api/documents/{id}/ingest`,
//! `DELETE /api/documents/{id}` (ARCHITECTURE.md, "Upload").
//!
//! Every id in a path is looked up under the user's own token first, so a
//! document that is someone else's answers exactly like one that does not
//! exist (404). Nothing is written until the request has passed its checks.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::User;
use crate::error::{ApiError, ErrorCode};
use crate::platform::{ApiCode, Auth, PlatformError};
use crate::server::AppState;

/// Seconds a client is told to wait when a user has too many uploads in flight.
pub const UPLOAD_RETRY_AFTER_SECS: u64 = 30;
/// Bytes of an object read to check that it is a PDF (readers look for the
/// header within the first 1024).
const HEADER_BYTES: usize = 1024;
/// The most documents one person may have, as db/app/83_per_user_limits.sql
/// counts them (written as people read it).
const MAX_DOCUMENTS: &str = "1,000";

#[derive(Debug, Deserialize)]
struct NewDocument {
    title: String,
    byte_size: i64,
    #[serde(default)]
    sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DocumentRow {
    #[serde(alias = "document_id")]
    id: Uuid,
    storage_path: String,
    status: String,
    #[serde(default)]
    byte_size: i64,
}

#[derive(Debug, Deserialize)]
struct DocumentsBucket {
    file_size_limit: Option<u64>,
}

/// The largest file Quire stores: the `documents` bucket's
/// `file_size_limit`, read as the user (Storage's getBucket runs under RLS;
/// db/app lets a signed-in user read this one bucket). Read per request, so
/// a change to the bucket applies at once (docs/platform-contract.md).
async fn document_limit(state: &AppState, user: &User) -> Result<u64, ApiError> {
    let bucket: DocumentsBucket = state
        .platform
        .json(
            "GET /storage/v1/bucket/documents",
            state.platform.request(
                Method::GET,
                "/storage/v1/bucket/documents",
                Auth::User(user.token()),
            ),
        )
        .await?;
    bucket.file_size_limit.filter(|l| *l > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Misconfigured,
            "The documents bucket has no size limit; Quire's database setup was not applied. \
             Ask whoever runs Quire's platform to apply it.",
        )
    })
}

/// `bytes` as a person reads a file size: binary megabytes, one decimal
/// when it is not whole ("50 MB" for 52,428,800 bytes, as Storage's
/// dashboard shows it).
pub fn megabytes(bytes: u64) -> String {
    let tenths = (bytes * 10 + 1024 * 1024 / 2) / (1024 * 1024);
    if tenths.is_multiple_of(10) {
        format!("{} MB", tenths / 10)
    } else {
        format!("{}.{} MB", tenths / 10, tenths % 10)
    }
}

/// `POST /api/documents` `{title, byte_size, sha256?}` → 201
/// `{document_id, storage_path, status}`.
pub async fn register(
    State(state): State<AppState>,
    user: User,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NewDocument = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("The request body must be JSON {{title, byte_size, sha256?}}: {e}"),
        )
    })?;
    let title = request.title.trim();
    if title.is_empty() || title.chars().count() > 1024 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTitle,
            "The title must be 1 to 1024 characters.",
        ));
    }
    if request.byte_size <= 0 {
        return Err(ApiError::bad_request(
            ErrorCode::EmptyFile,
            "The file is empty. Choose a PDF with content.",
        ));
    }
    let max = document_limit(&state, &user).await?;
    if u64::try_from(request.byte_size).is_ok_and(|size| size > max) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!(
                "The file is larger than {}, the largest PDF Quire can store. \
                 Split it and upload the parts.",
                megabytes(max)
            ),
        ));
    }
    let sha256 = match request.sha256.as_deref().map(str::to_ascii_lowercase) {
        None => None,
        Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => Some(s),
        Some(_) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidSha256,
                "sha256 must be 64 hexadecimal digits.",
            ));
        }
    };

    // Counted and inserted in one transaction, under a lock per user, so
    // registrations sent at once cannot all pass the count
    // (db/app/83_per_user_limits.sql).
    let limit = state.config.limits.max_uploads_per_user;
    let rows: Vec<DocumentRow> = state
        .platform
        .rpc(
            Auth::Service,
            "register_document",
            &json!({"owner_id": user.id, "title": title, "byte_size": request.byte_size,
                    "sha256": sha256, "max_in_flight": limit}),
        )
        .await
        .map_err(|err| match err.code() {
            Some(ApiCode::UserLimit(hint)) if hint == "too_many_uploads" => ApiError::rate_limited(
                format!(
                    "You have {limit} documents still uploading or being read. Wait for one to be ready."
                ),
                UPLOAD_RETRY_AFTER_SECS,
            ),
            Some(ApiCode::UserLimit(_)) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::LimitReached,
                format!(
                    "You have {MAX_DOCUMENTS} documents, the most Quire keeps for one person. \
                     Delete some you no longer need, then upload again."
                ),
            ),
            _ => ApiError::platform(&err),
        })?;
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("registering a document returned no row"))?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"document_id": row.id, "storage_path": row.storage_path, "status": row.status}),
        ),
    )
        .into_response())
}

/// The user's document `id`, read under their token; 404 otherwise.
async fn own_document(state: &AppState, user: &User, id: &str) -> Result<DocumentRow, ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found("document"))?;
    let rows: Vec<DocumentRow> = state
        .platform
        .select(
            Auth::User(user.token()),
            "documents",
            &[
                ("select", "id,storage_path,status,byte_size".to_owned()),
                ("id", format!("eq.{id}")),
            ],
        )
        .await?;
    rows.into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("document"))
}

/// `POST /api/documents/{id}/ingest`: after the client's Storage upload.
/// Checks, under the user's identity, that the object is there, not empty,
/// a PDF and of the registered size; then queues it → 202 `{document_id,
/// status}`. Asking again for a document already queued answers 200 with its
/// status; a `failed` one is queued again.
pub async fn ingest(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let document = own_document(&state, &user, &id).await?;
    if !matches!(document.status.as_str(), "uploading" | "failed") {
        return Ok(
            Json(json!({"document_id": document.id, "status": document.status})).into_response(),
        );
    }

    let path = format!(
        "/storage/v1/object/authenticated/documents/{}",
        document.storage_path
    );
    let object = state
        .platform
        .send(
            "GET /storage/v1/object/authenticated/documents/…",
            state
                .platform
                .request(Method::GET, &path, Auth::User(user.token())),
        )
        .await;
    let object = match object {
        Ok(object) => object,
        Err(err) if matches!(err.status(), Some(400 | 403 | 404)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NotUploaded,
                "The file has not been uploaded yet. Upload it to storage first, then ask again.",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let size = object.content_length();
    let mut head = Vec::with_capacity(HEADER_BYTES);
    let mut stream = object.bytes_stream();
    let mut read: u64 = 0;
    while head.len() < HEADER_BYTES {
        match stream.next().await {
            Some(Ok(piece)) => {
                read += piece.len() as u64;
                let room = HEADER_BYTES - head.len();
                head.extend_from_slice(&piece[..piece.len().min(room)]);
            }
            Some(Err(err)) => {
                return Err(ApiError::platform(&PlatformError::Transport {
                    what: "reading the uploaded object".to_owned(),
                    source: err,
                }));
            }
            None => break,
        }
    }
    drop(stream);
    let size = size.unwrap_or(read);
    if size == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::EmptyFile,
            "The uploaded file is empty. Delete this document and upload the PDF again.",
        ));
    }
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::NotAPdf,
            "The uploaded file is not a PDF. Delete this document and upload a PDF.",
        ));
    }
    if i64::try_from(size).ok() != Some(document.byte_size) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::SizeMismatch,
            format!(
                "The uploaded file has {size} bytes, not the {} registered. Upload it again.",
                document.byte_size
            ),
        ));
    }

    let status: Option<String> = state
        .platform
        .rpc(
            Auth::Service,
            "queue_ingest",
            &json!({"document_id": document.id}),
        )
        .await?;
    let status = status.ok_or_else(|| ApiError::not_found("document"))?;
    state.ingest_wakeup.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"document_id": document.id, "status": status})),
    )
        .into_response())
}

/// `DELETE /api/documents/{id}` → 204: deletes the row (its chunks and job
/// go with it). Its Storage object and platform source are deleted after
/// it, as after any other deletion of a document, by [`crate::deletions`]
/// (db/app/97_document_deletions.sql).
pub async fn delete(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let document = own_document(&state, &user, &id).await?;
    // A row when the document was there (db/app/60_ingest.sql); what it
    // says about the platform's copies is the drain's to act on.
    let deleted: Vec<serde_json::Value> = state
        .platform
        .rpc(
            Auth::Service,
            "delete_document",
            &json!({"document_id": document.id, "owner_id": user.id}),
        )
        .await?;
    if deleted.is_empty() {
        return Err(ApiError::not_found("document"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
