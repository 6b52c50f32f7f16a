//! `quire-core`: everything the Quire desktop app does, without a window —
//! configuration, sign-in and the session, user-scoped retrieval, chat through
//! the companion, the Realtime follower and its state model, uploads.
//!
//! The desktop shell and `quire-cli` call the same [`Quire`] functions; the
//! web view only ever receives view models and [`ErrorView`]s, never a token.
//! Nothing here knows the service key or the JWT secret, and there is no code
//! path to the platform's management routes (`/api/agents`, `/api/sources`,
//! `/api/knowledge-bases`): the companion does those.

pub mod auth;
mod backoff;
pub mod config;
pub mod error;
mod http;
mod quire;
mod rest;
pub mod search;

pub use auth::browser::{Browser, BrowserSignIn, SystemBrowser};
pub use auth::store::{KeyringStore, TokenStore};
pub use auth::{AuthStatus, User};
pub use config::Config;
pub use error::{Error, ErrorCode, ErrorView, Result, SignOutReason};
pub use quire::Quire;
pub use search::ChunkHit;
