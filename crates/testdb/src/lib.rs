//! Throwaway PostgreSQL for Quire's integration tests.
//!
//! The first [`TestDb::new`] of a test process starts a private cluster from
//! the machine's PostgreSQL binaries (on a free loopback port, data in a temp
//! directory, as the `postgres` OS user when the tests run as root), applies
//! `db/platform/*.sql` then `db/app/*.sql` into a template database, and
//! arranges for the cluster and its directory to be removed when the process
//! ends, however it ends. Every `TestDb` is a fresh database cloned from that
//! template, so tests are isolated and run in parallel.
//!
//! [`TestDb::as_user`], [`TestDb::as_anon`], [`TestDb::as_service`] and
//! [`TestDb::as_claims`] run SQL the way PostgREST does for a request: logged
//! in as `authenticator`, with the role and JWT claims set for one
//! transaction, so row-level security is Postgres's own.
//!
//! Nothing is printed unless `TEST_LOG=1`.

#![warn(missing_docs)]

mod cluster;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex as SyncMutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{Mutex, OnceCell};
use tokio_postgres::error::DbError;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Connection, Error, NoTls, Row, Socket};
use uuid::Uuid;

use cluster::{Cluster, PLATFORM_TEMPLATE, SUPERUSER, TEMPLATE};

/// The tokio-postgres this crate speaks, so tests name the same `Row`,
/// `Error` and `SqlState` types without a dependency of their own.
pub use tokio_postgres;

static CLUSTER: OnceCell<Result<Cluster, String>> = OnceCell::const_new();
/// The db/platform-only template, built by the first [`TestDb::platform_only`].
static PLATFORM: OnceCell<Result<(), String>> = OnceCell::const_new();
/// Postgres refuses to clone a template twice at once.
static CLONING: Mutex<()> = Mutex::const_new(());
/// Databases whose `TestDb` was dropped; removed by the next `TestDb::new`.
static RETIRED: SyncMutex<Vec<String>> = SyncMutex::new(Vec::new());

async fn cluster() -> &'static Cluster {
    let cluster = CLUSTER
        .get_or_init(|| async { Cluster::start().await.map_err(|e| format!("{e:#}")) })
        .await;
    match cluster {
        Ok(cluster) => cluster,
        Err(e) => panic!("quire-testdb could not start PostgreSQL: {e}"),
    }
}

/// One test's own database, cloned from the template that holds
/// `db/platform` and `db/app`. Dropped databases are removed by a later
/// `TestDb::new`, so keep this alive while you use connections to it.
pub struct TestDb {
    cluster: &'static Cluster,
    name: String,
    emails: SyncMutex<HashMap<Uuid, String>>,
}

impl TestDb {
    /// A fresh database for one test. Starts the process's cluster on first
    /// use. Panics (failing the test) if PostgreSQL cannot be started or the
    /// SQL trees do not apply, with the server's own message.
    pub async fn new() -> TestDb {
        TestDb::cloned_from(TEMPLATE).await
    }

    /// A fresh database with `db/platform` alone: a Powabase project before
    /// Quire's schema is applied (tests of applying `db/app`). Builds that
    /// template on first use.
    pub async fn platform_only() -> TestDb {
        let cluster = cluster().await;
        let built = PLATFORM
            .get_or_init(|| async {
                cluster
                    .build_platform_template()
                    .await
                    .map_err(|e| format!("{e:#}"))
            })
            .await;
        if let Err(e) = built {
            panic!("quire-testdb could not build the db/platform template: {e}");
        }
        TestDb::cloned_from(PLATFORM_TEMPLATE).await
    }

    /// A fresh database with nothing of a Powabase project (PostgreSQL's own
    /// `template1`).
    pub async fn empty() -> TestDb {
        TestDb::cloned_from("template1").await
    }

    async fn cloned_from(template: &str) -> TestDb {
        let cluster = cluster().await;
        let name = format!("quire_test_{}", Uuid::new_v4().simple());
        {
            let _one_at_a_time = CLONING.lock().await;
            let admin = connect(&cluster.url(SUPERUSER, "postgres"))
                .await
                .expect("quire-testdb: connecting to the cluster");
            let retired: Vec<String> = std::mem::take(&mut *RETIRED.lock().unwrap());
            for old in retired {
                if let Err(e) = admin
                    .batch_execute(&format!("drop database if exists {old} with (force)"))
                    .await
                {
                    log(&format!("quire-testdb: could not drop {old}: {e}"));
                }
            }
            admin
                .batch_execute(&format!("create database {name} template {template}"))
                .await
                .unwrap_or_else(|e| panic!("quire-testdb: creating database {name}: {e}"));
        }
        log(&format!("quire-testdb: database {name}"));
        TestDb {
            cluster,
            name,
            emails: SyncMutex::new(HashMap::new()),
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cluster's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.cluster.port
    }

    /// The temp directory holding the cluster (data, socket, server log);
    /// removed when the test process ends.
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster.dir
    }

    /// Superuser URL of this database (`postgres://postgres@127.0.0.1:<port>/<name>`).
    pub fn url(&self) -> String {
        self.url_as(SUPERUSER)
    }

    /// URL logging in to this database as `role` (`authenticator`,
    /// `supabase_storage_admin`, …); no password, the cluster trusts loopback.
    pub fn url_as(&self, role: &str) -> String {
        self.cluster.url(role, &self.name)
    }

    /// A superuser connection to this database. Panics if it cannot connect.
    pub async fn admin(&self) -> Client {
        self.client_as(SUPERUSER).await
    }

    /// A connection logged in as `role`, without any request settings: what
    /// a platform service (Auth, Storage, Realtime, AI) has. Panics if it
    /// cannot connect.
    pub async fn client_as(&self, role: &str) -> Client {
        connect(&self.url_as(role))
            .await
            .unwrap_or_else(|e| panic!("quire-testdb: connecting as {role}: {e}"))
    }

    /// Adds a confirmed user to `auth.users`, as the sandbox's signup would,
    /// and returns its id. [`TestDb::as_user`] puts `email` in its claims.
    pub async fn create_user(&self, email: &str) -> Uuid {
        let id = Uuid::new_v4();
        let email = email.to_lowercase();
        self.admin()
            .await
            .execute(
                "insert into auth.users (id, aud, role, email, email_confirmed_at, \
                   raw_app_meta_data, raw_user_meta_data) \
                 values ($1, 'authenticated', 'authenticated', $2, now(), \
                   '{\"provider\": \"email\", \"providers\": [\"email\"]}', '{}')",
                &[&id, &email],
            )
            .await
            .unwrap_or_else(|e| panic!("quire-testdb: creating user {email}: {e}"));
        self.emails.lock().unwrap().insert(id, email);
        id
    }

    /// Requests as the signed-in user `uid`: role `authenticated` with the
    /// claims of a GoTrue access token valid for an hour.
    pub fn as_user(&self, uid: Uuid) -> Caller {
        let now = unix_now();
        let email = self.emails.lock().unwrap().get(&uid).cloned();
        let claims = json!({
            "sub": uid,
            "role": "authenticated",
            "aud": "authenticated",
            "email": email.unwrap_or_default(),
            "phone": "",
            "iat": now,
            "exp": now + 3600,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": {},
            "is_anonymous": false,
        });
        self.as_claims("authenticated", claims)
    }

    /// Requests with the anon key: role `anon`, claims `{"role": "anon"}`.
    pub fn as_anon(&self) -> Caller {
        self.as_claims("anon", json!({"role": "anon"}))
    }

    /// Requests with the service-role key: role `service_role` (bypasses RLS).
    pub fn as_service(&self) -> Caller {
        self.as_claims("service_role", json!({"role": "service_role"}))
    }

    /// Requests with any role and claims, e.g. a token whose `sub` or `role`
    /// was tampered with. `role` must be one `authenticator` may SET ROLE to.
    pub fn as_claims(&self, role: &str, claims: Value) -> Caller {
        Caller {
            url: self.url_as("authenticator"),
            realtime_url: self.url_as("supabase_realtime_admin"),
            login: "authenticator".to_owned(),
            on_connect: None,
            role: role.to_owned(),
            claims,
            client: Mutex::new(None),
            notices: Arc::default(),
            port: self.cluster.port,
            db: self.name.clone(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut retired) = RETIRED.lock() {
            retired.push(std::mem::take(&mut self.name));
        }
    }
}

/// An identity making requests the way PostgREST does: each statement runs
/// in its own transaction that first sets `search_path`, `role` and
/// `request.jwt.claims` locally, and commits (or rolls back and returns the
/// error, whose `code()` is the SQLSTATE). One connection per `Caller`,
/// opened on first use; statements on one `Caller` run one after another.
pub struct Caller {
    url: String,
    realtime_url: String,
    login: String,
    on_connect: Option<String>,
    role: String,
    claims: Value,
    client: Mutex<Option<Client>>,
    notices: Arc<SyncMutex<Vec<DbError>>>,
    port: u16,
    db: String,
}

enum Op {
    Query,
    QueryOne,
    QueryOpt,
    Execute,
}

enum Outcome {
    Rows(Vec<Row>),
    Row(Row),
    MaybeRow(Option<Row>),
    Count(u64),
}

impl Caller {
    /// Logs in as `role` instead of `authenticator` (for instance the
    /// superuser, to load `auto_explain`); requests still run as this
    /// caller's role and claims.
    pub fn login(mut self, role: &str) -> Caller {
        self.url = format!("postgres://{role}@127.0.0.1:{}/{}", self.port, self.db);
        self.login = role.to_owned();
        self
    }

    /// SQL run once, as the login role, right after the connection opens.
    pub fn on_connect(mut self, sql: &str) -> Caller {
        self.on_connect = Some(sql.to_owned());
        self
    }

    /// The database role requests run as.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The JWT claims requests carry.
    pub fn claims(&self) -> &Value {
        &self.claims
    }

    /// Runs one statement as a request and returns its rows.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        match self.request(Op::Query, sql, params).await? {
            Outcome::Rows(rows) => Ok(rows),
            _ => unreachable!(),
        }
    }

    /// Runs one statement that must return exactly one row.
    pub async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        match self.request(Op::QueryOne, sql, params).await? {
            Outcome::Row(row) => Ok(row),
            _ => unreachable!(),
        }
    }

    /// Runs one statement that returns at most one row.
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        match self.request(Op::QueryOpt, sql, params).await? {
            Outcome::MaybeRow(row) => Ok(row),
            _ => unreachable!(),
        }
    }

    /// Runs one statement and returns the number of rows it changed.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        match self.request(Op::Execute, sql, params).await? {
            Outcome::Count(n) => Ok(n),
            _ => unreachable!(),
        }
    }

    /// Notices and warnings the server sent since the last call (for
    /// example `realtime.send`'s swallowed errors), oldest first.
    pub fn take_notices(&self) -> Vec<DbError> {
        std::mem::take(&mut *self.notices.lock().unwrap())
    }

    /// Whether this caller may join the private Realtime channel `topic`
    /// (without the `realtime:` prefix), checked as Supabase Realtime does:
    /// as `supabase_realtime_admin`, insert a probe broadcast row, set role,
    /// claims and `realtime.topic`, select the row back under RLS, roll back.
    pub async fn can_join(&self, topic: &str) -> Result<bool, Error> {
        let client = connect(&self.realtime_url).await?;
        client.batch_execute("begin").await?;
        let seen = async {
            let probe: Uuid = client
                .query_one(
                    "insert into realtime.messages (topic, extension) values ($1, 'broadcast') \
                     returning id",
                    &[&topic],
                )
                .await?
                .get(0);
            let sub = self.claims.get("sub").and_then(Value::as_str).unwrap_or("");
            client
                .execute(
                    "select set_config('role', $1, true), set_config('realtime.topic', $2, true), \
                       set_config('request.jwt.claims', $3, true), \
                       set_config('request.jwt.claim.sub', $4, true), \
                       set_config('request.jwt.claim.role', $1, true)",
                    &[&self.role, &topic, &self.claims.to_string(), &sub],
                )
                .await?;
            client
                .query_opt("select id from realtime.messages where id = $1", &[&probe])
                .await
        }
        .await;
        let _ = client.batch_execute("rollback").await;
        Ok(seen?.is_some())
    }

    async fn request(
        &self,
        op: Op,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Outcome, Error> {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
            tokio::spawn(drive(connection, Some(self.notices.clone())));
            if let Some(setup) = &self.on_connect {
                client.batch_execute(setup).await?;
            }
            log(&format!(
                "quire-testdb: {} connected as {}",
                self.role, self.login
            ));
            *slot = Some(client);
        }
        let client = slot.as_ref().expect("connected above");

        client.batch_execute("begin").await?;
        let outcome = async {
            client
                .execute(
                    "select set_config('search_path', 'public, extensions', true), \
                       set_config('role', $1, true), \
                       set_config('request.jwt.claims', $2, true)",
                    &[&self.role, &self.claims.to_string()],
                )
                .await?;
            Ok(match op {
                Op::Query => Outcome::Rows(client.query(sql, params).await?),
                Op::QueryOne => Outcome::Row(client.query_one(sql, params).await?),
                Op::QueryOpt => Outcome::MaybeRow(client.query_opt(sql, params).await?),
                Op::Execute => Outcome::Count(client.execute(sql, params).await?),
            })
        }
        .await;
        match outcome {
            Ok(outcome) => {
                client.batch_execute("commit").await?;
                Ok(outcome)
            }
            Err(e) => {
                let _ = client.batch_execute("rollback").await;
                Err(e)
            }
        }
    }
}

/// Connects without TLS and drives the connection on the current runtime.
async fn connect(url: &str) -> Result<Client, Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(drive(connection, None));
    Ok(client)
}

/// Runs a connection until it closes, keeping its notices when asked to.
async fn drive<T>(mut connection: Connection<Socket, T>, keep: Option<Arc<SyncMutex<Vec<DbError>>>>)
where
    T: tokio_postgres::tls::TlsStream + Unpin,
{
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notice(notice))) => {
                log(&format!(
                    "quire-testdb: {}: {}",
                    notice.severity(),
                    notice.message()
                ));
                if let Some(keep) = &keep {
                    keep.lock().unwrap().push(notice);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                log(&format!("quire-testdb: connection error: {e}"));
                break;
            }
            None => break,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Prints when `TEST_LOG` is set (to anything but `0`).
fn log(message: &str) {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    let enabled =
        *ENABLED.get_or_init(|| std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0"));
    if enabled {
        eprintln!("{message}");
    }
}
