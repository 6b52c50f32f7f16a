//! `/upload/resumable`: TUS 1.0.0 resumable uploads, as Supabase Storage
//! serves them with tus-node-server (supabase/storage
//! `src/http/routes/tus/`): `POST` creates (`Upload-Length`, `Upload-Metadata` with
//! `bucketName`, `objectName`, `contentType`, `cacheControl`, `metadata`;
//! `x-upsert`), `PATCH` appends at `Upload-Offset`, `HEAD` tells where to
//! resume, `DELETE` abandons. Errors carry their real status with a
//! plain-text body.
//!
//! The upload's size is capped at creation like any upload's: the bucket's
//! `file_size_limit` or the global limit, whichever is lower
//! (`Upload-Length` above it: 413 `Maximum size exceeded`).
//!
//! The caller's right to upload is checked (RLS, as for any upload) on
//! every request but `HEAD`, so a refusal shows on the creating `POST`.
//! Stricter than Storage, an upload belongs to whoever created it: another
//! caller's `HEAD`, `PATCH` or `DELETE` finds nothing (404). Bytes
//! accumulate under the upload's own directory; when the last byte arrives
//! the row is written as for any upload (Storage's super user, an upsert:
//! [`super::rows::Rows::commit_upload`]), and the file is moved into place.

use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{options, post};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::error::{StorageError, tus as err};
use super::files;
use super::key::{must_be_valid_bucket_name, must_be_valid_key};
use super::rows::{Identity, NewObject, RequestFacts};
use super::tus::{
    TUS_EXTENSIONS, TUS_VERSION, UploadId, UploadInfo, UploadLock, cache_control_from_metadata,
    now_ms, parse_metadata, parse_u64,
};
use super::upload::{check_mime_type, find_bucket, object_metadata, request_limit};
use super::{Storage, request_facts};

type Result<T> = std::result::Result<T, StorageError>;

/// The path clients see (Storage's `TUS_URL_PATH` under the gateway).
const PUBLIC_PATH: &str = "/storage/v1/upload/resumable";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

pub fn routes() -> Router<Storage> {
    Router::new()
        .route("/upload/resumable", post(create).options(describe))
        .route(
            "/upload/resumable/{id}",
            options(describe)
                .head(status)
                .patch(append)
                .delete(terminate),
        )
}

fn tus_response(status: StatusCode) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header("tus-resumable", TUS_VERSION)
        .header(header::CACHE_CONTROL, "no-store")
}

fn finish(builder: axum::http::response::Builder) -> Response {
    builder.body(Body::empty()).unwrap_or_else(|_| {
        StorageError::Internal("building a TUS response".into()).into_tus_response()
    })
}

fn respond(result: Result<Response>) -> Response {
    result.unwrap_or_else(StorageError::into_tus_response)
}

fn http_date(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every request but `OPTIONS` must speak TUS 1.0.0.
fn check_version(headers: &HeaderMap) -> Result<()> {
    match header_str(headers, "tus-resumable") {
        None => Err(err::TUS_RESUMABLE_REQUIRED),
        Some(TUS_VERSION) => Ok(()),
        Some(_) => Err(err::UNSUPPORTED_VERSION),
    }
}

/// The URL of an upload, as Storage builds it from the request's host.
fn location(storage: &Storage, headers: &HeaderMap, id: &UploadId) -> String {
    let proto = header_str(headers, "x-forwarded-proto").unwrap_or("http");
    let host = header_str(headers, "x-forwarded-host").or_else(|| header_str(headers, "host"));
    let base = match host {
        Some(host) => format!("{proto}://{host}"),
        None => storage.app.api_base().to_owned(),
    };
    format!("{base}{PUBLIC_PATH}/{}", id.encode())
}

/// `OPTIONS`: what this server supports. No authentication.
async fn describe(State(storage): State<Storage>) -> Response {
    finish(
        Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header("tus-resumable", TUS_VERSION)
            .header("tus-version", TUS_VERSION)
            .header("tus-extension", TUS_EXTENSIONS)
            .header("tus-max-size", storage.limits.max_upload_bytes),
    )
}

/// Finds the upload an URL names, for the caller who created it.
async fn find_upload(storage: &Storage, id: &str, who: &Identity) -> Result<UploadInfo> {
    let id = UploadId::decode(id).ok_or(err::FILE_NOT_FOUND)?;
    let info = storage
        .uploads
        .load(&id)
        .await?
        .ok_or(err::FILE_NOT_FOUND)?;
    if info.owner.as_deref() != who.sub() {
        return Err(err::FILE_NOT_FOUND);
    }
    Ok(info)
}

fn expired(storage: &Storage, info: &UploadInfo) -> bool {
    !info.completed && info.expires_at(storage.limits.resumable_expiry) <= SystemTime::now()
}

// ----- POST: create ------------------------------------------------------

async fn create(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(create_upload(storage, method, uri, headers, body).await)
}

async fn create_upload(
    storage: Storage,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    check_version(&headers)?;
    if headers.contains_key("upload-concat") {
        return Err(err::UNSUPPORTED_CONCATENATION);
    }
    if headers.contains_key("upload-defer-length") {
        return Err(err::UNSUPPORTED_DEFER_LENGTH);
    }
    let length = header_str(&headers, "upload-length")
        .and_then(parse_u64)
        .ok_or(err::INVALID_LENGTH)?;
    let raw_metadata = header_str(&headers, "upload-metadata").ok_or(err::METADATA_REQUIRED)?;
    let metadata = parse_metadata(raw_metadata)?;
    let field = |name: &str| metadata.get(name).cloned().flatten();

    let bucket_name = field("bucketName").unwrap_or_default();
    let key = field("objectName").unwrap_or_default();
    must_be_valid_bucket_name(&bucket_name)?;
    must_be_valid_key(&key)?;
    let facts = request_facts(
        &method,
        uri.path(),
        &headers,
        "storage.object.upload_resumable",
    );
    let bucket = find_bucket(&storage, &facts, &bucket_name).await?;
    if length > request_limit(&storage, &bucket) {
        return Err(err::ERR_MAX_SIZE_EXCEEDED);
    }
    let content_type = field("contentType")
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    check_mime_type(&bucket, &content_type)?;
    let upsert = header_str(&headers, "x-upsert") == Some("true");
    storage
        .rows
        .check_upload(&who, &facts, &bucket_name, &key, upsert)
        .await?;

    if let Err(e) = storage
        .uploads
        .sweep_expired(storage.limits.resumable_expiry)
        .await
    {
        tracing::warn!(error = %e, "storage: could not sweep expired resumable uploads");
    }
    let info = UploadInfo {
        bucket: bucket_name,
        key,
        version: Uuid::new_v4().to_string(),
        length,
        content_type,
        cache_control: cache_control_from_metadata(field("cacheControl").as_deref()),
        user_metadata: field("metadata")
            .and_then(|m| serde_json::from_str::<Value>(&m).ok())
            .filter(Value::is_object),
        upload_metadata: raw_metadata.to_owned(),
        owner: who.sub().map(str::to_owned),
        upsert,
        created_at_ms: now_ms(),
        completed: false,
    };
    let lock = storage.uploads.lock(&info.version).ok_or(err::LOCKED)?;
    storage.uploads.create(&info).await?;

    // creation-with-upload: the body of the POST is the first chunk.
    let with_body = header_str(&headers, "content-type") == Some(OFFSET_OCTET_STREAM);
    let offset = if with_body || length == 0 {
        Some(write_and_maybe_finish(&storage, &info, &who, &facts, lock, 0, &headers, body).await?)
    } else {
        None
    };

    let mut res = tus_response(StatusCode::CREATED).header(
        header::LOCATION,
        HeaderValue::from_str(&location(&storage, &headers, &info.id()))
            .map_err(|_| StorageError::Internal("upload URL is not a header value".into()))?,
    );
    if let Some(offset) = offset {
        res = res.header("upload-offset", offset);
    }
    if offset != Some(length) {
        res = res.header(
            "upload-expires",
            http_date(info.expires_at(storage.limits.resumable_expiry)),
        );
    }
    Ok(finish(res))
}

// ----- HEAD: where to resume -------------------------------------------

async fn status(
    State(storage): State<Storage>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(upload_status(storage, headers, id).await)
}

async fn upload_status(storage: Storage, headers: HeaderMap, id: String) -> Result<Response> {
    let who = storage.caller(&headers)?;
    check_version(&headers)?;
    let info = find_upload(&storage, &id, &who).await?;
    if expired(&storage, &info) {
        storage.uploads.remove(&info.version).await?;
        return Err(err::FILE_NO_LONGER_EXISTS);
    }
    let offset = if info.completed {
        info.length
    } else {
        storage.uploads.offset(&info.version).await?
    };
    let mut res = tus_response(StatusCode::OK)
        .header("upload-offset", offset)
        .header("upload-length", info.length);
    if !info.upload_metadata.is_empty()
        && let Ok(value) = HeaderValue::from_str(&info.upload_metadata)
    {
        res = res.header("upload-metadata", value);
    }
    if !info.completed {
        res = res.header(
            "upload-expires",
            http_date(info.expires_at(storage.limits.resumable_expiry)),
        );
    }
    Ok(finish(res))
}

// ----- PATCH: append -----------------------------------------------------

async fn append(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(append_chunk(storage, method, uri, headers, id, body).await)
}

async fn append_chunk(
    storage: Storage,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    id: String,
    body: Body,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    check_version(&headers)?;
    let offset = match header_str(&headers, "upload-offset") {
        None => return Err(err::MISSING_OFFSET),
        Some(v) => parse_u64(v).ok_or(StorageError::Tus {
            status: 400,
            body: "Invalid upload-offset\n",
        })?,
    };
    match header_str(&headers, "content-type") {
        None => return Err(err::INVALID_CONTENT_TYPE),
        Some(OFFSET_OCTET_STREAM) => {}
        Some(_) => {
            return Err(StorageError::Tus {
                status: 400,
                body: "Invalid content-type\n",
            });
        }
    }
    let info = find_upload(&storage, &id, &who).await?;
    let facts = request_facts(
        &method,
        uri.path(),
        &headers,
        "storage.object.upload_resumable",
    );
    if !info.completed {
        storage
            .rows
            .check_upload(&who, &facts, &info.bucket, &info.key, info.upsert)
            .await?;
    }
    let lock = storage.uploads.lock(&info.version).ok_or(err::LOCKED)?;
    // Re-read under the lock: the writer before us may just have finished.
    let info = storage
        .uploads
        .load(&info.id())
        .await?
        .ok_or(err::FILE_NOT_FOUND)?;
    if expired(&storage, &info) {
        storage.uploads.remove(&info.version).await?;
        return Err(err::FILE_NO_LONGER_EXISTS);
    }
    if info.completed {
        if offset != info.length {
            return Err(err::INVALID_OFFSET);
        }
        return Ok(finish(
            tus_response(StatusCode::NO_CONTENT)
                .header("upload-offset", info.length)
                .header("tus-complete", "1"),
        ));
    }
    let new_offset =
        write_and_maybe_finish(&storage, &info, &who, &facts, lock, offset, &headers, body).await?;

    let mut res = tus_response(StatusCode::NO_CONTENT).header("upload-offset", new_offset);
    if new_offset == info.length {
        res = res.header("tus-complete", "1");
    } else {
        res = res.header(
            "upload-expires",
            http_date(info.expires_at(storage.limits.resumable_expiry)),
        );
    }
    Ok(finish(res))
}

/// Appends `body` at `offset` (which must be where the upload stands) and,
/// when that completes the upload, stores the object. Runs in its own task
/// holding the upload's lock, so a client that goes away mid-chunk leaves
/// exactly the bytes that arrived, ready to resume, and never a half-done
/// commit.
#[allow(clippy::too_many_arguments)]
async fn write_and_maybe_finish(
    storage: &Storage,
    info: &UploadInfo,
    who: &Identity,
    facts: &RequestFacts,
    lock: UploadLock,
    offset: u64,
    headers: &HeaderMap,
    body: Body,
) -> Result<u64> {
    let current = storage.uploads.offset(&info.version).await?;
    if offset != current {
        return Err(err::INVALID_OFFSET);
    }
    let remaining = info.length - current;
    let per_request = storage.limits.max_upload_bytes;
    let declared = header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(parse_u64);
    if declared.is_some_and(|len| len > remaining) {
        return Err(err::ERR_SIZE_EXCEEDED);
    }
    if declared.is_some_and(|len| len > per_request) {
        return Err(err::ERR_MAX_SIZE_EXCEEDED);
    }

    let (storage, info, who, facts) = (storage.clone(), info.clone(), who.clone(), facts.clone());
    let task = tokio::spawn(async move {
        let _lock = lock;
        let path = storage
            .uploads
            .data_path(&info.version)
            .ok_or(err::FILE_NOT_FOUND)?;
        let written = append_body(&path, body, remaining.min(per_request), remaining).await?;
        let new_offset = current + written;
        if new_offset == info.length {
            store_object(&storage, &info, &who, &facts).await?;
        }
        Ok(new_offset)
    });
    task.await
        .map_err(|e| StorageError::Internal(format!("resumable upload task: {e}")))?
}

/// Appends `body` to `path`, at most `limit` bytes. Whatever arrives is kept
/// (flushed) even when the body is cut short or runs over the limit.
async fn append_body(
    path: &std::path::Path,
    body: Body,
    limit: u64,
    remaining: u64,
) -> Result<u64> {
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await?;
    let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut written = 0u64;
    let mut stream = body.into_data_stream();
    let outcome = loop {
        match stream.next().await {
            None => break Ok(()),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "storage: resumable chunk cut short");
                break Err(StorageError::InvalidRequest(
                    "The request body was not received in full".into(),
                ));
            }
            Some(Ok(chunk)) => {
                let room = (limit - written) as usize;
                let take = chunk.len().min(room);
                if let Err(e) = file.write_all(&chunk[..take]).await {
                    break Err(e.into());
                }
                written += take as u64;
                if take < chunk.len() {
                    break Err(if limit < remaining {
                        err::ERR_MAX_SIZE_EXCEEDED
                    } else {
                        err::ERR_SIZE_EXCEEDED
                    });
                }
            }
        }
    };
    file.flush().await?;
    outcome.map(|()| written)
}

/// The last byte is in: writes the row (as Storage's super user, like any
/// upload: the caller's right was checked when this `PATCH` began), moves
/// the bytes into place, and records the upload as complete. A refusal now
/// (a trigger of the project's) abandons the upload.
async fn store_object(
    storage: &Storage,
    info: &UploadInfo,
    who: &Identity,
    facts: &RequestFacts,
) -> Result<()> {
    let data = storage
        .uploads
        .data_path(&info.version)
        .ok_or(err::FILE_NOT_FOUND)?;
    let received = files::etag_of(&data).await?;
    let new = NewObject {
        bucket: &info.bucket,
        name: &info.key,
        owner: who.sub(),
        version: &info.version,
        metadata: object_metadata(&received, &info.content_type, &info.cache_control),
        user_metadata: info.user_metadata.clone(),
    };
    let (_, replaced) = match storage.rows.commit_upload(facts, &new).await {
        Ok(done) => done,
        Err(e) => {
            storage.uploads.remove(&info.version).await?;
            return Err(e);
        }
    };
    if let Err(e) = storage
        .files
        .place(&data, &info.bucket, &info.key, &info.version)
        .await
    {
        tracing::error!(error = %e, bucket = %info.bucket, "storage: the row committed but the resumable upload's bytes could not be moved into place");
        return Err(e.into());
    }
    storage.uploads.mark_completed(info).await?;
    if let Some(old) = replaced.filter(|old| *old != info.version)
        && let Err(e) = storage.files.remove(&info.bucket, &info.key, &old).await
    {
        tracing::warn!(error = %e, "storage: could not remove a replaced object version");
    }
    Ok(())
}

// ----- DELETE: abandon ---------------------------------------------------

async fn terminate(
    State(storage): State<Storage>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(terminate_upload(storage, headers, id).await)
}

async fn terminate_upload(storage: Storage, headers: HeaderMap, id: String) -> Result<Response> {
    let who = storage.caller(&headers)?;
    check_version(&headers)?;
    let info = find_upload(&storage, &id, &who).await?;
    let _lock = storage.uploads.lock(&info.version).ok_or(err::LOCKED)?;
    if info.completed {
        return Err(err::INVALID_TERMINATION);
    }
    storage.uploads.remove(&info.version).await?;
    Ok(finish(tus_response(StatusCode::NO_CONTENT)))
}
