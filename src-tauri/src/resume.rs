//! Uploads cut by quitting (ARCHITECTURE.md, "Upload"): where each resumable
//! upload of this device stands on the server (`resumable.json` in the
//! profile's directory), and, once someone is signed in after a start, going
//! on with the documents still `uploading` whose file this device sent
//! ([`quire_core::Quire::resume_upload`], from the server's offset). One
//! whose file is gone or changed stays "Upload interrupted" for Retry
//! (`retry_document` resumes it) or Delete.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use quire_core::{AuthStatus, DocumentStatus, ErrorView, UploadOptions};
use tauri::{AppHandle, Manager, Runtime};
use uuid::Uuid;

use crate::shell::Shell;

/// The TUS URL of each of this device's resumable uploads not finished yet.
#[derive(Clone)]
pub struct Resumable {
    path: PathBuf,
    map: Arc<Mutex<HashMap<Uuid, String>>>,
}

impl Resumable {
    /// Entries kept at most; the file stays small.
    const LIMIT: usize = 500;

    pub fn load(path: PathBuf) -> Resumable {
        let map = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Resumable {
            path,
            map: Arc::new(Mutex::new(map)),
        }
    }

    pub fn get(&self, id: Uuid) -> Option<String> {
        self.map.lock().unwrap().get(&id).cloned()
    }

    pub fn remember(&self, id: Uuid, upload_url: &str) {
        self.change(|map| {
            if map.len() >= Resumable::LIMIT {
                map.clear();
            }
            map.insert(id, upload_url.to_owned()).as_deref() != Some(upload_url)
        });
    }

    pub fn forget(&self, id: Uuid) {
        self.change(|map| map.remove(&id).is_some());
    }

    /// Applies `change` and writes the file when it says something changed.
    fn change(&self, change: impl FnOnce(&mut HashMap<Uuid, String>) -> bool) {
        let bytes = {
            let mut map = self.map.lock().unwrap();
            if !change(&mut map) {
                return;
            }
            serde_json::to_vec(&*map)
        };
        if let Ok(bytes) = bytes
            && let Err(e) = crate::instance::write_private(&self.path, &bytes)
        {
            tracing::warn!(error = %e, "could not keep where an upload stands");
        }
    }
}

/// How often the window's uploads are looked at again for one that nothing
/// has sent for the in-flight hour ([`quire_core::State::recheck_uploads`]).
const RECHECK_UPLOADS: std::time::Duration = std::time::Duration::from_secs(60);

/// Once someone is signed in (now or later in this run), goes on with the
/// uploads this device had not finished (`resume_all`); and every minute
/// (`RECHECK_UPLOADS`), an upload another device began that has gone
/// quiet for the in-flight hour turns to "Upload interrupted".
pub fn start<R: Runtime>(app: AppHandle<R>) {
    let recheck = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            tokio::time::sleep(RECHECK_UPLOADS).await;
            if let Ok(quire) = recheck.state::<Shell>().quire() {
                quire.state().recheck_uploads();
            }
        }
    });
    tauri::async_runtime::spawn(async move {
        let Ok(quire) = app.state::<Shell>().quire() else {
            return;
        };
        let mut watch = quire.auth().watch();
        loop {
            if matches!(watch.status(), AuthStatus::SignedIn { .. }) {
                resume_all(&app).await;
                return;
            }
            if watch.changed().await.is_none() {
                return;
            }
        }
    });
}

/// Resumes every document still `uploading` that this device sent.
async fn resume_all<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    let Ok(quire) = shell.quire() else { return };
    let documents = match quire.documents().await {
        Ok(documents) => documents,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for cut uploads");
            return;
        }
    };
    for document in documents {
        if document.status != DocumentStatus::Uploading {
            continue;
        }
        if let Some(path) = shell.sources.get(document.id) {
            tracing::info!(document = %document.id, "resuming a cut upload");
            if let Err(e) = resume(app, &shell, document.id, path) {
                tracing::warn!(message = %e.message, "could not resume an upload");
            }
        }
    }
}

/// Goes on with the upload of document `id` from `path` in the background
/// (events: `quire://upload`); a failure leaves it "Upload interrupted".
pub fn resume<R: Runtime>(
    app: &AppHandle<R>,
    shell: &Shell,
    id: Uuid,
    path: PathBuf,
) -> Result<(), ErrorView> {
    let quire = shell.quire()?;
    let upload_url = app.try_state::<Resumable>().and_then(|r| r.get(id));
    let (app2, sources) = (app.clone(), shell.sources.clone());
    shell.spawn_upload(app, move |events, _cancel| async move {
        let options = UploadOptions::default();
        let resumed = quire
            .resume_upload(id, &path, upload_url.as_deref(), &options, Some(events))
            .await;
        if resumed.is_ok() {
            sources.forget(id);
            if let Some(resumable) = app2.try_state::<Resumable>() {
                resumable.forget(id);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_an_upload_stands_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resumable.json");
        let id = Uuid::new_v4();
        Resumable::load(file.clone()).remember(id, "http://127.0.0.1/tus/abc");
        let again = Resumable::load(file.clone());
        assert_eq!(again.get(id).as_deref(), Some("http://127.0.0.1/tus/abc"));
        again.forget(id);
        assert_eq!(Resumable::load(file).get(id), None);
    }
}
