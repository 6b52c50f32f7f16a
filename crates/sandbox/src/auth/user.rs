//! `GET /user`, `PUT /user`, `POST /logout`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{AuthError, code, ok_json};
use super::extract::{JsonBody, SignedIn, nullable};
use super::password;
use super::users::{self, AUDIENCE, DUPLICATE_EMAIL};
use crate::state::AppState;

/// GoTrue's `X-JWT-AUD` header: the audience a request is for.
const AUD_HEADER: &str = "x-jwt-aud";

/// `GET /user`: the signed-in user, bare.
///
/// GoTrue compares the token's audience with the request's; the request's
/// is the `X-JWT-AUD` header or the project audience (`authenticated`). A
/// token for any other audience is 400 `validation_failed`.
pub(crate) async fn get_user(
    headers: HeaderMap,
    signed_in: SignedIn,
) -> Result<Response, AuthError> {
    let wanted = headers
        .get(AUD_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or(AUDIENCE);
    if signed_in.caller.audiences().first() != Some(&wanted) {
        return Err(AuthError::validation(
            "Token audience doesn't match request audience",
        ));
    }
    Ok(ok_json(&signed_in.user))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct UserUpdateParams {
    #[serde(deserialize_with = "nullable")]
    email: String,
    password: Option<String>,
    data: Option<Map<String, Value>>,
    app_metadata: Option<Value>,
    #[serde(deserialize_with = "nullable")]
    phone: String,
}

/// `PUT /user`: change the signed-in user's email, password or
/// `user_metadata` (`data`; `null` values remove keys). `app_metadata` is
/// 403 `not_admin`. A new password ends the user's other sessions.
///
/// Deviation: GoTrue mails a confirmation link before an email change takes
/// effect; the sandbox has no mailer and applies it at once.
pub(crate) async fn update_user(
    State(state): State<AppState>,
    signed_in: SignedIn,
    JsonBody(params): JsonBody<UserUpdateParams>,
) -> Result<Response, AuthError> {
    let user = signed_in.user;
    let email = if params.email.is_empty() {
        None
    } else {
        Some(users::validate_email(&params.email)?)
    };
    if !params.phone.is_empty() {
        return Err(AuthError::unprocessable(
            code::PHONE_PROVIDER_DISABLED,
            "Phone logins are disabled",
        ));
    }
    if let Some(new_password) = &params.password {
        password::check_strength(new_password, state.config.min_password_length)?;
    }
    if params.app_metadata.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(AuthError::forbidden(
            code::NOT_ADMIN,
            "Updating app_metadata requires admin privileges",
        ));
    }
    let email = email.filter(|e| Some(e.as_str()) != user.email.as_deref());

    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error updating user", e))?;
    if let Some(email) = &email
        && users::email_taken(&client, email, Some(user.id)).await?
    {
        return Err(AuthError::unprocessable(
            code::EMAIL_EXISTS,
            DUPLICATE_EMAIL,
        ));
    }
    let new_hash = new_password_hash(&state, params.password.as_deref(), &user).await?;

    let tx = client
        .transaction()
        .await
        .map_err(|e| AuthError::internal("Database error updating user", e))?;
    let current = users::lock_by_id(&tx, user.id).await?.ok_or_else(|| {
        AuthError::forbidden(
            code::USER_NOT_FOUND,
            "User from sub claim in JWT does not exist",
        )
    })?;
    if let Some(hash) = &new_hash {
        store_password(&tx, user.id, signed_in.session_id, hash).await?;
    }
    if let Some(data) = params.data {
        let mut metadata = current
            .user_metadata
            .as_object()
            .cloned()
            .unwrap_or_default();
        users::merge_metadata(&mut metadata, data);
        tx.execute(
            "update auth.users set raw_user_meta_data = $2, updated_at = now() where id = $1",
            &[&user.id, &Value::Object(metadata)],
        )
        .await
        .map_err(|e| AuthError::internal("Error updating user", e))?;
    }
    if let Some(email) = &email {
        set_email(&tx, user.id, email).await?;
    }
    let updated = users::find_by_id(&tx, user.id)
        .await?
        .ok_or_else(|| AuthError::internal("Error updating user", "user vanished"))?;
    tx.commit().await.map_err(|e| {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            AuthError::unprocessable(code::EMAIL_EXISTS, DUPLICATE_EMAIL)
        } else {
            AuthError::internal("Error updating user", e)
        }
    })?;
    Ok(ok_json(&updated))
}

/// The hash of a user's new password; `None` when there is none (or it is
/// empty). The user's current password is 422 `same_password`.
async fn new_password_hash(
    state: &AppState,
    new_password: Option<&str>,
    user: &users::User,
) -> Result<Option<String>, AuthError> {
    let Some(new_password) = new_password.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if password::verify(new_password.to_owned(), user.encrypted_password.clone()).await {
        return Err(AuthError::unprocessable(
            code::SAME_PASSWORD,
            "New password should be different from the old password.",
        ));
    }
    Ok(Some(
        password::hash(
            new_password.to_owned(),
            state.config.password_hash_memory_kib,
        )
        .await?,
    ))
}

/// Stores a user's new password hash and, as GoTrue's `UpdatePassword`,
/// signs out whoever knew the old password: every session but `keep`.
async fn store_password(
    tx: &impl deadpool_postgres::GenericClient,
    user_id: Uuid,
    keep: Option<Uuid>,
    hash: &str,
) -> Result<(), AuthError> {
    tx.execute(
        "update auth.users set encrypted_password = $2, updated_at = now() where id = $1",
        &[&user_id, &hash],
    )
    .await
    .map_err(|e| AuthError::internal("Error during password storage", e))?;
    tx.execute(
        "delete from auth.sessions where user_id = $1 and ($2::uuid is null or id <> $2)",
        &[&user_id, &keep],
    )
    .await
    .map_err(|e| AuthError::internal("Error during password storage", e))?;
    Ok(())
}

/// Sets a user's email and their `email` identity's address.
pub(crate) async fn set_email(
    client: &impl deadpool_postgres::GenericClient,
    user_id: Uuid,
    email: &str,
) -> Result<(), AuthError> {
    client
        .execute(
            "update auth.users set email = lower($2), updated_at = now() where id = $1",
            &[&user_id, &email],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                AuthError::unprocessable(code::EMAIL_EXISTS, DUPLICATE_EMAIL)
            } else {
                AuthError::internal("Error updating user", e)
            }
        })?;
    client
        .execute(
            "update auth.identities set identity_data = identity_data || jsonb_build_object('email', lower($2::text)), \
               updated_at = now() where user_id = $1 and provider = 'email'",
            &[&user_id, &email],
        )
        .await
        .map_err(|e| AuthError::internal("Error updating user", e))?;
    Ok(())
}

/// `POST /logout?scope=global|local|others`: 204. `global` (the default) ends
/// every session of the user, `local` the token's own, `others` all but it.
/// The access token stays cryptographically valid until `exp`, but `/user`
/// answers 403 `session_not_found` for it from now on.
pub(crate) async fn logout(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    signed_in: SignedIn,
) -> Result<Response, AuthError> {
    let scope = query.get("scope").map(String::as_str).unwrap_or("");
    if !matches!(scope, "" | "global" | "local" | "others") {
        return Err(AuthError::validation(format!(
            "Unsupported logout scope {scope:?}"
        )));
    }
    let client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Error logging out user", e))?;
    let user_id = signed_in.user.id;
    let result = match (signed_in.session_id, scope) {
        // A token without a session: GoTrue revokes the user's refresh tokens.
        (None, _) => {
            client
                .execute(
                    "update auth.refresh_tokens set revoked = true, updated_at = now() \
                     where user_id = $1 and not revoked",
                    &[&user_id],
                )
                .await
        }
        (Some(session), "local") => {
            client
                .execute("delete from auth.sessions where id = $1", &[&session])
                .await
        }
        (Some(session), "others") => {
            client
                .execute(
                    "delete from auth.sessions where user_id = $1 and id <> $2",
                    &[&user_id, &session],
                )
                .await
        }
        (Some(_), _) => {
            client
                .execute("delete from auth.sessions where user_id = $1", &[&user_id])
                .await
        }
    };
    result.map_err(|e| AuthError::internal("Error logging out user", e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
