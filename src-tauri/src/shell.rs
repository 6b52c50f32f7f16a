//! The shell's state, managed by Tauri: the profile's [`Quire`] client and
//! follower, the session's update counter, and what this window keeps
//! between commands — cancellation of its upload batches and of a pending
//! browser sign-in, where each document it uploaded came from (for retry),
//! the files the person handed it ([`Granted`]) and the link dialog
//! ([`Consent`]).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use quire_core::{
    CancellationToken, Config, ErrorCode, ErrorView, Follower, Profile, Quire, Server,
    SignInMethods, UploadEvent,
};
use quire_protocol::backoff::Backoff;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime};
use tokio::sync::{mpsc, watch};
use ts_rs::TS;
use uuid::Uuid;

use crate::events::{self, Revs};
use crate::granted::Granted;
use crate::links::Consent;
use crate::profile::{self, Start};

pub struct Shell {
    pub profile: Profile,
    /// The profile's own directory (its saved server, uploads, window).
    dir: PathBuf,
    /// The server and its client; replaced when the person connects to
    /// another server.
    connection: RwLock<Connection>,
    pub revs: Revs,
    /// `true` once the saved session has been tried at start.
    restored: Arc<watch::Sender<bool>>,
    batches: Arc<Mutex<HashMap<u64, CancellationToken>>>,
    next_batch: AtomicU64,
    pub sources: Sources,
    pub sign_in: Mutex<Option<CancellationToken>>,
    /// The local files the web view may name in `upload_files`.
    pub granted: Granted,
    /// Files handed to the window on the command line or by a second launch
    /// ("Open with Quire"), granted to it, until the page takes them
    /// (`opened_files`) to upload them as it does a drop's.
    pub opened: Mutex<Vec<PathBuf>>,
    pub links: Consent,
}

/// The Quire server the window talks to, as the connect and sign-in screens
/// show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(rename = "Server")]
pub struct ServerView {
    /// The server's address (the companion's URL).
    pub address: String,
    /// Its host (and port), for "Server: …".
    pub host: String,
    /// Set by the environment or `config.toml`, so not changed from the window.
    pub managed: bool,
}

impl ServerView {
    fn of(address: &url::Url, managed: bool) -> ServerView {
        ServerView {
            address: address.as_str().trim_end_matches('/').to_owned(),
            host: host_of(address),
            managed,
        }
    }
}

/// `host:port`, or the host alone on the scheme's port.
pub fn host_of(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => url.as_str().to_owned(),
    }
}

/// One server's client and what runs for it.
struct Connection {
    /// The client, or why there is none (no server yet).
    client: Result<Quire, ErrorView>,
    follower: Option<Follower>,
    /// `None` until a server is known: the window asks for one.
    server: Option<ServerView>,
    /// The sign-in methods last discovered.
    methods: Option<SignInMethods>,
}

/// What a command answers before a server is known.
fn not_connected() -> ErrorView {
    ErrorView {
        code: ErrorCode::NotConfigured,
        message: "Quire is not connected to a server yet. Enter your Quire server's address."
            .into(),
    }
}

impl Connection {
    fn none() -> Connection {
        Connection {
            client: Err(not_connected()),
            follower: None,
            server: None,
            methods: None,
        }
    }
}

impl Shell {
    /// Finds the profile's server ([`profile::start`]; the build's default
    /// one is discovered here, for a few seconds at most), builds its client
    /// and starts what runs for the whole session: the update, auth and live
    /// forwarders, one follower (it waits for a sign-in by itself), and
    /// restoring the saved session. Must run inside the async runtime.
    pub async fn start<R: Runtime>(
        app: &AppHandle<R>,
        profile: Profile,
        profile_dir: &Path,
        configured: Result<Config, quire_core::Error>,
    ) -> Shell {
        let (restored, _) = watch::channel(false);
        let shell = Shell {
            profile,
            dir: profile_dir.to_owned(),
            connection: RwLock::new(Connection::none()),
            revs: Revs::default(),
            restored: Arc::new(restored),
            batches: Arc::default(),
            next_batch: AtomicU64::new(0),
            sources: Sources::load(profile_dir.join("uploads.json")),
            sign_in: Mutex::new(None),
            granted: Granted::default(),
            opened: Mutex::default(),
            links: Consent::from_env(),
        };
        let saved = profile::saved_server(profile_dir);
        match profile::start(configured, saved, profile::DEFAULT_SERVER) {
            Start::Configured(config) => {
                let server = ServerView::of(&config.companion_url, true);
                shell.attach(app, config, server, None);
            }
            Start::Saved(server) => {
                let view = ServerView::of(&server.address, false);
                shell.attach(app, server.config, view, Some(server.sign_in));
            }
            Start::Default(address) => {
                let found = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    quire_core::discovery::discover(&address),
                )
                .await;
                match found {
                    Ok(Ok(server)) => {
                        if let Err(e) = shell.connect(app, server) {
                            tracing::warn!(error = %e.message, "the build's server");
                        }
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "the build's server"),
                    Err(_) => tracing::warn!("the build's server did not answer in time"),
                }
            }
            Start::Ask => tracing::info!("no Quire server yet: the window asks for one"),
        }
        if shell.server().is_none() {
            shell.restored.send_replace(true);
        }
        shell
    }

    /// Makes `server` this window's server, saved for the profile. Refused
    /// while someone is signed in (they sign out first).
    pub fn connect<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        server: Server,
    ) -> Result<ServerView, ErrorView> {
        let signed_in = self.quire().is_ok_and(|quire| quire.auth().user().is_ok());
        if signed_in {
            return Err(ErrorView {
                code: ErrorCode::BadInput,
                message: "Sign out before you connect to another server.".into(),
            });
        }
        profile::save_server(&self.dir, &server).map_err(|e| ErrorView {
            code: ErrorCode::Unexpected,
            message: format!("Quire could not save the server for this profile ({e})."),
        })?;
        let view = ServerView::of(&server.address, false);
        tracing::info!(server = %view.host, "connected to a Quire server");
        self.attach(app, server.config, view.clone(), Some(server.sign_in));
        Ok(view)
    }

    /// Builds the client of `config` and starts its forwarders, follower
    /// and session restore; the earlier client (signed out) is dropped.
    fn attach<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        config: Config,
        server: ServerView,
        methods: Option<SignInMethods>,
    ) {
        let quire = Quire::with_profile(config, &self.profile);
        events::forward_updates(app.clone(), quire.state().subscribe(), self.revs.clone());
        events::forward_auth(app.clone(), &quire);
        let follower = quire.follow();
        events::forward_live(app.clone(), follower.watch());
        self.restored.send_replace(false);
        tauri::async_runtime::spawn(restore(quire.clone(), self.restored.clone()));
        *self.connection.write().unwrap() = Connection {
            client: Ok(quire),
            follower: Some(follower),
            server: Some(server),
            methods,
        };
    }

    /// The server, or `None` when the window must ask for one.
    pub fn server(&self) -> Option<ServerView> {
        self.connection.read().unwrap().server.clone()
    }

    /// The sign-in methods the server allows, read from it now; the last
    /// ones read when it cannot be reached.
    pub async fn sign_in_methods(&self) -> Result<SignInMethods, ErrorView> {
        let (server, cached) = {
            let connection = self.connection.read().unwrap();
            (connection.server.clone(), connection.methods.clone())
        };
        let Some(server) = server else {
            return Err(not_connected());
        };
        match quire_core::discovery::discover(&server.address).await {
            Ok(found) => {
                let mut connection = self.connection.write().unwrap();
                if connection.server.as_ref() == Some(&server) {
                    connection.methods = Some(found.sign_in.clone());
                }
                Ok(found.sign_in)
            }
            Err(e) => cached.ok_or_else(|| e.to_view()),
        }
    }

    /// Grants `files` to the main window and keeps them for the page
    /// (`opened_files`), which uploads them once someone is signed in.
    pub fn open(&self, files: Vec<PathBuf>) {
        if files.is_empty() {
            return;
        }
        tracing::info!(files = files.len(), "files opened with Quire");
        self.granted.grant("main", files.iter().cloned());
        self.opened.lock().unwrap().extend(files);
    }

    /// The client, or the error every command reports while there is none.
    pub fn quire(&self) -> Result<Quire, ErrorView> {
        self.connection.read().unwrap().client.clone()
    }

    /// The follower's status now (offline when there is none).
    pub fn live(&self) -> events::LiveView {
        self.connection
            .read()
            .unwrap()
            .follower
            .as_ref()
            .map(|f| events::LiveView::from(&f.status()))
            .unwrap_or_else(events::LiveView::offline)
    }

    /// Waits (a few seconds at most) for the first attempt to restore the
    /// saved session, so the window does not flash the sign-in screen.
    pub async fn restored(&self) {
        let mut restored = self.restored.subscribe();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            restored.wait_for(|done| *done),
        )
        .await;
    }

    /// Runs an upload batch in the background: its events go to the web
    /// view as `quire://upload`, and the source path of each registered
    /// document is remembered for retry. `start` gets the events sender and
    /// the batch's cancellation.
    pub fn spawn_upload<R, F, Fut>(&self, app: &AppHandle<R>, start: F)
    where
        R: Runtime,
        F: FnOnce(mpsc::UnboundedSender<UploadEvent>, CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (events, mut received) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let batch = self.next_batch.fetch_add(1, Ordering::Relaxed);
        self.batches.lock().unwrap().insert(batch, cancel.clone());
        let upload = start(events, cancel);
        let (app, batches, sources) = (app.clone(), self.batches.clone(), self.sources.clone());
        tauri::async_runtime::spawn(async move {
            let forward = async {
                while let Some(event) = received.recv().await {
                    if let UploadEvent::Registered { path, document_id } = &event {
                        sources.remember(*document_id, path);
                    }
                    if let UploadEvent::Resumable {
                        document_id,
                        upload_url,
                    } = &event
                        && let Some(resumable) = app.try_state::<crate::resume::Resumable>()
                    {
                        resumable.remember(*document_id, upload_url);
                    }
                    let _ = app.emit(events::UPLOAD, &event);
                }
            };
            tokio::join!(upload, forward);
            batches.lock().unwrap().remove(&batch);
        });
    }

    /// Cancels every upload batch and a pending browser sign-in (at sign-out).
    pub fn cancel_all(&self) {
        for (_, cancel) in self.batches.lock().unwrap().drain() {
            cancel.cancel();
        }
        if let Some(cancel) = self.sign_in.lock().unwrap().take() {
            cancel.cancel();
        }
    }
}

/// Restores the saved session; while the services cannot be reached, tries
/// again with backoff until someone is signed in. A keyring that cannot be
/// used leaves the window on the sign-in screen (signing in then reports the
/// keyring's problem).
async fn restore(quire: Quire, restored: Arc<watch::Sender<bool>>) {
    let mut backoff = Backoff::new(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(30),
    );
    loop {
        match quire.restore().await {
            Ok(Some(user)) => tracing::info!(user = %user.id, "resumed the saved session"),
            Ok(None) => tracing::info!("no saved session"),
            Err(e) if e.is_transient() => {
                let delay = backoff.next();
                tracing::warn!(error = %e, ?delay, "could not resume the saved session yet");
                restored.send_replace(true);
                tokio::time::sleep(delay).await;
                if matches!(quire.status(), quire_core::AuthStatus::SignedIn { .. }) {
                    break;
                }
                continue;
            }
            Err(e) => tracing::warn!(error = %e, "could not resume the saved session"),
        }
        break;
    }
    restored.send_replace(true);
}

/// Where this device uploaded each document from (`uploads.json` in the
/// profile's directory), so a failed one can be sent again.
#[derive(Clone)]
pub struct Sources {
    path: PathBuf,
    map: Arc<Mutex<HashMap<Uuid, PathBuf>>>,
}

impl Sources {
    /// Entries kept at most; the file stays small.
    const LIMIT: usize = 2000;

    fn load(path: PathBuf) -> Sources {
        let map = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Sources {
            path,
            map: Arc::new(Mutex::new(map)),
        }
    }

    /// The path document `id` was uploaded from here.
    pub fn get(&self, id: Uuid) -> Option<PathBuf> {
        self.map.lock().unwrap().get(&id).cloned()
    }

    pub fn remember(&self, id: Uuid, path: &Path) {
        let bytes = {
            let mut map = self.map.lock().unwrap();
            if map.len() >= Sources::LIMIT {
                map.clear();
            }
            map.insert(id, path.to_owned());
            serde_json::to_vec(&*map)
        };
        if let Ok(bytes) = bytes
            && let Err(e) = crate::instance::write_private(&self.path, &bytes)
        {
            tracing::warn!(error = %e, "could not remember where an upload came from");
        }
    }

    pub fn forget(&self, id: Uuid) {
        let bytes = {
            let mut map = self.map.lock().unwrap();
            if map.remove(&id).is_none() {
                return;
            }
            serde_json::to_vec(&*map)
        };
        if let Ok(bytes) = bytes {
            let _ = crate::instance::write_private(&self.path, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_sources_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("uploads.json");
        let id = Uuid::new_v4();
        Sources::load(file.clone()).remember(id, Path::new("/home/a/Lease.pdf"));
        let again = Sources::load(file.clone());
        assert_eq!(
            again.get(id).as_deref(),
            Some(Path::new("/home/a/Lease.pdf"))
        );
        again.forget(id);
        assert_eq!(Sources::load(file).get(id), None);
    }
}
