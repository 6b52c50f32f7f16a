//! Agents, custom tools, sessions and runs (`/api/agents/*`, `/api/tools`),
//! as the current platform answers them (powabase-ai `routes/agents.py`,
//! `routes/tools.py`, `auth.py`; agentic `agent/`), with an offline model
//! standing in for the LLM. docs/platform-contract.md lists the behaviours
//! Quire depends on, their source and the tests that pin them.
//!
//! Who may call what: agent, assignment and tool management need the
//! service-role key ([`super::ServiceRole`]); an end user's token works on
//! the end-user routes only — their own sessions of an agent, runs in a new
//! or their own session, and reading runs of their own sessions — with the
//! run-body restrictions of [`request`].
//!
//! - [`definitions`]: agents and their tool assignments;
//! - [`knowledge`]: the knowledge bases attached to an agent;
//! - [`tools`]: custom HTTP tools and the builtin catalogue;
//! - [`sessions`]: agent-scoped sessions and how a run binds to one;
//! - [`runs`]: `/run`, `/run/stream`, `GET /runs/{run_id}`;
//! - [`execution`]: one run, from context to persisted row, in its own task
//!   so that a client that goes away stops nothing;
//! - [`model`], [`text`]: the offline extractive model; [`llm`]: an
//!   OpenAI-compatible model instead, when one is configured;
//! - [`events`]: the SSE events and their framing;
//! - [`endpoint`], [`http_tool`]: which tool URLs are allowed, and calling them;
//!   [`guard`]: the sandbox's own, stricter check of where a tool connects.

pub(crate) mod config;
pub(crate) mod definitions;
pub(crate) mod endpoint;
pub(crate) mod events;
pub(crate) mod execution;
pub(crate) mod guard;
pub(crate) mod http_tool;
pub(crate) mod knowledge;
pub(crate) mod llm;
pub mod model;
pub(crate) mod request;
pub(crate) mod runs;
pub(crate) mod sessions;
pub(crate) mod store;
pub(crate) mod text;
pub(crate) mod tools;

use axum::Router;

pub use config::AgentsConfig;

use crate::state::AppState;

/// The agents' routes, to be merged into the `/api` router.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(definitions::router())
        .merge(knowledge::router())
        .merge(tools::router())
        .merge(sessions::router())
        .merge(runs::router())
}

/// A public id: `prefix` and 12 lowercase hex digits, as the platform makes
/// them (`run_…`, `sess_…`).
pub(crate) fn public_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &hex[..12])
}

/// A tool call id in the style of the OpenAI API the platform's models speak.
pub(crate) fn call_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("call_{}", &hex[..24])
}

/// Python truthiness of a JSON value, which is how the platform decides
/// whether a body field "is set": `null`, `false`, `0`, `""`, `[]`, `{}` are not.
pub(crate) fn truthy(value: Option<&serde_json::Value>) -> bool {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn public_ids_have_the_platform_shape() {
        let id = public_id("run");
        assert_eq!(id.len(), 16);
        assert!(id.starts_with("run_"));
        assert!(
            id[4..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(call_id().starts_with("call_"));
    }

    #[test]
    fn truthiness_is_pythons() {
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(Some(&falsy)), "{falsy}");
        }
        for t in [
            json!(true),
            json!(1),
            json!("x"),
            json!([0]),
            json!({"a": 1}),
        ] {
            assert!(truthy(Some(&t)), "{t}");
        }
        assert!(!truthy(None));
    }
}
