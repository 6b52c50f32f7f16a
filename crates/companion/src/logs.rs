//! The companion's log filter: what `QUIRE_COMPANION_LOG` asks for, and on
//! top of it a cap that holds the database and HTTP libraries at `info`
//! whatever is asked. At `debug` `tokio_postgres` prints every statement's
//! parameters (users' JWT claims, tool session tokens, questions), and hyper
//! and h2 print frames at `trace`.
//!
//! The cap is a second filter both must pass, not one more directive in the
//! asked list: a more specific directive (`tokio_postgres::query=debug`) or a
//! span directive (`[request]=trace`) would win over a directive of ours.

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

/// `asked` (an `EnvFilter` directive list; an invalid one falls back to
/// `info`), and [`CAPPED`] at `info` whatever it says. For a layer:
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

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

    #[test]
    fn no_directive_raises_the_database_library_past_info() {
        use tracing_subscriber::prelude::*;

        let captured = Captured::default();
        let sink = captured.clone();
        let asked = "trace,tokio_postgres::query=trace,[request]=trace";
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || sink.clone())
                .with_filter(super::filter(asked)),
        );
        tracing::subscriber::with_default(subscriber, || {
            let _request = tracing::info_span!("request").entered();
            tracing::debug!(target: "tokio_postgres::query", "parameters: [\"a-session-token\"]");
            tracing::trace!(target: "hyper::proto::h1", "headers: authorization: a-bearer");
            tracing::info!(target: "tokio_postgres::connection", "connection closed");
            tracing::trace!(target: "quire_companion::chat", "a companion line");
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("a companion line"), "{logs}");
        assert!(
            logs.contains("connection closed"),
            "info still shows: {logs}"
        );
        assert!(!logs.contains("a-session-token"), "{logs}");
        assert!(!logs.contains("a-bearer"), "{logs}");
    }
}
