//! Logs never show a credential: every line the sandbox logs at `trace` (through its own
//! filter, `quire_sandbox::logs::filter`, as the binary does, asked for the most specific
//! directives there are), including the lines of the libraries it uses, while a user signs up,
//! refreshes and presents a forged token.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tracing_subscriber::prelude::*;

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
    // The most specific directives there are for the library that prints parameters, and a
    // span directive that enables everything inside a request: the cap still holds.
    let asked = "trace,tokio_postgres::query=trace,[request]=trace";
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(move || sink.clone())
            .with_filter(quire_sandbox::logs::filter(asked)),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let stack = quire_testkit::spawn_sandbox().await;
    let base = stack.api_base().to_owned();
    let anon = stack.anon_key();
    let client = reqwest::Client::new();
    let password = "a-very-recognizable-password";

    let session = stack.signed_up("alice@example.com", password).await;
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
        stack.service_key().as_str(),
        stack.jwt_secret().as_str(),
    ] {
        assert!(
            !logs.contains(secret),
            "a credential ({secret}) leaked into the logs:\n{logs}"
        );
    }
}
