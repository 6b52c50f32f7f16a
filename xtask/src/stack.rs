//! `cargo xtask stack up | down | status`: the local dev stack.
//!
//! A private PostgreSQL cluster on 127.0.0.1:54322 with its data under `.quire/pg`, run as the
//! `postgres` user when xtask runs as root. `up` applies `db/platform` (each file once per
//! content), then `db/app` with `quire-companion migrate` as a deployer would (recorded in
//! `supabase_migrations.schema_migrations` as the Supabase CLI does), sets the login roles'
//! passwords, and writes `.quire/stack.json`. Fields of services that do not run yet are left out
//! of that file, never faked. The sandbox answers with the model `QUIRE_SANDBOX_LLM_URL`,
//! `_API_KEY` and `_MODEL` choose, handed to it alone and said at `up` (README.md, "Your own
//! model"); the key is in neither that file nor any output.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::services::{self, COMPANION, SANDBOX};
use crate::util::{self, Cmd, cmd};

const PG_HOST: &str = "127.0.0.1";

/// PostgreSQL's port: 54322 (the Supabase CLI's database port), or
/// `QUIRE_PG_PORT` — the three ports can be moved to run beside a Supabase
/// CLI project or another checkout's stack.
fn pg_port() -> u16 {
    port("QUIRE_PG_PORT", 54322)
}

/// The sandbox's address: the port the Supabase CLI's gateway uses, or
/// `QUIRE_SANDBOX_PORT`.
fn sandbox_addr() -> String {
    format!("127.0.0.1:{}", port("QUIRE_SANDBOX_PORT", 54321))
}

/// The companion's address (ARCHITECTURE.md, "Local ports, keys, files"), or
/// `QUIRE_COMPANION_PORT`.
fn companion_addr() -> String {
    format!("127.0.0.1:{}", port("QUIRE_COMPANION_PORT", 54380))
}

fn port(var: &str, default: u16) -> u16 {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v} is not a port number")),
        _ => default,
    }
}
const SUPERUSER: &str = "postgres";
/// Login roles of db/platform whose passwords the stack sets (the services connect as them).
const LOGIN_ROLES: &[&str] = &[
    "authenticator",
    "supabase_auth_admin",
    "supabase_storage_admin",
    "supabase_realtime_admin",
    "powabase_ai_admin",
];
/// Random secrets of the stack that are not database passwords.
const OTHER_SECRETS: &[&str] = &["companion_tool_secret"];

/// What `stack up` brought up; written to `.quire/stack.json`.
pub struct Stack {
    fields: Map<String, Value>,
    password: String,
    /// Which model answers ([`Model::describe`]; never the key).
    model: String,
}

impl Stack {
    /// A string field of `.quire/stack.json` (empty when absent).
    pub fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Which model the sandbox answers with, for printing.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The database URL with the password masked, for printing.
    pub fn db_url_redacted(&self) -> String {
        self.fields["db_url"]
            .as_str()
            .unwrap_or_default()
            .replace(&self.password, "***")
    }
}

struct Paths {
    dir: PathBuf,
    pg_data: PathBuf,
    pg_log: PathBuf,
    secrets: PathBuf,
    stack_json: PathBuf,
}

fn paths() -> Paths {
    let dir = util::repo_root().join(".quire");
    Paths {
        pg_data: dir.join("pg"),
        pg_log: dir.join("postgres.log"),
        secrets: dir.join("secrets.json"),
        stack_json: dir.join("stack.json"),
        dir,
    }
}

pub fn up() -> Result<Stack> {
    let pg_port = pg_port();
    let p = paths();
    std::fs::create_dir_all(&p.dir).context("creating .quire/")?;
    let secrets = secrets(&p)?;
    let password = secrets["postgres"].as_str().unwrap_or_default().to_owned();
    let pg = Postgres::find()?;

    if !p.pg_data.join("PG_VERSION").is_file() {
        util::step("stack: creating the PostgreSQL cluster in .quire/pg");
        pg.init(&p, &password)?;
    }
    if pg.running(&p) {
        util::step("stack: PostgreSQL is already running");
    } else {
        if TcpStream::connect((PG_HOST, pg_port)).is_ok() {
            bail!(
                "port {pg_port} on {PG_HOST} is taken by another program; stop it (or the other \
                 Quire checkout's stack) and run `cargo xtask stack up` again"
            );
        }
        util::step(&format!(
            "stack: starting PostgreSQL on {PG_HOST}:{pg_port}"
        ));
        pg.start(&p)?;
    }

    let db_url = format!("postgresql://{SUPERUSER}:{password}@{PG_HOST}:{pg_port}/postgres");
    migrate(&password)?;
    set_role_passwords(&password, &secrets)?;

    let mut fields = Map::new();
    let model = sandbox(&p, &secrets, &mut fields)?;
    fields.insert("db_url".into(), json!(db_url));
    companion(&p, &secrets, &mut fields)?;
    demo_user(&mut fields)?;
    let stack = Stack {
        fields,
        password,
        model,
    };
    write_private(&p.stack_json, &serde_json::to_vec_pretty(&stack.fields)?)?;
    util::step("stack: up (described in .quire/stack.json)");
    Ok(stack)
}

pub fn down() -> Result<()> {
    let p = paths();
    if crate::demo::stop()? {
        util::step("stack: stopped the demo's windows");
    }
    if COMPANION.stop(&p.dir)? {
        util::step("stack: stopped the companion");
    }
    if SANDBOX.stop(&p.dir)? {
        util::step("stack: stopped the sandbox");
    }
    if !p.pg_data.join("PG_VERSION").is_file() {
        println!("stack: nothing to stop (no cluster in .quire/pg)");
        return Ok(());
    }
    let pg = Postgres::find()?;
    if pg.running(&p) {
        util::step("stack: stopping PostgreSQL");
        pg.as_owner(&pg.bin("pg_ctl"))
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(&p.pg_data)
            .run()?;
    } else {
        println!("stack: PostgreSQL is not running");
    }
    let _ = std::fs::remove_file(&p.stack_json);
    Ok(())
}

pub fn status() -> Result<()> {
    let pg_port = pg_port();
    let sandbox_addr = sandbox_addr();
    let companion_addr = companion_addr();
    let p = paths();
    if !p.pg_data.join("PG_VERSION").is_file() {
        println!("postgres   not created (run `cargo xtask stack up`)");
        return Ok(());
    }
    let pg = Postgres::find()?;
    if pg.running(&p) {
        println!("postgres   running on {PG_HOST}:{pg_port}, data in .quire/pg");
    } else {
        println!("postgres   stopped (data in .quire/pg)");
    }
    match SANDBOX.running_pid(&p.dir) {
        Some(pid) => {
            println!(
                "sandbox    running on http://{sandbox_addr} (pid {pid}), log in .quire/sandbox.log"
            );
            if let Some(model) = Model::of_process(pid) {
                println!("           answers from {}", model.describe());
            }
        }
        None => println!("sandbox    stopped"),
    }
    match COMPANION.running_pid(&p.dir) {
        Some(pid) => println!(
            "companion  running on http://{companion_addr} (pid {pid}), log in .quire/companion.log"
        ),
        None => println!("companion  stopped"),
    }
    Ok(())
}

/// Starts the sandbox (unless it already runs) with the model `QUIRE_SANDBOX_LLM_*` ask for,
/// adds its URL and keys to `fields`, and returns which model answers.
fn sandbox(
    p: &Paths,
    secrets: &Map<String, Value>,
    fields: &mut Map<String, Value>,
) -> Result<String> {
    let pg_port = pg_port();
    let sandbox_addr = sandbox_addr();
    let data_dir = p.dir.join("sandbox");
    let keys_file = data_dir.join("keys.json");
    let wanted = Model::from_env();
    let running = if let Some(pid) = SANDBOX.running_pid(&p.dir) {
        util::step("stack: the sandbox is already running");
        Model::of_process(pid)
    } else {
        if TcpStream::connect(&sandbox_addr).is_ok() {
            bail!(
                "{sandbox_addr} is taken by another program; stop it and run `cargo xtask stack up` again"
            );
        }
        let binary = SANDBOX.build()?;
        let _ = std::fs::remove_file(&keys_file);
        let url_as = |role: &str| {
            let pw = secrets[role].as_str().unwrap_or_default();
            format!("postgresql://{role}:{pw}@{PG_HOST}:{pg_port}/postgres")
        };
        util::step(&format!(
            "stack: starting the sandbox on http://{sandbox_addr}"
        ));
        let envs = [
            ("NO_COLOR", "1".to_owned()),
            ("QUIRE_SANDBOX_LISTEN", sandbox_addr.clone()),
            // The companion's tool endpoint is on loopback, which the real platform
            // refuses; the dev stack allows it.
            (
                "QUIRE_SANDBOX_ALLOW_LOOPBACK_TOOL_ENDPOINTS",
                "1".to_owned(),
            ),
            ("QUIRE_SANDBOX_DATA_DIR", data_dir.display().to_string()),
            ("QUIRE_SANDBOX_KEYS_FILE", keys_file.display().to_string()),
            (
                "QUIRE_SANDBOX_DB_URL",
                format!("postgresql://{PG_HOST}:{pg_port}/postgres"),
            ),
            ("QUIRE_SANDBOX_AUTH_DB_URL", url_as("supabase_auth_admin")),
            ("QUIRE_SANDBOX_REST_DB_URL", url_as("authenticator")),
            (
                "QUIRE_SANDBOX_STORAGE_DB_URL",
                url_as("supabase_storage_admin"),
            ),
            (
                "QUIRE_SANDBOX_REALTIME_DB_URL",
                url_as("supabase_realtime_admin"),
            ),
            ("QUIRE_SANDBOX_AI_DB_URL", url_as("powabase_ai_admin")),
        ];
        SANDBOX.start_with(&p.dir, &binary, |c| {
            c.stdin(Stdio::null())
                .envs(envs.iter().map(|(k, v)| (k, v)));
            wanted.pass_to(c);
        })?;
        services::wait_healthy(
            &sandbox_addr,
            "/auth/v1/health",
            Duration::from_secs(30),
            &SANDBOX.log_file(&p.dir),
        )?;
        Some(wanted.clone())
    };
    let model = match &running {
        Some(running) => running.describe(),
        None => "a model xtask cannot tell (the sandbox's environment is not readable)".to_owned(),
    };
    util::step(&format!("stack: answers from {model}"));
    if running.is_some_and(|running| !running.same_as(&wanted)) {
        println!(
            "    (QUIRE_SANDBOX_LLM_* ask for {}: `cargo xtask stack down`, then `up`, to switch)",
            wanted.describe()
        );
    }
    let keys: Map<String, Value> = serde_json::from_slice(
        &std::fs::read(&keys_file).context("reading the sandbox's keys file")?,
    )?;
    for field in ["api_url", "anon_key", "service_role_key", "jwt_secret"] {
        let value = keys
            .get(field)
            .with_context(|| format!("the sandbox's keys file has no `{field}`"))?;
        fields.insert(field.into(), value.clone());
    }
    Ok(model)
}

/// Provisions the agent and knowledge base (idempotent), starts the companion unless it runs,
/// and adds its URL and those ids to `fields`.
fn companion(
    p: &Paths,
    secrets: &Map<String, Value>,
    fields: &mut Map<String, Value>,
) -> Result<()> {
    let companion_addr = companion_addr();
    let binary = COMPANION.build()?;
    let str_field = |name: &str| fields[name].as_str().unwrap_or_default().to_owned();
    let platform = [
        ("QUIRE_COMPANION_API_URL", str_field("api_url")),
        ("QUIRE_COMPANION_ANON_KEY", str_field("anon_key")),
        (
            "QUIRE_COMPANION_SERVICE_ROLE_KEY",
            str_field("service_role_key"),
        ),
    ];
    let ids_file = p.dir.join("companion.json");
    util::step("stack: provisioning the agent and knowledge base");
    let mut provision = cmd(&binary);
    provision.arg("provision").arg("--out").arg(&ids_file);
    for (k, v) in &platform {
        provision.env(k, v);
    }
    provision
        .read()
        .context("provisioning the companion's agent and knowledge base")?;
    let ids: Map<String, Value> = serde_json::from_slice(&std::fs::read(&ids_file)?)?;
    let id = |name: &str| -> Result<String> {
        ids.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("the companion's provision output has no `{name}`"))
    };
    let (agent_id, kb_id) = (id("agent_id")?, id("knowledge_base_id")?);

    if COMPANION.running_pid(&p.dir).is_some() {
        util::step("stack: the companion is already running");
    } else {
        if TcpStream::connect(&companion_addr).is_ok() {
            bail!(
                "{companion_addr} is taken by another program; stop it and run `cargo xtask stack up` again"
            );
        }
        util::step(&format!(
            "stack: starting the companion on http://{companion_addr}"
        ));
        let mut envs: Vec<(&str, String)> = platform.to_vec();
        envs.extend([
            ("NO_COLOR", "1".to_owned()),
            ("QUIRE_COMPANION_JWT_SECRET", str_field("jwt_secret")),
            ("QUIRE_COMPANION_AGENT_ID", agent_id.clone()),
            ("QUIRE_COMPANION_KNOWLEDGE_BASE_ID", kb_id.clone()),
            (
                "QUIRE_COMPANION_TOOL_SECRET",
                secrets["companion_tool_secret"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            ("QUIRE_COMPANION_LISTEN", companion_addr.clone()),
            // The tool endpoint is on loopback, which the sandbox here is
            // started to allow (QUIRE_SANDBOX_ALLOW_LOOPBACK_TOOL_ENDPOINTS)
            // and the real platform refuses to call.
            (
                "QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL",
                "true".to_owned(),
            ),
        ]);
        COMPANION.start_with(&p.dir, &binary, |c| {
            c.stdin(Stdio::null())
                .envs(envs.iter().map(|(k, v)| (k, v)));
            Model::keep_from(c);
        })?;
        services::wait_healthy(
            &companion_addr,
            "/health",
            Duration::from_secs(30),
            &COMPANION.log_file(&p.dir),
        )?;
    }
    fields.insert(
        "companion_url".into(),
        json!(format!("http://{companion_addr}")),
    );
    fields.insert("agent_id".into(), json!(agent_id));
    fields.insert("knowledge_base_id".into(), json!(kb_id));
    Ok(())
}

/// The demo account (created once through the sandbox's admin API; 422 means it exists).
pub const DEMO_EMAIL: &str = "demo@quire.test";
pub const DEMO_PASSWORD: &str = "quire-demo";

fn demo_user(fields: &mut Map<String, Value>) -> Result<()> {
    let sandbox_addr = sandbox_addr();
    let service = fields["service_role_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bearer = format!("Bearer {service}");
    let body = json!({"email": DEMO_EMAIL, "password": DEMO_PASSWORD, "email_confirm": true});
    let status = services::http_post_json(
        &sandbox_addr,
        "/auth/v1/admin/users",
        &[("apikey", &service), ("Authorization", &bearer)],
        &body.to_string(),
    )?;
    if status != 200 && status != 422 {
        bail!("creating the demo user answered HTTP {status}; see .quire/sandbox.log");
    }
    fields.insert(
        "demo_users".into(),
        json!([{"email": DEMO_EMAIL, "password": DEMO_PASSWORD}]),
    );
    Ok(())
}

/// Random passwords for the superuser and the login roles, kept in `.quire/secrets.json` (0600).
fn secrets(p: &Paths) -> Result<Map<String, Value>> {
    let mut secrets: Map<String, Value> = match std::fs::read(&p.secrets) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("reading .quire/secrets.json")?,
        Err(_) => Map::new(),
    };
    let mut changed = false;
    for name in std::iter::once(SUPERUSER)
        .chain(LOGIN_ROLES.iter().copied())
        .chain(OTHER_SECRETS.iter().copied())
    {
        if !secrets.contains_key(name) {
            secrets.insert(name.into(), json!(util::random_hex(24)?));
            changed = true;
        }
    }
    if changed {
        write_private(&p.secrets, &serde_json::to_vec_pretty(&secrets)?)?;
    }
    Ok(secrets)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The machine's PostgreSQL server binaries, and who runs them.
struct Postgres {
    bin_dir: PathBuf,
    /// Root cannot run PostgreSQL: then the cluster belongs to the `postgres` OS user.
    run_as_postgres: bool,
}

impl Postgres {
    fn find() -> Result<Self> {
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        candidates.sort();
        let Some((_, bin_dir)) = candidates.pop() else {
            bail!(
                "no PostgreSQL server found in /usr/lib/postgresql/*/bin: run `cargo xtask setup`"
            );
        };
        Ok(Self {
            bin_dir,
            run_as_postgres: util::is_root(),
        })
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// A command run as the cluster's owner.
    fn as_owner(&self, program: &Path) -> Cmd {
        if self.run_as_postgres {
            let mut c = cmd("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            cmd(program)
        }
    }

    fn chown_to_owner(&self, path: &Path) -> Result<()> {
        if self.run_as_postgres {
            cmd("chown").arg("postgres:postgres").arg(path).run()?;
        }
        Ok(())
    }

    fn init(&self, p: &Paths, password: &str) -> Result<()> {
        let pg_port = pg_port();
        std::fs::create_dir_all(&p.pg_data)?;
        self.chown_to_owner(&p.pg_data)?;
        if self.run_as_postgres
            && !cmd("runuser")
                .args(["-u", "postgres", "--", "test", "-w"])
                .arg(&p.pg_data)
                .succeeds()
        {
            bail!(
                "the `postgres` user cannot write {} (a directory above it is closed to other \
                 users); clone Quire somewhere the postgres user can reach, or open the parent \
                 directories with `chmod o+x`",
                p.pg_data.display()
            );
        }
        // initdb reads the superuser password from a file the owner can read; it lives only
        // for the duration of initdb.
        let pwfile = p.dir.join("initdb-password");
        write_private(&pwfile, password.as_bytes())?;
        self.chown_to_owner(&pwfile)?;
        let result = self
            .as_owner(&self.bin("initdb"))
            .arg("-D")
            .arg(&p.pg_data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8"])
            .args(["--auth-host=scram-sha-256", "--auth-local=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .read();
        let _ = std::fs::remove_file(&pwfile);
        result.context("initdb failed")?;
        let conf = format!(
            "\n# Quire dev stack (cargo xtask stack)\n\
             listen_addresses = '{PG_HOST}'\n\
             port = {pg_port}\n\
             unix_socket_directories = ''\n\
             max_connections = 200\n\
             shared_buffers = 128MB\n\
             wal_level = logical\n"
        );
        let conf_path = p.pg_data.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path)?;
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing)?;
        Ok(())
    }

    fn running(&self, p: &Paths) -> bool {
        self.as_owner(&self.bin("pg_ctl"))
            .args(["status", "-D"])
            .arg(&p.pg_data)
            .succeeds()
    }

    fn start(&self, p: &Paths) -> Result<()> {
        let pg_port = pg_port();
        if !p.pg_log.exists() {
            std::fs::write(&p.pg_log, b"")?;
        }
        self.chown_to_owner(&p.pg_log)?;
        self.as_owner(&self.bin("pg_ctl"))
            .args(["start", "-w", "-t", "60", "-D"])
            .arg(&p.pg_data)
            .arg("-l")
            .arg(&p.pg_log)
            .read()
            .with_context(|| format!("PostgreSQL did not start; see {}", p.pg_log.display()))?;
        for _ in 0..50 {
            if TcpStream::connect((PG_HOST, pg_port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("PostgreSQL started but does not accept connections on {PG_HOST}:{pg_port}")
    }
}

fn psql(password: &str) -> Cmd {
    let pg_port = pg_port();
    let mut c = cmd("psql");
    c.env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args([
            "-h",
            PG_HOST,
            "-p",
            &pg_port.to_string(),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
        ]);
    c
}

/// Applies `db/platform/*.sql` (what the project has before Quire; each file in one transaction,
/// skipped when already applied with the same content, recorded in the stack's own
/// `quire_dev.platform_files`), then `db/app` with the companion's own `migrate`, as a deployer
/// applies it (recorded in `supabase_migrations.schema_migrations` as the Supabase CLI does).
fn migrate(password: &str) -> Result<()> {
    psql(password)
        .args([
            "-c",
            "create schema if not exists quire_dev; \
             create table if not exists quire_dev.platform_files \
             (file text primary key, checksum text not null, applied_at timestamptz not null default now())",
        ])
        .read()?;
    forget_old_history(password)?;
    let applied = psql(password)
        .args([
            "-tA",
            "-F",
            " ",
            "-c",
            "select file, checksum from quire_dev.platform_files",
        ])
        .read()?;
    let applied: Vec<(String, String)> = applied
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(v, c)| (v.to_owned(), c.to_owned()))
        .collect();
    let dir = util::repo_root().join("db/platform");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .context("reading db/platform")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let sql = std::fs::read(&file)?;
        let mut h = DefaultHasher::new();
        sql.hash(&mut h);
        let checksum = format!("{:016x}", h.finish());
        if applied.iter().any(|(v, c)| *v == name && *c == checksum) {
            continue;
        }
        util::step(&format!("stack: applying db/platform/{name}"));
        psql(password)
            .arg("-1")
            .arg("-f")
            .arg(&file)
            .read()
            .with_context(|| format!("applying db/platform/{name}"))?;
        psql(password)
            .arg("-c")
            .arg(format!(
                "insert into quire_dev.platform_files (file, checksum) values ('{}', '{checksum}') \
                 on conflict (file) do update set checksum = excluded.checksum, applied_at = now()",
                name.replace('\'', "''")
            ))
            .read()?;
    }
    let companion = COMPANION.build()?;
    util::step("stack: applying db/app (quire-companion migrate)");
    cmd(&companion)
        .arg("migrate")
        .env("QUIRE_COMPANION_LOG", "warn")
        .env(
            "QUIRE_COMPANION_DATABASE_URL",
            format!(
                "postgresql://{SUPERUSER}:{password}@{PG_HOST}:{}/postgres",
                pg_port()
            ),
        )
        .run()
        .context("applying db/app")
}

/// Stacks made before `quire-companion migrate` kept both trees in a history of their own shape
/// (`version` = `platform/…` or `app/…`, a `checksum`), which is not the Supabase CLI's: its
/// platform rows move to `quire_dev.platform_files` and the table goes, so `migrate` records
/// db/app afresh (its files are idempotent).
fn forget_old_history(password: &str) -> Result<()> {
    psql(password)
        .args([
            "-c",
            "do $$ begin \
               if exists (select 1 from information_schema.columns \
                          where table_schema = 'supabase_migrations' \
                            and table_name = 'schema_migrations' and column_name = 'checksum') then \
                 insert into quire_dev.platform_files (file, checksum) \
                   select substr(version, length('platform/') + 1), checksum \
                   from supabase_migrations.schema_migrations where version like 'platform/%' \
                   on conflict (file) do nothing; \
                 drop table supabase_migrations.schema_migrations; \
               end if; \
             end $$",
        ])
        .read()?;
    Ok(())
}

/// The services log in as the platform's login roles; their passwords live in .quire/secrets.json.
fn set_role_passwords(password: &str, secrets: &Map<String, Value>) -> Result<()> {
    let mut sql = String::new();
    for role in LOGIN_ROLES {
        let pw = secrets[*role].as_str().unwrap_or_default();
        // Hex passwords: nothing to escape. Roles that db/platform does not define are skipped.
        sql.push_str(&format!(
            "do $$ begin if exists (select from pg_roles where rolname = '{role}') then \
             execute format('alter role %I with login password %L', '{role}', '{pw}'); end if; end $$;\n"
        ));
    }
    psql(password).args(["-c", &sql]).read()?;
    Ok(())
}

// --- The sandbox's model ------------------------------------------------------------------------

/// The variables that choose the sandbox's model (README.md, "Your own model"), in the order of
/// [`Model`]'s fields.
const MODEL_VARS: [&str; 3] = [
    "QUIRE_SANDBOX_LLM_URL",
    "QUIRE_SANDBOX_LLM_API_KEY",
    "QUIRE_SANDBOX_LLM_MODEL",
];

/// Which model the sandbox answers with: its offline extractive one, or any OpenAI-compatible
/// server (README.md, "Your own model"). Read from xtask's own environment and handed to the
/// sandbox alone; the key is never printed, nor written to a file.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    url: Option<String>,
    key: Option<String>,
    name: Option<String>,
}

impl Model {
    /// The model `QUIRE_SANDBOX_LLM_*` ask for; an empty variable counts as unset.
    fn from_env() -> Model {
        Model::from_vars(|var| std::env::var(var).ok())
    }

    /// The model a running sandbox was started with, from its environment (of which only the
    /// URL and the model's name are kept); `None` when that cannot be read.
    fn of_process(pid: u32) -> Option<Model> {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let kept: Vec<(&str, &str)> = environ
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok()?.split_once('='))
            .filter(|(k, _)| [MODEL_VARS[0], MODEL_VARS[2]].contains(k))
            .collect();
        Some(Model::from_vars(|var| {
            kept.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        }))
    }

    fn from_vars(get: impl Fn(&str) -> Option<String>) -> Model {
        let get = |var: &str| get(var).filter(|v| !v.trim().is_empty());
        Model {
            url: get(MODEL_VARS[0]),
            key: get(MODEL_VARS[1]),
            name: get(MODEL_VARS[2]),
        }
    }

    /// What answers, for people: never the key, nor a password in the URL.
    fn describe(&self) -> String {
        match &self.url {
            // The sandbox's default name (`DEFAULT_AGENT_MODEL`, crates/sandbox's agents config).
            Some(url) => format!(
                "{} at {}",
                self.name.as_deref().unwrap_or("gpt-4o-mini"),
                without_password(url).trim_end_matches('/')
            ),
            None => {
                "the sandbox's offline extractive model (your own: README.md, \"Your own model\")"
                    .to_owned()
            }
        }
    }

    /// Whether both name the same server and model (keys are not compared).
    fn same_as(&self, other: &Model) -> bool {
        (&self.url, &self.name) == (&other.url, &other.name)
    }

    /// Gives `command` exactly these variables: an unset or empty one is removed, so that it does
    /// not reach the sandbox's parser from xtask's own environment.
    fn pass_to(&self, command: &mut Command) {
        for (var, value) in MODEL_VARS
            .into_iter()
            .zip([&self.url, &self.key, &self.name])
        {
            match value {
                Some(value) => command.env(var, value),
                None => command.env_remove(var),
            };
        }
    }

    /// Keeps all of them from `command` (the companion has no use for the model's key).
    fn keep_from(command: &mut Command) {
        for var in MODEL_VARS {
            command.env_remove(var);
        }
    }
}

/// `url` without its `user:password@`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(vars: &[(&str, &str)]) -> Model {
        Model::from_vars(|var| {
            vars.iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_three_variables_choose_the_model_and_the_key_is_never_described() {
        let own = model(&[
            ("QUIRE_SANDBOX_LLM_URL", "http://127.0.0.1:11434/v1/"),
            ("QUIRE_SANDBOX_LLM_API_KEY", "sk-local-secret"),
            ("QUIRE_SANDBOX_LLM_MODEL", "qwen3:8b"),
        ]);
        assert_eq!(own.describe(), "qwen3:8b at http://127.0.0.1:11434/v1");
        let with_password = model(&[
            (
                "QUIRE_SANDBOX_LLM_URL",
                "https://me:sk-in-url@llm.example.com/v1",
            ),
            ("QUIRE_SANDBOX_LLM_API_KEY", "sk-local-secret"),
        ]);
        let line = with_password.describe();
        assert_eq!(line, "gpt-4o-mini at https://llm.example.com/v1");
        assert!(!line.contains("sk-"), "{line}");
        assert!(
            model(&[])
                .describe()
                .starts_with("the sandbox's offline extractive model")
        );
    }

    #[test]
    fn the_sandbox_gets_exactly_the_variables_given_and_no_empty_one() {
        let own = model(&[
            ("QUIRE_SANDBOX_LLM_URL", "http://127.0.0.1:8080/v1"),
            ("QUIRE_SANDBOX_LLM_API_KEY", ""),
            ("QUIRE_SANDBOX_LLM_MODEL", "  "),
        ]);
        let mut command = Command::new("true");
        own.pass_to(&mut command);
        let envs: Vec<(String, Option<String>)> = command
            .get_envs()
            .map(|(k, v)| {
                let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
                (text(k), v.map(text))
            })
            .collect();
        assert_eq!(
            envs,
            vec![
                ("QUIRE_SANDBOX_LLM_API_KEY".to_owned(), None),
                ("QUIRE_SANDBOX_LLM_MODEL".to_owned(), None),
                (
                    "QUIRE_SANDBOX_LLM_URL".to_owned(),
                    Some("http://127.0.0.1:8080/v1".to_owned())
                ),
            ]
        );
    }
}
