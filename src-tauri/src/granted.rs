//! Which local files the web view may name. A compromised web view can call
//! `upload_files` with any path it likes (`~/.ssh/id_ed25519`,
//! `~/Documents/tax-2024.pdf`); the shell uploads only paths the person
//! handed to this window themselves, recorded here in Rust as they arrive:
//! the paths of a drop (Tauri's `DragDropEvent::Drop`, from the window
//! system, not from the page). Each grant is used once. The file dialog's
//! choice never crosses the web view (`pick_files` uploads it itself).
//! Paths given on the command line ("Open with Quire") join with one call to
//! [`Granted::grant`].

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use quire_core::{ErrorCode, ErrorView};

/// The paths each window may upload, per window label.
#[derive(Clone, Default)]
pub struct Granted {
    windows: Arc<Mutex<HashMap<String, VecDeque<PathBuf>>>>,
}

/// A path the window was not handed (or whose grant was used already).
#[derive(Debug, PartialEq, Eq)]
pub struct NotGranted;

impl Granted {
    /// Grants a window kept at most; the oldest go first, so a person who
    /// drops folder after folder without uploading cannot grow the set.
    const LIMIT: usize = 10_000;

    /// Lets `window` upload each of `paths` once.
    pub fn grant(&self, window: &str, paths: impl IntoIterator<Item = PathBuf>) {
        let mut windows = self.windows.lock().unwrap();
        let granted = windows.entry(window.to_owned()).or_default();
        granted.extend(paths);
        while granted.len() > Granted::LIMIT {
            granted.pop_front();
        }
    }

    /// Uses up the grants of `paths` in `window`: all of them, or none when
    /// one was not granted. Paths are compared as given: a path that names a
    /// granted file another way (`..`, a symlink) is not that file's grant.
    pub fn take(&self, window: &str, paths: &[PathBuf]) -> Result<(), NotGranted> {
        let mut windows = self.windows.lock().unwrap();
        let granted = windows.entry(window.to_owned()).or_default();
        let mut left = granted.clone();
        for path in paths {
            let at = left.iter().position(|g| g == path).ok_or(NotGranted)?;
            left.remove(at);
        }
        *granted = left;
        Ok(())
    }
}

impl From<NotGranted> for ErrorView {
    fn from(_: NotGranted) -> Self {
        ErrorView {
            code: ErrorCode::Forbidden,
            message: "Quire uploads only files you drop on its window or choose with Add PDFs. \
                      Drop the files again, or choose them with Add PDFs."
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_window_uploads_what_was_dropped_on_it_once() {
        let granted = Granted::default();
        granted.grant("main", paths(&["/home/a/Lease.pdf", "/home/a/Tax.pdf"]));

        assert_eq!(
            granted.take("other", &paths(&["/home/a/Lease.pdf"])),
            Err(NotGranted)
        );
        assert_eq!(granted.take("main", &paths(&["/home/a/Lease.pdf"])), Ok(()));
        assert_eq!(
            granted.take("main", &paths(&["/home/a/Lease.pdf"])),
            Err(NotGranted),
            "a grant is used once"
        );
        assert_eq!(granted.take("main", &paths(&["/home/a/Tax.pdf"])), Ok(()));
    }

    #[test]
    fn a_path_never_granted_refuses_the_whole_call() {
        let granted = Granted::default();
        granted.grant("main", paths(&["/home/a/Lease.pdf"]));
        for asked in [
            paths(&["/etc/passwd"]),
            paths(&["/home/a/Lease.pdf", "/home/a/Documents/Tax.pdf"]),
            paths(&["/home/a/Lease.pdf", "/home/a/Lease.pdf"]),
            paths(&["/home/a/../a/Lease.pdf"]),
        ] {
            assert_eq!(granted.take("main", &asked), Err(NotGranted), "{asked:?}");
        }
        assert_eq!(
            granted.take("main", &paths(&["/home/a/Lease.pdf"])),
            Ok(()),
            "a refused call used up no grant"
        );
    }

    #[test]
    fn the_oldest_grants_go_past_the_limit() {
        let granted = Granted::default();
        granted.grant("main", paths(&["/first.pdf"]));
        granted.grant(
            "main",
            (0..Granted::LIMIT).map(|i| PathBuf::from(format!("/{i}.pdf"))),
        );
        assert_eq!(
            granted.take("main", &paths(&["/first.pdf"])),
            Err(NotGranted)
        );
        assert_eq!(granted.take("main", &paths(&["/0.pdf"])), Ok(()));
    }
}
