//! `quire-companion migrate`: applies `db/app` to a project's database, and
//! records what it applied the way the Supabase CLI does, so a later
//! `supabase db push` of the same files agrees (docs/platform-contract.md §10).
//!
//! The files are embedded at build time (`build.rs`), so the binary applies
//! the schema it was built with. Each file is one version: its name is
//! `<version>_<name>.sql`, read with the CLI's pattern `^([0-9]+)_(.*)\.sql$`
//! (`00_prerequisites.sql` is version `00`, name `prerequisites`). A file
//! that is applied is one row of `supabase_migrations.schema_migrations
//! (version, name, statements)`; `supabase db push` compares versions only,
//! so the file is recorded as one statement.
//!
//! Every file runs in one transaction sent as one simple query (`BEGIN`, a
//! transaction-level advisory lock, the file, its history row, `COMMIT`):
//! nothing is prepared and no session setting is relied on, so it works
//! through a transaction-mode pooler, and two `migrate`s at once take turns:
//! a file the other recorded while this one waited is not applied again.
//! A file that fails leaves nothing of itself behind.
//!
//! Before anything is written, the database must be a Powabase project's
//! ([`check_prerequisites`]): `db/app` needs the `auth`, `storage` and
//! `realtime` schemas, the roles `anon`, `authenticated` and
//! `service_role`, and `pg_trgm` available.

use std::fmt;

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

pub mod tls;

include!(concat!(env!("OUT_DIR"), "/db_app.rs"));

/// The variable that holds the project's database URL (`migrate`, `doctor`).
pub const DATABASE_URL: &str = "QUIRE_COMPANION_DATABASE_URL";

/// The Supabase CLI's migration history table.
pub const HISTORY_TABLE: &str = "supabase_migrations.schema_migrations";

/// Serialises concurrent `migrate`s (`pg_advisory_xact_lock`): "quire db/app".
pub const LOCK_KEY: i64 = 0x7175_6972_6500_0a00;

/// The SQLSTATE a file's transaction raises, once it holds the lock, when
/// another `migrate` recorded the file while this one waited for it.
const RECORDED_MEANWHILE: &str = "QM001";

/// One file of `db/app`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The file's name, e.g. `00_prerequisites.sql`.
    pub file: &'static str,
    /// Its leading digits: the version the Supabase CLI reads (`00`).
    pub version: &'static str,
    /// The rest of its name (`prerequisites`).
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// `db/app`'s files in the order they apply. Panics if a file's name does
/// not follow `<digits>_<name>.sql` (a test keeps that from shipping).
pub fn migrations() -> Vec<Migration> {
    DB_APP
        .iter()
        .map(|(file, sql)| {
            let (version, name) = split_file_name(file)
                .unwrap_or_else(|| panic!("db/app/{file} is not named <digits>_<name>.sql"));
            Migration {
                file,
                version,
                name,
                sql,
            }
        })
        .collect()
}

/// `(version, name)` of a file named as the Supabase CLI expects
/// (`^([0-9]+)_(.*)\.sql$`), or `None`.
pub fn split_file_name(file: &str) -> Option<(&str, &str)> {
    let stem = file.strip_suffix(".sql")?;
    let (version, name) = stem.split_once('_')?;
    (!version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())).then_some((version, name))
}

/// Why `migrate` stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No database URL.
    #[error(
        "{DATABASE_URL} is not set: set it to the project's database URL, e.g. \
         postgresql://postgres:<password>@<host>:5432/postgres (a transaction-mode pooler works too)"
    )]
    NoUrl,
    /// The URL does not parse.
    #[error(
        "{DATABASE_URL} is not a PostgreSQL URL ({0}); write it as postgresql://user:password@host:port/database"
    )]
    BadUrl(String),
    /// Its `sslrootcert` cannot be used.
    #[error("{DATABASE_URL}'s {0}. Name the project's CA certificate file (PEM) there")]
    RootCert(String),
    /// The URL asks for TLS and the server offers none.
    #[error(
        "the database at {target} does not offer TLS, and {DATABASE_URL} asks for it \
         (sslmode={mode}). Check that the URL names the project's database (a Powabase or \
         Supabase database offers TLS, directly and through its pooler); only where nothing \
         else can listen between here and the database, set sslmode=disable"
    )]
    NoTls {
        /// `user@host:port/database`.
        target: String,
        /// The URL's `sslmode`.
        mode: tls::Mode,
    },
    /// The server's certificate was not accepted.
    #[error(
        "the database at {target} showed a certificate that could not be trusted ({detail}), \
         and {DATABASE_URL} asks that it be checked (sslmode={mode}{root}). Save the project's \
         CA certificate (Supabase: Database settings, SSL configuration, Download certificate) \
         and add sslrootcert=<its path> to the URL, or connect by the name the certificate is \
         for; sslmode=require encrypts without checking the certificate",
        root = if *.has_root_cert { " with sslrootcert" } else { "" }
    )]
    Certificate {
        /// `user@host:port/database`.
        target: String,
        /// The URL's `sslmode`.
        mode: tls::Mode,
        /// Whether `sslrootcert` was given.
        has_root_cert: bool,
        /// rustls's words.
        detail: String,
    },
    /// The database did not answer.
    #[error(
        "cannot connect to the database at {target}: {detail}. Check {DATABASE_URL} and that this machine may reach it"
    )]
    Connect {
        /// `user@host:port/database`, no password.
        target: String,
        /// The driver's words.
        detail: String,
    },
    /// The database lacks what `db/app` needs.
    #[error(
        "the database at {target} is not a Powabase project's: it has no {}. db/app needs the \
         project's auth, storage and realtime schemas, the roles anon, authenticated and \
         service_role, and the pg_trgm extension available; point {DATABASE_URL} at the \
         project's own database. Nothing was applied",
        missing.join(", no ")
    )]
    NotAProject {
        /// `user@host:port/database`.
        target: String,
        /// What is missing, e.g. `auth schema`.
        missing: Vec<String>,
    },
    /// A version of `db/app` is recorded under another name: the history holds
    /// another project's migrations.
    #[error(
        "{HISTORY_TABLE} records version {version} as {recorded:?}, but db/app's {version} is \
         {expected:?}: this database's migration history holds other migrations with db/app's \
         versions. Nothing was applied; resolve the history (supabase migration list) first"
    )]
    VersionTaken {
        /// The version.
        version: String,
        /// The name it is recorded with.
        recorded: String,
        /// db/app's name for it.
        expected: String,
    },
    /// A file failed; its transaction was rolled back.
    #[error("applying db/app/{file} failed, and nothing of it was applied: {detail}")]
    Apply {
        /// The file.
        file: String,
        /// The server's message, with its line in the file when known.
        detail: String,
    },
    /// Any other query failed.
    #[error("{what} failed: {detail}")]
    Query {
        /// What was being done.
        what: String,
        /// The server's message.
        detail: String,
    },
}

/// A connection to the project's database, and who it is for messages.
pub struct Database {
    client: Client,
    target: String,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Drives a connection until it ends.
async fn watch<T>(connection: tokio_postgres::Connection<tokio_postgres::Socket, T>)
where
    T: tokio_postgres::tls::TlsStream + Unpin,
{
    if let Err(err) = connection.await {
        tracing::debug!(%err, "the database connection ended");
    }
}

/// `user@host:port/database` of `url`, without its password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("postgres")
    )
}

impl Database {
    /// Connects to the database `QUIRE_COMPANION_DATABASE_URL` names.
    pub async fn from_env() -> Result<Database, MigrateError> {
        let url = std::env::var(DATABASE_URL)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .ok_or(MigrateError::NoUrl)?;
        Database::connect(url.trim()).await
    }

    /// Connects to `url` (a `postgresql://` URL or `key=value` pairs), with
    /// TLS as its `sslmode` and `sslrootcert` ask ([`tls`]).
    pub async fn connect(url: &str) -> Result<Database, MigrateError> {
        let settings = tls::Settings::parse(url).map_err(MigrateError::BadUrl)?;
        let target = describe(&settings.config);
        let refused = |e: tokio_postgres::Error| match tls::Failure::of(&e) {
            Some(tls::Failure::NotOffered) => MigrateError::NoTls {
                target: target.clone(),
                mode: settings.mode,
            },
            Some(tls::Failure::Certificate(detail)) => MigrateError::Certificate {
                target: target.clone(),
                mode: settings.mode,
                has_root_cert: settings.root_cert.is_some(),
                detail,
            },
            None => MigrateError::Connect {
                target: target.clone(),
                detail: server_message(&e, None),
            },
        };
        let client = match settings.client_config().map_err(MigrateError::RootCert)? {
            None => {
                let (client, connection) = settings.config.connect(NoTls).await.map_err(refused)?;
                tokio::spawn(watch(connection));
                client
            }
            Some(tls) => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
                let (client, connection) = settings.config.connect(tls).await.map_err(refused)?;
                tokio::spawn(watch(connection));
                client
            }
        };
        Ok(Database { client, target })
    }

    /// `user@host:port/database`, no password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Runs `sql` as one simple query and returns its rows' text columns.
    pub async fn rows(
        &self,
        what: &str,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, MigrateError> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(|e| MigrateError::Query {
                what: what.to_owned(),
                detail: server_message(&e, None),
            })?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }
}

/// Refuses a database that lacks what `db/app` needs.
pub async fn check_prerequisites(db: &Database) -> Result<(), MigrateError> {
    let missing = db
        .rows(
            "checking the project's schemas, roles and extensions",
            "select s || ' schema' from unnest(array['auth', 'storage', 'realtime']) s \
               where not exists (select 1 from pg_catalog.pg_namespace where nspname = s) \
             union all \
             select r || ' role' from unnest(array['anon', 'authenticated', 'service_role']) r \
               where not exists (select 1 from pg_catalog.pg_roles where rolname = r) \
             union all \
             select 'pg_trgm extension available to install' where not exists \
               (select 1 from pg_catalog.pg_available_extensions where name = 'pg_trgm')",
        )
        .await?
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect::<Vec<_>>();
    if missing.is_empty() {
        return Ok(());
    }
    Err(MigrateError::NotAProject {
        target: db.target.clone(),
        missing,
    })
}

/// A version recorded in the history: `(version, name)`.
pub type Recorded = (String, String);

/// The history's rows, oldest version first; none when there is no table.
pub async fn recorded(db: &Database) -> Result<Vec<Recorded>, MigrateError> {
    let exists = db
        .rows(
            "looking for the migration history",
            "select pg_catalog.to_regclass('supabase_migrations.schema_migrations') is not null",
        )
        .await?;
    if exists
        .first()
        .and_then(|r| r.first())
        .cloned()
        .flatten()
        .as_deref()
        != Some("t")
    {
        return Ok(Vec::new());
    }
    let rows = db
        .rows(
            "reading the migration history",
            "select version, coalesce(name, '') from supabase_migrations.schema_migrations \
             order by version",
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut cells = row.into_iter().map(Option::unwrap_or_default);
            (
                cells.next().unwrap_or_default(),
                cells.next().unwrap_or_default(),
            )
        })
        .collect())
}

/// `db/app` against a database's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Files recorded as applied.
    pub applied: Vec<Migration>,
    /// Files not yet applied, in the order they will be.
    pub pending: Vec<Migration>,
}

impl Plan {
    /// The version of the last applied file, if any.
    pub fn version(&self) -> Option<&'static str> {
        self.applied.last().map(|m| m.version)
    }
}

/// What would run: every file whose version is not recorded. Refuses a
/// history that names one of db/app's versions differently.
pub async fn plan(db: &Database) -> Result<Plan, MigrateError> {
    let recorded = recorded(db).await?;
    let mut plan = Plan::default();
    for migration in migrations() {
        match recorded.iter().find(|(v, _)| v == migration.version) {
            Some((_, name)) if name == migration.name => plan.applied.push(migration),
            Some((version, name)) => {
                return Err(MigrateError::VersionTaken {
                    version: version.clone(),
                    recorded: name.clone(),
                    expected: migration.name.to_owned(),
                });
            }
            None => plan.pending.push(migration),
        }
    }
    Ok(plan)
}

/// Creates the history table as the Supabase CLI does (`CreateMigrationTable`).
async fn ensure_history(db: &Database) -> Result<(), MigrateError> {
    let created = db
        .rows(
            "creating the migration history",
            &format!(
                "begin; \
             set local lock_timeout = '4s'; \
             select pg_catalog.pg_advisory_xact_lock({LOCK_KEY}); \
             create schema if not exists supabase_migrations; \
             create table if not exists supabase_migrations.schema_migrations \
               (version text not null primary key); \
             alter table supabase_migrations.schema_migrations \
               add column if not exists statements text[]; \
             alter table supabase_migrations.schema_migrations add column if not exists name text; \
             commit;"
            ),
        )
        .await
        .map(drop);
    if created.is_err() {
        let _ = db.client.simple_query("rollback").await;
    }
    created
}

/// `text` as an SQL literal, dollar-quoted with a tag it does not contain.
fn literal(text: &str) -> String {
    let mut n = 0usize;
    loop {
        let tag = format!("$quire{n}$");
        if !text.contains(&tag) {
            return format!("{tag}{text}{tag}");
        }
        n += 1;
    }
}

/// The one simple query that applies `migration` and records it.
///
/// Two `migrate`s may both have planned a file before either applied it: once
/// this one holds the lock, the history is read again (a new snapshot, so it
/// sees what the other committed), and a file recorded meanwhile ends the
/// transaction with [`RECORDED_MEANWHILE`] before any of it runs.
fn apply_query(migration: &Migration) -> String {
    let statement = migration.sql.trim().trim_end_matches(';');
    // The file's own text stands alone between the newlines, so a last line
    // that is a comment or lacks its semicolon ends where the file does.
    format!(
        "begin;\nselect pg_catalog.pg_advisory_xact_lock({LOCK_KEY});\n\
         do $quire_migrate$ begin \
           if exists (select from supabase_migrations.schema_migrations where version = {version}) \
           then raise exception 'recorded meanwhile' using errcode = '{RECORDED_MEANWHILE}'; \
           end if; end $quire_migrate$;\n{sql}\n;\n\
         insert into supabase_migrations.schema_migrations (version, name, statements) \
         values ({version}, {name}, array[{statement}]::text[]) \
         on conflict (version) do update set name = excluded.name, statements = excluded.statements;\n\
         commit;",
        sql = migration.sql,
        version = literal(migration.version),
        name = literal(migration.name),
        statement = literal(statement),
    )
}

/// What became of a pending file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// This `migrate` applied and recorded it.
    Now,
    /// Another `migrate` at the same time did, while this one waited its turn.
    Meanwhile,
}

/// Applies one file in its own transaction and records it, unless another
/// `migrate` recorded it first.
pub async fn apply(db: &Database, migration: &Migration) -> Result<Applied, MigrateError> {
    let query = apply_query(migration);
    match db.client.simple_query(&query).await {
        Ok(_) => Ok(Applied::Now),
        Err(err) => {
            // The failed transaction is still open on this connection.
            let _ = db.client.simple_query("rollback").await;
            if err
                .as_db_error()
                .is_some_and(|e| e.code().code() == RECORDED_MEANWHILE)
            {
                return Ok(Applied::Meanwhile);
            }
            Err(MigrateError::Apply {
                file: migration.file.to_owned(),
                detail: server_message(&err, Some(&query)),
            })
        }
    }
}

/// What `migrate` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply what is pending.
    Apply,
    /// Say what would be applied; change nothing.
    DryRun,
    /// List applied and pending files; change nothing.
    Status,
}

/// Checks the database, then applies (or lists) `db/app`, telling `out` each
/// step. Returns the plan as it was before anything was applied.
pub async fn run(
    db: &Database,
    mode: Mode,
    out: &mut dyn FnMut(&str),
) -> Result<Plan, MigrateError> {
    check_prerequisites(db).await?;
    let plan = plan(db).await?;
    let mut meanwhile = 0;
    match mode {
        Mode::Status => {
            for m in &plan.applied {
                out(&format!("applied  {}", m.file));
            }
            for m in &plan.pending {
                out(&format!("pending  {}", m.file));
            }
        }
        Mode::DryRun => {
            for m in &plan.pending {
                out(&format!("would apply  {}", m.file));
            }
        }
        Mode::Apply => {
            if !plan.pending.is_empty() {
                ensure_history(db).await?;
            }
            for m in &plan.pending {
                match apply(db, m).await? {
                    Applied::Now => out(&format!("applied  {}", m.file)),
                    Applied::Meanwhile => {
                        meanwhile += 1;
                        out(&format!("applied by another migrate meanwhile  {}", m.file));
                    }
                }
            }
        }
    }
    out(&summary(&plan, mode, meanwhile, db.target()));
    Ok(plan)
}

fn summary(plan: &Plan, mode: Mode, meanwhile: usize, target: &str) -> String {
    let all = migrations();
    let last = all.last().map_or("none", |m| m.version);
    let (applied, pending) = (plan.applied.len(), plan.pending.len());
    match mode {
        Mode::Apply if pending == 0 => {
            format!("db/app is up to date on {target}: version {last}, {applied} files")
        }
        Mode::Apply if meanwhile > 0 => format!(
            "db/app is at version {last} on {target}: applied {}, {meanwhile} were applied by \
             another migrate meanwhile, {applied} were already",
            pending - meanwhile
        ),
        Mode::Apply => format!(
            "db/app is at version {last} on {target}: applied {pending}, {applied} were already"
        ),
        Mode::DryRun => format!(
            "dry run on {target}: {pending} of {} files would be applied; nothing was changed",
            all.len()
        ),
        Mode::Status => format!(
            "db/app on {target}: {applied} applied (version {}), {pending} pending",
            plan.version().unwrap_or("none")
        ),
    }
}

/// `quire-companion migrate [--dry-run | status]`, printing to stdout.
pub async fn command(args: &[String]) -> anyhow::Result<()> {
    let mode = match args {
        [] => Mode::Apply,
        [flag] if flag == "--dry-run" => Mode::DryRun,
        [word] if word == "status" => Mode::Status,
        _ => anyhow::bail!("unknown arguments to migrate: {args:?} (migrate [--dry-run | status])"),
    };
    let db = Database::from_env().await?;
    run(&db, mode, &mut |line| println!("{line}")).await?;
    Ok(())
}

/// The server's message for a failed query, with its line in `sql` when the
/// server says where.
fn server_message(err: &tokio_postgres::Error, sql: Option<&str>) -> String {
    let Some(db) = err.as_db_error() else {
        return err.to_string();
    };
    let mut text = format!("{} ({})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; {detail}"));
    }
    if let (Some(sql), Some(tokio_postgres::error::ErrorPosition::Original(pos))) =
        (sql, db.position())
    {
        let upto = sql
            .char_indices()
            .nth((*pos as usize).saturating_sub(1))
            .map_or(sql.len(), |(i, _)| i);
        // The file starts on the query's third line.
        let line = sql[..upto].matches('\n').count().saturating_sub(1);
        text.push_str(&format!(" at line {line} of the file"));
    }
    if let Some(context) = db.where_() {
        text.push_str(&format!(" (in {context})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_named_as_the_supabase_cli_reads_it_and_sorts_as_its_versions() {
        let all = migrations();
        assert!(
            all.len() >= 13,
            "db/app's files are embedded: {}",
            all.len()
        );
        assert_eq!(all[0].file, "00_prerequisites.sql");
        assert_eq!((all[0].version, all[0].name), ("00", "prerequisites"));
        for pair in all.windows(2) {
            // The CLI orders versions as text: a later file's must sort after.
            assert!(
                pair[0].version < pair[1].version,
                "{} and {}",
                pair[0].file,
                pair[1].file
            );
        }
    }

    #[test]
    fn file_names_are_split_with_the_clis_pattern() {
        assert_eq!(
            split_file_name("83_per_user_limits.sql"),
            Some(("83", "per_user_limits"))
        );
        assert_eq!(
            split_file_name("20240101000000_init.sql"),
            Some(("20240101000000", "init"))
        );
        assert_eq!(split_file_name("1_.sql"), Some(("1", "")));
        for bad in [
            "prerequisites.sql",
            "_x.sql",
            "0a_x.sql",
            "00_x.txt",
            "00.sql",
        ] {
            assert_eq!(split_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn literals_never_end_inside_the_text() {
        assert_eq!(literal("a'b"), "$quire0$a'b$quire0$");
        assert_eq!(literal("x $quire0$ y"), "$quire1$x $quire0$ y$quire1$");
    }
}
