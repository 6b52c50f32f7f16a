//! Integration tests of the sandbox's HTTP API: one binary, one module per
//! area, each test against a real server on port 0 and its own database.

mod ai_agents;
mod ai_sources;
mod auth;
mod conformance;
mod management_auth;
mod realtime;
mod rest;
mod server;
mod statement_timeout;
mod storage;
