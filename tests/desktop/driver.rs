//! Starting `tauri-driver` and a WebDriver session on the Quire binary, and tearing both down.

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder};

/// The repository root (the parent of `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives below the repository root")
        .to_path_buf()
}

/// The app binary under test: `QUIRE_APP_BIN`, else the debug build in the target dir.
fn app_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("QUIRE_APP_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"))
            .join("debug/quire"),
    };
    if !path.is_file() {
        bail!(
            "the app binary {} does not exist: build it first (`cargo xtask test` does)",
            path.display()
        );
    }
    Ok(path.canonicalize()?)
}

/// A running app under WebDriver control. Dropping it ends the session's whole process group
/// (tauri-driver does not end its WebKitWebDriver child by itself; see
/// shared/reference/TAURI-ON-LINUX.md §4).
pub struct App {
    pub client: Client,
    driver: Child,
    name: String,
}

impl App {
    /// Launches Quire through a fresh tauri-driver on a free port.
    pub async fn launch(name: &str) -> Result<Self> {
        if std::env::var_os("DISPLAY").is_none() {
            bail!("no DISPLAY: run the end-to-end tests through `cargo xtask test` (Xvfb + D-Bus)");
        }
        let app = app_binary()?;
        let port = free_port()?;
        let native_port = free_port()?;
        let driver = Command::new(tauri_driver())
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .env("NO_AT_BRIDGE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting tauri-driver (installed by `cargo xtask setup`)")?;
        let mut guard = GroupGuard(Some(driver));
        wait_for_port(port, Duration::from_secs(20))?;
        let caps = serde_json::json!({
            "browserName": "wry",
            "tauri:options": { "application": app },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("opening a WebDriver session on the app")?;
        let driver = guard.0.take().expect("guard holds the driver");
        Ok(Self {
            client,
            driver,
            name: name.to_owned(),
        })
    }

    /// Saves a PNG of the web view under `artifacts/e2e/<test>-<label>.png` and returns its path.
    pub async fn screenshot(&self, label: &str) -> Result<PathBuf> {
        // The WebDriver screenshot can lag the DOM by a frame or two.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await?;
        let dir = repo_root().join("artifacts/e2e");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}-{label}.png", self.name));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Ends the WebDriver session and every process it started.
    pub async fn close(mut self) -> Result<()> {
        let result = self.client.clone().close().await;
        kill_group(&mut self.driver);
        result.map_err(Into::into)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

struct GroupGuard(Option<Child>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            kill_group(child);
        }
    }
}

fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
}

fn tauri_driver() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    cargo_home
        .map(|h| h.join("bin/tauri-driver"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("tauri-driver"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_for_port(port: u16, within: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("tauri-driver did not listen on port {port} within {within:?}")
}

/// Polls `check` until it returns `Some`, or fails after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > within {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
