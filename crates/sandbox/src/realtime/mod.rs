//! `/realtime/v1`: Supabase Realtime's WebSocket and REST broadcast, as
//! `shared/reference/SUPABASE-PROTOCOLS.md` §2 describes them.
//!
//! The protocol pieces that need no server: the Phoenix vsn 1.0.0 frame
//! codec ([`frame`]), the `phx_join` payload ([`join`]), the fan-out table
//! keyed by (topic, private) ([`registry`]) and Realtime's reading of JWTs
//! ([`token`]).

pub mod frame;
pub mod join;
pub mod registry;
pub mod token;
