//! `quire-desktop`: the Tauri shell. Every decision lives in `quire-core`;
//! this crate builds the window and wires the commands and events of
//! `IPC.md` to it.
//!
//! * `main.rs` starts [`run`]; [`run`] picks the profile, takes its
//!   single-instance lock ([`instance`]), loads the configuration and builds
//!   the window with its remembered size ([`window_state`]).
//! * [`commands`]: one function per command, a few lines each.
//! * [`events`]: the forwarders of state updates, auth and live status.
//! * [`shell`]: what the commands share (the client, the follower, upload
//!   batches).

pub mod commands;
pub mod events;
pub mod granted;
pub mod instance;
pub mod links;
pub mod logs;
pub mod profile;
pub mod resume;
pub mod shell;
#[cfg(test)]
mod typescript;
pub mod window_state;

use std::path::Path;
use std::process::ExitCode;

use tauri::{DragDropEvent, Emitter, Manager, WebviewWindowBuilder, WindowEvent};

pub use commands::COMMANDS;
pub use events::EVENTS;

/// Runs the app; returns when its window is closed (or at once, after
/// focusing the running window, when this profile already has one).
pub fn run() -> ExitCode {
    init_logs();
    // Arguments are read as bytes: a file's name need not be UTF-8.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let named = args.iter().map(|a| a.to_string_lossy().into_owned());
    let profile = match profile::from_args(named, std::env::var("QUIRE_PROFILE").ok()) {
        Ok(profile) => profile,
        Err(e) => {
            eprintln!("quire: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = match profile::data_dir(&profile) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("quire: could not create the profile's data directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let opened = profile::opened_files(args, &cwd);
    let guard = match instance::acquire(&dir, &opened) {
        Ok(instance::Instance::Primary(guard)) => guard,
        Ok(instance::Instance::Secondary) => {
            tracing::info!(profile = %profile, "this profile's window is already open; brought it forward");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!(
                "quire: could not check for a running Quire window of profile {profile}: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(profile = %profile, "starting");
    let config = quire_core::Config::load(None);

    let result = tauri::Builder::default()
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(commands::handler())
        .setup(move |app| {
            let handle = app.handle().clone();
            let shell = tauri::async_runtime::block_on(shell::Shell::start(
                &handle,
                profile.clone(),
                &dir,
                config,
            ));
            app.manage(resume::Resumable::load(dir.join("resumable.json")));
            app.manage(shell);
            resume::start(handle.clone());
            build_window(app, &profile, &dir)?;
            app.state::<shell::Shell>().open(opened);
            guard.serve(move |files| {
                if !files.is_empty() {
                    handle.state::<shell::Shell>().open(files);
                    let _ = handle.emit(events::OPENED, ());
                }
                focus(&handle);
            });
            Ok(())
        })
        .run(tauri::generate_context!("../tauri.conf.json"));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire: the window could not run: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The main window from `tauri.conf.json` (which does not create it, so the
/// navigation guard and the remembered size are set before it loads). The
/// paths of every drop on it are granted to it for `upload_files`.
fn build_window(
    app: &mut tauri::App,
    profile: &quire_core::Profile,
    dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == "main")
        .cloned()
        .ok_or("tauri.conf.json has no main window")?;
    let dev_url = app.config().build.dev_url.clone().filter(|_| cfg!(dev));
    let state = window_state::WindowState::new(dir);
    let mut builder = WebviewWindowBuilder::from_config(app.handle(), &config)?
        .on_navigation(move |url| links::allow_navigation(url, dev_url.as_ref()));
    if !profile.is_default() {
        builder = builder.title(format!("{} — {}", config.title, profile.name()));
    }
    let screens = window_state::screens(app.handle());
    let window = state.apply(builder, &screens).build()?;
    state.track(&window);
    // Tauri runs this before the page hears of the drop, so the paths are
    // granted before the UI can ask to upload them.
    let granted = app.state::<shell::Shell>().granted.clone();
    let label = window.label().to_owned();
    window.on_window_event(move |event| {
        if let WindowEvent::DragDrop(DragDropEvent::Drop { paths, .. }) = event {
            granted.grant(&label, paths.iter().cloned());
        }
    });
    Ok(())
}

/// Brings the window forward (a second launch of this profile asked).
fn focus<R: tauri::Runtime>(app: &tauri::AppHandle<R>) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}

/// Logs to stderr (`QUIRE_LOG`, default `info`), through [`logs::filter`]:
/// the HTTP and WebSocket libraries stay at `info` whatever is asked.
fn init_logs() {
    use tracing_subscriber::prelude::*;

    let asked = std::env::var("QUIRE_LOG").unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .with_filter(logs::filter(&asked)),
        )
        .try_init();
}
