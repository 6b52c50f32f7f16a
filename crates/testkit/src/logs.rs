//! Test logs, one way for every suite: silent unless `TEST_LOG=1` (or any
//! value but `0`), then `tracing` output through the test harness's capture,
//! filtered by `RUST_LOG` or, without it, Quire's crates at `debug` and the
//! rest at `info`.
//!
//! Files the CI keeps (the window tests' screenshots and each app
//! instance's output) go under [`artifacts`].

use std::path::PathBuf;
use std::sync::Once;

const DEFAULT_FILTER: &str =
    "info,quire_core=debug,quire_companion=debug,quire_sandbox=debug,quire_testkit=debug";

/// Whether `TEST_LOG` asks for logs.
pub fn enabled() -> bool {
    std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Installs the test subscriber once per process, when [`enabled`]. Every
/// `spawn_*` of this crate calls it; a test that starts servers its own way
/// calls it first.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if enabled() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| DEFAULT_FILTER.into()),
                )
                .with_test_writer()
                .try_init();
        }
    });
}

/// `<repo>/artifacts/<suite>`: where a suite leaves what CI collects
/// (`artifacts/e2e/` for the window tests' screenshots, `artifacts/e2e/logs/`
/// for each app instance's output).
pub fn artifacts(suite: &str) -> PathBuf {
    crate::repo_root().join("artifacts").join(suite)
}
