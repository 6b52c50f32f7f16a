//! The official client against the sandbox: `@supabase/supabase-js` (installed by
//! `cargo xtask setup` in `tests/conformance/`) runs its suites with node's test runner against a
//! sandbox on port 0. Whatever supabase-js does must work as against a real project, and its
//! error objects must carry the real codes.

use std::path::PathBuf;
use std::time::Duration;

use quire_testkit::spawn_sandbox_with;

/// The sandbox's refresh-token reuse window in this run; the suite waits it out.
const REUSE_INTERVAL: Duration = Duration::from_secs(1);

fn suite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

async fn run_suites(files: &[&str]) {
    run_suites_with(files, |_| {}).await;
}

async fn run_suites_with(files: &[&str], adjust: impl FnOnce(&mut quire_sandbox::Config)) {
    run_suites_on(files, Some("1.0.0"), adjust).await;
}

/// Runs `files` with supabase-js's Realtime on `vsn` (`None`: the client's
/// default: 2.0.0 in the pinned supabase-js 2.109).
async fn run_suites_on(
    files: &[&str],
    vsn: Option<&str>,
    adjust: impl FnOnce(&mut quire_sandbox::Config),
) {
    let dir = suite_dir();
    assert!(
        dir.join("node_modules/@supabase/supabase-js").is_dir(),
        "tests/conformance has no node_modules: run `cargo xtask setup` (or `npm ci` there)"
    );
    let app = spawn_sandbox_with(|c| {
        c.refresh_token_reuse_interval_secs = REUSE_INTERVAL.as_secs();
        // The real server waits 5 s before a join error; a short delay keeps the suite quick.
        c.realtime.channel_error_delay_ms = 200;
        adjust(c);
    })
    .await;
    let mut node = tokio::process::Command::new("node");
    if let Some(vsn) = vsn {
        node.env("QUIRE_REALTIME_VSN", vsn);
    }
    let node = node
        .arg("--test")
        .arg("--test-reporter=spec")
        // Open sockets must not keep a finished run alive; no single test may hang the suite.
        .arg("--test-force-exit")
        .arg("--test-timeout=60000")
        .args(files)
        .current_dir(&dir)
        .env("QUIRE_API_URL", app.api_base())
        .env("QUIRE_ANON_KEY", app.anon_key())
        .env("QUIRE_SERVICE_KEY", app.service_key())
        .env("QUIRE_DB_URL", app.db.url())
        .env(
            "QUIRE_REUSE_WAIT_MS",
            (REUSE_INTERVAL.as_millis() + 1500).to_string(),
        )
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), node)
        .await
        .expect("the supabase-js suites finished within 3 minutes")
        .expect("node runs (installed by `cargo xtask setup`)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "supabase-js conformance failed ({}):\n{report}",
        output.status
    );
    // A run that executed nothing must not pass: node prints "ℹ pass N" (spec reporter).
    let passed: u32 = report
        .lines()
        .find_map(|l| l.trim_start_matches(['ℹ', '#', ' ']).strip_prefix("pass "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(passed > 0, "the runner executed no test:\n{report}");
}

#[tokio::test]
async fn supabase_js_auth_and_pkce() {
    run_suites(&["auth.test.mjs", "pkce.test.mjs"]).await;
}

#[tokio::test]
async fn supabase_js_rest() {
    run_suites(&["rest.test.mjs"]).await;
}

#[tokio::test]
async fn supabase_js_storage() {
    run_suites(&["storage.test.mjs"]).await;
}

#[tokio::test]
async fn supabase_js_realtime() {
    run_suites(&["realtime.test.mjs"]).await;
}

#[tokio::test]
async fn supabase_js_realtime_default_vsn() {
    run_suites_on(&["realtime.test.mjs"], None, |_| {}).await;
}

fn short_tokens(c: &mut quire_sandbox::Config) {
    c.jwt_expiry_secs = 3;
    c.realtime.token_check_interval_ms = 250;
}

#[tokio::test]
async fn supabase_js_realtime_token_expiry() {
    run_suites_with(&["realtime-expiry.test.mjs"], short_tokens).await;
}

#[tokio::test]
async fn supabase_js_realtime_token_expiry_default_vsn() {
    run_suites_on(&["realtime-expiry.test.mjs"], None, short_tokens).await;
}

/// supabase-py, tried as a new user would (tests/conformance/python). Not in
/// CI: it needs a Python with `supabase` installed, named by `QUIRE_PYTHON`.
#[tokio::test]
#[ignore = "needs QUIRE_PYTHON: a Python with `pip install supabase`"]
async fn supabase_py_tried_as_a_new_user_would() {
    let python = std::env::var("QUIRE_PYTHON").expect("QUIRE_PYTHON names a Python with supabase");
    let app = spawn_sandbox_with(|_| {}).await;
    let output = tokio::process::Command::new(python)
        .arg("try_supabase_py.py")
        .current_dir(suite_dir().join("python"))
        .env("QUIRE_API_URL", app.api_base())
        .env("QUIRE_ANON_KEY", app.anon_key())
        .env("QUIRE_DB_URL", app.db.url())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("the supabase-py script finished within 2 minutes")
        .expect("python runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(output.status.success(), "supabase-py failed:\n{report}");
}
