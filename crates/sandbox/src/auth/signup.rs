//! `POST /signup`: email sign-up with autoconfirm, answered with a session.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{AuthError, code, ok_json};
use super::extract::{JsonBody, nullable};
use super::sessions::{self, AuthMethod, ClientInfo};
use super::users::{self, DEFAULT_ROLE, NewEmailUser};
use super::{password, pkce};
use crate::state::AppState;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignupParams {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    #[serde(deserialize_with = "nullable")]
    password: String,
    data: Option<Map<String, Value>>,
    #[serde(deserialize_with = "nullable")]
    code_challenge: String,
    #[serde(deserialize_with = "nullable")]
    code_challenge_method: String,
}

pub async fn signup(
    State(state): State<AppState>,
    from: ClientInfo,
    JsonBody(params): JsonBody<SignupParams>,
) -> Result<Response, AuthError> {
    if state.config.disable_signup {
        return Err(AuthError::unprocessable(
            code::SIGNUP_DISABLED,
            "Signups not allowed for this instance",
        ));
    }
    if params.email.is_empty() && params.phone.is_empty() {
        return Err(AuthError::unprocessable(
            code::ANONYMOUS_PROVIDER_DISABLED,
            "Anonymous sign-ins are disabled",
        ));
    }
    password::required(&params.password, "Signup requires a valid password")?;
    password::check_strength(&params.password, state.config.min_password_length)?;
    if !params.email.is_empty() && !params.phone.is_empty() {
        return Err(AuthError::validation(
            "Only an email address or phone number should be provided on signup.",
        ));
    }
    pkce::validate_params(&params.code_challenge_method, &params.code_challenge)?;
    if !params.phone.is_empty() {
        return Err(AuthError::bad_request(
            code::PHONE_PROVIDER_DISABLED,
            "Phone signups are disabled",
        ));
    }
    let email = users::validate_email(&params.email)?;

    // Hash before the transaction: it is the slow part.
    let hash = password::hash(params.password, state.config.password_hash_memory_kib).await?;

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
    if users::find_by_email(&tx, &email).await?.is_some() {
        // With autoconfirm on, GoTrue says so plainly (otherwise it would
        // answer with an obfuscated fake user).
        return Err(AuthError::unprocessable(
            code::USER_ALREADY_EXISTS,
            "User already registered",
        ));
    }
    let user = users::insert_email_user(
        &tx,
        NewEmailUser {
            email: &email,
            password_hash: &hash,
            role: DEFAULT_ROLE,
            confirmed: true,
            user_metadata: params.data.unwrap_or_default(),
            app_metadata: Map::new(),
            banned_until: None,
        },
    )
    .await?;
    let session = sessions::issue(&state, &tx, user.id, AuthMethod::Password, &from).await?;
    tx.commit()
        .await
        .map_err(|e| AuthError::internal("Database error saving new user", e))?;
    tracing::info!(user_id = %session.user.id, "user signed up");
    Ok(ok_json(&session))
}
