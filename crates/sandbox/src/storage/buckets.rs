//! The `/bucket` routes: create, list, get, delete. They run as the caller
//! like everything else, so RLS on `storage.buckets` (no policies: only the
//! service role, which bypasses RLS) decides who manages buckets.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::error::StorageError;
use super::key::must_be_valid_bucket_name;
use super::rows::Bucket;
use super::{Storage, request_facts};

type Result<T> = std::result::Result<T, StorageError>;

pub fn routes() -> Router<Storage> {
    Router::new()
        .route("/bucket", get(list).post(create))
        .route("/bucket/{id}", get(find).delete(remove))
}

fn json_ok(body: &impl serde::Serialize) -> Response {
    crate::http::json_response(StatusCode::OK, body)
}

/// Storage's `parseFileSizeToBytes`: a number of bytes, or `"<n>[.<m>](b|kb|mb|gb)"`
/// in decimal units, three significant digits.
pub fn parse_file_size(value: &Value) -> Result<Option<i64>> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or(StorageError::InvalidFileSizeLimit),
        Value::String(s) => {
            let s = s.trim().to_ascii_lowercase();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or(StorageError::InvalidFileSizeLimit)?;
            let (number, unit) = s.split_at(split);
            let valid_number = !number.is_empty()
                && !number.starts_with('.')
                && !number.ends_with('.')
                && number.matches('.').count() <= 1;
            if !valid_number {
                return Err(StorageError::InvalidFileSizeLimit);
            }
            let value: f64 = number
                .parse()
                .map_err(|_| StorageError::InvalidFileSizeLimit)?;
            let value: f64 = format!("{value:.3e}").parse().unwrap_or(value);
            let factor = match unit {
                "gb" => 1e9,
                "mb" => 1e6,
                "kb" => 1e3,
                "b" => 1.0,
                _ => return Err(StorageError::InvalidFileSizeLimit),
            };
            Ok(Some((value * factor).round() as i64))
        }
        _ => Err(StorageError::InvalidFileSizeLimit),
    }
}

async fn create(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        _ => return Err(StorageError::Validation("body must be object".into())),
    };
    let name = match body.get("name") {
        Some(Value::String(name)) => name.clone(),
        Some(_) => return Err(StorageError::Validation("body/name must be string".into())),
        None => {
            return Err(StorageError::Validation(
                "body must have required property 'name'".into(),
            ));
        }
    };
    let id = match body.get("id") {
        Some(Value::String(id)) => id.clone(),
        None | Some(Value::Null) => name.clone(),
        Some(_) => return Err(StorageError::Validation("body/id must be string".into())),
    };
    must_be_valid_bucket_name(&id)?;
    must_be_valid_bucket_name(&name)?;
    let public = match body.get("public") {
        None | Some(Value::Null) => false,
        Some(v) => super::coerce::boolean(v)
            .ok_or_else(|| StorageError::Validation("body/public must be boolean".into()))?,
    };
    let file_size_limit = parse_file_size(body.get("file_size_limit").unwrap_or(&Value::Null))?;
    let allowed_mime_types = match body.get("allowed_mime_types") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    StorageError::Validation(
                        "body/allowed_mime_types must be array of strings".into(),
                    )
                })?,
        ),
        Some(_) => {
            return Err(StorageError::Validation(
                "body/allowed_mime_types must be array".into(),
            ));
        }
    };
    let bucket = Bucket {
        id,
        name,
        owner: None,
        owner_id: None,
        public,
        file_size_limit,
        allowed_mime_types,
        created_at: None,
        updated_at: None,
    };
    let facts = request_facts(&method, uri.path(), &headers, "storage.bucket.create");
    storage.rows.create_bucket(&who, &facts, &bucket).await?;
    Ok(json_ok(&json!({"name": bucket.name})))
}

async fn list(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.bucket.list");
    Ok(json_ok(&storage.rows.buckets(&who, &facts).await?))
}

async fn find(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.bucket.get");
    let bucket = storage
        .rows
        .bucket(&who, &facts, &id)
        .await?
        .ok_or(StorageError::NoSuchBucket)?;
    Ok(json_ok(&bucket))
}

async fn remove(
    State(storage): State<Storage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response> {
    let who = storage.caller(&headers)?;
    let facts = request_facts(&method, uri.path(), &headers, "storage.bucket.delete");
    if !storage.rows.delete_bucket(&who, &facts, &id).await? {
        return Err(StorageError::NoSuchBucket);
    }
    if must_be_valid_bucket_name(&id).is_ok() {
        let _ = tokio::fs::remove_dir_all(storage.files.objects_dir().join(&id)).await;
    }
    Ok(json_ok(&json!({"message": "Successfully deleted"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_size_limits_parse_like_storage() {
        assert_eq!(parse_file_size(&json!(null)).unwrap(), None);
        assert_eq!(parse_file_size(&json!(1000)).unwrap(), Some(1000));
        assert_eq!(parse_file_size(&json!("50MB")).unwrap(), Some(50_000_000));
        assert_eq!(
            parse_file_size(&json!("1.5gb")).unwrap(),
            Some(1_500_000_000)
        );
        assert_eq!(parse_file_size(&json!("30KB")).unwrap(), Some(30_000));
        assert_eq!(parse_file_size(&json!("3B")).unwrap(), Some(3));
        for bad in [
            json!("MB"),
            json!("5 TB"),
            json!("1..5mb"),
            json!(-1),
            json!(true),
            json!(".5mb"),
        ] {
            assert!(parse_file_size(&bad).is_err(), "{bad}");
        }
    }
}
