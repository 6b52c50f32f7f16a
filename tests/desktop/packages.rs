//! The packages `cargo xtask dist` makes (docs/packaging.md), as a person gets them: the
//! `.deb`'s desktop entry, AppStream metainfo, icons and Depends, checked by the validators
//! distributions use; the binary it installs, and the AppImage started with
//! `--appimage-extract-and-run` (no FUSE here), each opening Quire's first screen under Xvfb.
//! `cargo xtask test` packages the app these tests run, beside it (`<app dir>/bundle/`).
//!
//! The packaged programs are started through tauri-driver like the other window tests, but
//! not through [`crate::driver::App`]: an AppImage's app process is not the file started.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use fantoccini::{ClientBuilder, Locator};
use quire_testkit::window::{end_group, free_port, tauri_driver, wait_for_port};
use serde_json::{Value, json};

use crate::driver::{UI, app_binary, artifacts, testid_css};
use crate::support::{self, DevStack as _};

/// The hicolor sizes the package installs `quire.png` at.
const ICON_SIZES: &[u32] = &[16, 22, 24, 32, 48, 64, 96, 128, 192, 256];

#[tokio::test]
async fn the_debs_desktop_entry_metainfo_and_icons_pass_the_validators() -> Result<()> {
    let deb = package("deb", ".deb")?;
    let root = unpack(&deb)?;
    let files = root.path().join("usr/share");

    let desktop = files.join("applications/Quire.desktop");
    let hints = output(Command::new("desktop-file-validate").arg(&desktop))?;
    ensure!(hints.trim().is_empty(), "desktop-file-validate: {hints}");
    let entry = std::fs::read_to_string(&desktop)?;
    for line in ["Exec=quire %F", "MimeType=application/pdf;", "Icon=quire"] {
        ensure!(
            entry.lines().any(|l| l == line),
            "the desktop entry has no `{line}`:\n{entry}"
        );
    }

    output(
        Command::new("appstreamcli")
            .args(["validate", "--no-net", "--strict"])
            .arg(files.join("metainfo/app.quire.desktop.metainfo.xml")),
    )?;

    for size in ICON_SIZES {
        let icon = files.join(format!("icons/hicolor/{size}x{size}/apps/quire.png"));
        ensure!(icon.is_file(), "no {size}x{size} icon in the package");
    }
    ensure!(files.join("doc/quire/copyright").is_file());

    let depends = output(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Depends"),
    )?;
    for library in ["libwebkit2gtk-4.1-0", "libgtk-3-0", "libc6"] {
        ensure!(
            depends.contains(library),
            "Depends lacks {library}: {depends}"
        );
    }
    ensure!(
        std::fs::read(root.path().join("usr/bin/quire"))? == std::fs::read(app_binary()?)?,
        "the package holds another binary than the app the window tests run"
    );
    Ok(())
}

#[tokio::test]
async fn the_binary_the_deb_installs_opens_on_the_sign_in_form() -> Result<()> {
    let root = unpack(&package("deb", ".deb")?)?;
    first_screen("deb", &root.path().join("usr/bin/quire"), &[], &[]).await
}

#[tokio::test]
async fn the_appimage_opens_on_the_sign_in_form_with_extract_and_run() -> Result<()> {
    let image = package("appimage", ".AppImage")?;
    // The runtime extracts into $TMPDIR; a directory of the test's own goes when it ends.
    let extracted = tempfile::tempdir()?;
    first_screen(
        "appimage",
        &image,
        &["--appimage-extract-and-run"],
        &[("TMPDIR", extracted.path())],
    )
    .await
}

/// Starts `program` with `args` through tauri-driver on a fresh profile, as the window tests
/// start the app, waits for the sign-in form and saves a screenshot
/// (`artifacts/e2e/packages-<label>-sign-in-form.png`).
async fn first_screen(
    label: &str,
    program: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Result<()> {
    let stack = support::stack()?;
    support::ensure_keyring()?;
    let home = tempfile::tempdir()?;
    std::fs::create_dir_all(artifacts().join("logs"))?;
    let log = std::fs::File::create(
        artifacts()
            .join("logs")
            .join(format!("packages-{label}.log")),
    )?;
    let port = free_port()?;
    let mut command = Command::new(tauri_driver());
    command
        .args(["--port", &port.to_string()])
        .args(["--native-port", &free_port()?.to_string()]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("QUIRE_") {
            command.env_remove(&key);
        }
    }
    command
        .envs(stack.app_env())
        // No screenshot without compositing (docs/desktop-on-linux.md §8).
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "0")
        .env(
            "QUIRE_PROFILE",
            format!("e2e-packages-{}", support::unique()),
        )
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("NO_AT_BRIDGE", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let mut driver = command.spawn().context("starting tauri-driver")?;
    let shown = sign_in_form(port, program, args, label).await;
    end_group(&mut driver);
    shown
}

async fn sign_in_form(port: u16, program: &Path, args: &[&str], label: &str) -> Result<()> {
    wait_for_port(port, Duration::from_secs(20)).await?;
    let Value::Object(caps) = json!({
        "browserName": "wry",
        "tauri:options": { "application": program, "args": args },
    }) else {
        unreachable!()
    };
    let mut builder = ClientBuilder::native();
    builder.capabilities(caps);
    let client = tokio::time::timeout(
        Duration::from_secs(60),
        builder.connect(&format!("http://127.0.0.1:{port}")),
    )
    .await
    .with_context(|| format!("{label}: no window within 60 s (artifacts/e2e/logs)"))??;
    let email = client
        .wait()
        .at_most(UI)
        .for_element(Locator::Css(&testid_css("sign-in-email")))
        .await
        .with_context(|| format!("{label}: no sign-in form"))?;
    ensure!(
        email.is_displayed().await?,
        "{label}: the email field is hidden"
    );
    ensure!(
        client.title().await? == "Quire",
        "{label}: the window's title"
    );
    // A WebDriver screenshot can lag the DOM by a frame (docs/desktop-on-linux.md §4).
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(
        artifacts().join(format!("packages-{label}-sign-in-form.png")),
        client.screenshot().await?,
    )?;
    client.close().await?;
    Ok(())
}

/// The one package of `kind` beside the app binary: `<app dir>/bundle/<kind>/*<suffix>`.
fn package(kind: &str, suffix: &str) -> Result<PathBuf> {
    let app = app_binary()?;
    let dir = app
        .parent()
        .context("the app binary has a directory")?
        .join("bundle")
        .join(kind);
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}: run `cargo xtask dist` first", dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one *{suffix} in {}: {found:?}", dir.display()),
    }
}

/// The files the `.deb` installs, unpacked into a temporary directory.
fn unpack(deb: &Path) -> Result<tempfile::TempDir> {
    let root = tempfile::tempdir()?;
    output(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()))?;
    Ok(root)
}

/// Runs `command`; its standard output and error when it succeeds, an error with both when not.
fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{command:?} failed ({}): {text}", out.status);
    }
    Ok(text)
}
