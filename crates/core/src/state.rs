//! The one local state model — conversations, messages with their streaming
//! state, documents with status and upload progress — and the one place
//! where backfill, live Realtime events and the asking client's own answer
//! stream are applied. The desktop and the CLI render from it, so they show
//! the same truth.
//!
//! Reconciliation rules:
//! * A message's text is the concatenation, in `seq` order, of its delta
//!   rows. A row from the log (Realtime or backfill) is applied once per
//!   `(message_id, seq)`; a second copy is a duplicate and changes nothing.
//!   Rows may arrive out of order: a row that fills a gap re-derives the
//!   text.
//! * The asking client's SSE deltas are *pieces* of a row (several may share
//!   a `seq`); they are appended to that row until the whole row arrives
//!   from the log, which replaces them (their concatenation is the row).
//! * A terminal event (`complete`, `error`) or a final `chat_messages` row
//!   carries the whole text, which then wins.
//! * Document status updates older than what is shown (`updated_at`) are
//!   ignored.
//!
//! Every change is announced as an [`Update`] on a broadcast channel, sent
//! while the change's lock is still held, so updates arrive in the order the
//! changes were made (a receiver that keeps the last update per entity keeps
//! the newest). A receiver that lags (more than [`UPDATE_BUFFER`] behind)
//! gets `Lagged` and should re-read the snapshots.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use ts_rs::TS;
use uuid::Uuid;

use crate::chat::event::{ChatEvent, Citation, ContextChunk, EventBody, MessageStatus};

/// Updates kept for slow receivers before they lag.
pub const UPDATE_BUFFER: usize = 4096;

/// A conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Conversation {
    /// The `conversations.id`.
    pub id: Uuid,
    /// The conversation's title (the start of its first question, unless
    /// given or renamed); `None` when it has none.
    #[serde(default)]
    pub title: Option<String>,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it last changed; a new question counts.
    pub updated_at: DateTime<Utc>,
    /// When the person archived it; `None` while it is not archived.
    #[serde(default)]
    pub archived_at: Option<DateTime<Utc>>,
    /// The documents the conversation asks about (its scope); empty: all of
    /// the person's documents.
    #[serde(default)]
    pub document_ids: Vec<Uuid>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The person: a question.
    User,
    /// The agent: an answer.
    Assistant,
}

/// A message as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct Message {
    /// The `chat_messages.id`.
    pub id: Uuid,
    /// The conversation it is in.
    pub conversation_id: Uuid,
    /// Position in the conversation (unknown until the row is read).
    pub seq: Option<i32>,
    /// Who wrote it: a question or an answer.
    pub role: Role,
    /// Whether it is still being written, and how it ended.
    #[ts(as = "crate::typescript::MessageStatusView")]
    pub status: MessageStatus,
    /// The text so far (the whole text once final).
    pub content: String,
    /// The sources the text cites, by their `[n]` markers.
    #[serde(serialize_with = "view_citations")]
    #[ts(as = "Vec<CitationView<'static>>")]
    pub citations: Vec<Citation>,
    /// The chunks the answer was given (`context` event).
    #[ts(as = "Vec<crate::typescript::ContextChunkView>")]
    pub sources: Vec<ContextChunk>,
    /// For an answer: the question's message id.
    pub question_id: Option<Uuid>,
    /// Why it failed, for a person.
    pub error: Option<String>,
    /// Names of the tools the agent called so far.
    pub tools: Vec<String>,
}

/// A message's citation as the UI reads it (`src-tauri/IPC.md`): the
/// wire's [`Citation`], without the platform's relevance `score`.
#[derive(Serialize, TS)]
#[ts(rename = "Citation")]
pub struct CitationView<'a> {
    /// The marker's number as written in the text (`"2"` for `[2]`).
    pub key: &'a Option<String>,
    /// The cited `document_chunks.id`.
    pub chunk_id: &'a Option<Uuid>,
    /// The user's document the chunk is from.
    pub document_id: &'a Option<Uuid>,
    /// The document's title.
    pub title: &'a Option<String>,
    /// The first page the cited chunk spans (where the viewer opens).
    pub page: &'a Option<i32>,
    /// The last page it spans (a chunk may cross a page break); absent on
    /// answers stored before it existed (read it as `page`).
    #[ts(optional = nullable)]
    pub page_end: &'a Option<i32>,
    /// The first 300 characters of the chunk.
    pub excerpt: &'a Option<String>,
}

fn view_citations<S: serde::Serializer>(
    citations: &[Citation],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(citations.iter().map(|c| CitationView {
        key: &c.key,
        chunk_id: &c.chunk_id,
        document_id: &c.document_id,
        title: &c.title,
        page: &c.page,
        page_end: &c.page_end,
        excerpt: &c.excerpt,
    }))
}

/// A `chat_messages` row.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i32,
    pub role: Role,
    pub status: MessageStatus,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub citations: Vec<Citation>,
    /// The chunks an answer was given (db/app/93_answer_ground.sql); empty
    /// for answers stored before.
    #[serde(default)]
    pub sources: Vec<ContextChunk>,
    /// An answer's question; every version of an answer names the same.
    #[serde(default)]
    pub question_id: Option<Uuid>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `documents.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Registered; its file is being sent to Storage.
    Uploading,
    /// Its file is in Storage, waiting for the companion to ingest it.
    Stored,
    /// The AI service is extracting its text.
    Extracting,
    /// The knowledge base is indexing its text.
    Indexing,
    /// Its chunks can be searched and asked about.
    Ready,
    /// Ingestion failed; `error` says why.
    Failed,
    /// It has no text to search (no text layer, or no chunks).
    NoText,
}

impl DocumentStatus {
    /// Whether ingestion is over (ready, failed or no text).
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            DocumentStatus::Ready | DocumentStatus::Failed | DocumentStatus::NoText
        )
    }

    /// The status as `documents.status` stores it (`no_text`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Uploading => "uploading",
            DocumentStatus::Stored => "stored",
            DocumentStatus::Extracting => "extracting",
            DocumentStatus::Indexing => "indexing",
            DocumentStatus::Ready => "ready",
            DocumentStatus::Failed => "failed",
            DocumentStatus::NoText => "no_text",
        }
    }
}

/// Bytes sent of a file being uploaded from this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct UploadProgress {
    /// Bytes sent so far.
    pub sent: u64,
    /// The file's size in bytes.
    pub total: u64,
}

/// A document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Document {
    /// The `documents.id`.
    pub id: Uuid,
    /// The document's title: its file's name without the extension, as
    /// uploaded.
    pub title: String,
    /// Where ingestion stands.
    pub status: DocumentStatus,
    /// Why it failed, for a person; for an `uploading` one, why this
    /// device's upload was cut.
    #[serde(default)]
    pub error: Option<String>,
    /// How many pages it has, once ingestion has counted them.
    #[serde(default)]
    pub page_count: Option<i32>,
    /// The file's size in bytes.
    #[serde(default)]
    pub byte_size: Option<i64>,
    /// When the row last changed; older news of it is ignored.
    pub updated_at: DateTime<Utc>,
    /// Set while this device uploads it.
    #[serde(skip_deserializing)]
    pub upload: Option<UploadProgress>,
    /// Where its upload stands as this device sees it ([`uploading`]); set on
    /// what the state hands out, `None` once it is no longer `uploading`.
    #[serde(skip_deserializing)]
    pub uploading: Option<Uploading>,
}

/// How long a document may stay `uploading` and still count as being sent:
/// the server's own in-flight window (db/app/83_per_user_limits.sql counts a
/// document in flight while it changed within the last hour). Past it,
/// nothing sends it any more.
pub const UPLOAD_IN_FLIGHT: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Where an `uploading` document's upload stands, seen from this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Uploading {
    /// This device sends it.
    Here,
    /// Another device (or this one before it quit) began it lately and may
    /// still be sending it.
    Elsewhere,
    /// Cut: nothing sends it. Retry (with the file) or Delete.
    Interrupted,
}

/// Where `document`'s upload stands at `now`: `None` unless it is
/// `uploading`; sent from here while this device reports progress; cut when
/// this device could not go on (`error`) or when it has not changed for
/// longer than [`UPLOAD_IN_FLIGHT`]; otherwise another device's.
pub fn uploading(document: &Document, now: DateTime<Utc>) -> Option<Uploading> {
    if document.status != DocumentStatus::Uploading {
        return None;
    }
    Some(if document.upload.is_some() {
        Uploading::Here
    } else if document.error.is_some() || now - document.updated_at > UPLOAD_IN_FLIGHT {
        Uploading::Interrupted
    } else {
        Uploading::Elsewhere
    })
}

/// `document` as the UI sees it now ([`uploading`]), unless already decided.
fn seen(mut document: Document) -> Document {
    if document.uploading.is_none() {
        document.uploading = uploading(&document, Utc::now());
    }
    document
}

/// One change to the state, for the UI.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Update {
    /// A conversation was added or changed; the whole of it as it is now.
    Conversation(Conversation),
    /// A conversation is gone (deleted, or the state was cleared), and its
    /// messages with it.
    ConversationRemoved {
        /// The conversation's id.
        id: Uuid,
    },
    /// A message changed. `appended` is set when the change only added text
    /// at the end (the UI may append it); otherwise re-render `content`.
    Message {
        /// The whole message as it is now.
        message: Message,
        /// The text added at the end, when that is all that changed.
        appended: Option<String>,
    },
    /// A document was added or changed; the whole of it as it is now.
    Document(Document),
    /// A document is gone (deleted, or the state was cleared).
    DocumentRemoved {
        /// The document's id.
        id: Uuid,
    },
}

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The event log (Realtime or backfill): one whole row per seq.
    Log,
    /// This client's own answer stream: deltas are pieces of rows.
    Stream,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// It changed the state.
    Changed,
    /// A copy of a row already applied (or nothing to change).
    Duplicate,
}

#[derive(Default)]
struct Part {
    text: String,
    /// The whole row (from the log), not SSE pieces.
    whole: bool,
}

struct MessageState {
    view: Message,
    /// Delta text by seq.
    parts: BTreeMap<i32, Part>,
    /// Seqs of log rows already applied (any kind).
    rows: std::collections::BTreeSet<i32>,
    /// The whole text, once a terminal event or final row said it.
    final_content: Option<String>,
}

impl MessageState {
    fn new(id: Uuid, conversation_id: Uuid, role: Role) -> MessageState {
        MessageState {
            view: Message {
                id,
                conversation_id,
                seq: None,
                role,
                status: MessageStatus::Streaming,
                content: String::new(),
                citations: Vec::new(),
                sources: Vec::new(),
                question_id: None,
                error: None,
                tools: Vec::new(),
            },
            parts: BTreeMap::new(),
            rows: Default::default(),
            final_content: None,
        }
    }

    fn derive_content(&mut self) {
        self.view.content = match &self.final_content {
            Some(text) => text.clone(),
            None => self.parts.values().map(|p| p.text.as_str()).collect(),
        };
    }
}

#[derive(Default)]
struct Model {
    conversations: HashMap<Uuid, Conversation>,
    messages: HashMap<Uuid, MessageState>,
    documents: HashMap<Uuid, Document>,
    /// When [`State::recheck_uploads`] last looked.
    uploads_checked: Option<DateTime<Utc>>,
}

/// The state model. Shared (`Arc<State>`) by the follower, `ask`, uploads
/// and the UI.
pub struct State {
    model: Mutex<Model>,
    updates: broadcast::Sender<Update>,
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    /// An empty state.
    pub fn new() -> State {
        State {
            model: Mutex::new(Model::default()),
            updates: broadcast::channel(UPDATE_BUFFER).0,
        }
    }

    /// Every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    /// Conversations, most recently updated first (archived ones last).
    pub fn conversations(&self) -> Vec<Conversation> {
        let model = self.model.lock().unwrap();
        let mut list: Vec<Conversation> = model.conversations.values().cloned().collect();
        list.sort_by(|a, b| {
            (a.archived_at.is_some(), std::cmp::Reverse(a.updated_at))
                .cmp(&(b.archived_at.is_some(), std::cmp::Reverse(b.updated_at)))
        });
        list
    }

    /// A conversation's messages known here, in order.
    pub fn messages(&self, conversation_id: Uuid) -> Vec<Message> {
        let model = self.model.lock().unwrap();
        let mut list: Vec<&MessageState> = model
            .messages
            .values()
            .filter(|m| m.view.conversation_id == conversation_id)
            .collect();
        list.sort_by_key(|m| {
            (
                m.view.seq.unwrap_or(i32::MAX),
                m.view.role == Role::Assistant,
            )
        });
        list.into_iter().map(|m| m.view.clone()).collect()
    }

    /// One message.
    pub fn message(&self, id: Uuid) -> Option<Message> {
        self.model
            .lock()
            .unwrap()
            .messages
            .get(&id)
            .map(|m| m.view.clone())
    }

    /// Documents, newest first.
    pub fn documents(&self) -> Vec<Document> {
        let model = self.model.lock().unwrap();
        let mut list: Vec<Document> = model.documents.values().cloned().map(seen).collect();
        list.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.title.cmp(&b.title)));
        list
    }

    /// One document.
    pub fn document(&self, id: Uuid) -> Option<Document> {
        self.model
            .lock()
            .unwrap()
            .documents
            .get(&id)
            .cloned()
            .map(seen)
    }

    pub(crate) fn knows_message(&self, id: Uuid) -> bool {
        self.model.lock().unwrap().messages.contains_key(&id)
    }

    pub(crate) fn knows_conversation(&self, id: Uuid) -> bool {
        self.model.lock().unwrap().conversations.contains_key(&id)
    }

    /// Messages not final yet, with the highest seq below which every row
    /// has been applied from the log (`None`: start from the beginning).
    pub(crate) fn unfinished(&self) -> Vec<(Uuid, Option<i32>)> {
        let model = self.model.lock().unwrap();
        model
            .messages
            .values()
            .filter(|m| m.view.role == Role::Assistant && !m.view.status.is_final())
            .map(|m| (m.view.id, contiguous_rows(&m.rows)))
            .collect()
    }

    fn emit(&self, update: Update) {
        let update = match update {
            Update::Document(document) => Update::Document(seen(document)),
            other => other,
        };
        let _ = self.updates.send(update);
    }

    /// Applies a chat event.
    pub(crate) fn apply_event(&self, event: &ChatEvent, source: Source) -> Applied {
        let mut model = self.model.lock().unwrap();
        let state = model.messages.entry(event.message_id).or_insert_with(|| {
            MessageState::new(event.message_id, event.conversation_id, Role::Assistant)
        });
        // Over SSE only deltas are pieces of a row; every other event is its
        // row, so its log copy is a duplicate.
        let is_row = source == Source::Log || !matches!(event.body, EventBody::Delta { .. });
        if is_row && !state.rows.insert(event.seq) {
            return Applied::Duplicate;
        }
        let before = state.view.content.clone();
        let status_before = state.view.status;
        match &event.body {
            EventBody::Context {
                user_message_id,
                chunks,
                ..
            } => {
                state.view.question_id = *user_message_id;
                state.view.sources = chunks.clone();
            }
            EventBody::Delta { text } => {
                let part = state.parts.entry(event.seq).or_default();
                match source {
                    Source::Log => {
                        part.text = text.clone();
                        part.whole = true;
                    }
                    // A piece arriving after its whole row is already in it.
                    Source::Stream if part.whole => {}
                    Source::Stream => part.text.push_str(text),
                }
            }
            EventBody::ToolCall { tool_name, .. } => {
                if let Some(name) = tool_name {
                    state.view.tools.push(name.clone());
                }
            }
            EventBody::ToolResult { .. } | EventBody::Status { .. } | EventBody::Unknown { .. } => {
            }
            EventBody::Complete {
                status,
                content,
                citations,
                ..
            } => {
                state.view.status = *status;
                state.view.citations = citations.clone();
                state.final_content = Some(content.clone());
            }
            EventBody::Error {
                message, content, ..
            } => {
                state.view.status = MessageStatus::Failed;
                state.view.error = Some(message.clone());
                state.final_content = Some(content.clone());
            }
        }
        state.derive_content();
        let view = state.view.clone();
        let changed_text = view.content != before;
        if !changed_text
            && view.status == status_before
            && !matches!(
                event.body,
                EventBody::Context { .. } | EventBody::ToolCall { .. }
            )
        {
            return Applied::Duplicate;
        }
        let appended = (changed_text && view.content.starts_with(&before))
            .then(|| view.content[before.len()..].to_owned());
        self.emit(Update::Message {
            message: view,
            appended,
        });
        drop(model);
        Applied::Changed
    }

    /// Applies a `chat_messages` row (history, backfill).
    pub(crate) fn apply_message_row(&self, row: &MessageRow) {
        let mut model = self.model.lock().unwrap();
        let state = model
            .messages
            .entry(row.id)
            .or_insert_with(|| MessageState::new(row.id, row.conversation_id, row.role));
        let before = state.view.clone();
        state.view.seq = Some(row.seq);
        state.view.role = row.role;
        if !row.sources.is_empty() {
            state.view.sources = row.sources.clone();
        }
        if row.question_id.is_some() {
            state.view.question_id = row.question_id;
        }
        if row.role == Role::User || row.status.is_final() {
            state.view.status = row.status;
            state.view.citations = row.citations.clone();
            state.view.error = row.error.clone();
            state.final_content = Some(row.content.clone());
        }
        state.derive_content();
        let view = state.view.clone();
        if view != before {
            let appended = (view.content != before.content
                && view.content.starts_with(&before.content))
            .then(|| view.content[before.content.len()..].to_owned());
            self.emit(Update::Message {
                message: view,
                appended,
            });
        }
        drop(model);
    }

    pub(crate) fn apply_conversation(&self, conversation: &Conversation) {
        let mut model = self.model.lock().unwrap();
        let changed = model
            .conversations
            .insert(conversation.id, conversation.clone())
            .as_ref()
            != Some(conversation);
        if changed {
            self.emit(Update::Conversation(conversation.clone()));
        }
    }

    pub(crate) fn remove_conversation(&self, id: Uuid) {
        let mut model = self.model.lock().unwrap();
        model.messages.retain(|_, m| m.view.conversation_id != id);
        if model.conversations.remove(&id).is_some() {
            self.emit(Update::ConversationRemoved { id });
        }
    }

    /// Applies a document row or status broadcast; older news than what is
    /// shown is ignored.
    pub(crate) fn apply_document(&self, document: &Document) {
        let mut model = self.model.lock().unwrap();
        let update = {
            match model.documents.get_mut(&document.id) {
                Some(current) if current.updated_at > document.updated_at => None,
                Some(current) => {
                    let upload = if document.status == DocumentStatus::Uploading {
                        current.upload.or(document.upload)
                    } else {
                        None
                    };
                    // An upload this device could not finish keeps saying so
                    // (`upload_interrupted`): an uploading row has no error of its own.
                    let error = if document.status == DocumentStatus::Uploading
                        && current.status == DocumentStatus::Uploading
                        && document.error.is_none()
                    {
                        current.error.clone()
                    } else {
                        document.error.clone()
                    };
                    let next = Document {
                        upload,
                        error,
                        ..document.clone()
                    };
                    (*current != next).then(|| {
                        *current = next.clone();
                        next
                    })
                }
                None => {
                    model.documents.insert(document.id, document.clone());
                    Some(document.clone())
                }
            }
        };
        if let Some(document) = update {
            self.emit(Update::Document(document));
        }
    }

    pub(crate) fn remove_document(&self, id: Uuid) {
        let mut model = self.model.lock().unwrap();
        if model.documents.remove(&id).is_some() {
            self.emit(Update::DocumentRemoved { id });
        }
    }

    /// Forgets everything (the person signed out, or another signed in):
    /// each conversation and document is announced as removed, and their
    /// messages go with them.
    pub(crate) fn clear(&self) {
        let mut model = self.model.lock().unwrap();
        let conversations: Vec<Uuid> = model.conversations.keys().copied().collect();
        let documents: Vec<Uuid> = model.documents.keys().copied().collect();
        *model = Model::default();
        for id in conversations {
            self.emit(Update::ConversationRemoved { id });
        }
        for id in documents {
            self.emit(Update::DocumentRemoved { id });
        }
    }

    /// Marks a document whose upload from this device was cut and cannot go
    /// on (its file is gone or changed): it stays `uploading`, without
    /// progress, and its `error` says why, until the person retries or
    /// deletes it.
    pub(crate) fn upload_interrupted(&self, id: Uuid, reason: String) {
        let mut model = self.model.lock().unwrap();
        let update = model.documents.get_mut(&id).and_then(|document| {
            (document.status == DocumentStatus::Uploading).then(|| {
                document.upload = None;
                document.error = Some(reason);
                document.clone()
            })
        });
        if let Some(document) = update {
            self.emit(Update::Document(document));
        }
    }

    /// Hands out again each document that became [`Uploading::Interrupted`]
    /// with the time alone (past [`UPLOAD_IN_FLIGHT`] since its last change)
    /// since the last call; the shell calls it now and then, so a window
    /// showing "Uploading from another device" turns to "Upload interrupted"
    /// without anything else changing.
    pub fn recheck_uploads(&self) {
        self.recheck_uploads_at(Utc::now());
    }

    fn recheck_uploads_at(&self, now: DateTime<Utc>) {
        let mut model = self.model.lock().unwrap();
        let since = model.uploads_checked.replace(now);
        let turned: Vec<Document> = model
            .documents
            .values()
            .filter(|d| {
                d.error.is_none()
                    && uploading(d, now) == Some(Uploading::Interrupted)
                    && since.is_none_or(|since| d.updated_at + UPLOAD_IN_FLIGHT > since)
            })
            .map(|d| Document {
                uploading: Some(Uploading::Interrupted),
                ..d.clone()
            })
            .collect();
        for document in turned {
            self.emit(Update::Document(document));
        }
    }

    /// Records upload progress of a document this device is sending.
    pub(crate) fn upload_progress(&self, id: Uuid, sent: u64, total: u64) {
        let mut model = self.model.lock().unwrap();
        let update = {
            model.documents.get_mut(&id).and_then(|document| {
                let progress = Some(UploadProgress { sent, total });
                (document.upload != progress && document.status == DocumentStatus::Uploading).then(
                    || {
                        document.upload = progress;
                        // Going again: no longer interrupted.
                        document.error = None;
                        document.clone()
                    },
                )
            })
        };
        if let Some(document) = update {
            self.emit(Update::Document(document));
        }
    }
}

/// The highest seq `s` such that every seq from 0 to `s` is in `rows`.
fn contiguous_rows(rows: &std::collections::BTreeSet<i32>) -> Option<i32> {
    let mut expected = 0;
    for seq in rows {
        if *seq != expected {
            break;
        }
        expected += 1;
    }
    (expected > 0).then(|| expected - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(message: Uuid, seq: i32, kind: &str, payload: serde_json::Value) -> ChatEvent {
        crate::chat::event::from_json(json!({
            "message_id": message, "conversation_id": Uuid::nil(), "seq": seq, "kind": kind, "payload": payload
        }))
        .unwrap()
    }

    fn delta(message: Uuid, seq: i32, text: &str) -> ChatEvent {
        event(message, seq, "delta", json!({"text": text}))
    }

    fn appended(updates: &mut broadcast::Receiver<Update>) -> String {
        let mut text = String::new();
        while let Ok(update) = updates.try_recv() {
            if let Update::Message {
                appended: Some(piece),
                ..
            } = update
            {
                text.push_str(&piece);
            }
        }
        text
    }

    #[test]
    fn backfill_then_live_with_duplicates_applies_each_row_once() {
        let state = State::new();
        let mut updates = state.subscribe();
        let m = Uuid::new_v4();
        // Backfill brings rows 0..=2; the live stream re-delivers 2 and goes on.
        state.apply_event(&event(m, 0, "context", json!({"chunks": []})), Source::Log);
        state.apply_event(&delta(m, 1, "Hello"), Source::Log);
        state.apply_event(&delta(m, 2, ", wor"), Source::Log);
        assert_eq!(
            state.apply_event(&delta(m, 2, ", wor"), Source::Log),
            Applied::Duplicate
        );
        state.apply_event(&delta(m, 3, "ld"), Source::Log);
        assert_eq!(
            state.apply_event(&delta(m, 1, "Hello"), Source::Log),
            Applied::Duplicate
        );

        assert_eq!(state.message(m).unwrap().content, "Hello, world");
        assert_eq!(
            appended(&mut updates),
            "Hello, world",
            "every piece announced once, in order"
        );
        assert_eq!(state.unfinished(), vec![(m, Some(3))]);
    }

    #[test]
    fn out_of_order_rows_fill_their_gap() {
        let state = State::new();
        let m = Uuid::new_v4();
        state.apply_event(&delta(m, 1, "a"), Source::Log);
        state.apply_event(&delta(m, 3, "c"), Source::Log);
        assert_eq!(state.message(m).unwrap().content, "ac");
        assert_eq!(state.unfinished(), vec![(m, None)], "row 0 still missing");
        state.apply_event(&delta(m, 2, "b"), Source::Log);
        state.apply_event(&event(m, 0, "context", json!({})), Source::Log);
        assert_eq!(state.message(m).unwrap().content, "abc");
        assert_eq!(state.unfinished(), vec![(m, Some(3))]);
    }

    #[test]
    fn stream_pieces_are_replaced_by_their_whole_row() {
        let state = State::new();
        let mut updates = state.subscribe();
        let m = Uuid::new_v4();
        state.apply_event(&delta(m, 1, "Hel"), Source::Stream);
        state.apply_event(&delta(m, 1, "lo"), Source::Stream);
        assert_eq!(
            state.apply_event(&delta(m, 1, "Hello"), Source::Log),
            Applied::Duplicate
        );
        // A late piece of a row already whole changes nothing.
        state.apply_event(&delta(m, 1, "lo"), Source::Stream);
        state.apply_event(&delta(m, 2, " there"), Source::Log);
        state.apply_event(&delta(m, 2, " there"), Source::Stream);
        assert_eq!(state.message(m).unwrap().content, "Hello there");
        assert_eq!(appended(&mut updates), "Hello there");
    }

    #[test]
    fn the_terminal_event_carries_the_whole_text_and_status() {
        let state = State::new();
        let m = Uuid::new_v4();
        state.apply_event(&delta(m, 1, "Partial"), Source::Log);
        state.apply_event(
            &event(
                m,
                5,
                "complete",
                json!({"status": "stopped", "content": "Partial answer", "citations": [{"key": "1", "page": 3}]}),
            ),
            Source::Log,
        );
        let message = state.message(m).unwrap();
        assert_eq!(message.status, MessageStatus::Stopped);
        assert_eq!(message.content, "Partial answer");
        assert_eq!(message.citations[0].page, Some(3));
        assert!(state.unfinished().is_empty());
        // A late delta cannot undo the final text.
        state.apply_event(&delta(m, 2, " more"), Source::Log);
        assert_eq!(state.message(m).unwrap().content, "Partial answer");
    }

    #[test]
    fn a_messages_view_json_has_the_ipc_shape_without_the_score() {
        let state = State::new();
        let m = Uuid::new_v4();
        let d = Uuid::new_v4();
        state.apply_event(
            &event(
                m,
                1,
                "complete",
                json!({"status": "complete", "content": "A [1].", "run_id": "run_1", "citations": [
                    {"key": "1", "chunk_id": d, "document_id": d, "title": "T", "page": 3,
                     "page_end": 4, "excerpt": "e", "score": 0.5}]}),
            ),
            Source::Log,
        );
        let view = serde_json::to_value(state.message(m).unwrap()).unwrap();
        assert_eq!(
            view["citations"],
            json!([{"key": "1", "chunk_id": d, "document_id": d, "title": "T", "page": 3,
                    "page_end": 4, "excerpt": "e"}])
        );
        let mut keys: Vec<&str> = view
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "citations",
                "content",
                "conversation_id",
                "error",
                "id",
                "question_id",
                "role",
                "seq",
                "sources",
                "status",
                "tools"
            ]
        );
    }

    #[test]
    fn message_rows_order_a_conversation_and_final_rows_win() {
        let state = State::new();
        let c = Uuid::new_v4();
        let (q, a) = (Uuid::new_v4(), Uuid::new_v4());
        let row = |id, seq, role, status, content: &str| MessageRow {
            id,
            conversation_id: c,
            seq,
            role,
            status,
            content: content.into(),
            citations: vec![],
            sources: vec![],
            question_id: None,
            error: None,
        };
        state.apply_message_row(&row(a, 1, Role::Assistant, MessageStatus::Streaming, ""));
        state.apply_message_row(&row(q, 0, Role::User, MessageStatus::Complete, "Why?"));
        let list = state.messages(c);
        assert_eq!(list.iter().map(|m| m.id).collect::<Vec<_>>(), [q, a]);
        assert_eq!(list[0].content, "Why?");
        assert_eq!(list[1].status, MessageStatus::Streaming);
        state.apply_message_row(&row(
            a,
            1,
            Role::Assistant,
            MessageStatus::Complete,
            "Because.",
        ));
        assert_eq!(state.message(a).unwrap().content, "Because.");
    }

    #[test]
    fn clearing_announces_every_removal_and_forgets_messages() {
        let state = State::new();
        let c = Uuid::new_v4();
        let at = DateTime::<Utc>::from_timestamp(10, 0).unwrap();
        state.apply_conversation(&Conversation {
            id: c,
            title: Some("Lease".into()),
            created_at: at,
            updated_at: at,
            archived_at: None,
            document_ids: Vec::new(),
        });
        let m = Uuid::new_v4();
        state.apply_event(&delta(m, 1, "Hello"), Source::Log);
        let mut updates = state.subscribe();

        state.clear();

        assert_eq!(
            updates.try_recv().unwrap(),
            Update::ConversationRemoved { id: c }
        );
        assert!(state.conversations().is_empty());
        assert!(state.message(m).is_none());
        assert!(state.unfinished().is_empty());
    }

    #[test]
    fn older_document_news_is_ignored() {
        let state = State::new();
        let id = Uuid::new_v4();
        let at = |secs| DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
        let doc = |status, secs| Document {
            id,
            title: "Lease".into(),
            status,
            error: None,
            page_count: None,
            byte_size: Some(10),
            updated_at: at(secs),
            upload: None,
            uploading: None,
        };
        state.apply_document(&doc(DocumentStatus::Uploading, 10));
        state.upload_progress(id, 5, 10);
        assert_eq!(
            state.document(id).unwrap().upload,
            Some(UploadProgress { sent: 5, total: 10 })
        );
        state.apply_document(&doc(DocumentStatus::Indexing, 30));
        state.apply_document(&doc(DocumentStatus::Extracting, 20));
        let shown = state.document(id).unwrap();
        assert_eq!(shown.status, DocumentStatus::Indexing);
        assert_eq!(shown.upload, None);
        state.remove_document(id);
        assert!(state.documents().is_empty());
    }

    #[test]
    fn an_upload_turning_stale_is_handed_out_again_once() {
        let state = State::new();
        let now = Utc::now();
        let id = Uuid::new_v4();
        state.apply_document(&Document {
            id,
            title: "Lease".into(),
            status: DocumentStatus::Uploading,
            error: None,
            page_count: None,
            byte_size: Some(10),
            updated_at: now - chrono::TimeDelta::minutes(59),
            upload: None,
            uploading: None,
        });
        let mut updates = state.subscribe();
        state.recheck_uploads_at(now);
        assert!(updates.try_recv().is_err(), "still another device's");
        state.recheck_uploads_at(now + chrono::TimeDelta::minutes(2));
        match updates.try_recv() {
            Ok(Update::Document(d)) => assert_eq!(d.uploading, Some(Uploading::Interrupted)),
            other => panic!("{other:?}"),
        }
        state.recheck_uploads_at(now + chrono::TimeDelta::minutes(3));
        assert!(updates.try_recv().is_err(), "handed out once");
    }

    #[test]
    fn an_uploading_document_is_here_elsewhere_or_interrupted() {
        let began = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let document = Document {
            id: Uuid::nil(),
            title: "Lease".into(),
            status: DocumentStatus::Uploading,
            error: None,
            page_count: None,
            byte_size: Some(10),
            updated_at: began,
            upload: None,
            uploading: None,
        };
        let minutes = |m| began + chrono::TimeDelta::minutes(m);
        assert_eq!(uploading(&document, minutes(1)), Some(Uploading::Elsewhere));
        assert_eq!(
            uploading(&document, minutes(60)),
            Some(Uploading::Elsewhere)
        );
        assert_eq!(
            uploading(&document, minutes(61)),
            Some(Uploading::Interrupted)
        );
        let here = Document {
            upload: Some(UploadProgress { sent: 0, total: 10 }),
            ..document.clone()
        };
        assert_eq!(uploading(&here, minutes(90)), Some(Uploading::Here));
        let cut_here = Document {
            error: Some("Upload interrupted: the file is gone".into()),
            ..document.clone()
        };
        assert_eq!(
            uploading(&cut_here, minutes(1)),
            Some(Uploading::Interrupted)
        );
        for status in [
            DocumentStatus::Stored,
            DocumentStatus::Ready,
            DocumentStatus::Failed,
        ] {
            let settled = Document {
                status,
                ..document.clone()
            };
            assert_eq!(uploading(&settled, minutes(120)), None);
        }
    }
}
