//! The companion's `POST /api/chat` answer as a stream of [`ChatEvent`]s.
//!
//! SSE framing is `quire-protocol`'s [`SseParser`] (CRLF, CR or LF line
//! ends, events split across reads, comments such as `: keepalive`, a cap on
//! one event's size); this module turns each event's `data` into a
//! [`ChatEvent`] and notices a stream that ends before its terminal event
//! (`complete` or `error`): the connection was cut, and the answer must be
//! caught up from the event log instead.

use std::collections::VecDeque;

use futures_util::{Stream, StreamExt};
use quire_protocol::{SseEvent, SseParser};

use super::event::ChatEvent;
use crate::error::{Error, Service};

/// Why a stream of chat events broke off.
#[derive(Debug, thiserror::Error)]
pub enum StreamProblem {
    #[error("the answer stream ended before the answer did")]
    Cut,
    #[error("the answer stream broke: {0}")]
    Transport(String),
    #[error("the answer stream carried something that is not a chat event: {0}")]
    Malformed(String),
}

/// Chat events from a byte stream. Ends after the terminal event; yields one
/// error (and ends) when the bytes end early or are not SSE chat events.
pub(crate) fn chat_events<S, B, E>(
    bytes: S,
) -> impl Stream<Item = Result<ChatEvent, Error>> + Send + 'static
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    struct Reader<S> {
        bytes: std::pin::Pin<Box<S>>,
        parser: SseParser,
        ready: VecDeque<SseEvent>,
    }
    let reader = Reader {
        bytes: Box::pin(bytes),
        parser: SseParser::default(),
        ready: VecDeque::new(),
    };
    futures_util::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        loop {
            let Some(event) = reader.ready.pop_front() else {
                match reader.bytes.next().await {
                    None => return Some((Err(problem(StreamProblem::Cut)), None)),
                    Some(Err(e)) => {
                        return Some((Err(problem(StreamProblem::Transport(e.to_string()))), None));
                    }
                    Some(Ok(piece)) => match reader.parser.push(piece.as_ref()) {
                        Ok(events) => reader.ready.extend(events),
                        Err(e) => {
                            return Some((
                                Err(problem(StreamProblem::Malformed(e.to_string()))),
                                None,
                            ));
                        }
                    },
                }
                continue;
            };
            if event.data.trim().is_empty() {
                continue;
            }
            return match serde_json::from_str::<ChatEvent>(&event.data) {
                Ok(chat) if chat.body.is_terminal() => Some((Ok(chat), None)),
                Ok(chat) => Some((Ok(chat), Some(reader))),
                Err(e) => Some((
                    Err(problem(StreamProblem::Malformed(format!(
                        "not a chat event: {e}"
                    )))),
                    None,
                )),
            };
        }
    })
}

fn problem(problem: StreamProblem) -> Error {
    match problem {
        StreamProblem::Malformed(detail) => Error::unexpected(Service::Companion, detail, ""),
        other => Error::offline(Service::Companion, other),
    }
}

#[cfg(test)]
mod tests {
    //! The SSE framing itself (line ends, splits, multi-line data, the size
    //! cap, a cut stream) is tested once, in `quire-protocol`'s `sse`; these
    //! test what this module adds on top.

    use super::*;
    use crate::chat::event::{EventBody, MessageStatus};
    use serde_json::json;
    use uuid::Uuid;

    /// A whole answer as the companion frames it: context, status, three
    /// deltas (two pieces of row 2), complete.
    fn answer() -> String {
        let m = Uuid::new_v4();
        let c = Uuid::new_v4();
        let frame = |seq: i32, kind: &str, payload: serde_json::Value| {
            let data = json!({"message_id": m, "conversation_id": c, "seq": seq, "kind": kind, "payload": payload});
            format!("event: {kind}\ndata: {data}\n\n")
        };
        [
            ": keepalive\n\n".to_owned(),
            frame(
                0,
                "context",
                json!({"user_message_id": m, "chunks": [], "dropped": 0}),
            ),
            frame(1, "status", json!({"state": "running", "run_id": "run_1"})),
            frame(2, "delta", json!({"text": "Pets are "})),
            frame(2, "delta", json!({"text": "allowed "})),
            frame(3, "delta", json!({"text": "with consent [1]."})),
            frame(
                4,
                "complete",
                json!({"status": "complete", "content": "Pets are allowed with consent [1].",
                "citations": [{"key": "1", "page": 2, "score": 0.9}], "run_id": "run_1"}),
            ),
        ]
        .concat()
    }

    /// Runs the stream over `chunks` (each one read).
    fn parse(chunks: Vec<Vec<u8>>) -> Vec<Result<ChatEvent, Error>> {
        let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(chat_events(stream).collect::<Vec<_>>())
    }

    fn text_of(events: &[Result<ChatEvent, Error>]) -> String {
        events
            .iter()
            .filter_map(|e| match e {
                Ok(ChatEvent {
                    body: EventBody::Delta { text },
                    ..
                }) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn check_answer(events: &[Result<ChatEvent, Error>]) {
        assert_eq!(events.len(), 6, "{events:?}");
        assert!(events.iter().all(Result::is_ok));
        assert_eq!(text_of(events), "Pets are allowed with consent [1].");
        let seqs: Vec<i32> = events.iter().map(|e| e.as_ref().unwrap().seq).collect();
        assert_eq!(seqs, [0, 1, 2, 2, 3, 4]);
        match &events[5].as_ref().unwrap().body {
            EventBody::Complete {
                status, citations, ..
            } => {
                assert_eq!(*status, MessageStatus::Complete);
                assert_eq!(citations[0].page, Some(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_whole_answer_in_one_read_or_in_one_byte_reads() {
        let answer = answer();
        check_answer(&parse(vec![answer.as_bytes().to_vec()]));
        check_answer(&parse(answer.bytes().map(|b| vec![b]).collect()));
    }

    #[test]
    fn a_stream_cut_in_the_middle_reports_the_cut_after_what_arrived() {
        let answer = answer();
        let cut_at = answer.find("with consent").unwrap();
        let events = parse(vec![answer.as_bytes()[..cut_at].to_vec()]);
        assert_eq!(text_of(&events), "Pets are allowed ");
        let last = events.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.code(), crate::ErrorCode::Offline);
        assert!(format!("{:?}", last).contains("Cut"), "{last:?}");
    }

    #[test]
    fn garbage_data_is_an_unexpected_answer() {
        let events = parse(vec![b"event: delta\ndata: <html>\n\n".to_vec()]);
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].as_ref().unwrap_err().code(),
            crate::ErrorCode::Unexpected
        );
    }

    #[test]
    fn an_event_over_the_size_cap_is_an_unexpected_answer() {
        let huge = vec![b'x'; quire_protocol::DEFAULT_MAX_EVENT_BYTES + 1];
        let events = parse(vec![b"data: ".to_vec(), huge]);
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].as_ref().unwrap_err().code(),
            crate::ErrorCode::Unexpected
        );
    }

    #[test]
    fn nothing_after_the_terminal_event_is_read() {
        let doubled = format!("{}{}", answer(), answer());
        assert_eq!(parse(vec![doubled.into_bytes()]).len(), 6);
    }
}
