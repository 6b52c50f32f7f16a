//! "Open with Quire": the desktop entry runs `quire %F` (docs/packaging.md §3), so a PDF opened
//! with Quire arrives as an argument, and one opened while Quire runs arrives as a second
//! launch of the same profile, which hands it to the running window and exits. Either way the
//! signed-in person's window uploads it; another user sees none of it.
//!
//! The app is started as a file manager starts it (no WebDriver, which passes no arguments
//! of its own), signed in already: the person's refresh token is in the keyring, as a sign-in
//! on an earlier run leaves it.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, ensure};
use quire_testkit::eventually;

use crate::driver::{Profile, app_binary, artifacts};
use crate::support::{self, DevStack as _};

#[tokio::test]
async fn pdfs_opened_with_quire_are_uploaded_by_its_running_window_for_the_signed_in_person()
-> Result<()> {
    let stack = support::stack()?;
    support::ensure_keyring()?;
    let a = stack.new_user("open-a").await?;
    let b = stack.new_user("open-b").await?;
    let a_session = stack.tokens(&a).await?;
    let b_session = stack.tokens(&b).await?;
    let profile = Profile::new("open-with")?;
    remember_sign_in(&profile.keyring_account(stack), &a_session.refresh_token)?;

    let files = tempfile::tempdir()?;
    let lease = format!("Lease {}", support::unique());
    let tax = format!("Tax {}", support::unique());
    support::write_parade_pdf(files.path(), &lease)?;
    let tax_pdf = support::write_parade_pdf(files.path(), &tax)?;

    // A relative path, as typed in a terminal in the file's folder.
    let first = Running(launch(
        &profile,
        files.path(),
        &format!("{lease}.pdf"),
        "first",
    )?);
    let titles = async || {
        stack
            .rows_as(&a_session, "documents?select=title")
            .await
            .iter()
            .filter_map(|d| d["title"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    eventually(
        120,
        "the PDF Quire was started with is A's document",
        async || titles().await.iter().any(|t| t.contains(&lease)),
    )
    .await;

    // Opened again while the window runs: the second launch hands the file over and exits.
    let mut second = launch(&profile, files.path(), tax_pdf.to_str().unwrap(), "second")?;
    let status = second.wait()?;
    ensure!(status.success(), "the second launch ended with {status}");
    eventually(
        120,
        "the PDF handed to the running window is A's document",
        async || titles().await.iter().any(|t| t.contains(&tax)),
    )
    .await;
    ensure!(
        titles().await.len() == 2,
        "A has other documents than the two opened: {:?}",
        titles().await
    );
    ensure!(
        stack
            .rows_as(&b_session, "documents?select=id")
            .await
            .is_empty(),
        "B sees A's documents"
    );
    drop(first);
    Ok(())
}

/// The first window, ended (SIGTERM) when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Leaves `refresh_token` in the keyring for `account`, as Quire keeps a sign-in.
fn remember_sign_in(account: &str, refresh_token: &str) -> Result<()> {
    use std::io::Write as _;
    let mut store = Command::new("secret-tool")
        .args(["store", "--label=quire e2e sign-in", "service", "quire"])
        .args(["username", account])
        .stdin(Stdio::piped())
        .spawn()
        .context("running secret-tool (package libsecret-tools)")?;
    store
        .stdin
        .take()
        .context("secret-tool's stdin")?
        .write_all(refresh_token.as_bytes())?;
    ensure!(
        store.wait()?.success(),
        "secret-tool could not store the sign-in"
    );
    Ok(())
}

/// Runs the app on `profile` with one argument, from `dir`, as a file manager runs
/// `Exec=quire %F`; its output goes to `artifacts/e2e/logs/open-with-<label>.log`.
fn launch(profile: &Profile, dir: &Path, file: &str, label: &str) -> Result<Child> {
    let stack = support::stack()?;
    std::fs::create_dir_all(artifacts().join("logs"))?;
    let log = std::fs::File::create(
        artifacts()
            .join("logs")
            .join(format!("open-with-{label}.log")),
    )?;
    let mut command = Command::new(app_binary()?);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("QUIRE_") {
            command.env_remove(&key);
        }
    }
    let [config, data, cache] = profile.dirs();
    command
        .arg(file)
        .current_dir(dir)
        .envs(stack.app_env())
        .env("QUIRE_PROFILE", &profile.name)
        .env("XDG_CONFIG_HOME", config)
        .env("XDG_DATA_HOME", data)
        .env("XDG_CACHE_HOME", cache)
        .env("NO_AT_BRIDGE", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Ok(command.spawn()?)
}
