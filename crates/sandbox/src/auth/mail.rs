//! The emails GoTrue sends, and what they lead to: sign-up confirmation
//! (when `confirm_email` is on, GoTrue's `MAILER_AUTOCONFIRM=false`), `POST
//! /recover`, and `/verify` (GET from the mail's link, POST with the code)
//! — supabase/auth v2.184.0 `internal/api/{mail,recover,verify}.go`;
//! docs/platform/supabase.md §3.8.
//!
//! The sandbox has no SMTP: each mail is appended as one JSON line
//! (`{"to", "type", "subject", "link", "code"}`) to the mailbox file
//! ([`crate::Config::mailbox`]), which tests read. As GoTrue, a mail holds a
//! link `{api}/auth/v1/verify?token=<hashed token>&type=…&redirect_to=…`
//! and a six-digit code; the stored token is the SHA-224 of email and code.
//! Deliberate differences: no per-address 60 s resend spacing and no hourly
//! project quota.

use std::io::Write as _;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use deadpool_postgres::GenericClient;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha224};
use uuid::Uuid;

use super::error::{AuthError, code, ok_json};
use super::extract::{JsonBody, nullable};
use super::redirect;
use super::sessions::{self, AuthMethod, ClientInfo};
use super::users::{self, AUDIENCE, User};
use crate::state::AppState;

/// How long a mailed token is good for (GoTrue's `MAILER_OTP_EXP` default).
const OTP_LIFETIME: Duration = Duration::seconds(86_400);

/// Which mail.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Signup,
    Recovery,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Signup => "signup",
            Kind::Recovery => "recovery",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Kind::Signup => "confirmation",
            Kind::Recovery => "recovery",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Kind::Signup => "Confirm Your Signup",
            Kind::Recovery => "Reset Your Password",
        }
    }

    fn parse(value: &str) -> Option<Kind> {
        match value {
            "signup" => Some(Kind::Signup),
            "recovery" => Some(Kind::Recovery),
            _ => None,
        }
    }
}

fn hashed(email: &str, code: &str) -> String {
    Sha224::digest(format!("{email}{code}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn six_digits() -> Result<String, AuthError> {
    let mut buf = [0u8; 4];
    getrandom::fill(&mut buf).map_err(|e| AuthError::internal("Error generating OTP", e))?;
    Ok(format!("{:06}", u32::from_le_bytes(buf) % 1_000_000))
}

/// Stores a new token of `kind` for `user` and writes the mail.
pub(crate) async fn send(
    state: &AppState,
    client: &impl GenericClient,
    user: &User,
    kind: Kind,
    redirect_to: Option<&str>,
) -> Result<(), AuthError> {
    let email = user.email.clone().unwrap_or_default();
    let otp = six_digits()?;
    let token = hashed(&email, &otp);
    let column = kind.column();
    client
        .execute(
            &format!(
                "update auth.users set {column}_token = $1, {column}_sent_at = now() \
                 where id = $2 and aud = $3"
            ),
            &[&token, &user.id, &AUDIENCE],
        )
        .await
        .map_err(|e| AuthError::internal("Database error updating user", e))?;
    let referrer = redirect::Rule::of(&state.config).resolve(redirect_to);
    let mut link = url::Url::parse(&format!("{}/auth/v1/verify", state.api_base()))
        .map_err(|e| AuthError::internal("Error building the link", e))?;
    link.query_pairs_mut()
        .append_pair("token", &token)
        .append_pair("type", kind.as_str())
        .append_pair("redirect_to", referrer.as_str());
    let line = json!({
        "to": email, "type": kind.as_str(), "subject": kind.subject(),
        "link": link.as_str(), "code": otp,
    });
    let path = state.config.mailbox();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| AuthError::internal("Error sending confirmation email", e))?;
    writeln!(file, "{line}").map_err(|e| AuthError::internal("Error sending email", e))?;
    tracing::info!(user_id = %user.id, kind = kind.as_str(), "mail written to the mailbox");
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RecoverParams {
    #[serde(deserialize_with = "nullable")]
    email: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RedirectQuery {
    pub(crate) redirect_to: Option<String>,
}

/// `POST /recover {email}` → 200 `{}`, whether or not the address has an
/// account (GoTrue does not tell).
pub(crate) async fn recover(
    State(state): State<AppState>,
    Query(query): Query<RedirectQuery>,
    JsonBody(params): JsonBody<RecoverParams>,
) -> Result<Response, AuthError> {
    let email = users::validate_email(&params.email)?;
    let client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error finding user", e))?;
    if let Some(user) = users::find_by_email(&client, &email).await? {
        send(
            &state,
            &client,
            &user,
            Kind::Recovery,
            query.redirect_to.as_deref(),
        )
        .await?;
    }
    Ok(ok_json(&json!({})))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct VerifyLink {
    token: String,
    r#type: String,
    redirect_to: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct VerifyCode {
    #[serde(deserialize_with = "nullable")]
    r#type: String,
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    token: String,
    /// The link's `token` instead of email and code.
    #[serde(deserialize_with = "nullable")]
    token_hash: String,
}

fn expired() -> AuthError {
    AuthError::forbidden(code::OTP_EXPIRED, "Token has expired or is invalid")
}

/// The user whose `kind` token is `token` and still good; the token is used
/// up and the address confirmed.
async fn redeem(client: &impl GenericClient, kind: Kind, token: &str) -> Result<Uuid, AuthError> {
    if token.is_empty() {
        return Err(expired());
    }
    let column = kind.column();
    let row = client
        .query_opt(
            &format!(
                "update auth.users set {column}_token = '', \
                 email_confirmed_at = coalesce(email_confirmed_at, now()) \
                 where {column}_token = $1 and aud = $2 and {column}_sent_at > $3 \
                 returning id"
            ),
            &[&token, &AUDIENCE, &(Utc::now() - OTP_LIFETIME)],
        )
        .await
        .map_err(|e| AuthError::internal("Database error finding user", e))?;
    row.map(|row| row.get(0)).ok_or_else(expired)
}

/// `GET /verify?token&type&redirect_to`: the mail's link. Confirms (or signs
/// in for recovery) and sends the browser to `redirect_to` with the session
/// in the fragment (the implicit flow); a bad or used token goes there with
/// `error=access_denied&error_code=otp_expired` instead.
pub(crate) async fn verify_link(
    State(state): State<AppState>,
    from: ClientInfo,
    Query(query): Query<VerifyLink>,
) -> Result<Response, AuthError> {
    let kind = Kind::parse(&query.r#type)
        .ok_or_else(|| AuthError::validation("Verify requires a verification type"))?;
    let mut target = redirect::Rule::of(&state.config).resolve(query.redirect_to.as_deref());
    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error finding user", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| AuthError::internal("Database error finding user", e))?;
    let fragment = match redeem(&tx, kind, &query.token).await {
        Ok(user_id) => {
            let session = sessions::issue(&state, &tx, user_id, AuthMethod::Otp, &from).await?;
            tx.commit()
                .await
                .map_err(|e| AuthError::internal("Database error updating user", e))?;
            format!(
                "access_token={}&expires_at={}&expires_in={}&refresh_token={}&token_type=bearer&type={}",
                session.access_token,
                session.expires_at,
                session.expires_in,
                session.refresh_token,
                kind.as_str()
            )
        }
        Err(_) => "error=access_denied&error_code=otp_expired&error_description=Email+link+is+invalid+or+has+expired".to_owned(),
    };
    target.set_fragment(Some(&fragment));
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, target.to_string())],
    )
        .into_response())
}

/// `POST /verify {type, email, token}` (the mail's code) or `{type,
/// token_hash}` (the link's token) → a session; GoTrue's
/// `VerifyParams::Validate` decides which.
pub(crate) async fn verify_code(
    State(state): State<AppState>,
    from: ClientInfo,
    JsonBody(params): JsonBody<VerifyCode>,
) -> Result<Response, AuthError> {
    let kind = Kind::parse(&params.r#type)
        .ok_or_else(|| AuthError::validation("Verify requires a verification type"))?;
    let token = match (params.token.is_empty(), params.token_hash.is_empty()) {
        (false, true) => hashed(&users::validate_email(&params.email)?, params.token.trim()),
        (true, false) if params.email.is_empty() => params.token_hash.clone(),
        (true, false) => {
            return Err(AuthError::validation(
                "Only the token_hash and type should be provided",
            ));
        }
        _ => {
            return Err(AuthError::validation(
                "Verify requires either a token or a token hash",
            ));
        }
    };
    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error finding user", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| AuthError::internal("Database error finding user", e))?;
    let user_id = redeem(&tx, kind, &token).await?;
    let session = sessions::issue(&state, &tx, user_id, AuthMethod::Otp, &from).await?;
    tx.commit()
        .await
        .map_err(|e| AuthError::internal("Database error updating user", e))?;
    Ok(ok_json(&session))
}
