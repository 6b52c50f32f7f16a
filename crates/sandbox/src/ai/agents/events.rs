//! The events of `POST /api/agents/{id}/run/stream` and their SSE framing
//! (powabase-ai `routes/agents.py`, current platform; docs/platform-contract.md).
//!
//! Every payload has `event`. Events that come from the agent loop (the
//! "ReAct path", taken when the agent has tools) repeat it as `type` and
//! carry a per-run `seq` (1, 2, …) and an ISO-8601 `ts`; on the plain path a
//! `content_delta` carries `type` but no `seq`/`ts`. Incremental answer text
//! travels in `content_delta.delta`; `chunk` carries the whole answer once, at
//! the end; `tool_result` carries only `result_preview` (the full result is in
//! `complete.tool_calls`); `error` names its message `error`.
//!
//! A frame is `data: <json>\n\n`; a silence is broken by `: keepalive\n\n`.

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::model::Citation;

/// The comment a stream sends after a silence.
pub(crate) const KEEPALIVE: &str = ": keepalive\n\n";
/// Characters of a tool result shown in `tool_result.result_preview`.
pub(crate) const RESULT_PREVIEW_CHARS: usize = 200;

/// `type`, `seq` and `ts` of an event from the agent loop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct LoopMeta {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ts: Option<String>,
}

/// `result_meta` of a `tool_result`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ResultMeta {
    pub(crate) result_type: &'static str,
    pub(crate) char_count: usize,
}

/// One tool call as `complete.tool_calls` and `GET /api/agents/runs/{id}`
/// report it: with the full result.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct ToolCallRecord {
    pub(crate) step: u32,
    pub(crate) tool_name: String,
    pub(crate) arguments: Value,
    pub(crate) result: String,
    pub(crate) duration_ms: u64,
}

/// Token counts of a run, as the platform reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) reasoning_tokens: u64,
    pub(crate) cached_tokens: u64,
    pub(crate) total_tokens: u64,
}

/// The fields of `complete` that depend on the path the run took.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum CompleteDetails {
    /// Agent with tools: `steps`, `tool_calls` (full results), `usage`.
    React {
        steps: u32,
        tool_calls: Vec<ToolCallRecord>,
        usage: Usage,
    },
    /// Agent without tools: `context_handler_id`, `retrieved_items`, `is_new_session`.
    Plain {
        context_handler_id: Option<String>,
        retrieved_items: usize,
        is_new_session: bool,
    },
}

/// A stream event. Serialized with its name in `event`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum StreamEvent {
    /// First event: the run is persisted as `running`.
    Start {
        run_id: String,
        session_id: String,
        context_handler_id: Option<String>,
        reasoning_requested: bool,
        /// Plain path with citations enabled and context present.
        #[serde(skip_serializing_if = "Option::is_none")]
        citation_candidates: Option<Vec<Citation>>,
    },
    StepStarted {
        #[serde(flatten)]
        meta: LoopMeta,
        step: u32,
        is_last_step: bool,
    },
    ToolCall {
        #[serde(flatten)]
        meta: LoopMeta,
        step: u32,
        tool_name: String,
        arguments: Value,
        call_id: String,
    },
    ToolResult {
        #[serde(flatten)]
        meta: LoopMeta,
        step: u32,
        tool_name: String,
        call_id: String,
        result_preview: String,
        result_meta: ResultMeta,
        duration_ms: u64,
    },
    StepCompleted {
        #[serde(flatten)]
        meta: LoopMeta,
        step: u32,
        finish_reason: String,
        has_tool_calls: bool,
    },
    /// Incremental answer text; not persisted.
    ContentDelta {
        #[serde(flatten)]
        meta: LoopMeta,
        delta: String,
    },
    /// The whole answer, once, after the last delta.
    Chunk { content: String },
    Complete {
        run_id: String,
        session_id: String,
        content: String,
        status: String,
        error: Option<String>,
        #[serde(flatten)]
        details: CompleteDetails,
        #[serde(skip_serializing_if = "Option::is_none")]
        citations: Option<Vec<Citation>>,
    },
    /// A failed run, or a refused session (`{"event":"error","error":"Session not found"}`).
    Error {
        error: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        run_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        context_handler_id: Option<Option<String>>,
    },
}

impl StreamEvent {
    /// The JSON payload of the event.
    pub(crate) fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("stream events serialize")
    }

    /// The SSE frame: `data: <json>\n\n`.
    pub(crate) fn frame(&self) -> String {
        data_frame(&self.to_value())
    }

    /// True for the events the platform keeps in `agent_runs.events`: the
    /// agent loop's, except deltas.
    pub(crate) fn is_persisted(&self) -> bool {
        matches!(
            self,
            StreamEvent::StepStarted { .. }
                | StreamEvent::ToolCall { .. }
                | StreamEvent::ToolResult { .. }
                | StreamEvent::StepCompleted { .. }
        )
    }
}

/// `data: <json>\n\n`. JSON never contains a raw newline, so one `data:`
/// line always holds the whole payload.
pub(crate) fn data_frame(payload: &Value) -> String {
    format!("data: {payload}\n\n")
}

/// Numbers the agent loop's events of one run: `seq` from 1, `ts` now.
#[derive(Debug, Default)]
pub(crate) struct LoopClock {
    seq: u64,
}

impl LoopClock {
    /// The next event's `type`/`seq`/`ts`.
    pub(crate) fn next(&mut self, kind: &'static str) -> LoopMeta {
        self.seq += 1;
        LoopMeta {
            kind,
            seq: Some(self.seq),
            ts: Some(now_iso()),
        }
    }

    /// `type` alone, for the plain path's deltas.
    pub(crate) fn plain(kind: &'static str) -> LoopMeta {
        LoopMeta {
            kind,
            seq: None,
            ts: None,
        }
    }
}

/// Now, as Python's `datetime.now(UTC).isoformat()` writes it
/// (`2025-01-31T12:00:00.123456+00:00`).
pub(crate) fn now_iso() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// The first [`RESULT_PREVIEW_CHARS`] characters of a tool result.
pub(crate) fn preview(result: &str) -> String {
    result.chars().take(RESULT_PREVIEW_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn frames_are_one_data_line_and_a_blank_line() {
        let frame = StreamEvent::Chunk {
            content: "a\nb \"c\"".to_owned(),
        }
        .frame();
        assert_eq!(
            frame,
            "data: {\"content\":\"a\\nb \\\"c\\\"\",\"event\":\"chunk\"}\n\n"
        );
    }

    #[test]
    fn loop_events_carry_type_seq_and_ts() {
        let mut clock = LoopClock::default();
        let first = StreamEvent::StepStarted {
            meta: clock.next("step_started"),
            step: 1,
            is_last_step: false,
        };
        let second = StreamEvent::ContentDelta {
            meta: clock.next("content_delta"),
            delta: "Hi ".to_owned(),
        };
        let v = first.to_value();
        assert_eq!(v["event"], "step_started");
        assert_eq!(v["type"], "step_started");
        assert_eq!(v["seq"], 1);
        assert!(v["ts"].as_str().unwrap().ends_with("+00:00"));
        assert_eq!(second.to_value()["seq"], 2);
        let plain = StreamEvent::ContentDelta {
            meta: LoopClock::plain("content_delta"),
            delta: "x".to_owned(),
        };
        assert_eq!(
            plain.to_value(),
            json!({"event":"content_delta","type":"content_delta","delta":"x"})
        );
    }

    #[test]
    fn complete_flattens_the_path_details() {
        let react = StreamEvent::Complete {
            run_id: "run_1".to_owned(),
            session_id: "sess_1".to_owned(),
            content: "c".to_owned(),
            status: "completed".to_owned(),
            error: None,
            details: CompleteDetails::React {
                steps: 2,
                tool_calls: vec![],
                usage: Usage::default(),
            },
            citations: None,
        };
        let v = react.to_value();
        assert_eq!(v["steps"], 2);
        assert_eq!(v["usage"]["total_tokens"], 0);
        assert!(v.get("citations").is_none());
        assert!(v.get("error").unwrap().is_null());
        let plain = StreamEvent::Complete {
            run_id: "run_1".to_owned(),
            session_id: "sess_1".to_owned(),
            content: "c".to_owned(),
            status: "completed".to_owned(),
            error: None,
            details: CompleteDetails::Plain {
                context_handler_id: None,
                retrieved_items: 3,
                is_new_session: true,
            },
            citations: Some(vec![]),
        };
        let v = plain.to_value();
        assert_eq!(v["retrieved_items"], 3);
        assert_eq!(v["is_new_session"], true);
        assert!(v["context_handler_id"].is_null());
        assert!(v.get("steps").is_none());
    }

    #[test]
    fn error_events_have_error_not_message() {
        let v = StreamEvent::Error {
            error: "Session not found".to_owned(),
            run_id: None,
            context_handler_id: None,
        }
        .to_value();
        assert_eq!(v, json!({"event":"error","error":"Session not found"}));
        let v = StreamEvent::Error {
            error: "boom".to_owned(),
            run_id: Some("run_1".to_owned()),
            context_handler_id: Some(None),
        }
        .to_value();
        assert_eq!(
            v,
            json!({"event":"error","error":"boom","run_id":"run_1","context_handler_id":null})
        );
    }

    #[test]
    fn preview_counts_characters_not_bytes() {
        let long = "é".repeat(300);
        assert_eq!(preview(&long).chars().count(), 200);
        assert_eq!(preview("short"), "short");
    }
}
