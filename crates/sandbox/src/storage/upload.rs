//! Receiving an object: the request body (raw or `multipart/form-data`, as
//! Storage's `Uploader` takes them) streamed into a temporary file, then the
//! row written and the bytes moved into place.
//!
//! Order matters and follows Storage: the bucket is looked up and the
//! caller's right to write the key is checked (a rolled-back probe write, so
//! RLS answers) *before* a byte of the body is read, and only then; the body
//! is streamed to disk, never held in memory; the row commits, written by
//! Storage's super user as an upsert (`completeUpload`), so it replaces
//! whatever was stored at the key since the check; only then is the file
//! renamed into place. A refused, failed or cut-short upload leaves no row
//! and no file: the temporary file is deleted when its [`Incoming`] drops,
//! and the commit-and-rename runs in its own task so that a client going
//! away cannot interrupt it half-way.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Storage;
use super::error::StorageError;
use super::files::{Incoming, Received};
use super::key::must_be_valid_key;
use super::rows::{Bucket, Identity, NewObject, RequestFacts};

/// A field of a multipart form other than the file: small, read whole.
const MAX_FORM_FIELD_BYTES: usize = 64 * 1024;

/// What to upload where, as whom.
#[derive(Debug, Clone)]
pub struct Target {
    pub bucket: String,
    pub key: String,
    /// Whose right to write the key is checked before the body is read
    /// (RLS decides).
    pub who: Identity,
    /// The object's `owner` (the caller's `sub`, or a signed URL's `owner`).
    pub owner: Option<String>,
    pub upsert: bool,
    pub facts: RequestFacts,
}

/// A stored object: `{"Id","Key"}` in Storage's answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: Uuid,
    pub key: String,
}

impl Stored {
    pub fn body(&self) -> Value {
        json!({"Id": self.id.to_string(), "Key": self.key})
    }
}

/// The bucket `name` as Storage's super user sees it, or `NoSuchBucket`.
pub async fn find_bucket(
    storage: &Storage,
    facts: &RequestFacts,
    name: &str,
) -> Result<Bucket, StorageError> {
    storage
        .rows
        .bucket(&Identity::service(), facts, name)
        .await?
        .ok_or(StorageError::NoSuchBucket)
}

/// The largest object `bucket` accepts (one request or resumable): the global limit, or the
/// bucket's own when it is lower.
pub fn request_limit(storage: &Storage, bucket: &Bucket) -> u64 {
    let global = storage.limits.max_upload_bytes;
    match bucket.file_size_limit {
        Some(limit) if limit > 0 => global.min(limit as u64),
        _ => global,
    }
}

/// Storage's `validateMimeType`: the type's first two `/`-separated parts
/// must equal those of one of the bucket's allowed types, or its first part
/// that of a `type/*` one — compared as written (no case folding, and a
/// parameter such as `; charset=…` is part of the second).
pub fn check_mime_type(bucket: &Bucket, mime: &str) -> Result<(), StorageError> {
    let Some(allowed) = bucket.allowed_mime_types.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let mut requested = mime.split('/');
    let (Some(kind), Some(sub)) = (requested.next(), requested.next()) else {
        return Err(StorageError::InvalidMimeType(mime.to_owned()));
    };
    let ok = allowed.iter().any(|a| {
        let mut parts = a.split('/');
        let (allowed_kind, allowed_sub) = (parts.next(), parts.next());
        allowed_kind == Some(kind) && (allowed_sub == Some("*") || allowed_sub == Some(sub))
    });
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidMimeType(mime.to_owned()))
    }
}

/// The object's `metadata` as Storage records it.
pub fn object_metadata(received: &Received, mimetype: &str, cache_control: &str) -> Value {
    json!({
        "eTag": received.etag,
        "size": received.size,
        "mimetype": mimetype,
        "cacheControl": cache_control,
        "lastModified": super::rows::iso(chrono::Utc::now()),
        "contentLength": received.size,
        "httpStatusCode": 200,
    })
}

/// Uploads the request `body` to `target`: checks, streams, commits.
pub async fn upload_request(
    storage: &Storage,
    target: Target,
    headers: &HeaderMap,
    body: Body,
) -> Result<Stored, StorageError> {
    must_be_valid_key(&target.key)?;
    let bucket = find_bucket(storage, &target.facts, &target.bucket).await?;
    let limit = request_limit(storage, &bucket);

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let multipart = content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data");
    if !multipart {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(StorageError::EntityTooLarge);
        }
    }

    storage
        .rows
        .check_upload(
            &target.who,
            &target.facts,
            &target.bucket,
            &target.key,
            target.upsert,
        )
        .await?;

    let (incoming, received, mimetype, cache_control, user_metadata) = if multipart {
        receive_multipart(storage, &bucket, &content_type, body, limit).await?
    } else {
        let mimetype = if content_type.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            content_type.clone()
        };
        check_mime_type(&bucket, &mimetype)?;
        let cache_control = headers
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no-cache")
            .to_owned();
        let user_metadata = headers
            .get("x-metadata")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_x_metadata);
        let mut incoming = storage.files.incoming().await?;
        receive(&mut incoming, body.into_data_stream(), limit).await?;
        let received = incoming.finish().await?;
        (incoming, received, mimetype, cache_control, user_metadata)
    };

    let metadata = object_metadata(&received, &mimetype, &cache_control);
    commit(storage, target, incoming, metadata, user_metadata).await
}

/// Writes the row (as Storage's super user: [`super::rows::Rows::commit_upload`]),
/// then moves the bytes into place and drops the version they replace. Runs
/// detached from the request.
pub async fn commit(
    storage: &Storage,
    target: Target,
    incoming: Incoming,
    metadata: Value,
    user_metadata: Option<Value>,
) -> Result<Stored, StorageError> {
    let storage = storage.clone();
    let task = tokio::spawn(async move {
        let version = Uuid::new_v4().to_string();
        let new = NewObject {
            bucket: &target.bucket,
            name: &target.key,
            owner: target.owner.as_deref(),
            version: &version,
            metadata,
            user_metadata,
        };
        let (id, replaced) = storage.rows.commit_upload(&target.facts, &new).await?;
        if let Err(e) = storage
            .files
            .commit(incoming, &target.bucket, &target.key, &version)
            .await
        {
            tracing::error!(error = %e, bucket = %target.bucket, "storage: the row committed but its bytes could not be moved into place");
            return Err(StorageError::from(e));
        }
        if let Some(old) = replaced.filter(|old| *old != version)
            && let Err(e) = storage
                .files
                .remove(&target.bucket, &target.key, &old)
                .await
        {
            tracing::warn!(error = %e, "storage: could not remove a replaced object version");
        }
        Ok(Stored {
            id,
            key: format!("{}/{}", target.bucket, target.key),
        })
    });
    task.await
        .map_err(|e| StorageError::Internal(format!("upload commit task: {e}")))?
}

/// Streams `body` into `incoming`, refusing more than `limit` bytes. A body
/// that ends in an error (the client went away) fails the upload.
pub async fn receive<S, E>(incoming: &mut Incoming, body: S, limit: u64) -> Result<(), StorageError>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::debug!(error = %e, "storage: upload body cut short");
            StorageError::InvalidRequest("The request body was not received in full".into())
        })?;
        if incoming.size() + chunk.len() as u64 > limit {
            return Err(StorageError::EntityTooLarge);
        }
        incoming.write(&chunk).await?;
    }
    Ok(())
}

/// `x-metadata`: base64 of a JSON object (storage-js `toBase64(JSON)`).
fn parse_x_metadata(value: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

type Form = (Incoming, Received, String, String, Option<Value>);

/// The first file part of a form, and the `cacheControl`, `contentType` and
/// `metadata` fields sent before it (what `@fastify/multipart`'s
/// `request.file()` gives Storage).
async fn receive_multipart(
    storage: &Storage,
    bucket: &Bucket,
    content_type: &str,
    body: Body,
    limit: u64,
) -> Result<Form, StorageError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| StorageError::InvalidRequest("Unexpected empty file received".into()))?;
    let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut cache_control = None;
    let mut content_type_field = None;
    let mut user_metadata = None;
    loop {
        let field = form.next_field().await.map_err(multipart_error)?;
        let Some(mut field) = field else {
            return Err(StorageError::InvalidRequest("No content provided".into()));
        };
        if field.file_name().is_none() {
            let name = field.name().unwrap_or("").to_owned();
            let mut value = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                if value.len() + chunk.len() > MAX_FORM_FIELD_BYTES {
                    return Err(StorageError::InvalidRequest(format!(
                        "Form field {name} is too large"
                    )));
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8_lossy(&value).into_owned();
            match name.as_str() {
                "cacheControl" => cache_control = Some(value),
                "contentType" => content_type_field = Some(value),
                "metadata" => {
                    user_metadata = serde_json::from_str::<Value>(&value)
                        .ok()
                        .filter(Value::is_object)
                }
                _ => {}
            }
            continue;
        }

        let mimetype = content_type_field
            .filter(|v| !v.is_empty())
            .or_else(|| field.content_type().map(|m| m.to_string()))
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        check_mime_type(bucket, &mimetype)?;
        let cache_control = match cache_control.filter(|v| !v.is_empty()) {
            Some(seconds) => format!("max-age={seconds}"),
            None => "no-cache".to_owned(),
        };
        let mut incoming = storage.files.incoming().await?;
        let chunks = futures_util::stream::unfold(field, |mut field| async move {
            match field.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), field)),
                Ok(None) => None,
                Err(e) => Some((Err(e), field)),
            }
        });
        receive(&mut incoming, chunks, limit).await?;
        let received = incoming.finish().await?;
        return Ok((incoming, received, mimetype, cache_control, user_metadata));
    }
}

fn multipart_error(err: multer::Error) -> StorageError {
    tracing::debug!(error = %err, "storage: bad multipart body");
    StorageError::InvalidRequest("Unexpected empty file received".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(allowed: Option<Vec<&str>>) -> Bucket {
        Bucket {
            id: "b".into(),
            name: "b".into(),
            owner: None,
            owner_id: None,
            public: false,
            file_size_limit: None,
            allowed_mime_types: allowed.map(|a| a.into_iter().map(String::from).collect()),
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn mime_types_follow_the_bucket() {
        assert!(check_mime_type(&bucket(None), "anything/at-all").is_ok());
        let pdf = bucket(Some(vec!["application/pdf"]));
        assert!(check_mime_type(&pdf, "application/pdf").is_ok());
        // As Storage compares them: as written, parameters included.
        assert!(check_mime_type(&pdf, "Application/PDF").is_err());
        assert!(check_mime_type(&pdf, "application/pdf; charset=binary").is_err());
        assert!(check_mime_type(&pdf, "application").is_err());
        assert!(matches!(
            check_mime_type(&pdf, "text/html"),
            Err(StorageError::InvalidMimeType(m)) if m == "text/html"
        ));
        let images = bucket(Some(vec!["image/*"]));
        assert!(check_mime_type(&images, "image/png").is_ok());
        assert!(check_mime_type(&images, "imagex/png").is_err());
    }

    #[test]
    fn x_metadata_is_base64_json() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(r#"{"a":1}"#);
        assert_eq!(parse_x_metadata(&encoded), Some(json!({"a": 1})));
        assert_eq!(parse_x_metadata("!!"), None);
        let not_object = base64::engine::general_purpose::STANDARD.encode("[1]");
        assert_eq!(parse_x_metadata(&not_object), None);
    }
}
