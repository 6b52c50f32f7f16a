//! Test logs, one way for every suite, through the test harness's capture
//! (so they show only for a test that fails): warnings and errors, the
//! causes behind a 502 or a failed ingest, unless `TEST_LOG=1` (or any value
//! but `0`) asks for everything, filtered by `RUST_LOG` or, without it,
//! Quire's crates at `debug` and the rest at `info`.
//!
//! Files the CI keeps (the window tests' screenshots and each app
//! instance's output) go under [`artifacts`].

use std::path::PathBuf;
use std::sync::Once;

const DEFAULT_FILTER: &str =
    "info,quire_core=debug,quire_companion=debug,quire_sandbox=debug,quire_testkit=debug";

/// Without `TEST_LOG`: what a failing test shows of its servers.
const QUIET_FILTER: &str = "error,quire_core=warn,quire_companion=warn,quire_sandbox=warn";

/// Whether `TEST_LOG` asks for logs.
pub fn enabled() -> bool {
    std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Installs the test subscriber once per process. Every `spawn_*` of this
/// crate calls it; a test that starts servers its own way calls it first.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = if enabled() {
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_FILTER.into())
        } else {
            QUIET_FILTER.into()
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_test_writer()
            .try_init();
    });
}

/// `<repo>/artifacts/<suite>`: where a suite leaves what CI collects
/// (`artifacts/e2e/` for the window tests' screenshots, `artifacts/e2e/logs/`
/// for each app instance's output).
pub fn artifacts(suite: &str) -> PathBuf {
    crate::repo_root().join("artifacts").join(suite)
}
