//! One answer, from `run/stream` to the finished `chat_messages` row.
//!
//! The run lives in its own task: the client's SSE stream is only a
//! listener, so a client that goes away stops nothing (ARCHITECTURE.md, "Ask", step 4).
//! Three things happen as each platform event arrives:
//!
//! 1. it is translated into Quire's vocabulary ([`super::events`]), the
//!    run's `session_token` and its hash are scrubbed from its strings
//!    ([`super::scrub`]), and it is sent to the client at once;
//! 2. deltas are gathered into one row per coalescing interval, other
//!    events are rows of their own, each with the next `seq`;
//! 3. rows go to the [`recorder`], a second task that hands them to the
//!    companion's [`super::writer::EventWriter`] — batching whatever queued
//!    up while the previous write was in flight, so a slow database never
//!    delays the relay; the writer writes many answers' rows in one call.
//!
//! The run ends in exactly one terminal event — `complete` (finished or
//! stopped) or `error` — written with the final row by
//! `finish_chat_answer` in one transaction, which also deletes the run's
//! tool session and gives its run slot back
//! (db/app/90_answer_bookkeeping.sql).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use quire_protocol::{Ending, SseParser};

use super::events::{ChatEvent, Citation, EventBody, EventRow, FailureCode, MessageStatus};
use super::scrub::Scrubber;
use super::writer::Finish;
use crate::error::for_person;
use crate::limits::RunSlot;
use crate::platform::{ApiCode, Auth, PlatformCitation, PlatformError, PlatformEvent};
use crate::server::AppState;
use crate::tool::TOOL_NAME;

/// Characters of a chunk quoted in a citation's `excerpt`.
const EXCERPT_CHARS: usize = 300;

/// A question, ready to be answered.
pub struct Turn {
    /// The user who asked.
    pub owner: Uuid,
    /// Their conversation.
    pub conversation_id: Uuid,
    /// The answer's `chat_messages` row (`streaming`).
    pub message_id: Uuid,
    /// The question's `chat_messages` row.
    pub user_message_id: Uuid,
    /// The conversation's platform session (`sess_…`).
    pub session_id: String,
    /// The question, checked ([`super::ChatRequest::parse`]).
    pub question: String,
    /// The user's own chunks, re-read under their identity, in the order
    /// the client ranked them. Context item `n` (1-based) is `context[n-1]`.
    pub context: Vec<ContextChunk>,
    /// Chunk ids the client sent that the user's RLS did not return.
    pub dropped: usize,
    /// The run's `session_token`.
    pub token: SecretString,
    /// Its hash: the `tool_sessions` key.
    pub token_hash: String,
    /// When the question reached the companion.
    pub arrived: Instant,
}

/// A chunk given to the agent as a by-value context item.
#[derive(Debug, Clone, Serialize)]
pub struct ContextChunk {
    /// `document_chunks.id`: the id the client sent.
    pub id: Uuid,
    /// The user's document the chunk is from.
    pub document_id: Uuid,
    /// The platform's `ai.chunks` id.
    pub chunk_id: Uuid,
    /// The first page the chunk spans (`None` when the platform knew no
    /// pages).
    pub page: Option<i32>,
    /// The last page the chunk spans (equal to `page` for one page).
    pub page_end: Option<i32>,
    /// The document's title.
    pub title: String,
    /// The chunk's text, given to the agent; never sent to the client.
    #[serde(skip)]
    pub text: String,
}

impl ContextChunk {
    /// The chunk as a `context` event names it (without its text), and as
    /// `chat_messages.sources` keeps it.
    pub fn to_event(&self) -> quire_protocol::ContextChunk {
        quire_protocol::ContextChunk {
            id: self.id,
            document_id: self.document_id,
            chunk_id: Some(self.chunk_id),
            page: self.page,
            page_end: self.page_end,
            title: self.title.clone(),
        }
    }
}

/// Why a run was asked to end early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its owner pressed Stop here.
    User,
    /// The answer's row left `streaming` (Stop reached another companion).
    Elsewhere,
    /// The companion is shutting down.
    Shutdown,
}

/// How to stop a run, shared with the registry.
#[derive(Debug, Default)]
pub struct RunControl {
    cancel: CancellationToken,
    reason: Mutex<Option<StopReason>>,
}

impl RunControl {
    /// Asks the run to end; the first reason given wins.
    pub fn stop(&self, reason: StopReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(reason);
        self.cancel.cancel();
    }

    fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The runs of this process, by answer id.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    inner: Arc<Mutex<HashMap<Uuid, RunEntry>>>,
    /// Woken whenever a run leaves the registry.
    removed: Arc<Notify>,
}

#[derive(Debug, Clone)]
struct RunEntry {
    owner: Uuid,
    control: Arc<RunControl>,
    /// The final status once persisted.
    done: watch::Receiver<Option<String>>,
}

impl Runs {
    fn insert(&self, message_id: Uuid, entry: RunEntry) {
        self.lock().insert(message_id, entry);
    }

    fn remove(&self, message_id: Uuid) {
        self.lock().remove(&message_id);
        self.removed.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, RunEntry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops `owner`'s run of answer `message_id` if this process runs it,
    /// and waits (up to `wait`) for its final status. `None` when no such
    /// run is here.
    pub async fn stop(&self, message_id: Uuid, owner: Uuid, wait: Duration) -> Option<String> {
        let entry = self.lock().get(&message_id).cloned()?;
        if entry.owner != owner {
            return None;
        }
        entry.control.stop(StopReason::User);
        let mut done = entry.done;
        let finished = tokio::time::timeout(wait, done.wait_for(Option::is_some)).await;
        match finished {
            Ok(Ok(status)) => status.clone(),
            _ => Some("stopped".to_owned()),
        }
    }

    /// Waits until no run is in flight (`true`) or `grace` has passed
    /// (`false`). Runs go on undisturbed meanwhile.
    pub async fn wait_idle(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        loop {
            let removed = self.removed.notified();
            tokio::pin!(removed);
            removed.as_mut().enable();
            if self.is_empty() {
                return true;
            }
            tokio::select! {
                () = removed => {}
                () = tokio::time::sleep_until(deadline) => return self.is_empty(),
            }
        }
    }

    /// Ends every run (shutdown: `failed`, `interrupted`, text kept) —
    /// including any a request in flight starts meanwhile — and waits until
    /// all are persisted or `wait` has passed.
    pub async fn stop_all(&self, wait: Duration) {
        let all = async {
            loop {
                let entries: Vec<RunEntry> = self.lock().values().cloned().collect();
                if entries.is_empty() {
                    return;
                }
                for entry in &entries {
                    entry.control.stop(StopReason::Shutdown);
                }
                for entry in entries {
                    let mut done = entry.done;
                    let _ = done.wait_for(Option::is_some).await;
                }
            }
        };
        let _ = tokio::time::timeout(wait, all).await;
    }

    /// How many of `owner`'s runs are in flight here.
    pub fn running_for(&self, owner: Uuid) -> usize {
        self.lock().values().filter(|e| e.owner == owner).count()
    }

    /// How many runs are in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no run is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Starts answering `turn` in the background; its events go to `client`.
/// `place` (among the answers this companion runs at once) is held until
/// the run has ended.
pub fn start(
    state: &AppState,
    turn: Turn,
    client: mpsc::UnboundedSender<ChatEvent>,
    slot: RunSlot,
    place: OwnedSemaphorePermit,
) {
    let control = Arc::new(RunControl::default());
    let (done_tx, done_rx) = watch::channel(None);
    state.runs.insert(
        turn.message_id,
        RunEntry {
            owner: turn.owner,
            control: control.clone(),
            done: done_rx,
        },
    );
    let state = state.clone();
    tokio::spawn(async move {
        // Given back when the task ends: the run done, or its panic unwound.
        let _place = place;
        run(&state, turn, client, control, slot, done_tx).await;
    });
}

/// How the platform's stream ended.
enum Outcome {
    Complete {
        content: Option<String>,
        citations: Vec<PlatformCitation>,
    },
    Failed {
        code: FailureCode,
        message: String,
    },
    Stopped(StopReason),
}

impl Outcome {
    /// How `/metrics` counts the run ([`crate::metrics`]).
    fn label(&self) -> &'static str {
        match self {
            Outcome::Complete { .. } => "complete",
            Outcome::Failed { .. } => "failed",
            Outcome::Stopped(StopReason::Shutdown) => "interrupted",
            Outcome::Stopped(StopReason::User | StopReason::Elsewhere) => "stopped",
        }
    }
}

/// What the recorder is given.
enum Record {
    Rows(Vec<EventRow>, String),
    Finish {
        rows: Vec<EventRow>,
        status: MessageStatus,
        content: String,
        citations: Vec<Citation>,
        run_id: Option<String>,
        error: Option<String>,
    },
}

/// Sends events to the client and rows to the recorder, numbering them.
struct Emitter {
    message_id: Uuid,
    conversation_id: Uuid,
    next_seq: i32,
    interval: Duration,
    group: Option<Group>,
    content: String,
    client: Option<mpsc::UnboundedSender<ChatEvent>>,
    /// The client gets at most one delta event per this long: the first
    /// piece at once, the pieces that follow it sooner held and sent
    /// together ([`Config::relay_interval`](crate::config::Config)).
    relay_every: Duration,
    /// Pieces held for the client, all of the current row.
    relay_held: Option<Held>,
    /// When the next piece may go to the client at once.
    relay_next: Instant,
    recorder: mpsc::UnboundedSender<Record>,
    /// Keeps the run's token and its hash out of everything sent on.
    scrub: Scrubber,
}

/// Pieces of row `seq` not sent to the client yet; they go at `due`.
struct Held {
    seq: i32,
    text: String,
    due: Instant,
}

/// The deltas of the current coalescing interval: one row.
struct Group {
    seq: i32,
    text: String,
    deadline: Instant,
}

impl Emitter {
    fn event(&self, seq: i32, body: EventBody) -> ChatEvent {
        ChatEvent {
            message_id: self.message_id,
            conversation_id: self.conversation_id,
            seq,
            body,
        }
    }

    fn send_to_client(&mut self, event: ChatEvent) {
        if let Some(client) = &self.client
            && client.send(event).is_err()
        {
            tracing::debug!(message_id = %self.message_id, "the client went away; the run goes on");
            self.client = None;
        }
    }

    fn take_seq(&mut self) -> i32 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// A non-delta, non-terminal event.
    fn emit(&mut self, body: EventBody) {
        self.release_held();
        let body = self.scrub.clean_event(body);
        self.close_group();
        let seq = self.take_seq();
        self.send_to_client(self.event(seq, body.clone()));
        let _ = self.recorder.send(Record::Rows(
            vec![EventRow { seq, body }],
            self.content.clone(),
        ));
    }

    /// A piece of the answer from the platform, scrubbed ([`Scrubber::push`]).
    fn delta(&mut self, text: &str) {
        let text = self.scrub.push(text);
        self.relay_delta(&text);
    }

    /// Relays what the scrubber held back: the text so far is then whole.
    fn release_held(&mut self) {
        let held = self.scrub.flush();
        self.relay_delta(&held);
    }

    /// Relays a scrubbed piece and adds it to the current row.
    fn relay_delta(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let now = Instant::now();
        if self.group.as_ref().is_none_or(|g| now >= g.deadline) {
            self.close_group();
            let seq = self.take_seq();
            self.group = Some(Group {
                seq,
                text: String::new(),
                deadline: now + self.interval,
            });
        }
        let group = self.group.as_mut().expect("opened above");
        group.text.push_str(text);
        let seq = group.seq;
        self.content.push_str(text);
        if let Some(held) = &mut self.relay_held {
            held.text.push_str(text);
        } else if now >= self.relay_next {
            self.relay_next = now + self.relay_every;
            let piece = EventBody::Delta {
                text: text.to_owned(),
            };
            self.send_to_client(self.event(seq, piece));
        } else {
            self.relay_held = Some(Held {
                seq,
                text: text.to_owned(),
                due: self.relay_next,
            });
        }
    }

    /// Sends the client the pieces held for it.
    fn relay_now(&mut self) {
        if let Some(held) = self.relay_held.take() {
            self.relay_next = Instant::now() + self.relay_every;
            let piece = EventBody::Delta { text: held.text };
            self.send_to_client(self.event(held.seq, piece));
        }
    }

    /// What is due at [`Emitter::deadline`]: held pieces go to the client,
    /// an interval's row to the recorder.
    fn on_deadline(&mut self) {
        let now = Instant::now();
        if self.relay_held.as_ref().is_some_and(|h| now >= h.due) {
            self.relay_now();
        }
        if self.group.as_ref().is_some_and(|g| now >= g.deadline) {
            self.close_group();
        }
    }

    /// Ends the current delta row and hands it to the recorder; the client
    /// gets what was held of it first, so that it never sees a later row
    /// before all of this one.
    fn close_group(&mut self) {
        self.relay_now();
        if let Some(group) = self.group.take() {
            let _ = self.recorder.send(Record::Rows(
                vec![EventRow {
                    seq: group.seq,
                    body: EventBody::Delta { text: group.text },
                }],
                self.content.clone(),
            ));
        }
    }

    fn deadline(&self) -> Option<Instant> {
        let held = self.relay_held.as_ref().map(|h| h.due);
        let group = self.group.as_ref().map(|g| g.deadline);
        held.into_iter().chain(group).min()
    }

    /// The terminal event (`body`) and the final row.
    fn finish(
        &mut self,
        body: EventBody,
        status: MessageStatus,
        content: String,
        citations: Vec<Citation>,
        run_id: Option<String>,
        error: Option<String>,
    ) {
        self.release_held();
        let body = self.scrub.clean_event(body);
        let content = self.scrub.clean(&content);
        self.close_group();
        let seq = self.take_seq();
        self.send_to_client(self.event(seq, body.clone()));
        let _ = self.recorder.send(Record::Finish {
            rows: vec![EventRow { seq, body }],
            status,
            content,
            citations,
            run_id,
            error,
        });
    }
}

/// Answers `turn`, persists it, and only then lets go of the client's
/// stream, the user's run slot and the registry entry.
async fn run(
    state: &AppState,
    turn: Turn,
    client: mpsc::UnboundedSender<ChatEvent>,
    control: Arc<RunControl>,
    slot: RunSlot,
    done: watch::Sender<Option<String>>,
) {
    let started = Instant::now();
    let (record_tx, record_rx) = mpsc::unbounded_channel();
    let recorder = tokio::spawn(recorder(
        state.clone(),
        Closing {
            message_id: turn.message_id,
            token_hash: turn.token_hash.clone(),
            slot_id: slot.id(),
        },
        record_rx,
        control.clone(),
    ));
    let mut out = Emitter {
        message_id: turn.message_id,
        conversation_id: turn.conversation_id,
        next_seq: 0,
        interval: state.config.delta_interval,
        group: None,
        content: String::new(),
        client: Some(client),
        relay_every: state.config.relay_interval,
        relay_held: None,
        relay_next: Instant::now(),
        recorder: record_tx,
        scrub: Scrubber::new(turn.token.expose_secret(), &turn.token_hash),
    };

    out.emit(EventBody::Context {
        user_message_id: Some(turn.user_message_id),
        chunks: turn.context.iter().map(ContextChunk::to_event).collect(),
        dropped: u32::try_from(turn.dropped).unwrap_or(u32::MAX),
    });

    let mut run_id: Option<String> = None;
    let outcome = stream_answer(state, &turn, &control, &mut out, &mut run_id).await;
    let label = outcome.label();
    conclude(&mut out, outcome, &turn.context, run_id);
    // The client's stream stays open until the rows are written and the
    // token is gone: a client that sees it end finds the whole answer.
    let client = out.client.take();
    drop(out);
    let (status, ended) = recorder.await.unwrap_or((None, false));
    state.metrics.stage_took("answer", turn.arrived.elapsed());

    // The token has done its work: nobody may search with it any more. The
    // final row's transaction deleted it and gave the slot back, unless it
    // was never written.
    if !ended
        && let Err(err) = state
            .platform
            .delete(
                Auth::Service,
                "tool_sessions",
                &[("token_hash", format!("eq.{}", turn.token_hash))],
            )
            .await
    {
        tracing::warn!(error = %err, "could not delete a run's tool session (it expires on its own)");
    }
    // In this order, so that a client that sees its stream end may ask again
    // at once, and a Stop that waited learns the outcome.
    state.metrics.run_finished(label, started.elapsed());
    state.runs.remove(turn.message_id);
    if ended {
        slot.released_elsewhere();
    } else {
        slot.release().await;
    }
    let _ = done.send(Some(status.unwrap_or_else(|| "unknown".to_owned())));
    drop(client);
}

/// Sends the run's one terminal event and hands the final row to the
/// recorder: `complete` (finished or stopped) or `error`.
fn conclude(out: &mut Emitter, outcome: Outcome, context: &[ContextChunk], run_id: Option<String>) {
    // The text so far includes what the scrubber held back.
    out.release_held();
    match outcome {
        Outcome::Complete { content, citations } => {
            let content = content.unwrap_or_else(|| out.content.clone());
            let citations = self::citations(&citations, context);
            out.finish(
                EventBody::Complete {
                    status: MessageStatus::Complete,
                    content: content.clone(),
                    citations: citations.clone(),
                    run_id: run_id.clone(),
                },
                MessageStatus::Complete,
                content,
                citations,
                run_id,
                None,
            );
        }
        Outcome::Stopped(StopReason::User | StopReason::Elsewhere) => {
            let content = out.content.clone();
            let citations = citations_in_text(&content, context);
            out.finish(
                EventBody::Complete {
                    status: MessageStatus::Stopped,
                    content: content.clone(),
                    citations: citations.clone(),
                    run_id: run_id.clone(),
                },
                MessageStatus::Stopped,
                content,
                citations,
                run_id,
                None,
            );
        }
        Outcome::Stopped(StopReason::Shutdown) => {
            let message = "The answer was interrupted because Quire's server restarted. Ask again.";
            let content = out.content.clone();
            let citations = citations_in_text(&content, context);
            out.finish(
                EventBody::Error {
                    code: Some(FailureCode::Interrupted),
                    message: message.to_owned(),
                    content: content.clone(),
                },
                MessageStatus::Failed,
                content,
                citations,
                run_id,
                Some(message.to_owned()),
            );
        }
        Outcome::Failed { code, message } => {
            let content = out.content.clone();
            let citations = citations_in_text(&content, context);
            out.finish(
                EventBody::Error {
                    code: Some(code),
                    message: message.clone(),
                    content: content.clone(),
                },
                MessageStatus::Failed,
                content,
                citations,
                run_id,
                Some(message),
            );
        }
    }
}

/// Calls `run/stream` and relays it until it ends, fails or is stopped.
async fn stream_answer(
    state: &AppState,
    turn: &Turn,
    control: &RunControl,
    out: &mut Emitter,
    run_id: &mut Option<String>,
) -> Outcome {
    let deadline = Instant::now() + state.config.run_timeout;
    let mut items: Vec<Value> = turn
        .context
        .iter()
        .map(|c| {
            json!({"text": c.text, "meta": {
                "chunk_id": c.id, "document_id": c.document_id, "page": c.page,
                "page_end": c.page_end, "title": c.title}})
        })
        .collect();
    items.push(json!({
        "text": format!(
            "To search the user's documents beyond this context, call {TOOL_NAME} with \
             session_token = {} and the user's question as query.",
            turn.token.expose_secret()
        ),
        "meta": {"kind": "instruction"},
    }));
    let body = json!({
        "message": turn.question,
        "session_id": turn.session_id,
        "context_items": items,
        "citations_enabled": true,
    });
    let what = "POST /api/agents/{id}/run/stream";
    let request = state
        .platform
        .request(
            Method::POST,
            &format!("/api/agents/{}/run/stream", state.config.agent_id),
            Auth::Service,
        )
        .header("Accept", "text/event-stream")
        // Longer than the run's own deadline below, which ends it first; the
        // platform client's read timeout bounds each silence of the stream.
        .timeout(state.config.run_timeout + Duration::from_secs(60))
        .json(&body);

    let sent = state
        .metrics
        .stage("run_start", state.platform.send(what, request));
    let response = tokio::select! {
        biased;
        () = control.cancel.cancelled() => return stopped(control),
        () = tokio::time::sleep_until(deadline) => return timed_out(),
        response = sent => response,
    };
    let response = match response {
        Ok(response) => response,
        Err(err) => return platform_failure(&err),
    };

    let mut body = response.bytes_stream();
    let mut parser = SseParser::default();
    let mut final_text: Option<String> = None;
    let mut first_delta = false;
    loop {
        let due = out.deadline();
        tokio::select! {
            biased;
            () = control.cancel.cancelled() => return stopped(control),
            () = tokio::time::sleep_until(deadline) => return timed_out(),
            () = sleep_until_some(due) => out.on_deadline(),
            piece = body.next() => match piece {
                Some(Ok(bytes)) => {
                    let events = match parser.push(&bytes) {
                        Ok(events) => events,
                        Err(err) => return Outcome::Failed {
                            code: FailureCode::PlatformError,
                            message: for_person("The AI service sent something Quire could not read. Try asking again.", &err),
                        },
                    };
                    for event in events {
                        let Ok(event) = PlatformEvent::parse(&event.data) else {
                            // Its data may be anything the model wrote: not logged.
                            tracing::warn!(bytes = event.data.len(), "run/stream sent an event that is not JSON");
                            continue;
                        };
                        let outcome = relay(event, out, run_id, &mut final_text);
                        if !first_delta && !out.content.is_empty() {
                            first_delta = true;
                            state.metrics.stage_took("first_delta", turn.arrived.elapsed());
                        }
                        if let Some(outcome) = outcome {
                            return outcome;
                        }
                    }
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "run/stream broke off");
                    return stream_ended();
                }
                None => {
                    if parser.finish() == Ending::Truncated {
                        tracing::warn!("run/stream ended in the middle of an event");
                    }
                    return stream_ended();
                }
            },
        }
    }
}

/// Translates one platform event (docs/platform/ai-api.md §5.4);
/// `Some` when it ends the run.
fn relay(
    event: PlatformEvent,
    out: &mut Emitter,
    run_id: &mut Option<String>,
    final_text: &mut Option<String>,
) -> Option<Outcome> {
    match event {
        PlatformEvent::Start { run_id: id } => {
            *run_id = id;
            out.emit(EventBody::Status {
                state: Some("running".to_owned()),
                run_id: run_id.clone(),
            });
        }
        PlatformEvent::ContentDelta { delta } => out.delta(&delta),
        PlatformEvent::ToolCall {
            tool_name,
            call_id,
            mut arguments,
        } => {
            // The token is the run's capability: it stays between the
            // agent and the companion.
            if let Some(args) = arguments.as_object_mut() {
                args.remove("session_token");
            }
            out.emit(EventBody::ToolCall {
                tool_name,
                call_id,
                arguments,
            });
        }
        PlatformEvent::ToolResult {
            tool_name,
            call_id,
            result_preview,
            duration_ms,
        } => out.emit(EventBody::ToolResult {
            tool_name,
            call_id,
            preview: result_preview,
            duration_ms,
        }),
        // The whole answer once, after the deltas (docs/platform/ai-api.md §5.4): it replaces them.
        PlatformEvent::Chunk { content } => *final_text = content,
        PlatformEvent::Complete {
            run_id: id,
            failed,
            error,
            content,
            citations,
        } => {
            if id.is_some() {
                *run_id = id;
            }
            if failed {
                return Some(Outcome::Failed {
                    code: FailureCode::PlatformError,
                    message: for_person(
                        "The AI service could not finish this answer. Try asking again.",
                        &format!("the platform's run failed: {error:?}"),
                    ),
                });
            }
            let content = content.or_else(|| final_text.take());
            return Some(Outcome::Complete { content, citations });
        }
        PlatformEvent::Error { error } => {
            return Some(Outcome::Failed {
                code: FailureCode::PlatformError,
                message: for_person(
                    "The AI service could not finish this answer. Try asking again.",
                    &format!("the platform's run stream reported an error: {error:?}"),
                ),
            });
        }
        PlatformEvent::Other { .. } => {}
    }
    None
}

/// The citations of an answer cut short (stopped, failed): the platform's
/// `complete` event that lists them never came, but the kept text holds the
/// `[n]` markers the reader already saw. Each is matched to the context item
/// it numbers, as [`citations`] matches the platform's keys.
pub fn citations_in_text(content: &str, context: &[ContextChunk]) -> Vec<Citation> {
    let keys: Vec<PlatformCitation> = markers(content)
        .map(|n| PlatformCitation {
            key: Some(n.to_string()),
            score: None,
        })
        .collect();
    citations(&keys, context)
}

/// The numbers of the `[n]` markers in `text`, in order (`n` of one to three
/// digits).
fn markers(text: &str) -> impl Iterator<Item = u32> + '_ {
    text.match_indices('[').filter_map(move |(at, _)| {
        let rest = &text[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (1..=3).contains(&digits).then_some(())?;
        (rest.as_bytes().get(digits) == Some(&b']')).then_some(())?;
        rest[..digits].parse().ok()
    })
}

/// Quire's citations: the platform's, matched back to the context items by
/// their `[n]` key — never by ids the platform echoes.
pub fn citations(platform: &[PlatformCitation], context: &[ContextChunk]) -> Vec<Citation> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for citation in platform {
        let Some(key) = citation.key.clone() else {
            continue;
        };
        let Some(index) = key.parse::<usize>().ok().and_then(|n| n.checked_sub(1)) else {
            continue;
        };
        let Some(chunk) = context.get(index) else {
            continue;
        };
        if !seen.insert(index) {
            continue;
        }
        let excerpt: String = chunk.text.chars().take(EXCERPT_CHARS).collect();
        out.push(Citation {
            key: Some(key),
            chunk_id: Some(chunk.id),
            document_id: Some(chunk.document_id),
            title: Some(chunk.title.clone()),
            page: chunk.page,
            page_end: chunk.page_end,
            excerpt: Some(excerpt),
            score: citation.score,
        });
    }
    out
}

fn stopped(control: &RunControl) -> Outcome {
    Outcome::Stopped(control.reason().unwrap_or(StopReason::User))
}

fn timed_out() -> Outcome {
    Outcome::Failed {
        code: FailureCode::Timeout,
        message: "The answer took too long and was cut off. Try a narrower question.".to_owned(),
    }
}

fn stream_ended() -> Outcome {
    Outcome::Failed {
        code: FailureCode::PlatformStreamEnded,
        message: "The AI service stopped in the middle of the answer. What arrived is kept; ask again for the rest."
            .to_owned(),
    }
}

fn platform_failure(err: &PlatformError) -> Outcome {
    let (code, sentence) = match err.code() {
        // Only the project's administrator can give the model a key
        // (docs/platform-contract.md §7).
        Some(ApiCode::ModelWithoutKey) => (
            FailureCode::ModelNotConfigured,
            "The AI model of this Quire server is not set up — ask its administrator.",
        ),
        Some(ApiCode::InsufficientCredits) => (
            FailureCode::PlatformUnavailable,
            "The project has run out of AI credits. Ask its owner to top them up.",
        ),
        _ => (
            FailureCode::PlatformUnavailable,
            "The AI service is not answering right now. Try again in a moment.",
        ),
    };
    Outcome::Failed {
        code,
        message: for_person(sentence, &format!("run/stream could not start: {err}")),
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the final row's transaction also ends: the run's tool session and
/// its run slot.
struct Closing {
    message_id: Uuid,
    token_hash: String,
    slot_id: Uuid,
}

/// Writes rows as they come, batching what queued up meanwhile; ends with
/// the final row, written with `finish_chat_answer` (which also deletes the
/// run's tool session and gives its slot back). Returns the final status as
/// persisted, and whether that final write happened.
async fn recorder(
    state: AppState,
    ending: Closing,
    mut rx: mpsc::UnboundedReceiver<Record>,
    control: Arc<RunControl>,
) -> (Option<String>, bool) {
    let message_id = ending.message_id;
    loop {
        let Some(first) = rx.recv().await else {
            return (None, false);
        };
        let mut rows = Vec::new();
        let mut content = String::new();
        let mut finish = None;
        let mut absorb = |record: Record, rows: &mut Vec<EventRow>| match record {
            Record::Rows(mut more, text) => {
                rows.append(&mut more);
                content = text;
                None
            }
            Record::Finish {
                rows: mut last,
                status,
                content,
                citations,
                run_id,
                error,
            } => {
                rows.append(&mut last);
                Some((status, content, citations, run_id, error))
            }
        };
        if let Some(f) = absorb(first, &mut rows) {
            finish = Some(f);
        }
        while finish.is_none() {
            match rx.try_recv() {
                Ok(record) => finish = absorb(record, &mut rows),
                Err(_) => break,
            }
        }

        if let Some((status, content, citations, run_id, error)) = finish {
            let finish = Finish {
                status,
                citations,
                run_id,
                error,
                token_hash: ending.token_hash.clone(),
                slot_id: ending.slot_id,
            };
            let result = state
                .metrics
                .stage(
                    "complete",
                    state.events.finish(message_id, rows, content, finish),
                )
                .await;
            return (result.clone().flatten(), result.is_some());
        }
        let streaming = state
            .metrics
            .stage(
                "event_write",
                state.events.append(message_id, rows, content),
            )
            .await;
        if streaming == Some(false) {
            control.stop(StopReason::Elsewhere);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u8, page: i32) -> ContextChunk {
        ContextChunk {
            id: Uuid::from_bytes([n; 16]),
            document_id: Uuid::from_bytes([100 + n; 16]),
            chunk_id: Uuid::from_bytes([200 + n; 16]),
            page: Some(page),
            page_end: Some(page + 1),
            title: format!("Doc {n}"),
            text: "x".repeat(400),
        }
    }

    #[test]
    fn citations_are_matched_by_key_not_by_echoed_ids() {
        let context = vec![chunk(1, 2), chunk(2, 7)];
        let platform = [
            json!({"key": "2", "chunk_id": "forged", "meta": {"document_id": "someone-else"}, "score": 0.5}),
            json!({"key": "2", "score": 0.1}),
            json!({"key": "3", "score": 0.9}),
            json!({"key": "zero"}),
            json!({"key": 1, "score": 0.2}),
        ];
        let platform: Vec<PlatformCitation> =
            platform.iter().map(PlatformCitation::from_value).collect();
        let out = citations(&platform, &context);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].chunk_id, Some(context[1].id));
        assert_eq!(out[0].document_id, Some(context[1].document_id));
        assert_eq!((out[0].page, out[0].page_end), (Some(7), Some(8)));
        assert_eq!(out[0].excerpt.as_ref().unwrap().chars().count(), 300);
        assert_eq!(out[0].score, Some(0.5));
        assert_eq!(out[1].key.as_deref(), Some("1"));
        // Stored in chat_messages.citations and sent in `complete`.
        assert_eq!(
            serde_json::to_value(&out[1]).unwrap(),
            json!({"key": "1", "chunk_id": context[0].id, "document_id": context[0].document_id,
                   "title": "Doc 1", "page": 2, "page_end": 3, "excerpt": "x".repeat(300),
                   "score": 0.2})
        );
    }

    #[test]
    fn a_cut_answer_cites_the_markers_its_text_shows() {
        let context = vec![chunk(1, 2), chunk(2, 7)];
        let text = "The motor has five years [2]. Jars one year [1][2]. Not [9], [x], [1234] or [3";
        let out = citations_in_text(text, &context);
        let keys: Vec<&str> = out.iter().map(|c| c.key.as_deref().unwrap()).collect();
        assert_eq!(keys, ["2", "1"]);
        assert_eq!(out[0].document_id, Some(context[1].document_id));
        assert_eq!(out[0].score, None);
        assert!(citations_in_text("No markers yet", &context).is_empty());
    }

    fn emitter(
        interval: Duration,
        relay_every: Duration,
    ) -> (
        Emitter,
        mpsc::UnboundedReceiver<ChatEvent>,
        mpsc::UnboundedReceiver<Record>,
    ) {
        let (client, client_rx) = mpsc::unbounded_channel();
        let (recorder, record_rx) = mpsc::unbounded_channel();
        (
            Emitter {
                message_id: Uuid::nil(),
                conversation_id: Uuid::nil(),
                next_seq: 0,
                interval,
                group: None,
                content: String::new(),
                client: Some(client),
                relay_every,
                relay_held: None,
                relay_next: Instant::now(),
                recorder,
                scrub: Scrubber::new("", ""),
            },
            client_rx,
            record_rx,
        )
    }

    fn rows(rx: &mut mpsc::UnboundedReceiver<Record>) -> Vec<EventRow> {
        let mut out = Vec::new();
        while let Ok(record) = rx.try_recv() {
            match record {
                Record::Rows(rows, _) | Record::Finish { rows, .. } => out.extend(rows),
            }
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn deltas_of_one_interval_share_a_row_and_its_seq() {
        let (mut out, mut client, mut recorder) =
            emitter(Duration::from_millis(100), Duration::ZERO);
        out.emit(EventBody::Context {
            user_message_id: None,
            chunks: vec![],
            dropped: 0,
        });
        out.delta("Hel");
        out.delta("lo");
        tokio::time::advance(Duration::from_millis(150)).await;
        out.delta(" wor");
        out.emit(EventBody::ToolCall {
            tool_name: None,
            call_id: None,
            arguments: json!({}),
        });
        out.delta("ld");
        out.finish(
            EventBody::Complete {
                status: MessageStatus::Complete,
                content: "Hello world".into(),
                citations: vec![],
                run_id: None,
            },
            MessageStatus::Complete,
            "Hello world".into(),
            vec![],
            None,
            None,
        );

        let mut sent = Vec::new();
        while let Ok(e) = client.try_recv() {
            sent.push((e.seq, e.body));
        }
        let seqs: Vec<i32> = sent.iter().map(|s| s.0).collect();
        assert_eq!(seqs, [0, 1, 1, 2, 3, 4, 5]);
        let written = rows(&mut recorder);
        let written_seqs: Vec<i32> = written.iter().map(|r| r.seq).collect();
        assert_eq!(
            written_seqs,
            [0, 1, 2, 3, 4, 5],
            "strictly increasing, one row each"
        );
        let text = |row: &EventRow| match &row.body {
            EventBody::Delta { text } => text.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(text(&written[1]), "Hello");
        assert_eq!(text(&written[2]), " wor");
        assert_eq!(text(&written[4]), "ld");
        assert_eq!(out.content, "Hello world");
    }

    #[tokio::test(start_paused = true)]
    async fn the_client_gets_the_first_words_at_once_and_the_rest_an_interval_at_a_time() {
        let ms = Duration::from_millis;
        let (mut out, mut client, mut recorder) = emitter(ms(100), ms(20));
        let mut sent = || {
            let mut sent = Vec::new();
            while let Ok(e) = client.try_recv() {
                let text = match e.body {
                    EventBody::Delta { text } => text,
                    other => other.kind().to_owned(),
                };
                sent.push((e.seq, text));
            }
            sent
        };
        out.delta("The ");
        assert_eq!(sent(), [(0, "The ".to_owned())], "the first piece at once");
        tokio::time::advance(ms(5)).await;
        out.delta("warranty ");
        tokio::time::advance(ms(5)).await;
        out.delta("is ");
        assert_eq!(sent(), [], "held until 20 ms after the first");
        assert_eq!(out.deadline(), Some(Instant::now() + ms(10)));
        tokio::time::advance(ms(10)).await;
        out.on_deadline();
        assert_eq!(
            sent(),
            [(0, "warranty is ".to_owned())],
            "together, of the same row"
        );

        // Held pieces go out before the next row's, and before any other event.
        tokio::time::advance(ms(5)).await;
        out.delta("five ");
        tokio::time::advance(ms(80)).await;
        out.delta("years");
        out.emit(EventBody::ToolCall {
            tool_name: None,
            call_id: None,
            arguments: json!({}),
        });
        assert_eq!(
            sent(),
            [
                (0, "five ".to_owned()),
                (1, "years".to_owned()),
                (2, "tool_call".to_owned())
            ]
        );
        let written = rows(&mut recorder);
        let texts: Vec<(i32, String)> = written
            .iter()
            .map(|r| match &r.body {
                EventBody::Delta { text } => (r.seq, text.clone()),
                other => (r.seq, other.kind().to_owned()),
            })
            .collect();
        assert_eq!(
            texts,
            [
                (0, "The warranty is five ".to_owned()),
                (1, "years".to_owned()),
                (2, "tool_call".to_owned())
            ],
            "the rows are the same as when every piece is sent at once"
        );
    }
}
