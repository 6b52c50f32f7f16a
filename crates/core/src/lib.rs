//! `quire-core`: everything the Quire desktop app does, without a window —
//! configuration, sign-in and the session, user-scoped retrieval, chat through
//! the companion, the Realtime follower and its state model, uploads.
//!
//! The desktop shell and `quire-cli` call the same [`Quire`] functions; the
//! web view only ever receives view models and [`ErrorView`]s, never a token.
//! Nothing here knows the service key or the JWT secret, and there is no code
//! path to the platform's management routes (`/api/agents`, `/api/sources`,
//! `/api/knowledge-bases`): the companion does those.

#![warn(missing_docs)]

pub mod auth;
pub mod chat;
mod companion;
pub mod config;
pub mod discovery;
mod documents;
pub mod error;
pub mod export;
pub mod follow;
mod http;
mod quire;
mod rest;
pub mod search;
pub mod state;
pub mod typescript;
pub mod upload;
pub mod versions;

pub use auth::browser::{Browser, BrowserSignIn, SystemBrowser};
pub use auth::store::{KeyringStore, Profile, TokenStore};
pub use auth::{AuthStatus, AuthWatch, SignUp, User};
pub use chat::{
    Answer, Asked, ChatEvent, Citation, EventBody, FailureCode, HistoryPage, MessageStatus, Stopper,
};
pub use config::Config;
pub use discovery::{Server, SignInMethods};
pub use error::{Error, ErrorCode, ErrorView, Result, SignOutReason};
pub use follow::{FollowOptions, FollowStatus, Follower};
pub use quire::Quire;
pub use search::ChunkHit;
pub use state::{
    Conversation, Document, DocumentStatus, Message, Role, State, UPLOAD_IN_FLIGHT, Update,
    UploadProgress, Uploading, uploading,
};
pub use tokio_util::sync::CancellationToken;
pub use upload::{UploadEvent, UploadOptions};
