//! The server itself: keys per data directory, the keys file, the refusal of a
//! weak secret on a public address, graceful shutdown, and logs that never
//! show a credential.

use std::io::Write;
use std::sync::{Arc, Mutex};

use quire_sandbox::Config;
use quire_testdb::TestDb;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::helpers::json_of;

#[tokio::test]
async fn a_data_directory_keeps_its_keys_across_restarts() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("out/keys.json");
    let mut config = Config::new(dir.path().join("data"), db.url());
    config.keys_file = Some(keys_file.clone());

    let first = quire_sandbox::spawn(config.clone()).await.unwrap();
    let written: Value = serde_json::from_slice(&std::fs::read(&keys_file).unwrap()).unwrap();
    assert_eq!(written["api_url"], first.api_base());
    assert_eq!(written["anon_key"], first.anon_key().expose_secret());
    assert_eq!(
        written["service_role_key"],
        first.service_role_key().expose_secret()
    );
    assert_eq!(written["jwt_secret"], first.jwt_secret().expose_secret());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&keys_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let anon = first.anon_key().expose_secret().to_owned();
    first.shutdown().await.unwrap();

    let second = quire_sandbox::spawn(config).await.unwrap();
    assert_eq!(second.anon_key().expose_secret(), anon);

    let other_dir = tempfile::tempdir().unwrap();
    let third = quire_sandbox::spawn(Config::new(other_dir.path(), db.url()))
        .await
        .unwrap();
    assert_ne!(
        third.jwt_secret().expose_secret(),
        second.jwt_secret().expose_secret()
    );
}

#[tokio::test]
async fn a_short_secret_never_listens_beyond_loopback() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path(), db.url());
    config.jwt_secret = Some(SecretString::from("too-short".to_owned()));
    config.listen = "0.0.0.0:0".parse().unwrap();

    let error = quire_sandbox::spawn(config.clone()).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("refusing to listen on 0.0.0.0:0"),
        "{error:#}"
    );

    config.listen = "127.0.0.1:0".parse().unwrap();
    let sandbox = quire_sandbox::spawn(config).await.unwrap();
    assert!(sandbox.addr().ip().is_loopback());
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = quire_sandbox::spawn(Config::new(dir.path(), db.url()))
        .await
        .unwrap();
    let base = sandbox.api_base().to_owned();
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/auth/v1/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    sandbox.shutdown().await.unwrap();

    assert!(
        client
            .get(format!("{base}/auth/v1/health"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_wrong_database_fails_at_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path(), "postgresql://127.0.0.1:1/nothing");

    let error = quire_sandbox::spawn(config).await.unwrap_err();

    let text = format!("{error:#}");
    assert!(text.contains("supabase_auth_admin"), "{text}");
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The server runs on this test's thread (a current-thread runtime), so a
/// thread-local subscriber sees every line it logs, at every level.
#[tokio::test]
async fn logs_never_show_passwords_tokens_or_keys() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path(), db.url());
    config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
    let sandbox = quire_sandbox::spawn(config).await.unwrap();
    let base = sandbox.api_base().to_owned();
    let anon = sandbox.anon_key().expose_secret().to_owned();
    let client = reqwest::Client::new();
    let password = "a-very-recognizable-password";

    let (_, session) = json_of(
        client
            .post(format!("{base}/auth/v1/signup"))
            .header("apikey", &anon)
            .bearer_auth(&anon)
            .json(&json!({"email": "alice@example.com", "password": password}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let access = session["access_token"].as_str().unwrap().to_owned();
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    client
        .get(format!("{base}/auth/v1/user"))
        .header("apikey", &anon)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    client
        .post(format!(
            "{base}/auth/v1/token?grant_type=refresh_token&apikey={anon}"
        ))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/auth/v1/user"))
        .bearer_auth("eyJhbGciOiJub25lIn0.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.")
        .send()
        .await
        .unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/auth/v1/signup"),
        "requests are logged:\n{logs}"
    );
    assert!(
        logs.contains("[redacted]"),
        "headers are dumped, redacted:\n{logs}"
    );
    for secret in [
        password,
        access.as_str(),
        refresh.as_str(),
        anon.as_str(),
        sandbox.service_role_key().expose_secret(),
        sandbox.jwt_secret().expose_secret(),
    ] {
        assert!(
            !logs.contains(secret),
            "a credential leaked into the logs:\n{logs}"
        );
    }
}
