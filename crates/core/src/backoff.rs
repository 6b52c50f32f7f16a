//! Compatibility shim while the core's callers move to
//! [`quire_protocol::backoff::Backoff`], the retry policy the core and the
//! companion share. New code holds a `Backoff` instead of a counter.

use std::time::Duration;

pub use quire_protocol::backoff::Backoff;

/// The delay before attempt `attempt` (1 = the first retry), as the
/// `attempt`-th [`Backoff::next`] of a fresh `Backoff::new(base, max)`.
pub fn delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let mut backoff = Backoff::new(base, max);
    for _ in 1..attempt {
        backoff.next();
    }
    backoff.next()
}
