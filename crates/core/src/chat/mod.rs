//! Asking: retrieval, then the companion's answer as a typed, cancellable
//! stream of [`ChatEvent`]s; and the conversations and their history,
//! through PostgREST.
//!
//! Dropping an [`Answer`] stops only this client's view (the companion
//! finishes and persists the answer; other devices keep following it).
//! [`Stopper::stop`] stops the answer itself.

pub mod event;
pub(crate) mod sse;

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::companion::Companion;
use crate::error::{Error, Result};
use crate::rest::{Rest, eq};
use crate::search::ChunkHit;
use crate::state::{Conversation, Message, MessageRow, Source, State};
pub use event::{ChatEvent, Citation, ContextChunk, EventBody, FailureCode, MessageStatus};

/// Messages per history page by default.
pub const DEFAULT_PAGE: u32 = 50;

/// An answer being streamed to this client.
pub struct Answer {
    /// The chunks retrieved for the question (shown before the answer).
    pub sources: Vec<ChunkHit>,
    events: Pin<Box<dyn Stream<Item = Result<ChatEvent>> + Send>>,
    ids: watch::Sender<Option<(Uuid, Uuid)>>,
    state: Arc<State>,
    companion: Companion,
}

impl Answer {
    pub(crate) fn new(
        sources: Vec<ChunkHit>,
        ids: Option<(Uuid, Uuid)>,
        events: impl Stream<Item = Result<ChatEvent>> + Send + 'static,
        state: Arc<State>,
        companion: Companion,
    ) -> Answer {
        Answer {
            sources,
            events: Box::pin(events),
            ids: watch::channel(ids).0,
            state,
            companion,
        }
    }

    /// The next event, already applied to the state model. `None` after the
    /// terminal event; an error (once) when the stream broke off — the
    /// follower then catches the answer up from the event log.
    pub async fn next(&mut self) -> Option<Result<ChatEvent>> {
        let item = self.events.next().await?;
        if let Ok(event) = &item {
            if self.ids.borrow().is_none() {
                self.ids
                    .send_replace(Some((event.conversation_id, event.message_id)));
            }
            self.state.apply_event(event, Source::Stream);
        }
        Some(item)
    }

    /// The answer's message id, once the first event has arrived.
    pub fn message_id(&self) -> Option<Uuid> {
        self.ids.borrow().map(|(_, m)| m)
    }

    /// The conversation, once the first event has arrived (new when `ask`
    /// was given none).
    pub fn conversation_id(&self) -> Option<Uuid> {
        self.ids.borrow().map(|(c, _)| c)
    }

    /// Which conversation and answer this is. The companion names both in
    /// headers; an older one only in its first event, which this then waits
    /// for (and applies). [`Error::Cancelled`] when the stream ends first.
    pub async fn ids(&mut self) -> Result<Asked> {
        if self.message_id().is_none() {
            match self.next().await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(Error::Cancelled),
            }
        }
        let ids = *self.ids.borrow();
        let (conversation_id, message_id) = ids.ok_or(Error::Cancelled)?;
        Ok(Asked {
            conversation_id,
            message_id,
        })
    }

    /// Applies every remaining event to the state model, to the end of the
    /// stream. A stream that breaks off is logged and left to the follower,
    /// which catches the answer up from the event log.
    pub async fn drain(mut self) {
        while let Some(event) = self.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "the answer stream broke off");
                return;
            }
        }
    }

    /// A handle that stops this answer, usable from another task.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            ids: self.ids.subscribe(),
            companion: self.companion.clone(),
        }
    }
}

/// The ids of an answer that was asked for: its conversation (new when
/// none was given) and its message. What the UI follows it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[ts(rename = "AskResult")]
pub struct Asked {
    /// The conversation the question went into.
    pub conversation_id: Uuid,
    /// The answer's `chat_messages.id`, which its events carry.
    pub message_id: Uuid,
}

/// Stops an answer (the companion's stop route).
#[derive(Clone)]
pub struct Stopper {
    ids: watch::Receiver<Option<(Uuid, Uuid)>>,
    companion: Companion,
}

impl Stopper {
    /// Stops the answer and returns its final status (`stopped`, or what it
    /// had already become). Before the first event has arrived this waits for
    /// the answer's id; [`Error::Cancelled`] if the stream ends first.
    pub async fn stop(&self) -> Result<String> {
        let mut ids = self.ids.clone();
        let (_, message_id) = ids
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::Cancelled)?
            .expect("waited for Some");
        self.companion.stop(message_id).await
    }
}

/// One page of a conversation's history, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    /// The page's messages, oldest first.
    pub messages: Vec<Message>,
    /// `seq` to pass as `before` for the previous page; `None` at the start.
    pub before: Option<i32>,
}

pub(crate) const CONVERSATION_COLUMNS: &str =
    "id,title,created_at,updated_at,archived_at,document_ids";
pub(crate) const MESSAGE_COLUMNS: &str =
    "id,conversation_id,seq,role,status,content,citations,sources,question_id,error,updated_at";
pub(crate) const EVENT_COLUMNS: &str = "message_id,conversation_id,seq,kind,payload";

/// Lists conversations, most recently updated first.
pub(crate) async fn conversations(
    rest: &Rest,
    state: &State,
    limit: u32,
    offset: u32,
    archived: bool,
) -> Result<Vec<Conversation>> {
    let mut query = vec![
        ("select", CONVERSATION_COLUMNS.to_owned()),
        ("order", "updated_at.desc,id.asc".to_owned()),
        ("limit", limit.to_string()),
        ("offset", offset.to_string()),
    ];
    if !archived {
        query.push(("archived_at", "is.null".to_owned()));
    }
    let rows: Vec<Conversation> = rest.select("conversations", &query).await?;
    for row in &rows {
        state.apply_conversation(row);
    }
    Ok(rows)
}

/// Conversations whose title or any message's content contains `query`
/// (case-insensitive `ilike` through PostgREST under the user's token, so
/// RLS keeps it to the user's own rows), most recently updated first.
pub(crate) async fn search(rest: &Rest, state: &State, query: &str) -> Result<Vec<Conversation>> {
    /// Matches per kind of row; a sidebar shows far fewer.
    const LIMIT: usize = 100;
    let query = query.trim();
    if query.is_empty() {
        return conversations(rest, state, LIMIT as u32, 0, true).await;
    }
    let pattern = format!("ilike.*{}*", like_literal(query));
    let mut found: Vec<Conversation> = rest
        .select(
            "conversations",
            &[
                ("select", CONVERSATION_COLUMNS.to_owned()),
                ("title", pattern.clone()),
                ("order", "updated_at.desc,id.asc".to_owned()),
                ("limit", LIMIT.to_string()),
            ],
        )
        .await?;
    #[derive(serde::Deserialize)]
    struct Hit {
        conversation_id: Uuid,
    }
    let hits: Vec<Hit> = rest
        .select(
            "chat_messages",
            &[
                ("select", "conversation_id".to_owned()),
                ("content", pattern),
                ("order", "updated_at.desc,id.asc".to_owned()),
                ("limit", (LIMIT * 4).to_string()),
            ],
        )
        .await?;
    let mut more: Vec<String> = Vec::new();
    for hit in hits {
        let id = hit.conversation_id;
        let id_text = id.to_string();
        if !found.iter().any(|c| c.id == id) && !more.contains(&id_text) && more.len() < LIMIT {
            more.push(id_text);
        }
    }
    if !more.is_empty() {
        let rows: Vec<Conversation> = rest
            .select(
                "conversations",
                &[
                    ("select", CONVERSATION_COLUMNS.to_owned()),
                    ("id", format!("in.({})", more.join(","))),
                ],
            )
            .await?;
        found.extend(rows);
    }
    found.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
    found.truncate(LIMIT);
    for row in &found {
        state.apply_conversation(row);
    }
    Ok(found)
}

/// `text` as a literal inside a PostgREST `ilike` pattern: LIKE's own
/// wildcards and escape are escaped; PostgREST turns every `*` into `%` and
/// has no escape for it, so a `*` in the text matches any one character.
pub(crate) fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            '*' => out.push('_'),
            c => out.push(c),
        }
    }
    out
}

/// Reads conversation `id` into the state (RLS: only the user's own).
pub(crate) async fn fetch_conversation(rest: &Rest, state: &State, id: Uuid) -> Result<()> {
    let rows: Vec<Conversation> = rest
        .select(
            "conversations",
            &[("select", CONVERSATION_COLUMNS.to_owned()), ("id", eq(id))],
        )
        .await?;
    for row in &rows {
        state.apply_conversation(row);
    }
    Ok(())
}

/// Renames a conversation (`title`), or archives / unarchives it.
pub(crate) async fn update_conversation(
    rest: &Rest,
    state: &State,
    id: Uuid,
    changes: serde_json::Value,
) -> Result<Conversation> {
    let rows: Vec<Conversation> = rest
        .update(
            "conversations",
            &[("id", eq(id)), ("select", CONVERSATION_COLUMNS.to_owned())],
            &changes,
        )
        .await?;
    let row = rows.into_iter().next().ok_or_else(|| Error::NotFound {
        what: "conversation".into(),
    })?;
    state.apply_conversation(&row);
    Ok(row)
}

pub(crate) async fn rename(
    rest: &Rest,
    state: &State,
    id: Uuid,
    title: &str,
) -> Result<Conversation> {
    let title = title.trim();
    if title.is_empty() || title.chars().count() > 1024 {
        return Err(Error::BadInput {
            service: crate::error::Service::Database,
            message: "a conversation's title must be 1 to 1024 characters".into(),
        });
    }
    update_conversation(rest, state, id, json!({"title": title})).await
}

/// Creates an empty conversation owned by the user, asking about
/// `document_ids` (all documents when empty).
pub(crate) async fn create(
    rest: &Rest,
    state: &State,
    title: &str,
    document_ids: &[Uuid],
) -> Result<Conversation> {
    let rows: Vec<Conversation> = rest
        .insert(
            "conversations",
            &json!({"owner_id": rest.user_id()?, "title": title, "document_ids": document_ids}),
        )
        .await
        .map_err(crate::search::scope_refused)?;
    let row = rows.into_iter().next().ok_or_else(|| {
        Error::unexpected(
            crate::error::Service::Database,
            "no row came back from the insert",
            "",
        )
    })?;
    state.apply_conversation(&row);
    Ok(row)
}

pub(crate) async fn delete(rest: &Rest, state: &State, id: Uuid) -> Result<()> {
    let deleted = rest.delete("conversations", &[("id", eq(id))]).await?;
    if deleted == 0 {
        return Err(Error::NotFound {
            what: "conversation".into(),
        });
    }
    state.remove_conversation(id);
    Ok(())
}

/// A page of history: up to `limit` messages before `before` (a seq), and
/// the events of any answer still streaming among them.
pub(crate) async fn history(
    rest: &Rest,
    state: &State,
    conversation_id: Uuid,
    before: Option<i32>,
    limit: u32,
) -> Result<HistoryPage> {
    let mut query = vec![
        ("select", MESSAGE_COLUMNS.to_owned()),
        ("conversation_id", eq(conversation_id)),
        ("order", "seq.desc".to_owned()),
        ("limit", limit.max(1).to_string()),
    ];
    if let Some(before) = before {
        query.push(("seq", format!("lt.{before}")));
    }
    let mut rows: Vec<MessageRow> = rest.select("chat_messages", &query).await?;
    rows.reverse();
    for row in &rows {
        state.apply_message_row(row);
        if !row.status.is_final() {
            catch_up_message(rest, state, row.id, None).await?;
        }
    }
    let before = (rows.len() as u32 >= limit.max(1))
        .then(|| rows.first().map(|r| r.seq))
        .flatten()
        .filter(|seq| *seq > 0);
    Ok(HistoryPage {
        messages: rows.iter().filter_map(|r| state.message(r.id)).collect(),
        before,
    })
}

/// Applies the logged events of `message_id` after `after` (all when `None`).
pub(crate) async fn catch_up_message(
    rest: &Rest,
    state: &State,
    message_id: Uuid,
    after: Option<i32>,
) -> Result<usize> {
    const PAGE: usize = 1000;
    let mut after = after.unwrap_or(-1);
    let mut applied = 0;
    loop {
        let rows: Vec<serde_json::Value> = rest
            .select(
                "chat_events",
                &[
                    ("select", EVENT_COLUMNS.to_owned()),
                    ("message_id", eq(message_id)),
                    ("seq", format!("gt.{after}")),
                    ("order", "seq.asc".to_owned()),
                    ("limit", PAGE.to_string()),
                ],
            )
            .await?;
        let count = rows.len();
        for row in rows {
            let event = event::from_json(row)
                .map_err(|e| Error::unexpected(crate::error::Service::Database, e, ""))?;
            after = after.max(event.seq);
            if state.apply_event(&event, Source::Log) == crate::state::Applied::Changed {
                applied += 1;
            }
        }
        if count < PAGE {
            return Ok(applied);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_literal_in_a_like_pattern() {
        assert_eq!(like_literal("rent"), "rent");
        assert_eq!(like_literal("50%_off\\"), "50\\%\\_off\\\\");
        assert_eq!(like_literal("a*b"), "a_b");
        assert_eq!(like_literal("(x, y).z"), "(x, y).z");
    }
}
