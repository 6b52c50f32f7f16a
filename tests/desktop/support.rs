//! The dev stack the tests run against, fresh users, test PDFs, and looking at the database
//! and for secrets.
//!
//! The test process reads the stack's secrets (`QUIRE_STACK`, written by `cargo xtask stack
//! up`): it creates users with the service key and checks rows behind the app's back. The app
//! itself only ever gets the API URL, the anon key and the companion URL (see `driver.rs`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail, ensure};
use quire_testkit::fixtures;
use serde::Deserialize;
use serde_json::{Value, json};

/// `.quire/stack.json`, as `cargo xtask stack up` writes it.
#[derive(Debug, Deserialize)]
pub struct Stack {
    pub api_url: String,
    pub anon_key: String,
    pub service_role_key: String,
    pub jwt_secret: String,
    pub companion_url: String,
    #[serde(default)]
    pub db_url: Option<String>,
}

static STACK: OnceLock<Stack> = OnceLock::new();

/// The stack described by `QUIRE_STACK` (else the checkout's `.quire/stack.json`).
pub fn stack() -> Result<&'static Stack> {
    if let Some(stack) = STACK.get() {
        return Ok(stack);
    }
    let path = std::env::var_os("QUIRE_STACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::driver::repo_root().join(".quire/stack.json"));
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "reading the stack description {} (`cargo xtask stack up` writes it; \
             `cargo xtask test` passes it as QUIRE_STACK)",
            path.display()
        )
    })?;
    let stack: Stack =
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    for (name, value) in [
        ("api_url", &stack.api_url),
        ("anon_key", &stack.anon_key),
        ("service_role_key", &stack.service_role_key),
        ("jwt_secret", &stack.jwt_secret),
        ("companion_url", &stack.companion_url),
    ] {
        ensure!(
            !value.is_empty(),
            "{} has an empty `{name}`",
            path.display()
        );
    }
    Ok(STACK.get_or_init(|| stack))
}

/// A short random string: unique names let tests share the dev stack and run in parallel.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// A user made for one test.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password: String,
}

/// A session of a user obtained by the test itself (not the app's).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("a default HTTP client builds")
}

impl Stack {
    /// The environment the app gets: the three values of `Config::load` (IPC.md).
    pub fn app_env(&self) -> [(&'static str, String); 3] {
        [
            ("QUIRE_API_URL", self.api_url.clone()),
            ("QUIRE_ANON_KEY", self.anon_key.clone()),
            ("QUIRE_COMPANION_URL", self.companion_url.clone()),
        ]
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url.trim_end_matches('/'))
    }

    /// A confirmed email user, created through the Auth admin API with the service key.
    pub async fn new_user(&self, label: &str) -> Result<User> {
        let email = format!("e2e-{label}-{}@quire.test", unique());
        let password = format!("pw-{}-{}", unique(), unique());
        let response = http()
            .post(self.url("/auth/v1/admin/users"))
            .header("apikey", &self.service_role_key)
            .bearer_auth(&self.service_role_key)
            .json(&json!({ "email": email, "password": password, "email_confirm": true }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status.is_success(), "creating {email}: {status} {body}");
        let id = body["id"]
            .as_str()
            .with_context(|| format!("no id in {body}"))?
            .to_owned();
        Ok(User {
            id,
            email,
            password,
        })
    }

    /// Signs `user` in with a password grant (a session of the test's own).
    pub async fn tokens(&self, user: &User) -> Result<Tokens> {
        let response = http()
            .post(self.url("/auth/v1/token?grant_type=password"))
            .header("apikey", &self.anon_key)
            .json(&json!({ "email": user.email, "password": user.password }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(
            status.is_success(),
            "signing {} in: {status} {body}",
            user.email
        );
        Ok(Tokens {
            access_token: body["access_token"].as_str().unwrap_or_default().to_owned(),
            refresh_token: body["refresh_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// `GET /rest/v1/<path>` with the service key (RLS bypassed): what is really stored.
    pub async fn rows(&self, path: &str) -> Result<Vec<Value>> {
        self.rest(path, &self.service_role_key).await
    }

    /// `GET /rest/v1/<path>` as a user (RLS applies).
    pub async fn rows_as(&self, tokens: &Tokens, path: &str) -> Result<Vec<Value>> {
        self.rest(path, &tokens.access_token).await
    }

    async fn rest(&self, path: &str, bearer: &str) -> Result<Vec<Value>> {
        let response = http()
            .get(self.url(&format!("/rest/v1/{path}")))
            .header("apikey", &self.anon_key)
            .bearer_auth(bearer)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status.is_success(), "GET /rest/v1/{path}: {status} {body}");
        match body {
            Value::Array(rows) => Ok(rows),
            other => bail!("GET /rest/v1/{path}: not a list: {other}"),
        }
    }

    /// Every refresh token the platform ever issued to `user_id` (`auth.refresh_tokens`,
    /// read through the stack's database URL).
    pub async fn refresh_tokens(&self, user_id: &str) -> Result<Vec<String>> {
        let db_url = self
            .db_url
            .as_deref()
            .context("the stack description has no db_url")?;
        let (client, connection) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
            .await
            .context("connecting to the stack's database")?;
        let task = tokio::spawn(connection);
        let rows = client
            .query(
                "select token from auth.refresh_tokens where user_id = $1::text::uuid",
                &[&user_id],
            )
            .await?;
        drop(client);
        let _ = task.await;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// The secret stored in the keyring for `account` (service `quire`), read with
    /// `secret-tool` in the same D-Bus session as the app.
    pub fn keyring_secret(&self, account: &str) -> Result<Option<String>> {
        let out = std::process::Command::new("secret-tool")
            .args(["lookup", "service", "quire", "username", account])
            .output()
            .context("running secret-tool (package libsecret-tools)")?;
        let secret = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.status.success() && !secret.is_empty()).then_some(secret))
    }
}

/// Checks once that the Secret Service keyring the app keeps its sign-in in is usable in this
/// D-Bus session (a store and a lookup with `secret-tool`), so a locked or missing keyring
/// fails with that reason rather than as a sign-in that does not stick.
pub fn ensure_keyring() -> Result<()> {
    static CHECKED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            use std::io::Write;
            let account = format!("e2e-probe-{}", unique());
            let mut store = std::process::Command::new("secret-tool")
                .args([
                    "store",
                    "--label=quire e2e probe",
                    "service",
                    "quire-e2e-probe",
                ])
                .args(["username", &account])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("running secret-tool (package libsecret-tools): {e}"))?;
            let _ = store.stdin.take().map(|mut i| i.write_all(b"probe"));
            let out = store.wait_with_output().map_err(|e| e.to_string())?;
            let looked = std::process::Command::new("secret-tool")
                .args(["lookup", "service", "quire-e2e-probe", "username", &account])
                .output()
                .map_err(|e| e.to_string())?;
            let _ = std::process::Command::new("secret-tool")
                .args(["clear", "service", "quire-e2e-probe", "username", &account])
                .output();
            if out.status.success() && looked.stdout == b"probe" {
                Ok(())
            } else {
                Err(format!(
                    "the Secret Service keyring is not usable in this D-Bus session ({}): run the \
                     tests under dbus-run-session with gnome-keyring-daemon unlocked with a \
                     non-empty password, e.g. `printf pw | gnome-keyring-daemon --unlock \
                     --components=secrets`, and wait until it owns org.freedesktop.secrets",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Whether `haystack` contains `needle` (bytes).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every JWT-shaped string (`eyJ….….…`) in `text`. No JWT of any kind (access token, anon
/// key, service key) has a reason to be in the web view.
pub fn jwts(text: &str) -> Vec<String> {
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("eyJ") {
        let candidate = &rest[start..];
        let parts: Vec<&str> = candidate
            .split(|c: char| !(b64(c) || c == '.'))
            .next()
            .unwrap_or_default()
            .splitn(4, '.')
            .collect();
        if parts.len() >= 3 && parts[0].len() > 8 && parts[1].len() > 8 && parts[2].len() > 8 {
            found.push(parts[..3].join("."));
        }
        rest = &candidate[3..];
    }
    found
}

/// The secrets a scan looks for, each with a name for the report.
pub struct Secrets(pub Vec<(String, String)>);

impl Secrets {
    /// The stack's keys and secret.
    pub fn of_stack(stack: &Stack) -> Self {
        Self(vec![
            ("the anon key".into(), stack.anon_key.clone()),
            ("the service key".into(), stack.service_role_key.clone()),
            ("the JWT secret".into(), stack.jwt_secret.clone()),
        ])
    }

    pub fn add(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.0.push((name.into(), value));
        }
    }

    /// The names of the secrets in `text`, and any JWT-shaped string.
    pub fn found_in(&self, text: &str) -> Vec<String> {
        self.found_in_except(text, &[], &[])
    }

    /// Like [`Secrets::found_in`], leaving out the secrets named `names` and the JWTs
    /// `tokens` (the anon key is fine in the app's own log, never in the web view).
    pub fn found_in_except(&self, text: &str, names: &[&str], tokens: &[&str]) -> Vec<String> {
        let mut found: Vec<String> = self
            .0
            .iter()
            .filter(|(n, v)| !names.contains(&n.as_str()) && text.contains(v.as_str()))
            .map(|(n, _)| n.clone())
            .collect();
        for jwt in jwts(text) {
            if !tokens.contains(&jwt.as_str()) {
                // The header is the same for every HS256 token; the signature's end tells
                // them apart in a report without giving the token away.
                found.push(format!("a JWT (…{})", &jwt[jwt.len() - 6..]));
            }
        }
        found
    }
}

// --- PDFs --------------------------------------------------------------------------------

/// Page 1 of the test document: an orchard.
pub const ORCHARD: &[&str] = &[
    "At Wexcombe orchard the cider apples are shaken from the trees in late September, \
     gathered into wooden crates by the pickers, carried to the old stone barn on a tractor \
     trailer, and left to mellow for a fortnight before the pressing begins.",
    "The orchard keeps forty two varieties of apple, including Kingston Black, Dabinett and \
     Yarlington Mill, and the grafting of young trees happens every February when the sap \
     is still low and the buds are dormant.",
];

/// Page 2: the harbour lantern parade, the page the question is about. Long sentences, so
/// the answer streams for several seconds at the sandbox model's pace.
pub const PARADE: &[&str] = &[
    "During the harbour lantern parade the fishing families of Port Ellery carry paper \
     lanterns shaped like herring, crabs and sailing boats along the harbour wall at dusk, \
     while the brass band plays slow marches from the end of the pier, the children ring \
     small bells at every bollard they pass, and the harbour master lights a green flare \
     from the lighthouse gallery to tell the whole town that the lantern parade has begun \
     and that the boats in the harbour must sound their horns three times in answer.",
    "When the harbour lantern parade reaches the slipway the lanterns are set afloat on \
     small rafts of driftwood and reeds, the parade stops so that the oldest skipper in the \
     harbour can read the names of the boats lost at sea, and then the lantern rafts are \
     pushed out together on the ebbing tide so that the whole harbour glows with drifting \
     lights until the last lantern of the parade burns out beyond the breakwater.",
    "The harbour lantern parade was first held in the winter of 1887 after a storm kept the \
     Port Ellery fleet in the harbour for eleven days, and the parade has been walked every \
     year since then except during the two world wars, when the lanterns were forbidden by \
     the blackout rules and the families marched along the harbour wall in silence instead.",
];

/// Page 3: a glacier survey.
pub const GLACIER: &[&str] = &[
    "The glacier survey team measures the retreat of the Solheim ice tongue every August \
     with a theodolite, a set of painted stakes drilled into the ice, and a drone that \
     photographs the crevasse field from four hundred metres above the moraine.",
];

/// The question about page 2.
pub const QUESTION: &str = "What happens during the harbour lantern parade?";

/// The three pages as text, each sentence its own paragraph, lines wrapped as on paper,
/// amid a real page's worth of placeholder prose (`fixtures::full_pages`), so each page is
/// cited on its own.
pub fn parade_pages() -> Vec<String> {
    let pages: Vec<String> = [ORCHARD, PARADE, GLACIER]
        .iter()
        .map(|sentences| {
            sentences
                .iter()
                .map(|s| fixtures::wrap(s, 88))
                .collect::<Vec<_>>()
                .join("\n\n")
        })
        .collect();
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    quire_testkit::fixtures::full_pages(&pages)
}

/// Writes the three-page test PDF as `<dir>/<title>.pdf`. Each file gets a catalogue number
/// of its own on page 3, so its bytes are new to the platform: it is extracted and indexed
/// for real rather than matched to an earlier upload of the same bytes, which would make it
/// ready at once.
pub fn write_parade_pdf(dir: &Path, title: &str) -> Result<PathBuf> {
    let mut pages = parade_pages();
    pages[2].push_str(&format!("\n\nCatalogue number {}.", unique()));
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    write(
        dir,
        &format!("{title}.pdf"),
        &quire_testkit::fixtures::text_pdf(&pages),
    )
}

/// Writes a two-page PDF as `<dir>/<title>.pdf` whose parade passage runs across the page
/// break: page 1 holds the first parade sentence, page 2 the second. Both pages together are
/// shorter than one chunk of the platform's chunking, so the passage is one chunk spanning
/// pages 1 and 2.
pub fn write_page_break_pdf(dir: &Path, title: &str) -> Result<PathBuf> {
    let first = fixtures::wrap(PARADE[0], 88);
    let second = format!(
        "{}\n\nCatalogue number {}.",
        fixtures::wrap(PARADE[1], 88),
        unique()
    );
    write(
        dir,
        &format!("{title}.pdf"),
        &quire_testkit::fixtures::text_pdf(&[&first, &second]),
    )
}

/// Writes a two-page PDF about other things (the glacier survey, the orchard) as
/// `<dir>/<title>.pdf`: a document that answers nothing about the parade.
pub fn write_other_pdf(dir: &Path, title: &str) -> Result<PathBuf> {
    let pages: Vec<String> = [GLACIER, ORCHARD]
        .iter()
        .map(|sentences| {
            sentences
                .iter()
                .map(|s| fixtures::wrap(s, 88))
                .collect::<Vec<_>>()
                .join("\n\n")
        })
        .collect();
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    write(
        dir,
        &format!("{title}.pdf"),
        &quire_testkit::fixtures::text_pdf(&pages),
    )
}

/// Writes bytes that are not a PDF under a `.pdf` name.
pub fn write_not_a_pdf(dir: &Path, name: &str) -> Result<PathBuf> {
    write(dir, name, &quire_testkit::fixtures::not_a_pdf())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Whitespace collapsed to single spaces, for comparing text across renderings.
pub fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn jwts_finds_tokens_and_nothing_else() {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlX2J5dGVz";
    assert_eq!(jwts(&format!("x\"{token}\"y")), vec![token.to_owned()]);
    assert!(jwts("eyJust a word. and eyJ.short.one").is_empty());
}

#[test]
fn parade_pages_keep_their_sentences() {
    let pages = parade_pages();
    assert_eq!(pages.len(), 3);
    assert!(squash(&pages[1]).contains(&squash(PARADE[1])));
    assert!(pages.iter().all(|p| p.lines().all(|l| l.len() <= 88)));
    assert!(!squash(&pages[0]).contains("lantern") && !squash(&pages[2]).contains("lantern"));
}
