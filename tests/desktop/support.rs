//! The dev stack the tests run against, fresh users, test PDFs, and looking at the database
//! and for secrets.
//!
//! The test process reads the stack's secrets (`QUIRE_STACK`, written by `cargo xtask stack
//! up`): it creates users with the service key and checks rows behind the app's back. The app
//! itself only ever gets the API URL, the anon key and the companion URL (see `driver.rs`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, ensure};
use quire_testkit::{Api, StackInfo, User as Session, fixtures};

/// The stack described by `QUIRE_STACK` (else the checkout's `.quire/stack.json`): its
/// endpoints, with the secrets of the test process ([`StackInfo::load`]).
pub fn stack() -> Result<&'static Api> {
    static STACK: OnceLock<Api> = OnceLock::new();
    let api = STACK.get_or_init(|| {
        let mut api = Api::new(StackInfo::load());
        // One `Api` for every test, but each test has its own runtime: a pooled connection
        // dies with the runtime that opened it ("runtime dropped the dispatch task" in the
        // next test to pick it up). Keep no idle connection between requests.
        api.http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        api
    });
    ensure!(
        api.companion_url().is_some_and(|u| !u.is_empty()),
        "the stack description has no `companion_url`"
    );
    Ok(api)
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

/// What the window tests do with the dev stack beyond [`Api`]'s endpoints.
pub trait DevStack {
    /// The environment the app gets: the three values of `Config::load` (IPC.md).
    fn app_env(&self) -> [(&'static str, String); 3];
    /// A confirmed email user, created through the Auth admin API with the service key.
    async fn new_user(&self, label: &str) -> Result<User>;
    /// Signs `user` in with a password grant (a session of the test's own).
    async fn tokens(&self, user: &User) -> Result<Session>;
    /// Every refresh token the platform ever issued to `user_id` (`auth.refresh_tokens`,
    /// read through the stack's database URL).
    async fn refresh_tokens(&self, user_id: &str) -> Result<Vec<String>>;
    /// The secret stored in the keyring for `account` (service `quire`), read with
    /// `secret-tool` in the same D-Bus session as the app.
    fn keyring_secret(&self, account: &str) -> Result<Option<String>>;
}

impl DevStack for Api {
    fn app_env(&self) -> [(&'static str, String); 3] {
        [
            ("QUIRE_API_URL", self.info.api_url.clone()),
            ("QUIRE_ANON_KEY", self.info.anon_key.clone()),
            (
                "QUIRE_COMPANION_URL",
                self.companion_url().unwrap_or_default().to_owned(),
            ),
        ]
    }

    async fn new_user(&self, label: &str) -> Result<User> {
        let email = format!("e2e-{label}-{}@quire.test", unique());
        let password = format!("pw-{}-{}", unique(), unique());
        let id = self.create_user(&email, &password).await;
        Ok(User {
            id: id.to_string(),
            email,
            password,
        })
    }

    async fn tokens(&self, user: &User) -> Result<Session> {
        Ok(self.session(&user.email, &user.password).await)
    }

    async fn refresh_tokens(&self, user_id: &str) -> Result<Vec<String>> {
        ensure!(
            self.info.db_url.is_some(),
            "the stack description has no db_url"
        );
        let rows = self
            .connect_db()
            .await
            .query(
                "select token from auth.refresh_tokens where user_id = $1::text::uuid",
                &[&user_id],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    fn keyring_secret(&self, account: &str) -> Result<Option<String>> {
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
    pub fn of_stack(stack: &Api) -> Self {
        Self(vec![
            ("the anon key".into(), stack.anon_key()),
            ("the service key".into(), stack.service_key()),
            ("the JWT secret".into(), stack.jwt_secret()),
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
    fixtures::full_pages(&pages)
}

/// Writes the three-page test PDF as `<dir>/<title>.pdf`. Each file gets a catalogue number
/// of its own on page 3, so its bytes are new to the platform: it is extracted and indexed
/// for real rather than matched to an earlier upload of the same bytes, which would make it
/// ready at once.
pub fn write_parade_pdf(dir: &Path, title: &str) -> Result<PathBuf> {
    let mut pages = parade_pages();
    pages[2].push_str(&format!("\n\nCatalogue number {}.", unique()));
    let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
    write(dir, &format!("{title}.pdf"), &fixtures::text_pdf(&pages))
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
        &fixtures::text_pdf(&[&first, &second]),
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
    write(dir, &format!("{title}.pdf"), &fixtures::text_pdf(&pages))
}

/// Writes bytes that are not a PDF under a `.pdf` name.
pub fn write_not_a_pdf(dir: &Path, name: &str) -> Result<PathBuf> {
    write(dir, name, &fixtures::not_a_pdf())
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

/// Held for the whole run of a test that types into a native dialog, drags onto its window
/// with real X events, or (the security sweep) opens native dialogs and leaves them open: the
/// window tests share one X display, and a dialog one app opens takes the keyboard focus or the
/// pointer another test is using. The other window tests run beside them as before.
pub fn x_input() -> std::sync::MutexGuard<'static, ()> {
    static X_INPUT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding it leaves nothing behind that matters.
    X_INPUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
