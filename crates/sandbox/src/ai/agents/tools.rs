//! Custom HTTP tools (service key only; powabase-ai `routes/tools.py`) and the
//! builtin catalogue.
//!
//! `POST /api/tools` takes the platform's source shape —
//! `{name, description, type: "http", input_schema, config: {endpoint, method,
//! headers, timeout_seconds}}` — and answers 201 `{id, name, description,
//! type, input_schema, config, created_at}`; 400 `name, description, type, and
//! input_schema are required` when one is missing. `GET /api/tools` lists the
//! builtins (`id: null`) then the custom tools; `GET`, `PUT`
//! (`name|description|input_schema|config` → `{id, name}`) and `DELETE`
//! (`{"deleted": true}`) by id.
//!
//! Any endpoint is stored, as on the platform: it is checked only when the
//! tool is called ([`super::endpoint`]), and a blocked one gives the model
//! `Error: URL blocked — …` (docs/platform-contract.md).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::truthy;
use crate::ai::{ApiError, JsonBody, ServiceRole, parse_id, timestamp};
use crate::http::json_response;
use crate::state::AppState;

/// `/api/tools`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/tools", get(list_tools).post(create_tool))
        .route(
            "/tools/{tool_id}",
            get(get_tool).put(update_tool).delete(delete_tool),
        )
}

/// A custom tool an agent may call during a run.
#[derive(Debug, Clone)]
pub(crate) struct CustomTool {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) input_schema: Value,
    pub(crate) config: Value,
}

/// The custom tools assigned to an agent, in assignment order, and whether
/// the agent has any tool (builtin included) — which decides the run's path.
pub(crate) async fn assigned(
    client: &deadpool_postgres::Client,
    agent_id: Uuid,
) -> Result<(Vec<CustomTool>, bool), ApiError> {
    let rows = client
        .query(
            "select a.tool_type, t.name, t.description, t.input_schema, t.config
               from ai.agent_tools a left join ai.tools t on t.id = a.tool_id
              where a.agent_id = $1
              order by a.created_at, a.id",
            &[&agent_id],
        )
        .await?;
    let any = !rows.is_empty();
    let custom = rows
        .iter()
        .filter(|r| r.get::<_, String>(0) == "custom")
        .filter_map(|r| {
            Some(CustomTool {
                name: r.get::<_, Option<String>>(1)?,
                description: r.get::<_, Option<String>>(2).unwrap_or_default(),
                input_schema: r.get::<_, Option<Value>>(3).unwrap_or_else(|| json!({})),
                config: r.get::<_, Option<Value>>(4).unwrap_or_else(|| json!({})),
            })
        })
        .collect();
    Ok((custom, any))
}

fn tool_json(row: &Row, with_created_at: bool) -> Value {
    let mut out = json!({
        "id": row.get::<_, Uuid>("id").to_string(),
        "name": row.get::<_, String>("name"),
        "description": row.get::<_, String>("description"),
        "type": row.get::<_, String>("type"),
        "input_schema": row.get::<_, Value>("input_schema"),
        "config": row.get::<_, Value>("config"),
    });
    if with_created_at {
        out["created_at"] = json!(timestamp(row.get::<_, DateTime<Utc>>("created_at")));
    }
    out
}

const TOOL_COLUMNS: &str = "id, name, description, type, input_schema, config, created_at";

/// Checks an `http` tool's `config` is an object with string headers. The
/// endpoint is not checked here: the platform takes any and checks it when
/// the tool is called.
fn check_config(tool_type: &str, config: &Value) -> Result<(), ApiError> {
    let Some(config) = config.as_object() else {
        return Err(ApiError::bad_request("config must be an object"));
    };
    if tool_type != "http" {
        return Ok(());
    }
    if let Some(headers) = config.get("headers")
        && !headers.is_null()
        && !headers
            .as_object()
            .is_some_and(|h| h.values().all(Value::is_string))
    {
        return Err(ApiError::bad_request(
            "config.headers must be an object of strings",
        ));
    }
    Ok(())
}

fn conflict(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!("A tool named '{name}' already exists"),
    )
}

async fn create_tool(
    State(state): State<AppState>,
    _: ServiceRole,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let required = ["name", "description", "type", "input_schema"];
    if !required.iter().all(|k| truthy(body.get(*k))) {
        return Err(ApiError::bad_request(
            "name, description, type, and input_schema are required",
        ));
    }
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(name), Some(description), Some(tool_type)) =
        (text("name"), text("description"), text("type"))
    else {
        return Err(ApiError::bad_request(
            "name, description and type must be strings",
        ));
    };
    let input_schema = body["input_schema"].clone();
    if !input_schema.is_object() {
        return Err(ApiError::bad_request("input_schema must be an object"));
    }
    let config = body.get("config").cloned().unwrap_or_else(|| json!({}));
    check_config(&tool_type, &config)?;
    let client = state.db.ai.get().await?;
    let row = client
        .query_one(
            &format!(
                "insert into ai.tools (name, description, type, input_schema, config)
                 values ($1, $2, $3, $4, $5) returning {TOOL_COLUMNS}"
            ),
            &[&name, &description, &tool_type, &input_schema, &config],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                conflict(&name)
            } else {
                e.into()
            }
        })?;
    Ok(json_response(StatusCode::CREATED, &tool_json(&row, true)))
}

async fn list_tools(State(state): State<AppState>, _: ServiceRole) -> Result<Response, ApiError> {
    let client = state.db.ai.get().await?;
    let rows = client
        .query(
            &format!("select {TOOL_COLUMNS} from ai.tools order by created_at, id"),
            &[],
        )
        .await?;
    let mut tools: Vec<Value> = builtins();
    tools.extend(rows.iter().map(|r| tool_json(r, true)));
    Ok(json_response(StatusCode::OK, &json!({"tools": tools})))
}

async fn get_tool(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(tool_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&tool_id, "Tool not found")?;
    let client = state.db.ai.get().await?;
    let row = client
        .query_opt(
            &format!("select {TOOL_COLUMNS} from ai.tools where id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Tool not found"))?;
    Ok(json_response(StatusCode::OK, &tool_json(&row, false)))
}

async fn update_tool(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(tool_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let id = parse_id(&tool_id, "Tool not found")?;
    let client = state.db.ai.get().await?;
    let row = client
        .query_opt(
            &format!("select {TOOL_COLUMNS} from ai.tools where id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Tool not found"))?;
    let fields: Map<String, Value> = body.as_object().cloned().unwrap_or_default();
    let text = |key: &str, current: String| -> Result<String, ApiError> {
        match fields.get(key) {
            None => Ok(current),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(ApiError::bad_request(format!(
                "{key} must be a non-empty string"
            ))),
        }
    };
    let name = text("name", row.get("name"))?;
    let description = text("description", row.get("description"))?;
    let input_schema = fields
        .get("input_schema")
        .cloned()
        .unwrap_or_else(|| row.get("input_schema"));
    if !input_schema.is_object() {
        return Err(ApiError::bad_request("input_schema must be an object"));
    }
    let config = fields
        .get("config")
        .cloned()
        .unwrap_or_else(|| row.get("config"));
    check_config(&row.get::<_, String>("type"), &config)?;
    client
        .execute(
            "update ai.tools set name = $2, description = $3, input_schema = $4, config = $5, updated_at = now()
              where id = $1",
            &[&id, &name, &description, &input_schema, &config],
        )
        .await
        .map_err(|e| if e.code() == Some(&SqlState::UNIQUE_VIOLATION) { conflict(&name) } else { e.into() })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id.to_string(), "name": name}),
    ))
}

async fn delete_tool(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(tool_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&tool_id, "Tool not found")?;
    let client = state.db.ai.get().await?;
    let deleted = client
        .execute("delete from ai.tools where id = $1", &[&id])
        .await?;
    if deleted == 0 {
        return Err(ApiError::not_found("Tool not found"));
    }
    Ok(json_response(StatusCode::OK, &json!({"deleted": true})))
}

/// The platform's builtin tools, as `GET /api/tools` lists them. The
/// sandbox's offline model never calls them.
fn builtins() -> Vec<Value> {
    let string = |description: &str| json!({"type": "string", "description": description});
    let defs = [
        (
            "database_query",
            "Run one read-only SELECT against the tables configured for this agent.",
            json!({"type": "object", "properties": {"query": string("A single SELECT statement")}, "required": ["query"]}),
        ),
        (
            "database_write",
            "Insert, update or delete rows in the tables configured for this agent.",
            json!({"type": "object", "properties": {
                "table": string("Table name"),
                "operation": {"type": "string", "enum": ["insert", "update", "delete"]},
                "data": {"type": ["object", "array"]},
                "where": {"type": "object"}}, "required": ["table", "operation"]}),
        ),
        (
            "http_request",
            "Make an HTTP request to a URL.",
            json!({"type": "object", "properties": {
                "url": string("URL"), "method": string("HTTP method"),
                "headers": {"type": "object"}, "body": {}}, "required": ["url"]}),
        ),
        (
            "code_execute",
            "Execute Python or JavaScript code in a sandbox.",
            json!({"type": "object", "properties": {
                "language": {"type": "string", "enum": ["python", "javascript"]},
                "code": string("Source code"), "timeout": {"type": "integer"}}, "required": ["language", "code"]}),
        ),
        (
            "storage_read",
            "List or download objects from Storage.",
            json!({"type": "object", "properties": {
                "operation": {"type": "string", "enum": ["list", "download"]},
                "bucket": string("Bucket"), "path": string("Object path")}, "required": ["operation", "bucket"]}),
        ),
        (
            "storage_write",
            "Write a UTF-8 text object to Storage.",
            json!({"type": "object", "properties": {
                "bucket": string("Bucket"), "path": string("Object path"),
                "content": string("Text content"), "content_type": string("MIME type")},
                "required": ["bucket", "path", "content"]}),
        ),
        (
            "web_search",
            "Search the web.",
            json!({"type": "object", "properties": {
                "query": string("Search query"), "num_results": {"type": "integer"},
                "search_type": {"type": "string", "enum": ["auto", "neural", "keyword", "deep", "deep-reasoning"]}},
                "required": ["query"]}),
        ),
        (
            "web_scrape",
            "Fetch a web page and return its content as Markdown.",
            json!({"type": "object", "properties": {"url": string("Page URL")}, "required": ["url"]}),
        ),
    ];
    defs.into_iter()
        .map(|(name, description, input_schema)| {
            json!({"id": null, "name": name, "description": description, "type": "builtin",
                   "input_schema": input_schema, "config": {}})
        })
        .collect()
}
