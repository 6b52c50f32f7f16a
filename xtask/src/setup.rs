//! `cargo xtask setup`: installs what is missing on Debian/Ubuntu, and nothing else.
//!
//! Idempotent and quick when everything is present: one `dpkg-query`, a byte comparison per npm
//! project, one `cargo install --list`.

use std::path::Path;

use anyhow::{Result, bail};

use crate::util::{self, cmd};

/// Debian packages Quire needs, with the reason for each.
const APT_PACKAGES: &[(&str, &str)] = &[
    // Building the Tauri desktop shell (docs/desktop-on-linux.md §1).
    ("build-essential", "C toolchain for -sys crates"),
    ("pkg-config", "locating system libraries"),
    (
        "curl",
        "Tauri build prerequisite; the upload bench's baseline",
    ),
    ("wget", "Tauri build prerequisite"),
    ("file", "Tauri build prerequisite"),
    (
        "libwebkit2gtk-4.1-dev",
        "WebKitGTK, the desktop app's web view",
    ),
    ("libxdo-dev", "Tauri (keyboard/menu support)"),
    ("libssl-dev", "TLS for build scripts"),
    ("libayatana-appindicator3-dev", "Tauri tray support"),
    ("librsvg2-dev", "Tauri icons"),
    ("libdbus-1-dev", "keyring's Secret Service backend"),
    // The local platform.
    (
        "postgresql",
        "the database under the sandbox and every integration test",
    ),
    ("postgresql-contrib", "pg_trgm for fuzzy search"),
    // A transaction-mode pooler, as Supabase's Supavisor is on port 6543.
    ("pgbouncer", "testing migrate through a pooler"),
    // Running and testing the app without a display.
    ("xvfb", "a virtual display for the app's end-to-end tests"),
    (
        "webkit2gtk-driver",
        "WebKitWebDriver, which tauri-driver drives",
    ),
    (
        "dbus",
        "dbus-run-session for the keyring and the app under test",
    ),
    ("dbus-x11", "a session bus for GTK programs"),
    ("gnome-keyring", "the Secret Service keyring backend"),
    ("libsecret-tools", "secret-tool, to inspect the keyring"),
    ("keyutils", "the kernel keyring backend (keyctl)"),
    ("imagemagick", "screenshots of the app window"),
    ("xdotool", "driving the window under Xvfb"),
    (
        "python3-markdown",
        "rendering an exported conversation in a window test (markdown_py)",
    ),
    ("x11-utils", "xwininfo, to find the app window"),
    ("fonts-dejavu-core", "a font for the web view"),
    (
        "fonts-droid-fallback",
        "Chinese and Japanese glyphs in the web view (the languages window test's screenshots)",
    ),
    // Packaging the app (`cargo xtask dist`, docs/packaging.md).
    ("dpkg-dev", "dpkg-shlibdeps, the .deb's Depends"),
    ("squashfs-tools", "mksquashfs, the AppImage's file system"),
    (
        "desktop-file-utils",
        "desktop-file-validate, checking the desktop entry",
    ),
    ("appstream", "appstreamcli, checking the AppStream metainfo"),
    // The companion's image (`cargo xtask dist companion`, DEPLOY.md §4.2).
    (
        "podman",
        "building the companion's OCI image and running it in the tests",
    ),
    (
        "runc",
        "the OCI runtime the image test runs with (crun cannot set podman's limits here)",
    ),
    (
        "ca-certificates",
        "the CA bundle the companion's image ships",
    ),
];

/// npm projects whose packages `setup` installs (relative to the repository root).
const NPM_PROJECTS: &[&str] = &["ui", "tests/conformance"];

/// tauri-driver must stay on 2.x: crates.io lists 3.0 alphas as "latest".
const TAURI_DRIVER_REQ: &str = "^2";

pub fn run() -> Result<()> {
    util::step("setup: checking what is installed");
    apt()?;
    node()?;
    npm()?;
    tauri_driver()?;
    Ok(())
}

fn apt() -> Result<()> {
    if !util::on_path("dpkg-query") {
        let names: Vec<&str> = APT_PACKAGES.iter().map(|(p, _)| *p).collect();
        bail!(
            "`cargo xtask setup` installs system packages on Debian/Ubuntu only. On this system, \
             install the equivalents of these Debian packages yourself, then run it again:\n  {}",
            names.join(" ")
        );
    }
    let mut missing: Vec<&str> = APT_PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !util::on_path("node") || !util::on_path("npm") {
        missing.extend(["nodejs", "npm"]);
    }
    if missing.is_empty() {
        return Ok(());
    }
    for p in &missing {
        let why = APT_PACKAGES
            .iter()
            .find(|(name, _)| name == p)
            .map(|(_, why)| *why)
            .unwrap_or("Node.js for the UI and the client conformance tests");
        println!("    missing: {p} ({why})");
    }
    let install = format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    let sudo = if util::is_root() {
        None
    } else if util::on_path("sudo") && cmd("sudo").args(["-n", "true"]).succeeds() {
        Some("sudo")
    } else {
        bail!(
            "{} system package(s) are missing and this user is neither root nor allowed to sudo \
             without a password. Run this as root, then `cargo xtask setup` again:\n\n  {}\n",
            missing.len(),
            install.replace("apt-get", "sudo apt-get")
        );
    };
    util::step(&format!(
        "setup: installing {} package(s) with apt-get",
        missing.len()
    ));
    let apt = |args: &[&str]| -> Result<()> {
        let mut c = match sudo {
            Some(s) => {
                let mut c = cmd(s);
                c.arg("apt-get");
                c
            }
            None => cmd("apt-get"),
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive").run()
    };
    apt(&["update", "-qq"])?;
    let mut install_args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install_args.extend(missing.iter().copied());
    apt(&install_args)?;
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    cmd("dpkg-query")
        .args(["-W", "-f=${db:Status-Abbrev}", package])
        .read()
        .map(|s| s.starts_with("ii"))
        .unwrap_or(false)
}

fn node() -> Result<()> {
    let version = cmd("node").arg("--version").read()?;
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        bail!(
            "Node.js {} is too old: the UI build needs Node.js 20 or newer. Install a newer \
             `nodejs` package, then run `cargo xtask setup` again.",
            version.trim()
        );
    }
    Ok(())
}

/// `npm ci` in each npm project whose installed packages do not match its lock file.
fn npm() -> Result<()> {
    let root = util::repo_root();
    for project in NPM_PROJECTS {
        let dir = root.join(project);
        if !dir.join("package.json").is_file() {
            continue;
        }
        if npm_up_to_date(&dir) {
            continue;
        }
        util::step(&format!("setup: installing npm packages in {project}/"));
        let verb = if dir.join("package-lock.json").is_file() {
            "ci"
        } else {
            "install"
        };
        cmd("npm")
            .args([verb, "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .run()?;
        if let Ok(lock) = std::fs::read(dir.join("package-lock.json")) {
            std::fs::write(dir.join("node_modules/.quire-installed-lock"), lock)?;
        }
    }
    Ok(())
}

/// True when `node_modules` was installed by us from exactly the current lock file.
fn npm_up_to_date(dir: &Path) -> bool {
    match (
        std::fs::read(dir.join("package-lock.json")),
        std::fs::read(dir.join("node_modules/.quire-installed-lock")),
    ) {
        (Ok(lock), Ok(installed)) => lock == installed,
        _ => false,
    }
}

fn tauri_driver() -> Result<()> {
    let installed = cmd("cargo")
        .args(["install", "--list"])
        .read()
        .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("tauri-driver v2.")) {
        return Ok(());
    }
    util::step("setup: installing tauri-driver 2.x (cargo install, about a minute)");
    cmd("cargo")
        .args([
            "install",
            "tauri-driver",
            "--locked",
            "--version",
            TAURI_DRIVER_REQ,
        ])
        .run()
}
