//! `/admin/users` (service role only): list, create, get, update, delete.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::error::{AuthError, code, ok_json};
use super::extract::{Admin, JsonBody, nullable};
use super::password;
use super::user::set_email;
use super::users::{self, AUDIENCE, DEFAULT_ROLE, DUPLICATE_EMAIL, NewEmailUser, User};
use crate::state::AppState;

const DEFAULT_PER_PAGE: i64 = 50;

/// GoTrue's `AdminUserParams` (the fields the sandbox supports).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct AdminUserParams {
    #[serde(deserialize_with = "nullable")]
    role: String,
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    password: Option<String>,
    #[serde(deserialize_with = "nullable")]
    email_confirm: bool,
    user_metadata: Option<Map<String, Value>>,
    app_metadata: Option<Map<String, Value>>,
    #[serde(deserialize_with = "nullable")]
    ban_duration: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct AdminDeleteParams {
    #[serde(deserialize_with = "nullable")]
    should_soft_delete: bool,
}

fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> AuthError {
    move |e| AuthError::internal(context, e)
}

/// `GET /admin/users?page=&per_page=&filter=`: `{"users":[…],"aud":"authenticated"}`
/// newest first, with `X-Total-Count` and a `Link` header.
pub(crate) async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AuthError> {
    let number = |name: &str, default: i64| -> Result<i64, AuthError> {
        match query.get(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                AuthError::validation(format!("Bad Pagination Parameters: invalid {name} {v:?}"))
            }),
        }
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", DEFAULT_PER_PAGE)?.min(1000);
    let filter = query.get("filter").cloned().unwrap_or_default();
    let pattern = format!(
        "%{}%",
        filter
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );

    let client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error finding users", e))?;
    let total: i64 = client
        .query_one(
            "select count(*) from auth.users where aud = $1 and \
             ($2 = '' or email ilike $3 or raw_user_meta_data ->> 'full_name' ilike $3)",
            &[&AUDIENCE, &filter, &pattern],
        )
        .await
        .map_err(db("Database error finding users"))?
        .get(0);
    let ids: Vec<Uuid> = client
        .query(
            "select id from auth.users where aud = $1 and \
             ($2 = '' or email ilike $3 or raw_user_meta_data ->> 'full_name' ilike $3) \
             order by created_at desc, id limit $4 offset $5",
            &[
                &AUDIENCE,
                &filter,
                &pattern,
                &per_page,
                &((page - 1) * per_page),
            ],
        )
        .await
        .map_err(db("Database error finding users"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(user) = users::find_by_id(&client, id).await? {
            found.push(user);
        }
    }

    let mut response = ok_json(&json!({"users": found, "aud": AUDIENCE}));
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(total));
    let last = ((total + per_page - 1) / per_page).max(1);
    let base = format!("{}/auth/v1/admin/users", state.api_base());
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "<{base}?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "<{base}?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert(header::LINK, value);
    }
    Ok(response)
}

/// `POST /admin/users`: creates an email user (`email_confirm` confirms it at
/// once; without `password` it gets an unusable random one).
pub(crate) async fn create_user(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(params): JsonBody<AdminUserParams>,
) -> Result<Response, AuthError> {
    if params.email.is_empty() && params.phone.is_empty() {
        return Err(AuthError::validation(
            "Cannot create a user without either an email or phone",
        ));
    }
    if !params.phone.is_empty() {
        return Err(AuthError::unprocessable(
            code::PHONE_PROVIDER_DISABLED,
            "Phone signups are disabled",
        ));
    }
    let email = users::validate_email(&params.email)?;
    let banned_until = ban_until(&params.ban_duration)?;
    let password_text = match params.password.filter(|p| !p.is_empty()) {
        Some(p) => {
            password::check_strength(&p, state.config.min_password_length)?;
            p
        }
        None => {
            let mut bytes = [0u8; 48];
            getrandom::fill(&mut bytes)
                .map_err(|e| AuthError::internal("Error generating password", e))?;
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
    };
    let hash = password::hash(password_text, state.config.password_hash_memory_kib).await?;

    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error creating new user", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(db("Database error creating new user"))?;
    if users::email_taken(&tx, &email, None).await? {
        return Err(AuthError::unprocessable(
            code::EMAIL_EXISTS,
            DUPLICATE_EMAIL,
        ));
    }
    let user = users::insert_email_user(
        &tx,
        NewEmailUser {
            email: &email,
            password_hash: &hash,
            role: if params.role.is_empty() {
                DEFAULT_ROLE
            } else {
                &params.role
            },
            confirmed: params.email_confirm,
            user_metadata: params.user_metadata.unwrap_or_default(),
            app_metadata: params.app_metadata.unwrap_or_default(),
            banned_until: banned_until.flatten(),
        },
    )
    .await
    .map_err(|e| match e.code() {
        code::USER_ALREADY_EXISTS => AuthError::unprocessable(code::EMAIL_EXISTS, DUPLICATE_EMAIL),
        _ => e,
    })?;
    tx.commit()
        .await
        .map_err(db("Database error creating new user"))?;
    Ok(ok_json(&user))
}

/// `GET /admin/users/{id}`.
pub(crate) async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Response, AuthError> {
    let client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error loading user", e))?;
    let user = load(&client, &id).await?;
    Ok(ok_json(&user))
}

/// `PUT /admin/users/{id}`: role, email, password (which signs the user out
/// everywhere, as GoTrue's), `email_confirm`, metadata (merged, `null`
/// removes), `ban_duration` (a Go duration or `none`).
pub(crate) async fn update_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    JsonBody(params): JsonBody<AdminUserParams>,
) -> Result<Response, AuthError> {
    let checked = CheckedUpdate::check(&state, &params).await?;
    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Error updating user", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(db("Error updating user"))?;
    let user = load(&tx, &id).await?;
    let user = users::lock_by_id(&tx, user.id)
        .await?
        .ok_or_else(|| AuthError::not_found(code::USER_NOT_FOUND, "User not found"))?;

    update_account(&tx, &user, &params, checked.email, checked.new_hash).await?;
    update_metadata(&tx, &user, params.app_metadata, params.user_metadata).await?;
    if let Some(until) = checked.banned_until {
        tx.execute(
            "update auth.users set banned_until = $2, updated_at = now() where id = $1",
            &[&user.id, &until],
        )
        .await
        .map_err(db("Error updating user"))?;
    }
    let updated = users::find_by_id(&tx, user.id)
        .await?
        .ok_or_else(|| AuthError::not_found(code::USER_NOT_FOUND, "User not found"))?;
    tx.commit().await.map_err(db("Error updating user"))?;
    Ok(ok_json(&updated))
}

/// An admin update's fields checked before the database is touched: the new
/// email (validated), the ban (parsed) and the new password (hashed).
struct CheckedUpdate {
    email: Option<String>,
    banned_until: Option<Option<DateTime<Utc>>>,
    new_hash: Option<String>,
}

impl CheckedUpdate {
    async fn check(state: &AppState, params: &AdminUserParams) -> Result<Self, AuthError> {
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
        let banned_until = ban_until(&params.ban_duration)?;
        let new_hash = match &params.password {
            Some(p) => {
                password::check_strength(p, state.config.min_password_length)?;
                Some(password::hash(p.clone(), state.config.password_hash_memory_kib).await?)
            }
            None => None,
        };
        Ok(Self {
            email,
            banned_until,
            new_hash,
        })
    }
}

/// The role, email, email confirmation and password of an admin update, in
/// that order; a new password signs the user out everywhere.
async fn update_account(
    tx: &impl deadpool_postgres::GenericClient,
    user: &User,
    params: &AdminUserParams,
    email: Option<String>,
    new_hash: Option<String>,
) -> Result<(), AuthError> {
    if !params.role.is_empty() {
        tx.execute(
            "update auth.users set role = $2, updated_at = now() where id = $1",
            &[&user.id, &params.role],
        )
        .await
        .map_err(db("Error updating user"))?;
    }
    if let Some(email) = email.filter(|e| Some(e.as_str()) != user.email.as_deref()) {
        if users::email_taken(tx, &email, Some(user.id)).await? {
            return Err(AuthError::unprocessable(
                code::EMAIL_EXISTS,
                DUPLICATE_EMAIL,
            ));
        }
        set_email(tx, user.id, &email).await?;
    }
    if params.email_confirm && !user.is_confirmed() {
        let mut metadata = user.user_metadata.as_object().cloned().unwrap_or_default();
        metadata.insert("email_verified".into(), json!(true));
        tx.execute(
            "update auth.users set email_confirmed_at = now(), raw_user_meta_data = $2, \
               updated_at = now() where id = $1",
            &[&user.id, &Value::Object(metadata)],
        )
        .await
        .map_err(db("Error updating user"))?;
    }
    if let Some(hash) = &new_hash {
        tx.execute(
            "update auth.users set encrypted_password = $2, updated_at = now() where id = $1",
            &[&user.id, hash],
        )
        .await
        .map_err(db("Error updating user"))?;
        tx.execute("delete from auth.sessions where user_id = $1", &[&user.id])
            .await
            .map_err(db("Error updating user"))?;
    }
    Ok(())
}

/// Merges an admin update's `app_metadata` and `user_metadata` into the
/// user's (`null` removes a key). The user metadata is re-read: confirming
/// the email may have just set its `email_verified`.
async fn update_metadata(
    tx: &impl deadpool_postgres::GenericClient,
    user: &User,
    app_metadata: Option<Map<String, Value>>,
    user_metadata: Option<Map<String, Value>>,
) -> Result<(), AuthError> {
    if let Some(updates) = app_metadata {
        let mut metadata = user.app_metadata_map();
        users::merge_metadata(&mut metadata, updates);
        tx.execute(
            "update auth.users set raw_app_meta_data = $2, updated_at = now() where id = $1",
            &[&user.id, &Value::Object(metadata)],
        )
        .await
        .map_err(db("Error updating user"))?;
    }
    if let Some(updates) = user_metadata {
        let current = users::find_by_id(tx, user.id)
            .await?
            .ok_or_else(|| AuthError::not_found(code::USER_NOT_FOUND, "User not found"))?;
        let mut metadata = current
            .user_metadata
            .as_object()
            .cloned()
            .unwrap_or_default();
        users::merge_metadata(&mut metadata, updates);
        tx.execute(
            "update auth.users set raw_user_meta_data = $2, updated_at = now() where id = $1",
            &[&user.id, &Value::Object(metadata)],
        )
        .await
        .map_err(db("Error updating user"))?;
    }
    Ok(())
}

/// `DELETE /admin/users/{id}` (body optionally `{"should_soft_delete":true}`):
/// `{}`. A hard delete removes the user with their sessions, tokens and
/// identities; a soft delete keeps an anonymized row with `deleted_at`.
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, AuthError> {
    let params: AdminDeleteParams = if body.is_empty() {
        AdminDeleteParams::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            AuthError::bad_request(
                code::BAD_JSON,
                format!("Could not parse request body as JSON: {e}"),
            )
        })?
    };
    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error deleting user", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(db("Database error deleting user"))?;
    let user = load(&tx, &id).await?;
    if params.should_soft_delete {
        if user.deleted_at.is_none() {
            tx.execute(
                "update auth.users set email = null, phone = null, encrypted_password = '', \
                   raw_user_meta_data = '{}', raw_app_meta_data = '{}', deleted_at = now(), \
                   updated_at = now() where id = $1",
                &[&user.id],
            )
            .await
            .map_err(db("Error soft deleting user"))?;
            tx.execute(
                "delete from auth.identities where user_id = $1",
                &[&user.id],
            )
            .await
            .map_err(db("Error soft deleting user identities"))?;
            tx.execute("delete from auth.sessions where user_id = $1", &[&user.id])
                .await
                .map_err(db("Error deleting user's sessions"))?;
        }
    } else {
        tx.execute("delete from auth.users where id = $1", &[&user.id])
            .await
            .map_err(db("Database error deleting user"))?;
    }
    tx.commit()
        .await
        .map_err(db("Database error deleting user"))?;
    Ok(ok_json(&json!({})))
}

/// GoTrue's `loadUser`: 404 `validation_failed` for a malformed id, 404
/// `user_not_found` for an unknown one.
async fn load(client: &impl deadpool_postgres::GenericClient, id: &str) -> Result<User, AuthError> {
    let id = Uuid::parse_str(id)
        .map_err(|_| AuthError::not_found(code::VALIDATION_FAILED, "user_id must be an UUID"))?;
    users::find_by_id(client, id)
        .await?
        .ok_or_else(|| AuthError::not_found(code::USER_NOT_FOUND, "User not found"))
}

/// `ban_duration`: empty (no change), `none` (lift the ban) or a Go duration.
fn ban_until(duration: &str) -> Result<Option<Option<DateTime<Utc>>>, AuthError> {
    match duration {
        "" => Ok(None),
        "none" => Ok(Some(None)),
        text => {
            let length = parse_go_duration(text).ok_or_else(|| {
                AuthError::validation(format!(
                    "invalid format for ban duration: time: invalid duration {text:?}"
                ))
            })?;
            Ok(Some(Some(Utc::now() + length)))
        }
    }
}

/// Parses Go's `time.ParseDuration` syntax (`90m`, `1h30m`, `1.5h`, `300ms`).
fn parse_go_duration(text: &str) -> Option<chrono::Duration> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += value * nanos_per_unit;
    }
    if !total_nanos.is_finite() || total_nanos > 9.2e18 {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    let nanos = total_nanos as i64;
    Some(chrono::Duration::nanoseconds(if negative {
        -nanos
    } else {
        nanos
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("24h"), Some(chrono::Duration::hours(24)));
        assert_eq!(
            parse_go_duration("1h30m"),
            Some(chrono::Duration::minutes(90))
        );
        assert_eq!(
            parse_go_duration("1.5h"),
            Some(chrono::Duration::minutes(90))
        );
        assert_eq!(
            parse_go_duration("300ms"),
            Some(chrono::Duration::milliseconds(300))
        );
        assert_eq!(parse_go_duration("0"), Some(chrono::Duration::zero()));
        for bad in ["", "h", "10", "10x", "1h-2m"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }
}
