//! `quire-companion migrate` over TLS, as a real project's database URL asks
//! (`sslmode`, `sslrootcert`: DEPLOY.md §5). The server is a PostgreSQL
//! cluster of this test's own, with `ssl = on`, a certificate from a CA made
//! here (as a Supabase project's comes from the project's CA), and a
//! `pg_hba.conf` that refuses any connection without TLS; the server without
//! TLS is quire-testdb's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use quire_companion::migrate;
use quire_testdb::TestDb;
use quire_testdb::tokio_postgres::{self, NoTls};

/// A PostgreSQL cluster with TLS only, holding db/platform (a Powabase
/// project before Quire). Stopped and removed when dropped, or when the test
/// process dies (a watchdog waits on a pipe only this holds).
struct TlsServer {
    port: u16,
    dir: PathBuf,
    /// The CA that signed the server's certificate (for `localhost` only).
    ca_pem: PathBuf,
    /// Another CA, which signed nothing of this server's.
    stranger_pem: PathBuf,
    _watchdog: Child,
}

fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUIRE_PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL under /usr/lib/postgresql")
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("an initdb").1
}

/// Runs `cmd` as the `postgres` OS user when we are root (initdb refuses root).
fn as_postgres<'c>(cmd: &'c mut Command, dir: &Path) -> &'c mut Command {
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
        chown_tree(dir, uid, gid);
        cmd.uid(uid).gid(gid);
    }
    cmd.current_dir(dir)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

fn ok(output: std::io::Result<Output>, what: &str) {
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a server certificate it signed for `localhost`: (CA PEM,
/// server certificate PEM, server key PEM).
fn certificates(ca_name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = server.signed_by(&key, &issuer).unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

impl TlsServer {
    async fn start() -> TlsServer {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("quire-tls-db-")
            .tempdir()
            .unwrap()
            .keep();
        let bin = pg_bin();
        let data = dir.join("data");
        ok(
            as_postgres(&mut Command::new(bin.join("initdb")), &dir)
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ])
                .args(["--no-sync", "--no-instructions"])
                .output(),
            "initdb",
        );
        let (ca_pem, cert_pem, key_pem) = certificates("Quire test project CA");
        let (stranger, _, _) = certificates("Someone else's CA");
        std::fs::write(data.join("server.crt"), cert_pem).unwrap();
        std::fs::write(data.join("server.key"), key_pem).unwrap();
        std::fs::set_permissions(data.join("server.key"), PermissionsExt::from_mode(0o600))
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
        std::fs::write(dir.join("stranger.pem"), stranger).unwrap();
        // The socket is for setting up; over TCP, TLS or nothing.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             ssl = on\nfsync = off\nlogging_collector = off\n",
            dir.display()
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut file, conf.as_bytes()).unwrap();
        drop(file);

        let watchdog = as_postgres(&mut Command::new("sh"), &dir)
            .arg("-c")
            .arg("cat >/dev/null; \"$1/pg_ctl\" stop -D \"$2/data\" -m immediate -w; rm -rf \"$2\"")
            .args(["quire-tls-db-watchdog"])
            .arg(&bin)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ok(
            as_postgres(&mut Command::new(bin.join("pg_ctl")), &dir)
                .arg("start")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("postgres.log"))
                .args(["-w", "-t", "60"])
                .stdin(Stdio::null())
                .output(),
            "pg_ctl start",
        );
        let server = TlsServer {
            port,
            ca_pem: dir.join("ca.pem"),
            stranger_pem: dir.join("stranger.pem"),
            dir,
            _watchdog: watchdog,
        };
        server.apply_platform().await;
        server
    }

    /// db/platform, over the socket, as quire-testdb builds its templates.
    async fn apply_platform(&self) {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host={} port={} user=postgres dbname=postgres",
                self.dir.display(),
                self.port
            ),
            NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../db/platform");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        for file in files {
            let sql = std::fs::read_to_string(&file).unwrap();
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
        }
    }

    fn url(&self, host: &str, params: &str) -> String {
        format!(
            "postgresql://postgres@{host}:{}/postgres?{params}",
            self.port
        )
    }
}

async fn migrate_cli(url: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_quire-companion"))
        .env_clear()
        .env("QUIRE_COMPANION_LOG", "warn")
        .env(migrate::DATABASE_URL, url)
        .arg("migrate")
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn a_database_that_takes_only_tls_is_migrated_with_sslmode_require_and_refused_without() {
    let server = TlsServer::start().await;
    let last = migrate::migrations().last().unwrap().version;

    let (applied, text) = migrate_cli(&server.url("127.0.0.1", "sslmode=require"), &[]).await;
    assert!(applied, "{text}");
    assert!(
        text.contains(&format!("db/app is at version {last}")),
        "{text}"
    );

    // No sslmode: libpq's prefer, so TLS where the server offers it.
    let (listed, text) = migrate_cli(&server.url("127.0.0.1", ""), &["status"]).await;
    assert!(listed, "{text}");
    assert!(text.contains("0 pending"), "{text}");

    // The server's own refusal of a connection without TLS reaches the deployer.
    let (refused, text) =
        migrate_cli(&server.url("127.0.0.1", "sslmode=disable"), &["status"]).await;
    assert!(!refused, "{text}");
    assert!(
        text.contains("cannot connect to the database at postgres@127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("no encryption"), "{text}");
}

#[tokio::test]
async fn a_database_without_tls_is_refused_when_the_url_requires_it_and_nothing_is_applied() {
    let db = TestDb::platform_only().await;
    let url = format!("{}?sslmode=require", db.url());

    let (applied, text) = migrate_cli(&url, &[]).await;

    assert!(!applied, "{text}");
    assert!(
        text.contains(
            "does not offer TLS, and QUIRE_COMPANION_DATABASE_URL asks for it (sslmode=require)"
        ),
        "{text}"
    );
    assert!(text.contains("sslmode=disable"), "{text}");
    let admin = db.admin().await;
    let documents: bool = admin
        .query_one("select to_regclass('public.documents') is not null", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!documents, "nothing of db/app was applied");
}

#[tokio::test]
async fn the_certificate_is_checked_as_sslmode_and_sslrootcert_ask() {
    let server = TlsServer::start().await;
    let ca = server.ca_pem.display().to_string();
    let stranger = server.stranger_pem.display().to_string();
    let status = |host: &'static str, params: String| {
        let url = server.url(host, &params);
        async move { migrate_cli(&url, &["status"]).await }
    };

    // Checked against the project's CA, by the name it is for.
    let (ok, text) = status("localhost", format!("sslmode=verify-full&sslrootcert={ca}")).await;
    assert!(ok, "{text}");
    // verify-ca checks the chain, not the name.
    let (ok, text) = status("127.0.0.1", format!("sslmode=verify-ca&sslrootcert={ca}")).await;
    assert!(ok, "{text}");

    // Refused, each with what to do.
    let refusals = [
        // The project's CA is no public root.
        (
            "localhost",
            "sslmode=verify-full".to_owned(),
            "UnknownIssuer",
        ),
        // The certificate is for localhost, not 127.0.0.1.
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            "not valid for name \"127.0.0.1\"",
        ),
        // A root file makes require check the chain, as in libpq.
        (
            "localhost",
            format!("sslmode=require&sslrootcert={stranger}"),
            "UnknownIssuer",
        ),
    ];
    for (host, params, why) in refusals {
        let (ok, text) = status(host, params.clone()).await;
        assert!(!ok, "{host} {params}: {text}");
        assert!(
            text.contains("showed a certificate that could not be trusted") && text.contains(why),
            "{host} {params}: {text}"
        );
        assert!(
            text.contains("add sslrootcert=<its path> to the URL"),
            "{text}"
        );
    }
}
