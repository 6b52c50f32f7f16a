//! Agents and their tool assignments (service key only; powabase-ai
//! `routes/agents.py`).
//!
//! - `POST /api/agents` `{name (req), model?, system_prompt?, settings?}` → 201
//!   `{id, name, model, system_prompt, settings}`; `GET`, `PATCH`, `DELETE
//!   /api/agents/{id}`; `GET /api/agents` (paginated, with usage counts).
//! - `POST /api/agents/{id}/tools` `{tool_type, tool_name, tool_id?,
//!   config_override?}` → 201 `{id, tool_name}`; `GET …/tools`,
//!   `PATCH`/`DELETE …/tools/{assignment_id}`.
//!
//! Beyond the platform, which lets the database reject them, the sandbox
//! answers an unknown agent or tool with 404 and a `custom` assignment
//! without `tool_id` with 400.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_postgres::Row;
use uuid::Uuid;

use super::config::DEFAULT_AGENT_MODEL;
use super::truthy;
use crate::ai::{
    ApiError, JsonBody, ServiceRole, contains_pattern, page_bounds, parse_id, timestamp,
};
use crate::http::json_response;
use crate::state::AppState;

/// `/api/agents` and `/api/agents/{id}/tools`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/agents", get(list_agents).post(create_agent))
        .route(
            "/agents/{agent_id}",
            get(get_agent).patch(update_agent).delete(delete_agent),
        )
        .route(
            "/agents/{agent_id}/tools",
            get(list_assignments).post(assign_tool),
        )
        .route(
            "/agents/{agent_id}/tools/{assignment_id}",
            patch(update_assignment).delete(remove_assignment),
        )
}

/// An agent as runs use it.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub(crate) id: Uuid,
    pub(crate) model: String,
    pub(crate) system_prompt: Option<String>,
    pub(crate) settings: Value,
}

impl Agent {
    /// Loads an agent; `None` when there is none with that id.
    pub(crate) async fn load(
        client: &deadpool_postgres::Client,
        id: Uuid,
    ) -> Result<Option<Agent>, ApiError> {
        let row = client
            .query_opt(
                "select id, model, system_prompt, settings from ai.agents where id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| Agent {
            id: r.get(0),
            model: r.get(1),
            system_prompt: r.get(2),
            settings: r.get(3),
        }))
    }
}

fn agent_json(row: &Row) -> Value {
    json!({
        "id": row.get::<_, Uuid>("id").to_string(),
        "name": row.get::<_, String>("name"),
        "model": row.get::<_, String>("model"),
        "system_prompt": row.get::<_, Option<String>>("system_prompt"),
        "settings": row.get::<_, Value>("settings"),
        "created_at": timestamp(row.get::<_, DateTime<Utc>>("created_at")),
        "updated_at": timestamp(row.get::<_, DateTime<Utc>>("updated_at")),
    })
}

const AGENT_COLUMNS: &str = "id, name, model, system_prompt, settings, created_at, updated_at";

async fn create_agent(
    State(state): State<AppState>,
    _: ServiceRole,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let name = match body.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(ApiError::bad_request("Name is required")),
    };
    let model = match body.get("model") {
        None => DEFAULT_AGENT_MODEL.to_owned(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(ApiError::bad_request("model must be a non-empty string")),
    };
    let system_prompt = match body.get("system_prompt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ApiError::bad_request("system_prompt must be a string")),
    };
    // Top-level `temperature` and other unknown fields are dropped, as on the platform.
    let settings = body.get("settings").cloned().unwrap_or_else(|| json!({}));
    if !settings.is_object() {
        return Err(ApiError::bad_request("settings must be an object"));
    }
    let client = state.db.ai.get().await?;
    let id: Uuid = client
        .query_one(
            "insert into ai.agents (name, model, system_prompt, settings) values ($1, $2, $3, $4) returning id",
            &[&name, &model, &system_prompt, &settings],
        )
        .await?
        .get(0);
    let created = json!({
        "id": id.to_string(), "name": name, "model": model,
        "system_prompt": system_prompt, "settings": settings,
    });
    Ok(json_response(StatusCode::CREATED, &created))
}

async fn get_agent(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(agent_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&agent_id, "Agent not found")?;
    let client = state.db.ai.get().await?;
    let row = client
        .query_opt(
            &format!("select {AGENT_COLUMNS} from ai.agents where id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Agent not found"))?;
    Ok(json_response(StatusCode::OK, &agent_json(&row)))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
    q: Option<String>,
}

async fn list_agents(
    State(state): State<AppState>,
    _: ServiceRole,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page_bounds(query.limit.as_deref(), query.offset.as_deref(), 50, 200)?;
    let pattern = contains_pattern(query.q);
    let client = state.db.ai.get().await?;
    let total: i64 = client
        .query_one(
            "select count(*) from ai.agents a where $1::text is null or a.name ilike $1",
            &[&pattern],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            "select a.id, a.name, a.model, a.system_prompt, a.settings, a.created_at, a.updated_at,
                    (select count(*) from ai.agent_sessions s where s.agent_id = a.id) as session_count,
                    (select count(*) from ai.agent_runs r where r.agent_id = a.id) as total_runs,
                    (select max(r.created_at) from ai.agent_runs r where r.agent_id = a.id) as last_run_at
               from ai.agents a
              where $1::text is null or a.name ilike $1
              order by a.created_at desc, a.id
              limit $2 offset $3",
            &[&pattern, &limit, &offset],
        )
        .await?;
    let agents: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut agent = agent_json(row);
            agent["session_count"] = json!(row.get::<_, i64>("session_count"));
            agent["total_runs"] = json!(row.get::<_, i64>("total_runs"));
            agent["last_run_at"] = json!(
                row.get::<_, Option<DateTime<Utc>>>("last_run_at")
                    .map(timestamp)
            );
            agent
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"agents": agents, "total": total, "limit": limit, "offset": offset}),
    ))
}

async fn update_agent(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(agent_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let id = parse_id(&agent_id, "Agent not found")?;
    let Some(fields) = body.as_object().filter(|o| !o.is_empty()) else {
        return Err(ApiError::bad_request("No data provided"));
    };
    if !["name", "model", "system_prompt", "settings"]
        .iter()
        .any(|k| fields.contains_key(*k))
    {
        return Err(ApiError::bad_request("No valid fields to update"));
    }
    let text = |key: &str| -> Result<Option<Option<String>>, ApiError> {
        match fields.get(key) {
            None => Ok(None),
            Some(Value::Null) if key == "system_prompt" => Ok(Some(None)),
            Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
        }
    };
    let name = text("name")?;
    let model = text("model")?;
    let system_prompt = text("system_prompt")?;
    let settings = fields.get("settings").cloned();
    if settings.as_ref().is_some_and(|s| !s.is_object()) {
        return Err(ApiError::bad_request("settings must be an object"));
    }
    let client = state.db.ai.get().await?;
    let row = client
        .query_opt(
            &format!(
                "update ai.agents set
                    name = coalesce($2, name),
                    model = coalesce($3, model),
                    system_prompt = case when $4 then $5 else system_prompt end,
                    settings = coalesce($6, settings),
                    updated_at = now()
                  where id = $1
                  returning {AGENT_COLUMNS}"
            ),
            &[
                &id,
                &name.flatten(),
                &model.flatten(),
                &system_prompt.is_some(),
                &system_prompt.flatten(),
                &settings,
            ],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Agent not found"))?;
    Ok(json_response(StatusCode::OK, &agent_json(&row)))
}

async fn delete_agent(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(agent_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&agent_id, "Agent not found")?;
    let client = state.db.ai.get().await?;
    client
        .execute("delete from ai.agents where id = $1", &[&id])
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"message": "Agent deleted"}),
    ))
}

async fn assign_tool(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(agent_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let agent_id = parse_id(&agent_id, "Agent not found")?;
    let tool_type = body
        .get("tool_type")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let tool_name = body
        .get("tool_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let (Some(tool_type), Some(tool_name)) = (tool_type, tool_name) else {
        return Err(ApiError::bad_request(
            "tool_type and tool_name are required",
        ));
    };
    if !matches!(tool_type, "builtin" | "custom") {
        return Err(ApiError::bad_request(
            "tool_type must be 'builtin' or 'custom'",
        ));
    }
    let config_override = body
        .get("config_override")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if !config_override.is_object() {
        return Err(ApiError::bad_request("config_override must be an object"));
    }
    let tool_id = match (tool_type, body.get("tool_id")) {
        ("custom", Some(Value::String(raw))) => {
            Some(Uuid::parse_str(raw).map_err(|_| ApiError::not_found("Tool not found"))?)
        }
        ("custom", _) => {
            return Err(ApiError::bad_request(
                "tool_id is required for custom tools",
            ));
        }
        _ => None,
    };
    let client = state.db.ai.get().await?;
    if Agent::load(&client, agent_id).await?.is_none() {
        return Err(ApiError::not_found("Agent not found"));
    }
    if let Some(tool_id) = tool_id {
        let exists = client
            .query_opt("select 1 from ai.tools where id = $1", &[&tool_id])
            .await?;
        if exists.is_none() {
            return Err(ApiError::not_found("Tool not found"));
        }
    }
    let id: Uuid = client
        .query_one(
            "insert into ai.agent_tools (agent_id, tool_id, tool_type, tool_name, config_override)
             values ($1, $2, $3, $4, $5) returning id",
            &[
                &agent_id,
                &tool_id,
                &tool_type,
                &tool_name,
                &config_override,
            ],
        )
        .await?
        .get(0);
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"id": id.to_string(), "tool_name": tool_name}),
    ))
}

fn assignment_json(row: &Row) -> Value {
    json!({
        "id": row.get::<_, Uuid>("id").to_string(),
        "tool_type": row.get::<_, String>("tool_type"),
        "tool_name": row.get::<_, String>("tool_name"),
        "tool_id": row.get::<_, Option<Uuid>>("tool_id").map(|u| u.to_string()),
        "config_override": row.get::<_, Value>("config_override"),
    })
}

async fn list_assignments(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(agent_id): Path<String>,
) -> Result<Response, ApiError> {
    let tools: Vec<Value> = match Uuid::parse_str(&agent_id) {
        Err(_) => Vec::new(),
        Ok(agent_id) => {
            let client = state.db.ai.get().await?;
            client
                .query(
                    "select id, tool_type, tool_name, tool_id, config_override from ai.agent_tools
                      where agent_id = $1 order by created_at, id",
                    &[&agent_id],
                )
                .await?
                .iter()
                .map(assignment_json)
                .collect()
        }
    };
    Ok(json_response(StatusCode::OK, &json!({"tools": tools})))
}

async fn update_assignment(
    State(state): State<AppState>,
    _: ServiceRole,
    Path((agent_id, assignment_id)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let agent_id = parse_id(&agent_id, "Tool assignment not found")?;
    let assignment_id = parse_id(&assignment_id, "Tool assignment not found")?;
    let client = state.db.ai.get().await?;
    // Only `config_override` is read; any other key is a silent no-op.
    let config = body.get("config_override").filter(|_| truthy(Some(&body)));
    if config.is_some_and(|c| !c.is_object()) {
        return Err(ApiError::bad_request("config_override must be an object"));
    }
    let row = client
        .query_opt(
            "update ai.agent_tools set config_override = coalesce($3, config_override)
              where id = $1 and agent_id = $2
              returning id, tool_type, tool_name, tool_id, config_override",
            &[&assignment_id, &agent_id, &config],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Tool assignment not found"))?;
    let mut out = assignment_json(&row);
    out.as_object_mut().map(|o| o.remove("tool_id"));
    Ok(json_response(StatusCode::OK, &out))
}

async fn remove_assignment(
    State(state): State<AppState>,
    _: ServiceRole,
    Path((agent_id, assignment_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let agent_id = parse_id(&agent_id, "Assignment not found")?;
    let assignment_id = parse_id(&assignment_id, "Assignment not found")?;
    let client = state.db.ai.get().await?;
    let removed = client
        .execute(
            "delete from ai.agent_tools where id = $1 and agent_id = $2",
            &[&assignment_id, &agent_id],
        )
        .await?;
    if removed == 0 {
        return Err(ApiError::not_found("Assignment not found"));
    }
    Ok(json_response(StatusCode::OK, &json!({"deleted": true})).into_response())
}
