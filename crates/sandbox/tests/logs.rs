//! Logs never show a credential: every line the sandbox logs, at every level, while a user
//! signs up, refreshes and presents a forged token.

use std::io::Write;
use std::sync::{Arc, Mutex};

use quire_sandbox::Config;
use quire_testdb::TestDb;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

async fn json_of(response: reqwest::Response) -> (reqwest::StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
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
/// thread-local subscriber sees every line it logs, at every level. This test has a binary of
/// its own: tracing caches each callsite's interest process-wide, so a test running on another
/// thread without a subscriber could switch these callsites off (it did, under load).
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
