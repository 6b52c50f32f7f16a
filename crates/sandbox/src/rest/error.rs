//! PostgREST's error answers: `{code, details, hint, message}` (keys in that
//! order, as aeson writes them), its status for each `PGRST` code and its
//! SQLSTATE → HTTP mapping (PostgREST v14 `src/PostgREST/Error.hs`; what
//! Quire relies on is in docs/platform-contract.md).

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::query::QueryError;

/// An error answer of the REST service (boxed: it travels through every
/// `Result` of the request path).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RestError(Box<ErrorParts>);

/// What a [`RestError`] answers with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorParts {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) details: Option<String>,
    pub(crate) hint: Option<String>,
    /// Extra headers (`WWW-Authenticate`, headers from `RAISE SQLSTATE 'PGRST'`).
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// When set, the body is this exact JSON instead of the PostgREST shape
    /// (the gateway's own answers, e.g. a missing `apikey`).
    pub(crate) raw_body: Option<Value>,
}

impl std::ops::Deref for RestError {
    type Target = ErrorParts;

    fn deref(&self) -> &ErrorParts {
        &self.0
    }
}

impl std::ops::DerefMut for RestError {
    fn deref_mut(&mut self) -> &mut ErrorParts {
        &mut self.0
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for RestError {}

impl RestError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        RestError(Box::new(ErrorParts {
            status,
            code: code.to_string(),
            message: message.into(),
            details: None,
            hint: None,
            headers: Vec::new(),
            raw_body: None,
        }))
    }

    pub(crate) fn details(mut self, d: impl Into<String>) -> Self {
        self.details = Some(d.into());
        self
    }

    pub(crate) fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }

    fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        if let Some(raw) = &self.raw_body {
            return raw.clone();
        }
        let mut m = Map::new();
        m.insert("code".into(), json!(self.code));
        m.insert("details".into(), json!(self.details));
        m.insert("hint".into(), json!(self.hint));
        m.insert("message".into(), json!(self.message));
        Value::Object(m)
    }

    // --- PGRST1xx: the request -------------------------------------------

    /// `PGRST100`, a query string that does not parse.
    pub(crate) fn query_param(e: QueryError) -> Self {
        RestError::new(StatusCode::BAD_REQUEST, "PGRST100", e.message).details(e.details)
    }

    /// `PGRST101`
    pub(crate) fn invalid_rpc_method(method: &str) -> Self {
        RestError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "PGRST101",
            format!("Cannot use the {method} method on RPC"),
        )
    }

    /// `PGRST102`, a body that is not acceptable.
    pub(crate) fn invalid_body(message: impl Into<String>) -> Self {
        RestError::new(StatusCode::BAD_REQUEST, "PGRST102", message)
    }

    /// `PGRST103`, with one of PostgREST's three explanations.
    pub(crate) fn invalid_range(details: impl Into<String>) -> Self {
        RestError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "PGRST103",
            "Requested range not satisfiable",
        )
        .details(details)
    }

    pub(crate) fn negative_limit() -> Self {
        Self::invalid_range("Limit should be greater than or equal to zero.")
    }

    pub(crate) fn lower_gt_upper() -> Self {
        Self::invalid_range(
            "The lower boundary must be lower than or equal to the upper boundary in the Range header.",
        )
    }

    pub(crate) fn out_of_bounds(offset: i64, total: i64) -> Self {
        Self::invalid_range(format!(
            "An offset of {offset} was requested, but there are only {total} rows."
        ))
    }

    /// `PGRST106`, a profile header naming a schema that is not exposed.
    pub(crate) fn unacceptable_schema(schema: &str, exposed: &[&str]) -> Self {
        RestError::new(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST106",
            format!("Invalid schema: {schema}"),
        )
        .hint(format!(
            "Only the following schemas are exposed: {}",
            exposed.join(", ")
        ))
    }

    /// `PGRST107`, an `Accept` header the service cannot satisfy.
    pub(crate) fn media_type(accepted: &str) -> Self {
        RestError::new(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST107",
            format!("None of these media types are available: {accepted}"),
        )
    }

    /// `PGRST108`, a filter/order/limit on a resource that is not embedded.
    pub(crate) fn not_embedded(resource: &str) -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "PGRST108",
            format!("'{resource}' is not an embedded resource in this request"),
        )
        .hint(format!(
            "Verify that '{resource}' is included in the 'select' query parameter."
        ))
    }

    /// `PGRST116`, `application/vnd.pgrst.object+json` with 0 or >1 rows.
    pub(crate) fn singularity(rows: i64) -> Self {
        RestError::new(
            StatusCode::NOT_ACCEPTABLE,
            "PGRST116",
            "Cannot coerce the result to a single JSON object",
        )
        .details(format!("The result contains {rows} rows"))
    }

    /// `PGRST117`
    pub(crate) fn unsupported_method(method: &str) -> Self {
        RestError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "PGRST117",
            format!("Unsupported HTTP method: {method}"),
        )
    }

    /// `PGRST122`, unknown preferences with `handling=strict`.
    pub(crate) fn invalid_preferences(prefs: &[String]) -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "PGRST122",
            "Invalid preferences given with handling=strict",
        )
        .details(format!("Invalid preferences: {}", prefs.join(", ")))
    }

    /// `PGRST123`: aggregates are off (`db-aggregates-enabled = false`).
    pub(crate) fn aggregates_not_allowed() -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "PGRST123",
            "Use of aggregate functions is not allowed",
        )
    }

    /// `PGRST124`, `max-affected` exceeded with `handling=strict`.
    pub(crate) fn max_affected(n: i64) -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "PGRST124",
            "Query result exceeds max-affected preference constraint",
        )
        .details(format!("The query affects {n} rows"))
    }

    /// `PGRST125`, a path that is neither `/table` nor `/rpc/fn`.
    pub(crate) fn invalid_resource_path() -> Self {
        RestError::new(
            StatusCode::NOT_FOUND,
            "PGRST125",
            "Invalid path specified in request URL",
        )
    }

    /// `PGRST126`, the OpenAPI root, which the sandbox does not serve.
    pub(crate) fn openapi_disabled() -> Self {
        RestError::new(
            StatusCode::NOT_FOUND,
            "PGRST126",
            "Root endpoint metadata is disabled",
        )
    }

    /// `PGRST127`
    pub(crate) fn not_implemented(details: impl Into<String>) -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "PGRST127",
            "Feature not implemented",
        )
        .details(details)
    }

    // --- PGRST2xx: the schema cache --------------------------------------

    /// `PGRST200`: the sandbox resolves no embedded resources.
    pub(crate) fn no_relationship(parent: &str, child: &str, schema: &str) -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "PGRST200",
            format!("Could not find a relationship between '{parent}' and '{child}' in the schema cache"),
        )
        .details(format!(
            "Searched for a foreign key relationship between '{parent}' and '{child}' in the schema '{schema}', but no matches were found."
        ))
    }

    /// `PGRST202`
    pub(crate) fn no_function(
        schema: &str,
        name: &str,
        args: &[String],
        hint: Option<String>,
    ) -> Self {
        let prms = args.join(", ");
        let message = if args.is_empty() {
            format!(
                "Could not find the function {schema}.{name} without parameters in the schema cache"
            )
        } else {
            format!("Could not find the function {schema}.{name}({prms}) in the schema cache")
        };
        let with = if args.is_empty() {
            " without parameters".to_string()
        } else {
            format!(
                " with parameter{} {prms}",
                if args.len() > 1 { "s" } else { "" }
            )
        };
        let mut e = RestError::new(StatusCode::NOT_FOUND, "PGRST202", message).details(format!(
            "Searched for the function {schema}.{name}{with} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache."
        ));
        e.hint = hint;
        e
    }

    /// `PGRST203`
    pub(crate) fn ambiguous_function(candidates: &[String]) -> Self {
        RestError::new(
            StatusCode::MULTIPLE_CHOICES,
            "PGRST203",
            format!(
                "Could not choose the best candidate function between: {}",
                candidates.join(", ")
            ),
        )
        .hint("Try renaming the parameters or the function itself in the database so function overloading can be resolved")
    }

    /// `PGRST204`, a body or `columns` key that is not a column.
    pub(crate) fn column_not_found(table: &str, column: &str) -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "PGRST204",
            format!("Could not find the '{column}' column of '{table}' in the schema cache"),
        )
    }

    /// `PGRST205`
    pub(crate) fn table_not_found(schema: &str, table: &str, hint: Option<String>) -> Self {
        let mut e = RestError::new(
            StatusCode::NOT_FOUND,
            "PGRST205",
            format!("Could not find the table '{schema}.{table}' in the schema cache"),
        );
        e.hint = hint;
        e
    }

    /// PostgreSQL's `42703` for a column the request names in `select`,
    /// filters or `order`: PostgREST lets Postgres report it; the sandbox
    /// refuses to build the SQL and gives the same answer.
    pub(crate) fn undefined_column(relation: &str, column: &str) -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "42703",
            format!("column {relation}.{column} does not exist"),
        )
    }

    /// PostgreSQL's `42704` for a cast to a type outside the allowlist.
    pub(crate) fn undefined_type(name: &str) -> Self {
        RestError::new(
            StatusCode::BAD_REQUEST,
            "42704",
            format!("type \"{name}\" does not exist"),
        )
    }

    // --- PGRST3xx: JWT ---------------------------------------------------

    /// `PGRST301`: a token that cannot be decoded or verified.
    pub(crate) fn jwt_decode(message: &str, details: Option<&str>) -> Self {
        let mut e = RestError::new(StatusCode::UNAUTHORIZED, "PGRST301", message);
        e.details = details.map(str::to_string);
        e.invalid_token_header()
    }

    /// `PGRST303`: a token whose claims are refused (`JWT expired`, …).
    pub(crate) fn jwt_claims(message: &str) -> Self {
        RestError::new(StatusCode::UNAUTHORIZED, "PGRST303", message).invalid_token_header()
    }

    fn invalid_token_header(self) -> Self {
        let description = super::query::haskell_show(&self.message);
        self.header(
            header::WWW_AUTHENTICATE,
            &format!("Bearer error=\"invalid_token\", error_description={description}"),
        )
    }

    // --- PGRST0xx: the database connection -------------------------------

    /// `PGRST000`, the database cannot be reached.
    pub(crate) fn connection(details: impl Into<String>) -> Self {
        RestError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST000",
            "Database connection error. Retrying the connection.",
        )
        .details(details)
    }

    /// `PGRST003`, no pooled connection in time.
    pub(crate) fn pool_timeout() -> Self {
        RestError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "PGRST003",
            "Timed out acquiring connection from connection pool.",
        )
    }

    // --- The gateway in front of PostgREST --------------------------------

    /// Kong's `key-auth` without an `apikey` (as `/api` answers it too).
    pub(crate) fn no_api_key() -> Self {
        let mut e = RestError::new(StatusCode::UNAUTHORIZED, "", "No API key found in request");
        e.raw_body = Some(json!({"message": "No API key found in request"}));
        e
    }

    /// Kong's `key-auth` with a key that is neither the anon nor the service key.
    pub(crate) fn invalid_api_key() -> Self {
        let mut e = RestError::new(
            StatusCode::UNAUTHORIZED,
            "",
            "Invalid authentication credentials",
        );
        e.raw_body = Some(json!({"message": "Invalid authentication credentials"}));
        e
    }

    /// The gateway's answer to a body over the size limit.
    pub(crate) fn payload_too_large() -> Self {
        let mut e = RestError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
            "Request size limit exceeded",
        );
        e.raw_body = Some(json!({"message": "Request size limit exceeded"}));
        e
    }

    // --- PostgreSQL errors ------------------------------------------------

    /// A PostgreSQL error as PostgREST reports it. `authenticated` is whether
    /// the request's role is not the anonymous role (42501 → 403 vs 401).
    pub(crate) fn from_db(e: &tokio_postgres::Error, authenticated: bool) -> Self {
        let Some(db) = e.as_db_error() else {
            if e.is_closed() {
                return RestError::connection(e.to_string());
            }
            return RestError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "PGRST001",
                "Database client error. Retrying the connection.",
            )
            .details(e.to_string());
        };
        let code = db.code().code();
        let message = db.message();
        if code == "PGRST" {
            return raise_pgrst(message, db.detail());
        }
        let status = sqlstate_status(code, message, authenticated);
        let mut err = RestError::new(status, code, message);
        err.details = db.detail().map(str::to_string);
        err.hint = db.hint().map(str::to_string);
        if status == StatusCode::UNAUTHORIZED {
            err = err.header(header::WWW_AUTHENTICATE, "Bearer");
        }
        err
    }
}

/// `mapSQLtoHTTP` of PostgREST v14.
pub(crate) fn sqlstate_status(code: &str, message: &str, authenticated: bool) -> StatusCode {
    let starts = |p: &str| code.starts_with(p);
    match code {
        "23503" | "23505" => StatusCode::CONFLICT,
        "25006" => StatusCode::METHOD_NOT_ALLOWED,
        "21000" => {
            if message.ends_with("requires a WHERE clause") {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
        "22023" => {
            if message.starts_with("role") && message.ends_with("does not exist") {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            }
        }
        "53400" => StatusCode::INTERNAL_SERVER_ERROR,
        "57P01" => StatusCode::SERVICE_UNAVAILABLE,
        "P0001" => StatusCode::BAD_REQUEST,
        "42883" => {
            if message.starts_with("function xmlagg(") {
                StatusCode::NOT_ACCEPTABLE
            } else {
                StatusCode::NOT_FOUND
            }
        }
        "42P01" => StatusCode::NOT_FOUND,
        "42P17" => StatusCode::INTERNAL_SERVER_ERROR,
        "42501" => {
            if authenticated {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            }
        }
        _ if starts("08") => StatusCode::SERVICE_UNAVAILABLE,
        _ if starts("09") => StatusCode::INTERNAL_SERVER_ERROR,
        _ if starts("0L") || starts("0P") => StatusCode::FORBIDDEN,
        _ if starts("25") => StatusCode::INTERNAL_SERVER_ERROR,
        _ if starts("28") => StatusCode::FORBIDDEN,
        _ if starts("2D") => StatusCode::INTERNAL_SERVER_ERROR,
        _ if starts("38") || starts("39") || starts("3B") || starts("40") => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ if starts("53") => StatusCode::SERVICE_UNAVAILABLE,
        _ if starts("54") || starts("55") || starts("57") || starts("58") => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ if starts("F0") || starts("HV") || starts("XX") || starts("P0") => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ if starts("PT") => code
            .get(2..)
            .and_then(|n| n.parse::<u16>().ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        _ => StatusCode::BAD_REQUEST,
    }
}

/// `RAISE SQLSTATE 'PGRST' USING message = '{json}', detail = '{json}'`: full
/// control of code, message, status and headers.
fn raise_pgrst(message: &str, detail: Option<&str>) -> RestError {
    let parse_error = |details: String, hint: &str| {
        RestError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "PGRST121",
            "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error",
        )
        .details(details)
        .hint(hint)
    };
    const MSG_HINT: &str = "MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and optional keys: 'details', 'hint'.";
    const DET_HINT: &str = "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional key: 'status_text'.";
    let msg: Option<Map<String, Value>> = serde_json::from_str(message).ok();
    let Some(msg) = msg.filter(|m| {
        m.get("code").is_some_and(Value::is_string)
            && m.get("message").is_some_and(Value::is_string)
    }) else {
        return parse_error(
            format!("Invalid JSON value for MESSAGE: '{message}'"),
            MSG_HINT,
        );
    };
    let Some(detail) = detail else {
        return parse_error("DETAIL is missing in the RAISE statement".into(), DET_HINT);
    };
    let det: Option<Map<String, Value>> = serde_json::from_str(detail).ok();
    let Some(det) = det.filter(|d| {
        d.get("status").is_some_and(Value::is_u64) && d.get("headers").is_some_and(Value::is_object)
    }) else {
        return parse_error(
            format!("Invalid JSON value for DETAIL: '{detail}'"),
            DET_HINT,
        );
    };
    let text = |k: &str| msg.get(k).and_then(Value::as_str).map(str::to_string);
    let status = det
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut err = RestError::new(
        status,
        &text("code").unwrap_or_default(),
        text("message").unwrap_or_default(),
    );
    err.details = text("details");
    err.hint = text("hint");
    if let Some(Value::Object(h)) = det.get("headers") {
        for (k, v) in h {
            if let (Ok(name), Some(v)) = (HeaderName::from_bytes(k.as_bytes()), v.as_str()) {
                err = err.header(name, v);
            }
        }
    }
    err
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let parts = *self.0;
        let mut resp = (parts.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if parts.raw_body.is_none()
            && let Ok(v) = HeaderValue::from_str(&format!("PostgREST; error={}", parts.code))
        {
            h.insert(HeaderName::from_static("proxy-status"), v);
        }
        for (k, v) in parts.headers {
            h.insert(k, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_follows_postgrest() {
        assert_eq!(
            sqlstate_status("42501", "", false),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(sqlstate_status("42501", "", true), StatusCode::FORBIDDEN);
        assert_eq!(sqlstate_status("23505", "", true), StatusCode::CONFLICT);
        assert_eq!(sqlstate_status("23503", "", true), StatusCode::CONFLICT);
        assert_eq!(
            sqlstate_status("42883", "function x() does not exist", true),
            StatusCode::NOT_FOUND
        );
        assert_eq!(sqlstate_status("42P01", "", true), StatusCode::NOT_FOUND);
        assert_eq!(sqlstate_status("P0001", "", true), StatusCode::BAD_REQUEST);
        assert_eq!(
            sqlstate_status("P0002", "", true),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            sqlstate_status("25006", "", true),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            sqlstate_status("22023", "role \"x\" does not exist", true),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(sqlstate_status("22P02", "", true), StatusCode::BAD_REQUEST);
        assert_eq!(sqlstate_status("PT418", "", true).as_u16(), 418);
        assert_eq!(
            sqlstate_status("08006", "", true),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn body_keys_are_in_aeson_order() {
        let e = RestError::new(StatusCode::NOT_FOUND, "PGRST205", "x");
        assert_eq!(
            serde_json::to_string(&e.body()).unwrap(),
            r#"{"code":"PGRST205","details":null,"hint":null,"message":"x"}"#
        );
    }

    #[test]
    fn raise_pgrst_controls_the_answer() {
        let e = raise_pgrst(
            r#"{"code":"123","message":"Payment Required"}"#,
            Some(r#"{"status":402,"headers":{"X-Powered-By":"Nerd Rage"}}"#),
        );
        assert_eq!(e.status.as_u16(), 402);
        assert_eq!(e.code, "123");
        assert_eq!(e.headers.len(), 1);
        let bad = raise_pgrst("nope", None);
        assert_eq!(bad.code, "PGRST121");
    }
}
