//! End-to-end tests of the real Quire window: the release build under Xvfb and D-Bus, driven
//! through `tauri-driver` + WebKitWebDriver, against the dev stack (`QUIRE_STACK`).
//! `cargo xtask test` builds the app, brings the stack up and runs these; every test saves
//! screenshots under `artifacts/e2e/` (and each app instance's output under
//! `artifacts/e2e/logs/`). Each test makes its own users, so the tests share the dev stack
//! and run in parallel.
//!
//! By hand (a display, a session bus and an unlocked Secret Service keyring, as `cargo xtask
//! test` sets them up):
//!
//! ```sh
//! QUIRE_STACK=$PWD/.quire/stack.json QUIRE_APP_BIN=$PWD/target/dist/quire \
//!   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- sh -c '
//!     printf pw | HOME=$(mktemp -d) gnome-keyring-daemon --unlock --components=secrets >/dev/null
//!     sleep 1   # until it owns org.freedesktop.secrets
//!     cargo test -p quire-e2e --test desktop'
//! ```
//!
//! (An empty keyring password creates no login collection, and the daemon needs a moment to
//! own its bus name; without either, the app cannot keep a sign-in.)
//!
//! They assert what a person sees in the window (the `data-testid` hooks of
//! `src-tauri/IPC.md`) and, behind the app's back, what the database holds; every test that
//! touches data has a second user who must see none of it.

mod accounts;
mod chat;
mod connect;
mod devices;
mod documents;
mod driver;
mod languages;
mod open_with;
mod own_model;
mod packages;
mod resume;
mod scope;
mod security;
mod signin;
mod suggestions;
mod support;
mod versions;
mod web_view;
mod window;
mod xdnd;
