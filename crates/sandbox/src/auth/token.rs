//! `POST /token?grant_type=password|refresh_token|pkce`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::{AuthError, code, ok_json};
use super::extract::nullable;
use super::sessions::{self, AuthMethod, ClientInfo};
use super::users;
use super::{password, pkce};
use crate::state::AppState;

/// GoTrue's message for every failed password sign-in.
const INVALID_LOGIN: &str = "Invalid login credentials";

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordGrantParams {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    #[serde(deserialize_with = "nullable")]
    password: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RefreshTokenGrantParams {
    #[serde(deserialize_with = "nullable")]
    refresh_token: String,
}

pub(crate) async fn token(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    from: ClientInfo,
    body: Bytes,
) -> Result<Response, AuthError> {
    let session = match query.get("grant_type").map(String::as_str) {
        Some("password") => password_grant(&state, parse(&body)?, &from).await?,
        Some("refresh_token") => {
            let params: RefreshTokenGrantParams = parse(&body)?;
            if params.refresh_token.is_empty() {
                return Err(AuthError::OAuth {
                    error: "invalid_request",
                    description: "refresh_token required".into(),
                });
            }
            sessions::refresh(&state, &params.refresh_token, &from).await?
        }
        Some("pkce") => pkce::exchange(&state, parse(&body)?, &from).await?,
        _ => {
            return Err(AuthError::bad_request(
                code::INVALID_CREDENTIALS,
                "unsupported_grant_type",
            ));
        }
    };
    Ok(ok_json(&session))
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AuthError> {
    serde_json::from_slice(body).map_err(|e| {
        AuthError::bad_request(
            code::BAD_JSON,
            format!("Could not parse request body as JSON: {e}"),
        )
    })
}

async fn password_grant(
    state: &AppState,
    params: PasswordGrantParams,
    from: &ClientInfo,
) -> Result<sessions::SessionResponse, AuthError> {
    if !params.email.is_empty() && !params.phone.is_empty() {
        return Err(AuthError::validation(
            "Only an email address or phone number should be provided on login.",
        ));
    }
    if params.email.is_empty() {
        if !params.phone.is_empty() {
            return Err(AuthError::unprocessable(
                code::PHONE_PROVIDER_DISABLED,
                "Phone logins are disabled",
            ));
        }
        return Err(AuthError::validation("missing email or phone"));
    }
    let invalid = || AuthError::bad_request(code::INVALID_CREDENTIALS, INVALID_LOGIN);

    let user = {
        let client = state
            .db
            .auth
            .get()
            .await
            .map_err(|e| AuthError::internal("Database error querying schema", e))?;
        users::find_by_email(&client, &params.email).await?
    };
    let memory_kib = state.config.password_hash_memory_kib;
    // No such user, or one without a password: the same Argon2 work as a wrong
    // password, so the answer's time does not tell that the address has no
    // account (stricter than GoTrue: docs/platform-contract.md §1).
    let Some(user) = user.filter(|u| {
        u.deleted_at.is_none() && !u.encrypted_password.as_deref().unwrap_or("").is_empty()
    }) else {
        password::verify_for_sign_in(params.password, None, memory_kib).await;
        return Err(invalid());
    };
    if user.is_banned() {
        return Err(AuthError::bad_request(code::USER_BANNED, "User is banned"));
    }
    let hash = user.encrypted_password.clone();
    if !password::verify_for_sign_in(params.password.clone(), hash, memory_kib).await {
        return Err(invalid());
    }
    if !user.is_confirmed() {
        return Err(AuthError::bad_request(
            code::EMAIL_NOT_CONFIRMED,
            "Email not confirmed",
        ));
    }
    let weak = password::check_strength(&params.password, state.config.min_password_length).err();

    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error granting user", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| AuthError::internal("Database error granting user", e))?;
    let mut session = sessions::issue(state, &tx, user.id, AuthMethod::Password, from).await?;
    tx.commit()
        .await
        .map_err(|e| AuthError::internal("Database error granting user", e))?;
    if let Some(AuthError::WeakPassword { message, reasons }) = weak {
        session.weak_password = Some(json!({"message": message, "reasons": reasons}));
    }
    Ok(session)
}
