//! The companion's log filter: what `QUIRE_COMPANION_LOG` asks for, with the
//! database and HTTP libraries held at `info` whatever is asked. At `debug`
//! `tokio_postgres` prints every statement's parameters (users' JWT claims,
//! tool session tokens, questions), and hyper and h2 print frames at `trace`.

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

/// `asked` (an `EnvFilter` directive list) with [`CAPPED`] at `info`; an
/// invalid `asked` falls back to `info`.
pub fn filter(asked: &str) -> EnvFilter {
    let capped: String = CAPPED
        .iter()
        .map(|target| format!(",{target}=info"))
        .collect();
    EnvFilter::try_new(format!("{asked}{capped}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info{capped}")))
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
    fn trace_asked_keeps_the_database_library_at_info() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(super::filter("trace"))
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "tokio_postgres::query", "parameters: [\"a-session-token\"]");
            tracing::trace!(target: "quire_companion::chat", "a companion line");
        });
        let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("a companion line"), "{logs}");
        assert!(!logs.contains("a-session-token"), "{logs}");
    }
}
