//! `quire-companion`: Quire's trusted backend — the only component that
//! holds the service-role key and the JWT secret (ARCHITECTURE.md, "Bird's-eye view").
//!
//! It verifies users' tokens ([`auth`]), answers questions by running the
//! agent with the user's own chunks and streaming Quire's events
//! ([`chat`]; the vocabulary is in `EVENTS.md`), gives the agent a search
//! tool that acts as the user ([`tool`]), registers and ingests documents
//! ([`documents`], [`ingest`]), deletes deleted documents' files and
//! sources ([`deletions`]), and provisions the agent and knowledge base
//! ([`provision`]), applies `db/app` ([`migrate`]) and checks a deployment
//! ([`doctor`]). It reaches the platform only through `/rest/v1`,
//! `/storage/v1` and `/api` ([`platform`]); only `migrate` and `doctor`
//! connect to the project's database. Operators watch it through
//! [`health`] (`/health`, `/ready`) and [`metrics`] (`/metrics`, on a
//! listener of its own).
//!
//! Embedding it (tests do this):
//!
//! ```no_run
//! # async fn demo(config: quire_companion::Config) -> anyhow::Result<()> {
//! let companion = quire_companion::spawn(config).await?;
//! println!("listening on {}", companion.url());
//! companion.shutdown().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod chat;
pub mod config;
pub mod deletions;
pub mod discovery;
pub mod doctor;
pub mod documents;
pub mod error;
pub mod health;
pub mod ingest;
pub mod limits;
pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod platform;
pub mod provision;
pub mod server;
pub mod sessions;
pub mod startup;
pub mod tool;

pub use config::Config;
pub use server::{Companion, spawn};
