//! The sandbox's log filter: what `QUIRE_SANDBOX_LOG` asks for, and on top of
//! it a cap that holds the database and HTTP libraries at `info` whatever is
//! asked. At `debug` `tokio_postgres` prints every statement's parameters
//! (refresh tokens, password hashes, JWT claims), and hyper and h2 print
//! frames at `trace`.
//!
//! The cap is a second filter both must pass, not one more directive in the
//! asked list: a more specific directive (`tokio_postgres::query=debug`) or a
//! span directive (`[request]=trace`) would win over a directive of ours.
//! `tests/logs.rs` logs a sign-up and a refresh through it at `trace` and
//! looks for every credential.

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, LevelFilter, Targets};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;

/// Libraries whose `debug`/`trace` output carries credentials.
const CAPPED: [&str; 6] = [
    "tokio_postgres",
    "postgres",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
];

/// `asked` (an `EnvFilter` directive list, e.g. `debug` or
/// `info,quire_sandbox=trace`; an invalid one falls back to `info`), and
/// [`CAPPED`] at `info` whatever it says. For a layer:
/// `fmt::layer().with_filter(filter(asked))`.
pub fn filter<S>(asked: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let asked = EnvFilter::try_new(asked).unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(CAPPED.map(|target| (target, LevelFilter::INFO)));
    asked.and(cap)
}
