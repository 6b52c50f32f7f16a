//! The companion's OCI image (packaging/companion/Containerfile: FROM scratch,
//! the static binary, the CA bundle), run by podman against a test stack as
//! DEPLOY.md runs it: settings from an environment file, a read-only file
//! system, the platform named by host name (`localhost`, resolved by the
//! static binary through the /etc/hosts podman gives the container), and
//! `podman stop`'s SIGTERM at the end.
//!
//! `cargo xtask test` builds the image (`cargo xtask dist companion`) and
//! runs these with `QUIRE_COMPANION_IMAGE` set; plain `cargo test` skips them.

use std::io::Write as _;
use std::process::Command;

use quire_testkit::fixtures::{self, MANUAL};
use quire_testkit::{Stack, eventually};
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use uuid::Uuid;

/// `podman args…`, which must succeed; its stdout and stderr.
fn podman(args: &[&str]) -> (String, String) {
    let output = Command::new("podman")
        .args(args)
        .output()
        .expect("podman runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "podman {args:?}: {stderr}");
    (
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        stderr,
    )
}

/// A free port on 127.0.0.1 for the container's companion (host network).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The environment file DEPLOY.md has the operator write, for `app`.
fn env_file(app: &Stack, port: u16) -> tempfile::NamedTempFile {
    let c = app.companion_config();
    let platform = c
        .platform
        .api_url
        .as_str()
        .replace("127.0.0.1", "localhost");
    let lines = [
        ("QUIRE_COMPANION_API_URL", platform),
        (
            "QUIRE_COMPANION_ANON_KEY",
            c.platform.anon_key.expose_secret().to_owned(),
        ),
        (
            "QUIRE_COMPANION_SERVICE_ROLE_KEY",
            c.platform.service_role_key.expose_secret().to_owned(),
        ),
        (
            "QUIRE_COMPANION_JWT_SECRET",
            c.jwt_secret.expose_secret().to_owned(),
        ),
        ("QUIRE_COMPANION_AGENT_ID", c.agent_id.to_string()),
        (
            "QUIRE_COMPANION_KNOWLEDGE_BASE_ID",
            c.knowledge_base_id.to_string(),
        ),
        (
            "QUIRE_COMPANION_TOOL_SECRET",
            c.tool_secret.expose_secret().to_owned(),
        ),
        ("QUIRE_COMPANION_LISTEN", format!("127.0.0.1:{port}")),
        (
            "QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL",
            "true".to_owned(),
        ),
        ("QUIRE_COMPANION_SHUTDOWN_GRACE_SECS", "5".to_owned()),
    ];
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for (name, value) in lines {
        writeln!(file, "{name}={value}").unwrap();
    }
    file
}

#[tokio::test]
#[ignore = "needs the companion's image: cargo xtask dist companion (cargo xtask test runs it)"]
async fn the_image_serves_an_answer_and_stops_cleanly_on_sigterm() {
    let image = std::env::var("QUIRE_COMPANION_IMAGE")
        .expect("QUIRE_COMPANION_IMAGE names the image (cargo xtask dist companion)");
    let app = Stack::builder().with_companion().spawn().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    app.ready_document(&a, "X200 manual.pdf", fixtures::text_pdf(&MANUAL))
        .await;

    let port = free_port();
    let env = env_file(&app, port);
    let name = format!("quire-companion-test-{}", Uuid::new_v4().simple());
    let env_path = env.path().to_str().unwrap().to_owned();
    // runc with limits below the machine's: crun cannot raise RLIMIT_NOFILE to
    // podman's default without CAP_SYS_RESOURCE here (DEPLOY.md §4.2).
    podman(&[
        "--runtime",
        "runc",
        "run",
        "--detach",
        "--name",
        &name,
        "--ulimit",
        "nofile=1024:4096",
        "--ulimit",
        "nproc=1024:2048",
        "--network",
        "host",
        "--read-only",
        "--env-file",
        &env_path,
        &image,
    ]);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually(60, "the container's companion is ready", async || {
        let ready = http.get(format!("{url}/ready")).send().await;
        ready.is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    let health: Value = http
        .get(format!("{url}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let hits = app.search(&a, "warranty motor").await;
    let ids: Vec<&Value> = hits.iter().map(|h| &h["id"]).collect();
    let response = http
        .post(format!("{url}/api/chat"))
        .bearer_auth(&a.token)
        .json(&json!({"message": "How long is the warranty on the motor?", "chunk_ids": ids}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = quire_testkit::sse::parse_sse(&response.text().await.unwrap());
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "complete", "{last}");
    assert!(
        !last["payload"]["citations"].as_array().unwrap().is_empty(),
        "{last}"
    );
    let message_id = last["message_id"].as_str().unwrap();
    let answer = format!("chat_messages?select=status&id=eq.{message_id}");
    assert_eq!(
        app.rows_as(&a, &answer).await,
        [json!({"status": "complete"})]
    );
    assert_eq!(app.rows_as(&b, &answer).await, Vec::<Value>::new());

    podman(&["--runtime", "runc", "stop", "--time", "30", &name]);
    let (exit, _) = podman(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    let (out, err) = podman(&["logs", &name]);
    let logs = format!("{out}{err}");
    podman(&["rm", &name]);
    assert_eq!(exit, "0", "SIGTERM ends it cleanly:\n{logs}");
    assert!(logs.contains("stopped"), "{logs}");
}
