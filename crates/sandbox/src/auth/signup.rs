//! `POST /signup`: email sign-up, answered with a session when addresses
//! are confirmed automatically, else with the user and a confirmation mail
//! ([`super::mail`]).

use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{AuthError, code, ok_json};
use super::extract::{JsonBody, nullable};
use super::mail::{self, Kind, RedirectQuery};
use super::sessions::{self, AuthMethod, ClientInfo};
use super::users::User;
use super::users::{self, DEFAULT_ROLE, NewEmailUser};
use super::{password, pkce};
use crate::state::AppState;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct SignupParams {
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

pub(crate) async fn signup(
    State(state): State<AppState>,
    from: ClientInfo,
    Query(RedirectQuery { redirect_to }): Query<RedirectQuery>,
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
    let confirm = state.config.confirm_email;
    if let Some(user) = users::find_by_email(&tx, &email).await? {
        if confirm {
            return existing_unconfirmed(&state, &tx, user, redirect_to.as_deref()).await;
        }
        // With autoconfirm on, GoTrue says so plainly.
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
            confirmed: !confirm,
            user_metadata: params.data.unwrap_or_default(),
            app_metadata: Map::new(),
            banned_until: None,
        },
    )
    .await?;
    if confirm {
        mail::send(&state, &tx, &user, Kind::Signup, redirect_to.as_deref()).await?;
        let user = users::find_by_id(&tx, user.id).await?.unwrap_or(user);
        tx.commit()
            .await
            .map_err(|e| AuthError::internal("Database error saving new user", e))?;
        return Ok(ok_json(&user));
    }
    let session = sessions::issue(&state, &tx, user.id, AuthMethod::Password, &from).await?;
    tx.commit()
        .await
        .map_err(|e| AuthError::internal("Database error saving new user", e))?;
    tracing::info!(user_id = %session.user.id, "user signed up");
    Ok(ok_json(&session))
}

/// Sign-up of a taken address when addresses are confirmed: an unconfirmed
/// account gets its mail again (its password unchanged); a confirmed one
/// gets a fake user with a random id and no identities, and no mail, so the
/// answer does not tell that the address has an account (GoTrue's
/// `signup.go`).
async fn existing_unconfirmed(
    state: &AppState,
    tx: &deadpool_postgres::Transaction<'_>,
    user: User,
    redirect_to: Option<&str>,
) -> Result<Response, AuthError> {
    if user.is_confirmed() {
        let mut body = serde_json::to_value(&user)
            .map_err(|e| AuthError::internal("Error encoding the user", e))?;
        if let Value::Object(fields) = &mut body {
            fields.insert("id".into(), uuid::Uuid::new_v4().to_string().into());
            fields.insert("identities".into(), Value::Array(Vec::new()));
        }
        return Ok(ok_json(&body));
    }
    mail::send(state, tx, &user, Kind::Signup, redirect_to).await?;
    Ok(ok_json(&user))
}
