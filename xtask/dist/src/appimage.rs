//! The AppImage, assembled by hand: every bundler (tauri-bundler, cargo-packager, the Tauri
//! CLI) downloads AppRun and linuxdeploy from GitHub releases at build time, and nothing but
//! the package registries can be reached here (docs/packaging.md).
//!
//! An AppImage is a runtime (an ELF program) followed by a squashfs image of an AppDir
//! (docs.appimage.org, "Architecture"). The AppDir is the `.deb`'s staged `usr/` plus what the
//! runtime and desktop integrations look for at its root: `AppRun`, one `.desktop` file, the
//! icon and `.DirIcon`. The squashfs is Debian's `mksquashfs`; the runtime is the AppImageKit
//! type-2 runtime the `appimage` crate ships as a file (checked by its SHA-256 below). It reads
//! gzip and xz squashfs only, mounts with `libfuse.so.2`, and without FUSE runs with
//! `--appimage-extract-and-run`. WebKitGTK is not inside: the system's is used, like the
//! `.deb`'s.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use tauri_utils::config::Config;

/// The `appimage` crate whose `assets/runtime-x86_64` is the runtime (xtask/dist/Cargo.toml).
const RUNTIME_CRATE: (&str, &str) = ("appimage", "0.4.0");
/// SHA-256 of `assets/runtime-x86_64` in that crate: AppImageKit's runtime at commit 8bbf694.
const RUNTIME_SHA256: &str = "328e0d745c5c6817048c27bc3e8314871703f8f47ffa81a37cb06cd95a94b323";
/// The runtime's licence, shipped inside the image beside Quire's.
const RUNTIME_NOTICE: &str = "packaging/linux/appimage-runtime-notice.txt";

/// Builds `<out>/<product>-<version>-x86_64.AppImage` from the `.deb`'s staged tree.
pub fn build(config: &Config, staged: &Path, out: &Path) -> Result<PathBuf> {
    let runtime = runtime()?;
    std::fs::create_dir_all(out)?;
    let work = tempfile::tempdir_in(out)?;
    let app_dir = work.path().join("AppDir");
    app_dir_from(staged, &app_dir)?;
    let squashfs = work.path().join("image.squashfs");
    let status = Command::new("mksquashfs")
        .arg(&app_dir)
        .arg(&squashfs)
        .args([
            "-root-owned",
            "-noappend",
            "-comp",
            "xz",
            "-quiet",
            "-no-progress",
        ])
        .status()
        .context("running mksquashfs (Debian's squashfs-tools; `cargo xtask setup` installs it)")?;
    if !status.success() {
        bail!("mksquashfs failed ({status})");
    }
    let image = out.join(format!(
        "{}-{}-x86_64.AppImage",
        crate::product_name(config)?,
        crate::version(config)?
    ));
    let mut bytes = runtime;
    bytes.extend(std::fs::read(&squashfs)?);
    std::fs::write(&image, bytes)?;
    set_mode(&image, 0o755)?;
    Ok(image)
}

/// The AppDir: `usr/` as the `.deb` installs it, `AppRun`, the desktop entry and the icon.
fn app_dir_from(staged: &Path, app_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(app_dir)?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(staged.join("usr"))
        .arg(app_dir)
        .status()?;
    if !status.success() {
        bail!("copying the staged tree into the AppDir failed ({status})");
    }
    let docs = std::fs::read_dir(app_dir.join("usr/share/doc"))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .find(|dir| dir.join("copyright").is_file())
        .context("the staged tree has no usr/share/doc/<package>/copyright")?;
    std::fs::copy(RUNTIME_NOTICE, docs.join("appimage-runtime"))
        .with_context(|| format!("copying {RUNTIME_NOTICE}"))?;

    let desktop = only_file(&app_dir.join("usr/share/applications"), "desktop")?;
    let entry = std::fs::read_to_string(&desktop)?;
    let value = |key: &str| {
        entry
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
            .with_context(|| format!("{} has no {key}=", desktop.display()))
    };
    let icon = value("Icon")?;
    let binary = value("TryExec")?;
    std::fs::copy(&desktop, app_dir.join(desktop.file_name().expect("a file")))?;
    std::fs::copy(
        app_dir.join(format!("usr/share/icons/hicolor/256x256/apps/{icon}.png")),
        app_dir.join(format!("{icon}.png")),
    )
    .context("the AppDir's icon: the app has no 256x256 icon")?;
    std::os::unix::fs::symlink(format!("{icon}.png"), app_dir.join(".DirIcon"))?;

    // The runtime runs AppRun from the mount (or the extracted copy) with the AppImage's
    // arguments; the working directory stays the caller's, so relative paths still resolve.
    let app_run = app_dir.join("AppRun");
    std::fs::write(
        &app_run,
        format!(
            "#!/bin/sh\nHERE=\"$(dirname \"$(readlink -f \"$0\")\")\"\n\
             exec \"$HERE/usr/bin/{binary}\" \"$@\"\n"
        ),
    )?;
    set_mode(&app_run, 0o755)
}

/// The one file with `extension` in `dir`.
fn only_file(dir: &Path, extension: &str) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one .{extension} file in {}, found {}",
            dir.display(),
            found.len()
        ),
    }
}

/// The runtime's bytes, from the `appimage` crate Cargo downloaded (found through `cargo
/// metadata`, which fetches every locked package), checked against [`RUNTIME_SHA256`].
fn runtime() -> Result<Vec<u8>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let (name, version) = RUNTIME_CRATE;
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name && p["version"] == version)
        .and_then(|p| p["manifest_path"].as_str())
        .with_context(|| format!("cargo metadata lists no {name} {version}"))?;
    let path = Path::new(manifest)
        .parent()
        .context("a manifest has a directory")?
        .join("assets/runtime-x86_64");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if digest != RUNTIME_SHA256 {
        bail!(
            "{} has SHA-256 {digest}, not the runtime checked in docs/packaging.md",
            path.display()
        );
    }
    Ok(bytes)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}
