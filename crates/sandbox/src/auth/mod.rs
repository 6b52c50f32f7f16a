//! Auth (`/auth/v1`): GoTrue v2.189's API over `auth.*` (supabase/auth), down
//! to status codes and error bodies; docs/platform-contract.md lists what
//! Quire depends on.
//!
//! Every write goes through the Auth pool (`supabase_auth_admin`, the owner of
//! the `auth` schema). Sign-up autoconfirms, as on the Supabase CLI and cloud
//! Powabase. Where the sandbox deliberately differs from GoTrue, the handler
//! says so in its documentation.

pub(crate) mod error;

mod admin;
mod authorize;
mod extract;
mod links;
mod mail;
mod meta;
mod password;
mod pkce;
mod redirect;
mod sessions;
mod signup;
mod token;
mod user;
mod users;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// The routes of `/auth/v1` (nest them there).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(meta::health))
        .route("/settings", get(meta::settings))
        .route("/signup", post(signup::signup))
        .route("/recover", post(mail::recover))
        .route("/verify", get(mail::verify_link).post(mail::verify_code))
        .route("/token", post(token::token))
        .route("/authorize", get(authorize::start).post(authorize::submit))
        .route("/user", get(user::get_user).put(user::update_user))
        .route("/logout", post(user::logout))
        .route(
            "/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route("/admin/generate_link", post(links::generate_link))
        .route(
            "/admin/users/{id}",
            get(admin::get_user)
                .put(admin::update_user)
                .delete(admin::delete_user),
        )
        .layer(axum::middleware::from_fn(error::api_version))
}
