//! Exponential backoff with jitter, shared by the token refresher, the
//! Realtime follower and resumable uploads.

use std::time::Duration;

/// The delay before attempt `attempt` (1 = the first retry): `base · 2^(n-1)`
/// capped at `max`, then a random point in its upper half ("equal jitter"),
/// so many clients cut off at once do not come back in step.
pub fn delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(max);
    let half = capped / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    let random = getrandom::u64().unwrap_or(0);
    half + Duration::from_millis(if jitter_ms == 0 {
        0
    } else {
        random % (jitter_ms + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_under_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 1..40 {
            let d = delay(attempt, base, max);
            let full = base.saturating_mul(1 << (attempt - 1).min(20)).min(max);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
        assert!(delay(30, base, max) >= Duration::from_secs(5));
    }
}
