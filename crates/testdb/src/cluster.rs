//! The throwaway PostgreSQL cluster of one test process: found, initialised,
//! started, filled with the template database, and removed at exit.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::log;
use anyhow::{Context, Result, anyhow, bail};

/// Name of the database every test database is cloned from.
pub(crate) const TEMPLATE: &str = "quire_template";

/// Name of the template with `db/platform` alone (built on first use).
pub(crate) const PLATFORM_TEMPLATE: &str = "quire_platform_template";

/// Bootstrap superuser of the cluster, whatever OS user runs it.
pub(crate) const SUPERUSER: &str = "postgres";

/// A running cluster. Lives in a static for the whole test process; the
/// watchdog removes it when the process is gone.
pub(crate) struct Cluster {
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
    /// Its stdin is the only thing keeping the watchdog waiting: the kernel
    /// closes it when this process ends, however it ends.
    _watchdog: Child,
}

impl Cluster {
    /// Starts a cluster and builds the template database in it.
    pub(crate) async fn start() -> Result<Cluster> {
        let bin = pg_bin_dir()?;
        // Private: it holds the server's socket, and the server trusts it.
        let dir = tempfile::Builder::new()
            .prefix("quire-testdb-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .context("creating the cluster's temp directory")?
            .keep();
        // From here on the watchdog owns the directory's removal; if starting
        // fails below, dropping it (and so its pipe) cleans up at once.
        let prepared = prepare_dir(&dir).and_then(|runas| {
            let watchdog = spawn_watchdog(&bin, &dir, runas)?;
            Ok((runas, watchdog))
        });
        let (runas, watchdog) = match prepared {
            Ok(ok) => ok,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let port = init_and_start(&bin, &dir, runas)
            .await
            .with_context(|| format!("starting PostgreSQL from {}", bin.display()))?;
        log(&format!(
            "quire-testdb: PostgreSQL from {} on 127.0.0.1:{port}, data in {}",
            bin.display(),
            dir.display()
        ));
        let cluster = Cluster {
            port,
            dir,
            _watchdog: watchdog,
        };
        cluster
            .build_template()
            .await
            .context("building the template database")?;
        Ok(cluster)
    }

    /// Connection URL for `user` on database `db`.
    pub(crate) fn url(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Applies db/platform then db/app, each directory in file-name order,
    /// into a fresh database, then marks it a template.
    async fn build_template(&self) -> Result<()> {
        self.build(TEMPLATE, &["db/platform", "db/app"]).await
    }

    /// The template with db/platform alone: a project before Quire's schema.
    pub(crate) async fn build_platform_template(&self) -> Result<()> {
        self.build(PLATFORM_TEMPLATE, &["db/platform"]).await
    }

    async fn build(&self, name: &str, trees: &[&str]) -> Result<()> {
        let admin = crate::connect(&self.url(SUPERUSER, "postgres")).await?;
        admin
            .batch_execute(&format!("create database {name}"))
            .await?;
        drop(admin);

        let client = crate::connect(&self.url(SUPERUSER, name)).await?;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for tree in trees {
            for file in sql_files(&root.join(tree))? {
                let sql = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| anyhow!(describe_sql_error(&e, &sql)))
                    .with_context(|| format!("applying {}", file.display()))?;
                log(&format!("quire-testdb: applied {}", file.display()));
            }
        }
        client.batch_execute("analyze").await?;
        drop(client);

        let admin = crate::connect(&self.url(SUPERUSER, "postgres")).await?;
        admin
            .batch_execute(&format!("alter database {name} is_template true"))
            .await?;
        Ok(())
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with an `initdb`, or
/// `$QUIRE_PG_BIN`.
fn pg_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("QUIRE_PG_BIN") {
        let dir = PathBuf::from(dir);
        if !dir.join("initdb").exists() {
            bail!("QUIRE_PG_BIN={} has no initdb", dir.display());
        }
        return Ok(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        anyhow!(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin \
             (install postgresql, e.g. `cargo xtask setup`, or set QUIRE_PG_BIN)"
        )
    })
}

/// Hands the directory to the `postgres` OS user when we are root, and says
/// whom to run the server as.
fn prepare_dir(dir: &Path) -> Result<Option<(u32, u32)>> {
    // The directory was just created by this process, so its owner is our
    // effective uid: no libc call needed to learn whether we are root.
    if std::fs::metadata(dir)?.uid() != 0 {
        return Ok(None);
    }
    let ids = postgres_user()?;
    std::os::unix::fs::chown(dir, Some(ids.0), Some(ids.1))
        .with_context(|| format!("chown {} to the postgres user", dir.display()))?;
    Ok(Some(ids))
}

/// uid and gid of the `postgres` OS user, which runs the cluster when the
/// tests run as root (initdb and postgres refuse to run as root).
fn postgres_user() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        if !out.status.success() {
            bail!("running as root, but there is no `postgres` OS user to run PostgreSQL as");
        }
        Ok(String::from_utf8(out.stdout)?.trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

/// Starts the process that stops the cluster and deletes its directory once
/// this process is gone: it blocks reading a pipe whose only writer is us, so
/// it wakes on normal exit, panic and SIGKILL alike. It lives in its own
/// process group so that a Ctrl-C aimed at the tests does not kill it first.
fn spawn_watchdog(bin: &Path, dir: &Path, runas: Option<(u32, u32)>) -> Result<Child> {
    let script = r#"trap '' INT HUP
cat >/dev/null
"$1/pg_ctl" stop -D "$2/data" -m immediate -w >/dev/null 2>&1
rm -rf "$2""#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("quire-testdb-watchdog")
        .arg(bin)
        .arg(dir)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    as_user(&mut cmd, runas);
    cmd.spawn().context("starting the cluster watchdog")
}

fn as_user(cmd: &mut Command, runas: Option<(u32, u32)>) {
    if let Some((uid, gid)) = runas {
        std::os::unix::process::CommandExt::uid(cmd, uid);
        std::os::unix::process::CommandExt::gid(cmd, gid);
    }
}

/// Runs a PostgreSQL tool to completion, off the async runtime.
async fn run(mut cmd: Command, what: &str) -> Result<()> {
    let what = what.to_owned();
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn init_and_start(bin: &Path, dir: &Path, runas: Option<(u32, u32)>) -> Result<u16> {
    let data = dir.join("data");
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ])
        .args(["--no-sync", "--no-instructions"])
        .current_dir(dir);
    as_user(&mut initdb, runas);
    run(initdb, "initdb").await?;

    // Trust, but only from this machine's loopback and from the socket in the
    // private temp directory.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )?;
    let conf = format!(
        "\n# quire-testdb\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{}'\n\
         max_connections = 300\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n\
         jit = off\n\
         logging_collector = off\n",
        dir.display()
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))?;
    std::io::Write::write_all(&mut file, conf.as_bytes())?;

    // A free port can be taken by someone else between our probe and the
    // server's bind: try again with another.
    let log_file = dir.join("postgres.log");
    let mut last_error = None;
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut start = Command::new(bin.join("pg_ctl"));
        start
            .arg("start")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log_file)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {port}"))
            .current_dir(dir)
            .stdin(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut start, 0);
        as_user(&mut start, runas);
        match run(start, "pg_ctl start").await {
            Ok(()) => return Ok(port),
            Err(e) => {
                let mut server_log = String::new();
                if let Ok(mut f) = std::fs::File::open(&log_file) {
                    let _ = f.read_to_string(&mut server_log);
                }
                last_error = Some(e.context(format!("server log:\n{server_log}")));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow!("pg_ctl start never ran")))
}

fn sql_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

/// The server's message with the line it points at, for SQL file errors.
fn describe_sql_error(err: &tokio_postgres::Error, sql: &str) -> String {
    let Some(db) = err.as_db_error() else {
        return err.to_string();
    };
    let mut text = format!("{}: {}", db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!("\ndetail: {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("\nhint: {hint}"));
    }
    if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.position() {
        let upto = sql
            .char_indices()
            .nth((*pos as usize).saturating_sub(1))
            .map_or(sql.len(), |(i, _)| i);
        let line = sql[..upto].matches('\n').count() + 1;
        text.push_str(&format!("\nat line {line}"));
    }
    if let Some(context) = db.where_() {
        text.push_str(&format!("\nwhere: {context}"));
    }
    text
}
