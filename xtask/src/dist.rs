//! `cargo xtask dist`: Quire's Linux packages, a `.deb` and an AppImage, in
//! `target/dist/bundle/` beside the app binary they hold (docs/packaging.md).
//!
//! The packaging itself is `quire-dist` (`xtask/dist`), a workspace binary of its own:
//! tauri-bundler's cold build takes minutes, and only this command and `cargo xtask test`
//! should pay for it.

use std::path::Path;

use anyhow::Result;

use crate::util;

/// Installs what is missing, builds the app as the end-to-end tests run it, packages it.
pub fn run() -> Result<()> {
    crate::setup::run()?;
    let app = crate::build_app()?;
    package(&app)
}

/// The `.deb` and the AppImage of `app`, in `bundle/deb/` and `bundle/appimage/` beside it.
pub fn package(app: &Path) -> Result<()> {
    util::step("dist: the .deb and the AppImage (quire-dist)");
    util::cmd("cargo")
        .args(["run", "-q", "-p", "quire-dist", "--"])
        .arg(app)
        .current_dir(util::repo_root())
        .run()
}
