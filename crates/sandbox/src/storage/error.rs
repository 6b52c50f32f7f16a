//! Storage's errors, rendered the way Supabase Storage renders them.
//!
//! The REST routes answer `{"statusCode":"<status>","code","error","message"}`
//! with HTTP 400 for almost everything: the semantic status lives only in the
//! `statusCode` string (supabase/storage `src/storage/errors.ts`,
//! `StorageBackendError.userStatusCode`). 500s stay 500, and a few errors set
//! their HTTP status explicitly (invalid role 403, range 416). The resumable
//! (TUS) routes answer the semantic status itself with the message as a
//! plain-text body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A Storage error. Each variant is one of Storage's `ERRORS.*` constructors;
/// [`StorageError::parts`] gives its status, code, legacy name and message.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("Bucket not found")]
    NoSuchBucket,
    #[error("Object not found")]
    NoSuchKey,
    #[error("Invalid key: {0}")]
    InvalidKey(String),
    #[error("Bucket name invalid")]
    InvalidBucketName(String),
    /// A bearer token that does not verify (bad signature, expired,
    /// malformed, `alg: none`); the message is the verifier's.
    #[error("{0}")]
    AccessDenied(String),
    /// A token that verifies but names a role Storage will not assume.
    #[error("{0}")]
    InvalidRole(String),
    /// A signed-URL token that does not verify.
    #[error("{0}")]
    InvalidJwt(String),
    #[error("Invalid signature")]
    InvalidSignature,
    #[error("The resource already exists")]
    ResourceAlreadyExists,
    #[error("The resource already exists")]
    BucketAlreadyExists,
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    #[error("The object exceeded the maximum allowed size")]
    EntityTooLarge,
    #[error("mime type {0} is not supported")]
    InvalidMimeType(String),
    #[error("invalid range provided")]
    InvalidRange { size: u64 },
    #[error("{0}")]
    InvalidRequest(String),
    /// A request body or query that fails the route's schema (Fastify's
    /// validation error in the real service).
    #[error("{0}")]
    Validation(String),
    #[error("Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B")]
    InvalidFileSizeLimit,
    #[error("The related resource does not exist")]
    RelatedResourceNotFound,
    #[error("The resource is locked")]
    ResourceLocked,
    #[error("The connection to the database timed out")]
    DatabaseTimeout,
    #[error("database error, code: {0}")]
    Database(String),
    #[error("Internal server error")]
    Internal(String),
    /// A protocol error of the resumable-upload server (tus-node-server's
    /// `ERRORS.*`): always rendered with its own status and plain-text body.
    #[error("{body}")]
    Tus { status: u16, body: &'static str },
}

/// The rendered fields of a [`StorageError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorParts {
    /// The semantic status (`statusCode`, as a string in the body).
    pub status: u16,
    /// The HTTP status the REST routes answer with.
    pub http_status: u16,
    /// Storage's `ErrorCode` (`code`).
    pub code: &'static str,
    /// The legacy `error` field (the code where Storage sets none).
    pub error: &'static str,
    pub message: String,
}

impl StorageError {
    pub fn parts(&self) -> ErrorParts {
        let message = self.to_string();
        let (status, code, error): (u16, &'static str, Option<&'static str>) = match self {
            Self::NoSuchBucket => (404, "NoSuchBucket", Some("Bucket not found")),
            Self::NoSuchKey => (404, "NoSuchKey", Some("not_found")),
            Self::InvalidKey(_) => (400, "InvalidKey", None),
            Self::InvalidBucketName(_) => (400, "InvalidBucketName", Some("Invalid Input")),
            Self::AccessDenied(_) | Self::InvalidRole(_) => {
                (403, "AccessDenied", Some("Unauthorized"))
            }
            Self::InvalidJwt(_) => (400, "InvalidJWT", None),
            Self::InvalidSignature => (400, "InvalidSignature", None),
            Self::ResourceAlreadyExists => (409, "ResourceAlreadyExists", Some("Duplicate")),
            Self::BucketAlreadyExists => (409, "BucketAlreadyExists", Some("Duplicate")),
            Self::BucketNotEmpty => (409, "ResourceNotEmpty", None),
            Self::EntityTooLarge => (413, "EntityTooLarge", Some("Payload too large")),
            Self::InvalidMimeType(_) => (415, "InvalidMimeType", Some("invalid_mime_type")),
            Self::InvalidRange { .. } => (416, "InvalidRange", Some("invalid_range")),
            Self::InvalidRequest(_) => (400, "InvalidRequest", None),
            Self::Validation(_) => (400, "InvalidRequest", Some("Bad Request")),
            Self::InvalidFileSizeLimit => (400, "InvalidRequest", None),
            Self::RelatedResourceNotFound => (404, "InvalidRequest", None),
            Self::ResourceLocked => (423, "ResourceLocked", None),
            Self::DatabaseTimeout => (544, "DatabaseTimeout", None),
            Self::Database(_) => (500, "DatabaseError", None),
            Self::Internal(_) => (500, "InternalError", Some("Internal")),
            Self::Tus { status, .. } => (*status, "TusError", None),
        };
        let http_status = match self {
            Self::InvalidRole(_) => 403,
            Self::InvalidRange { .. } => 416,
            Self::DatabaseTimeout => 544,
            Self::Tus { status, .. } => *status,
            _ if status == 500 => 500,
            _ => 400,
        };
        let message = match self {
            // The internal detail is for the log, never for the client.
            Self::Internal(_) => "Internal server error".to_owned(),
            _ => message,
        };
        ErrorParts {
            status,
            http_status,
            code,
            error: error.unwrap_or(code),
            message,
        }
    }

    /// The JSON body the REST routes send.
    pub fn body(&self) -> serde_json::Value {
        let p = self.parts();
        serde_json::json!({
            "statusCode": p.status.to_string(),
            "code": p.code,
            "error": p.error,
            "message": p.message,
        })
    }

    /// The response the resumable-upload routes send: the semantic status
    /// and the message as plain text (Storage's `onResponseError`).
    pub fn into_tus_response(self) -> Response {
        self.log();
        let p = self.parts();
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, p.message).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        res.headers_mut()
            .insert("tus-resumable", HeaderValue::from_static("1.0.0"));
        res
    }

    fn log(&self) {
        match self {
            Self::Internal(detail) => tracing::error!(%detail, "storage: internal error"),
            Self::Database(code) => tracing::error!(%code, "storage: database error"),
            _ => tracing::debug!(error = %self, "storage: request refused"),
        }
    }

    /// Maps a Postgres error the way Storage's `DBError.fromDBError` does.
    pub fn from_db(err: &tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            return Self::Internal(format!("database connection: {err}"));
        };
        match db.code().code() {
            // Storage's `DBError.fromDBError` says this of every 42501: a
            // refused policy, a missing grant, a trigger's refusal.
            "42501" => Self::AccessDenied("new row violates row-level security policy".to_owned()),
            "23505" => Self::ResourceAlreadyExists,
            "23503" => Self::RelatedResourceNotFound,
            "55P03" => Self::ResourceLocked,
            "57014" => Self::DatabaseTimeout,
            "22P02" => Self::InvalidRequest(db.message().to_owned()),
            code => {
                tracing::error!(code, message = db.message(), "storage: database error");
                Self::Database(code.to_owned())
            }
        }
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::from_db(&err)
    }
}

impl From<std::io::Error> for StorageError {
    fn from(err: std::io::Error) -> Self {
        Self::Internal(format!("storage io: {err}"))
    }
}

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        self.log();
        let p = self.parts();
        let status = StatusCode::from_u16(p.http_status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut res = (status, axum::Json(self.body())).into_response();
        if let Self::InvalidRange { size } = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            res.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        res
    }
}

/// tus-node-server's protocol errors (`@tus/utils` `ERRORS`), with their
/// statuses and bodies as that server sends them.
pub mod tus {
    use super::StorageError;

    pub const MISSING_OFFSET: StorageError = StorageError::Tus {
        status: 403,
        body: "Upload-Offset header required\n",
    };
    pub const INVALID_CONTENT_TYPE: StorageError = StorageError::Tus {
        status: 403,
        body: "Content-Type header required\n",
    };
    pub const FILE_NOT_FOUND: StorageError = StorageError::Tus {
        status: 404,
        body: "The file for this url was not found\n",
    };
    pub const INVALID_OFFSET: StorageError = StorageError::Tus {
        status: 409,
        body: "Upload-Offset conflict\n",
    };
    /// Another request holds the upload (Storage's Postgres locker; the
    /// reference gives 409 for concurrent writers).
    pub const LOCKED: StorageError = StorageError::Tus {
        status: 409,
        body: "The upload is locked by another request\n",
    };
    pub const FILE_NO_LONGER_EXISTS: StorageError = StorageError::Tus {
        status: 410,
        body: "The file for this url no longer exists\n",
    };
    pub const ERR_SIZE_EXCEEDED: StorageError = StorageError::Tus {
        status: 413,
        body: "upload's size exceeded\n",
    };
    pub const ERR_MAX_SIZE_EXCEEDED: StorageError = StorageError::Tus {
        status: 413,
        body: "Maximum size exceeded\n",
    };
    pub const INVALID_LENGTH: StorageError = StorageError::Tus {
        status: 400,
        body: "Upload-Length or Upload-Defer-Length header required\n",
    };
    pub const INVALID_METADATA: StorageError = StorageError::Tus {
        status: 400,
        body: "Upload-Metadata is invalid. It MUST consist of one or more comma-separated key-value pairs. The key and value MUST be separated by a space. The key MUST NOT contain spaces and commas and MUST NOT be empty. The key SHOULD be ASCII encoded and the value MUST be Base64 encoded. All keys MUST be unique",
    };
    pub const METADATA_REQUIRED: StorageError = StorageError::Tus {
        status: 400,
        body: "Metadata header is required",
    };
    pub const TUS_RESUMABLE_REQUIRED: StorageError = StorageError::Tus {
        status: 412,
        body: "Tus-Resumable Required\n",
    };
    pub const UNSUPPORTED_VERSION: StorageError = StorageError::Tus {
        status: 412,
        body: "Unsupported version\n",
    };
    pub const INVALID_TERMINATION: StorageError = StorageError::Tus {
        status: 400,
        body: "Cannot terminate an already completed upload",
    };
    pub const UNSUPPORTED_CONCATENATION: StorageError = StorageError::Tus {
        status: 501,
        body: "Concatenation extension is not (yet) supported. Disable parallel uploads in the tus client.\n",
    };
    pub const UNSUPPORTED_DEFER_LENGTH: StorageError = StorageError::Tus {
        status: 501,
        body: "creation-defer-length extension is not (yet) supported.\n",
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_http_400_with_404_in_the_body() {
        let e = StorageError::NoSuchKey;
        let p = e.parts();
        assert_eq!(p.http_status, 400);
        assert_eq!(
            e.body(),
            serde_json::json!({
                "statusCode": "404",
                "code": "NoSuchKey",
                "error": "not_found",
                "message": "Object not found",
            })
        );
    }

    #[test]
    fn duplicate_and_too_large_keep_their_legacy_names() {
        assert_eq!(
            StorageError::ResourceAlreadyExists.parts().error,
            "Duplicate"
        );
        assert_eq!(StorageError::ResourceAlreadyExists.parts().status, 409);
        let big = StorageError::EntityTooLarge.parts();
        assert_eq!(
            (big.status, big.http_status, big.error),
            (413, 400, "Payload too large")
        );
        assert_eq!(big.message, "The object exceeded the maximum allowed size");
    }

    #[test]
    fn explicit_statuses_and_internal_errors() {
        assert_eq!(
            StorageError::InvalidRole("x".into()).parts().http_status,
            403
        );
        assert_eq!(
            StorageError::InvalidRange { size: 3 }.parts().http_status,
            416
        );
        let internal = StorageError::Internal("disk full at /secret/path".into()).parts();
        assert_eq!((internal.http_status, internal.status), (500, 500));
        assert_eq!(internal.message, "Internal server error");
        let invalid_key = StorageError::InvalidKey("a/../b".into()).parts();
        assert_eq!(invalid_key.error, "InvalidKey");
        assert_eq!(invalid_key.message, "Invalid key: a/../b");
    }

    #[test]
    fn tus_errors_carry_their_real_status() {
        let p = tus::INVALID_OFFSET.parts();
        assert_eq!((p.status, p.http_status), (409, 409));
        assert_eq!(p.message, "Upload-Offset conflict\n");
    }
}
