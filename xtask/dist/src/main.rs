//! `quire-dist`: Quire's Linux packages, made from the top-level `tauri.conf.json` and an app
//! binary that is already built. `cargo xtask dist` builds the binary and runs this from the
//! repository root (paths in the config are relative to it); see `docs/packaging.md`.
//!
//! ```text
//! quire-dist <app binary>
//! ```
//!
//! Beside the binary it writes
//!
//! * `bundle/deb/Quire_<version>_amd64.deb`, through `tauri-bundler` as a library ([`deb`]);
//! * `bundle/appimage/Quire-<version>-x86_64.AppImage`, assembled here from the `.deb`'s staged
//!   tree, Debian's `mksquashfs` and the runtime the `appimage` crate ships ([`appimage`]),
//!   because every bundler downloads its AppImage tools at build time.
//!
//! It is its own workspace binary, not part of `xtask`, so that the bundler's long cold build
//! is paid only by `cargo xtask dist` and `cargo xtask test`, not by every `cargo xtask`.

mod appimage;
mod deb;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tauri_utils::config::Config;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quire-dist: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [binary] = args.as_slice() else {
        bail!("usage: quire-dist <app binary> (run from the repository root)");
    };
    let binary = Path::new(binary)
        .canonicalize()
        .with_context(|| format!("the app binary {binary} does not exist: build it first"))?;
    let config = config(Path::new("tauri.conf.json"))?;
    let deb = deb::build(&config, &binary)?;
    println!("{}", deb.package.display());
    let out = binary
        .parent()
        .context("the app binary has no parent directory")?
        .join("bundle/appimage");
    let image = appimage::build(&config, &deb.staged, &out)?;
    println!("{}", image.display());
    Ok(())
}

/// The Tauri config as tauri-build reads it (with `tauri.linux.conf.json` merged in, if any).
fn config(path: &Path) -> Result<Config> {
    if !path.is_file() {
        bail!("no tauri.conf.json here: run quire-dist from the repository root");
    }
    let (config, _) = tauri_utils::config::parse::parse(
        tauri_utils::platform::Target::Linux,
        PathBuf::from(path),
    )
    .with_context(|| format!("reading {}", path.display()))?;
    Ok(config)
}

/// The product name, which names the packages and the desktop entry.
fn product_name(config: &Config) -> Result<&str> {
    config
        .product_name
        .as_deref()
        .context("tauri.conf.json has no productName")
}

/// The version the packages carry.
fn version(config: &Config) -> Result<&str> {
    config
        .version
        .as_deref()
        .context("tauri.conf.json has no version")
}
