//! Starting the desktop app's processes, for the window tests
//! (`tests/desktop`) and the desktop bench (`tests/benches/desktop.rs`):
//! where the app and `tauri-driver` are, free ports, waiting for a WebDriver
//! server, ending a process group.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

pub use crate::repo_root;

/// The app binary: `QUIRE_APP_BIN`, else the build that ships (the `dist` profile) in the
/// target dir.
pub fn app_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("QUIRE_APP_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("dist/quire"),
    };
    if !path.is_file() {
        bail!(
            "the app binary {} does not exist: build it first (`cargo xtask test` and \
             `cargo xtask bench` do)",
            path.display()
        );
    }
    Ok(path.canonicalize()?)
}

/// `tauri-driver` as `cargo xtask setup` installs it, else from `PATH`.
pub fn tauri_driver() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    cargo_home
        .map(|h| h.join("bin/tauri-driver"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("tauri-driver"))
}

/// A loopback port nobody listens on now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until a WebDriver server listens on `port`.
pub async fn wait_for_port(port: u16, within: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the WebDriver server did not listen on port {port} within {within:?}")
}

/// Ends `child`'s whole process group (SIGTERM), then reaps it: tauri-driver does not end its
/// WebKitWebDriver child by itself (docs/desktop-on-linux.md §4).
pub fn end_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}
