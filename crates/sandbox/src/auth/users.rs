//! `auth.users` and `auth.identities`: rows, queries, and the user object
//! GoTrue returns (`models.User`'s JSON, field for field).

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};
use tokio_postgres::Row;
use uuid::Uuid;

use super::error::{AuthError, code};

/// The audience every user of the project has (`GOTRUE_JWT_AUD`).
pub(crate) const AUDIENCE: &str = "authenticated";
/// The role new users get (`GOTRUE_JWT_DEFAULT_GROUP_NAME` unset).
pub(crate) const DEFAULT_ROLE: &str = "authenticated";
/// GoTrue's message for an address that is taken.
pub(crate) const DUPLICATE_EMAIL: &str =
    "A user with this email address has already been registered";

/// A timestamp serialized as Go's `time.Time` does (RFC 3339, fraction
/// without trailing zeros, `Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GoTime(pub DateTime<Utc>);

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&go_time(self.0))
    }
}

/// `time` in Go's RFC 3339 nano layout.
pub(crate) fn go_time(time: DateTime<Utc>) -> String {
    let base = time.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = time.timestamp_subsec_nanos();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let fraction = format!("{nanos:09}");
        format!("{base}.{}Z", fraction.trim_end_matches('0'))
    }
}

fn empty_if_none<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(value.as_deref().unwrap_or(""))
}

/// An identity (one way of signing in) as GoTrue returns it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Identity {
    pub(crate) identity_id: Uuid,
    /// The provider's id for the user (the user id for `email`).
    #[serde(rename = "id")]
    pub(crate) provider_id: String,
    pub(crate) user_id: Uuid,
    pub(crate) identity_data: Value,
    pub(crate) provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_sign_in_at: Option<GoTime>,
    pub(crate) created_at: GoTime,
    pub(crate) updated_at: GoTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
}

/// A user row, serialized as GoTrue's user object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct User {
    pub(crate) id: Uuid,
    pub(crate) aud: String,
    pub(crate) role: String,
    #[serde(serialize_with = "empty_if_none")]
    pub(crate) email: Option<String>,
    #[serde(skip)]
    pub(crate) encrypted_password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email_confirmed_at: Option<GoTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) invited_at: Option<GoTime>,
    #[serde(serialize_with = "empty_if_none")]
    pub(crate) phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) phone_confirmed_at: Option<GoTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) confirmation_sent_at: Option<GoTime>,
    /// `least(email_confirmed_at, phone_confirmed_at)`, kept for old clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) confirmed_at: Option<GoTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) recovery_sent_at: Option<GoTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_sign_in_at: Option<GoTime>,
    pub(crate) app_metadata: Value,
    pub(crate) user_metadata: Value,
    pub(crate) identities: Vec<Identity>,
    pub(crate) created_at: GoTime,
    pub(crate) updated_at: GoTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) banned_until: Option<GoTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deleted_at: Option<GoTime>,
    pub(crate) is_anonymous: bool,
}

impl User {
    /// `banned_until` is in the future.
    pub(crate) fn is_banned(&self) -> bool {
        self.banned_until.is_some_and(|t| t.0 > Utc::now())
    }

    /// The email address has been confirmed.
    pub(crate) fn is_confirmed(&self) -> bool {
        self.email_confirmed_at.is_some()
    }

    /// `app_metadata` as a map (empty when it is not an object).
    pub(crate) fn app_metadata_map(&self) -> Map<String, Value> {
        self.app_metadata.as_object().cloned().unwrap_or_default()
    }
}

const USER_COLUMNS: &str = "id, aud, role, email, encrypted_password, email_confirmed_at, \
    invited_at, confirmation_sent_at, recovery_sent_at, last_sign_in_at, raw_app_meta_data, \
    raw_user_meta_data, phone, phone_confirmed_at, banned_until, is_anonymous, created_at, \
    updated_at, deleted_at";

const IDENTITY_COLUMNS: &str = "id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at, email";

fn time(row: &Row, column: &str) -> Option<GoTime> {
    row.get::<_, Option<DateTime<Utc>>>(column).map(GoTime)
}

fn user_from_row(row: &Row) -> User {
    let email_confirmed_at = time(row, "email_confirmed_at");
    let phone_confirmed_at = time(row, "phone_confirmed_at");
    let confirmed_at = match (email_confirmed_at, phone_confirmed_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    User {
        id: row.get("id"),
        aud: row.get::<_, Option<String>>("aud").unwrap_or_default(),
        role: row.get::<_, Option<String>>("role").unwrap_or_default(),
        email: row.get("email"),
        encrypted_password: row.get("encrypted_password"),
        email_confirmed_at,
        invited_at: time(row, "invited_at"),
        phone: row.get("phone"),
        phone_confirmed_at,
        confirmation_sent_at: time(row, "confirmation_sent_at"),
        confirmed_at,
        recovery_sent_at: time(row, "recovery_sent_at"),
        last_sign_in_at: time(row, "last_sign_in_at"),
        app_metadata: row.get("raw_app_meta_data"),
        user_metadata: row.get("raw_user_meta_data"),
        identities: Vec::new(),
        created_at: GoTime(row.get("created_at")),
        updated_at: GoTime(row.get("updated_at")),
        banned_until: time(row, "banned_until"),
        deleted_at: time(row, "deleted_at"),
        is_anonymous: row.get("is_anonymous"),
    }
}

fn identity_from_row(row: &Row) -> Identity {
    Identity {
        identity_id: row.get("id"),
        provider_id: row.get("provider_id"),
        user_id: row.get("user_id"),
        identity_data: row.get("identity_data"),
        provider: row.get("provider"),
        last_sign_in_at: time(row, "last_sign_in_at"),
        created_at: GoTime(row.get("created_at")),
        updated_at: GoTime(row.get("updated_at")),
        email: row.get("email"),
    }
}

fn db(context: &'static str) -> impl FnOnce(tokio_postgres::Error) -> AuthError {
    move |e| AuthError::internal(context, e)
}

async fn with_identities(client: &impl GenericClient, mut user: User) -> Result<User, AuthError> {
    let rows = client
        .query(
            &format!(
                "select {IDENTITY_COLUMNS} from auth.identities where user_id = $1 order by created_at, id"
            ),
            &[&user.id],
        )
        .await
        .map_err(db("Database error loading identities"))?;
    user.identities = rows.iter().map(identity_from_row).collect();
    Ok(user)
}

/// The user with `id`, with identities.
pub(crate) async fn find_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<User>, AuthError> {
    let row = client
        .query_opt(
            &format!("select {USER_COLUMNS} from auth.users where id = $1"),
            &[&id],
        )
        .await
        .map_err(db("Database error finding user"))?;
    match row {
        Some(row) => Ok(Some(with_identities(client, user_from_row(&row)).await?)),
        None => Ok(None),
    }
}

/// The user with `id`, locked for update until the transaction ends.
pub(crate) async fn lock_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<User>, AuthError> {
    let row = client
        .query_opt(
            &format!("select {USER_COLUMNS} from auth.users where id = $1 for update"),
            &[&id],
        )
        .await
        .map_err(db("Database error finding user"))?;
    match row {
        Some(row) => Ok(Some(with_identities(client, user_from_row(&row)).await?)),
        None => Ok(None),
    }
}

/// The (non-SSO) user with `email` (any case) in `aud`, with identities.
pub(crate) async fn find_by_email(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<User>, AuthError> {
    let row = client
        .query_opt(
            &format!(
                "select {USER_COLUMNS} from auth.users \
                 where lower(email) = lower($1) and aud = $2 and not is_sso_user"
            ),
            &[&email, &AUDIENCE],
        )
        .await
        .map_err(db("Database error querying schema"))?;
    match row {
        Some(row) => Ok(Some(with_identities(client, user_from_row(&row)).await?)),
        None => Ok(None),
    }
}

/// True when another user (not `except`) has `email`.
pub(crate) async fn email_taken(
    client: &impl GenericClient,
    email: &str,
    except: Option<Uuid>,
) -> Result<bool, AuthError> {
    let row = client
        .query_one(
            "select exists (select 1 from auth.users \
             where lower(email) = lower($1) and aud = $2 and not is_sso_user \
             and ($3::uuid is null or id <> $3))",
            &[&email, &AUDIENCE, &except],
        )
        .await
        .map_err(db("Database error checking email"))?;
    Ok(row.get(0))
}

/// What a new email user is made of.
pub(crate) struct NewEmailUser<'a> {
    pub(crate) email: &'a str,
    pub(crate) password_hash: &'a str,
    pub(crate) role: &'a str,
    pub(crate) confirmed: bool,
    pub(crate) user_metadata: Map<String, Value>,
    pub(crate) app_metadata: Map<String, Value>,
    pub(crate) banned_until: Option<DateTime<Utc>>,
}

/// Inserts an email user and their `email` identity, as GoTrue's sign-up does:
/// `app_metadata` gets `provider`/`providers`, and a confirmed user's
/// `user_metadata` gets `email_verified: true` (GoTrue's `User.Confirm`).
/// A taken address is 422 `user_already_exists`.
pub(crate) async fn insert_email_user(
    client: &impl GenericClient,
    new: NewEmailUser<'_>,
) -> Result<User, AuthError> {
    let id = Uuid::new_v4();
    let mut app_metadata = Map::new();
    app_metadata.insert("provider".into(), json!("email"));
    app_metadata.insert("providers".into(), json!(["email"]));
    merge_metadata(&mut app_metadata, new.app_metadata);
    let mut user_metadata = Map::new();
    merge_metadata(&mut user_metadata, new.user_metadata);
    if new.confirmed {
        user_metadata.insert("email_verified".into(), json!(true));
    }
    let row = client
        .query_one(
            &format!(
                "insert into auth.users (instance_id, id, aud, role, email, encrypted_password, \
                   email_confirmed_at, raw_app_meta_data, raw_user_meta_data, banned_until, \
                   is_super_admin, is_anonymous, confirmation_token, recovery_token, created_at, updated_at) \
                 values ('00000000-0000-0000-0000-000000000000', $1, $2, $3, lower($4), $5, \
                   case when $6 then now() end, $7, $8, $9, false, false, '', '', now(), now()) \
                 returning {USER_COLUMNS}"
            ),
            &[
                &id,
                &AUDIENCE,
                &new.role,
                &new.email,
                &new.password_hash,
                &new.confirmed,
                &Value::Object(app_metadata),
                &Value::Object(user_metadata.clone()),
                &new.banned_until,
            ],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                AuthError::unprocessable(code::USER_ALREADY_EXISTS, "User already registered")
            } else {
                AuthError::internal("Database error saving new user", e)
            }
        })?;
    let user = user_from_row(&row);

    let mut identity_data = Map::new();
    identity_data.insert("sub".into(), json!(user.id.to_string()));
    identity_data.insert(
        "email".into(),
        json!(user.email.clone().unwrap_or_default()),
    );
    identity_data.insert("email_verified".into(), json!(false));
    identity_data.insert("phone_verified".into(), json!(false));
    for (key, value) in user_metadata {
        identity_data.entry(key).or_insert(value);
    }
    client
        .execute(
            "insert into auth.identities (id, provider_id, user_id, identity_data, provider, \
               last_sign_in_at, created_at, updated_at) \
             values ($1, $2, $3, $4, 'email', now(), now(), now())",
            &[
                &Uuid::new_v4(),
                &user.id.to_string(),
                &user.id,
                &Value::Object(identity_data),
            ],
        )
        .await
        .map_err(db("Error creating identity"))?;
    with_identities(client, user).await
}

/// Applies GoTrue's metadata update rule: keys are set, `null` removes a key.
pub(crate) fn merge_metadata(target: &mut Map<String, Value>, updates: Map<String, Value>) {
    for (key, value) in updates {
        if value.is_null() {
            target.remove(&key);
        } else {
            target.insert(key, value);
        }
    }
}

/// Records a sign-in on the user and their identities.
pub(crate) async fn touch_sign_in(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), AuthError> {
    client
        .execute(
            "update auth.users set last_sign_in_at = now() where id = $1",
            &[&user_id],
        )
        .await
        .map_err(db("Database error updating user"))?;
    client
        .execute(
            "update auth.identities set last_sign_in_at = now() where user_id = $1",
            &[&user_id],
        )
        .await
        .map_err(db("Database error updating user"))?;
    Ok(())
}

/// Validates an email address as GoTrue's `validateEmail` does and returns it
/// lower-cased.
pub(crate) fn validate_email(email: &str) -> Result<String, AuthError> {
    if email.is_empty() {
        return Err(AuthError::validation("An email address is required"));
    }
    if email.len() > 255 {
        return Err(AuthError::validation("An email address is too long"));
    }
    if !email_format_ok(email) {
        return Err(AuthError::validation(
            "Unable to validate email address: invalid format",
        ));
    }
    Ok(email.to_lowercase())
}

/// checkmail's format rule: a dot-atom-ish local part, `@`, and DNS labels.
fn email_format_ok(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".!#$%&'*+/=?^_`{|}~-".contains(c));
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn go_time_trims_the_fraction() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        assert_eq!(go_time(t), "2024-05-01T10:00:00Z");
        let t = t + chrono::Duration::microseconds(123_400);
        assert_eq!(go_time(t), "2024-05-01T10:00:00.1234Z");
    }

    #[test]
    fn emails_are_checked_like_gotrue() {
        assert_eq!(
            validate_email("Ann@Example.COM").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@-x.com",
            "a b@example.com",
            "a@exa mple.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
        assert!(validate_email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn metadata_updates_remove_nulls() {
        let mut target = json!({"a": 1, "b": 2}).as_object().unwrap().clone();
        merge_metadata(
            &mut target,
            json!({"a": null, "c": 3}).as_object().unwrap().clone(),
        );
        assert_eq!(Value::Object(target), json!({"b": 2, "c": 3}));
    }
}
