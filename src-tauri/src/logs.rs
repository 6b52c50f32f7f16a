//! The shell's log filter: what `QUIRE_LOG` asks for (default `info`), and on
//! top of it a cap that holds the HTTP, TLS and WebSocket libraries at `info`
//! whatever is asked: at `debug`/`trace` they print headers and frames, and
//! those carry tokens.
//!
//! The cap is a second filter both must pass, not one more directive in the
//! asked list: a more specific directive (`tungstenite::protocol=trace`) or a
//! span directive (`[ask]=trace`) would win over a directive of ours.

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, LevelFilter, Targets};
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;

/// Libraries whose `debug`/`trace` output carries tokens.
const CAPPED: [&str; 7] = [
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
    "rustls",
];

/// `asked` (an `EnvFilter` directive list; an invalid one falls back to
/// `info`), and the targets in `CAPPED` at `info` whatever it says.
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

    use tracing_subscriber::prelude::*;

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
    fn no_directive_raises_the_network_libraries_past_info() {
        let captured = Captured::default();
        let sink = captured.clone();
        let asked = "trace,tungstenite::protocol=trace,hyper::proto=trace,[ask]=trace";
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || sink.clone())
                .with_filter(super::filter(asked)),
        );
        tracing::subscriber::with_default(subscriber, || {
            let _ask = tracing::info_span!("ask").entered();
            tracing::trace!(target: "tungstenite::protocol", "frame: access_token a-jwt");
            tracing::debug!(target: "hyper::proto::h1::io", "authorization: Bearer a-bearer");
            tracing::info!(target: "reqwest::connect", "connected");
            tracing::trace!(target: "quire_core::follow", "a core line");
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("a core line"), "{logs}");
        assert!(logs.contains("connected"), "info still shows: {logs}");
        assert!(!logs.contains("a-jwt"), "{logs}");
        assert!(!logs.contains("a-bearer"), "{logs}");
    }
}
