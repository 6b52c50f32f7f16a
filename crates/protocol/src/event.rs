//! Quire's chat events — what `POST /api/chat` streams, what
//! `public.chat_events` stores and what Realtime broadcasts on the private
//! topic `user:<uid>` (`crates/companion/EVENTS.md`).
//!
//! Every event is `{message_id, conversation_id, seq, kind, payload}`
//! (Realtime adds `created_at`, which is ignored here). `seq` increases
//! strictly per persisted row of a message, from 0 with `context`. The one
//! exception to "one event, one row": over SSE the companion relays each
//! delta the moment it arrives and stores all deltas of one interval as one
//! row, so several SSE deltas may share a `seq` — pieces of that row, in
//! order — while Realtime and the table carry the whole row once.
//!
//! A kind this version does not know deserializes as
//! [`EventBody::Unknown`], keeping its kind and payload; a known kind with a
//! payload that does not fit is an error, never an unknown event.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Every `kind` of [`EventBody`] but `Unknown`: the values the
/// `chat_events.kind` check constraint allows (`db/app/20_conversations.sql`).
pub const KINDS: [&str; 7] = [
    "context",
    "status",
    "delta",
    "tool_call",
    "tool_result",
    "complete",
    "error",
];

/// One chat event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatEvent {
    /// The answer's `chat_messages.id`.
    pub message_id: Uuid,
    /// The conversation the answer belongs to.
    pub conversation_id: Uuid,
    /// The event's place in its answer: strictly increasing per message,
    /// from 0 (the `context` event). Deltas relayed live share the `seq` of
    /// the row they are coalesced into.
    pub seq: i32,
    /// `kind` and `payload`.
    #[serde(flatten)]
    pub body: EventBody,
}

/// What an event says, by `kind`; serialized as `"kind": …, "payload": {…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum EventBody {
    /// First event (seq 0): the question's row and the chunks the answer was
    /// given, in the client's order, after the user's own RLS dropped any id
    /// that is not theirs.
    Context {
        /// The question's `chat_messages.id`.
        #[serde(default)]
        user_message_id: Option<Uuid>,
        /// The chunks, in the client's order; context item `n` is `chunks[n-1]`.
        #[serde(default)]
        chunks: Vec<ContextChunk>,
        /// How many of the sent chunk ids were dropped (unknown ids count
        /// the same).
        #[serde(default)]
        dropped: u32,
    },
    /// The platform accepted the run (`state` is `running`).
    Status {
        /// The run's state (`running`).
        #[serde(default)]
        state: Option<String>,
        /// The platform's run id (`run_…`), for the operator's logs.
        #[serde(default)]
        run_id: Option<String>,
    },
    /// A piece of the answer's text.
    Delta {
        /// The piece; appended to what came before.
        text: String,
    },
    /// The agent called a tool; `arguments` never hold the `session_token`.
    ToolCall {
        /// The tool's name.
        #[serde(default)]
        tool_name: Option<String>,
        /// The call's id, repeated by its `tool_result`.
        #[serde(default)]
        call_id: Option<String>,
        /// The model's arguments, as the model wrote them (untrusted).
        #[serde(default)]
        arguments: Value,
    },
    /// A tool answered; `preview` is the platform's first 200 characters.
    ToolResult {
        /// The tool's name.
        #[serde(default)]
        tool_name: Option<String>,
        /// The id of the call it answers.
        #[serde(default)]
        call_id: Option<String>,
        /// The start of the result (untrusted).
        #[serde(default)]
        preview: Option<String>,
        /// How long the call took.
        #[serde(default)]
        duration_ms: Option<u64>,
    },
    /// Terminal: finished (`complete`) or stopped (`stopped`). `content` is
    /// the whole text and replaces what the deltas built.
    Complete {
        /// `complete` or `stopped`.
        #[serde(default = "complete")]
        status: MessageStatus,
        /// The whole text of the answer.
        #[serde(default)]
        content: String,
        /// The sources the text cites, by their `[n]` markers.
        #[serde(default)]
        citations: Vec<Citation>,
        /// The platform's run id, for the operator's logs.
        #[serde(default)]
        run_id: Option<String>,
    },
    /// Terminal: the answer failed; `content` is the partial text, kept.
    Error {
        /// Why, for the client to switch on.
        #[serde(default)]
        code: Option<FailureCode>,
        /// What happened and what to do, for a person.
        #[serde(default)]
        message: String,
        /// The text that arrived before the failure.
        #[serde(default)]
        content: String,
    },
    /// A kind this version does not know, kept as it came.
    #[serde(untagged)]
    Unknown {
        /// The event's kind.
        kind: UnknownKind,
        /// Its payload, untouched.
        #[serde(default)]
        payload: Value,
    },
}

fn complete() -> MessageStatus {
    MessageStatus::Complete
}

impl EventBody {
    /// The event's `kind` (also its SSE `event:` name).
    pub fn kind(&self) -> &str {
        match self {
            EventBody::Context { .. } => "context",
            EventBody::Status { .. } => "status",
            EventBody::Delta { .. } => "delta",
            EventBody::ToolCall { .. } => "tool_call",
            EventBody::ToolResult { .. } => "tool_result",
            EventBody::Complete { .. } => "complete",
            EventBody::Error { .. } => "error",
            EventBody::Unknown { kind, .. } => kind.as_str(),
        }
    }

    /// Whether this event ends its message (`complete` or `error`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, EventBody::Complete { .. } | EventBody::Error { .. })
    }
}

/// The `kind` of an [`EventBody::Unknown`]: any string but one of [`KINDS`]
/// (a known kind whose payload does not fit is refused, not kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UnknownKind(String);

impl UnknownKind {
    /// `None` for one of [`KINDS`].
    pub fn new(kind: impl Into<String>) -> Option<UnknownKind> {
        let kind = kind.into();
        (!KINDS.contains(&kind.as_str())).then_some(UnknownKind(kind))
    }

    /// The kind as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for UnknownKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let kind = String::deserialize(deserializer)?;
        UnknownKind::new(kind.clone()).ok_or_else(|| {
            serde::de::Error::custom(format!("a {kind} event with a payload that does not fit"))
        })
    }
}

/// A chunk an answer was given (`context.chunks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextChunk {
    /// The `document_chunks.id` the client sent.
    pub id: Uuid,
    /// The user's document the chunk is from.
    pub document_id: Uuid,
    /// The platform's chunk.
    #[serde(default)]
    pub chunk_id: Option<Uuid>,
    /// The first page the chunk spans; `None` when the platform knew none.
    #[serde(default)]
    pub page: Option<i32>,
    /// The last page the chunk spans; see [`Citation::page_end`].
    #[serde(default)]
    pub page_end: Option<i32>,
    /// The document's title.
    #[serde(default)]
    pub title: String,
}

/// A citation of an answer: which numbered source (`key`, the `[n]` marker
/// in the text) points at which document and pages. Matched to the context
/// by its key, so it always names one of the user's own chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The marker's number as written in the text (`"2"` for `[2]`).
    #[serde(default)]
    pub key: Option<String>,
    /// The `document_chunks.id`.
    #[serde(default)]
    pub chunk_id: Option<Uuid>,
    /// The user's document the chunk is from.
    #[serde(default)]
    pub document_id: Option<Uuid>,
    /// The document's title.
    #[serde(default)]
    pub title: Option<String>,
    /// The first page the cited chunk spans: where to open the document.
    /// `None` when the pages are unknown (open it at page 1).
    #[serde(default)]
    pub page: Option<i32>,
    /// The last page the cited chunk spans: chunks are cut from a document's
    /// pages joined, so one may cross a page break ("pp. 3–4"). Equal to
    /// `page` for one page; `None` when the pages are unknown, and absent on
    /// answers stored before it existed (read it as `page`).
    #[serde(default)]
    pub page_end: Option<i32>,
    /// The first 300 characters of the chunk.
    #[serde(default)]
    pub excerpt: Option<String>,
    /// The platform's relevance score, when it gave one.
    #[serde(default)]
    pub score: Option<f64>,
}

/// `chat_messages.status`, and `complete.status` (`complete` or `stopped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Being written.
    Streaming,
    /// Finished.
    Complete,
    /// Stopped by its owner; the text so far is kept.
    Stopped,
    /// Failed; the text so far is kept.
    Failed,
}

impl MessageStatus {
    /// Whether the message will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, MessageStatus::Streaming)
    }

    /// The database's word for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Streaming => "streaming",
            MessageStatus::Complete => "complete",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Failed => "failed",
        }
    }
}

/// Why an answer failed: the `code` of an `error` event. A code this
/// version does not know is kept as [`FailureCode::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// The AI service could not start the run (unreachable, 5xx, out of
    /// credits).
    PlatformUnavailable,
    /// The platform refused the run because the agent's model has no API
    /// key; only the server's administrator can fix it.
    ModelNotConfigured,
    /// The AI service reported a failure during the run.
    PlatformError,
    /// The AI service's stream stopped before the answer was complete.
    PlatformStreamEnded,
    /// The answer took longer than the companion's run timeout.
    Timeout,
    /// The companion shut down while answering.
    Interrupted,
    /// A code this version does not know.
    #[serde(untagged)]
    Unknown(String),
}

impl FailureCode {
    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            FailureCode::PlatformUnavailable => "platform_unavailable",
            FailureCode::ModelNotConfigured => "model_not_configured",
            FailureCode::PlatformError => "platform_error",
            FailureCode::PlatformStreamEnded => "platform_stream_ended",
            FailureCode::Timeout => "timeout",
            FailureCode::Interrupted => "interrupted",
            FailureCode::Unknown(code) => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const M: &str = "6f1c2a9e-1d2b-4c3d-8e4f-5a6b7c8d9e0f";
    const C: &str = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    const CHUNK: &str = "99999999-8888-4777-8666-555555555555";
    const DOC: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

    fn uuid(s: &str) -> Uuid {
        s.parse().unwrap()
    }

    fn event(seq: i32, body: EventBody) -> ChatEvent {
        ChatEvent {
            message_id: uuid(M),
            conversation_id: uuid(C),
            seq,
            body,
        }
    }

    /// Serializes `event`, checks it is exactly `wire` (the JSON of
    /// `crates/companion/EVENTS.md`), and reads `wire` back into `event`.
    fn round_trip(event: ChatEvent, wire: &str) {
        let wire: Value = serde_json::from_str(wire).unwrap();
        assert_eq!(wire["kind"], event.body.kind());
        assert!(KINDS.contains(&event.body.kind()) || wire["kind"] == "reasoning");
        assert_eq!(serde_json::to_value(&event).unwrap(), wire);
        assert_eq!(serde_json::from_value::<ChatEvent>(wire).unwrap(), event);
    }

    #[test]
    fn the_kinds_are_those_chat_events_allows_in_db_app() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../db/app/20_conversations.sql"
        );
        let sql = std::fs::read_to_string(path).unwrap();
        let table = &sql[sql
            .find("create table if not exists public.chat_events")
            .unwrap()..];
        let check = &table[table.find("check (kind in (").unwrap() + "check (kind in (".len()..];
        let list = &check[..check.find("))").unwrap()];
        let mut in_db: Vec<&str> = list
            .split(',')
            .map(|k| k.trim().trim_matches('\''))
            .collect();
        let mut ours = KINDS.to_vec();
        in_db.sort_unstable();
        ours.sort_unstable();
        assert_eq!(in_db, ours);
    }

    #[test]
    fn context_round_trips() {
        round_trip(
            event(
                0,
                EventBody::Context {
                    user_message_id: Some(uuid(CHUNK)),
                    chunks: vec![ContextChunk {
                        id: uuid(CHUNK),
                        document_id: uuid(DOC),
                        chunk_id: Some(uuid(CHUNK)),
                        page: Some(7),
                        page_end: Some(8),
                        title: "Lease.pdf".into(),
                    }],
                    dropped: 1,
                },
            ),
            &format!(
                r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 0, "kind": "context",
                    "payload": {{"user_message_id": "{CHUNK}", "dropped": 1, "chunks": [
                      {{"id": "{CHUNK}", "document_id": "{DOC}", "chunk_id": "{CHUNK}",
                        "page": 7, "page_end": 8, "title": "Lease.pdf"}}]}}}}"#
            ),
        );
    }

    #[test]
    fn status_round_trips() {
        round_trip(
            event(
                1,
                EventBody::Status {
                    state: Some("running".into()),
                    run_id: Some("run_1".into()),
                },
            ),
            &format!(
                r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 1, "kind": "status",
                    "payload": {{"state": "running", "run_id": "run_1"}}}}"#
            ),
        );
    }

    #[test]
    fn delta_round_trips() {
        round_trip(
            event(
                3,
                EventBody::Delta {
                    text: "The warr".into(),
                },
            ),
            &format!(
                r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 3, "kind": "delta",
                    "payload": {{"text": "The warr"}}}}"#
            ),
        );
    }

    #[test]
    fn tool_call_round_trips() {
        round_trip(
            event(
                4,
                EventBody::ToolCall {
                    tool_name: Some("search_my_documents".into()),
                    call_id: Some("call_1".into()),
                    arguments: json!({"query": "pets"}),
                },
            ),
            &format!(
                r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 4, "kind": "tool_call",
                    "payload": {{"tool_name": "search_my_documents", "call_id": "call_1",
                                 "arguments": {{"query": "pets"}}}}}}"#
            ),
        );
    }

    #[test]
    fn tool_result_round_trips() {
        round_trip(
            event(
                5,
                EventBody::ToolResult {
                    tool_name: Some("search_my_documents".into()),
                    call_id: Some("call_1".into()),
                    preview: Some("[{\"text\": \"Pets".into()),
                    duration_ms: Some(42),
                },
            ),
            &format!(
                r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 5, "kind": "tool_result",
                    "payload": {{"tool_name": "search_my_documents", "call_id": "call_1",
                                 "preview": "[{{\"text\": \"Pets", "duration_ms": 42}}}}"#
            ),
        );
    }

    #[test]
    fn complete_round_trips_with_its_citations() {
        round_trip(
            event(
                6,
                EventBody::Complete {
                    status: MessageStatus::Complete,
                    content: "Pets are allowed [2].".into(),
                    citations: vec![Citation {
                        key: Some("2".into()),
                        chunk_id: Some(uuid(CHUNK)),
                        document_id: Some(uuid(DOC)),
                        title: Some("Lease.pdf".into()),
                        page: Some(7),
                        page_end: Some(8),
                        excerpt: Some("first 300 characters of the chunk".into()),
                        score: Some(0.61),
                    }],
                    run_id: Some("run_1".into()),
                },
            ),
            &format!(
                r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 6, "kind": "complete",
                    "payload": {{"status": "complete", "content": "Pets are allowed [2].", "run_id": "run_1",
                      "citations": [{{"key": "2", "chunk_id": "{CHUNK}", "document_id": "{DOC}",
                        "title": "Lease.pdf", "page": 7, "page_end": 8,
                        "excerpt": "first 300 characters of the chunk", "score": 0.61}}]}}}}"#
            ),
        );
        round_trip(
            event(
                6,
                EventBody::Complete {
                    status: MessageStatus::Stopped,
                    content: "Pets".into(),
                    citations: vec![],
                    run_id: None,
                },
            ),
            &format!(
                r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 6, "kind": "complete",
                    "payload": {{"status": "stopped", "content": "Pets", "citations": [], "run_id": null}}}}"#
            ),
        );
    }

    #[test]
    fn error_round_trips_with_every_code_and_keeps_unknown_codes() {
        for (code, text) in [
            (FailureCode::PlatformUnavailable, "platform_unavailable"),
            (FailureCode::ModelNotConfigured, "model_not_configured"),
            (FailureCode::PlatformError, "platform_error"),
            (FailureCode::PlatformStreamEnded, "platform_stream_ended"),
            (FailureCode::Timeout, "timeout"),
            (FailureCode::Interrupted, "interrupted"),
            (
                FailureCode::Unknown("quota_exceeded".into()),
                "quota_exceeded",
            ),
        ] {
            assert_eq!(code.as_str(), text);
            round_trip(
                event(
                    7,
                    EventBody::Error {
                        code: Some(code),
                        message: "Try again.".into(),
                        content: "Pets".into(),
                    },
                ),
                &format!(
                    r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 7, "kind": "error",
                        "payload": {{"code": "{text}", "message": "Try again.", "content": "Pets"}}}}"#
                ),
            );
        }
    }

    #[test]
    fn unknown_kinds_are_kept_whole_and_serialize_back() {
        let wire = format!(
            r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 8, "kind": "reasoning",
                "payload": {{"thought": "hm", "n": 1}}}}"#
        );
        let parsed: ChatEvent = serde_json::from_str(&wire).unwrap();
        assert_eq!(parsed.body.kind(), "reasoning");
        assert!(!parsed.body.is_terminal());
        assert_eq!(
            parsed.body,
            EventBody::Unknown {
                kind: UnknownKind::new("reasoning").unwrap(),
                payload: json!({"thought": "hm", "n": 1}),
            }
        );
        round_trip(parsed, &wire);
        assert_eq!(UnknownKind::new("delta"), None);
    }

    #[test]
    fn a_known_kind_with_a_bad_payload_is_refused_not_unknown() {
        let base = format!(r#""message_id": "{M}", "conversation_id": "{C}", "seq": 1"#);
        for bad in [
            r#""kind": "delta", "payload": {}"#,
            r#""kind": "delta", "payload": {"text": 3}"#,
            r#""kind": "complete", "payload": {"status": "exploded"}"#,
            r#""kind": "context", "payload": {"chunks": [{"id": "not a uuid"}]}"#,
        ] {
            let wire = format!("{{{base}, {bad}}}");
            assert!(serde_json::from_str::<ChatEvent>(&wire).is_err(), "{wire}");
        }
        assert!(serde_json::from_str::<ChatEvent>(r#"{"kind": "delta"}"#).is_err());
    }

    #[test]
    fn lenient_where_old_rows_and_broadcasts_differ() {
        // A Realtime broadcast adds created_at; rows stored before page_end
        // existed lack it; a citation without pages has nulls.
        let wire = format!(
            r#"{{"message_id": "{M}", "conversation_id": "{C}", "seq": 4, "kind": "complete",
                "created_at": "2026-01-01T00:00:00Z",
                "payload": {{"content": "A [1][2].", "citations": [
                  {{"key": "1", "page": 5}}, {{"key": "2", "page": null, "page_end": null}}]}}}}"#
        );
        let parsed: ChatEvent = serde_json::from_str(&wire).unwrap();
        let EventBody::Complete {
            status, citations, ..
        } = parsed.body
        else {
            panic!("{parsed:?}");
        };
        assert_eq!(status, MessageStatus::Complete);
        let pages: Vec<_> = citations.iter().map(|c| (c.page, c.page_end)).collect();
        assert_eq!(pages, [(Some(5), None), (None, None)]);
    }

    #[test]
    fn message_statuses_are_the_db_app_words() {
        for status in [
            MessageStatus::Streaming,
            MessageStatus::Complete,
            MessageStatus::Stopped,
            MessageStatus::Failed,
        ] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                json!(status.as_str())
            );
            assert_eq!(status.is_final(), status != MessageStatus::Streaming);
        }
    }
}
