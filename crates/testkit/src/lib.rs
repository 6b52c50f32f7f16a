//! `quire-testkit`: what Quire's test suites and benches share, in one place
//! (ARCHITECTURE.md, "crates/testkit"). Only ever a dev-dependency.
//!
//! | Feature | What it adds |
//! |---|---|
//! | (none) | [`fixtures`] (PDFs made in code), [`logs`] (`TEST_LOG=1`), [`eventually`] |
//!
//! A test reads Arrange / Act / Assert against real servers: two users in
//! every test that touches data, user A acts, user B must see nothing.

pub mod fixtures;
pub mod logs;
mod wait;

pub use wait::{PATIENCE, eventually};

/// The repository's root directory.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit lives two levels below the repository root")
        .to_path_buf()
}
