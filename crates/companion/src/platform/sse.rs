//! A server-sent-events parser for the platform's `run/stream` responses
//! (the WHATWG "event stream interpretation", minus `id`/`retry`, which the
//! platform does not send and the companion does not need).
//!
//! Bytes go in as they arrive, in pieces of any size; complete events come
//! out. Lines end with `\n`, `\r\n` or `\r`, a blank line ends an event,
//! `:` lines are comments (the platform's `: keepalive`), several `data:`
//! lines join with `\n`. An event the stream cut off before its blank line
//! is dropped, as the spec says — the caller learns from
//! [`SseParser::finish`] that the stream ended mid-event.

/// One event: its `event:` name, if any, and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Why the parser gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line, or an event's data, grew beyond the limit.
    #[error("an event of the stream is larger than {0} bytes")]
    TooLarge(usize),
}

/// How a stream ended, from [`SseParser::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Between events.
    Clean,
    /// In the middle of an event (its blank line never came).
    Truncated,
}

/// Incremental parser; see the module docs.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous piece ended with `\r`: a `\n` starting the next one
    /// belongs to the same line ending.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    /// Any field seen since the last dispatch (for [`Ending::Truncated`]).
    in_event: bool,
    max_bytes: usize,
}

/// Default limit on one event: 8 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

impl Default for SseParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser refusing events larger than `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            data: String::new(),
            has_data: false,
            event: None,
            in_event: false,
            max_bytes,
        }
    }

    /// Feeds the next bytes; returns the events they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.end_line(&mut out);
                    self.after_cr = true;
                }
                _ => {
                    self.line.push(b);
                    if self.line.len() + self.data.len() > self.max_bytes {
                        return Err(SseError::TooLarge(self.max_bytes));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The stream ended: whether it ended between events. An unfinished
    /// event is discarded.
    pub fn finish(&mut self) -> Ending {
        let truncated = self.in_event || !self.line.is_empty();
        self.line.clear();
        self.reset_event();
        if truncated {
            Ending::Truncated
        } else {
            Ending::Clean
        }
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                data.pop(); // the "\n" after the last data line
                out.push(SseEvent {
                    event: self.event.take(),
                    data,
                });
            }
            self.reset_event();
            return;
        }
        let line = String::from_utf8_lossy(&line);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
                self.in_event = true;
            }
            "event" => {
                self.event = Some(value.to_owned());
                self.in_event = true;
            }
            _ => self.in_event = true,
        }
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.has_data = false;
        self.event = None;
        self.in_event = false;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_all(pieces: &[&[u8]]) -> (Vec<SseEvent>, Ending) {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(p.push(piece).unwrap());
        }
        (out, p.finish())
    }

    fn data(s: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: s.to_owned(),
        }
    }

    /// A recorded platform stream (tool path, trimmed), as bytes on the wire.
    const RECORDED: &str = "data: {\"event\":\"start\",\"run_id\":\"run_1\",\"session_id\":\"sess_1\"}\n\n\
        : keepalive\n\n\
        data: {\"event\":\"content_delta\",\"type\":\"content_delta\",\"seq\":1,\"delta\":\"The \"}\n\n\
        data: {\"event\":\"content_delta\",\"type\":\"content_delta\",\"seq\":2,\"delta\":\"warranty\"}\n\n\
        data: {\"event\":\"complete\",\"content\":\"The warranty\",\"status\":\"completed\"}\n\n";

    #[test]
    fn a_recorded_stream_gives_its_events_and_skips_keepalives() {
        let (events, ending) = parse_all(&[RECORDED.as_bytes()]);
        assert_eq!(events.len(), 4);
        assert!(events[0].data.contains("\"start\""));
        assert!(events[3].data.contains("\"complete\""));
        assert_eq!(ending, Ending::Clean);
    }

    #[test]
    fn crlf_and_cr_line_endings_are_the_same_as_lf() {
        let crlf = RECORDED.replace('\n', "\r\n");
        let cr = RECORDED.replace('\n', "\r");
        let (lf_events, _) = parse_all(&[RECORDED.as_bytes()]);
        assert_eq!(parse_all(&[crlf.as_bytes()]).0, lf_events);
        assert_eq!(parse_all(&[cr.as_bytes()]).0, lf_events);
    }

    #[test]
    fn an_event_split_at_every_byte_comes_out_whole() {
        let crlf = RECORDED.replace('\n', "\r\n");
        let whole = parse_all(&[crlf.as_bytes()]).0;
        let bytes = crlf.as_bytes();
        for cut in 0..bytes.len() {
            let (events, ending) = parse_all(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(events, whole, "cut at {cut}");
            assert_eq!(ending, Ending::Clean);
        }
    }

    #[test]
    fn multi_line_data_event_names_and_unknown_fields() {
        let (events, _) = parse_all(&[b"event: delta\ndata: a\ndata:b\nid: 7\nretry: 10\n\n"]);
        assert_eq!(
            events,
            vec![SseEvent {
                event: Some("delta".to_owned()),
                data: "a\nb".to_owned()
            }]
        );
    }

    #[test]
    fn a_stream_cut_in_the_middle_of_an_event_is_truncated() {
        let (events, ending) =
            parse_all(&[b"data: {\"event\":\"start\"}\n\ndata: {\"event\":\"content_del"]);
        assert_eq!(events, vec![data("{\"event\":\"start\"}")]);
        assert_eq!(ending, Ending::Truncated);
        let (_, ending) = parse_all(&[b"data: x\n"]);
        assert_eq!(ending, Ending::Truncated, "no blank line yet");
    }

    #[test]
    fn a_huge_event_is_parsed_up_to_the_limit_and_refused_beyond() {
        let big = "x".repeat(100_000);
        let frame = format!("data: {big}\n\n");
        let (events, _) = parse_all(&[frame.as_bytes()]);
        assert_eq!(events, vec![data(&big)]);
        let mut small = SseParser::new(1000);
        assert_eq!(small.push(frame.as_bytes()), Err(SseError::TooLarge(1000)));
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let (events, ending) = parse_all(&[b"event: ping\n\n: comment\n\n"]);
        assert!(events.is_empty());
        assert_eq!(ending, Ending::Clean);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(
            payloads in proptest::collection::vec("[a-z \"{}:,]{0,40}", 1..6),
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let wire: String = payloads.iter().map(|p| format!("data: {p}{nl}{nl}")).collect();
            let bytes = wire.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for p in points {
                pieces.push(&bytes[start..p]);
                start = p;
            }
            pieces.push(&bytes[start..]);
            let (events, ending) = parse_all(&pieces);
            let expected: Vec<SseEvent> = payloads.iter().map(|p| data(p)).collect();
            prop_assert_eq!(events, expected);
            prop_assert_eq!(ending, Ending::Clean);
        }
    }
}
