//! End-to-end tests of the real Quire window: the release build under Xvfb and D-Bus, driven
//! through `tauri-driver` + WebKitWebDriver, against the dev stack (`QUIRE_STACK`).
//! `cargo xtask test` builds the app, brings the stack up and runs these; every test saves
//! screenshots under `artifacts/e2e/` (and each app instance's output under
//! `artifacts/e2e/logs/`). Each test makes its own users, so the tests share the dev stack
//! and run in parallel.
//!
//! They assert what a person sees in the window (the `data-testid` hooks of
//! `src-tauri/IPC.md`) and, behind the app's back, what the database holds; every test that
//! touches data has a second user who must see none of it.

mod chat;
mod devices;
mod documents;
mod driver;
mod security;
mod signin;
mod support;
mod window;
