//! One agent run, from its context to its persisted row (`run`, `run/stream`;
//! docs/platform-contract.md).
//!
//! A run executes in a task of its own ([`spawn`]): the HTTP response only
//! reads what the task sends, so a client that disconnects mid-stream stops
//! nothing — the run goes on, and ends `completed` (or `failed`) in
//! `ai.agent_runs` all the same. (The platform finishes the plain path in the
//! background too; on its tool path it raises an abort signal instead. The
//! sandbox always finishes: Quire's companion persists its answer whatever
//! the client does.)
//!
//! The steps:
//! 1. bind the session ([`sessions::bind`]); refused ⇒ the stream's only
//!    event is `{"event":"error","error":"Session not found"}` (404 on `/run`);
//! 2. gather the context: `context_items` (by reference from `ai.chunks`),
//!    `context_override`, or a full-text pre-retrieval from `knowledge_bases`;
//! 3. persist the run as `running`, send `start`;
//! 4. let the model answer — the offline one ([`super::model`]) or, when
//!    configured, an OpenAI-compatible one ([`super::llm`]). On the
//!    tool path (the agent has tools, streaming only) each model call is a
//!    step: `step_started`, `content_delta`s, the tool calls (`tool_call`,
//!    the HTTP call, `tool_result`), `step_completed`; on the plain path
//!    there are only the deltas;
//! 5. send `chunk` with the whole answer;
//! 6. persist `completed` (or `failed`, when the model failed) with content,
//!    events, usage, tool calls and citations; send `complete`. Any other
//!    failure on the way: the row is marked `failed` and the stream ends
//!    with `error`.

use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::definitions::Agent;
use super::events::{
    CompleteDetails, LoopClock, LoopMeta, ResultMeta, StreamEvent, ToolCallRecord, Usage, preview,
};
use super::guard::ToolClient;
use super::http_tool::{self, HttpToolConfig};
use super::llm::{Llm, LlmToolCall};
use super::model::{self, Citation, ContextItem, ToolSpec};
use super::request::{ContextSource, KnowledgeBaseRequest, RawItem, RunRequest};
use super::sessions::{self, BindError, BoundSession, SESSION_NOT_FOUND};
use super::store::{self, FinishedRun, NewRun};
use super::tools::{self, CustomTool};
use super::{call_id, text};
use crate::ai::ApiCaller;
use crate::state::AppState;

/// Default `top_k` of a knowledge-base pre-retrieval (`KB_DEFAULT_TOP_K`).
const DEFAULT_TOP_K: i64 = 5;

/// Everything a run needs, checked before it starts.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) agent: Agent,
    pub(crate) request: RunRequest,
    pub(crate) caller: ApiCaller,
    pub(crate) run_id: String,
    /// `/run/stream` (tools, pacing) rather than `/run`.
    pub(crate) streaming: bool,
}

/// How a run ended, for `/run`'s JSON answer.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The session was missing or not the caller's; nothing was persisted.
    SessionNotFound,
    Finished(Box<Finished>),
    /// The run broke; it is `failed` in the database.
    Failed {
        run_id: String,
        error: String,
    },
}

/// A run that ran to its end.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) run_id: String,
    pub(crate) session_id: String,
    pub(crate) is_new_session: bool,
    /// `completed`, or `failed` when the model failed.
    pub(crate) status: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) content: String,
    pub(crate) usage: Usage,
    pub(crate) retrieved_items: usize,
    /// Present when citations were enabled and the run had context items.
    pub(crate) citation_candidates: Option<Vec<Citation>>,
    pub(crate) citations: Vec<Citation>,
}

/// Starts the run in its own task. Stream frames go to `frames` (if any); a
/// closed receiver is ignored.
pub(crate) fn spawn(
    state: AppState,
    prepared: Prepared,
    frames: Option<UnboundedSender<String>>,
) -> JoinHandle<Outcome> {
    tokio::spawn(run(state, prepared, Emitter { frames }))
}

struct Emitter {
    frames: Option<UnboundedSender<String>>,
}

impl Emitter {
    fn send(&self, event: &StreamEvent) {
        if let Some(frames) = &self.frames {
            // The client may be gone; the run goes on regardless.
            let _ = frames.send(event.frame());
        }
    }
}

async fn run(state: AppState, prepared: Prepared, emit: Emitter) -> Outcome {
    let run_id = prepared.run_id.clone();
    match execute(&state, &prepared, &emit).await {
        Ok(outcome) => outcome,
        Err(err) => {
            let error = format!("{err:#}");
            tracing::error!(%run_id, %error, "agent run failed");
            match state.db.ai.get().await {
                Ok(client) => {
                    if let Err(e) = store::fail(&client, &run_id, &error).await {
                        tracing::error!(%run_id, error = %e, "could not mark the run failed");
                    }
                }
                Err(e) => tracing::error!(%run_id, error = %e, "could not mark the run failed"),
            }
            emit.send(&StreamEvent::Error {
                error: error.clone(),
                run_id: Some(run_id.clone()),
                context_handler_id: Some(None),
            });
            Outcome::Failed { run_id, error }
        }
    }
}

/// The run's context, gathered from the request.
#[derive(Debug, Default)]
struct Gathered {
    items: Vec<ContextItem>,
    text: Option<String>,
    /// What `agent_runs.retrieved_context` records.
    retrieved_context: Option<Value>,
}

async fn execute(state: &AppState, prepared: &Prepared, emit: &Emitter) -> anyhow::Result<Outcome> {
    let Prepared {
        agent,
        request,
        caller,
        run_id,
        streaming,
    } = prepared;
    let client = state
        .db
        .ai
        .get()
        .await
        .context("connecting to the database")?;

    let session =
        match sessions::bind(&client, agent.id, request.session_id.as_deref(), caller).await {
            Ok(session) => session,
            Err(BindError::NotFound) => {
                emit.send(&StreamEvent::Error {
                    error: SESSION_NOT_FOUND.to_owned(),
                    run_id: None,
                    context_handler_id: None,
                });
                return Ok(Outcome::SessionNotFound);
            }
            Err(BindError::Db(e)) => anyhow::bail!("binding the session: {e:?}"),
        };
    let gathered = gather(&client, &request.context, &request.message).await?;
    let (custom_tools, has_tools) = if *streaming {
        tools::assigned(&client, agent.id)
            .await
            .map_err(|e| anyhow::anyhow!("loading the agent's tools: {e:?}"))?
    } else {
        (Vec::new(), false)
    };
    let react = *streaming && has_tools;

    let cite = request.citations_enabled;
    let candidates: Option<Vec<Citation>> = (cite && !gathered.items.is_empty()).then(|| {
        gathered
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| Citation::of_item(i, item, 0.0))
            .collect()
    });

    store::insert_running(
        &client,
        &NewRun {
            session_uuid: session.uuid,
            run_id,
            message: &request.message,
            retrieved_context: gathered.retrieved_context.as_ref(),
            agent_id: agent.id,
            model: &agent.model,
        },
    )
    .await
    .context("persisting the run")?;
    drop(client);

    emit.send(&StreamEvent::Start {
        run_id: run_id.clone(),
        session_id: session.session_id.clone(),
        context_handler_id: None,
        reasoning_requested: false,
        citation_candidates: if react { None } else { candidates.clone() },
    });

    let specs: Vec<ToolSpec> = custom_tools
        .iter()
        .map(|t| ToolSpec {
            name: t.name.clone(),
            input_schema: t.input_schema.clone(),
        })
        .collect();
    let mut lp = Loop::default();
    let turn = Turn {
        state,
        prepared,
        gathered: &gathered,
        tools: &custom_tools,
        react,
        emit,
    };
    let generated = match Llm::from_config(&state.config.agents) {
        None => turn.offline(&specs, &mut lp).await,
        Some(llm) => turn.with_model(&llm, session.uuid, &mut lp).await?,
    };

    emit_answer(emit, run_id, react, &generated);
    persist_finished(state, run_id, react, &generated, &lp).await?;
    Ok(complete(
        emit, prepared, &session, &gathered, react, candidates, generated,
    ))
}

/// The answer's `chunk`, and on the plain path a failed run's `error`.
fn emit_answer(emit: &Emitter, run_id: &str, react: bool, generated: &Generated) {
    // The tool path's `chunk` is what was streamed; the plain path's is the
    // answer after its markers were checked (as on the platform).
    if react {
        emit.send(&StreamEvent::Chunk {
            content: generated.streamed.clone(),
        });
    } else if !generated.content.is_empty() {
        emit.send(&StreamEvent::Chunk {
            content: generated.content.clone(),
        });
    }
    if let (false, Some(error)) = (react, &generated.error) {
        // The plain path announces a failed run before `complete`, as the platform does.
        emit.send(&StreamEvent::Error {
            error: error.clone(),
            run_id: Some(run_id.to_owned()),
            context_handler_id: None,
        });
    }
}

/// Records the finished (or failed) run in `ai.agent_runs`.
async fn persist_finished(
    state: &AppState,
    run_id: &str,
    react: bool,
    generated: &Generated,
    lp: &Loop,
) -> anyhow::Result<()> {
    let client = state
        .db
        .ai
        .get()
        .await
        .context("connecting to the database")?;
    store::finish(
        &client,
        run_id,
        &FinishedRun {
            completed: generated.error.is_none(),
            content: &generated.content,
            error: generated.error.as_deref(),
            steps: react.then_some(generated.steps),
            events: (!lp.persisted.is_empty()).then(|| Value::Array(lp.persisted.clone())),
            usage: generated.usage,
            tool_calls: &generated.tool_calls,
            citations: &generated.citations,
        },
    )
    .await
    .context("persisting the finished run")?;

    Ok(())
}

/// Emits `complete` and gives the run's outcome.
fn complete(
    emit: &Emitter,
    prepared: &Prepared,
    session: &BoundSession,
    gathered: &Gathered,
    react: bool,
    candidates: Option<Vec<Citation>>,
    generated: Generated,
) -> Outcome {
    let run_id = &prepared.run_id;
    let retrieved_items = gathered
        .retrieved_context
        .as_ref()
        .and_then(Value::as_array)
        .map_or(0, |rc| rc.len().saturating_sub(1));
    let details = if react {
        CompleteDetails::React {
            steps: generated.steps,
            tool_calls: generated.tool_calls.clone(),
            usage: generated.usage,
        }
    } else {
        CompleteDetails::Plain {
            context_handler_id: None,
            retrieved_items,
            is_new_session: session.is_new,
        }
    };
    let status = if generated.error.is_none() {
        "completed"
    } else {
        "failed"
    };
    emit.send(&StreamEvent::Complete {
        run_id: run_id.clone(),
        session_id: session.session_id.clone(),
        content: generated.content.clone(),
        status: status.to_owned(),
        error: generated.error.clone(),
        details,
        citations: (!generated.citations.is_empty()).then(|| generated.citations.clone()),
    });

    Outcome::Finished(Box::new(Finished {
        run_id: run_id.clone(),
        session_id: session.session_id.clone(),
        is_new_session: session.is_new,
        status,
        error: generated.error,
        content: generated.content,
        usage: generated.usage,
        retrieved_items,
        citation_candidates: candidates,
        citations: generated.citations,
    }))
}

/// What the model produced in a run.
#[derive(Debug, Default)]
struct Generated {
    /// The answer, citation markers checked.
    content: String,
    /// The `content_delta`s put together.
    streamed: String,
    citations: Vec<Citation>,
    /// Steps of the agent loop (1 without tool calls).
    steps: u32,
    tool_calls: Vec<ToolCallRecord>,
    usage: Usage,
    /// Set when the model failed; the run is then `failed`.
    error: Option<String>,
}

/// One run's turn of the model: what it reads and where its events go.
struct Turn<'a> {
    state: &'a AppState,
    prepared: &'a Prepared,
    gathered: &'a Gathered,
    tools: &'a [CustomTool],
    /// The tool path (agent loop events, tools offered to the model).
    react: bool,
    emit: &'a Emitter,
}

impl Turn<'_> {
    fn delta_meta(&self, lp: &mut Loop) -> LoopMeta {
        if self.react {
            lp.clock.next("content_delta")
        } else {
            LoopClock::plain("content_delta")
        }
    }

    /// The offline model: at most one round of tool calls, then an
    /// extractive answer streamed word by word at the configured pace.
    async fn offline(&self, specs: &[ToolSpec], lp: &mut Loop) -> Generated {
        let Prepared { request, .. } = self.prepared;
        let emit = self.emit;
        let (step, tool_calls) = self.offline_tool_round(specs, lp).await;
        let tool_results: Vec<String> = tool_calls.iter().map(|c| c.result.clone()).collect();
        let answer = model::answer(
            &request.message,
            model::Context {
                items: &self.gathered.items,
                text: self.gathered.text.as_deref(),
                tool_results: &tool_results,
                tools: specs,
            },
            request.citations_enabled,
        );
        let deltas = model::deltas(&answer.content);
        let delay = self.state.config.agents.token_delay();
        for delta in &deltas {
            if self.prepared.streaming && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let meta = self.delta_meta(lp);
            emit.send(&StreamEvent::ContentDelta {
                meta,
                delta: delta.clone(),
            });
        }
        if self.react {
            lp.emit(emit, "step_completed", |meta| StreamEvent::StepCompleted {
                meta,
                step,
                finish_reason: "stop".to_owned(),
                has_tool_calls: false,
            });
        }

        let usage = self.offline_usage(&tool_results, deltas.len() as u64);
        Generated {
            streamed: answer.content.clone(),
            content: answer.content,
            citations: answer.citations,
            steps: step,
            tool_calls,
            usage,
            error: None,
        }
    }

    /// The offline model's one round of tool calls on the tool path: the
    /// step the answer comes in, and the calls made.
    async fn offline_tool_round(
        &self,
        specs: &[ToolSpec],
        lp: &mut Loop,
    ) -> (u32, Vec<ToolCallRecord>) {
        let Prepared { agent, request, .. } = self.prepared;
        let emit = self.emit;
        let mut step = 1;
        let mut tool_calls: Vec<ToolCallRecord> = Vec::new();
        if self.react {
            lp.emit(emit, "step_started", |meta| StreamEvent::StepStarted {
                meta,
                step,
                is_last_step: false,
            });
            let instructions = instructions(agent, self.gathered);
            let planned = model::plan_tool_calls(&request.message, &instructions, specs);
            if !planned.is_empty() {
                for call in planned {
                    let record = call_tool(
                        self.state,
                        self.tools,
                        &call.tool_name,
                        call_id(),
                        call.arguments,
                        step,
                        lp,
                        emit,
                    )
                    .await;
                    tool_calls.push(record);
                }
                lp.emit(emit, "step_completed", |meta| StreamEvent::StepCompleted {
                    meta,
                    step,
                    finish_reason: "tool_calls".to_owned(),
                    has_tool_calls: true,
                });
                step += 1;
                lp.emit(emit, "step_started", |meta| StreamEvent::StepStarted {
                    meta,
                    step,
                    is_last_step: false,
                });
            }
        }

        (step, tool_calls)
    }

    /// Token counts estimated from the prompt the offline model read.
    fn offline_usage(&self, tool_results: &[String], completion_tokens: u64) -> Usage {
        let Prepared { agent, request, .. } = self.prepared;
        let prompt = format!(
            "{}\n{}\n{}\n{}\n{}",
            agent.system_prompt.as_deref().unwrap_or_default(),
            self.gathered.text.as_deref().unwrap_or_default(),
            self.gathered
                .items
                .iter()
                .map(|i| i.text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            tool_results.join("\n"),
            request.message,
        );
        let prompt_tokens = model::estimate_tokens(&prompt);
        Usage {
            prompt_tokens,
            completion_tokens,
            reasoning_tokens: 0,
            cached_tokens: 0,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }

    /// The OpenAI-compatible model: the platform's prompt (system prompt,
    /// `Context:`, the citation instruction), the session's history, and an
    /// agent loop of up to `settings.max_steps` (25) calls, the last one
    /// without tools. A model failure fails the run.
    async fn with_model(
        &self,
        llm: &Llm,
        session: Uuid,
        lp: &mut Loop,
    ) -> anyhow::Result<Generated> {
        let Prepared { agent, request, .. } = self.prepared;
        let emit = self.emit;
        let cite = request.citations_enabled;

        let mut messages = self.model_messages(session).await?;
        let offered = self.offered_tools();
        let max_steps = agent
            .settings
            .get("max_steps")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_MAX_STEPS)
            .clamp(1, 100) as u32;

        let mut generated = Generated::default();
        let mut step = 1;
        loop {
            let last = step >= max_steps;
            if self.react {
                lp.emit(emit, "step_started", |meta| StreamEvent::StepStarted {
                    meta,
                    step,
                    is_last_step: last,
                });
            }
            let step_tools: &[Value] = if last { &[] } else { &offered };
            let result = {
                let content = &mut generated.streamed;
                let react = self.react;
                let mut on_delta = |delta: &str| {
                    content.push_str(delta);
                    let meta = if react {
                        lp.clock.next("content_delta")
                    } else {
                        LoopClock::plain("content_delta")
                    };
                    emit.send(&StreamEvent::ContentDelta {
                        meta,
                        delta: delta.to_owned(),
                    });
                };
                llm.complete(http_client(), &messages, step_tools, &mut on_delta)
                    .await
            };
            let completion = match result {
                Ok(completion) => completion,
                Err(e) => {
                    tracing::warn!(run_id = %self.prepared.run_id, error = %e, "the model failed");
                    generated.error = Some(e.to_string());
                    break;
                }
            };
            if let Some(usage) = completion.usage {
                generated.usage = add(generated.usage, usage);
            }
            let calls = if self.react && !last {
                completion.tool_calls
            } else {
                Vec::new()
            };
            let has_tool_calls = !calls.is_empty();
            let finish_reason = completion
                .finish_reason
                .unwrap_or_else(|| if has_tool_calls { "tool_calls" } else { "stop" }.to_owned());
            if has_tool_calls {
                messages.push(json!({
                    "role": "assistant",
                    "content": (!completion.content.is_empty()).then_some(completion.content),
                    "tool_calls": calls.iter().map(|c| json!({
                        "id": c.id, "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments}})).collect::<Vec<_>>(),
                }));
                self.model_tool_calls(calls, step, lp, &mut messages, &mut generated)
                    .await;
            }
            if self.react {
                lp.emit(emit, "step_completed", |meta| StreamEvent::StepCompleted {
                    meta,
                    step,
                    finish_reason,
                    has_tool_calls,
                });
            }
            if !has_tool_calls {
                break;
            }
            step += 1;
        }
        generated.steps = step;
        generated.content = generated.streamed.clone();
        if cite {
            let (content, citations) =
                model::parse_citations(&generated.streamed, &self.gathered.items);
            generated.content = content;
            generated.citations = citations;
        }
        Ok(generated)
    }

    /// The model's messages: the system prompt with the context and the
    /// citation instruction, the session's history, the user's message.
    async fn model_messages(&self, session: Uuid) -> anyhow::Result<Vec<Value>> {
        let Prepared { agent, request, .. } = self.prepared;
        let cite = request.citations_enabled;
        let mut system = agent.system_prompt.clone().unwrap_or_default();
        let context = format_context(self.gathered, cite);
        if !context.is_empty() {
            system.push_str("\n\nContext:\n");
            system.push_str(&context);
        }
        if cite && (!self.gathered.items.is_empty() || self.react) {
            system.push_str("\n\n");
            system.push_str(CITATION_INSTRUCTION);
        }
        let mut messages = Vec::new();
        if !system.trim().is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(history(self.state, session).await?);
        messages.push(json!({"role": "user", "content": request.message}));

        Ok(messages)
    }

    /// The tools offered to the model (none on the plain path).
    fn offered_tools(&self) -> Vec<Value> {
        if self.react {
            self.tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.input_schema}})
                })
                .collect()
        } else {
            Vec::new()
        }
    }

    /// Calls the tools the model asked for, and answers each in `messages`.
    async fn model_tool_calls(
        &self,
        calls: Vec<LlmToolCall>,
        step: u32,
        lp: &mut Loop,
        messages: &mut Vec<Value>,
        generated: &mut Generated,
    ) {
        for call in calls {
            let arguments = serde_json::from_str::<Value>(&call.arguments)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            let id = if call.id.is_empty() {
                call_id()
            } else {
                call.id.clone()
            };
            let record = call_tool(
                self.state,
                self.tools,
                &call.name,
                id.clone(),
                arguments,
                step,
                lp,
                self.emit,
            )
            .await;
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": record.result}));
            generated.tool_calls.push(record);
        }
    }
}

/// Default `settings.max_steps` of an agent.
const DEFAULT_MAX_STEPS: u64 = 25;

/// The platform's citation instruction, appended to the system prompt when
/// citations are enabled.
const CITATION_INSTRUCTION: &str = "When referencing the provided context, include citations in brackets like \
     [1], [2]. Each citation should be in its own brackets — use [1][2], not [1, 2]. If no specific context \
     is referenced, do not include a citation. In tool results, each citable unit carries its key: a [n] \
     label before the text, or a \"cite\": \"[n]\" field on a JSON item. Cite that key.";

/// The run's context as the model reads it: the override text, or the items
/// (each labelled `[n]` when citations are enabled).
fn format_context(gathered: &Gathered, cite: bool) -> String {
    if let Some(text) = &gathered.text {
        return text.clone();
    }
    gathered
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if cite {
                format!("[{}] {}", i + 1, item.text)
            } else {
                item.text.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The session's earlier turns (completed runs only, as the platform loads
/// history), with citation markers removed from the answers.
async fn history(state: &AppState, session: Uuid) -> anyhow::Result<Vec<Value>> {
    let client = state
        .db
        .ai
        .get()
        .await
        .context("connecting to the database")?;
    let rows = client
        .query(
            "select input_messages, output_messages from ai.agent_runs
              where session_id = $1 and status = 'completed' order by created_at, id",
            &[&session],
        )
        .await
        .context("loading the session's history")?;
    let mut messages = Vec::new();
    for row in rows {
        let input: Option<Value> = row.get(0);
        let output: Option<Value> = row.get(1);
        for (value, role) in [(input, "user"), (output, "assistant")] {
            for message in value
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if message.get("role").and_then(Value::as_str) != Some(role) {
                    continue;
                }
                let content = message
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let content = if role == "assistant" {
                    model::strip_markers(content)
                } else {
                    content.to_owned()
                };
                messages.push(json!({"role": role, "content": content}));
            }
        }
    }
    Ok(messages)
}

fn add(a: Usage, b: Usage) -> Usage {
    Usage {
        prompt_tokens: a.prompt_tokens + b.prompt_tokens,
        completion_tokens: a.completion_tokens + b.completion_tokens,
        reasoning_tokens: a.reasoning_tokens + b.reasoning_tokens,
        cached_tokens: a.cached_tokens + b.cached_tokens,
        total_tokens: a.total_tokens + b.total_tokens,
    }
}

/// The agent loop's bookkeeping: numbering, and the events kept in
/// `agent_runs.events`.
#[derive(Default)]
struct Loop {
    clock: LoopClock,
    persisted: Vec<Value>,
}

impl Loop {
    fn emit(
        &mut self,
        emit: &Emitter,
        kind: &'static str,
        build: impl FnOnce(LoopMeta) -> StreamEvent,
    ) {
        let event = build(self.clock.next(kind));
        if event.is_persisted() {
            let mut value = event.to_value();
            // Kept as the loop emits them: without the SSE `event` key.
            value.as_object_mut().map(|o| o.remove("event"));
            self.persisted.push(value);
        }
        emit.send(&event);
    }
}

/// What the model reads as instructions: the system prompt and the context.
fn instructions(agent: &Agent, gathered: &Gathered) -> String {
    let mut out = agent.system_prompt.clone().unwrap_or_default();
    if let Some(text) = &gathered.text {
        out.push_str("\n\n");
        out.push_str(text);
    }
    for item in &gathered.items {
        out.push_str("\n\n");
        out.push_str(&item.text);
    }
    out
}

/// The model's client (an OpenAI-compatible endpoint the operator configured).
/// It follows no redirect: a 3xx fails the run ([`super::llm::LlmError::Redirected`]),
/// so the API key in its `Authorization` never travels to where a redirect
/// points.
fn http_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the model client's settings are valid")
    })
}

/// The custom tools' client, one per loopback allowance (sandboxes in one
/// test process may differ).
fn tool_client(allow_loopback: bool) -> &'static ToolClient {
    static STRICT: OnceLock<ToolClient> = OnceLock::new();
    static LOOPBACK: OnceLock<ToolClient> = OnceLock::new();
    let cell = if allow_loopback { &LOOPBACK } else { &STRICT };
    cell.get_or_init(|| ToolClient::new(allow_loopback))
}

#[allow(clippy::too_many_arguments)]
async fn call_tool(
    state: &AppState,
    tools: &[CustomTool],
    tool_name: &str,
    id: String,
    arguments: serde_json::Map<String, Value>,
    step: u32,
    lp: &mut Loop,
    emit: &Emitter,
) -> ToolCallRecord {
    let shown = Value::Object(arguments.clone());
    lp.emit(emit, "tool_call", |meta| StreamEvent::ToolCall {
        meta,
        step,
        tool_name: tool_name.to_owned(),
        arguments: shown.clone(),
        call_id: id.clone(),
    });
    let started = Instant::now();
    let result = match tools.iter().find(|t| t.name == tool_name) {
        Some(tool) => {
            let config = HttpToolConfig::from_config(&tool.config);
            let client = tool_client(state.config.agents.allow_loopback_tool_endpoints);
            http_tool::call(client, &config, &arguments).await
        }
        None => format!("Error: Unknown tool '{tool_name}'"),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    lp.emit(emit, "tool_result", |meta| StreamEvent::ToolResult {
        meta,
        step,
        tool_name: tool_name.to_owned(),
        call_id: id,
        result_preview: preview(&result),
        result_meta: ResultMeta {
            result_type: "text",
            char_count: result.chars().count(),
        },
        duration_ms,
    });
    ToolCallRecord {
        step,
        tool_name: tool_name.to_owned(),
        arguments: shown,
        result,
        duration_ms,
    }
}

async fn gather(
    client: &deadpool_postgres::Client,
    source: &ContextSource,
    message: &str,
) -> anyhow::Result<Gathered> {
    match source {
        ContextSource::None | ContextSource::Handler(_) => Ok(Gathered::default()),
        ContextSource::Override(text) => Ok(Gathered {
            items: Vec::new(),
            text: Some(text.clone()),
            retrieved_context: Some(
                json!([{"_type": "retrieval_diagnostics", "source": "manual_override"}]),
            ),
        }),
        ContextSource::Items(raw) => {
            let items = resolve_items(client, raw).await?;
            let retrieved_context = (!items.is_empty()).then(|| {
                let mut rc =
                    vec![json!({"_type": "retrieval_diagnostics", "source": "context_items"})];
                rc.extend(
                    items
                        .iter()
                        .map(|i| serde_json::to_value(i).expect("items serialize")),
                );
                Value::Array(rc)
            });
            Ok(Gathered {
                items,
                text: None,
                retrieved_context,
            })
        }
        ContextSource::KnowledgeBases(kbs) => search_knowledge_bases(client, kbs, message).await,
    }
}

/// By-value items as given; by-reference items looked up in `ai.chunks`
/// (with their source's name), in request order. Unknown ids are skipped,
/// as on the platform.
async fn resolve_items(
    client: &deadpool_postgres::Client,
    raw: &[RawItem],
) -> anyhow::Result<Vec<ContextItem>> {
    let ids: Vec<Uuid> = raw
        .iter()
        .filter_map(|i| match i {
            RawItem::Ref(id) => Uuid::parse_str(id).ok(),
            RawItem::Value { .. } => None,
        })
        .collect();
    let mut found = std::collections::HashMap::new();
    if !ids.is_empty() {
        let rows = client
            .query(
                "select c.id, c.text, c.source_id, c.meta, s.name
                   from ai.chunks c left join ai.sources s on s.id = c.source_id
                  where c.id = any($1)",
                &[&ids],
            )
            .await
            .context("looking up context_items")?;
        for row in rows {
            let id: Uuid = row.get(0);
            found.insert(
                id,
                ContextItem {
                    id: Some(id.to_string()),
                    text: row.get(1),
                    source_id: Some(row.get::<_, Uuid>(2).to_string()),
                    meta: row.get(3),
                    source_name: Some(row.get::<_, Option<String>>(4).unwrap_or_default()),
                },
            );
        }
    }
    Ok(raw
        .iter()
        .filter_map(|item| match item {
            RawItem::Value { text, meta } => {
                Some(ContextItem::by_value(text.clone(), meta.clone()))
            }
            RawItem::Ref(id) => Uuid::parse_str(id)
                .ok()
                .and_then(|id| found.get(&id).cloned()),
        })
        .collect())
}

/// `knowledge_bases` pre-retrieval: PostgreSQL full-text search (any of the
/// message's topic words) over each knowledge base's chunks, best `top_k`
/// first. Unknown knowledge bases contribute nothing.
async fn search_knowledge_bases(
    client: &deadpool_postgres::Client,
    kbs: &[KnowledgeBaseRequest],
    message: &str,
) -> anyhow::Result<Gathered> {
    let words = text::words(message);
    let query = words.join(" | ");
    let mut items = Vec::new();
    let mut retrieved = Vec::new();
    for kb in kbs {
        let Ok(kb_id) = Uuid::parse_str(&kb.id) else {
            continue;
        };
        let Some(config) = client
            .query_opt(
                "select retrieval_config from ai.knowledge_bases where id = $1",
                &[&kb_id],
            )
            .await
            .context("reading a knowledge base")?
        else {
            continue;
        };
        if words.is_empty() {
            continue;
        }
        let configured: Value = config.get(0);
        let top_k = kb
            .top_k
            .or_else(|| configured.get("top_k").and_then(Value::as_i64))
            .unwrap_or(DEFAULT_TOP_K)
            .clamp(1, 100);
        let rows = client
            .query(
                "select c.id, c.text, c.source_id, c.meta, s.name, ts_rank_cd(c.fts, q)::float8 as score
                   from ai.chunks c
                   left join ai.sources s on s.id = c.source_id,
                        to_tsquery('english', $2) q
                  where c.knowledge_base_id = $1 and c.fts @@ q
                  order by score desc, c.chunk_index, c.id
                  limit $3",
                &[&kb_id, &query, &top_k],
            )
            .await
            .context("searching a knowledge base")?;
        for row in rows {
            let id: Uuid = row.get(0);
            let item = ContextItem {
                id: Some(id.to_string()),
                text: row.get(1),
                source_id: Some(row.get::<_, Uuid>(2).to_string()),
                meta: row.get(3),
                source_name: Some(row.get::<_, Option<String>>(4).unwrap_or_default()),
            };
            let mut entry = serde_json::to_value(&item).expect("items serialize");
            entry["score"] = json!(row.get::<_, f64>(5));
            entry["knowledge_base_id"] = json!(kb_id.to_string());
            retrieved.push(entry);
            items.push(item);
        }
    }
    let mut rc = vec![
        json!({"_type": "retrieval_diagnostics", "source": "knowledge_bases", "total_items": items.len()}),
    ];
    rc.extend(retrieved);
    Ok(Gathered {
        items,
        text: None,
        retrieved_context: Some(Value::Array(rc)),
    })
}
