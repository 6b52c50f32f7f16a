//! `quire-cli`: the Quire core in a terminal — sign in, upload, ask, read
//! history, follow what the user's other devices do. The same `quire-core`
//! functions the desktop app calls; the sign-in lives in the OS keyring.
//!
//! Errors are one line on stderr (`quire-cli: …`) and a non-zero exit code.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use quire_core::state::Role;
use quire_core::{
    BrowserSignIn, CancellationToken, Config, DocumentStatus, EventBody, MessageStatus, Quire,
    SystemBrowser, Update, UploadEvent, UploadOptions,
};
use tokio::sync::mpsc;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "quire-cli",
    version,
    about = "Chat with your own PDFs, from a terminal."
)]
struct Cli {
    /// Read api_url, anon_key and companion_url from a stack file
    /// (`cargo xtask stack up` writes `.quire/stack.json`).
    #[arg(long, global = true, value_name = "FILE")]
    stack: Option<PathBuf>,

    /// The profile whose sign-in to use (its own keyring entry; the desktop
    /// app's `--profile` names the same one).
    #[arg(long, global = true, env = "QUIRE_PROFILE", default_value = quire_core::Profile::DEFAULT)]
    profile: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in with email and password, or in the browser.
    Login {
        /// Sign in through the browser (OAuth with PKCE).
        #[arg(long)]
        browser: bool,
        /// The OAuth provider for --browser, by GoTrue's name (`github`…);
        /// when missing, the one the server enables (its `/.well-known/quire`).
        #[arg(long, requires = "browser")]
        provider: Option<String>,
        /// Your email (asked for when missing).
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sign out on this device (the keyring entry is removed).
    Logout,
    /// Show who is signed in.
    Whoami,
    /// Upload PDFs and wait until they are ready to ask about.
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Return once the files are stored, without waiting for indexing.
        #[arg(long)]
        no_wait: bool,
    },
    /// List your documents.
    Docs,
    /// Ask a question about your documents.
    Ask {
        question: String,
        /// Continue this conversation (a new one otherwise).
        #[arg(long)]
        conversation: Option<Uuid>,
        /// Ask only about this document (its title or id); repeat for more.
        /// The conversation keeps them for its next questions.
        #[arg(long = "doc", value_name = "TITLE_OR_ID")]
        docs: Vec<String>,
    },
    /// List conversations, or show one conversation's messages.
    History {
        /// The conversation to show.
        #[arg(long)]
        conversation: Option<Uuid>,
        /// How many conversations or messages.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Print what your other devices ask, the answers as they stream, and
    /// document status changes, until interrupted.
    Follow,
    /// Export a conversation as Markdown, its citations as footnotes.
    Export {
        /// The conversation: its id, or its title.
        conversation: String,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// `print!` for results: a closed pipe (`quire-cli ask … | head`) ends the
/// program quietly, as Unix tools do, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { write_out(format_args!($($arg)*)) };
}

/// `println!` with [`out!`]'s handling of a closed pipe.
macro_rules! outln {
    () => { write_out(format_args!("\n")) };
    ($($arg:tt)*) => { write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        closed_or_fail(e);
    }
}

fn flush_out() {
    use std::io::Write;
    if let Err(e) = std::io::stdout().flush() {
        closed_or_fail(e);
    }
}

fn closed_or_fail(error: std::io::Error) {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("quire-cli: could not write the output: {error}");
    std::process::exit(1);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("quire-cli: could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the core's message is written for a person.
            let message = match error.downcast_ref::<quire_core::Error>() {
                Some(core) => core.to_string(),
                None => format!("{error:#}"),
            };
            eprintln!("quire-cli: {}", message.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.stack.as_deref())?;
    let profile = quire_core::Profile::new(&cli.profile)?;
    let quire = Quire::with_profile(config, &profile);
    match cli.command {
        Command::Login {
            browser,
            provider,
            email,
            password_stdin,
        } => login(&quire, browser, provider, email, password_stdin).await,
        Command::Logout => {
            quire.restore().await.ok();
            quire.sign_out().await?;
            outln!("Signed out.");
            Ok(())
        }
        Command::Whoami => {
            let user = quire.resume().await?;
            outln!(
                "{} ({})",
                user.email.as_deref().unwrap_or("no email"),
                user.id
            );
            Ok(())
        }
        Command::Upload { files, no_wait } => upload(&quire, files, no_wait).await,
        Command::Docs => docs(&quire).await,
        Command::Ask {
            question,
            conversation,
            docs,
        } => ask(&quire, &question, conversation, &docs).await,
        Command::History {
            conversation,
            limit,
        } => history(&quire, conversation, limit).await,
        Command::Follow => follow(&quire).await,
        Command::Export {
            conversation,
            output,
        } => export(&quire, &conversation, output).await,
    }
}

/// The one OAuth provider the server enables, from its discovery document.
async fn enabled_provider(quire: &Quire) -> anyhow::Result<String> {
    let server = quire_core::discovery::discover(quire.config().companion_base()).await?;
    match server.sign_in.providers.as_slice() {
        [] => Err(anyhow!(
            "this server offers no browser sign-in: sign in with email and password"
        )),
        [one] => Ok(one.clone()),
        several => Err(anyhow!(
            "this server offers several browser sign-ins: pass --provider {}",
            several.join(" | ")
        )),
    }
}

async fn login(
    quire: &Quire,
    browser: bool,
    provider: Option<String>,
    email: Option<String>,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let user = if browser {
        let provider = match provider {
            Some(provider) => provider,
            None => enabled_provider(quire).await?,
        };
        eprintln!("Opening your browser to sign in with {provider}…");
        let options = BrowserSignIn::new(&provider);
        quire.sign_in_with_browser(&SystemBrowser, &options).await?
    } else {
        let email = match email {
            Some(email) => email,
            None => prompt("Email: ")?,
        };
        let password = if password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        } else if std::io::stdin().is_terminal() {
            rpassword::prompt_password("Password: ").context("reading the password")?
        } else {
            return Err(anyhow!(
                "no password: pass --password-stdin or run in a terminal"
            ));
        };
        quire.sign_in_with_password(&email, &password).await?
    };
    outln!(
        "Signed in as {}.",
        user.email.as_deref().unwrap_or("(no email)")
    );
    Ok(())
}

fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading from the terminal")?;
    Ok(line.trim().to_owned())
}

async fn upload(quire: &Quire, files: Vec<PathBuf>, no_wait: bool) -> anyhow::Result<()> {
    quire.resume().await?;
    // Started first so that no status change is missed; the upload does not
    // wait for it (`wait_settled` also reads the database now and then).
    let follower = (!no_wait).then(|| quire.follow());
    let mut bars = UploadBars::new(&files);
    let (events, mut received) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let uploading = {
        let (quire, files, cancel) = (quire.clone(), files.clone(), cancel.clone());
        tokio::spawn(async move {
            quire
                .upload(&files, &UploadOptions::default(), Some(events), cancel)
                .await
        })
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => cancel.cancel(),
            event = received.recv() => match event {
                Some(event) => bars.show(event),
                None => break,
            }
        }
    }
    let results = uploading.await.context("the upload task")?;
    let mut failed: Vec<String> = Vec::new();
    let mut stored = Vec::new();
    for (path, result) in files.iter().zip(results) {
        match result {
            Ok(document) => stored.push(document.id),
            Err(error) => failed.push(format!("{}: {error}", path.display())),
        }
    }
    if let Some(follower) = follower {
        let documents = quire
            .wait_settled(&stored, |document| {
                bars.status(document.id, &document.status.as_str().replace('_', " "));
            })
            .await?;
        follower.stop().await;
        for document in documents {
            let line = settled_line(&document);
            bars.finish(document.id, &line);
            outln!("{}\t{}\t{}", document.id, document.title, line);
            if document.status == DocumentStatus::Failed {
                failed.push(format!("{}: {line}", document.title));
            }
        }
    } else {
        for id in &stored {
            outln!("{id}\tstored");
        }
    }
    if !failed.is_empty() {
        return Err(anyhow!(
            "{} of {} files failed: {}",
            failed.len(),
            files.len(),
            failed.join("; ")
        ));
    }
    Ok(())
}

/// One progress bar per file being uploaded (hidden when stderr is not a
/// terminal), found by path until the file is registered, then by id.
struct UploadBars {
    by_path: HashMap<PathBuf, ProgressBar>,
    by_id: HashMap<Uuid, ProgressBar>,
    _bars: MultiProgress,
}

impl UploadBars {
    fn new(files: &[PathBuf]) -> UploadBars {
        let bars = MultiProgress::new();
        if !std::io::stderr().is_terminal() {
            bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let style =
            ProgressStyle::with_template("{prefix:20!} {bar:30} {bytes:>9}/{total_bytes:9} {msg}")
                .expect("a valid template");
        let by_path = files
            .iter()
            .map(|path| {
                let bar = bars.add(ProgressBar::new(0).with_style(style.clone()));
                bar.set_prefix(
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
                (path.clone(), bar)
            })
            .collect();
        UploadBars {
            by_path,
            by_id: HashMap::new(),
            _bars: bars,
        }
    }

    fn show(&mut self, event: UploadEvent) {
        match event {
            UploadEvent::Checked { path, bytes } => {
                if let Some(bar) = self.by_path.get(&path) {
                    bar.set_length(bytes);
                    bar.set_message("waiting");
                }
            }
            UploadEvent::Registered { path, document_id } => {
                if let Some(bar) = self.by_path.get(&path) {
                    bar.set_message("uploading");
                    self.by_id.insert(document_id, bar.clone());
                }
            }
            UploadEvent::Progress {
                document_id, sent, ..
            } => {
                if let Some(bar) = self.by_id.get(&document_id) {
                    bar.set_position(sent);
                }
            }
            UploadEvent::Stored { document_id } => self.status(document_id, "stored"),
            // The CLI does not resume a cut upload on its next run: the
            // document stays `uploading`, and the app offers Retry.
            UploadEvent::Resumable { .. } => {}
            UploadEvent::Failed { path, error } => {
                if let Some(bar) = self.by_path.get(&path) {
                    bar.abandon_with_message(format!("failed: {}", error.message));
                }
            }
        }
    }

    fn status(&self, id: Uuid, status: &str) {
        if let Some(bar) = self.by_id.get(&id) {
            bar.set_message(status.to_owned());
        }
    }

    fn finish(&self, id: Uuid, line: &str) {
        if let Some(bar) = self.by_id.get(&id) {
            bar.finish_with_message(line.to_owned());
        }
    }
}

/// How a settled document reads in `upload`'s output.
fn settled_line(document: &quire_core::Document) -> String {
    match document.status {
        DocumentStatus::Ready => format!("ready ({} pages)", document.page_count.unwrap_or(0)),
        DocumentStatus::NoText => "stored, but it has no text to search (a scan?)".to_owned(),
        _ => format!(
            "failed: {}",
            document.error.as_deref().unwrap_or("unknown reason")
        ),
    }
}

async fn docs(quire: &Quire) -> anyhow::Result<()> {
    quire.resume().await?;
    let documents = quire.documents().await?;
    if documents.is_empty() {
        outln!("No documents yet. Upload one with: quire-cli upload <file.pdf>");
    }
    for document in documents {
        outln!(
            "{}\t{}\t{}\t{} pages\t{}",
            document.id,
            document.title,
            document.status.as_str(),
            document
                .page_count
                .map(|p| p.to_string())
                .unwrap_or_else(|| "?".into()),
            document
                .byte_size
                .map(|b| quire_core::error::human_bytes(b.max(0) as u64))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

async fn ask(
    quire: &Quire,
    question: &str,
    conversation: Option<Uuid>,
    docs: &[String],
) -> anyhow::Result<()> {
    quire.resume().await?;
    let conversation = in_scope(quire, question, conversation, docs).await?;
    let mut answer = quire.ask(conversation, question).await?;
    if answer.sources.is_empty() {
        outln!("Sources: none of your documents matched.");
    } else {
        outln!("Sources:");
        for (n, source) in answer.sources.iter().enumerate() {
            outln!(
                "  [{}] {} ({})",
                n + 1,
                source.title,
                pages(source.page, source.page_end)
            );
        }
    }
    outln!();
    let stopper = answer.stopper();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut stopping = false;
    loop {
        let event = tokio::select! {
            _ = &mut ctrl_c, if !stopping => {
                stopping = true;
                let stopper = stopper.clone();
                tokio::spawn(async move { stopper.stop().await });
                continue;
            }
            event = answer.next() => event,
        };
        let Some(event) = event else { break };
        let event = event?;
        match event.body {
            EventBody::Delta { text } => {
                out!("{text}");
                flush_out();
            }
            EventBody::ToolCall { tool_name, .. } => {
                eprintln!(
                    "\n(searching your documents with {})",
                    tool_name.unwrap_or_default()
                );
            }
            EventBody::Complete {
                status, citations, ..
            } => {
                outln!();
                if status == MessageStatus::Stopped {
                    outln!("(stopped)");
                }
                if !citations.is_empty() {
                    outln!("\nCitations:");
                    for citation in citations {
                        outln!(
                            "  [{}] {} ({})",
                            citation.key.as_deref().unwrap_or("?"),
                            citation.title.as_deref().unwrap_or("untitled"),
                            pages(citation.page, citation.page_end)
                        );
                    }
                }
                outln!("\nconversation {}", event.conversation_id);
            }
            EventBody::Error { message, .. } => {
                outln!();
                return Err(anyhow!("the answer failed: {message}"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// "page 3", or "pages 3–4" for a chunk that crosses a page break.
fn pages(page: Option<i32>, page_end: Option<i32>) -> String {
    match (page, page_end) {
        (Some(first), Some(last)) if last > first => format!("pages {first}–{last}"),
        (Some(first), _) => format!("page {first}"),
        (None, _) => "page ?".into(),
    }
}

async fn history(quire: &Quire, conversation: Option<Uuid>, limit: u32) -> anyhow::Result<()> {
    quire.resume().await?;
    let Some(conversation) = conversation else {
        let conversations = quire.conversations(limit, 0, false).await?;
        if conversations.is_empty() {
            outln!("No conversations yet. Ask something with: quire-cli ask \"…\"");
        }
        for c in conversations {
            outln!(
                "{}\t{}\t{}",
                c.id,
                c.updated_at.format("%Y-%m-%d %H:%M"),
                c.title.as_deref().unwrap_or("(untitled)")
            );
        }
        return Ok(());
    };
    let page = quire.history(conversation, None, limit).await?;
    if page.messages.is_empty() {
        return Err(quire_core::Error::NotFound {
            what: "conversation".into(),
        }
        .into());
    }
    // Each answer as its chosen version (the latest; quire_core::versions).
    for message in quire_core::versions::chosen(&page.messages) {
        let who = match message.role {
            Role::User => "you",
            Role::Assistant => "quire",
        };
        let status = match message.status {
            MessageStatus::Streaming => " (still answering)",
            MessageStatus::Stopped => " (stopped)",
            MessageStatus::Failed => " (failed)",
            MessageStatus::Complete => "",
        };
        outln!("{who}{status}: {}\n", message.content);
    }
    Ok(())
}

/// The conversation to ask in, limited to `docs` when some are named: the
/// one given, or a new one made with them.
async fn in_scope(
    quire: &Quire,
    question: &str,
    conversation: Option<Uuid>,
    docs: &[String],
) -> anyhow::Result<Option<Uuid>> {
    if docs.is_empty() {
        return Ok(conversation);
    }
    let mut ids = Vec::with_capacity(docs.len());
    for doc in docs {
        ids.push(quire.find_document(doc).await?);
    }
    let scoped = match conversation {
        Some(id) => quire.set_scope(id, &ids).await?,
        None => {
            let title: String = question.trim().chars().take(80).collect();
            quire.create_conversation_in_scope(&title, &ids).await?
        }
    };
    Ok(Some(scoped.id))
}

async fn export(quire: &Quire, conversation: &str, output: Option<PathBuf>) -> anyhow::Result<()> {
    quire.resume().await?;
    let id = quire.find_conversation(conversation).await?;
    let markdown = quire.export_conversation(id).await?;
    match output {
        Some(path) => std::fs::write(&path, markdown)
            .with_context(|| format!("writing {}", path.display()))?,
        None => out!("{markdown}"),
    }
    Ok(())
}

async fn follow(quire: &Quire) -> anyhow::Result<()> {
    let user = quire.resume().await?;
    let mut updates = quire.state().subscribe();
    let follower = quire.follow();
    let mut status = follower.watch();
    eprintln!(
        "Following {} — press Ctrl-C to stop.",
        user.email.as_deref().unwrap_or("you")
    );
    let mut shown_questions = std::collections::HashSet::new();
    let mut open_answer: Option<Uuid> = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = status.borrow_and_update().clone();
                match now {
                    quire_core::FollowStatus::Joined { backfilled: true } => eprintln!("(live)"),
                    quire_core::FollowStatus::Reconnecting { error, .. } => eprintln!("(reconnecting: {error})"),
                    quire_core::FollowStatus::SignedOut => {
                        return Err(quire.auth().user().err().unwrap_or(quire_core::Error::NotSignedIn).into());
                    }
                    _ => {}
                }
            }
            update = updates.recv() => {
                let update = match update {
                    Ok(update) => update,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                match update {
                    Update::Message { message, appended } => {
                        if message.role == Role::User {
                            if !message.content.is_empty() && shown_questions.insert(message.id) {
                                outln!("\n> {}", message.content);
                            }
                            continue;
                        }
                        if open_answer != Some(message.id) {
                            outln!();
                            open_answer = Some(message.id);
                            if let Some(piece) = &appended && piece.len() == message.content.len() {
                                out!("{piece}");
                            } else {
                                out!("{}", message.content);
                            }
                        } else if let Some(piece) = appended {
                            out!("{piece}");
                        }
                        if message.status.is_final() {
                            outln!("\n({})", match message.status {
                                MessageStatus::Complete => "complete",
                                MessageStatus::Stopped => "stopped",
                                _ => "failed",
                            });
                            open_answer = None;
                        }
                        flush_out();
                    }
                    Update::Document(document) if document.upload.is_none() => {
                        outln!("document {}: {}", document.title, document.status.as_str().replace('_', " "));
                    }
                    Update::DocumentRemoved { id } => outln!("document {id}: deleted"),
                    _ => {}
                }
            }
        }
    }
    follower.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pages;

    #[test]
    fn a_source_names_its_page_or_its_range_of_pages() {
        assert_eq!(pages(Some(2), Some(2)), "page 2");
        assert_eq!(pages(Some(3), Some(4)), "pages 3–4");
        assert_eq!(pages(Some(5), None), "page 5");
        assert_eq!(pages(None, None), "page ?");
    }
}
