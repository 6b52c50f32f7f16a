//! `quire-sandbox`: a local stand-in for a Powabase project — Auth, REST,
//! Storage, Realtime and the AI `/api` — over a real PostgreSQL, faithful down
//! to status codes and error bodies, for development, the demo and tests.
//!
//! Where the sandbox and the real platform disagree, the platform is right.
//! docs/platform-contract.md lists every platform behaviour Quire depends on,
//! with its upstream source (repository, path, version) and the test that pins
//! it here; a module that reproduces one points there. The sandbox's own
//! switches that the platform lacks (`--allow-loopback-tool-endpoints`, the
//! hidden 0.7 emulation, the offline model) are for local stacks and tests,
//! and Quire must never depend on them.
//!
//! Embedding it (tests do this):
//!
//! ```no_run
//! # async fn demo(db_url: String, dir: std::path::PathBuf) -> anyhow::Result<()> {
//! let sandbox = quire_sandbox::spawn(quire_sandbox::Config::new(dir, db_url)).await?;
//! println!("listening on {}", sandbox.api_base());
//! sandbox.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Layout: `server::router` nests each service's `router()` under its
//! public prefix (`auth` `/auth/v1`, [`rest`] `/rest/v1`, `storage`
//! `/storage/v1`, `realtime` `/realtime/v1`, [`ai`] `/api`) with the shared
//! middleware of `http`; every handler gets an `AppState` holding the
//! [`Config`], the [`keys::ProjectKeys`], the [`jwt::JwtKeys`] verifier and one
//! connection pool per service (`db::Databases`). Each service answers in
//! its own error shape.
//!
//! The public surface is what the binary, `quire-testkit`, the tests and the
//! fuzz targets use: [`spawn`], [`Sandbox`], [`Config`] and [`config`] (with
//! [`ai::agents::AgentsConfig`], its `agents` field), [`keys`], [`jwt`],
//! [`logs`], and what tests pin of the services:
//! [`rest::query`] (the query-string parser the fuzz target drives),
//! [`rest::MAX_BODY_BYTES`], the counters [`rest::requests`] and
//! [`rest::db_round_trips`] (the load benchmark divides them) and
//! [`ai::agents::model::NOTHING_FOUND`]. The rest of `ai` and `rest`, and
//! `auth`, `db`, `http`, `realtime`, `server`, `state` and `storage`, are
//! internal. Everything public is documented (`missing_docs` warns).

#![warn(missing_docs)]

pub mod ai;
pub(crate) mod auth;
pub mod config;
pub(crate) mod db;
pub(crate) mod http;
pub mod jwt;
pub mod keys;
pub mod logs;
pub(crate) mod realtime;
pub mod rest;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod storage;

pub use config::Config;
pub use server::{Sandbox, spawn};
