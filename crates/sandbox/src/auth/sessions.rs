//! Sessions, refresh tokens and access tokens (GoTrue's `issueRefreshToken`,
//! refresh-token grant and `GenerateAccessToken`).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::error::{AuthError, code};
use super::users::{self, User};
use crate::state::AppState;

/// How a session was authenticated (GoTrue's `AuthenticationMethod`), the
/// `method` of its `amr` entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// Email and password (`grant_type=password`, and sign-up).
    Password,
    /// Through a provider (`/authorize`), then PKCE or the implicit flow.
    OAuth,
    /// A mailed link or code (`/verify`).
    Otp,
}

impl AuthMethod {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::OAuth => "oauth",
            AuthMethod::Otp => "otp",
        }
    }
}

/// Where a request came from, recorded on the session as GoTrue does.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientInfo {
    pub(crate) user_agent: Option<String>,
    pub(crate) ip: Option<IpAddr>,
}

/// One `amr` entry.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AmrEntry {
    pub(crate) method: String,
    pub(crate) timestamp: i64,
}

/// Access-token claims, in GoTrue's order and with its omissions.
#[derive(Debug, Serialize)]
pub(crate) struct AccessTokenClaims<'a> {
    pub(crate) iss: &'a str,
    pub(crate) sub: String,
    /// A single string, as GoTrue serializes a one-element audience.
    pub(crate) aud: &'a str,
    pub(crate) exp: i64,
    pub(crate) iat: i64,
    pub(crate) email: &'a str,
    pub(crate) phone: &'a str,
    pub(crate) app_metadata: &'a Value,
    pub(crate) user_metadata: &'a Value,
    pub(crate) role: &'a str,
    pub(crate) aal: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) amr: Vec<AmrEntry>,
    pub(crate) session_id: String,
    pub(crate) is_anonymous: bool,
}

/// The session answer of `/token`, `/signup` (GoTrue's `AccessTokenResponse`).
#[derive(Debug, Serialize)]
pub(crate) struct SessionResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    pub(crate) expires_at: i64,
    pub(crate) refresh_token: String,
    pub(crate) user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) weak_password: Option<Value>,
}

fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> AuthError {
    move |e| AuthError::internal(context, e)
}

/// A new opaque refresh token: 32 characters of `[a-z0-9]`.
pub(crate) fn new_refresh_token() -> Result<String, AuthError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AuthError::internal("Database error granting user", e))?;
    // 256 is not a multiple of 36; the slight bias leaves ~160 bits of entropy.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

/// Signs a user in: a new session, its first refresh token, the `amr` claim
/// for `method`, `last_sign_in_at`, and an access token. Run it inside the
/// transaction that decided the sign-in.
pub(crate) async fn issue(
    state: &AppState,
    client: &impl GenericClient,
    user_id: Uuid,
    method: AuthMethod,
    from: &ClientInfo,
) -> Result<SessionResponse, AuthError> {
    let session_id = Uuid::new_v4();
    client
        .execute(
            "insert into auth.sessions (id, user_id, aal, user_agent, ip, created_at, updated_at, refreshed_at) \
             values ($1, $2, 'aal1', $3, $4, now(), now(), now() at time zone 'utc')",
            &[&session_id, &user_id, &from.user_agent, &from.ip],
        )
        .await
        .map_err(db("Database error granting user"))?;
    let refresh_token = new_refresh_token()?;
    client
        .execute(
            "insert into auth.refresh_tokens (instance_id, token, user_id, session_id, parent, revoked, created_at, updated_at) \
             values ('00000000-0000-0000-0000-000000000000', $1, $2, $3, null, false, now(), now())",
            &[&refresh_token, &user_id, &session_id],
        )
        .await
        .map_err(db("Database error granting user"))?;
    client
        .execute(
            "insert into auth.mfa_amr_claims (id, session_id, authentication_method, created_at, updated_at) \
             values ($1, $2, $3, now(), now()) \
             on conflict (session_id, authentication_method) do update set updated_at = excluded.updated_at",
            &[&Uuid::new_v4(), &session_id, &method.as_str()],
        )
        .await
        .map_err(db("Database error granting user"))?;
    users::touch_sign_in(client, user_id).await?;
    let user = users::find_by_id(client, user_id)
        .await?
        .ok_or_else(|| AuthError::internal("Database error granting user", "user vanished"))?;
    respond(state, client, user, session_id, refresh_token).await
}

/// Builds the session answer: a fresh access token for `session_id`.
async fn respond(
    state: &AppState,
    client: &impl GenericClient,
    user: User,
    session_id: Uuid,
    refresh_token: String,
) -> Result<SessionResponse, AuthError> {
    let (access_token, expires_at) = access_token(state, client, &user, session_id).await?;
    Ok(SessionResponse {
        access_token,
        token_type: "bearer",
        expires_in: state.config.jwt_expiry_secs,
        expires_at,
        refresh_token,
        user,
        weak_password: None,
    })
}

/// Mints an access token for `user` in `session_id`; returns it and its `exp`.
pub(crate) async fn access_token(
    state: &AppState,
    client: &impl GenericClient,
    user: &User,
    session_id: Uuid,
) -> Result<(String, i64), AuthError> {
    let rows = client
        .query(
            "select authentication_method, updated_at from auth.mfa_amr_claims \
             where session_id = $1 order by updated_at desc",
            &[&session_id],
        )
        .await
        .map_err(db("error generating jwt token"))?;
    let amr = rows
        .iter()
        .map(|row| AmrEntry {
            method: row.get(0),
            timestamp: row.get::<_, DateTime<Utc>>(1).timestamp(),
        })
        .collect();
    let issuer = format!("{}/auth/v1", state.api_base());
    let now = Utc::now().timestamp();
    let exp = now + i64::try_from(state.config.jwt_expiry_secs).unwrap_or(i64::MAX / 2);
    let claims = AccessTokenClaims {
        iss: &issuer,
        sub: user.id.to_string(),
        aud: if user.aud.is_empty() {
            users::AUDIENCE
        } else {
            &user.aud
        },
        exp,
        iat: now,
        email: user.email.as_deref().unwrap_or(""),
        phone: user.phone.as_deref().unwrap_or(""),
        app_metadata: &user.app_metadata,
        user_metadata: &user.user_metadata,
        role: &user.role,
        aal: "aal1",
        amr,
        session_id: session_id.to_string(),
        is_anonymous: user.is_anonymous,
    };
    Ok((state.jwt.sign(&claims), exp))
}

/// The refresh-token grant with rotation.
///
/// Each refresh token is single use: presenting the active one revokes it and
/// issues its child. Presenting a revoked one within the reuse interval of its
/// revocation answers with the session's *current* refresh token (a client
/// that lost the answer to its last refresh recovers). Presenting one later is
/// treated as theft: the whole session is deleted (its refresh tokens with it,
/// its access tokens stop working at `/user`) and the answer is 400
/// `refresh_token_already_used`.
pub(crate) async fn refresh(
    state: &AppState,
    token: &str,
    from: &ClientInfo,
) -> Result<SessionResponse, AuthError> {
    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error finding refresh token", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(db("Database error finding refresh token"))?;

    let Locked {
        session_id,
        user_id,
        not_after,
        token_id,
        revoked,
        revoked_at,
    } = lock_session(&tx, token).await?;
    let no_session = || {
        AuthError::bad_request(
            code::SESSION_NOT_FOUND,
            "Invalid Refresh Token: No Valid Session Found",
        )
    };

    let user = users::find_by_id(&tx, user_id)
        .await?
        .ok_or_else(no_session)?;
    if user.is_banned() {
        return Err(AuthError::bad_request(
            code::USER_BANNED,
            "Invalid Refresh Token: User Banned",
        ));
    }
    let now = Utc::now();
    if not_after.is_some_and(|t| now > t) {
        return Err(AuthError::bad_request(
            code::SESSION_EXPIRED,
            "Invalid Refresh Token: Session Expired",
        ));
    }

    let issued = if !revoked {
        rotate(&tx, token_id, user_id, session_id, token).await?
    } else {
        let reuse_until = revoked_at
            + chrono::Duration::from_std(state.config.refresh_token_reuse_interval())
                .unwrap_or_default();
        match active_token(&tx, session_id).await? {
            Some(active) if now <= reuse_until => active,
            _ => {
                tracing::warn!(%session_id, "refresh token reused after the reuse interval; revoking the session");
                tx.execute("delete from auth.sessions where id = $1", &[&session_id])
                    .await
                    .map_err(db("Database error revoking session"))?;
                tx.commit()
                    .await
                    .map_err(db("Database error revoking session"))?;
                return Err(AuthError::bad_request(
                    code::REFRESH_TOKEN_ALREADY_USED,
                    "Invalid Refresh Token: Already Used",
                ));
            }
        }
    };

    tx.execute(
        "update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now(), \
           user_agent = $2, ip = $3 where id = $1",
        &[&session_id, &from.user_agent, &from.ip],
    )
    .await
    .map_err(db("failed to update session information"))?;
    let response = respond(state, &tx, user, session_id, issued).await?;
    tx.commit()
        .await
        .map_err(db("Database error granting user"))?;
    Ok(response)
}

/// A refresh token's session and the token itself, both locked.
struct Locked {
    session_id: Uuid,
    user_id: Uuid,
    not_after: Option<DateTime<Utc>>,
    token_id: i64,
    revoked: bool,
    /// When the token was revoked (its last update).
    revoked_at: DateTime<Utc>,
}

/// Finds a refresh token's session and locks the session first, then the
/// token: concurrent refreshes of one session queue here instead of both
/// rotating the same token.
async fn lock_session(tx: &impl GenericClient, token: &str) -> Result<Locked, AuthError> {
    let not_found = || {
        AuthError::bad_request(
            code::REFRESH_TOKEN_NOT_FOUND,
            "Invalid Refresh Token: Refresh Token Not Found",
        )
    };
    let no_session = || {
        AuthError::bad_request(
            code::SESSION_NOT_FOUND,
            "Invalid Refresh Token: No Valid Session Found",
        )
    };
    let found = tx
        .query_opt(
            "select session_id from auth.refresh_tokens where token = $1",
            &[&token],
        )
        .await
        .map_err(db("Database error finding refresh token"))?
        .ok_or_else(not_found)?;
    let session_id: Uuid = found.get::<_, Option<Uuid>>(0).ok_or_else(no_session)?;
    let session = tx
        .query_opt(
            "select user_id, not_after from auth.sessions where id = $1 for update",
            &[&session_id],
        )
        .await
        .map_err(db("Database error finding session"))?
        .ok_or_else(no_session)?;
    let row = tx
        .query_opt(
            "select id, revoked, updated_at from auth.refresh_tokens where token = $1 for update",
            &[&token],
        )
        .await
        .map_err(db("Database error finding refresh token"))?
        .ok_or_else(not_found)?;
    Ok(Locked {
        session_id,
        user_id: session.get(0),
        not_after: session.get(1),
        token_id: row.get(0),
        revoked: row.get(1),
        revoked_at: row.get(2),
    })
}

/// Revokes the active refresh token `token` and issues its child.
async fn rotate(
    tx: &impl GenericClient,
    token_id: i64,
    user_id: Uuid,
    session_id: Uuid,
    token: &str,
) -> Result<String, AuthError> {
    tx.execute(
        "update auth.refresh_tokens set revoked = true, updated_at = now() where id = $1",
        &[&token_id],
    )
    .await
    .map_err(db("Database error granting user"))?;
    let child = new_refresh_token()?;
    tx.execute(
        "insert into auth.refresh_tokens (instance_id, token, user_id, session_id, parent, revoked, created_at, updated_at) \
         values ('00000000-0000-0000-0000-000000000000', $1, $2, $3, $4, false, now(), now())",
        &[&child, &user_id, &session_id, &token],
    )
    .await
    .map_err(db("Database error granting user"))?;
    Ok(child)
}

/// The session's current (newest unrevoked) refresh token, if it has one.
async fn active_token(
    tx: &impl GenericClient,
    session_id: Uuid,
) -> Result<Option<String>, AuthError> {
    Ok(tx
        .query_opt(
            "select token from auth.refresh_tokens \
             where session_id = $1 and not revoked order by id desc limit 1",
            &[&session_id],
        )
        .await
        .map_err(db("Database error finding refresh token"))?
        .map(|row| row.get(0)))
}
