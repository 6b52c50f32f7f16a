//! `/storage/v1`: Supabase Storage (supabase/storage, v1.33–v1.60 behaviour;
//! what Quire depends on is in docs/platform-contract.md).
//!
//! - Buckets: create, list, get, delete ([`buckets`]).
//! - Objects: upload (raw body or `multipart/form-data`, `x-upsert`),
//!   `PUT` update, download with `Range` and `?download`, `info`, delete (one,
//!   or many by `prefixes`), list, signed download and upload URLs
//!   ([`objects`]).
//! - Resumable uploads, TUS 1.0.0, at `/upload/resumable` ([`resumable`]).
//!
//! Every `storage.objects` row is read and written as the caller, so the
//! project's RLS policies decide ([`rows`]); the bytes live under the data
//! directory and are renamed into place only after their row commits
//! ([`files`]). Errors have Storage's shapes ([`error`]).

pub mod buckets;
pub mod coerce;
pub mod error;
pub mod files;
pub mod key;
pub mod objects;
pub mod range;
pub mod resumable;
pub mod rows;
pub mod tus;
pub mod upload;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method};
use serde_json::{Map, Value};

use crate::jwt::{JwtError, bearer_token};
use crate::state::AppState;
use error::StorageError;
use files::ObjectFiles;
use rows::{Identity, RequestFacts, Rows};
use tus::Uploads;

/// Lifetime of a signed upload URL (Storage's `UPLOAD_SIGNED_URL_EXPIRATION_TIME`).
pub const SIGNED_UPLOAD_URL_EXPIRY_SECS: i64 = 2 * 60 * 60;

/// Limits of the storage service.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest object, whichever way it is uploaded: Storage's global
    /// `FILE_SIZE_LIMIT` (`--max-upload-size`, default 52,428,800 bytes). A
    /// bucket's `file_size_limit` can only lower it, and TUS uploads are
    /// capped by it too (see `docs/platform-contract.md`).
    pub max_upload_bytes: u64,
    /// How long an unfinished resumable upload stays resumable.
    pub resumable_expiry: Duration,
}

/// Everything the storage handlers share (cheap to clone).
#[derive(Clone)]
pub struct Storage {
    pub app: AppState,
    pub rows: Rows,
    pub files: ObjectFiles,
    pub uploads: Uploads,
    pub limits: Limits,
}

impl Storage {
    /// The storage service of `app`: its pool, and the object directories
    /// under the data directory (created now; temporary files of an earlier
    /// run are swept).
    pub fn new(app: &AppState) -> std::io::Result<Self> {
        let files = ObjectFiles::open(&app.config.data_dir)?;
        let uploads = Uploads::new(files.tus_dir());
        Ok(Storage {
            rows: Rows::new(app.db.storage.clone()),
            limits: Limits {
                max_upload_bytes: app.config.max_upload_bytes,
                resumable_expiry: tus::DEFAULT_EXPIRY,
            },
            app: app.clone(),
            files,
            uploads,
        })
    }

    /// The caller of a request, as Storage's `jwt` plugin finds it: the
    /// bearer token, or (as the gateway substitutes it) the `apikey`. The
    /// token must verify with the project secret; the audience is not
    /// checked (Storage does not). No `role` claim means `anon`.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Identity, StorageError> {
        let token = bearer_token(headers)
            .or_else(|| headers.get("apikey").and_then(|v| v.to_str().ok()))
            .unwrap_or("");
        let verified = self
            .app
            .jwt
            .verify(token)
            .map_err(|e| StorageError::AccessDenied(jose_message(&e).to_owned()))?;
        let role = verified.role().unwrap_or("anon").to_owned();
        if !matches!(role.as_str(), "anon" | "authenticated" | "service_role") {
            return Err(StorageError::InvalidRole(format!("invalid role: {role}")));
        }
        Ok(Identity {
            role,
            jwt: token.to_owned(),
            claims: verified.claims().clone(),
        })
    }

    /// Signs a Storage URL token (`{url, …, iat, exp}`) with the project secret.
    pub fn sign_token(&self, mut claims: Map<String, Value>, expires_in: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now.saturating_add(expires_in)));
        self.app.jwt.sign(&claims)
    }

    /// Verifies a Storage URL token; failures are Storage's `InvalidJWT`.
    pub fn verify_token(&self, token: &str) -> Result<Map<String, Value>, StorageError> {
        self.app
            .jwt
            .verify(token)
            .map(|caller| caller.claims().clone())
            .map_err(|e| StorageError::InvalidJwt(jose_message(&e).to_owned()))
    }
}

/// The message Storage (which verifies with `jose`) gives for a refused token.
fn jose_message(err: &JwtError) -> &'static str {
    match err {
        JwtError::Malformed(_) => "Invalid Compact JWS",
        JwtError::WrongAlgorithm(_) => "\"alg\" (Algorithm) Header Parameter value not allowed",
        JwtError::BadSignature => "signature verification failed",
        JwtError::Expired => "\"exp\" claim timestamp check failed",
        JwtError::NotYetValid => "\"nbf\" claim timestamp check failed",
        JwtError::MissingExpiry => "missing required \"exp\" claim",
    }
}

/// Headers never copied into `request.headers` (the token is already in
/// `request.jwt`; the others have no business in the database).
const PRIVATE_HEADERS: [&str; 4] = ["authorization", "apikey", "cookie", "x-api-key"];

/// The facts of a request Storage exposes to SQL besides the claims.
pub fn request_facts(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    operation: &'static str,
) -> RequestFacts {
    let mut map = Map::new();
    for (name, value) in headers {
        if PRIVATE_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if let Ok(value) = value.to_str() {
            map.insert(name.as_str().to_owned(), Value::from(value));
        }
    }
    RequestFacts {
        method: method.as_str().to_owned(),
        path: path.to_owned(),
        headers: Value::Object(map),
        operation,
    }
}

/// The `/storage/v1` routes. Creating the object directories can fail (an
/// unwritable data directory); the sandbox then answers every storage
/// request with a 500 and says why in its log.
pub fn router(app: &AppState) -> Router<AppState> {
    match Storage::new(app) {
        Ok(storage) => Router::new()
            .merge(buckets::routes())
            .merge(objects::routes())
            .merge(resumable::routes())
            .fallback(not_found)
            .with_state(storage),
        Err(e) => {
            tracing::error!(error = %e, data_dir = %app.config.data_dir.display(), "storage: cannot open the object directories");
            Router::new().fallback(|| async {
                StorageError::Internal("the object directories are unavailable".into())
            })
        }
    }
}

/// Fastify's answer for a route Storage does not have.
async fn not_found(method: Method, uri: axum::http::Uri) -> axum::response::Response {
    crate::http::json_response(
        axum::http::StatusCode::NOT_FOUND,
        &serde_json::json!({
            "statusCode": 404,
            "error": "Not Found",
            "message": format!("Route {}:{} not found", method, uri.path()),
        }),
    )
}
