//! The harness: [`spawn_stack`] starts a real sandbox in-process on port 0
//! over a fresh database of its own (`quire-testdb`), and makes users and
//! clients for it. Logs are silent unless `TEST_LOG=1`.
//!
//! The service key appears here only to create users and to write rows the
//! companion would write; the clients under test get the anon key alone.

use std::process::Command;
use std::sync::{Arc, Mutex, Once};

use quire_core::{Browser, Config, Quire, TokenStore};
use quire_sandbox::Sandbox;
use quire_testdb::TestDb;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tempfile::TempDir;
use url::Url;
use uuid::Uuid;

pub const PASSWORD_A: &str = "correct horse battery A";
pub const PASSWORD_B: &str = "correct horse battery B";

/// A running sandbox and its database, and the companion when asked for.
pub struct Stack {
    pub db: TestDb,
    pub sandbox: Sandbox,
    pub http: reqwest::Client,
    pub companion: Option<quire_companion::Companion>,
    /// The sandbox's configuration, to restart it.
    pub sandbox_config: quire_sandbox::Config,
    _dir: TempDir,
}

/// A sandbox with test defaults.
pub async fn spawn_stack() -> Stack {
    spawn_stack_with(|_| {}).await
}

/// A sandbox whose configuration `adjust` changes first.
pub async fn spawn_stack_with(adjust: impl FnOnce(&mut quire_sandbox::Config)) -> Stack {
    init_logs();
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = quire_sandbox::Config::new(dir.path(), db.url());
    config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
    adjust(&mut config);
    let sandbox_config = config.clone();
    let sandbox = quire_sandbox::spawn(config)
        .await
        .expect("the sandbox starts");
    Stack {
        db,
        sandbox,
        companion: None,
        sandbox_config,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    }
}

/// The full stack: a sandbox (the offline model at `token_delay_ms` per
/// piece), Quire's agent and knowledge base provisioned on it, and a
/// companion in front.
pub async fn spawn_full_stack(token_delay_ms: u64) -> Stack {
    use quire_companion::config::{Config as CompanionConfig, PlatformConfig};
    let mut stack = spawn_stack_with(|c| {
        c.agents.allow_loopback_tool_endpoints = true;
        c.agents.token_delay_ms = token_delay_ms;
    })
    .await;
    let platform = PlatformConfig {
        api_url: stack.api_base().parse().unwrap(),
        anon_key: stack.sandbox.anon_key().clone(),
        service_role_key: stack.sandbox.service_role_key().clone(),
    };
    let ids = quire_companion::provision::provision(
        &quire_companion::platform::Platform::new(&platform).unwrap(),
        None,
    )
    .await
    .expect("provisioning the agent and knowledge base");
    let mut config = CompanionConfig::new(
        platform,
        stack.sandbox.jwt_secret().clone(),
        ids.agent_id,
        ids.knowledge_base_id,
        SecretString::from(format!("tool-secret-{}", Uuid::new_v4().simple())),
    );
    config.ingest.poll_initial = std::time::Duration::from_millis(20);
    config.ingest.poll_max = std::time::Duration::from_millis(300);
    config.ingest.idle_poll = std::time::Duration::from_millis(200);
    // The sandbox allows loopback tool endpoints; the real platform does not.
    config.dev_allow_private_tool_url = true;
    stack.companion = Some(
        quire_companion::spawn(config)
            .await
            .expect("the companion starts"),
    );
    stack
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "debug".into()),
                )
                .with_test_writer()
                .try_init();
        }
    });
}

impl Stack {
    pub fn api_base(&self) -> String {
        self.sandbox.api_base().to_owned()
    }

    pub fn anon_key(&self) -> String {
        self.sandbox.anon_key().expose_secret().to_owned()
    }

    /// The client configuration: API URL, anon key, and a companion URL
    /// (`companion` when one runs; a closed port otherwise).
    pub fn config(&self, companion: Option<&str>) -> Config {
        Config::new(
            &self.api_base(),
            &self.anon_key(),
            companion.unwrap_or("http://127.0.0.1:9"),
        )
        .unwrap()
    }

    /// Stops the sandbox (every connection to it ends).
    pub fn stop_sandbox(&self) {
        self.sandbox.shutdown_handle().cancel();
    }

    /// Starts the sandbox again on the same port, data directory and
    /// database (after [`Stack::stop_sandbox`]).
    pub async fn restart_sandbox(&mut self) {
        let mut config = self.sandbox_config.clone();
        config.listen = self.sandbox.addr();
        let mut tries = 0;
        let sandbox = loop {
            match quire_sandbox::spawn(config.clone()).await {
                Ok(sandbox) => break sandbox,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 100, "the sandbox does not come back: {e:#}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        };
        drop(std::mem::replace(&mut self.sandbox, sandbox));
    }

    /// The companion's URL, when one runs.
    pub fn companion_url(&self) -> Option<String> {
        self.companion.as_ref().map(|c| c.url())
    }

    /// A client whose refresh token is kept by a [`MemoryTokens`].
    pub fn client(&self) -> (Quire, Arc<MemoryTokens>) {
        let tokens = Arc::new(MemoryTokens::default());
        let config = self.config(self.companion_url().as_deref());
        (Quire::with_token_store(config, tokens.clone()), tokens)
    }

    /// Creates a confirmed user through the admin API; returns its id.
    pub async fn create_user(&self, email: &str, password: &str) -> Uuid {
        let key = self.sandbox.service_role_key().expose_secret().to_owned();
        let response = self
            .http
            .post(format!("{}/auth/v1/admin/users", self.api_base()))
            .header("apikey", &key)
            .bearer_auth(&key)
            .json(&json!({"email": email, "password": password, "email_confirm": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "creating {email}");
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// A signed-in client for a new user `email` (password [`PASSWORD_A`]).
    pub async fn signed_in(&self, email: &str) -> (Quire, Uuid) {
        let id = self.create_user(email, PASSWORD_A).await;
        let (quire, _) = self.client();
        quire
            .sign_in_with_password(email, PASSWORD_A)
            .await
            .unwrap();
        (quire, id)
    }
}

/// A refresh-token store in memory, for the tests that are not about the
/// keyring (those use the real one, see [`in_keyring_session`]).
#[derive(Default)]
pub struct MemoryTokens(Mutex<Option<String>>);

impl MemoryTokens {
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap().clone()
    }
}

impl TokenStore for MemoryTokens {
    fn load(&self) -> quire_core::Result<Option<SecretString>> {
        Ok(self.get().map(SecretString::from))
    }
    fn save(&self, token: &SecretString) -> quire_core::Result<()> {
        *self.0.lock().unwrap() = Some(token.expose_secret().to_owned());
        Ok(())
    }
    fn clear(&self) -> quire_core::Result<()> {
        *self.0.lock().unwrap() = None;
        Ok(())
    }
}

/// A "browser" that signs in on the sandbox's authorize page over HTTP, as a
/// person would: opens the page, submits the form, follows the redirect to
/// the loopback callback, and keeps the page the callback answered with.
pub struct PageDriver {
    pub email: String,
    pub password: String,
    pub api_base: String,
    /// The callback's answer page, once the flow is through.
    pub landing: Arc<Mutex<Option<(u16, String)>>>,
    /// The URL the core asked to open.
    pub opened: Arc<Mutex<Option<Url>>>,
    /// Press "cancel" instead of signing in.
    pub cancel: bool,
}

impl PageDriver {
    pub fn new(stack: &Stack, email: &str, password: &str) -> PageDriver {
        PageDriver {
            email: email.to_owned(),
            password: password.to_owned(),
            api_base: stack.api_base(),
            landing: Arc::default(),
            opened: Arc::default(),
            cancel: false,
        }
    }
}

impl Browser for PageDriver {
    fn open(&self, url: &Url) -> quire_core::Result<()> {
        *self.opened.lock().unwrap() = Some(url.clone());
        let (url, email, password, base, landing, cancel) = (
            url.clone(),
            self.email.clone(),
            self.password.clone(),
            self.api_base.clone(),
            self.landing.clone(),
            self.cancel,
        );
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let page = http.get(url).send().await.unwrap();
            assert_eq!(page.status(), 200, "the authorize page opens");
            let html = page.text().await.unwrap();
            let marker = "name=\"state\" value=\"";
            let start = html.find(marker).expect("the page has a state field") + marker.len();
            let state = &html[start..start + html[start..].find('"').unwrap()];
            let action = if cancel { "cancel" } else { "sign_in" };
            let submitted = http
                .post(format!("{base}/auth/v1/authorize"))
                .form(&[
                    ("state", state),
                    ("email", &email),
                    ("password", &password),
                    ("action", action),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(submitted.status(), 302, "the page sends the browser on");
            let location = submitted.headers()["location"].to_str().unwrap().to_owned();
            let callback = http.get(location).send().await.unwrap();
            let status = callback.status().as_u16();
            *landing.lock().unwrap() = Some((status, callback.text().await.unwrap()));
        });
        Ok(())
    }
}

/// Runs the test named `test` (its path in this binary) again, alone, in a
/// private D-Bus session with an unlocked gnome-keyring-daemon (Secret
/// Service), and returns `false`; inside that session it returns `true` and
/// the test body runs. So keyring tests use the machine's real backend but
/// never a person's own keyring. The session's daemons exit with it.
pub fn in_keyring_session(test: &str) -> bool {
    if std::env::var_os("QUIRE_TEST_KEYRING_SESSION").is_some() {
        return true;
    }
    let home = tempfile::tempdir().unwrap();
    let runtime = home.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    set_private(&runtime);
    set_private(home.path());
    let status = Command::new("dbus-run-session")
        .args(["--", "sh", "-c"])
        .arg(
            "eval \"$(printf quire-test-keyring | gnome-keyring-daemon --unlock --components=secrets)\" >/dev/null \
             && exec \"$@\"",
        )
        .arg("sh")
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("QUIRE_TEST_KEYRING_SESSION", "1")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .status()
        .expect("dbus-run-session runs (install dbus and gnome-keyring)");
    assert!(status.success(), "{test} failed inside its keyring session");
    false
}

fn set_private(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Polls `check` until it is true; panics after `secs` seconds. For waiting
/// on the outcome of asynchronous work, never for asserting on timing.
pub async fn eventually(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A TCP proxy in front of the sandbox that can cut connections: every
/// connection open at [`Proxy::cut`], or the one that has sent more than
/// [`Proxy::cut_after_upload`] bytes towards the server. Stands in for a
/// flaky network without touching the sandbox.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    upload_budget: Arc<std::sync::atomic::AtomicI64>,
    stall: Arc<std::sync::atomic::AtomicBool>,
    pub cuts: Arc<std::sync::atomic::AtomicU64>,
    /// Bytes sent towards the server so far, over all connections.
    pub uploaded: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let upload_budget = Arc::new(AtomicI64::new(i64::MAX));
        let cuts = Arc::new(AtomicU64::new(0));
        let uploaded = Arc::new(AtomicU64::new(0));
        let stall = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cut_tx, budget, cut_count, uploaded_total, stalling) = (
            cut.clone(),
            upload_budget.clone(),
            cuts.clone(),
            uploaded.clone(),
            stall.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_tx.subscribe();
                let (budget, cut_count, uploaded_total, stalling) = (
                    budget.clone(),
                    cut_count.clone(),
                    uploaded_total.clone(),
                    stalling.clone(),
                );
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream = async {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buffer = vec![0u8; 64 * 1024];
                        loop {
                            let n = client_read.read(&mut buffer).await.unwrap_or(0);
                            if n == 0 {
                                let _ = server_write.shutdown().await;
                                // Keep the downstream half going until it ends.
                                std::future::pending::<()>().await;
                            }
                            uploaded_total.fetch_add(n as u64, Ordering::SeqCst);
                            if budget.fetch_sub(n as i64, Ordering::SeqCst) - (n as i64) < 0 {
                                budget.store(i64::MAX, Ordering::SeqCst);
                                if stalling.load(Ordering::SeqCst) {
                                    // Hold the connection, forward nothing more.
                                    std::future::pending::<()>().await;
                                }
                                cut_count.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            if server_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
                    tokio::select! {
                        () = upstream => {}
                        _ = downstream => {}
                        _ = cut_rx.changed() => { cut_count.fetch_add(1, Ordering::SeqCst); }
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            upload_budget,
            stall,
            cuts,
            uploaded,
        }
    }

    /// `http://<proxy>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection open now.
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Stops forwarding (without closing) once more than `bytes` have been
    /// sent towards the server: a connection that hangs.
    pub fn stall_after_upload(&self, bytes: i64) {
        self.stall.store(true, std::sync::atomic::Ordering::SeqCst);
        self.upload_budget
            .store(bytes, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drops the connection that makes the total sent towards the server
    /// (over all connections, from now) exceed `bytes`; once.
    pub fn cut_after_upload(&self, bytes: i64) {
        self.upload_budget
            .store(bytes, std::sync::atomic::Ordering::SeqCst);
    }
}
