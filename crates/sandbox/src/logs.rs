//! The sandbox's log filter: what `QUIRE_SANDBOX_LOG` asks for, with the
//! database and HTTP libraries held at `info` whatever is asked. At `debug`
//! `tokio_postgres` prints every statement's parameters (refresh tokens,
//! password hashes, JWT claims), and hyper and h2 print frames at `trace`;
//! `tests/logs.rs` logs a sign-up and a refresh through this filter at
//! `trace` and looks for every credential.

use tracing_subscriber::EnvFilter;

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
/// `info,quire_sandbox=trace`) with [`CAPPED`] at `info`; an invalid `asked`
/// falls back to `info`.
pub fn filter(asked: &str) -> EnvFilter {
    let capped: String = CAPPED
        .iter()
        .map(|target| format!(",{target}=info"))
        .collect();
    EnvFilter::try_new(format!("{asked}{capped}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info{capped}")))
}
