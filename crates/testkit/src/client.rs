//! `quire-core` clients of a stack: a token store in memory, a "browser" that
//! signs in on the sandbox's authorize page over HTTP, and the machine's real
//! keyring in a D-Bus session of the test's own.

use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

use quire_core::{Browser, Config, Quire, TokenStore};
use secrecy::{ExposeSecret as _, SecretString};
use url::Url;
use uuid::Uuid;

use crate::api::{Api, PASSWORD_A};

impl Api {
    /// The client configuration: the API URL, the anon key, and `companion`
    /// as the companion's URL (a closed port when `None`).
    pub fn config(&self, companion: Option<&str>) -> Config {
        let companion = companion.unwrap_or("http://127.0.0.1:9");
        Config::new(self.api_base(), &self.info.anon_key, companion).expect("a client config")
    }

    /// A client of this stack (its companion, when one runs) whose refresh
    /// token is kept by a [`MemoryTokens`].
    pub fn client(&self) -> (Quire, Arc<MemoryTokens>) {
        let tokens = Arc::new(MemoryTokens::default());
        let config = self.config(self.companion_url());
        (Quire::with_token_store(config, tokens.clone()), tokens)
    }

    /// A signed-in client for a new confirmed user `email` (password
    /// [`PASSWORD_A`]), and the user's id.
    pub async fn signed_in(&self, email: &str) -> (Quire, Uuid) {
        let id = self.create_user(email, PASSWORD_A).await;
        let (quire, _) = self.client();
        quire
            .sign_in_with_password(email, PASSWORD_A)
            .await
            .unwrap_or_else(|e| panic!("signing {email} in: {e}"));
        (quire, id)
    }
}

/// A refresh-token store in memory, for the tests that are not about the
/// keyring (those use the real one, see [`in_keyring_session`]).
#[derive(Default)]
pub struct MemoryTokens(Mutex<Option<String>>);

impl MemoryTokens {
    /// The refresh token kept now.
    pub fn get(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, token: Option<String>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }
}

impl TokenStore for MemoryTokens {
    fn load(&self) -> quire_core::Result<Option<SecretString>> {
        Ok(self.get().map(SecretString::from))
    }
    fn save(&self, token: &SecretString) -> quire_core::Result<()> {
        self.set(Some(token.expose_secret().to_owned()));
        Ok(())
    }
    fn clear(&self) -> quire_core::Result<()> {
        self.set(None);
        Ok(())
    }
}

/// A "browser" that signs in on the sandbox's authorize page over HTTP, as a
/// person would: opens the page, submits the form, follows the redirect to
/// the loopback callback, and keeps the page the callback answered with.
pub struct PageDriver {
    /// The email typed into the form.
    pub email: String,
    /// The password typed into the form.
    pub password: String,
    /// The sandbox's base URL, no trailing slash; the form is posted there.
    pub api_base: String,
    /// The callback's answer page, once the flow is through.
    pub landing: Arc<Mutex<Option<(u16, String)>>>,
    /// The URL the core asked to open.
    pub opened: Arc<Mutex<Option<Url>>>,
    /// Press "cancel" instead of signing in.
    pub cancel: bool,
}

impl PageDriver {
    /// Signs in on `api`'s sandbox as `email` with `password`.
    pub fn new(api: &Api, email: &str, password: &str) -> PageDriver {
        PageDriver {
            email: email.to_owned(),
            password: password.to_owned(),
            api_base: api.api_base().to_owned(),
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
