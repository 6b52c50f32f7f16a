//! `cargo xtask dist companion`: the companion as something to run (DEPLOY.md), in
//! `target/dist/companion/`:
//!
//! - `quire-companion`: a static-pie Linux binary (glibc linked in with `crt-static`; the
//!   explicit `--target` keeps build scripts and proc-macros dynamic), which needs nothing of
//!   the machine it runs on;
//! - `quire-companion.service`, `quire-companion.env.example`: the systemd unit and its
//!   environment file (`packaging/companion/`);
//! - `Containerfile`, `ca-certificates.crt`: the OCI image's recipe (FROM scratch: nothing to
//!   download) and the CA bundle it ships;
//! - `quire-companion-<version>-oci.tar`: the image, built with podman when podman is here,
//!   also tagged `localhost/quire-companion:<version>`.
//!
//! `cargo xtask test` builds it and runs the image against a test stack
//! (`quire-companion` api `image::*`), unless podman cannot build or run here, which it says.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util;

/// The target the static binary is built for (explicit, so that `RUSTFLAGS` reach only it).
const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The image's name in podman's local store.
const IMAGE: &str = "localhost/quire-companion";
/// What the image ships as its CA bundle (Debian's `ca-certificates`).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Builds the static binary, stages the packaging files, builds the image if podman can;
/// returns the image's reference (`localhost/quire-companion:<version>`) if it was built.
pub fn run() -> Result<Option<String>> {
    let root = util::repo_root();
    let binary = build_static(&root)?;
    let dir = util::target_dir().join("dist/companion");
    stage(&root, &binary, &dir)?;
    verify_unit(&dir)?;
    let image = match podman_builds() {
        Ok(()) => Some(build_image(&dir)?),
        Err(why) => {
            println!("dist companion: no image: podman cannot build here ({why:#})");
            None
        }
    };
    println!("dist companion: {}", dir.display());
    Ok(image)
}

/// `cargo build --release` of the companion, glibc linked in; checks that the result is static.
fn build_static(root: &Path) -> Result<PathBuf> {
    util::step("dist companion: the static binary (release, +crt-static)");
    util::cmd("cargo")
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "quire-companion",
            "--bin",
            "quire-companion",
            "--target",
            TARGET,
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(root)
        .run()?;
    let binary = util::target_dir()
        .join(TARGET)
        .join("release/quire-companion");
    let kind = util::cmd("file").arg("-b").arg(&binary).read()?;
    if !(kind.contains("static-pie linked") || kind.contains("statically linked")) {
        bail!("{} is not static: {kind}", binary.display());
    }
    Ok(binary)
}

/// Copies the binary, the unit, the environment file, the recipe and the CA bundle into `dir`.
fn stage(root: &Path, binary: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let packaging = root.join("packaging/companion");
    let files = [
        (binary.to_path_buf(), "quire-companion"),
        (
            packaging.join("quire-companion.service"),
            "quire-companion.service",
        ),
        (
            packaging.join("quire-companion.env.example"),
            "quire-companion.env.example",
        ),
        (packaging.join("Containerfile"), "Containerfile"),
        (PathBuf::from(CA_BUNDLE), "ca-certificates.crt"),
    ];
    for (from, name) in files {
        std::fs::copy(&from, dir.join(name))
            .with_context(|| format!("copying {} into {}", from.display(), dir.display()))?;
    }
    Ok(())
}

/// `systemd-analyze verify` of the unit, its `ExecStart` pointed at the staged binary (the
/// unit names `/usr/local/bin`, where DEPLOY.md installs it); skipped without systemd.
fn verify_unit(dir: &Path) -> Result<()> {
    if !util::on_path("systemd-analyze") {
        println!("dist companion: the unit is not verified (no systemd-analyze here)");
        return Ok(());
    }
    let unit = std::fs::read_to_string(dir.join("quire-companion.service"))?;
    let check = tempfile_dir()?;
    let staged = dir.join("quire-companion");
    let unit = unit.replace("/usr/local/bin/quire-companion", &staged.to_string_lossy());
    let path = check.join("quire-companion.service");
    std::fs::write(&path, unit)?;
    let verified = util::cmd("systemd-analyze").arg("verify").arg(&path).run();
    let _ = std::fs::remove_dir_all(&check);
    verified
}

/// A fresh directory for the unit's check (systemd wants the file named after the unit).
fn tempfile_dir() -> Result<PathBuf> {
    let dir = util::target_dir().join(format!("dist/companion-unit-{}", util::random_hex(4)?));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Whether podman is installed and answers (`podman info`).
fn podman_builds() -> Result<()> {
    if !util::on_path("podman") {
        bail!("podman is not installed (cargo xtask setup installs it)");
    }
    let info = Command::new("podman")
        .args(["info", "--format", "{{.Host.OCIRuntime.Name}}"])
        .output()
        .context("running podman info")?;
    if !info.status.success() {
        bail!(
            "podman info failed: {}",
            String::from_utf8_lossy(&info.stderr).trim()
        );
    }
    Ok(())
}

/// `podman build` FROM scratch, then the image as an OCI archive beside the binary.
fn build_image(dir: &Path) -> Result<String> {
    util::step("dist companion: the OCI image (podman build, FROM scratch)");
    let image = format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION"));
    util::cmd("podman")
        .args(["build", "--quiet", "-f", "Containerfile", "-t", &image, "."])
        .current_dir(dir)
        .run()?;
    let archive = dir.join(format!(
        "quire-companion-{}-oci.tar",
        env!("CARGO_PKG_VERSION")
    ));
    let _ = std::fs::remove_file(&archive);
    util::cmd("podman")
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&archive)
        .arg(&image)
        .run()?;
    Ok(image)
}

/// `cargo xtask test`'s part: the image run against a test stack by the companion's suite
/// (`image::*`, ignored by plain `cargo test`), or why it cannot run here.
pub fn test_image() -> Result<()> {
    let Some(image) = run()? else {
        println!("skipped: the companion's image test (podman cannot build images here)");
        return Ok(());
    };
    util::step("the companion's image, run by podman against a test stack");
    util::cmd("cargo")
        .args([
            "test",
            "-p",
            "quire-companion",
            "--test",
            "api",
            "--",
            "--ignored",
            "image::",
        ])
        .env("QUIRE_COMPANION_IMAGE", image)
        .current_dir(util::repo_root())
        .run()
}
