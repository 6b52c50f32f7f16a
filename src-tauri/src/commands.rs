//! The commands of IPC.md. Each is a few lines calling one `quire-core`
//! function; errors reach the web view as the core's [`ErrorView`]. No
//! command takes or returns a token, and none logs its arguments (a
//! password is one). Arguments are snake_case on the wire, as IPC.md names
//! them (`rename_all`; Tauri's default would be camelCase).

use std::path::PathBuf;

use quire_core::{
    Asked, BrowserSignIn, CancellationToken, ChunkHit, Conversation, Document, Error, ErrorView,
    Message, SignInMethods, SignUp, SystemBrowser, UploadOptions, User,
};
use serde::Serialize;
use tauri::{AppHandle, State, WebviewWindow};
use tauri_plugin_opener::OpenerExt;
use ts_rs::TS;
use uuid::Uuid;

use crate::events::{AuthView, LiveView};
use crate::shell::{ServerView, Shell, host_of};

/// Declares the command list once: [`COMMANDS`] (the names, as IPC.md's
/// table lists them) and [`handler`] (Tauri's handler of exactly those), so
/// the two cannot differ.
macro_rules! commands {
    [$($name:ident),* $(,)?] => {
        /// Every command the web view may call, as registered with Tauri
        /// (the security tests call each one and check no token comes back).
        pub const COMMANDS: &[&str] = &[$(stringify!($name)),*];

        /// The handler of every command in [`COMMANDS`].
        pub fn handler<R: tauri::Runtime>(
        ) -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
            tauri::generate_handler![$($name),*]
        }
    };
}

commands![
    session,
    connect,
    sign_in_methods,
    sign_in,
    sign_in_browser,
    cancel_sign_in,
    sign_up,
    send_password_reset,
    reset_password,
    sign_out,
    snapshot,
    open_conversation,
    search_conversations,
    rename_conversation,
    delete_conversation,
    create_conversation,
    set_scope,
    retrieve,
    ask,
    regenerate,
    stop,
    upload_files,
    pick_files,
    opened_files,
    retry_document,
    delete_document,
    document_pdf,
    save_document,
    export_conversation,
    answer_text,
    suggestions,
    open_link,
];

/// A command's answer; a core [`Error`] becomes its [`ErrorView`] through `?`.
type Reply<T> = Result<T, ErrorView>;

/// Messages per history page when the UI does not say.
const PAGE: u32 = 50;
/// Conversations a snapshot reads from the server.
const SNAPSHOT_CONVERSATIONS: u32 = 200;

/// What the window shows at start: who is signed in, the live indicator,
/// the profile, the project's host and the Quire server (none: the window
/// asks for one, offering the build's default address).
#[derive(Serialize, TS)]
#[ts(rename = "Session")]
pub struct SessionView {
    status: AuthView,
    live: LiveView,
    profile: String,
    api_host: String,
    server: Option<ServerView>,
    default_server: Option<String>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn session(shell: State<'_, Shell>) -> Reply<SessionView> {
    shell.restored().await;
    let quire = shell.quire().ok();
    let signed_out = AuthView::SignedOut { reason: None };
    Ok(SessionView {
        status: quire
            .as_ref()
            .map_or(signed_out, |q| AuthView::from(&q.status())),
        live: shell.live(),
        profile: shell.profile.name().to_owned(),
        api_host: quire
            .map(|q| host_of(&q.config().api_url))
            .unwrap_or_default(),
        server: shell.server(),
        default_server: crate::profile::DEFAULT_SERVER.map(str::to_owned),
    })
}

/// Connects the window to the Quire server at the address the person typed
/// (`quire_core::discovery`), and keeps it for the profile.
#[tauri::command(rename_all = "snake_case")]
pub async fn connect<R: tauri::Runtime>(
    app: AppHandle<R>,
    shell: State<'_, Shell>,
    address: String,
) -> Reply<ServerView> {
    let server = quire_core::discovery::discover(&address).await?;
    shell.connect(&app, server)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_in_methods(shell: State<'_, Shell>) -> Reply<SignInMethods> {
    shell.sign_in_methods().await
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_in(shell: State<'_, Shell>, email: String, password: String) -> Reply<User> {
    Ok(shell
        .quire()?
        .sign_in_with_password(&email, &password)
        .await?)
}

/// Signs in with `provider` in the system browser; only a provider the
/// server enables is asked for.
#[tauri::command(rename_all = "snake_case")]
pub async fn sign_in_browser(shell: State<'_, Shell>, provider: String) -> Reply<User> {
    let quire = shell.quire()?;
    let cancel = CancellationToken::new();
    if let Some(earlier) = shell.sign_in.lock().unwrap().replace(cancel.clone()) {
        earlier.cancel();
    }
    let sign_in = async {
        let methods = shell.sign_in_methods().await?;
        if !methods.providers.contains(&provider) {
            return Err(ErrorView {
                code: quire_core::ErrorCode::BadInput,
                message: format!("This server does not offer signing in with {provider}."),
            });
        }
        let options = BrowserSignIn::new(&provider);
        Ok(quire.sign_in_with_browser(&SystemBrowser, &options).await?)
    };
    tokio::select! {
        user = sign_in => user,
        () = cancel.cancelled() => Err(Error::SignInCancelled("it was cancelled in Quire".into()).into()),
    }
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_up(shell: State<'_, Shell>, email: String, password: String) -> Reply<SignUp> {
    Ok(shell.quire()?.sign_up(&email, &password).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn send_password_reset(shell: State<'_, Shell>, email: String) -> Reply<()> {
    Ok(shell.quire()?.send_password_reset(&email).await?)
}

/// Sets a new password with the code or the link of the reset email.
#[tauri::command(rename_all = "snake_case")]
pub async fn reset_password(
    shell: State<'_, Shell>,
    email: String,
    code: String,
    password: String,
) -> Reply<User> {
    Ok(shell
        .quire()?
        .reset_password(&email, &code, &password)
        .await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn cancel_sign_in(shell: State<'_, Shell>) -> Reply<()> {
    if let Some(pending) = shell.sign_in.lock().unwrap().take() {
        pending.cancel();
    }
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
pub async fn sign_out(shell: State<'_, Shell>) -> Reply<()> {
    let quire = shell.quire()?;
    shell.cancel_all();
    Ok(quire.sign_out().await?)
}

/// Everything the sidebar lists, as of `rev`.
#[derive(Serialize, TS)]
pub struct Snapshot {
    rev: u64,
    conversations: Vec<Conversation>,
    documents: Vec<Document>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn snapshot(shell: State<'_, Shell>) -> Reply<Snapshot> {
    let quire = shell.quire()?;
    let (conversations, documents) = tokio::join!(
        quire.conversations(SNAPSHOT_CONVERSATIONS, 0, true),
        quire.documents()
    );
    for result in [conversations.map(drop), documents.map(drop)] {
        match result {
            // Offline: what the state holds is still the best there is.
            Err(e) if e.is_transient() => tracing::warn!(error = %e, "snapshot from local state"),
            other => other?,
        }
    }
    // The rev first, then the state: every update numbered up to it is in
    // what is read (see `events::Revs`).
    let rev = shell.revs.current();
    Ok(Snapshot {
        rev,
        conversations: quire.state().conversations(),
        documents: quire.state().documents(),
    })
}

/// A page of a conversation, as of `rev`.
#[derive(Serialize, TS)]
#[ts(rename = "ConversationPage")]
pub struct Page {
    rev: u64,
    /// Oldest first.
    messages: Vec<Message>,
    /// The seq to pass as `before` for the previous page; null when there is none.
    before: Option<i32>,
}

#[tauri::command(rename_all = "snake_case")]
pub async fn open_conversation(
    shell: State<'_, Shell>,
    id: Uuid,
    before: Option<i32>,
    limit: Option<u32>,
) -> Reply<Page> {
    let quire = shell.quire()?;
    let history = quire.history(id, before, limit.unwrap_or(PAGE).clamp(1, 500));
    // Opening it reads the conversation too (another device may have
    // changed its scope); an earlier page needs only the messages.
    let page = if before.is_none() {
        let (page, read) = tokio::join!(history, quire.read_conversation(id));
        read?;
        page?
    } else {
        history.await?
    };
    let rev = shell.revs.current();
    let messages = page
        .messages
        .iter()
        .filter_map(|m| quire.state().message(m.id))
        .collect();
    Ok(Page {
        rev,
        messages,
        before: page.before,
    })
}

#[tauri::command(rename_all = "snake_case")]
pub async fn search_conversations(
    shell: State<'_, Shell>,
    query: String,
) -> Reply<Vec<Conversation>> {
    Ok(shell.quire()?.search_conversations(&query).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn rename_conversation(
    shell: State<'_, Shell>,
    id: Uuid,
    title: String,
) -> Reply<Conversation> {
    Ok(shell.quire()?.rename_conversation(id, &title).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_conversation(shell: State<'_, Shell>, id: Uuid) -> Reply<()> {
    Ok(shell.quire()?.delete_conversation(id).await?)
}

/// Starts a conversation that asks about `document_ids` only (chips chosen
/// before the first question).
#[tauri::command(rename_all = "snake_case")]
pub async fn create_conversation(
    shell: State<'_, Shell>,
    title: String,
    document_ids: Vec<Uuid>,
) -> Reply<Conversation> {
    let quire = shell.quire()?;
    Ok(quire
        .create_conversation_in_scope(&title, &document_ids)
        .await?)
}

/// Limits a conversation to `document_ids` (empty: all documents).
#[tauri::command(rename_all = "snake_case")]
pub async fn set_scope(
    shell: State<'_, Shell>,
    id: Uuid,
    document_ids: Vec<Uuid>,
) -> Reply<Conversation> {
    Ok(shell.quire()?.set_scope(id, &document_ids).await?)
}

/// The sources for `text`, in the documents `conversation_id` asks about.
#[tauri::command(rename_all = "snake_case")]
pub async fn retrieve(
    shell: State<'_, Shell>,
    text: String,
    conversation_id: Option<Uuid>,
) -> Reply<Vec<ChunkHit>> {
    Ok(shell.quire()?.retrieve(conversation_id, &text).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn ask(
    shell: State<'_, Shell>,
    conversation_id: Option<Uuid>,
    text: String,
    sources: Vec<ChunkHit>,
) -> Reply<Asked> {
    let quire = shell.quire()?;
    Ok(quire.start_answer(conversation_id, &text, sources).await?)
}

/// A new version of the answer `message_id` (the person's own), given the
/// sources the UI retrieved for its question again; it then streams as an
/// answer does.
#[tauri::command(rename_all = "snake_case")]
pub async fn regenerate(
    shell: State<'_, Shell>,
    message_id: Uuid,
    sources: Vec<ChunkHit>,
) -> Reply<Asked> {
    let quire = shell.quire()?;
    Ok(quire.start_regenerate(message_id, sources).await?)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn stop(shell: State<'_, Shell>, message_id: Uuid) -> Reply<()> {
    shell.quire()?.stop(message_id).await?;
    Ok(())
}

/// Starts uploading `paths` in the background (events: `quire://upload`).
fn start_upload<R: tauri::Runtime>(
    app: &AppHandle<R>,
    shell: &Shell,
    paths: Vec<PathBuf>,
) -> Reply<()> {
    let quire = shell.quire()?;
    // Signed out, every file would fail the same way: say it once.
    quire.auth().user()?;
    shell.spawn_upload(app, move |events, cancel| async move {
        quire
            .upload(&paths, &UploadOptions::default(), Some(events), cancel)
            .await;
    });
    Ok(())
}

/// Uploads files the person dropped on this window: a path the window was
/// not handed is `forbidden`, and nothing of the call is uploaded
/// ([`crate::granted`]).
#[tauri::command(rename_all = "snake_case")]
pub async fn upload_files<R: tauri::Runtime>(
    app: AppHandle<R>,
    window: WebviewWindow<R>,
    shell: State<'_, Shell>,
    paths: Vec<PathBuf>,
) -> Reply<()> {
    shell.quire()?.auth().user()?;
    if let Err(refused) = shell.granted.take(window.label(), &paths) {
        tracing::warn!(
            files = paths.len(),
            "refused an upload of files nobody dropped on the window"
        );
        return Err(refused.into());
    }
    start_upload(&app, &shell, paths)
}

/// The files handed to the window ("Open with Quire") since the page last
/// asked, each granted for one `upload_files`.
#[tauri::command(rename_all = "snake_case")]
pub fn opened_files(shell: State<'_, Shell>) -> Vec<PathBuf> {
    std::mem::take(&mut *shell.opened.lock().unwrap())
}

#[tauri::command(rename_all = "snake_case")]
pub async fn pick_files<R: tauri::Runtime>(
    app: AppHandle<R>,
    window: WebviewWindow<R>,
    shell: State<'_, Shell>,
) -> Reply<usize> {
    shell.quire()?.auth().user()?;
    let picked = rfd::AsyncFileDialog::new()
        .set_title("Add PDFs to Quire")
        .add_filter("PDF documents", &["pdf", "PDF"])
        .set_parent(&window)
        .pick_files()
        .await
        .unwrap_or_default();
    let paths: Vec<PathBuf> = picked.iter().map(|f| f.path().to_owned()).collect();
    let count = paths.len();
    if count > 0 {
        start_upload(&app, &shell, paths)?;
    }
    Ok(count)
}

#[tauri::command(rename_all = "snake_case")]
pub async fn retry_document<R: tauri::Runtime>(
    app: AppHandle<R>,
    window: WebviewWindow<R>,
    shell: State<'_, Shell>,
    id: Uuid,
) -> Reply<()> {
    let quire = shell.quire()?;
    quire.auth().user()?;
    let path = match shell.sources.get(id) {
        Some(path) => path,
        None => {
            // Cut on another device (or this one's record of the file is
            // gone): the person picks the file; the core checks it is the
            // one the upload began with.
            let cut = quire
                .state()
                .document(id)
                .filter(|d| d.uploading == Some(quire_core::Uploading::Interrupted));
            let Some(cut) = cut else {
                return Err(Error::NotFound {
                    what: "file this document was uploaded from on this device".into(),
                }
                .into());
            };
            let Some(picked) = rfd::AsyncFileDialog::new()
                .set_title(format!("Choose the file of \u{201c}{}\u{201d}", cut.title))
                .add_filter("PDF documents", &["pdf", "PDF"])
                .set_parent(&window)
                .pick_file()
                .await
            else {
                return Ok(());
            };
            picked.path().to_owned()
        }
    };
    // An upload cut by quitting goes on from where it stands.
    if quire
        .state()
        .document(id)
        .is_some_and(|d| d.status == quire_core::DocumentStatus::Uploading)
    {
        return crate::resume::resume(&app, &shell, id, path);
    }
    let sources = shell.sources.clone();
    shell.spawn_upload(&app, move |events, cancel| async move {
        let result = quire
            .reupload(id, &path, &UploadOptions::default(), Some(events), cancel)
            .await;
        if result.is_ok() {
            sources.forget(id);
        }
    });
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
pub async fn delete_document(shell: State<'_, Shell>, id: Uuid) -> Reply<()> {
    shell.quire()?.delete_document(id).await?;
    shell.sources.forget(id);
    Ok(())
}

#[tauri::command(rename_all = "snake_case")]
pub async fn document_pdf(shell: State<'_, Shell>, id: Uuid) -> Reply<tauri::ipc::Response> {
    let bytes = shell.quire()?.document_pdf(id).await?;
    Ok(tauri::ipc::Response::new(bytes))
}

#[tauri::command(rename_all = "snake_case")]
pub async fn save_document<R: tauri::Runtime>(
    window: WebviewWindow<R>,
    shell: State<'_, Shell>,
    id: Uuid,
) -> Reply<bool> {
    let quire = shell.quire()?;
    let title = quire
        .state()
        .document(id)
        .map(|d| d.title)
        .unwrap_or_else(|| "Document".into());
    let Some(dest) = rfd::AsyncFileDialog::new()
        .set_title("Save PDF")
        .set_file_name(format!("{}.pdf", file_name(&title)))
        .add_filter("PDF documents", &["pdf"])
        .set_parent(&window)
        .save_file()
        .await
    else {
        return Ok(false);
    };
    quire.save_document(id, dest.path()).await?;
    Ok(true)
}

/// Saves a conversation as Markdown where the person chooses (native save
/// dialog); `false` when they cancel. Another user's conversation is
/// `not_found` before any dialog opens.
#[tauri::command(rename_all = "snake_case")]
pub async fn export_conversation<R: tauri::Runtime>(
    window: WebviewWindow<R>,
    shell: State<'_, Shell>,
    id: Uuid,
) -> Reply<bool> {
    let quire = shell.quire()?;
    let markdown = quire.export_conversation(id).await?;
    let title = quire
        .state()
        .conversations()
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.title)
        .unwrap_or_else(|| "Conversation".into());
    let Some(dest) = rfd::AsyncFileDialog::new()
        .set_title("Export conversation")
        .set_file_name(format!("{}.md", file_name(&title)))
        .add_filter("Markdown", &["md"])
        .set_parent(&window)
        .save_file()
        .await
    else {
        return Ok(false);
    };
    quire_core::export::write(dest.path(), &markdown).await?;
    Ok(true)
}

/// An answer with its sources listed under it, for the clipboard.
#[tauri::command(rename_all = "snake_case")]
pub fn answer_text(shell: State<'_, Shell>, message_id: Uuid) -> Reply<String> {
    Ok(shell.quire()?.answer_text(message_id)?)
}

/// First questions for an empty conversation, from the person's own
/// documents' titles and headings.
#[tauri::command(rename_all = "snake_case")]
pub async fn suggestions(shell: State<'_, Shell>) -> Reply<Vec<String>> {
    Ok(shell.quire()?.suggestions().await?)
}

/// A title as a file name: no path separators or control characters.
fn file_name(title: &str) -> String {
    let name: String = title
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let name = name.trim().trim_start_matches('.').to_owned();
    if name.is_empty() {
        "Document".to_owned()
    } else {
        name
    }
}

/// Opens a web or email link in the system browser once the person said yes
/// to its origin in a native dialog; `false` when they did not.
#[tauri::command(rename_all = "snake_case")]
pub async fn open_link<R: tauri::Runtime>(
    app: AppHandle<R>,
    window: WebviewWindow<R>,
    shell: State<'_, Shell>,
    url: String,
) -> Reply<bool> {
    let url = crate::links::external(&url).ok_or_else(|| ErrorView {
        code: quire_core::ErrorCode::BadInput,
        message: "Quire opens only web (http, https) and email (mailto) links.".into(),
    })?;
    if !shell.links.ask(&window, &url).await {
        return Ok(false);
    }
    app.opener()
        .open_url(url.as_str(), None::<&str>)
        .map_err(|e| ErrorView {
            code: quire_core::ErrorCode::Unexpected,
            message: format!("The link could not be opened in your browser ({e})."),
        })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_list_is_the_contract() {
        let contract = include_str!("../IPC.md");
        let section = contract
            .split("## Commands")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("IPC.md has a Commands section");
        let documented: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        assert_eq!(documented, COMMANDS);
    }

    #[test]
    fn titles_become_safe_file_names() {
        assert_eq!(file_name("Lease 2024"), "Lease 2024");
        assert_eq!(file_name("../etc/passwd"), "_etc_passwd");
        assert_eq!(file_name("a:b*c?"), "a_b_c_");
        assert_eq!(file_name("  "), "Document");
    }
}
