//! The `/object` routes: upload, update, download, info, delete, list and
//! signed URLs (supabase/storage `src/http/routes/object/`).

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{delete, get, post};
use futures_util::stream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::StorageError;
use super::key::must_be_valid_key;
use super::range::ByteRange;
use super::rows::{Identity, ListQuery, Object, SortColumn};
use super::upload::{Target, upload_request};
use super::{Storage, request_facts};

type Result<T> = std::result::Result<T, StorageError>;

pub fn routes() -> Router<Storage> {
    Router::new()
        .route("/object/list/{bucket}", post(list))
        .route("/object/info/{bucket}/{*key}", get(info))
        .route("/object/info/authenticated/{bucket}/{*key}", get(info))
        .route("/object/authenticated/{bucket}/{*key}", get(download))
        .route("/object/public/{bucket}/{*key}", get(download_public))
        .route("/object/sign/{bucket}", post(sign_many))
        .route(
            "/object/sign/{bucket}/{*key}",
            post(sign).get(download_signed),
        )
        .route(
            "/object/upload/sign/{bucket}/{*key}",
            post(sign_upload).put(upload_signed),
        )
        .route("/object/{bucket}", delete(remove_many))
        .route(
            "/object/{bucket}/{*key}",
            post(create).put(update).get(download).delete(remove),
        )
}

/// `{bucket}/{*key}` from the path; a key that does not decode is invalid.
fn object_path(
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String)> {
    match path {
        Ok(Path((bucket, key))) => Ok((bucket, key)),
        Err(rejection) => Err(StorageError::InvalidKey(rejection.body_text())),
    }
}

/// A JSON object body, or Fastify's validation error.
fn json_body(bytes: &Bytes) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(StorageError::Validation("body must be object".into())),
        Err(_) => Err(StorageError::Validation(
            "Body is not valid JSON but content-type is set to 'application/json'".into(),
        )),
    }
}

fn json_ok(body: &impl serde::Serialize) -> Response {
    crate::http::json_response(StatusCode::OK, body)
}

fn upsert_header(headers: &HeaderMap) -> bool {
    headers.get("x-upsert").and_then(|v| v.to_str().ok()) == Some("true")
}

// ----- upload ------------------------------------------------------------

async fn create(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> Result<Response> {
    let upsert = upsert_header(&headers);
    store(
        storage,
        method,
        uri,
        headers,
        path,
        body,
        upsert,
        "storage.object.upload",
    )
    .await
}

/// `PUT`: replace the object (Storage uploads with upsert on).
async fn update(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> Result<Response> {
    store(
        storage,
        method,
        uri,
        headers,
        path,
        body,
        true,
        "storage.object.upload_update",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn store(
    storage: Storage,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    body: Body,
    upsert: bool,
    operation: &'static str,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let (bucket, key) = object_path(path)?;
    let target = Target {
        bucket,
        key,
        owner: who.sub().map(str::to_owned),
        who,
        upsert,
        facts: request_facts(&method, uri.path(), &headers, operation),
    };
    let stored = upload_request(&storage, target, &headers, body).await?;
    Ok(json_ok(&stored.body()))
}

// ----- download ----------------------------------------------------------

async fn download(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let (bucket, key) = object_path(path)?;
    must_be_valid_key(&key)?;
    let facts = request_facts(
        &method,
        uri.path(),
        &headers,
        "storage.object.get_authenticated",
    );
    let obj = storage
        .rows
        .object(&who, &facts, &bucket, &key)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    serve(
        &storage,
        &obj,
        &headers,
        query.get("download").map(String::as_str),
        None,
    )
    .await
}

/// Public buckets only, no token, RLS bypassed (Storage's `getPublicObject`).
async fn download_public(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    let (bucket, key) = object_path(path)?;
    must_be_valid_key(&key)?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.object.get_public");
    let service = Identity::service();
    let public = storage.rows.bucket(&service, &facts, &bucket).await?;
    if !public.is_some_and(|b| b.public) {
        return Err(StorageError::NoSuchBucket);
    }
    let obj = storage
        .rows
        .object(&service, &facts, &bucket, &key)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    serve(
        &storage,
        &obj,
        &headers,
        query.get("download").map(String::as_str),
        None,
    )
    .await
}

/// `encodeURIComponent`'s unreserved set.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// An HTTP-date (RFC 9110 §5.6.7).
fn http_date(ts: chrono::DateTime<chrono::Utc>) -> String {
    ts.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// Sends an object's bytes with Storage's headers: the whole object (200),
/// one range (206) or Storage's `InvalidRange` (416).
async fn serve(
    storage: &Storage,
    obj: &Object,
    headers: &HeaderMap,
    download: Option<&str>,
    expires: Option<String>,
) -> Result<Response> {
    let version = obj.version.as_deref().ok_or(StorageError::NoSuchKey)?;
    let mut file = match storage
        .files
        .open_object(&obj.bucket_id, &obj.name, version)
        .await
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NoSuchKey),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata().await?.len();
    let range = ByteRange::parse(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let (status, start, len) = match range {
        ByteRange::Full => (StatusCode::OK, 0, size),
        ByteRange::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        ByteRange::Unsatisfiable => return Err(StorageError::InvalidRange { size }),
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await?;
    }

    let mimetype = obj
        .meta_str("mimetype")
        .unwrap_or("application/octet-stream");
    // Storage never serves HTML as HTML from a user's bucket.
    let mimetype = if mimetype.contains("text/html") {
        "text/plain"
    } else {
        mimetype
    };
    let last_modified = obj
        .meta_str("lastModified")
        .or(obj.updated_at.as_deref())
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| http_date(t.with_timezone(&chrono::Utc)));

    let mut res = Response::builder()
        .status(status)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, header_value(mimetype))
        .header(header::CONTENT_LENGTH, len);
    if let Some(etag) = obj.meta_str("eTag") {
        res = res.header(header::ETAG, header_value(etag));
    }
    if let Some(last_modified) = last_modified {
        res = res.header(header::LAST_MODIFIED, last_modified);
    }
    match expires {
        Some(expires) => res = res.header(header::EXPIRES, expires),
        None => {
            let cache_control = obj.meta_str("cacheControl").unwrap_or("no-cache");
            res = res.header(header::CACHE_CONTROL, header_value(cache_control));
        }
    }
    if let ByteRange::Partial { start, end } = range {
        res = res.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
    }
    match download {
        Some("") => res = res.header(header::CONTENT_DISPOSITION, "attachment;"),
        Some(name) => {
            let encoded = utf8_percent_encode(name, URI_COMPONENT).to_string();
            res = res.header(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename={encoded}; filename*=UTF-8''{encoded};"),
            );
        }
        None => {}
    }

    let chunks = stream::unfold((file, len), |(mut file, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let mut buf = vec![0u8; remaining.min(256 * 1024) as usize];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, remaining - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    res.body(Body::from_stream(chunks))
        .map_err(|e| StorageError::Internal(format!("building a download response: {e}")))
}

// ----- info --------------------------------------------------------------

async fn info(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let (bucket, key) = object_path(path)?;
    must_be_valid_key(&key)?;
    let facts = request_facts(
        &method,
        uri.path(),
        &headers,
        "storage.object.info_authenticated",
    );
    let obj = storage
        .rows
        .object(&who, &facts, &bucket, &key)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    let body = json!({
        "id": obj.id,
        "name": obj.name,
        "version": obj.version,
        "bucket_id": obj.bucket_id,
        "size": obj.size(),
        "content_type": obj.meta_str("mimetype"),
        "cache_control": obj.meta_str("cacheControl"),
        "etag": obj.meta_str("eTag"),
        "metadata": obj.user_metadata,
        "last_modified": obj.updated_at,
        "created_at": obj.created_at,
    });
    let mut res = json_ok(&body);
    if let Some(etag) = obj.meta_str("eTag") {
        res.headers_mut().insert(header::ETAG, header_value(etag));
    }
    if let Some(cache_control) = obj.meta_str("cacheControl") {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, header_value(cache_control));
    }
    Ok(res)
}

// ----- delete ------------------------------------------------------------

async fn remove(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let (bucket, key) = object_path(path)?;
    must_be_valid_key(&key)?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.object.delete");
    let version = storage
        .rows
        .delete_object(&who, &facts, &bucket, &key)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    if let Some(version) = version {
        remove_bytes(&storage, &bucket, &key, &version).await;
    }
    Ok(json_ok(&json!({"message": "Successfully deleted"})))
}

/// `DELETE /object/{bucket}` with `{"prefixes": [...]}`: the rows deleted;
/// objects the caller may not delete are simply absent.
async fn remove_many(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(bucket): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let body = json_body(&body)?;
    let prefixes = string_array(&body, "prefixes")?;
    if prefixes.is_empty() {
        return Err(StorageError::Validation(
            "body/prefixes must NOT have fewer than 1 items".into(),
        ));
    }
    let facts = request_facts(&method, uri.path(), &headers, "storage.object.delete_many");
    let deleted = storage
        .rows
        .delete_objects(&who, &facts, &bucket, &prefixes)
        .await?;
    for obj in &deleted {
        if let Some(version) = &obj.version {
            remove_bytes(&storage, &bucket, &obj.name, version).await;
        }
    }
    Ok(json_ok(&deleted))
}

/// Removes a deleted object's bytes. The row is already gone (committed), so
/// the delete has happened whatever the file system says; a file that cannot
/// be removed is logged, not reported to the caller.
async fn remove_bytes(storage: &Storage, bucket: &str, key: &str, version: &str) {
    if let Err(e) = storage.files.remove(bucket, key, version).await {
        tracing::warn!(error = %e, bucket, "storage: a deleted object's bytes could not be removed");
    }
}

fn string_array(body: &Map<String, Value>, field: &str) -> Result<Vec<String>> {
    match body.get(field) {
        None => Err(StorageError::Validation(format!(
            "body must have required property '{field}'"
        ))),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    StorageError::Validation(format!("body/{field}/{i} must be string"))
                })
            })
            .collect(),
        Some(_) => Err(StorageError::Validation(format!(
            "body/{field} must be array"
        ))),
    }
}

// ----- list --------------------------------------------------------------

async fn list(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(bucket): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let body = json_body(&body)?;
    let query = list_query(&body)?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.object.list");
    let entries = storage.rows.list(&who, &facts, &bucket, &query).await?;
    Ok(json_ok(&entries))
}

/// Validates a list body as Storage's route schema does.
fn list_query(body: &Map<String, Value>) -> Result<ListQuery> {
    let bad = |m: &str| StorageError::Validation(m.to_owned());
    let mut prefix = match body.get("prefix") {
        Some(Value::String(p)) => p.clone(),
        Some(_) => return Err(bad("body/prefix must be string")),
        None => return Err(bad("body must have required property 'prefix'")),
    };
    let int = |field: &str, default: i64, min: i64| -> Result<i64> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => match v.as_i64() {
                Some(n) if n >= min => Ok(n),
                Some(_) => Err(bad(&format!("body/{field} must be >= {min}"))),
                None => Err(bad(&format!("body/{field} must be integer"))),
            },
        }
    };
    let limit = int("limit", 100, 1)?;
    let offset = int("offset", 0, 0)?;
    let search = match body.get("search") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("body/search must be string")),
    };
    let (column, descending) = match body.get("sortBy") {
        None | Some(Value::Null) => (SortColumn::Name, false),
        Some(Value::Object(sort)) => {
            let column = match sort.get("column") {
                None => SortColumn::Name,
                Some(Value::String(c)) => SortColumn::parse(c).ok_or_else(|| {
                    bad("body/sortBy/column must be equal to one of the allowed values")
                })?,
                Some(_) => return Err(bad("body/sortBy/column must be string")),
            };
            let descending = match sort.get("order") {
                None => false,
                Some(Value::String(o)) if o.eq_ignore_ascii_case("asc") => false,
                Some(Value::String(o)) if o.eq_ignore_ascii_case("desc") => true,
                Some(_) => {
                    return Err(bad(
                        "body/sortBy/order must be equal to one of the allowed values",
                    ));
                }
            };
            (column, descending)
        }
        Some(_) => return Err(bad("body/sortBy must be object")),
    };
    // Storage assumes a prefix names a folder.
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok(ListQuery {
        prefix,
        search,
        limit,
        offset,
        column,
        descending,
    })
}

// ----- signed URLs -------------------------------------------------------

fn expires_in(body: &Map<String, Value>) -> Result<i64> {
    match body.get("expiresIn") {
        None => Err(StorageError::Validation(
            "body must have required property 'expiresIn'".into(),
        )),
        Some(v) => match super::coerce::integer(v) {
            Some(n) if n >= 1 => Ok(n),
            Some(_) => Err(StorageError::Validation(
                "body/expiresIn must be >= 1".into(),
            )),
            None => Err(StorageError::Validation(
                "body/expiresIn must be integer".into(),
            )),
        },
    }
}

fn url_claims(url: &str) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("url".into(), Value::from(url));
    claims
}

/// `POST /object/sign/{bucket}/{*key}` → `{"signedURL": "/object/sign/…?token=…"}`,
/// for an object the caller can see.
async fn sign(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let (bucket, key) = object_path(path)?;
    let body = json_body(&body)?;
    let expires_in = expires_in(&body)?;
    must_be_valid_key(&key)?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.object.sign");
    storage
        .rows
        .object(&who, &facts, &bucket, &key)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    let url = format!("{bucket}/{key}");
    let token = storage.sign_token(url_claims(&url), expires_in);
    Ok(json_ok(
        &json!({"signedURL": format!("/object/sign/{url}?token={token}")}),
    ))
}

/// `POST /object/sign/{bucket}` with `{"expiresIn","paths"}`: one entry per
/// path, an `error` for those the caller cannot see.
async fn sign_many(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(bucket): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let body = json_body(&body)?;
    let expires_in = expires_in(&body)?;
    let paths = string_array(&body, "paths")?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.object.sign_many");
    let found: std::collections::HashSet<String> = storage
        .rows
        .existing_names(&who, &facts, &bucket, &paths)
        .await?
        .into_iter()
        .collect();
    let entries: Vec<Value> = paths
        .iter()
        .map(|path| {
            if found.contains(path) {
                let url = format!("{bucket}/{path}");
                let token = storage.sign_token(url_claims(&url), expires_in);
                json!({"error": null, "path": path, "signedURL": format!("/object/sign/{url}?token={token}")})
            } else {
                json!({
                    "error": "Either the object does not exist or you do not have access to it",
                    "path": path,
                    "signedURL": null,
                })
            }
        })
        .collect();
    Ok(json_ok(&entries))
}

/// `GET /object/sign/{bucket}/{*key}?token=…`: no `Authorization`; the token
/// must verify with the project secret and name exactly this object.
async fn download_signed(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    let (bucket, key) = object_path(path)?;
    let token = query.get("token").ok_or_else(|| {
        StorageError::Validation("querystring must have required property 'token'".into())
    })?;
    let claims = storage.verify_token(token)?;
    if claims.get("url").and_then(Value::as_str) != Some(format!("{bucket}/{key}").as_str()) {
        return Err(StorageError::InvalidSignature);
    }
    must_be_valid_key(&key)?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.object.get_signed");
    let obj = storage
        .rows
        .object(&Identity::service(), &facts, &bucket, &key)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    let expires = claims
        .get("exp")
        .and_then(Value::as_i64)
        .and_then(|exp| chrono::DateTime::from_timestamp(exp, 0))
        .map(http_date);
    serve(
        &storage,
        &obj,
        &headers,
        query.get("download").map(String::as_str),
        expires,
    )
    .await
}

/// `POST /object/upload/sign/{bucket}/{*key}` → `{"url","token"}`, after
/// checking the caller may upload there (with `x-upsert`, replace).
async fn sign_upload(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let (bucket, key) = object_path(path)?;
    must_be_valid_key(&key)?;
    let upsert = upsert_header(&headers);
    let facts = request_facts(
        &method,
        uri.path(),
        &headers,
        "storage.object.sign_upload_url",
    );
    super::upload::find_bucket(&storage, &facts, &bucket).await?;
    storage
        .rows
        .check_upload(&who, &facts, &bucket, &key, upsert)
        .await?;
    let url = format!("{bucket}/{key}");
    let mut claims = url_claims(&url);
    claims.insert("owner".into(), who.sub().map_or(Value::Null, Value::from));
    claims.insert("upsert".into(), Value::from(upsert));
    let token = storage.sign_token(claims, super::SIGNED_UPLOAD_URL_EXPIRY_SECS);
    Ok(json_ok(&json!({
        "url": format!("/object/upload/sign/{url}?token={token}"),
        "token": token,
    })))
}

/// `PUT /object/upload/sign/{bucket}/{*key}?token=…`: the upload the token
/// allows, written (as Storage does) by the service role on behalf of the
/// token's owner — the owner's rights were checked when it was signed.
async fn upload_signed(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Result<Response> {
    let (bucket, key) = object_path(path)?;
    let token = query.get("token").ok_or_else(|| {
        StorageError::Validation("querystring must have required property 'token'".into())
    })?;
    let claims = storage.verify_token(token)?;
    if claims.get("url").and_then(Value::as_str) != Some(format!("{bucket}/{key}").as_str()) {
        return Err(StorageError::InvalidSignature);
    }
    let owner = claims
        .get("owner")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let upsert = claims
        .get("upsert")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let target = Target {
        bucket,
        key,
        who: Identity::service_for(owner.as_deref()),
        owner,
        upsert,
        facts: request_facts(
            &method,
            uri.path(),
            &headers,
            "storage.object.upload_signed",
        ),
    };
    let stored = upload_request(&storage, target, &headers, body).await?;
    Ok(json_ok(&stored.body()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn list_bodies_validate_like_storage() {
        let q = list_query(&body(json!({"prefix": "u1"}))).unwrap();
        assert_eq!(q.prefix, "u1/");
        assert_eq!(
            (q.limit, q.offset, q.column, q.descending),
            (100, 0, SortColumn::Name, false)
        );
        let q = list_query(&body(json!({
            "prefix": "", "limit": 2, "offset": 1, "search": "re",
            "sortBy": {"column": "created_at", "order": "DESC"}
        })))
        .unwrap();
        assert_eq!(q.prefix, "");
        assert_eq!(
            (q.limit, q.offset, q.column, q.descending),
            (2, 1, SortColumn::CreatedAt, true)
        );
        assert_eq!(q.search, "re");

        for bad in [
            json!({}),
            json!({"prefix": 1}),
            json!({"prefix": "", "limit": 0}),
            json!({"prefix": "", "offset": -1}),
            json!({"prefix": "", "sortBy": {"column": "name; drop table x"}}),
            json!({"prefix": "", "sortBy": {"order": "sideways"}}),
        ] {
            assert!(
                matches!(
                    list_query(&body(bad.clone())),
                    Err(StorageError::Validation(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn expires_in_must_be_a_positive_integer() {
        assert_eq!(expires_in(&body(json!({"expiresIn": 60}))).unwrap(), 60);
        for bad in [
            json!({}),
            json!({"expiresIn": 0}),
            json!({"expiresIn": 1.5}),
        ] {
            assert!(expires_in(&body(bad)).is_err());
        }
    }

    #[test]
    fn download_names_are_uri_components() {
        assert_eq!(
            utf8_percent_encode("my file (1).pdf", URI_COMPONENT).to_string(),
            "my%20file%20(1).pdf"
        );
        assert_eq!(
            http_date(chrono::DateTime::from_timestamp(784111777, 0).unwrap()),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
