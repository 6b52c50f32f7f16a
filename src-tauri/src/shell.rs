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
use std::sync::{Arc, Mutex};

use quire_core::{CancellationToken, Config, ErrorView, Follower, Profile, Quire, UploadEvent};
use quire_protocol::backoff::Backoff;
use tauri::{AppHandle, Emitter, Runtime};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::events::{self, Revs};
use crate::granted::Granted;
use crate::links::Consent;

pub struct Shell {
    pub profile: Profile,
    /// The client, or why there is none (no anon key configured…).
    client: Result<Quire, ErrorView>,
    pub revs: Revs,
    follower: Option<Follower>,
    /// `true` once the saved session has been tried at start.
    restored: watch::Receiver<bool>,
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

impl Shell {
    /// Builds the client for `profile` and starts what runs for the whole
    /// session: the update, auth and live forwarders, one follower (it waits
    /// for a sign-in by itself), and restoring the saved session. Must run
    /// inside the async runtime.
    pub fn start<R: Runtime>(
        app: &AppHandle<R>,
        profile: Profile,
        profile_dir: &Path,
        config: Result<Config, quire_core::Error>,
    ) -> Shell {
        let revs = Revs::default();
        let (restored_tx, restored) = watch::channel(false);
        let client = config
            .map(|config| Quire::with_profile(config, &profile))
            .map_err(|e| e.to_view());
        let mut follower = None;
        match &client {
            Ok(quire) => {
                events::forward_updates(app.clone(), quire.state().subscribe(), revs.clone());
                events::forward_auth(app.clone(), quire);
                let following = quire.follow();
                events::forward_live(app.clone(), following.watch());
                follower = Some(following);
                tauri::async_runtime::spawn(restore(quire.clone(), restored_tx));
            }
            Err(error) => {
                tracing::error!(message = %error.message, "Quire is not configured");
                restored_tx.send_replace(true);
            }
        }
        Shell {
            profile,
            client,
            revs,
            follower,
            restored,
            batches: Arc::default(),
            next_batch: AtomicU64::new(0),
            sources: Sources::load(profile_dir.join("uploads.json")),
            sign_in: Mutex::new(None),
            granted: Granted::default(),
            opened: Mutex::default(),
            links: Consent::from_env(),
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

    /// The client, or the configuration error every command reports.
    pub fn quire(&self) -> Result<&Quire, ErrorView> {
        self.client.as_ref().map_err(Clone::clone)
    }

    /// The follower's status now (offline when there is none).
    pub fn live(&self) -> events::LiveView {
        self.follower
            .as_ref()
            .map(|f| events::LiveView::from(&f.status()))
            .unwrap_or_else(events::LiveView::offline)
    }

    /// Waits (a few seconds at most) for the first attempt to restore the
    /// saved session, so the window does not flash the sign-in screen.
    pub async fn restored(&self) {
        let mut restored = self.restored.clone();
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
async fn restore(quire: Quire, restored: watch::Sender<bool>) {
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
