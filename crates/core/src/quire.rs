//! [`Quire`]: the one handle the desktop shell and the CLI hold. Every
//! decision lives behind these functions; the shell's commands are a few
//! lines each.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use serde_json::json;
use uuid::Uuid;

use crate::auth::browser::{self, Browser, BrowserSignIn};
use crate::auth::store::Profile;
use crate::auth::{Auth, AuthState, AuthStatus, KeyringStore, SignUp, TokenStore, User};
use crate::chat::{self, Answer, Asked, HistoryPage, sse};
use crate::companion::Companion;
use crate::config::Config;
use crate::documents;
use crate::error::Result;
use crate::follow::{self, FollowOptions, Follower};
use crate::http::Api;
use crate::rest::Rest;
use crate::search::{self, ChunkHit, DEFAULT_MATCH_COUNT};
use crate::state::{Conversation, Document, DocumentStatus, State, Update};
use crate::upload::{self, UploadEvent, UploadOptions};

/// How long [`Quire::wait_settled`] waits for news before it reads the
/// documents from the database again.
const SETTLE_POLL: Duration = Duration::from_secs(5);

/// A Quire client for one project. Cheap to clone; clones share the
/// session and the state model.
#[derive(Clone)]
pub struct Quire {
    pub(crate) api: Api,
    pub(crate) auth: Arc<Auth>,
    pub(crate) rest: Rest,
    pub(crate) companion: Companion,
    pub(crate) state: Arc<State>,
}

impl Quire {
    /// A client that keeps its sign-in in the OS keyring. Needs a tokio
    /// runtime (it starts the token refresher).
    pub fn new(config: Config) -> Quire {
        Quire::with_profile(config, &Profile::default())
    }

    /// A client whose sign-in is `profile`'s keyring entry (see [`Profile`]):
    /// the desktop app and `quire-cli` with the same profile share it.
    pub fn with_profile(config: Config, profile: &Profile) -> Quire {
        let store = Arc::new(KeyringStore::for_profile(&config.api_url, profile));
        Quire::with_token_store(config, store)
    }

    /// A client with another [`TokenStore`] (the desktop and CLI use
    /// [`Quire::new`]).
    pub fn with_token_store(config: Config, store: Arc<dyn TokenStore>) -> Quire {
        let api = Api::new(config);
        let auth = Auth::new(api.clone(), store);
        let state = Arc::new(State::new());
        tokio::spawn(forget_other_users(auth.subscribe(), Arc::downgrade(&state)));
        Quire {
            rest: Rest::new(api.clone(), auth.clone()),
            companion: Companion::new(api.clone(), auth.clone()),
            state,
            api,
            auth,
        }
    }

    /// The project configuration.
    pub fn config(&self) -> &Config {
        &self.api.config
    }

    /// The session holder.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The state model every view renders from.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Who is signed in.
    pub fn status(&self) -> AuthStatus {
        self.auth.status()
    }

    /// Signs in with email and password.
    pub async fn sign_in_with_password(&self, email: &str, password: &str) -> Result<User> {
        self.auth.sign_in_with_password(email, password).await
    }

    /// Creates an account ([`Auth::sign_up`]).
    pub async fn sign_up(&self, email: &str, password: &str) -> Result<SignUp> {
        self.auth.sign_up(email, password).await
    }

    /// Mails a password-reset code ([`Auth::send_password_reset`]).
    pub async fn send_password_reset(&self, email: &str) -> Result<()> {
        self.auth.send_password_reset(email).await
    }

    /// Sets a new password with the mailed code or link, and signs in
    /// ([`Auth::reset_password`]).
    pub async fn reset_password(
        &self,
        email: &str,
        code_or_link: &str,
        password: &str,
    ) -> Result<User> {
        self.auth
            .reset_password(email, code_or_link, password)
            .await
    }

    /// Signs in through the OAuth page in a browser (PKCE, loopback redirect).
    pub async fn sign_in_with_browser(
        &self,
        browser: &dyn Browser,
        options: &BrowserSignIn,
    ) -> Result<User> {
        browser::sign_in(&self.auth, &self.api, browser, options).await
    }

    /// Resumes the saved session, if any, and returns who is signed in, or
    /// why nobody is ([`Error::NotSignedIn`](crate::Error::NotSignedIn), or
    /// [`Error::SignedOut`](crate::Error::SignedOut) with the reason).
    pub async fn resume(&self) -> Result<User> {
        self.auth.restore().await?;
        self.auth.user()
    }

    /// Resumes the session saved in the keyring (see [`Auth::restore`]).
    pub async fn restore(&self) -> Result<Option<User>> {
        self.auth.restore().await
    }

    /// Signs out here: server logout, keyring entry removed, the state
    /// model emptied.
    pub async fn sign_out(&self) -> Result<()> {
        let signed_out = self.auth.sign_out().await;
        self.state.clear();
        signed_out
    }

    /// The user's chunks that best match `query` (at most `match_count`,
    /// clamped to 1..=50 by the server), optionally only in `document_ids`.
    pub async fn search(
        &self,
        query: &str,
        match_count: u32,
        document_ids: Option<&[Uuid]>,
    ) -> Result<Vec<ChunkHit>> {
        search::search_chunks(&self.rest, query, match_count, document_ids).await
    }

    /// Asks a question: retrieves the user's chunks, then streams the
    /// companion's answer. `conversation` `None` starts a new conversation.
    pub async fn ask(&self, conversation: Option<Uuid>, text: &str) -> Result<Answer> {
        let sources = self.retrieve(conversation, text).await?;
        self.ask_with_sources(conversation, text, sources).await
    }

    /// The sources for a question in `conversation`: the user's chunks that
    /// best match `text`, only in the documents the conversation asks about
    /// (its scope, as stored: see [`Quire::set_scope`]).
    pub async fn retrieve(&self, conversation: Option<Uuid>, text: &str) -> Result<Vec<ChunkHit>> {
        match conversation {
            Some(id) => {
                search::search_conversation(&self.rest, text, DEFAULT_MATCH_COUNT, id).await
            }
            None => self.search(text, DEFAULT_MATCH_COUNT, None).await,
        }
    }

    /// Limits `conversation` to `document_ids` (the person's own; empty: all
    /// documents again). A document that is not theirs, or is gone, is
    /// `NotFound`, and the scope stays as it was.
    pub async fn set_scope(
        &self,
        conversation: Uuid,
        document_ids: &[Uuid],
    ) -> Result<Conversation> {
        chat::update_conversation(
            &self.rest,
            &self.state,
            conversation,
            json!({ "document_ids": document_ids }),
        )
        .await
        .map_err(search::scope_refused)
    }

    /// [`Quire::ask`] with sources the caller already retrieved (so the UI
    /// could show them first).
    pub async fn ask_with_sources(
        &self,
        conversation: Option<Uuid>,
        text: &str,
        sources: Vec<ChunkHit>,
    ) -> Result<Answer> {
        let chunk_ids: Vec<Uuid> = sources.iter().map(|hit| hit.id).collect();
        let response = self.companion.chat(conversation, text, &chunk_ids).await?;
        Ok(self.answer_from(response, sources))
    }

    /// The answer the companion streams in `response` (to a question or a
    /// regenerate). It names the conversation and answer in headers, so Stop
    /// works before the first event.
    pub(crate) fn answer_from(
        &self,
        response: reqwest::Response,
        sources: Vec<ChunkHit>,
    ) -> Answer {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uuid>().ok())
        };
        let ids = header("x-quire-conversation-id").zip(header("x-quire-message-id"));
        let events = sse::chat_events(response.bytes_stream());
        Answer::new(
            sources,
            ids,
            events,
            self.state.clone(),
            self.companion.clone(),
        )
    }

    /// Asks a question and drives its answer in the background: each event
    /// is applied to [`Quire::state`] as it arrives (the views render from
    /// there), and the question's row and a new conversation are read into
    /// it too. Returns the answer's ids once the companion has named them.
    /// The answer runs on the companion: nothing here stops it but
    /// [`Quire::stop`]; a stream that breaks off is caught up by the follower.
    pub async fn start_answer(
        &self,
        conversation: Option<Uuid>,
        text: &str,
        sources: Vec<ChunkHit>,
    ) -> Result<Asked> {
        let mut answer = self.ask_with_sources(conversation, text, sources).await?;
        let asked = answer.ids().await?;
        // The follower would bring these too, but only while it is connected.
        let quire = self.clone();
        tokio::spawn(async move {
            if let Err(e) = quire.read_question(asked).await {
                tracing::warn!(error = %e, "could not read the new question");
            }
        });
        tokio::spawn(answer.drain());
        Ok(asked)
    }

    /// The question's row and, when it is new here, the conversation.
    async fn read_question(&self, asked: Asked) -> Result<()> {
        self.history(asked.conversation_id, None, 2).await?;
        if !self.state.knows_conversation(asked.conversation_id) {
            chat::fetch_conversation(&self.rest, &self.state, asked.conversation_id).await?;
        }
        Ok(())
    }

    /// Stops an answer by its message id (from any device).
    pub async fn stop(&self, message_id: Uuid) -> Result<String> {
        self.companion.stop(message_id).await
    }

    /// Conversations, most recently updated first (`archived` includes
    /// archived ones).
    pub async fn conversations(
        &self,
        limit: u32,
        offset: u32,
        archived: bool,
    ) -> Result<Vec<Conversation>> {
        chat::conversations(&self.rest, &self.state, limit, offset, archived).await
    }

    /// The user's conversations whose title or any message's text contains
    /// `query` (case-insensitive), most recently updated first. RLS scopes it
    /// to the user. An empty query lists the recent conversations.
    pub async fn search_conversations(&self, query: &str) -> Result<Vec<Conversation>> {
        chat::search(&self.rest, &self.state, query).await
    }

    /// Creates an empty conversation.
    pub async fn create_conversation(&self, title: &str) -> Result<Conversation> {
        chat::create(&self.rest, &self.state, title, &[]).await
    }

    /// Reads conversation `id` again into the state (its title, its scope):
    /// another device may have changed it since the list was read.
    pub async fn read_conversation(&self, id: Uuid) -> Result<()> {
        chat::fetch_conversation(&self.rest, &self.state, id).await
    }

    /// Creates an empty conversation that asks about `document_ids` only
    /// (see [`Quire::set_scope`]).
    pub async fn create_conversation_in_scope(
        &self,
        title: &str,
        document_ids: &[Uuid],
    ) -> Result<Conversation> {
        chat::create(&self.rest, &self.state, title, document_ids).await
    }

    /// Renames a conversation.
    pub async fn rename_conversation(&self, id: Uuid, title: &str) -> Result<Conversation> {
        chat::rename(&self.rest, &self.state, id, title).await
    }

    /// Archives (`true`) or unarchives a conversation.
    pub async fn archive_conversation(&self, id: Uuid, archived: bool) -> Result<Conversation> {
        let at = archived.then(|| chrono::Utc::now().to_rfc3339());
        chat::update_conversation(&self.rest, &self.state, id, json!({"archived_at": at})).await
    }

    /// Deletes a conversation with its messages.
    pub async fn delete_conversation(&self, id: Uuid) -> Result<()> {
        chat::delete(&self.rest, &self.state, id).await
    }

    /// A page of a conversation's history, oldest first: up to `limit`
    /// messages before the message at seq `before` (the latest when `None`).
    pub async fn history(
        &self,
        conversation: Uuid,
        before: Option<i32>,
        limit: u32,
    ) -> Result<HistoryPage> {
        chat::history(&self.rest, &self.state, conversation, before, limit).await
    }

    /// Starts following the user's live updates (Realtime), feeding
    /// [`Quire::state`]. One follower per client is enough.
    pub fn follow(&self) -> Follower {
        self.follow_with(FollowOptions::default())
    }

    /// [`Quire::follow`] with other timing.
    pub fn follow_with(&self, options: FollowOptions) -> Follower {
        follow::start(self.clone(), options)
    }

    /// The user's documents, newest first (also applied to the state).
    pub async fn documents(&self) -> Result<Vec<Document>> {
        follow::sync_documents(self).await
    }

    /// Uploads PDFs: each is checked before anything is sent, registered
    /// with the companion, stored with progress, then handed to ingestion.
    /// Results are in the order of `paths`; `events` (optional) reports each
    /// file's progress; cancelling `cancel` stops the batch.
    pub async fn upload(
        &self,
        paths: &[PathBuf],
        options: &UploadOptions,
        events: Option<mpsc::UnboundedSender<UploadEvent>>,
        cancel: CancellationToken,
    ) -> Vec<Result<Document>> {
        upload::upload_all(self, paths, options, events, cancel).await
    }

    /// Waits until every document in `ids` has settled (ready, failed or no
    /// text) and returns them in that order. `on_change` sees each change of
    /// one of them as it reaches the state (live, while a follower runs);
    /// after 5 s without news (`SETTLE_POLL`) the documents are read from the
    /// database again, so this ends without Realtime too. A document the
    /// database does not have (deleted, or not the user's) is
    /// [`Error::NotFound`](crate::Error::NotFound).
    pub async fn wait_settled(
        &self,
        ids: &[Uuid],
        mut on_change: impl FnMut(&Document),
    ) -> Result<Vec<Document>> {
        use tokio::sync::broadcast::error::TryRecvError;
        let mut updates = self.state.subscribe();
        loop {
            // Every change applied so far, a re-read's included, before deciding.
            loop {
                match updates.try_recv() {
                    Ok(Update::Document(document)) if ids.contains(&document.id) => {
                        on_change(&document);
                    }
                    Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            let settled: Option<Vec<Document>> = ids
                .iter()
                .map(|id| self.state.document(*id).filter(|d| d.status.is_settled()))
                .collect();
            if let Some(documents) = settled {
                return Ok(documents);
            }
            tokio::select! {
                update = updates.recv() => {
                    if let Ok(Update::Document(document)) = update
                        && ids.contains(&document.id)
                    {
                        on_change(&document);
                    }
                }
                () = tokio::time::sleep(SETTLE_POLL) => {
                    let present = self.documents().await?;
                    if !ids.iter().all(|id| present.iter().any(|d| d.id == *id)) {
                        return Err(crate::Error::NotFound { what: "document".into() });
                    }
                }
            }
        }
    }

    /// A document's PDF, downloaded from Storage under the user's identity
    /// (another user's document is [`Error::NotFound`](crate::Error::NotFound)).
    pub async fn document_pdf(&self, id: Uuid) -> Result<Vec<u8>> {
        documents::pdf(self, id).await
    }

    /// Streams a document's PDF to `dest` (through a temporary file next to
    /// it, renamed when complete); returns the bytes written.
    pub async fn save_document(&self, id: Uuid, dest: &Path) -> Result<u64> {
        documents::save(self, id, dest).await
    }

    /// Uploads `path` again in place of the document `id` (a failed one):
    /// the old document is deleted first, then `path` goes through
    /// [`Quire::upload`].
    pub async fn reupload(
        &self,
        id: Uuid,
        path: &Path,
        options: &UploadOptions,
        events: Option<mpsc::UnboundedSender<UploadEvent>>,
        cancel: CancellationToken,
    ) -> Result<Document> {
        // Only a failed document is replaced (a retry must never delete a
        // good one); check the file first: a retry that cannot read it keeps
        // the old row.
        let prepared = match documents::status(self, id).await {
            Ok(DocumentStatus::Failed) => match upload::size_limit(self).await {
                Ok(limit) => upload::check(path, limit).await.map(drop),
                Err(e) => Err(e),
            },
            Ok(status) => Err(crate::Error::Conflict {
                service: crate::error::Service::Database,
                message: format!(
                    "only a failed document can be retried; this one is {}",
                    status.as_str()
                ),
            }),
            Err(e) => Err(e),
        };
        let prepared = match prepared {
            Ok(()) => match self.delete_document(id).await {
                Ok(()) | Err(crate::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = prepared {
            if let Some(events) = &events {
                let _ = events.send(UploadEvent::Failed {
                    path: path.to_owned(),
                    error: e.to_view(),
                });
            }
            return Err(e);
        }
        self.upload(&[path.to_owned()], options, events, cancel)
            .await
            .pop()
            .expect("one result per path")
    }

    /// Deletes a document everywhere (through the companion).
    pub async fn delete_document(&self, id: Uuid) -> Result<()> {
        self.companion.delete_document(id).await?;
        self.state.remove_document(id);
        Ok(())
    }
}

/// Empties the state model whenever nobody is signed in any more, or
/// someone else is: one person's conversations and documents never stay on
/// screen for the next (a forced sign-out included). Ends with the client.
async fn forget_other_users(
    mut auth: tokio::sync::watch::Receiver<AuthState>,
    state: std::sync::Weak<State>,
) {
    let mut last: Option<Uuid> = None;
    loop {
        let user = match &*auth.borrow_and_update() {
            AuthState::SignedIn(session) => Some(session.user.id),
            AuthState::SignedOut(_) => None,
        };
        if last.is_some() && user != last {
            let Some(state) = state.upgrade() else { return };
            state.clear();
        }
        last = user;
        if auth.changed().await.is_err() {
            return;
        }
    }
}
