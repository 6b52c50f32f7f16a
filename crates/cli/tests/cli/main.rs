//! `quire-cli` end to end: the real binary against a sandbox and a companion
//! running in this test process, with the machine's real keyring backend in
//! a D-Bus session of its own (`quire_testkit::client::in_keyring_session`:
//! the test re-runs itself under `dbus-run-session` with an unlocked
//! gnome-keyring-daemon, so a person's own keyring is never touched).

mod deploy;
mod export;
mod scope;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use quire_core::{EventBody, MessageStatus};
use quire_testkit::client::in_keyring_session;
use quire_testkit::{PASSWORD_A, Stack, fixtures};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const LEASE: [&str; 3] = [
    "Tenancy agreement between the landlord and the tenant.\nThe rent is 900 euros per month.",
    "Pets are allowed only with the landlord's written consent.\nSmoking is not allowed inside the flat.",
    "The deposit is two months of rent.\nIt is returned within thirty days of moving out.",
];

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `quire-cli --stack <stack> <args…>` with `stdin`.
async fn cli(stack_file: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quire-cli"))
        .arg("--stack")
        .arg(stack_file)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("quire-cli starts");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The stack file `cargo xtask stack up` writes, secrets included: the CLI
/// must read only its three fields.
fn stack_file(stack: &Stack, dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("stack.json");
    let body = json!({
        "api_url": stack.api_base(),
        "anon_key": stack.anon_key(),
        "companion_url": stack.companion_url().unwrap(),
        "service_role_key": "not-for-clients",
        "jwt_secret": "not-for-clients-either",
        "db_url": "postgres://nope",
    });
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_upload_docs_ask_history_follow_logout() {
    if !in_keyring_session("login_upload_docs_ask_history_follow_logout") {
        return;
    }
    let stack = Stack::builder()
        .token_delay_ms(0)
        .with_companion()
        .spawn()
        .await;
    stack.create_user("alice@example.com", PASSWORD_A).await;
    let dir = tempfile::tempdir().unwrap();
    let file = stack_file(&stack, &dir);

    // Not signed in yet: one clear line, non-zero exit.
    let run = cli(&file, &["whoami"], "").await;
    assert!(!run.ok);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("quire-cli: You are not signed in"),
        "{}",
        run.stderr
    );

    let run = cli(
        &file,
        &["login", "--email", "alice@example.com", "--password-stdin"],
        "wrong\n",
    )
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("do not match an account"),
        "{}",
        run.stderr
    );

    let run = cli(
        &file,
        &["login", "--email", "alice@example.com", "--password-stdin"],
        &format!("{PASSWORD_A}\n"),
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("Signed in as alice@example.com"),
        "{}",
        run.stdout
    );

    // A new process finds the sign-in in the keyring.
    let run = cli(&file, &["whoami"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.starts_with("alice@example.com ("),
        "{}",
        run.stdout
    );

    let lease = dir.path().join("Lease.pdf");
    std::fs::write(&lease, fixtures::document_pdf(&LEASE)).unwrap();
    let fake = dir.path().join("fake.pdf");
    std::fs::write(&fake, "<html>not a pdf</html>").unwrap();
    let run = cli(&file, &["upload", fake.to_str().unwrap()], "").await;
    assert!(!run.ok);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("is not a PDF"), "{}", run.stderr);

    let run = cli(&file, &["upload", lease.to_str().unwrap()], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("Lease\tready (3 pages)"),
        "{}",
        run.stdout
    );

    let run = cli(&file, &["docs"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("\tLease\tready\t3 pages"),
        "{}",
        run.stdout
    );

    let run = cli(&file, &["ask", "Are pets allowed in the flat?"], "").await;
    assert!(run.ok, "{}", run.stderr);
    let sources = run.stdout.find("Sources:").unwrap();
    let answer = run.stdout.find("Pets are allowed").expect("the answer");
    let citations = run.stdout.find("Citations:").expect("citations");
    assert!(sources < answer && answer < citations, "{}", run.stdout);
    assert!(run.stdout.contains("[1] Lease (page 2)"), "{}", run.stdout);

    let run = cli(&file, &["history"], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("Are pets allowed in the flat?"),
        "{}",
        run.stdout
    );
    let conversation = run.stdout.split('\t').next().unwrap().trim().to_owned();
    let run = cli(&file, &["history", "--conversation", &conversation], "").await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("you: Are pets allowed in the flat?"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("quire: "), "{}", run.stdout);

    // Output into a pipe nobody reads any more (`quire-cli history | head`):
    // a quiet, successful end, not a panic.
    let mut closed = Command::new(env!("CARGO_BIN_EXE_quire-cli"))
        .arg("--stack")
        .arg(&file)
        .args(["history", "--conversation", &conversation])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    drop(closed.stdout.take());
    let output = closed.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // `follow` prints what another device asks and the answer as it streams.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_quire-cli"))
        .arg("--stack")
        .arg(&file)
        .arg("follow")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut errors = BufReader::new(follow.stderr.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = errors.next_line().await.unwrap() {
            if line == "(live)" {
                return;
            }
        }
        panic!("follow ended before it was live");
    })
    .await
    .expect("follow goes live");
    let (other_device, _) = stack.client();
    other_device
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    let mut answer = other_device
        .ask(None, "How much is the deposit?")
        .await
        .unwrap();
    let mut text = String::new();
    while let Some(event) = answer.next().await {
        match event.unwrap().body {
            EventBody::Delta { text: piece } => text.push_str(&piece),
            EventBody::Complete { status, .. } => assert_eq!(status, MessageStatus::Complete),
            _ => {}
        }
    }
    let mut printed = String::new();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line == "(complete)" {
                return;
            }
        }
    })
    .await
    .expect("follow prints the whole answer");
    follow.kill().await.unwrap();
    assert!(printed.contains("> How much is the deposit?"), "{printed}");
    assert!(
        printed.contains(text.trim()),
        "printed:\n{printed}\nstreamed:\n{text}"
    );

    let run = cli(&file, &["logout"], "").await;
    assert!(run.ok, "{}", run.stderr);
    let run = cli(&file, &["whoami"], "").await;
    assert!(!run.ok);
    assert!(
        run.stderr.starts_with("quire-cli: You are not signed in"),
        "{}",
        run.stderr
    );
}
