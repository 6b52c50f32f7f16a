//! Extractors for Auth handlers: JSON bodies read the way GoTrue reads them,
//! the client's address, and the two kinds of callers (a signed-in user, an
//! admin), each refused with GoTrue's error.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::{AuthError, code};
use super::sessions::ClientInfo;
use super::users::{self, User};
use crate::jwt::{Caller, bearer_token};
use crate::state::AppState;

/// Largest JSON body Auth reads.
const MAX_JSON_BODY: usize = 1024 * 1024;

/// A JSON body. Like GoTrue's `retrieveRequestParams`, the content type is
/// not checked, and anything unparsable (an empty body included) is 400
/// `bad_json`.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AuthError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|e| {
                AuthError::bad_request(
                    code::BAD_JSON,
                    format!("Could not parse request body as JSON: {e}"),
                )
            })?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            AuthError::bad_request(
                code::BAD_JSON,
                format!("Could not parse request body as JSON: {e}"),
            )
        })
    }
}

/// `deserialize_with` for fields Go would leave at their zero value when the
/// JSON has `null`.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientInfo {
            user_agent: parts
                .headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            ip: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        })
    }
}

/// A signed-in user, established as GoTrue's `requireAuthentication` does:
/// a Bearer token (401 `no_authorization`), valid (403 `bad_jwt`), whose
/// `sub` names an existing user (403 `user_not_found`) and whose `session_id`
/// names a live session (403 `session_not_found`), of a user not banned
/// (403 `user_banned`).
pub(crate) struct SignedIn {
    pub(crate) caller: Caller,
    pub(crate) user: User,
    /// `None` for a token without a `session_id` claim.
    pub(crate) session_id: Option<Uuid>,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = verify_bearer(parts, state)?;
        let Some(subject) = caller.subject().filter(|s| !s.is_empty()) else {
            return Err(AuthError::forbidden(
                code::BAD_JWT,
                "invalid claim: missing sub claim",
            ));
        };
        let user_id = Uuid::parse_str(subject).map_err(|_| {
            AuthError::bad_request(code::BAD_JWT, "invalid claim: sub claim must be a UUID")
        })?;
        let client = state
            .db
            .auth
            .get()
            .await
            .map_err(|e| AuthError::internal("Database error finding user", e))?;
        let user = users::find_by_id(&client, user_id).await?.ok_or_else(|| {
            AuthError::forbidden(
                code::USER_NOT_FOUND,
                "User from sub claim in JWT does not exist",
            )
        })?;

        let mut session_id = None;
        if let Some(raw) = caller.session_id().filter(|s| !s.is_empty()) {
            let id = Uuid::parse_str(raw).map_err(|_| {
                AuthError::forbidden(
                    code::BAD_JWT,
                    "invalid claim: session_id claim must be a UUID",
                )
            })?;
            if !id.is_nil() {
                let live = client
                    .query_opt(
                        "select 1 from auth.sessions where id = $1 and user_id = $2",
                        &[&id, &user_id],
                    )
                    .await
                    .map_err(|e| AuthError::internal("Database error finding session", e))?;
                if live.is_none() {
                    return Err(AuthError::forbidden(
                        code::SESSION_NOT_FOUND,
                        "Session from session_id claim in JWT does not exist",
                    ));
                }
                session_id = Some(id);
            }
        }
        if user.is_banned() {
            return Err(AuthError::forbidden(code::USER_BANNED, "User is banned"));
        }
        Ok(SignedIn {
            caller,
            user,
            session_id,
        })
    }
}

/// An admin: a valid token whose `role` is `service_role` or
/// `supabase_admin` (GoTrue's `requireAdminCredentials`; otherwise 403
/// `not_admin`).
pub(crate) struct Admin;

/// Roles GoTrue treats as admins (`GOTRUE_JWT_ADMIN_ROLES`' default).
const ADMIN_ROLES: [&str; 2] = ["service_role", "supabase_admin"];

impl FromRequestParts<AppState> for Admin {
    type Rejection = AuthError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = verify_bearer(parts, state)?;
        if !caller
            .role()
            .is_some_and(|role| ADMIN_ROLES.contains(&role))
        {
            return Err(AuthError::forbidden(code::NOT_ADMIN, "User not allowed"));
        }
        Ok(Admin)
    }
}

fn verify_bearer(parts: &Parts, state: &AppState) -> Result<Caller, AuthError> {
    let token = bearer_token(&parts.headers).ok_or_else(|| {
        AuthError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            code::NO_AUTHORIZATION,
            "This endpoint requires a valid Bearer token",
        )
    })?;
    state.jwt.verify(token).map_err(|e| {
        AuthError::forbidden(
            code::BAD_JWT,
            format!("invalid JWT: unable to parse or verify signature, {e}"),
        )
    })
}
