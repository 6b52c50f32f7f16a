//! `storage.buckets` and `storage.objects`, read and written as the caller.
//!
//! Storage connects as `supabase_storage_admin` (the schema's owner) and runs
//! each request's statements in a transaction after
//! `set_config('role', <role>, true)` and the caller's claims, exactly as
//! Supabase Storage's `TenantConnection.setScope` does
//! (supabase/storage `src/internal/database/connection.ts`) — so the
//! project's RLS policies, not this code, decide what a caller may see and
//! do. Every value is a bound parameter; the only SQL text chosen at run time
//! is an `ORDER BY` picked from a fixed list.

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::{Pool, Transaction};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::error::StorageError;

/// Who a statement runs as: the role and claims set for the transaction.
#[derive(Clone)]
pub struct Identity {
    /// `anon`, `authenticated` or `service_role`.
    pub role: String,
    /// The raw bearer token (`request.jwt`), empty for internal identities.
    pub jwt: String,
    /// Every claim of the token (`request.jwt.claims`).
    pub claims: Map<String, Value>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("role", &self.role)
            .field("sub", &self.sub())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The service role with no token: Storage's "super user", used where
    /// Storage itself bypasses RLS (bucket limits, signed-URL downloads).
    pub fn service() -> Self {
        let mut claims = Map::new();
        claims.insert("role".into(), Value::from("service_role"));
        Identity {
            role: "service_role".into(),
            jwt: String::new(),
            claims,
        }
    }

    /// The service role acting for `owner` (a signed upload URL's upload).
    pub fn service_for(owner: Option<&str>) -> Self {
        let mut identity = Self::service();
        if let Some(owner) = owner {
            identity.claims.insert("sub".into(), Value::from(owner));
        }
        identity
    }

    /// The `sub` claim: who owns what this identity creates.
    pub fn sub(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }
}

/// The request facts Storage exposes to policies besides the claims.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub method: String,
    pub path: String,
    /// `request.headers`: the request's headers as a JSON object.
    pub headers: Value,
    /// `storage.operation`, e.g. `storage.object.upload`.
    pub operation: &'static str,
}

/// Runs as the caller: starts a transaction on `client` and sets the role
/// and the claims for it.
async fn scoped<'c>(
    client: &'c mut deadpool_postgres::Object,
    who: &Identity,
    facts: &RequestFacts,
) -> Result<Transaction<'c>, StorageError> {
    let tx = client.transaction().await?;
    set_scope(&tx, who, facts).await?;
    Ok(tx)
}

async fn set_scope(
    tx: &Transaction<'_>,
    who: &Identity,
    facts: &RequestFacts,
) -> Result<(), StorageError> {
    let claims = Value::Object(who.claims.clone()).to_string();
    let headers = facts.headers.to_string();
    tx.execute(
        "select set_config('role', $1, true), \
                set_config('request.jwt.claim.role', $1, true), \
                set_config('request.jwt', $2, true), \
                set_config('request.jwt.claim.sub', $3, true), \
                set_config('request.jwt.claims', $4, true), \
                set_config('request.headers', $5, true), \
                set_config('request.method', $6, true), \
                set_config('request.path', $7, true), \
                set_config('storage.operation', $8, true)",
        &[
            &who.role,
            &who.jwt,
            &who.sub().unwrap_or(""),
            &claims,
            &headers,
            &facts.method,
            &facts.path,
            &facts.operation,
        ],
    )
    .await?;
    Ok(())
}

async fn client(pool: &Pool) -> Result<deadpool_postgres::Object, StorageError> {
    pool.get()
        .await
        .map_err(|e| StorageError::Internal(format!("storage database pool: {e}")))
}

/// A timestamp as Storage's JSON shows it (JavaScript's `toISOString`).
pub fn iso(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn iso_opt(ts: Option<DateTime<Utc>>) -> Option<String> {
    ts.map(iso)
}

/// A `storage.buckets` row as Storage returns it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    pub id: String,
    pub name: String,
    pub owner: Option<String>,
    pub owner_id: Option<String>,
    pub public: bool,
    pub file_size_limit: Option<i64>,
    pub allowed_mime_types: Option<Vec<String>>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

const BUCKET_COLUMNS: &str = "id, name, owner, owner_id, public, file_size_limit, \
                              allowed_mime_types, created_at, updated_at";

impl Bucket {
    fn from_row(row: &Row) -> Self {
        Bucket {
            id: row.get("id"),
            name: row.get("name"),
            owner: row.get::<_, Option<Uuid>>("owner").map(|u| u.to_string()),
            owner_id: row.get("owner_id"),
            public: row.get("public"),
            file_size_limit: row.get("file_size_limit"),
            allowed_mime_types: row.get("allowed_mime_types"),
            created_at: iso_opt(row.get("created_at")),
            updated_at: iso_opt(row.get("updated_at")),
        }
    }
}

/// A `storage.objects` row as Storage returns it (its `objectSchema`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Object {
    pub name: String,
    pub bucket_id: String,
    pub owner: Option<String>,
    pub owner_id: Option<String>,
    pub version: Option<String>,
    pub id: String,
    pub updated_at: Option<String>,
    pub created_at: Option<String>,
    pub last_accessed_at: Option<String>,
    pub metadata: Option<Value>,
    pub user_metadata: Option<Value>,
}

const OBJECT_COLUMNS: &str = "id, bucket_id, name, owner, owner_id, version, created_at, \
                              updated_at, last_accessed_at, metadata, user_metadata";

impl Object {
    fn from_row(row: &Row) -> Self {
        Object {
            name: row.get("name"),
            bucket_id: row.get("bucket_id"),
            owner: row.get::<_, Option<Uuid>>("owner").map(|u| u.to_string()),
            owner_id: row.get("owner_id"),
            version: row.get("version"),
            id: row.get::<_, Uuid>("id").to_string(),
            updated_at: iso_opt(row.get("updated_at")),
            created_at: iso_opt(row.get("created_at")),
            last_accessed_at: iso_opt(row.get("last_accessed_at")),
            metadata: row.get("metadata"),
            user_metadata: row.get("user_metadata"),
        }
    }

    /// `metadata.size`, when recorded.
    pub fn size(&self) -> Option<u64> {
        self.metadata.as_ref()?.get("size")?.as_u64()
    }

    /// A string field of `metadata`.
    pub fn meta_str(&self, field: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(field)?.as_str()
    }
}

/// The values a new or replaced object row gets.
#[derive(Debug, Clone)]
pub struct NewObject<'a> {
    pub bucket: &'a str,
    pub name: &'a str,
    pub owner: Option<&'a str>,
    pub version: &'a str,
    pub metadata: Value,
    pub user_metadata: Option<Value>,
}

/// `owner` is a uuid column: Storage fills it only when `sub` is a UUID,
/// and always keeps the raw `sub` in `owner_id`.
fn owner_uuid(owner: Option<&str>) -> Option<Uuid> {
    owner.and_then(|o| Uuid::parse_str(o).ok())
}

const INSERT_OBJECT: &str = "insert into storage.objects \
     (bucket_id, name, owner, owner_id, version, metadata, user_metadata) \
     values ($1, $2, $3, $4, $5, $6, $7)";

const UPSERT_TAIL: &str = " on conflict (bucket_id, name) do update set \
     owner = excluded.owner, owner_id = excluded.owner_id, version = excluded.version, \
     metadata = excluded.metadata, user_metadata = excluded.user_metadata, \
     updated_at = now(), last_accessed_at = now()";

/// Storage's `createObject` (a plain insert) or, with `upsert`, its
/// `upsertObject` (`insert … on conflict do update … returning *`).
async fn write_object(
    tx: &Transaction<'_>,
    new: &NewObject<'_>,
    upsert: bool,
) -> Result<Option<Uuid>, StorageError> {
    let owner = owner_uuid(new.owner);
    let params: [&(dyn ToSql + Sync); 7] = [
        &new.bucket,
        &new.name,
        &owner,
        &new.owner,
        &new.version,
        &new.metadata,
        &new.user_metadata,
    ];
    if upsert {
        let sql = format!("{INSERT_OBJECT}{UPSERT_TAIL} returning id");
        let row = tx.query_one(sql.as_str(), &params).await?;
        Ok(Some(row.get(0)))
    } else {
        tx.execute(INSERT_OBJECT, &params).await?;
        Ok(None)
    }
}

/// The rows of the storage schema, through the storage service's pool.
#[derive(Clone)]
pub struct Rows {
    pool: Pool,
}

/// The sort orders `POST /object/list` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Name,
    UpdatedAt,
    CreatedAt,
    LastAccessedAt,
}

impl SortColumn {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "name" => Some(Self::Name),
            "updated_at" => Some(Self::UpdatedAt),
            "created_at" => Some(Self::CreatedAt),
            "last_accessed_at" => Some(Self::LastAccessedAt),
            _ => None,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Self::Name => "name collate \"C\"",
            Self::UpdatedAt => "updated_at",
            Self::CreatedAt => "created_at",
            Self::LastAccessedAt => "last_accessed_at",
        }
    }
}

/// A `POST /object/list` query, already validated.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Empty, or a folder path ending in `/`.
    pub prefix: String,
    pub search: String,
    pub limit: i64,
    pub offset: i64,
    pub column: SortColumn,
    pub descending: bool,
}

/// One entry of a listing: a file (`id` set) or a folder (`id: null`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListEntry {
    pub name: String,
    pub id: Option<String>,
    pub updated_at: Option<String>,
    pub created_at: Option<String>,
    pub last_accessed_at: Option<String>,
    pub metadata: Option<Value>,
}

impl Rows {
    pub fn new(pool: Pool) -> Self {
        Rows { pool }
    }

    // ----- buckets -------------------------------------------------------

    /// The bucket `id`, as `who` sees it.
    pub async fn bucket(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        id: &str,
    ) -> Result<Option<Bucket>, StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let row = tx
            .query_opt(
                &format!("select {BUCKET_COLUMNS} from storage.buckets where id = $1"),
                &[&id],
            )
            .await?;
        tx.commit().await?;
        Ok(row.as_ref().map(Bucket::from_row))
    }

    /// Every bucket `who` can see.
    pub async fn buckets(
        &self,
        who: &Identity,
        facts: &RequestFacts,
    ) -> Result<Vec<Bucket>, StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let rows = tx
            .query(
                &format!("select {BUCKET_COLUMNS} from storage.buckets order by name"),
                &[],
            )
            .await?;
        tx.commit().await?;
        Ok(rows.iter().map(Bucket::from_row).collect())
    }

    /// Creates a bucket as `who` (RLS on `storage.buckets` decides).
    pub async fn create_bucket(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        bucket: &Bucket,
    ) -> Result<(), StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let owner = owner_uuid(who.sub());
        tx.execute(
            "insert into storage.buckets (id, name, owner, owner_id, public, file_size_limit, allowed_mime_types) \
             values ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &bucket.id,
                &bucket.name,
                &owner,
                &who.sub(),
                &bucket.public,
                &bucket.file_size_limit,
                &bucket.allowed_mime_types,
            ],
        )
        .await
        .map_err(|e| match StorageError::from_db(&e) {
            StorageError::ResourceAlreadyExists => StorageError::BucketAlreadyExists,
            other => other,
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes an empty bucket as `who`. `Ok(false)` when `who` sees no such bucket.
    pub async fn delete_bucket(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        id: &str,
    ) -> Result<bool, StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let objects = tx
            .query_opt(
                "select 1 from storage.objects where bucket_id = $1 limit 1",
                &[&id],
            )
            .await?;
        if objects.is_some() {
            return Err(StorageError::BucketNotEmpty);
        }
        let deleted = tx
            .execute("delete from storage.buckets where id = $1", &[&id])
            .await
            .map_err(|e| match StorageError::from_db(&e) {
                StorageError::RelatedResourceNotFound => StorageError::BucketNotEmpty,
                other => other,
            })?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    // ----- objects -------------------------------------------------------

    /// The object `bucket/name`, as `who` sees it.
    pub async fn object(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        bucket: &str,
        name: &str,
    ) -> Result<Option<Object>, StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let row = tx
            .query_opt(
                &format!("select {OBJECT_COLUMNS} from storage.objects where bucket_id = $1 and name = $2"),
                &[&bucket, &name],
            )
            .await?;
        tx.commit().await?;
        Ok(row.as_ref().map(Object::from_row))
    }

    /// Which of `names` in `bucket` exist for `who`.
    pub async fn existing_names(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        bucket: &str,
        names: &[String],
    ) -> Result<Vec<String>, StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let rows = tx
            .query(
                "select name from storage.objects where bucket_id = $1 and name = any($2)",
                &[&bucket, &names],
            )
            .await?;
        tx.commit().await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Storage's `canUpload`: whether `who` may create (or, with `upsert`,
    /// create or replace) `bucket/name`. Tries the write and rolls it back,
    /// so the policies answer; a refusal is the write's own error (403 from
    /// RLS, 409 when the object exists and `upsert` is off).
    pub async fn check_upload(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        bucket: &str,
        name: &str,
        upsert: bool,
    ) -> Result<(), StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let probe = NewObject {
            bucket,
            name,
            owner: who.sub(),
            version: "1",
            metadata: Value::Null,
            user_metadata: None,
        };
        write_object(&tx, &probe, upsert).await?;
        tx.rollback().await?;
        Ok(())
    }

    /// Writes the row of an uploaded object and commits: Storage's
    /// `completeUpload`, which runs as its super user and always upserts.
    /// The caller's right to write was checked before the body was read
    /// ([`Rows::check_upload`]) and is not checked again, so an upload that
    /// passed its check replaces whatever was stored at the key meanwhile;
    /// only the database's own triggers can still refuse it. Returns the
    /// object's id and the version it replaced (whose bytes the caller
    /// removes once this returns).
    ///
    /// Writers of one key are serialised with an advisory lock (Storage's
    /// `waitObjectLock`), and the current row is read `for update`, so the
    /// replaced version read here is exactly the one the write replaces.
    pub async fn commit_upload(
        &self,
        facts: &RequestFacts,
        new: &NewObject<'_>,
    ) -> Result<(Uuid, Option<String>), StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, &Identity::service(), facts).await?;
        let lock_key = format!("{}/{}", new.bucket, new.name);
        tx.execute("select pg_advisory_xact_lock(hashtext($1))", &[&lock_key])
            .await?;
        let replaced: Option<String> = tx
            .query_opt(
                "select version from storage.objects where bucket_id = $1 and name = $2 for update",
                &[&new.bucket, &new.name],
            )
            .await?
            .and_then(|r| r.get(0));
        let id = write_object(&tx, new, true)
            .await?
            .ok_or_else(|| StorageError::Internal("an upsert returned no id".into()))?;
        tx.commit().await?;
        Ok((id, replaced))
    }

    /// Deletes `bucket/name` as `who`; returns its version, or `None` when
    /// `who` sees no such object or may not delete it.
    pub async fn delete_object(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        bucket: &str,
        name: &str,
    ) -> Result<Option<Option<String>>, StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let row = tx
            .query_opt(
                "delete from storage.objects where bucket_id = $1 and name = $2 returning version",
                &[&bucket, &name],
            )
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Deletes the objects of `bucket` named in `names` that `who` may
    /// delete, and returns their rows; the others are simply absent.
    pub async fn delete_objects(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        bucket: &str,
        names: &[String],
    ) -> Result<Vec<Object>, StorageError> {
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let rows = tx
            .query(
                &format!(
                    "delete from storage.objects where bucket_id = $1 and name = any($2) \
                     returning {OBJECT_COLUMNS}"
                ),
                &[&bucket, &names],
            )
            .await?;
        tx.commit().await?;
        Ok(rows.iter().map(Object::from_row).collect())
    }

    /// One level of `bucket` under `query.prefix`, as `who` sees it: the
    /// folders first, then the files — Storage's `storage.search()`.
    pub async fn list(
        &self,
        who: &Identity,
        facts: &RequestFacts,
        bucket: &str,
        query: &ListQuery,
    ) -> Result<Vec<ListEntry>, StorageError> {
        let order = if query.descending { "desc" } else { "asc" };
        let column = query.column.sql();
        // Only `order` and `column` are spliced in, both from fixed lists.
        let sql = format!(
            "with folders as ( \
                 select o.path_tokens[$1] as folder \
                 from storage.objects o \
                 where o.name ilike $2 || $3 || '%' \
                   and o.bucket_id = $4 \
                   and array_length(o.path_tokens, 1) <> $1 \
                 group by folder \
             ) \
             (select folder as name, null::uuid as id, null::timestamptz as updated_at, \
                     null::timestamptz as created_at, null::timestamptz as last_accessed_at, \
                     null::jsonb as metadata \
              from folders \
              order by folder collate \"C\" {order}) \
             union all \
             (select path_tokens[$1] as name, id, updated_at, created_at, last_accessed_at, metadata \
              from storage.objects \
              where name ilike $2 || $3 || '%' \
                and bucket_id = $4 \
                and array_length(path_tokens, 1) = $1 \
              order by {column} {order}) \
             limit $5 offset $6"
        );
        let levels: i32 = if query.prefix.is_empty() {
            1
        } else {
            query.prefix.split('/').count() as i32
        };
        let mut client = client(&self.pool).await?;
        let tx = scoped(&mut client, who, facts).await?;
        let rows = tx
            .query(
                sql.as_str(),
                &[
                    &levels,
                    &query.prefix,
                    &query.search,
                    &bucket,
                    &query.limit,
                    &query.offset,
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|row| ListEntry {
                name: row.get::<_, Option<String>>("name").unwrap_or_default(),
                id: row.get::<_, Option<Uuid>>("id").map(|u| u.to_string()),
                updated_at: iso_opt(row.get("updated_at")),
                created_at: iso_opt(row.get("created_at")),
                last_accessed_at: iso_opt(row.get("last_accessed_at")),
                metadata: row.get("metadata"),
            })
            .collect())
    }
}
