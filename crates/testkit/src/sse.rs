//! Reading the companion's answer stream (`crates/companion/EVENTS.md`) as a
//! test does: every event as JSON, checking that each frame's `event:` names
//! its `kind`.

use reqwest::Response;
use serde_json::Value;

use crate::PATIENCE;

/// The events of a whole SSE body (the JSON of each `data:`).
pub fn parse_sse(raw: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for frame in raw.split("\n\n") {
        let mut name = None;
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if data.is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"));
        assert_eq!(name.as_deref(), event["kind"].as_str(), "{frame}");
        events.push(event);
    }
    events
}

/// Reads an SSE response piece by piece, yielding events as they come.
pub struct SseReader {
    response: Response,
    buffer: String,
}

impl SseReader {
    /// Reads the body of `response`.
    pub fn new(response: Response) -> SseReader {
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut events = parse_sse(&frame);
                if let Some(event) = events.pop() {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("the stream goes on")
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// The `kind`s of events, in order.
pub fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["kind"].as_str().unwrap()).collect()
}

/// The one event of `kind`.
pub fn one<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let all: Vec<&Value> = events.iter().filter(|e| e["kind"] == kind).collect();
    assert_eq!(all.len(), 1, "one {kind} in {:?}", kinds(events));
    all[0]
}

/// The streamed text: the deltas concatenated.
pub fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["kind"] == "delta")
        .map(|e| e["payload"]["text"].as_str().unwrap())
        .collect()
}
