//! The one server-sent-events parser of Quire: the companion reads the
//! platform's `run/stream` with it, and the core the companion's
//! `POST /api/chat` answer. It is the WHATWG "event stream interpretation"
//! minus `id`/`retry`, which neither stream sends and neither reader needs.
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
    /// The `event:` name; `None` for an unnamed (`message`) event.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Why the parser gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A line, or an event's data, grew beyond the limit.
    TooLarge(usize),
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::TooLarge(max) => {
                write!(f, "an event of the stream is larger than {max} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

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

    /// A recorded platform `run/stream` (tool path, trimmed), as on the wire.
    const PLATFORM: &str = include_str!("../tests/fixtures/sse/platform.sse");
    /// A recorded companion answer: keepalive, context, status, three deltas
    /// (two sharing a `seq`), complete.
    const ANSWER: &str = include_str!("../tests/fixtures/sse/answer.sse");
    /// A companion event whose data spans two `data:` lines.
    const MULTILINE: &str = include_str!("../tests/fixtures/sse/multiline.sse");

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

    fn names(events: &[SseEvent]) -> Vec<&str> {
        events
            .iter()
            .map(|e| e.event.as_deref().unwrap_or(""))
            .collect()
    }

    #[test]
    fn a_recorded_platform_stream_gives_its_events_and_skips_keepalives() {
        let (events, ending) = parse_all(&[PLATFORM.as_bytes()]);
        assert_eq!(events.len(), 4);
        assert!(events[0].data.contains("\"start\""));
        assert!(events[3].data.contains("\"complete\""));
        assert_eq!(ending, Ending::Clean);
    }

    #[test]
    fn a_recorded_answer_gives_its_named_events() {
        let (events, ending) = parse_all(&[ANSWER.as_bytes()]);
        assert_eq!(
            names(&events),
            ["context", "status", "delta", "delta", "delta", "complete"]
        );
        assert!(events[2].data.contains("\"Pets are \""));
        assert!(events.iter().all(|e| !e.data.contains('\n')));
        assert_eq!(ending, Ending::Clean);
    }

    #[test]
    fn crlf_and_cr_line_endings_are_the_same_as_lf() {
        for recorded in [PLATFORM, ANSWER, MULTILINE] {
            let crlf = recorded.replace('\n', "\r\n");
            let cr = recorded.replace('\n', "\r");
            let (lf_events, _) = parse_all(&[recorded.as_bytes()]);
            assert!(!lf_events.is_empty());
            assert_eq!(parse_all(&[crlf.as_bytes()]).0, lf_events);
            assert_eq!(parse_all(&[cr.as_bytes()]).0, lf_events);
        }
    }

    #[test]
    fn an_event_split_at_every_byte_comes_out_whole() {
        for recorded in [PLATFORM, ANSWER] {
            for wire in [recorded.to_owned(), recorded.replace('\n', "\r\n")] {
                let whole = parse_all(&[wire.as_bytes()]).0;
                let bytes = wire.as_bytes();
                for cut in 0..bytes.len() {
                    let (events, ending) = parse_all(&[&bytes[..cut], &bytes[cut..]]);
                    assert_eq!(events, whole, "cut at {cut}");
                    assert_eq!(ending, Ending::Clean);
                }
            }
        }
    }

    #[test]
    fn one_byte_reads_give_the_same_events() {
        for wire in [
            ANSWER.to_owned(),
            ANSWER.replace('\n', "\r\n"),
            ANSWER.replace('\n', "\r"),
        ] {
            let pieces: Vec<&[u8]> = wire.as_bytes().chunks(1).collect();
            let (events, ending) = parse_all(&pieces);
            assert_eq!(events, parse_all(&[ANSWER.as_bytes()]).0);
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
        let (events, ending) = parse_all(&[MULTILINE.as_bytes()]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.as_deref(), Some("delta"));
        assert!(events[0].data.contains("\",\n\"seq\":2"), "{:?}", events[0]);
        assert_eq!(ending, Ending::Clean);
    }

    #[test]
    fn a_stream_cut_in_the_middle_of_an_event_is_truncated() {
        let (events, ending) =
            parse_all(&[b"data: {\"event\":\"start\"}\n\ndata: {\"event\":\"content_del"]);
        assert_eq!(events, vec![data("{\"event\":\"start\"}")]);
        assert_eq!(ending, Ending::Truncated);
        let (_, ending) = parse_all(&[b"data: x\n"]);
        assert_eq!(ending, Ending::Truncated, "no blank line yet");

        let cut_at = ANSWER.find("with consent").unwrap();
        let (events, ending) = parse_all(&[&ANSWER.as_bytes()[..cut_at]]);
        assert_eq!(names(&events), ["context", "status", "delta", "delta"]);
        assert_eq!(ending, Ending::Truncated);
    }

    #[test]
    fn a_huge_event_is_parsed_up_to_the_limit_and_refused_beyond() {
        let big = "x".repeat(100_000);
        let frame = format!("data: {big}\n\n");
        let (events, _) = parse_all(&[frame.as_bytes()]);
        assert_eq!(events, vec![data(&big)]);
        let mut small = SseParser::new(1000);
        assert_eq!(small.push(frame.as_bytes()), Err(SseError::TooLarge(1000)));

        // A 2 MiB delta over many reads, as a long answer arrives.
        let big = "y".repeat(2 * 1024 * 1024);
        let frame = format!("event: delta\ndata: {{\"text\":\"{big}\"}}\n\n");
        let pieces: Vec<&[u8]> = frame.as_bytes().chunks(7919).collect();
        let (events, ending) = parse_all(&pieces);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), big.len() + "{\"text\":\"\"}".len());
        assert_eq!(ending, Ending::Clean);

        // The limit counts the data of all lines of one event.
        let mut capped = SseParser::new(16);
        assert_eq!(capped.push(b"data: 123456\n"), Ok(vec![]));
        assert_eq!(capped.push(b"data: 123456\n"), Err(SseError::TooLarge(16)));
    }

    #[test]
    fn events_without_data_are_not_dispatched() {
        let (events, ending) = parse_all(&[b"event: ping\n\n: comment\n\n"]);
        assert!(events.is_empty());
        assert_eq!(ending, Ending::Clean);
    }

    fn split_at<'a>(bytes: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for p in points {
            pieces.push(&bytes[start..p]);
            start = p;
        }
        pieces.push(&bytes[start..]);
        pieces
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
            let (events, ending) = parse_all(&split_at(wire.as_bytes(), &cuts));
            let expected: Vec<SseEvent> = payloads.iter().map(|p| data(p)).collect();
            prop_assert_eq!(events, expected);
            prop_assert_eq!(ending, Ending::Clean);
        }

        #[test]
        fn any_split_of_a_recorded_answer_gives_the_same_events(
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let (events, ending) = parse_all(&split_at(ANSWER.as_bytes(), &cuts));
            prop_assert_eq!(events, parse_all(&[ANSWER.as_bytes()]).0);
            prop_assert_eq!(ending, Ending::Clean);
        }
    }
}
