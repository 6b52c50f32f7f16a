//! DEPLOY.md, followed literally (issue 15 item 5): a Powabase project as a
//! deployer finds it — a platform whose database has `db/platform` only, no
//! `db/app` — reached only through the commands DEPLOY.md gives and the
//! variables it lists: `migrate`, `provision`, `serve`, `doctor --run`. Then a
//! person signs in with `quire-cli`, configured as DEPLOY.md §8 says, uploads
//! a PDF and gets a cited answer; a second person finds none of it.
//!
//! The companion binary is the one `cargo build` put beside `quire-cli` (the
//! workspace's test run builds both; `cargo test -p quire-cli` alone does not
//! build it).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use quire_testkit::client::in_keyring_session;
use quire_testkit::fixtures::{self, MANUAL};
use quire_testkit::{PASSWORD_A, PASSWORD_B, Stack, eventually};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

/// `quire-companion`, built beside `quire-cli`.
fn companion_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_quire-cli")).with_file_name("quire-companion");
    assert!(
        binary.is_file(),
        "{} is missing: cargo build -p quire-companion",
        binary.display()
    );
    binary
}

/// `quire-companion <args>` with exactly the environment file's variables.
async fn companion(env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(companion_binary())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .await
        .expect("quire-companion runs")
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `quire-cli --profile <profile> <args>` configured by DEPLOY.md §8's variables.
async fn cli(client: &[(&str, String)], profile: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quire-cli"))
        .envs(client.iter().map(|(k, v)| (*k, v)))
        .env_remove("QUIRE_CONFIG")
        .arg("--profile")
        .arg(profile)
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
    child.wait_with_output().await.unwrap()
}

/// `curl -fsS <addr>/ready` succeeds (DEPLOY.md §5, step 3).
async fn ready(addr: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = "GET /ready HTTP/1.1\r\nHost: quire\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer.starts_with("HTTP/1.1 200")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// DEPLOY.md §2 and §3: the values collected from the project, and the
/// deployer's own.
fn environment_file(stack: &Stack, port: u16) -> Vec<(String, String)> {
    let public = format!("http://127.0.0.1:{port}");
    [
        ("QUIRE_COMPANION_API_URL", stack.api_base().to_owned()),
        ("QUIRE_COMPANION_ANON_KEY", stack.anon_key()),
        ("QUIRE_COMPANION_SERVICE_ROLE_KEY", stack.service_key()),
        ("QUIRE_COMPANION_JWT_SECRET", stack.jwt_secret()),
        ("QUIRE_COMPANION_DATABASE_URL", stack.db.url()),
        // `openssl rand -hex 32`.
        (
            "QUIRE_COMPANION_TOOL_SECRET",
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        ),
        ("QUIRE_COMPANION_PUBLIC_URL", public),
        ("QUIRE_COMPANION_LISTEN", format!("127.0.0.1:{port}")),
        // The one line DEPLOY.md says never to write: this "remote" platform
        // is on loopback, where the real one refuses to call the tool.
        (
            "QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL",
            "true".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_set_up_as_deploy_md_says_answers_a_person_with_citations() {
    if !in_keyring_session(
        "deploy::a_project_set_up_as_deploy_md_says_answers_a_person_with_citations",
    ) {
        return;
    }
    let stack = Stack::builder()
        .platform_only()
        .sandbox(|c| {
            c.agents.allow_loopback_tool_endpoints = true;
            c.agents.token_delay_ms = 0;
        })
        .spawn()
        .await;
    let port = free_port();
    let mut env = environment_file(&stack, port);
    let dir = tempfile::tempdir().unwrap();

    // DEPLOY.md §5, step 1: migrate.
    let status = companion(&env, &["migrate", "status"]).await;
    assert!(status.status.success(), "{}", said(&status));
    assert!(
        said(&status).contains("pending  00_prerequisites.sql"),
        "{}",
        said(&status)
    );
    let migrated = companion(&env, &["migrate"]).await;
    assert!(migrated.status.success(), "{}", said(&migrated));
    let again = companion(&env, &["migrate", "--dry-run"]).await;
    assert!(said(&again).contains(": 0 of "), "{}", said(&again));

    // DEPLOY.md §5, step 2: provision, the ids into the environment file.
    let ids_file = dir.path().join("companion.json");
    let provisioned = companion(&env, &["provision", "--out", ids_file.to_str().unwrap()]).await;
    assert!(provisioned.status.success(), "{}", said(&provisioned));
    let ids: Value = serde_json::from_slice(&std::fs::read(&ids_file).unwrap()).unwrap();
    env.push((
        "QUIRE_COMPANION_AGENT_ID".to_owned(),
        ids["agent_id"].as_str().unwrap().to_owned(),
    ));
    env.push((
        "QUIRE_COMPANION_KNOWLEDGE_BASE_ID".to_owned(),
        ids["knowledge_base_id"].as_str().unwrap().to_owned(),
    ));

    // DEPLOY.md §5, step 3: serve, until /ready says so.
    let mut serve = Command::new(companion_binary())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let public = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    eventually(60, "the companion is ready", async || ready(&addr).await).await;

    // DEPLOY.md §7: doctor, green.
    let doctor = companion(&env, &["doctor", "--run"]).await;
    let report = said(&doctor);
    assert!(doctor.status.success(), "{report}");
    assert!(!report.contains("FAIL"), "{report}");

    // DEPLOY.md §8: people connect with the project URL, the anon key and PUBLIC_URL.
    stack.create_user("a@example.com", PASSWORD_A).await;
    stack.create_user("b@example.com", PASSWORD_B).await;
    let client = [
        ("QUIRE_API_URL", stack.api_base().to_owned()),
        ("QUIRE_ANON_KEY", stack.anon_key()),
        ("QUIRE_COMPANION_URL", public.clone()),
    ];
    for (profile, email, password) in [
        ("a", "a@example.com", PASSWORD_A),
        ("b", "b@example.com", PASSWORD_B),
    ] {
        let login = cli(
            &client,
            profile,
            &["login", "--email", email, "--password-stdin"],
            &format!("{password}\n"),
        )
        .await;
        assert!(login.status.success(), "{}", said(&login));
    }
    let manual = dir.path().join("X200 manual.pdf");
    std::fs::write(&manual, fixtures::document_pdf(&MANUAL)).unwrap();
    let upload = cli(&client, "a", &["upload", manual.to_str().unwrap()], "").await;
    assert!(upload.status.success(), "{}", said(&upload));
    let question = "How long is the warranty on the motor?";
    let ask = cli(&client, "a", &["ask", question], "").await;
    let answer = String::from_utf8_lossy(&ask.stdout).into_owned();
    assert!(ask.status.success(), "{}", said(&ask));
    assert!(answer.contains("five years"), "{answer}");
    assert!(answer.contains("Citations:"), "{answer}");
    assert!(answer.contains("] X200 manual (page"), "{answer}");

    // B signed in to the same project finds none of it.
    let docs = cli(&client, "b", &["docs"], "").await;
    assert!(docs.status.success(), "{}", said(&docs));
    assert!(!said(&docs).contains("X200"), "{}", said(&docs));
    let theirs = cli(&client, "b", &["ask", question], "").await;
    assert!(!said(&theirs).contains("X200"), "{}", said(&theirs));
    assert!(!said(&theirs).contains("five years"), "{}", said(&theirs));

    // And it stops as DEPLOY.md §11 says: SIGTERM, a clean exit.
    let pid = serve.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stopped = serve.wait().await.unwrap();
    assert!(stopped.success(), "{stopped}");
}
