//! Private-channel authorization, run the way Realtime's
//! `Tenants.Authorization` runs it (supabase/realtime
//! `lib/realtime/tenants/authorization.ex`): on Realtime's own admin connection (`supabase_realtime_admin`), in
//! one transaction that is always rolled back, with the caller's role, claims
//! and `realtime.topic` set as transaction-local settings, so that the RLS
//! policies on `realtime.messages` decide.
//!
//! * Read (at join and on every token change): insert a probe row per
//!   extension as the admin (which bypasses RLS), switch to the caller's role,
//!   select the probe ids. A visible probe means the caller may read that
//!   extension.
//! * Write (lazily, on the first broadcast or presence track, and for REST
//!   broadcasts): switch to the caller's role and insert a row per extension
//!   in a savepoint; `insufficient_privilege` (which includes a failed RLS
//!   `WITH CHECK`) means no.
//!
//! The probe rows never commit, so the LISTEN/NOTIFY trigger on
//! `realtime.messages` never announces them.

use deadpool_postgres::Pool;
use serde_json::{Map, Value};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

/// Who is asking, about which topic.
#[derive(Debug, Clone)]
pub struct AuthorizationContext {
    /// The channel name, without `realtime:` (what `realtime.topic()` returns).
    pub topic: String,
    /// The JWT's `role` claim: the database role the checks run as.
    pub role: String,
    /// Every claim of the JWT (`request.jwt.claims`).
    pub claims: Map<String, Value>,
    /// The `x-*` headers of the WebSocket upgrade or REST request
    /// (`request.headers`), credentials removed.
    pub headers: Map<String, Value>,
}

/// Which extensions a caller may read from a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadPolicies {
    /// May receive broadcasts.
    pub broadcast: bool,
    /// May receive presence.
    pub presence: bool,
}

/// Why a check could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizationError {
    /// The database refused the check itself: the role does not exist, a
    /// policy raised, … Realtime answers these as `Unauthorized`.
    #[error("the policy check failed in the database: {0}")]
    Policy(#[source] tokio_postgres::Error),
    /// No connection to the database.
    #[error("Realtime was unable to connect to the project database: {0}")]
    Unavailable(String),
}

impl From<tokio_postgres::Error> for AuthorizationError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.as_db_error().is_some() {
            AuthorizationError::Policy(e)
        } else {
            AuthorizationError::Unavailable(e.to_string())
        }
    }
}

/// The extensions a check covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// `broadcast`.
    Broadcast,
    /// `presence`.
    Presence,
}

impl Extension {
    fn as_str(self) -> &'static str {
        match self {
            Extension::Broadcast => "broadcast",
            Extension::Presence => "presence",
        }
    }
}

const SET_CONTEXT: &str = "select set_config('role', $1, true), \
     set_config('realtime.topic', $2, true), \
     set_config('request.jwt.claims', $3, true), \
     set_config('request.jwt.claim.sub', $4, true), \
     set_config('request.jwt.claim.role', $5, true), \
     set_config('request.headers', $6, true)";

async fn set_context(
    tx: &deadpool_postgres::Transaction<'_>,
    context: &AuthorizationContext,
) -> Result<(), tokio_postgres::Error> {
    let claims = Value::Object(context.claims.clone()).to_string();
    let headers = Value::Object(context.headers.clone()).to_string();
    let sub = context
        .claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    tx.execute(
        SET_CONTEXT,
        &[
            &context.role,
            &context.topic,
            &claims,
            &sub,
            &context.role,
            &headers,
        ],
    )
    .await?;
    Ok(())
}

/// The read check run at join: which of broadcast (always) and presence (when
/// `with_presence`) the caller may read from `context.topic`.
pub async fn read_policies(
    pool: &Pool,
    context: &AuthorizationContext,
    with_presence: bool,
) -> Result<ReadPolicies, AuthorizationError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| AuthorizationError::Unavailable(e.to_string()))?;
    let tx = client.transaction().await?;

    let broadcast_id = Uuid::new_v4();
    let presence_id = Uuid::new_v4();
    tx.execute(
        "insert into realtime.messages (id, topic, extension) values ($1, $2, 'broadcast')",
        &[&broadcast_id, &context.topic],
    )
    .await?;
    if with_presence {
        tx.execute(
            "insert into realtime.messages (id, topic, extension) values ($1, $2, 'presence')",
            &[&presence_id, &context.topic],
        )
        .await?;
    }

    set_context(&tx, context).await?;
    let rows = tx
        .query(
            "select id from realtime.messages \
             where topic = $1 and ((extension = 'broadcast' and id = $2) \
                                   or (extension = 'presence' and id = $3))",
            &[&context.topic, &broadcast_id, &presence_id],
        )
        .await?;
    let visible: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    tx.rollback().await?;

    Ok(ReadPolicies {
        broadcast: visible.contains(&broadcast_id),
        presence: with_presence && visible.contains(&presence_id),
    })
}

/// The write check: may the caller insert a row of `extension` into
/// `context.topic` (that is, publish there)?
pub async fn may_write(
    pool: &Pool,
    context: &AuthorizationContext,
    extension: Extension,
) -> Result<bool, AuthorizationError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| AuthorizationError::Unavailable(e.to_string()))?;
    let mut tx = client.transaction().await?;
    set_context(&tx, context).await?;

    let savepoint = tx.savepoint("realtime_write_check").await?;
    // No RETURNING: that would need a SELECT policy as well.
    let inserted = savepoint
        .execute(
            "insert into realtime.messages (topic, extension) values ($1, $2)",
            &[&context.topic, &extension.as_str()],
        )
        .await;
    let allowed = match inserted {
        Ok(_) => true,
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => false,
        Err(e) => return Err(e.into()),
    };
    savepoint.rollback().await?;
    tx.rollback().await?;
    Ok(allowed)
}
