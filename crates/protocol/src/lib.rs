//! The contract Quire owns between the companion and its clients: the chat
//! events `POST /api/chat` streams, `chat_events` stores and Realtime
//! broadcasts ([`event`]), the companion's error body and codes
//! ([`error`]), and the server-sent-events framing both sides read
//! ([`sse`]). `crates/companion/EVENTS.md` describes the wire format; these
//! types are its source of truth, and the companion and the core both use
//! them, so the two cannot drift apart.
//!
//! Types and a pure codec only: no I/O, no HTTP client or server, and
//! nothing of the platform's own vocabulary (the sandbox keeps its own
//! codec on purpose, so that a shared bug cannot hide on both sides).
//!
//! One policy rather than a type also lives here: [`backoff::Backoff`], the
//! reconnect and retry policy. The clients of the companion (the core's
//! follower, refresher and uploads) and the companion itself both retry, and
//! this is the one crate they share; keeping the policy here keeps them in
//! step. Its jitter is the crate's only source of randomness (`getrandom`).

#![warn(missing_docs)]

pub mod backoff;
pub mod error;
pub mod event;
pub mod sse;

pub use backoff::Backoff;
pub use error::{ErrorBody, ErrorCode};
pub use event::{
    ChatEvent, Citation, ContextChunk, EventBody, FailureCode, KINDS, MessageStatus, UnknownKind,
};
pub use sse::{DEFAULT_MAX_EVENT_BYTES, Ending, SseError, SseEvent, SseParser};
