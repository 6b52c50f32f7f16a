//! `quire-companion migrate` and `doctor` through a transaction-mode pooler,
//! as a project's pooled URL (Supavisor, port 6543) hands them one server
//! connection per transaction: no session state survives a transaction,
//! nothing prepared survives it either. The pooler is PgBouncer with
//! `pool_mode = transaction` and two server connections, so the
//! transactions of one client land on different server connections; the
//! database behind it is quire-testdb's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use quire_companion::doctor::{self, Options, checks};
use quire_companion::migrate;
use quire_testdb::TestDb;
use quire_testdb::tokio_postgres::{Client, NoTls};
use quire_testkit::Stack;

/// A PgBouncer of this test's own in transaction mode, in front of one
/// cluster. Killed when dropped.
struct Pooler {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Pooler {
    /// A pooler on 127.0.0.1 for every database of the cluster on
    /// `server_port`, trusting its clients as the cluster does.
    fn start(server_port: u16) -> Pooler {
        let dir = tempfile::Builder::new()
            .prefix("quire-pooler-")
            .tempdir()
            .unwrap()
            .keep();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // PgBouncer 1.18 prepares nothing for its clients (no
        // `max_prepared_statements`), as Supavisor in transaction mode.
        let conf = format!(
            "[databases]\n\
             * = host=127.0.0.1 port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = transaction\n\
             default_pool_size = 2\n\
             max_client_conn = 100\n\
             logfile = {dir}/pgbouncer.log\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), conf).unwrap();
        // `trust` still needs the user to be listed.
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        let child = not_root(&mut Command::new(pgbouncer()), &dir)
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer (cargo xtask setup installs it)");
        let mut pooler = Pooler { port, child, dir };
        pooler.wait_listening();
        pooler
    }

    fn wait_listening(&mut self) {
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.join("pgbouncer.log"));
                panic!("pgbouncer exited ({status}): {log:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `db`'s superuser URL, through the pooler.
    fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db.name())
    }
}

impl Drop for Pooler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pgbouncer() -> PathBuf {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| "pgbouncer".into())
}

/// Runs `cmd` as the `postgres` OS user when we are root (PgBouncer refuses
/// root).
fn not_root<'c>(cmd: &'c mut Command, dir: &Path) -> &'c mut Command {
    use std::os::unix::fs::MetadataExt as _;
    use std::os::unix::process::CommandExt as _;
    // /proc/self belongs to this process's user.
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            std::os::unix::fs::chown(entry.path(), Some(uid), Some(gid)).unwrap();
        }
        cmd.uid(uid).gid(gid);
    }
    cmd.current_dir(dir)
}

async fn migrate_cli(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_quire-companion"))
        .env_clear()
        .env("QUIRE_COMPANION_LOG", "warn")
        .env(migrate::DATABASE_URL, url)
        .arg("migrate")
        .args(args)
        .output()
        .await
        .unwrap()
}

/// stdout, after asserting the command succeeded.
fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    stdout
}

/// The history's rows: (version, name, statements), read directly.
async fn history(admin: &Client) -> Vec<(String, String, Vec<String>)> {
    admin
        .query(
            "select version, name, statements from supabase_migrations.schema_migrations \
             order by version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// A client through the pooler.
async fn connect(url: &str) -> Client {
    let (client, connection) = quire_testdb::tokio_postgres::connect(url, NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Two clients running short transactions through the pooler until the
/// returned guard drops, so that migrate's transactions land on whichever
/// of the two server connections is free.
fn churn(url: &str) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for _ in 0..2 {
        let (url, stopped) = (url.to_owned(), stopped.clone());
        tokio::spawn(async move {
            let client = connect(&url).await;
            while !*stopped.borrow() {
                if client
                    .batch_execute("begin; select 1; commit")
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    stop
}

#[tokio::test]
async fn migrate_applies_db_app_once_through_a_transaction_mode_pooler() {
    let db = TestDb::platform_only().await;
    let admin = db.admin().await;
    let pooler = Pooler::start(db.port());
    let url = pooler.url(&db);
    let _churn = churn(&url);
    let files = migrate::migrations();
    let last = files.last().unwrap().version;

    let dry = succeeded(&migrate_cli(&url, &["--dry-run"]).await);
    for m in &files {
        assert!(dry.contains(&format!("would apply  {}", m.file)), "{dry}");
    }
    assert!(dry.contains("nothing was changed"), "{dry}");

    let first = succeeded(&migrate_cli(&url, &[]).await);
    for m in &files {
        assert!(first.contains(&format!("applied  {}", m.file)), "{first}");
    }
    assert!(
        first.contains(&format!("db/app is at version {last}")),
        "{first}"
    );
    // Recorded as the direct run records it: one row per file, the file as
    // one statement.
    let expected: Vec<(String, String, Vec<String>)> = files
        .iter()
        .map(|m| {
            let statement = m.sql.trim().trim_end_matches(';').to_owned();
            (m.version.to_owned(), m.name.to_owned(), vec![statement])
        })
        .collect();
    assert_eq!(history(&admin).await, expected);

    let second = succeeded(&migrate_cli(&url, &[]).await);
    assert!(!second.contains("applied  "), "{second}");
    assert!(
        second.contains(&format!(
            "db/app is up to date on postgres@127.0.0.1:{}/{}: version {last}",
            pooler.port,
            db.name()
        )),
        "{second}"
    );
    assert_eq!(history(&admin).await, expected);

    let status = succeeded(&migrate_cli(&url, &["status"]).await);
    let lines: Vec<&str> = status.lines().collect();
    let mut listed: Vec<String> = files
        .iter()
        .map(|m| format!("applied  {}", m.file))
        .collect();
    listed.push(format!(
        "db/app on postgres@127.0.0.1:{}/{}: {} applied (version {last}), 0 pending",
        pooler.port,
        db.name(),
        files.len()
    ));
    assert_eq!(lines, listed);

    let dry = succeeded(&migrate_cli(&url, &["--dry-run"]).await);
    assert!(!dry.contains("would apply"), "{dry}");
}

#[tokio::test]
async fn doctor_checks_the_database_through_a_transaction_mode_pooler() {
    let stack = Stack::builder().with_companion().spawn().await;
    let pooler = Pooler::start(stack.db.port());
    let url = pooler.url(&stack.db);
    succeeded(&migrate_cli(&url, &[]).await);
    let mut config = stack.companion_config().clone();
    config.public_url = Some(stack.companion().url().parse().unwrap());

    let report = doctor::check(&config, Some(&url), Options::default()).await;
    assert_eq!(report.failed(), 0, "{}", report.text());
    assert_eq!(report.skipped(), 0, "{}", report.text());
    for check in [checks::DB_APP, checks::PG_TRGM, checks::REALTIME_POLICY] {
        assert!(report.line(check).is_some(), "{check}: {}", report.text());
    }
}

/// The pooler is the one migrate must live with: a statement prepared in one
/// transaction is gone in the next when another client holds its server
/// connection (what a `query` with parameters would run into).
#[tokio::test]
async fn through_the_pooler_nothing_prepared_outlives_its_transaction() {
    let db = TestDb::platform_only().await;
    let pooler = Pooler::start(db.port());
    let url = pooler.url(&db);
    let (a, b) = (connect(&url).await, connect(&url).await);
    let statement = a.prepare("select $1::int4").await.unwrap();
    // B holds the one server connection there is; A's next transaction gets
    // a new one, which never saw A's statement.
    b.batch_execute("begin; select 1").await.unwrap();
    let err = a.query_one(&statement, &[&1_i32]).await.unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_owned());
    let message = message.unwrap_or_else(|| panic!("{err:?}"));
    assert!(
        message.starts_with("prepared statement") && message.ends_with("does not exist"),
        "{message}"
    );
    b.batch_execute("commit").await.unwrap();
}
