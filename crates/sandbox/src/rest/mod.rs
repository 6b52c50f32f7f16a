//! `/rest/v1`: the PostgREST v14 subset that Quire and supabase-js use.
//!
//! A request goes through the same stages, in the same order, as in
//! PostgREST (`App.hs`), so that the first problem found is the one
//! PostgREST would report:
//!
//! 1. the gateway's `apikey` check and body-size limit (Kong's job);
//! 2. the bearer token ([`auth`]): role and claims, or `PGRST301`/`PGRST303`;
//! 3. the path (`/table`, `/rpc/fn`), the schema from `Accept-Profile` /
//!    `Content-Profile` (only `public` and `storage` are exposed), the method;
//! 4. the query string ([`query`]), `Prefer`, `Range`, the body, `Accept`;
//! 5. the schema cache ([`catalog`]) and the statement ([`sql`]);
//! 6. one transaction on a connection as `authenticator`: the role's own
//!    settings (`statement_timeout`), the `set_config` preamble (role,
//!    `request.jwt.claims`, method, path, headers, `search_path`), the
//!    statement, then commit — read-only for `GET`/`HEAD`
//!    and for calls of stable/immutable functions — so that row-level
//!    security is PostgreSQL's own. Everything up to the statement is sent
//!    at once and answered at once, as PostgREST pipelines it: two round
//!    trips a request with the commit ([`Pipelined`]). Statements are
//!    prepared once per connection, as PostgREST's are, so a request of a
//!    shape the connection has served is neither parsed nor planned again.
//!
//! Not served (deviations from PostgREST, each answered with an error rather
//! than a guess): resource embedding and related orders (`PGRST200`,
//! `PGRST108`), aggregates (`PGRST123`, as on the platform), `PUT` upserts
//! (`PGRST127`), CSV, GeoJSON and plan media types (`PGRST107`/`PGRST102`),
//! the OpenAPI root (`PGRST126`). Also: `count=planned|estimated` count
//! exactly, `Prefer: tx=…` and `timezone=…` are not applied, and the parse
//! errors' `details` imitate Parsec's wording without reproducing every
//! merge of its expectations.

pub(crate) mod auth;
pub(crate) mod catalog;
pub(crate) mod error;
pub(crate) mod prefer;
pub mod query;
pub(crate) mod sql;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Extension;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use secrecy::ExposeSecret as _;
use serde_json::{Map, Value};
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

use crate::state::AppState;
use catalog::{Catalog, ReturnKind, Routine, SchemaCache, Table, Volatility};
use error::RestError;
use prefer::{Handling, MediaType, Preferences, Representation, Resolution};
use query::{Filter, LogicTree, OrderTerm, QueryParams, RowRange};
use sql::{CallArgs, JsonBody, ReadSpec, Returning, Statement};

/// The schemas PostgREST serves (`PGRST_DB_SCHEMAS=public,storage` on the
/// current platform; `ai` is not exposed). The first is the default.
pub(crate) const EXPOSED_SCHEMAS: [&str; 2] = ["public", "storage"];

/// `db-extra-search-path` of the Supabase CLI.
pub(crate) const EXTRA_SEARCH_PATH: [&str; 2] = ["public", "extensions"];

/// `db-max-rows`: reads are capped silently.
pub(crate) const MAX_ROWS: i64 = 1000;

/// The largest request body the gateway lets through.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// `/rest/v1` requests this process has served (any outcome).
static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Round trips to the database those requests waited for (messages sent
/// together and answered together are one); the schema cache's loads are
/// left out.
static DB_ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);

/// `/rest/v1` requests served by this process so far (the load benchmark
/// divides the round trips by answers).
pub fn requests() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}

/// Database round trips the `/rest/v1` requests of this process have
/// waited for so far.
pub fn db_round_trips() -> u64 {
    DB_ROUND_TRIPS.load(Ordering::Relaxed)
}

fn round_trips(n: u64) {
    DB_ROUND_TRIPS.fetch_add(n, Ordering::Relaxed);
}

/// The REST service's own state: the schema cache of this server, and the
/// impersonated roles' own settings, read once per role as PostgREST reads
/// them with its schema cache (and read again when the cache is).
#[derive(Default)]
pub(crate) struct RestService {
    pub(crate) catalog: Catalog,
    role_settings: std::sync::Mutex<std::collections::HashMap<String, Arc<RoleSettings>>>,
}

/// A role's settings: names and values, to be applied with `set_config`.
#[derive(Debug, Default)]
struct RoleSettings {
    names: Vec<String>,
    values: Vec<String>,
}

impl RestService {
    /// `role`'s settings ([`ROLE_SETTINGS`]), read on first use.
    async fn role_settings(
        &self,
        client: &tokio_postgres::Client,
        role: &str,
    ) -> Result<Arc<RoleSettings>, tokio_postgres::Error> {
        let cached = self
            .role_settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(role)
            .cloned();
        if let Some(settings) = cached {
            return Ok(settings);
        }
        round_trips(1);
        let rows = client
            .query_typed(ROLE_SETTINGS, &[(&role, Type::TEXT)])
            .await?;
        let settings = Arc::new(RoleSettings {
            names: rows.iter().map(|r| r.get(0)).collect(),
            values: rows.iter().map(|r| r.get(1)).collect(),
        });
        self.role_settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(role.to_owned(), settings.clone());
        Ok(settings)
    }

    /// Forgets the roles' settings (read again with a refreshed schema cache).
    fn forget_role_settings(&self) {
        self.role_settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The `/rest/v1` router. Each call makes a fresh schema cache, so every
/// sandbox has its own.
pub(crate) fn router() -> Router<AppState> {
    let service = Arc::new(RestService::default());
    Router::new()
        .route("/", any(handle))
        .route("/{*path}", any(handle))
        .layer(Extension(service))
}

async fn handle(
    State(state): State<AppState>,
    Extension(service): Extension<Arc<RestService>>,
    request: Request,
) -> Response {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    match serve(&state, &service, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// What the path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Root,
    Relation(String),
    Routine(String),
}

/// What the request does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Read { headers_only: bool },
    Create,
    Update,
    Delete,
    Info,
    Invoke { read: bool, headers_only: bool },
}

fn resource(path: &str) -> Result<Resource, RestError> {
    let mut segments: Vec<String> = path.split('/').map(percent_decode).collect();
    if segments.first().is_some_and(String::is_empty) {
        segments.remove(0);
    }
    match segments.as_slice() {
        [] => Ok(Resource::Root),
        [s] if s.is_empty() => Ok(Resource::Root),
        [table] => Ok(Resource::Relation(table.clone())),
        [rpc, name] if rpc == "rpc" => Ok(Resource::Routine(name.clone())),
        _ => Err(RestError::invalid_resource_path()),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn action(resource: &Resource, method: &Method) -> Result<Action, RestError> {
    let m = method.as_str();
    match resource {
        Resource::Routine(_) => match m {
            "HEAD" => Ok(Action::Invoke {
                read: true,
                headers_only: true,
            }),
            "GET" => Ok(Action::Invoke {
                read: true,
                headers_only: false,
            }),
            "POST" => Ok(Action::Invoke {
                read: false,
                headers_only: false,
            }),
            "OPTIONS" => Ok(Action::Info),
            _ => Err(RestError::invalid_rpc_method(m)),
        },
        Resource::Relation(_) => match m {
            "HEAD" => Ok(Action::Read { headers_only: true }),
            "GET" => Ok(Action::Read {
                headers_only: false,
            }),
            "POST" => Ok(Action::Create),
            "PATCH" => Ok(Action::Update),
            "DELETE" => Ok(Action::Delete),
            "OPTIONS" => Ok(Action::Info),
            "PUT" => Err(RestError::not_implemented(
                "PUT upserts are not served by the sandbox; use POST with Prefer: resolution=merge-duplicates",
            )),
            _ => Err(RestError::unsupported_method(m)),
        },
        Resource::Root => match m {
            "GET" | "HEAD" | "OPTIONS" => Ok(Action::Info),
            _ => Err(RestError::unsupported_method(m)),
        },
    }
}

/// `getSchema`: the profile header for the method, checked against the
/// exposed schemas.
fn schema_for(headers: &HeaderMap, method: &Method) -> Result<&'static str, RestError> {
    let header_name = match method.as_str() {
        "DELETE" | "PATCH" | "POST" | "PUT" => "content-profile",
        _ => "accept-profile",
    };
    match headers.get(header_name) {
        None => Ok(EXPOSED_SCHEMAS[0]),
        Some(v) => {
            let p = String::from_utf8_lossy(v.as_bytes());
            EXPOSED_SCHEMAS
                .iter()
                .find(|s| **s == p)
                .copied()
                .ok_or_else(|| RestError::unacceptable_schema(&p, &EXPOSED_SCHEMAS))
        }
    }
}

/// A parsed request body.
#[derive(Debug, Clone)]
struct Payload {
    body: JsonBody,
    /// The keys of its objects (all objects have the same keys).
    keys: BTreeSet<String>,
}

/// `getPayload`: JSON (object or array of objects with the same keys), or
/// a form, as the action needs it.
fn payload(
    headers: &HeaderMap,
    body: &Bytes,
    columns: Option<&Vec<String>>,
    is_rpc: bool,
) -> Result<Payload, RestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
    let mime = content_type
        .as_deref()
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
    match mime.as_deref() {
        None | Some("application/json") => {}
        Some("application/x-www-form-urlencoded") => {
            let text = String::from_utf8_lossy(body);
            let mut map = Map::new();
            for (k, v) in query::decode_query(&text) {
                map.insert(k, Value::String(v.unwrap_or_default()));
            }
            let keys = map.keys().cloned().collect();
            return Ok(Payload {
                body: JsonBody {
                    text: Value::Object(map).to_string(),
                    is_object: true,
                },
                keys,
            });
        }
        Some(other) => {
            return Err(RestError::invalid_body(format!(
                "Content-Type not acceptable: {other}"
            )));
        }
    }
    let text = String::from_utf8_lossy(body).into_owned();
    let first = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .chars()
        .next();
    if let Some(cols) = columns {
        return Ok(Payload {
            body: JsonBody {
                is_object: first == Some('{'),
                text,
            },
            keys: cols.iter().cloned().collect(),
        });
    }
    let value: Value = if body.is_empty() && is_rpc {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(&text).map_err(|_| RestError::invalid_body("Empty or invalid json"))?
    };
    let empty = || Payload {
        body: JsonBody {
            text: "[]".into(),
            is_object: false,
        },
        keys: BTreeSet::new(),
    };
    match &value {
        Value::Object(o) => Ok(Payload {
            body: JsonBody {
                text,
                is_object: true,
            },
            keys: o.keys().cloned().collect(),
        }),
        Value::Array(items) => match items.first() {
            None => Ok(empty()),
            Some(Value::Object(first)) => {
                let keys: BTreeSet<String> = first.keys().cloned().collect();
                let uniform = items.iter().all(|i| {
                    i.as_object().is_some_and(|o| {
                        o.len() == keys.len() && o.keys().all(|k| keys.contains(k))
                    })
                });
                if uniform {
                    Ok(Payload {
                        body: JsonBody {
                            text,
                            is_object: false,
                        },
                        keys,
                    })
                } else {
                    Err(RestError::invalid_body("All object keys must match"))
                }
            }
            Some(_) => Err(RestError::invalid_body("All object keys must match")),
        },
        _ => Ok(empty()),
    }
}

/// A text value with no declared type: PostgreSQL infers its type from
/// where the placeholder appears and parses the text with that type's input
/// function, as it does for an untyped literal (PostgREST's `unknown`
/// encoder).
#[derive(Debug)]
struct Untyped<'a>(&'a str);

impl ToSql for Untyped<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// Runs `statement` with untyped text parameters, prepared once per
/// connection as PostgREST prepares its statements (`db-prepared-statements`):
/// PostgreSQL parses and plans a statement it has seen on the connection
/// again only when it must. The statement's text holds no value (they are
/// all parameters), so one text serves every request of the same shape.
/// Prepared after whatever was sent before it, so inside the request's
/// transaction, with its role and `search_path`; a statement that cannot
/// be prepared is not kept, and fails as it would have run.
async fn query_prepared(
    client: &deadpool_postgres::Object,
    statement: &Statement,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let types = vec![Type::UNKNOWN; statement.params.len()];
    let prepared = client.prepare_typed_cached(&statement.sql, &types).await?;
    let values: Vec<Untyped> = statement.params.iter().map(|p| Untyped(p)).collect();
    let params: Vec<&(dyn ToSql + Sync)> =
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
    client.query(&prepared, &params).await
}

/// Statements kept prepared on one connection; past it the connection's
/// cache is emptied (the shapes of requests a client can send are endless).
const MAX_PREPARED: usize = 256;

/// The request preamble, in PostgREST's order (`PreQuery.hs`).
const PREAMBLE: &str = "select set_config('search_path', $1, true), \
     set_config('role', $2, true), \
     set_config('request.jwt.claims', $3, true), \
     set_config('request.method', $4, true), \
     set_config('request.path', $5, true), \
     set_config('request.headers', $6, true), \
     set_config('request.cookies', $7, true)";

/// The impersonated role's own settings (`alter role … set`, e.g. a
/// Supabase project's `statement_timeout`), which PostgREST applies in each
/// request before it sets the role (`PreQuery.hs`, `roleSettingsSql`). It
/// reads them from `pg_roles.rolconfig` of the roles its login role is a
/// member of, keeps those a user may set, lowercases the values and leaves
/// out `default_transaction_isolation` (`queryRoleSettings`); PostgREST reads
/// them when it loads its schema cache, the sandbox on a role's first
/// request ([`RestService`]).
const ROLE_SETTINGS: &str = "select s.name, s.value \
     from (select pg_catalog.split_part(c, '=', 1) as name, \
                  pg_catalog.lower(pg_catalog.substr(c, pg_catalog.strpos(c, '=') + 1)) as value \
           from pg_catalog.pg_roles r \
           join pg_catalog.pg_auth_members m \
             on m.roleid = r.oid and m.member = current_user::regrole::oid \
           cross join lateral pg_catalog.unnest(r.rolconfig) c \
           where r.rolname = $1) s \
     join pg_catalog.pg_settings ps on ps.name = s.name \
     where s.name <> 'default_transaction_isolation' \
       and (ps.context = 'user' \
            or pg_catalog.has_parameter_privilege(current_user::regrole::oid, ps.name, 'set'))";

/// Applies a role's settings ([`ROLE_SETTINGS`]) for the transaction.
const APPLY_ROLE_SETTINGS: &str = "select pg_catalog.set_config(s.name, s.value, true) \
     from rows from (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[])) as s(name, value)";

/// What the statement is, for shaping the answer.
#[derive(Debug, Clone)]
enum Kind {
    Read {
        table: String,
        headers_only: bool,
    },
    Create {
        table: String,
        has_pk: bool,
        resolution: Option<Resolution>,
    },
    Update,
    Delete,
    Call {
        void: bool,
        headers_only: bool,
    },
}

struct Plan {
    statement: Statement,
    kind: Kind,
    read_only: bool,
}

/// Everything about the request that does not need the database.
struct Parsed {
    method: Method,
    path: String,
    resource: Resource,
    action: Action,
    schema: &'static str,
    query: QueryParams,
    prefs: Preferences,
    range: RowRange,
    payload: Option<Payload>,
    media: MediaType,
    identity: auth::Identity,
    headers: HeaderMap,
}

async fn serve(
    state: &AppState,
    service: &RestService,
    request: Request,
) -> Result<Response, RestError> {
    let (parts, body) = request.into_parts();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let mut pairs = query::decode_query(&raw_query);
    let query_apikey = pairs
        .iter()
        .find(|(k, _)| k == "apikey")
        .and_then(|(_, v)| v.clone());
    auth::check_api_key(
        &parts.headers,
        query_apikey.as_deref(),
        [
            state.keys.anon_key().expose_secret(),
            state.keys.service_role_key().expose_secret(),
        ],
    )?;
    // The gateway hides the key from the upstream.
    pairs.retain(|(k, _)| k != "apikey");
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| RestError::payload_too_large())?;

    let token = auth::bearer(&parts.headers);
    let identity = auth::identify(
        token.as_deref(),
        state.keys.jwt_secret().expose_secret().as_bytes(),
        chrono::Utc::now().timestamp(),
    )?;

    let path = parts.uri.path().to_string();
    let resource = resource(&path)?;
    let schema = schema_for(&parts.headers, &parts.method)?;
    let action = action(&resource, &parts.method)?;
    let rpc_read = matches!(action, Action::Invoke { read: true, .. });
    let query = query::parse_pairs(&pairs, rpc_read).map_err(RestError::query_param)?;

    let prefs = Preferences::parse(
        parts
            .headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    if prefs.handling == Some(Handling::Strict) && !prefs.invalid.is_empty() {
        return Err(RestError::invalid_preferences(&prefs.invalid));
    }

    let range = top_level_range(&parts.method, &parts.headers, &query)?;

    let payload = match action {
        Action::Create | Action::Update => Some(payload(
            &parts.headers,
            &body,
            query.columns.as_ref(),
            false,
        )?),
        Action::Invoke { read: false, .. } => Some(payload(
            &parts.headers,
            &body,
            query.columns.as_ref(),
            true,
        )?),
        _ => None,
    };

    let accept = parts
        .headers
        .get(header::ACCEPT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let media = prefer::negotiate(accept.as_deref())
        .ok_or_else(|| RestError::media_type(accept.as_deref().unwrap_or("")))?;

    if resource == Resource::Root {
        return Err(RestError::openapi_disabled());
    }

    let parsed = Parsed {
        method: parts.method,
        path,
        resource,
        action,
        schema,
        query,
        prefs,
        range,
        payload,
        media,
        identity,
        headers: parts.headers,
    };
    execute(state, service, &parsed).await
}

/// `getRanges`: the `Range` header (GET only) intersected with
/// `limit`/`offset`; an empty result is `PGRST103` unless `limit=0`.
fn top_level_range(
    method: &Method,
    headers: &HeaderMap,
    q: &QueryParams,
) -> Result<RowRange, RestError> {
    let header_range = if method == Method::GET {
        headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map_or(RowRange::ALL, prefer::parse_range_header)
    } else {
        RowRange::ALL
    };
    let limit_range = q.root_range();
    let top = if q.root_has_limit_zero() {
        RowRange {
            lower: 0,
            upper: Some(-1),
        }
    } else {
        header_range.intersect(limit_range)
    };
    if top.is_empty() && !q.root_has_limit_zero() {
        return Err(if header_range.is_empty() {
            RestError::lower_gt_upper()
        } else {
            RestError::negative_limit()
        });
    }
    Ok(top)
}

/// Root filters, logic trees and order; anything on an embedded path is
/// `PGRST108` (the sandbox embeds nothing).
/// The root level's filters, logic trees and order.
type RootParts = (Vec<Filter>, Vec<LogicTree>, Vec<OrderTerm>);

fn root_parts(q: &QueryParams) -> Result<RootParts, RestError> {
    let not_embedded = |path: &[String]| RestError::not_embedded(&path.join("."));
    let mut filters = Vec::new();
    for (path, f) in &q.filters {
        if !path.is_empty() {
            return Err(not_embedded(path));
        }
        filters.push(f.clone());
    }
    let mut logic = Vec::new();
    for (path, t) in &q.logic {
        if !path.is_empty() {
            return Err(not_embedded(path));
        }
        logic.push(t.clone());
    }
    let mut order = Vec::new();
    for (path, terms) in &q.order {
        if !path.is_empty() {
            return Err(not_embedded(path));
        }
        // A later `order` parameter replaces an earlier one.
        order = terms.clone();
    }
    if let Some((path, _)) = q.ranges.iter().find(|(p, _)| !p.is_empty()) {
        return Err(not_embedded(path));
    }
    Ok((filters, logic, order))
}

fn plan(p: &Parsed, cache: &SchemaCache) -> Result<Plan, RestError> {
    let (filters, logic, order) = root_parts(&p.query)?;
    match &p.resource {
        Resource::Relation(name) => {
            let table = cache.tables.get(name).ok_or_else(|| {
                RestError::table_not_found(p.schema, name, cache.table_hint(p.schema, name))
            })?;
            plan_relation(p, table, &filters, &logic, &order)
        }
        Resource::Routine(name) => {
            let (routine, args) = find_routine(p, cache, name)?;
            plan_call(p, routine, args, &filters, &logic, &order)
        }
        Resource::Root => Err(RestError::openapi_disabled()),
    }
}

fn representation(p: &Parsed) -> Returning<'_> {
    match p.prefs.representation {
        Some(Representation::Full) => Returning::Full(&p.query.select),
        Some(Representation::HeadersOnly) => Returning::HeadersOnly,
        Some(Representation::Minimal) | None => Returning::Minimal,
    }
}

fn payload_columns<'t>(
    table: &'t Table,
    keys: &BTreeSet<String>,
) -> Result<Vec<&'t catalog::Column>, RestError> {
    keys.iter()
        .map(|k| {
            table
                .column(k)
                .ok_or_else(|| RestError::column_not_found(&table.name, k))
        })
        .collect()
}

/// The statement for a request on a table or view: PostgREST's read, create
/// (insert or upsert), update and delete plans.
fn plan_relation(
    p: &Parsed,
    table: &Table,
    filters: &[Filter],
    logic: &[LogicTree],
    order: &[OrderTerm],
) -> Result<Plan, RestError> {
    match p.action {
        Action::Read { headers_only } => plan_read(p, table, filters, logic, order, headers_only),
        Action::Create => plan_create(p, table),
        Action::Update => plan_update(p, table, filters, logic, order),
        Action::Delete => plan_delete(p, table, filters, logic, order),
        Action::Info | Action::Invoke { .. } => {
            Err(RestError::unsupported_method(p.method.as_str()))
        }
    }
}

/// `GET`/`HEAD`: a read of at most `MAX_ROWS` rows, counted when asked.
fn plan_read(
    p: &Parsed,
    table: &Table,
    filters: &[Filter],
    logic: &[LogicTree],
    order: &[OrderTerm],
    headers_only: bool,
) -> Result<Plan, RestError> {
    let statement = sql::read(
        table,
        &ReadSpec {
            select: &p.query.select,
            filters,
            logic,
            order,
            range: p.range.restrict(MAX_ROWS),
            count: p.prefs.counts(),
            media: p.media,
        },
    )?;
    Ok(Plan {
        statement,
        kind: Kind::Read {
            table: table.name.clone(),
            headers_only,
        },
        read_only: true,
    })
}

/// The JSON body a create or update writes; without one the request is a
/// `PGRST102`.
fn write_payload(p: &Parsed) -> Result<&Payload, RestError> {
    p.payload
        .as_ref()
        .ok_or_else(|| RestError::invalid_body("Empty or invalid json"))
}

/// `POST`: an insert, or an upsert when `Prefer: resolution=` is given.
fn plan_create(p: &Parsed, table: &Table) -> Result<Plan, RestError> {
    let payload = write_payload(p)?;
    let columns = payload_columns(table, &payload.keys)?;
    let on_conflict = match p.prefs.resolution {
        None => None,
        Some(res) => Some((res, conflict_target(p, table)?)),
    };
    let statement = sql::insert(
        table,
        &sql::InsertSpec {
            columns,
            body: payload.body.clone(),
            on_conflict,
            apply_defaults: p.prefs.missing == Some(prefer::Missing::Default),
            returning: representation(p),
            media: p.media,
        },
    )?;
    Ok(Plan {
        statement,
        kind: Kind::Create {
            table: table.name.clone(),
            has_pk: !table.primary_key.is_empty() || p.query.on_conflict.is_some(),
            resolution: p.prefs.resolution,
        },
        read_only: false,
    })
}

/// The upsert's conflict target: `on_conflict=` when given, else the
/// primary key.
fn conflict_target<'t>(
    p: &Parsed,
    table: &'t Table,
) -> Result<Vec<&'t catalog::Column>, RestError> {
    match &p.query.on_conflict {
        Some(cols) => cols
            .iter()
            .map(|c| {
                table
                    .column(c)
                    .ok_or_else(|| RestError::undefined_column(&table.name, c))
            })
            .collect(),
        None => Ok(table
            .primary_key
            .iter()
            .filter_map(|c| table.column(c))
            .collect()),
    }
}

/// `PATCH`: an update of the filtered rows.
fn plan_update(
    p: &Parsed,
    table: &Table,
    filters: &[Filter],
    logic: &[LogicTree],
    order: &[OrderTerm],
) -> Result<Plan, RestError> {
    let payload = write_payload(p)?;
    let columns = payload_columns(table, &payload.keys)?;
    let statement = sql::update(
        table,
        &sql::UpdateSpec {
            columns,
            body: payload.body.clone(),
            filters,
            logic,
            order,
            range: p.range,
            returning: representation(p),
            media: p.media,
        },
    )?;
    Ok(Plan {
        statement,
        kind: Kind::Update,
        read_only: false,
    })
}

/// `DELETE`: a delete of the filtered rows.
fn plan_delete(
    p: &Parsed,
    table: &Table,
    filters: &[Filter],
    logic: &[LogicTree],
    order: &[OrderTerm],
) -> Result<Plan, RestError> {
    let statement = sql::delete(
        table,
        &sql::DeleteSpec {
            filters,
            logic,
            order,
            range: p.range,
            returning: representation(p),
            media: p.media,
        },
    )?;
    Ok(Plan {
        statement,
        kind: Kind::Delete,
        read_only: false,
    })
}

/// The arguments of a call: the body's keys (POST) or the query string's
/// non-filter parameters (GET).
enum Args {
    Body(Payload),
    Query(Vec<(String, String)>),
}

impl Args {
    fn keys(&self) -> Vec<String> {
        match self {
            Args::Body(p) => p.keys.iter().cloned().collect(),
            Args::Query(q) => q
                .iter()
                .map(|(k, _)| k.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        }
    }
}

/// `findProc`: the overload whose parameter names cover the given keys and
/// whose required parameters are all given; else a single unnamed
/// `json`/`jsonb` parameter for a JSON body.
fn find_routine<'c>(
    p: &Parsed,
    cache: &'c SchemaCache,
    name: &str,
) -> Result<(&'c Routine, Args), RestError> {
    let args = match &p.payload {
        Some(payload) => Args::Body(payload.clone()),
        None => Args::Query(p.query.params.clone()),
    };
    let keys = args.keys();
    let not_found = || {
        RestError::no_function(
            p.schema,
            name,
            &keys,
            cache.routine_hint(p.schema, name, &keys),
        )
    };
    let overloads = cache.routines.get(name).ok_or_else(not_found)?;
    let named: Vec<&Routine> = overloads
        .iter()
        .filter(|r| {
            r.single_unnamed_json().is_none()
                && keys
                    .iter()
                    .all(|k| r.params.iter().any(|prm| &prm.name == k))
                && r.params
                    .iter()
                    .all(|prm| !prm.required || keys.contains(&prm.name))
        })
        .collect();
    match named.as_slice() {
        [one] => Ok((one, args)),
        [] => {
            let single = matches!(args, Args::Body(_))
                .then(|| overloads.iter().find(|r| r.single_unnamed_json().is_some()))
                .flatten();
            single.map(|r| (r, args)).ok_or_else(not_found)
        }
        many => Err(RestError::ambiguous_function(
            &many.iter().map(|r| r.signature()).collect::<Vec<_>>(),
        )),
    }
}

fn plan_call(
    p: &Parsed,
    routine: &Routine,
    args: Args,
    filters: &[Filter],
    logic: &[LogicTree],
    order: &[OrderTerm],
) -> Result<Plan, RestError> {
    let keys = args.keys();
    let call_args = match (&args, routine.single_unnamed_json()) {
        (Args::Body(payload), Some(param)) => CallArgs::Single {
            param,
            body: payload.body.text.clone(),
        },
        (Args::Body(payload), None) => CallArgs::Named {
            params: routine
                .params
                .iter()
                .filter(|prm| keys.contains(&prm.name))
                .collect(),
            body: payload.body.clone(),
        },
        (Args::Query(pairs), _) => {
            // Repeated keys are a variadic argument's elements.
            let mut map = Map::new();
            for (k, v) in pairs {
                match map.get_mut(k) {
                    None => {
                        map.insert(k.clone(), Value::String(v.clone()));
                    }
                    Some(Value::Array(items)) => items.push(Value::String(v.clone())),
                    Some(existing) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, Value::String(v.clone())]);
                    }
                }
            }
            CallArgs::Named {
                params: routine
                    .params
                    .iter()
                    .filter(|prm| keys.contains(&prm.name))
                    .collect(),
                body: JsonBody {
                    text: Value::Object(map).to_string(),
                    is_object: true,
                },
            }
        }
    };
    let (read, headers_only) = match p.action {
        Action::Invoke { read, headers_only } => (read, headers_only),
        _ => (false, false),
    };
    let statement = sql::call(
        routine,
        &call_args,
        &ReadSpec {
            select: &p.query.select,
            filters,
            logic,
            order,
            range: p.range.restrict(MAX_ROWS),
            count: p.prefs.counts(),
            media: p.media,
        },
    )?;
    Ok(Plan {
        statement,
        kind: Kind::Call {
            void: routine.return_kind == ReturnKind::Void,
            headers_only,
        },
        read_only: read || routine.volatility != Volatility::Volatile,
    })
}

/// Errors that a stale schema cache could cause: worth checking for DDL.
fn cache_miss(e: &RestError) -> bool {
    matches!(
        e.code.as_str(),
        "PGRST205" | "PGRST202" | "PGRST204" | "42703"
    )
}

async fn execute(
    state: &AppState,
    service: &RestService,
    p: &Parsed,
) -> Result<Response, RestError> {
    let client = state.db.rest.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Timeout(_) => RestError::pool_timeout(),
        other => RestError::connection(other.to_string()),
    })?;
    let authenticated = p.identity.authenticated();
    let db_err = |e: tokio_postgres::Error| RestError::from_db(&e, authenticated);

    let cache = service
        .catalog
        .get(&client, p.schema)
        .await
        .map_err(db_err)?;
    if p.action == Action::Info {
        return info(p, &cache);
    }
    let plan = match plan(p, &cache) {
        Ok(plan) => plan,
        Err(e) if cache_miss(&e) => {
            service.forget_role_settings();
            let fresh = service
                .catalog
                .refresh(&client, p.schema)
                .await
                .map_err(db_err)?;
            plan(p, &fresh)?
        }
        Err(e) => return Err(e),
    };

    let preamble = preamble_params(p);
    let settings = service
        .role_settings(&client, &p.identity.role)
        .await
        .map_err(db_err)?;
    let (tx, rows) = Pipelined::start(
        client,
        plan.read_only,
        &settings,
        &preamble,
        &plan.statement,
    )
    .await
    .map_err(db_err)?;
    let row = rows
        .first()
        .ok_or_else(|| RestError::connection("the statement returned no result row"))?;
    let result = QueryResult::from_row(row, &plan.kind);

    // Checks that undo the transaction, as PostgREST's do.
    if p.media == MediaType::SingleObject
        && result.page_total != 1
        && !matches!(plan.kind, Kind::Call { void: true, .. })
    {
        return Err(RestError::singularity(result.page_total));
    }
    if matches!(plan.kind, Kind::Update | Kind::Delete)
        && p.prefs.handling == Some(Handling::Strict)
        && let Some(max) = p.prefs.max_affected
        && result.page_total > max
    {
        return Err(RestError::max_affected(result.page_total));
    }
    tx.commit().await.map_err(db_err)?;
    respond(p, &plan.kind, result)
}

/// A request's transaction, pipelined as PostgREST pipelines it: `BEGIN`,
/// the role's settings, the preamble and the statement are sent together
/// and answered together (one round trip), in that order, so each sees the
/// settings before it; then `COMMIT` once the answer has been checked.
/// Dropped before that (a check undid it, or the request went away), it
/// rolls back before its connection goes back to the pool.
struct Pipelined {
    client: Option<deadpool_postgres::Object>,
}

impl Pipelined {
    /// Runs the request's statement in a new transaction on `client`; its
    /// rows, or the first error in pipeline order (the transaction then
    /// rolled back).
    async fn start(
        client: deadpool_postgres::Object,
        read_only: bool,
        settings: &RoleSettings,
        preamble: &[String],
        statement: &Statement,
    ) -> Result<(Pipelined, Vec<tokio_postgres::Row>), tokio_postgres::Error> {
        // The guard holds the connection before anything is sent: if the
        // request goes away while the exchange is in flight (its future is
        // dropped), the transaction is rolled back rather than left open on a
        // pooled connection, where the next request's BEGIN would only warn
        // and run inside it.
        let tx = Pipelined {
            client: Some(client),
        };
        let client = tx.client.as_ref().expect("an open transaction");
        let begin = if read_only {
            "begin isolation level read committed read only"
        } else {
            "begin isolation level read committed read write"
        };
        // The two statements every request runs are prepared once per
        // connection, as PostgREST's are (`db-prepared-statements`).
        if client.statement_cache.size() > MAX_PREPARED {
            client.statement_cache.clear();
        }
        let cached = client.statement_cache.size();
        let apply = client
            .prepare_typed_cached(APPLY_ROLE_SETTINGS, &[Type::TEXT_ARRAY, Type::TEXT_ARRAY])
            .await?;
        let set_preamble = client
            .prepare_typed_cached(PREAMBLE, &[Type::TEXT; 7])
            .await?;
        round_trips(client.statement_cache.size().saturating_sub(cached) as u64);
        let settings: [&(dyn ToSql + Sync); 2] = [&settings.names, &settings.values];
        let preamble: Vec<&(dyn ToSql + Sync)> =
            preamble.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let cached = client.statement_cache.size();
        // Each future sends its messages when first polled, and `join!`
        // polls them first in this order: the server gets them in it. A
        // statement not yet prepared on this connection takes one more
        // round trip, its preparation.
        let (begun, settings, preamble, rows) = tokio::join!(
            client.batch_execute(begin),
            client.query(&apply, &settings),
            client.query(&set_preamble, &preamble),
            query_prepared(client, statement),
        );
        round_trips(1 + client.statement_cache.size().saturating_sub(cached) as u64);
        let outcome = begun
            .and(settings.map(drop))
            .and(preamble.map(drop))
            .and(rows);
        match outcome {
            Ok(rows) => Ok((tx, rows)),
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn commit(mut self) -> Result<(), tokio_postgres::Error> {
        let client = self.client.take().expect("an open transaction");
        round_trips(1);
        client.batch_execute("commit").await
    }

    async fn rollback(mut self) {
        if let Some(client) = self.client.take() {
            round_trips(1);
            rollback(client).await;
        }
    }
}

/// Ends the transaction on `client`; a connection that cannot is closed
/// rather than pooled.
async fn rollback(client: deadpool_postgres::Object) {
    if client.batch_execute("rollback").await.is_err() {
        drop(deadpool_postgres::Object::take(client));
    }
}

impl Drop for Pipelined {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(rollback(client));
            }
            Err(_) => drop(deadpool_postgres::Object::take(client)),
        }
    }
}

fn preamble_params(p: &Parsed) -> Vec<String> {
    let search_path: Vec<String> = std::iter::once(p.schema)
        .chain(EXTRA_SEARCH_PATH)
        .map(sql::quote_ident)
        .collect();
    let mut headers = Map::new();
    for (name, value) in &p.headers {
        if name == header::COOKIE {
            continue;
        }
        headers.insert(
            name.as_str().to_ascii_lowercase(),
            Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        );
    }
    let mut cookies = Map::new();
    for value in p.headers.get_all(header::COOKIE) {
        for pair in String::from_utf8_lossy(value.as_bytes()).split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                cookies.insert(k.to_string(), Value::String(v.to_string()));
            }
        }
    }
    vec![
        search_path.join(", "),
        p.identity.role.clone(),
        Value::Object(p.identity.claims.clone()).to_string(),
        p.method.as_str().to_string(),
        p.path.clone(),
        Value::Object(headers).to_string(),
        Value::Object(cookies).to_string(),
    ]
}

/// The single row every statement returns.
#[derive(Debug)]
struct QueryResult {
    total: Option<i64>,
    page_total: i64,
    body: String,
    location: Vec<String>,
    inserted: Option<i64>,
    guc_headers: Option<String>,
    guc_status: Option<String>,
}

impl QueryResult {
    fn from_row(row: &tokio_postgres::Row, kind: &Kind) -> Self {
        let get_i64 = |name: &str| row.try_get::<_, Option<i64>>(name).ok().flatten();
        let is_write = matches!(kind, Kind::Create { .. } | Kind::Update | Kind::Delete);
        QueryResult {
            total: if is_write {
                None
            } else {
                get_i64("total_result_set")
            },
            page_total: get_i64("page_total").unwrap_or(0),
            body: row
                .try_get::<_, Option<String>>("body")
                .ok()
                .flatten()
                .unwrap_or_default(),
            location: if is_write {
                row.try_get::<_, Vec<String>>("header").unwrap_or_default()
            } else {
                Vec::new()
            },
            inserted: if is_write { get_i64("inserted") } else { None },
            guc_headers: row
                .try_get::<_, Option<String>>("response_headers")
                .ok()
                .flatten(),
            guc_status: row
                .try_get::<_, Option<String>>("response_status")
                .ok()
                .flatten(),
        }
    }
}

/// `contentRangeH`
fn content_range(lower: i64, upper: i64, total: Option<i64>) -> String {
    let range = if total != Some(0) && lower <= upper {
        format!("{lower}-{upper}")
    } else {
        "*".to_string()
    };
    let total = total.map_or("*".to_string(), |t| t.to_string());
    format!("{range}/{total}")
}

/// `rangeStatusHeader`
fn range_status(lower: i64, page_total: i64, total: Option<i64>) -> (StatusCode, String) {
    let upper = lower + page_total - 1;
    let status = match total {
        None => StatusCode::OK,
        Some(t) if lower > t => StatusCode::RANGE_NOT_SATISFIABLE,
        Some(t) if 1 + upper - lower < t => StatusCode::PARTIAL_CONTENT,
        Some(_) => StatusCode::OK,
    };
    (status, content_range(lower, upper, total))
}

/// The response headers built so far.
type Headers = Vec<(HeaderName, String)>;

/// PostgREST's response to a statement that ran: status, headers and body
/// per kind of request, then what the SQL set in `response.*`.
fn respond(p: &Parsed, kind: &Kind, mut r: QueryResult) -> Result<Response, RestError> {
    let body = std::mem::take(&mut r.body);
    let mut headers: Headers = Vec::new();
    let (status, body) = match kind {
        Kind::Read {
            table,
            headers_only,
        } => read_response(p, &r, body, &mut headers, table, *headers_only)?,
        Kind::Create {
            table,
            has_pk,
            resolution,
        } => create_response(p, &r, body, &mut headers, table, *has_pk, *resolution),
        Kind::Update | Kind::Delete => write_response(p, &r, body, &mut headers, kind),
        Kind::Call { void, headers_only } => {
            call_response(p, &r, body, &mut headers, *void, *headers_only)?
        }
    };
    override_from_gucs(status, headers, body, &r)
}

/// `Content-Type` and, since several schemas are exposed, the negotiated
/// `Content-Profile`.
fn push_content_type(p: &Parsed, headers: &mut Headers) {
    headers.push((header::CONTENT_TYPE, p.media.content_type().to_string()));
    // Several schemas are exposed, so the profile was negotiated.
    headers.push((
        HeaderName::from_static("content-profile"),
        p.schema.to_string(),
    ));
}

/// `Preference-Applied`, when any preference was.
fn push_applied(headers: &mut Headers, applied: Option<String>) {
    if let Some(v) = applied {
        headers.push((HeaderName::from_static("preference-applied"), v));
    }
}

/// The rows read and their range, or `PGRST103` past the end.
fn read_response(
    p: &Parsed,
    r: &QueryResult,
    body: String,
    headers: &mut Headers,
    table: &str,
    headers_only: bool,
) -> Result<(StatusCode, String), RestError> {
    let (status, range) = range_status(p.range.offset(), r.page_total, r.total);
    headers.push((header::CONTENT_RANGE, range));
    let location = if p.query.canonical.is_empty() {
        format!("/{table}")
    } else {
        format!("/{table}?{}", p.query.canonical)
    };
    headers.push((header::CONTENT_LOCATION, location));
    push_content_type(p, headers);
    push_applied(headers, p.prefs.applied(false, false, false, false));
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(RestError::out_of_bounds(
            p.range.offset(),
            r.total.unwrap_or(0),
        ));
    }
    Ok((status, if headers_only { String::new() } else { body }))
}

/// `201` with the new row's `Location`, or `200` for an upsert that only
/// merged duplicates.
fn create_response(
    p: &Parsed,
    r: &QueryResult,
    body: String,
    headers: &mut Headers,
    table: &str,
    has_pk: bool,
    resolution: Option<Resolution>,
) -> (StatusCode, String) {
    if !r.location.is_empty() {
        headers.push((
            header::LOCATION,
            format!("/{table}{}", location_query(&r.location)),
        ));
    }
    let counted = p.prefs.counts().then_some(r.page_total);
    headers.push((header::CONTENT_RANGE, content_range(1, 0, counted)));
    push_applied(headers, p.prefs.applied(has_pk, true, true, false));
    let status = if resolution == Some(Resolution::MergeDuplicates) && r.inserted == Some(0) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    if p.prefs.representation == Some(Representation::Full) {
        push_content_type(p, headers);
        (status, body)
    } else {
        (status, String::new())
    }
}

/// The `?k=eq.v&…` of a created row's `Location`, from its `key=value`
/// pairs.
fn location_query(location: &[String]) -> String {
    let mut q = String::new();
    for (i, kv) in location.iter().enumerate() {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        q.push(if i == 0 { '?' } else { '&' });
        q.push_str(&encode_query_component(k));
        q.push('=');
        q.push_str(&encode_query_component(v));
    }
    q
}

/// An update or delete: `204`, or `200` with the rows when
/// `return=representation`.
fn write_response(
    p: &Parsed,
    r: &QueryResult,
    body: String,
    headers: &mut Headers,
    kind: &Kind,
) -> (StatusCode, String) {
    let is_update = matches!(kind, Kind::Update);
    let counted = p.prefs.counts().then_some(r.page_total);
    let range = if is_update {
        content_range(0, r.page_total - 1, counted)
    } else {
        content_range(1, 0, counted)
    };
    headers.push((header::CONTENT_RANGE, range));
    push_applied(headers, p.prefs.applied(false, is_update, true, true));
    if p.prefs.representation == Some(Representation::Full) {
        push_content_type(p, headers);
        (StatusCode::OK, body)
    } else {
        (StatusCode::NO_CONTENT, String::new())
    }
}

/// A function call: `204` for a void function, else its result and range,
/// or `PGRST103` past the end.
fn call_response(
    p: &Parsed,
    r: &QueryResult,
    body: String,
    headers: &mut Headers,
    void: bool,
    headers_only: bool,
) -> Result<(StatusCode, String), RestError> {
    let (status, range) = range_status(p.range.offset(), r.page_total, r.total);
    headers.push((header::CONTENT_RANGE, range));
    push_applied(headers, p.prefs.applied(false, false, false, true));
    if void {
        return Ok((StatusCode::NO_CONTENT, String::new()));
    }
    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        return Err(RestError::out_of_bounds(
            p.range.offset(),
            r.total.unwrap_or(0),
        ));
    }
    push_content_type(p, headers);
    Ok((status, if headers_only { String::new() } else { body }))
}

/// `response.status` / `response.headers` set by the SQL that ran.
fn override_from_gucs(
    status: StatusCode,
    mut headers: Vec<(HeaderName, String)>,
    body: String,
    r: &QueryResult,
) -> Result<Response, RestError> {
    let status = match &r.guc_status {
        None => status,
        Some(s) => s
            .trim()
            .parse::<u16>()
            .ok()
            .and_then(|n| StatusCode::from_u16(n).ok())
            .ok_or_else(|| {
                RestError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "PGRST112",
                    "response.status guc must be a valid status code",
                )
            })?,
    };
    if let Some(raw) = &r.guc_headers {
        let bad = || {
            RestError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "PGRST111",
                "response.headers guc must be a JSON array composed of objects with a single key and a string value",
            )
        };
        let items: Vec<Map<String, Value>> = serde_json::from_str(raw).map_err(|_| bad())?;
        let mut extra = Vec::new();
        for item in items {
            let (Some((k, Value::String(v))), 1) = (item.iter().next(), item.len()) else {
                return Err(bad());
            };
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad())?;
            extra.push((name, v.clone()));
        }
        headers.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        headers.extend(extra);
    }
    let mut resp = (status, body).into_response();
    resp.headers_mut().remove(header::CONTENT_TYPE);
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

fn encode_query_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `OPTIONS`: what the resource allows.
fn info(p: &Parsed, cache: &SchemaCache) -> Result<Response, RestError> {
    let allow = match &p.resource {
        Resource::Root => "OPTIONS,GET,HEAD".to_string(),
        Resource::Relation(name) => {
            let table = cache.tables.get(name).ok_or_else(|| {
                RestError::table_not_found(p.schema, name, cache.table_hint(p.schema, name))
            })?;
            if table.kind == 'm' {
                "OPTIONS,GET,HEAD".to_string()
            } else {
                "OPTIONS,GET,HEAD,POST,PATCH,DELETE".to_string()
            }
        }
        Resource::Routine(name) => {
            let routines = cache
                .routines
                .get(name)
                .ok_or_else(|| RestError::no_function(p.schema, name, &[], None))?;
            if routines
                .iter()
                .all(|r| r.volatility == Volatility::Volatile)
            {
                "OPTIONS,POST".to_string()
            } else {
                "OPTIONS,GET,HEAD,POST".to_string()
            }
        }
    };
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if let Ok(v) = HeaderValue::from_str(&allow) {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_follow_postgrest() {
        assert_eq!(range_status(0, 10, None), (StatusCode::OK, "0-9/*".into()));
        assert_eq!(
            range_status(0, 10, Some(42)),
            (StatusCode::PARTIAL_CONTENT, "0-9/42".into())
        );
        assert_eq!(range_status(0, 0, Some(0)), (StatusCode::OK, "*/0".into()));
        assert_eq!(range_status(0, 0, None), (StatusCode::OK, "*/*".into()));
        assert_eq!(
            range_status(0, 3, Some(3)),
            (StatusCode::OK, "0-2/3".into())
        );
        assert_eq!(
            range_status(10, 0, Some(3)).0,
            StatusCode::RANGE_NOT_SATISFIABLE
        );
        assert_eq!(content_range(1, 0, Some(5)), "*/5");
    }

    #[test]
    fn resources() {
        assert_eq!(
            resource("/documents").unwrap(),
            Resource::Relation("documents".into())
        );
        assert_eq!(
            resource("/rpc/search_chunks").unwrap(),
            Resource::Routine("search_chunks".into())
        );
        assert_eq!(resource("/").unwrap(), Resource::Root);
        assert_eq!(resource("").unwrap(), Resource::Root);
        assert_eq!(resource("/a/b/c").unwrap_err().code, "PGRST125");
        assert_eq!(resource("/documents/").unwrap_err().code, "PGRST125");
        assert_eq!(
            resource("/my%20table").unwrap(),
            Resource::Relation("my table".into())
        );
    }

    #[test]
    fn schemas() {
        let mut h = HeaderMap::new();
        assert_eq!(schema_for(&h, &Method::GET).unwrap(), "public");
        h.insert("accept-profile", "storage".parse().unwrap());
        assert_eq!(schema_for(&h, &Method::GET).unwrap(), "storage");
        h.insert("accept-profile", "ai".parse().unwrap());
        let e = schema_for(&h, &Method::GET).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code.as_str()), (406, "PGRST106"));
        // Writes read Content-Profile.
        assert_eq!(schema_for(&h, &Method::POST).unwrap(), "public");
    }

    #[test]
    fn ranges() {
        let q = query::parse("limit=-1", false).unwrap();
        assert_eq!(
            top_level_range(&Method::GET, &HeaderMap::new(), &q)
                .unwrap_err()
                .code,
            "PGRST103"
        );
        let mut h = HeaderMap::new();
        h.insert("range", "5-2".parse().unwrap());
        let q = query::parse("", false).unwrap();
        let e = top_level_range(&Method::GET, &h, &q).unwrap_err();
        assert!(
            e.details
                .as_deref()
                .unwrap()
                .starts_with("The lower boundary")
        );
        h.insert("range", "0-9".parse().unwrap());
        let q = query::parse("offset=5", false).unwrap();
        assert_eq!(
            top_level_range(&Method::GET, &h, &q).unwrap(),
            RowRange {
                lower: 5,
                upper: Some(9)
            }
        );
        // Range is only for GET.
        assert_eq!(
            top_level_range(&Method::HEAD, &h, &query::parse("", false).unwrap()).unwrap(),
            RowRange::ALL
        );
    }
}
