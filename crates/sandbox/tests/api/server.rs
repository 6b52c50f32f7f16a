//! The server itself: keys per data directory, the keys file, the refusal of a
//! weak secret on a public address, graceful shutdown (logs: `tests/logs.rs`).

use quire_sandbox::Config;
use quire_testdb::TestDb;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

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
