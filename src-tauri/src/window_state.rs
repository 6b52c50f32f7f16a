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

impl Saved {
    /// Whether a strip along the window's top (where its title bar is, 100
    /// by 40 logical pixels at least) lies on one of `screens`.
    fn visible_on(&self, screens: &[(f64, f64, f64, f64)]) -> bool {
        screens.iter().any(|&(x, y, width, height)| {
            let left = self.x.max(x);
            let right = (self.x + self.width).min(x + width);
            let top = self.y.max(y);
            let bottom = (self.y + 40.0).min(y + height);
            right - left >= 100.0 && bottom - top >= 40.0
        })
    }
}

/// The logical rectangles of the screens the app can show windows on.
pub fn screens<R: Runtime>(app: &tauri::AppHandle<R>) -> Vec<(f64, f64, f64, f64)> {
    app.available_monitors()
        .unwrap_or_default()
        .iter()
        .map(|monitor| {
            let scale = monitor.scale_factor();
            let position = monitor.position().to_logical::<f64>(scale);
            let size = monitor.size().to_logical::<f64>(scale);
            (position.x, position.y, size.width, size.height)
        })
        .collect()
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

    /// Applies the saved size and position to a window being built. The
    /// position only when the window's title bar would be on one of
    /// `screens` (logical `(x, y, width, height)`; a screen may be gone).
    pub fn apply<'a, R: Runtime, M: tauri::Manager<R>>(
        &self,
        builder: WebviewWindowBuilder<'a, R, M>,
        screens: &[(f64, f64, f64, f64)],
    ) -> WebviewWindowBuilder<'a, R, M> {
        let Some(saved) = self.load() else {
            return builder;
        };
        let builder = builder
            .inner_size(saved.width, saved.height)
            .maximized(saved.maximized);
        if saved.visible_on(screens) {
            builder.position(saved.x, saved.y)
        } else {
            builder
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
    fn a_position_is_kept_only_on_a_screen_that_is_still_there() {
        let saved = Saved {
            x: 40.0,
            y: 30.0,
            width: 900.0,
            height: 650.0,
            maximized: false,
        };
        let laptop = (0.0, 0.0, 1280.0, 800.0);
        let right = (1280.0, 0.0, 1920.0, 1080.0);
        assert!(saved.visible_on(&[laptop]));
        let on_right = Saved { x: 1500.0, ..saved };
        assert!(on_right.visible_on(&[laptop, right]));
        assert!(!on_right.visible_on(&[laptop]), "that screen is gone");
        let above = Saved { y: -500.0, ..saved };
        assert!(!above.visible_on(&[laptop]));
        assert!(!saved.visible_on(&[]));
    }

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
