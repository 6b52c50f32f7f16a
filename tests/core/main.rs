//! `quire-core` against a real stack in the test process (a sandbox over its
//! own database, and a companion where a test asks for one: quire-testkit),
//! one module per area. It lives here, not in crates/core, so that testing
//! the core compiles the core alone. Two users in every test that could
//! leak: A acts, B sees nothing.

mod accounts;
mod ask;
mod chat;
mod config;
mod connect;
mod documents;
mod export;
mod follow;
mod proxy;
mod redirects;
mod resume;
mod scope;
mod search;
mod signin;
mod suggestions;
mod uploads;
mod versions;
