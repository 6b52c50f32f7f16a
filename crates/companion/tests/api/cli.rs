//! The binary as `cargo xtask stack up` drives it: `provision --out`, and a
//! start-up that names what is missing.

use secrecy::ExposeSecret as _;
use serde_json::Value;

use quire_testkit::spawn_stack;

fn binary() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_quire-companion"));
    command.env_clear().env("QUIRE_COMPANION_LOG", "warn");
    command
}

#[tokio::test]
async fn provision_writes_the_ids_and_reuses_them() {
    let app = spawn_stack().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested").join("companion.json");
    let run = || {
        let mut command = binary();
        command
            .arg("provision")
            .arg("--out")
            .arg(&out)
            .env("QUIRE_COMPANION_API_URL", app.sandbox.api_base())
            .env("QUIRE_COMPANION_ANON_KEY", app.anon_key())
            .env(
                "QUIRE_COMPANION_SERVICE_ROLE_KEY",
                app.sandbox.service_role_key().expose_secret(),
            );
        command
    };
    let first = run().output().await.unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let ids: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    // The harness provisioned first: the same agent and knowledge base are found.
    assert_eq!(ids["agent_id"], app.ids().agent_id.to_string());
    assert_eq!(
        ids["knowledge_base_id"],
        app.ids().knowledge_base_id.to_string()
    );

    let second = run().output().await.unwrap();
    assert!(second.status.success());
    let again: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(again, ids);
    assert_eq!(
        app.count("select count(*) from ai.agents", &[]).await,
        1,
        "nothing created twice"
    );
    assert_eq!(
        app.count("select count(*) from ai.knowledge_bases", &[])
            .await,
        1
    );
    assert_eq!(
        app.count("select count(*) from ai.agent_knowledge_bases", &[])
            .await,
        0,
        "the shared knowledge base is never attached to the agent"
    );
}

#[tokio::test]
async fn a_start_without_settings_names_every_missing_one_and_no_secret() {
    let output = binary()
        .env("QUIRE_COMPANION_JWT_SECRET", "too-short-to-be-a-secret")
        .env("QUIRE_COMPANION_AGENT_ID", "agent-007")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "QUIRE_COMPANION_API_URL is not set",
        "QUIRE_COMPANION_ANON_KEY is not set",
        "QUIRE_COMPANION_SERVICE_ROLE_KEY is not set",
        "QUIRE_COMPANION_JWT_SECRET is too short",
        "QUIRE_COMPANION_AGENT_ID is not a UUID",
        "QUIRE_COMPANION_KNOWLEDGE_BASE_ID is not set",
        "QUIRE_COMPANION_TOOL_SECRET is not set",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    assert!(!stderr.contains("too-short-to-be-a-secret"), "{stderr}");
}
