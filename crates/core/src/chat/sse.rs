//! The companion's `POST /api/chat` answer as a stream of [`ChatEvent`]s.
//!
//! SSE framing is `eventsource-stream`'s (CRLF, CR or LF line ends, events
//! split across reads, comments such as `: keepalive`); this module turns
//! each event's `data` into a [`ChatEvent`] and notices a stream that ends
//! before its terminal event (`complete` or `error`): the connection was cut,
//! and the answer must be caught up from the event log instead.

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};

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
    // eventsource-stream handles LF and CRLF but not a lone CR, which the
    // SSE spec also allows: normalize every line end to LF first, carrying
    // a CR that ends one read over to the next.
    let normalized = bytes.scan(false, |after_cr, chunk| {
        let chunk = chunk.map(|bytes| {
            let mut out = Vec::with_capacity(bytes.as_ref().len());
            for &byte in bytes.as_ref() {
                match byte {
                    b'\r' => {
                        out.push(b'\n');
                        *after_cr = true;
                    }
                    b'\n' if *after_cr => *after_cr = false,
                    other => {
                        out.push(other);
                        *after_cr = false;
                    }
                }
            }
            out
        });
        std::future::ready(Some(chunk))
    });
    let events = Box::pin(normalized.eventsource());
    futures_util::stream::unfold(Some(events), |state| async move {
        let mut events = state?;
        loop {
            match events.next().await {
                None => return Some((Err(problem(StreamProblem::Cut)), None)),
                Some(Err(e)) => {
                    return Some((Err(problem(StreamProblem::Transport(e.to_string()))), None));
                }
                Some(Ok(event)) if event.data.trim().is_empty() => continue,
                Some(Ok(event)) => {
                    let parsed = serde_json::from_str(&event.data)
                        .map_err(|e| e.to_string())
                        .and_then(ChatEvent::from_json);
                    return match parsed {
                        Ok(chat) if chat.body.is_terminal() => Some((Ok(chat), None)),
                        Ok(chat) => Some((Ok(chat), Some(events))),
                        Err(e) => Some((Err(problem(StreamProblem::Malformed(e))), None)),
                    };
                }
            }
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
    use super::*;
    use crate::chat::event::{EventBody, MessageStatus};
    use proptest::prelude::*;

    const ANSWER: &str = include_str!("../../tests/fixtures/sse/answer.sse");
    const MULTILINE: &str = include_str!("../../tests/fixtures/sse/multiline.sse");

    /// Runs the parser over `chunks` (each one read).
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
    fn a_whole_answer_in_one_read() {
        check_answer(&parse(vec![ANSWER.as_bytes().to_vec()]));
    }

    #[test]
    fn crlf_and_cr_line_ends() {
        check_answer(&parse(vec![ANSWER.replace('\n', "\r\n").into_bytes()]));
        check_answer(&parse(vec![ANSWER.replace('\n', "\r").into_bytes()]));
    }

    #[test]
    fn every_event_split_across_one_byte_reads() {
        check_answer(&parse(ANSWER.bytes().map(|b| vec![b]).collect()));
        let crlf = ANSWER.replace('\n', "\r\n");
        check_answer(&parse(crlf.bytes().map(|b| vec![b]).collect()));
    }

    #[test]
    fn data_over_several_lines_is_joined() {
        let events = parse(vec![MULTILINE.as_bytes().to_vec()]);
        assert_eq!(text_of(&events), "two lines");
        assert!(events.last().unwrap().is_err(), "no terminal event: cut");
    }

    #[test]
    fn a_stream_cut_in_the_middle_reports_the_cut_after_what_arrived() {
        let cut_at = ANSWER.find("with consent").unwrap();
        let events = parse(vec![ANSWER.as_bytes()[..cut_at].to_vec()]);
        assert_eq!(text_of(&events), "Pets are allowed ");
        let last = events.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.code(), crate::ErrorCode::Offline);
        assert!(format!("{:?}", last).contains("Cut"), "{last:?}");
    }

    #[test]
    fn a_huge_delta_arrives_whole() {
        let big = "x".repeat(2 * 1024 * 1024);
        let frame = format!(
            "event: delta\ndata: {{\"message_id\":\"{m}\",\"conversation_id\":\"{m}\",\"seq\":1,\"kind\":\"delta\",\"payload\":{{\"text\":\"{big}\"}}}}\n\n",
            m = uuid::Uuid::nil()
        );
        let chunks = frame.as_bytes().chunks(7919).map(<[u8]>::to_vec).collect();
        let events = parse(chunks);
        assert_eq!(text_of(&events).len(), big.len());
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
    fn nothing_after_the_terminal_event_is_read() {
        let doubled = format!("{ANSWER}{ANSWER}");
        assert_eq!(parse(vec![doubled.into_bytes()]).len(), 6);
    }

    proptest! {
        #[test]
        fn any_split_of_the_stream_gives_the_same_events(cuts in proptest::collection::vec(0usize..ANSWER.len(), 0..12)) {
            let bytes = ANSWER.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for cut in cuts {
                chunks.push(bytes[last..cut].to_vec());
                last = cut;
            }
            chunks.push(bytes[last..].to_vec());
            check_answer(&parse(chunks));
        }
    }
}
