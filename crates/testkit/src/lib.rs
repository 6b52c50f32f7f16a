//! `quire-testkit`: what Quire's test suites and benches share, in one place
//! (ARCHITECTURE.md, "crates/testkit"). Only ever a dev-dependency.
//!
//! | Feature | What it adds |
//! |---|---|
//! | (none) | [`fixtures`] (PDFs made in code), [`logs`] (`TEST_LOG=1`), [`eventually`] |
//! | `sandbox` | [`Stack`]: a sandbox in this process over its own `quire-testdb` database, with a method per endpoint ([`spawn_sandbox`], [`Stack::builder`]); [`Api`], the same methods for a stack running elsewhere ([`StackInfo`]); [`serve`], a stack in a child process for the benches |
//! | `stack` | the companion in front, with Quire's agent and knowledge base provisioned ([`spawn_stack`]); [`sse`], reading its answer stream |
//! | `client` | [`client`]: `quire-core` clients of a stack, the OS keyring in a session of its own |
//! | `window` | [`window`]: where the desktop app and `tauri-driver` are, free ports, process groups |
//!
//! A test reads Arrange / Act / Assert against real servers: two users in
//! every test that touches data, user A acts, user B must see nothing.

#![warn(missing_docs)]

pub mod fixtures;
pub mod logs;
mod wait;

pub use wait::{PATIENCE, eventually};

#[cfg(feature = "sandbox")]
mod api;
#[cfg(feature = "sandbox")]
pub mod serve;
#[cfg(feature = "sandbox")]
mod stack;
#[cfg(feature = "sandbox")]
pub use api::{Api, PASSWORD_A, PASSWORD_B, StackInfo, User, json_of};
#[cfg(feature = "sandbox")]
pub use stack::{Builder, Stack, spawn_sandbox, spawn_sandbox_with};

#[cfg(feature = "stack")]
mod companion;
#[cfg(feature = "stack")]
pub mod sse;
#[cfg(feature = "stack")]
pub use stack::spawn_stack;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "window")]
pub mod window;

/// The repository's root directory.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit lives two levels below the repository root")
        .to_path_buf()
}
