//! `POST /admin/generate_link` (service role only), as GoTrue's
//! `adminGenerateLink` (supabase/auth v2.184.0 `internal/api/mail.go`) for
//! the types `magiclink` and `recovery`: the answer is the user object with
//! `action_link`, `email_otp`, `hashed_token` (the SHA-224 of email and
//! OTP, hex), `verification_type` and `redirect_to` — the requested
//! `redirect_to` when the redirect rule allows it, else the site URL
//! ([`super::redirect`]). A `magiclink` for an unknown email signs the user
//! up (unconfirmed, a random password) and is a `signup` link, as GoTrue's.
//! The token is stored as the user's recovery (or confirmation) token, as a
//! mailed link's is, so `/verify` takes it the same way.
//! Other link types answer 400.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha224};

use super::error::{AuthError, ok_json};
use super::extract::{Admin, JsonBody, nullable};
use super::users::{self, AUDIENCE, DEFAULT_ROLE, NewEmailUser};
use super::{password, redirect};
use crate::state::AppState;

/// GoTrue's `GenerateLinkParams` (the fields the sandbox reads).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct GenerateLinkParams {
    #[serde(deserialize_with = "nullable")]
    r#type: String,
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    redirect_to: String,
}

fn random_hex(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| AuthError::internal("Error generating token", e))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A six-digit one-time code.
fn otp() -> Result<String, AuthError> {
    let mut buf = [0u8; 4];
    getrandom::fill(&mut buf).map_err(|e| AuthError::internal("Error generating OTP", e))?;
    Ok(format!("{:06}", u32::from_le_bytes(buf) % 1_000_000))
}

/// `POST /admin/generate_link`.
pub(crate) async fn generate_link(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(params): JsonBody<GenerateLinkParams>,
) -> Result<Response, AuthError> {
    let email = users::validate_email(&params.email)?;
    if !matches!(params.r#type.as_str(), "magiclink" | "recovery") {
        return Err(AuthError::validation(format!(
            "the sandbox generates magiclink and recovery links only, not {:?}",
            params.r#type
        )));
    }
    let referrer = redirect::Rule::of(&state.config)
        .resolve(Some(params.redirect_to.as_str()).filter(|r| !r.is_empty()));
    let client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error finding user", e))?;
    let (user, kind) = match users::find_by_email(&client, &email).await? {
        Some(user) => (user, params.r#type.clone()),
        None if params.r#type == "magiclink" => {
            let hash =
                password::hash(random_hex(32)?, state.config.password_hash_memory_kib).await?;
            let user = users::insert_email_user(
                &client,
                NewEmailUser {
                    email: &email,
                    password_hash: &hash,
                    role: DEFAULT_ROLE,
                    confirmed: false,
                    user_metadata: Default::default(),
                    app_metadata: Default::default(),
                    banned_until: None,
                },
            )
            .await?;
            (user, "signup".to_owned())
        }
        None => {
            return Err(AuthError::not_found(
                super::error::code::USER_NOT_FOUND,
                "User with this email not found",
            ));
        }
    };
    let code = otp()?;
    let hashed: String = Sha224::digest(format!("{email}{code}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let column = if kind == "signup" {
        "confirmation"
    } else {
        "recovery"
    };
    client
        .execute(
            &format!(
                "update auth.users set {column}_token = $1, {column}_sent_at = now() \
                 where id = $2 and aud = $3"
            ),
            &[&hashed, &user.id, &AUDIENCE],
        )
        .await
        .map_err(|e| AuthError::internal("Database error updating user", e))?;
    let mut link = url::Url::parse(&format!("{}/auth/v1/verify", state.api_base()))
        .map_err(|e| AuthError::internal("Error building the link", e))?;
    link.query_pairs_mut()
        .append_pair("token", &hashed)
        .append_pair("type", &kind)
        .append_pair("redirect_to", referrer.as_str());
    let mut body = serde_json::to_value(&user)
        .map_err(|e| AuthError::internal("Error encoding the user", e))?;
    if let Value::Object(fields) = &mut body {
        fields.insert("action_link".into(), link.to_string().into());
        fields.insert("email_otp".into(), code.into());
        fields.insert("hashed_token".into(), hashed.into());
        fields.insert("verification_type".into(), kind.into());
        fields.insert("redirect_to".into(), referrer.to_string().into());
    }
    Ok(ok_json(&body))
}
