//! `ai.agent_runs` rows: a run is inserted as `running` before its first
//! event and updated once to `completed` or `failed`, and read
//! back for `GET /api/agents/runs/{run_id}`.
//!
//! Tool calls are kept, with their full results, in the assistant message of
//! `output_messages` (`tool_calls: [{step, tool_name, arguments, result,
//! duration_ms}]`), as the platform's `Message` carries them; the run-level
//! counters (`tool_call_count`, …) are filled alongside.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_postgres::Row;
use uuid::Uuid;

use super::events::{ToolCallRecord, Usage};
use super::model::Citation;
use crate::ai::timestamp;

/// A run about to start.
#[derive(Debug)]
pub(crate) struct NewRun<'a> {
    pub(crate) session_uuid: Uuid,
    pub(crate) run_id: &'a str,
    pub(crate) message: &'a str,
    pub(crate) retrieved_context: Option<&'a Value>,
    pub(crate) agent_id: Uuid,
    pub(crate) model: &'a str,
}

/// Inserts the run as `running`, `started_at` now.
pub(crate) async fn insert_running(
    client: &deadpool_postgres::Client,
    run: &NewRun<'_>,
) -> Result<(), tokio_postgres::Error> {
    let input = json!([{"role": "user", "content": run.message}]);
    client
        .execute(
            "insert into ai.agent_runs
                (session_id, run_id, status, input_messages, content, retrieved_context,
                 started_at, agent_id, model)
             values ($1, $2, 'running', $3, '', $4, now(), $5, $6)",
            &[
                &run.session_uuid,
                &run.run_id,
                &input,
                &run.retrieved_context,
                &run.agent_id,
                &run.model,
            ],
        )
        .await?;
    client
        .execute(
            "update ai.agent_sessions set updated_at = now() where id = $1",
            &[&run.session_uuid],
        )
        .await?;
    Ok(())
}

/// How a run ended.
#[derive(Debug)]
pub(crate) struct FinishedRun<'a> {
    pub(crate) completed: bool,
    pub(crate) content: &'a str,
    pub(crate) error: Option<&'a str>,
    /// `None` on the plain path (no loop, no steps).
    pub(crate) steps: Option<u32>,
    /// The loop's events (deltas excluded); `None` when there were none.
    pub(crate) events: Option<Value>,
    pub(crate) usage: Usage,
    pub(crate) tool_calls: &'a [ToolCallRecord],
    /// Kept on the assistant message, for `GET /api/sessions/{id}/messages`.
    pub(crate) citations: &'a [Citation],
}

/// Records the end of a run: status, content, output message, events,
/// usage and tool-call counters, `completed_at` now.
pub(crate) async fn finish(
    client: &deadpool_postgres::Client,
    run_id: &str,
    run: &FinishedRun<'_>,
) -> Result<(), tokio_postgres::Error> {
    let mut message = json!({"role": "assistant", "content": run.content});
    if !run.tool_calls.is_empty() {
        message["tool_calls"] = json!(run.tool_calls);
    }
    if !run.citations.is_empty() {
        message["citations"] = json!(run.citations);
    }
    let errors = run
        .tool_calls
        .iter()
        .filter(|c| c.result.to_lowercase().starts_with("error"))
        .count();
    let duration: u64 = run.tool_calls.iter().map(|c| c.duration_ms).sum();
    let status = if run.completed { "completed" } else { "failed" };
    let u = run.usage;
    client
        .execute(
            "update ai.agent_runs set
                status = $2, content = $3, output_messages = $4, error = $5, steps = $6, events = $7,
                prompt_tokens = $8, completion_tokens = $9, reasoning_tokens = $10, cached_tokens = $11,
                total_tokens = $12, tool_call_count = $13, tool_call_error_count = $14,
                tool_call_duration_ms_total = $15, completed_at = now()
              where run_id = $1",
            &[
                &run_id,
                &status,
                &run.content,
                &json!([message]),
                &run.error,
                &run.steps.map(|s| s as i32),
                &run.events,
                &(u.prompt_tokens as i32),
                &(u.completion_tokens as i32),
                &(u.reasoning_tokens as i32),
                &(u.cached_tokens as i32),
                &(u.total_tokens as i32),
                &(run.tool_calls.len() as i32),
                &(errors as i32),
                &(duration as i64),
            ],
        )
        .await?;
    Ok(())
}

/// Marks a run `failed` with `error` (when it broke before finishing).
pub(crate) async fn fail(
    client: &deadpool_postgres::Client,
    run_id: &str,
    error: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "update ai.agent_runs set status = 'failed', error = $2, completed_at = now()
              where run_id = $1 and status in ('pending', 'running')",
            &[&run_id, &error],
        )
        .await?;
    Ok(())
}

/// Columns [`run_json`] reads, prefixed for a query on `ai.agent_runs r`.
pub(crate) const RUN_COLUMNS: &str = "r.id, r.run_id, r.session_id, r.parent_orchestration_run_id,
    r.parent_workflow_execution_id, r.status, r.input_messages, r.output_messages, r.content,
    r.retrieved_context, r.error, r.started_at, r.completed_at, r.steps, r.events, r.reasoning_steps,
    r.created_at, r.prompt_tokens, r.completion_tokens, r.reasoning_tokens, r.cached_tokens, r.total_tokens";

/// A run as `GET /api/agents/runs/{run_id}` shows it. `session_id` is the
/// session's internal UUID, as on the platform.
pub(crate) fn run_json(row: &Row) -> Value {
    let uuid_str = |col: &str| row.get::<_, Option<Uuid>>(col).map(|u| u.to_string());
    let time = |col: &str| row.get::<_, Option<DateTime<Utc>>>(col).map(timestamp);
    let tokens = |col: &str| row.get::<_, Option<i32>>(col);
    let usage = if tokens("total_tokens").is_some() || tokens("prompt_tokens").is_some() {
        json!({
            "prompt_tokens": tokens("prompt_tokens"),
            "completion_tokens": tokens("completion_tokens"),
            "reasoning_tokens": tokens("reasoning_tokens"),
            "cached_tokens": tokens("cached_tokens"),
            "total_tokens": tokens("total_tokens"),
        })
    } else {
        Value::Null
    };
    let output: Option<Value> = row.get("output_messages");
    let tool_calls = output
        .as_ref()
        .and_then(|o| o.as_array())
        .and_then(|messages| messages.iter().find_map(|m| m.get("tool_calls").cloned()))
        .unwrap_or_else(|| json!([]));
    json!({
        "id": row.get::<_, Uuid>("id").to_string(),
        "run_id": row.get::<_, String>("run_id"),
        "session_id": uuid_str("session_id"),
        "parent_orchestration_run_id": uuid_str("parent_orchestration_run_id"),
        "parent_workflow_execution_id": uuid_str("parent_workflow_execution_id"),
        "status": row.get::<_, String>("status"),
        "input_messages": row.get::<_, Option<Value>>("input_messages"),
        "output_messages": output,
        "content": row.get::<_, Option<String>>("content"),
        "usage": usage,
        "retrieved_context": row.get::<_, Option<Value>>("retrieved_context"),
        "error": row.get::<_, Option<String>>("error"),
        "started_at": time("started_at"),
        "completed_at": time("completed_at"),
        "steps": row.get::<_, Option<i32>>("steps"),
        "events": row.get::<_, Option<Value>>("events"),
        "tool_calls": tool_calls,
        "reasoning_steps": row.get::<_, Option<Value>>("reasoning_steps"),
        "created_at": time("created_at"),
    })
}
