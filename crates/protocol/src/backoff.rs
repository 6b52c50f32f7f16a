//! The retry policy of Quire's reconnecting and polling loops: exponential
//! backoff, capped, with "equal jitter" so that many clients cut off at once
//! do not come back in step.
//!
//! It lives here, next to the wire contract, because both sides of that
//! contract retry: the core's token refresher, Realtime follower and
//! resumable uploads, and the companion's start-up and chat-event writes.
//! One type means one policy to reason about.

use std::time::Duration;

/// How long to wait before each retry of one operation: `base · 2^(n-1)`
/// before the `n`-th retry, capped at `max`. With jitter (the default) the
/// wait is a random point in the upper half of that, never less than half.
///
/// Hold one per operation, call [`Backoff::next`] before each retry, and
/// [`Backoff::reset`] once the operation has succeeded (a connection that
/// held, a write that went through).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    jitter: bool,
}

impl Backoff {
    /// A backoff from `base` up to `max`, with equal jitter.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
            jitter: true,
        }
    }

    /// A backoff from `base` up to `max` that waits exactly `base · 2^(n-1)`:
    /// for a single process polling its own work, where there is no crowd to
    /// spread out and a predictable wait reads better in logs.
    pub fn without_jitter(base: Duration, max: Duration) -> Self {
        Self {
            jitter: false,
            ..Self::new(base, max)
        }
    }

    /// The wait before the next retry; counts that retry.
    #[expect(
        clippy::should_implement_trait,
        reason = "never ends, so an Option would only be unwrapped at every call site"
    )]
    pub fn next(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self.ceiling();
        if self.jitter {
            equal_jitter(ceiling)
        } else {
            ceiling
        }
    }

    /// Starts over from `base`, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many retries [`Backoff::next`] has counted since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// `base · 2^(attempt-1)`, capped at `max`.
    fn ceiling(&self) -> Duration {
        let doublings = self.attempt.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// A random point in `[ceiling / 2, ceiling]`.
fn equal_jitter(ceiling: Duration) -> Duration {
    let half = ceiling / 2;
    let spread_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    if spread_ms == 0 {
        return half;
    }
    // Without an OS random source the wait is the lower bound: still backing
    // off, only not spread.
    let random = getrandom::u64().unwrap_or(0);
    half + Duration::from_millis(random % spread_ms.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_stays_under_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        let mut backoff = Backoff::new(base, max);
        for attempt in 1..40u32 {
            let wait = backoff.next();
            let full = base.saturating_mul(1 << (attempt - 1).min(20)).min(max);
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?} vs {full:?}"
            );
            assert_eq!(backoff.attempts(), attempt);
        }
        assert!(backoff.next() >= Duration::from_secs(5));
    }

    #[test]
    fn without_jitter_doubles_exactly_and_reset_starts_over() {
        let mut backoff =
            Backoff::without_jitter(Duration::from_millis(250), Duration::from_secs(5));
        let waits: Vec<u128> = (0..6).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 5000]);
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert_eq!(backoff.next(), Duration::from_millis(250));
    }

    #[test]
    fn a_zero_base_never_waits() {
        let mut backoff = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(backoff.next(), Duration::ZERO);
    }
}
