//! The window's size and position, remembered per profile in
//! `window.json` in the profile's directory (logical pixels). Saved shortly
//! after each move or resize and when the window closes; restored when the
//! window is built, if it still fits on a screen.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tauri::{Runtime, WebviewWindow, WebviewWindowBuilder, WindowEvent};

/// What is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    #[serde(default)]
    pub maximized: bool,
}

/// The profile's window-state file.
#[derive(Clone)]
pub struct WindowState {
    path: PathBuf,
    /// Bumped by every move or resize; a save runs only for the latest.
    generation: Arc<AtomicU64>,
}

impl WindowState {
    pub fn new(profile_dir: &Path) -> WindowState {
        WindowState {
            path: profile_dir.join("window.json"),
            generation: Arc::default(),
        }
    }

    /// The saved state, if any and sane.
    pub fn load(&self) -> Option<Saved> {
        let saved: Saved = serde_json::from_slice(&std::fs::read(&self.path).ok()?).ok()?;
        let finite = [saved.x, saved.y, saved.width, saved.height]
            .iter()
            .all(|v| v.is_finite());
        (finite && saved.width >= 200.0 && saved.height >= 200.0).then_some(saved)
    }

    /// Applies the saved size and position to a window being built.
    pub fn apply<'a, R: Runtime, M: tauri::Manager<R>>(
        &self,
        builder: WebviewWindowBuilder<'a, R, M>,
    ) -> WebviewWindowBuilder<'a, R, M> {
        match self.load() {
            Some(saved) => builder
                .inner_size(saved.width, saved.height)
                .position(saved.x, saved.y)
                .maximized(saved.maximized),
            None => builder,
        }
    }

    /// Saves the window's state after it moves or resizes (debounced) and
    /// when it closes.
    pub fn track<R: Runtime>(&self, window: &WebviewWindow<R>) {
        let state = self.clone();
        let handle = window.clone();
        window.on_window_event(move |event| match event {
            WindowEvent::Moved(_) | WindowEvent::Resized(_) => {
                let generation = state.generation.fetch_add(1, Ordering::SeqCst) + 1;
                let (state, handle) = (state.clone(), handle.clone());
                tauri::async_runtime::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    if state.generation.load(Ordering::SeqCst) == generation {
                        state.save(&handle);
                    }
                });
            }
            WindowEvent::CloseRequested { .. } => state.save(&handle),
            _ => {}
        });
    }

    fn save<R: Runtime>(&self, window: &WebviewWindow<R>) {
        let Some(saved) = current(window) else { return };
        // A maximized window keeps the size it had before, not the screen's.
        let saved = match (saved.maximized, self.load()) {
            (true, Some(before)) => Saved {
                maximized: true,
                ..before
            },
            _ => saved,
        };
        if let Ok(bytes) = serde_json::to_vec(&saved)
            && let Err(e) = crate::instance::write_private(&self.path, &bytes)
        {
            tracing::warn!(error = %e, "could not save the window's size and position");
        }
    }
}

fn current<R: Runtime>(window: &WebviewWindow<R>) -> Option<Saved> {
    if window.is_minimized().unwrap_or(false) {
        return None;
    }
    let scale = window.scale_factor().ok()?;
    let position = window.outer_position().ok()?.to_logical::<f64>(scale);
    let size = window.inner_size().ok()?.to_logical::<f64>(scale);
    Some(Saved {
        x: position.x,
        y: position.y,
        width: size.width,
        height: size.height,
        maximized: window.is_maximized().unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonsense_on_disk_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = WindowState::new(dir.path());
        assert_eq!(state.load(), None);
        std::fs::write(dir.path().join("window.json"), b"{not json").unwrap();
        assert_eq!(state.load(), None);
        std::fs::write(
            dir.path().join("window.json"),
            br#"{"x":10,"y":20,"width":50,"height":900}"#,
        )
        .unwrap();
        assert_eq!(state.load(), None, "too small to use");
        std::fs::write(
            dir.path().join("window.json"),
            br#"{"x":10,"y":20,"width":900,"height":700}"#,
        )
        .unwrap();
        assert_eq!(
            state.load(),
            Some(Saved {
                x: 10.0,
                y: 20.0,
                width: 900.0,
                height: 700.0,
                maximized: false
            })
        );
    }
}
