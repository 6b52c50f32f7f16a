//! An agent's knowledge bases (service key only; powabase-ai
//! `routes/agents.py`: `assign_knowledge_base`, `list_agent_knowledge_bases`,
//! `remove_agent_knowledge_base`; table `ai.agent_knowledge_bases`).
//!
//! - `POST /api/agents/{id}/knowledge-bases` `{knowledge_base_id (req),
//!   config?}` → 201 `{id, agent_id, knowledge_base_id, config}`; 400
//!   `knowledge_base_id is required`; 409 `KB already assigned to this agent`.
//! - `GET …/knowledge-bases` → `{knowledge_bases: [{id, knowledge_base_id,
//!   config}]}` (empty for an agent that does not exist).
//! - `DELETE …/knowledge-bases/{assignment_id}` → 200 `{deleted: true}`; 404
//!   `Assignment not found` (also for another agent's assignment).
//!
//! On the platform an attached knowledge base becomes the agent's
//! `knowledge_search` tool, which searches the whole knowledge base for
//! every user alike (docs/platform/ai-api.md §5.1). The sandbox keeps the
//! assignments but builds no such tool: Quire refuses to run an agent that
//! has any (docs/platform-contract.md §5). As elsewhere in [`super`], an
//! unknown agent or knowledge base is a 404 here, where the platform lets
//! the database refuse it (a 409 there).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::definitions::Agent;
use crate::ai::{ApiError, JsonBody, ServiceRole, parse_id};
use crate::http::json_response;
use crate::state::AppState;

/// `/api/agents/{id}/knowledge-bases…`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/agents/{agent_id}/knowledge-bases", get(list).post(assign))
        .route(
            "/agents/{agent_id}/knowledge-bases/{assignment_id}",
            delete(remove),
        )
}

async fn assign(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(agent_id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Some(kb) = body
        .get("knowledge_base_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return Err(ApiError::bad_request("knowledge_base_id is required"));
    };
    let agent_id = parse_id(&agent_id, "Agent not found")?;
    let kb_id = parse_id(kb, "Knowledge base not found")?;
    let config = body.get("config").cloned().unwrap_or_else(|| json!({}));
    let client = state.db.ai.get().await?;
    if Agent::load(&client, agent_id).await?.is_none() {
        return Err(ApiError::not_found("Agent not found"));
    }
    let known = client
        .query_opt("select 1 from ai.knowledge_bases where id = $1", &[&kb_id])
        .await?;
    if known.is_none() {
        return Err(ApiError::not_found("Knowledge base not found"));
    }
    let inserted = client
        .query_one(
            "insert into ai.agent_knowledge_bases (agent_id, knowledge_base_id, config)
             values ($1, $2, $3) returning id",
            &[&agent_id, &kb_id, &config],
        )
        .await;
    let id: Uuid = match inserted {
        Ok(row) => row.get(0),
        Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "KB already assigned to this agent",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"id": id.to_string(), "agent_id": agent_id.to_string(),
                "knowledge_base_id": kb_id.to_string(), "config": config}),
    ))
}

async fn list(
    State(state): State<AppState>,
    _: ServiceRole,
    Path(agent_id): Path<String>,
) -> Result<Response, ApiError> {
    let assigned: Vec<Value> = match Uuid::parse_str(&agent_id) {
        Err(_) => Vec::new(),
        Ok(agent_id) => state
            .db
            .ai
            .get()
            .await?
            .query(
                "select id, knowledge_base_id, config from ai.agent_knowledge_bases
                  where agent_id = $1 order by created_at, id",
                &[&agent_id],
            )
            .await?
            .iter()
            .map(|row| {
                json!({
                    "id": row.get::<_, Uuid>(0).to_string(),
                    "knowledge_base_id": row.get::<_, Uuid>(1).to_string(),
                    "config": row.get::<_, Value>(2),
                })
            })
            .collect(),
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"knowledge_bases": assigned}),
    ))
}

async fn remove(
    State(state): State<AppState>,
    _: ServiceRole,
    Path((agent_id, assignment_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let agent_id = parse_id(&agent_id, "Assignment not found")?;
    let assignment_id = parse_id(&assignment_id, "Assignment not found")?;
    let removed = state
        .db
        .ai
        .get()
        .await?
        .execute(
            "delete from ai.agent_knowledge_bases where id = $1 and agent_id = $2",
            &[&assignment_id, &agent_id],
        )
        .await?;
    if removed == 0 {
        return Err(ApiError::not_found("Assignment not found"));
    }
    Ok(json_response(StatusCode::OK, &json!({"deleted": true})))
}
