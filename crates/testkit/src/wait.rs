use std::time::{Duration, Instant};

/// Upper bound on any wait for background work: a guard against hanging,
/// never a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Polls `check` until it is true; panics after `secs` seconds. For waiting
/// on the outcome of asynchronous work, never for asserting on timing.
pub async fn eventually(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
