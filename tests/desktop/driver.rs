//! Starting `tauri-driver` and a WebDriver session on the Quire binary, one per app instance,
//! and the helpers the tests use to look at and drive the window.
//!
//! Every instance gets its own profile (`QUIRE_PROFILE`) and its own `XDG_CONFIG_HOME`,
//! `XDG_DATA_HOME` and `XDG_CACHE_HOME`, so several instances run side by side (a second
//! "device", another user) and tests can share the dev stack. The app inherits its
//! environment from tauri-driver (through WebKitWebDriver): only `QUIRE_API_URL`,
//! `QUIRE_ANON_KEY`, `QUIRE_COMPANION_URL` and `QUIRE_PROFILE` of the `QUIRE_*` variables are
//! set there (and a `QUIRE_E2E_*` answer a test gives, [`App::launch_with`]), and the launch
//! checks in `/proc` that the app got exactly those.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use quire_testkit::Api;
pub use quire_testkit::window::{app_binary, repo_root};
use quire_testkit::window::{end_group, free_port, tauri_driver, wait_for_port};
use serde_json::{Value, json};

use crate::support::{self, DevStack as _};

/// How long the UI may take for ordinary things (a click, a list to render).
pub const UI: Duration = Duration::from_secs(20);
/// How long an upload may take to become ready (extraction and indexing included).
pub const INGEST: Duration = Duration::from_secs(120);
/// How long an answer may take to finish.
pub const ANSWER: Duration = Duration::from_secs(120);

/// Where screenshots and app logs go (`artifacts/e2e/`, which CI keeps).
pub fn artifacts() -> PathBuf {
    quire_testkit::logs::artifacts("e2e")
}

/// One "device": a profile name and the directories the app keeps its files in. Launching
/// an [`App`] twice with the same `Profile` is the same device restarted (its keyring entry
/// signs it in again).
pub struct Profile {
    pub name: String,
    /// The project this device is set up for: the dev stack unless [`Profile::on`] says.
    stack: Option<Api>,
    /// Whether the app is given the project's values (`QUIRE_API_URL`…); a first run
    /// ([`Profile::first_run`]) is not, and asks for its server.
    configured: bool,
    config: tempfile::TempDir,
    data: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Profile {
    pub fn new(label: &str) -> Result<Self> {
        Ok(Self {
            name: format!("e2e-{label}-{}", support::unique()),
            stack: None,
            configured: true,
            config: tempfile::tempdir()?,
            data: tempfile::tempdir()?,
            cache: tempfile::tempdir()?,
        })
    }

    /// A device set up for `stack` rather than the dev stack: a stack of the test's own
    /// (`quire_testkit::Stack`), for a platform the other tests must not share (`own_model.rs`).
    pub fn on(label: &str, stack: &Api) -> Result<Self> {
        Ok(Self {
            stack: Some(stack.clone()),
            ..Self::new(label)?
        })
    }

    /// A device on `stack` whose app is given nothing of the project: it starts on the connect
    /// screen, as after installing, and keeps the server it connects to.
    pub fn first_run(label: &str, stack: &Api) -> Result<Self> {
        Ok(Self {
            configured: false,
            ..Self::on(label, stack)?
        })
    }

    /// The stack the app of this profile is launched against.
    pub fn stack(&self) -> Result<&Api> {
        match &self.stack {
            Some(stack) => Ok(stack),
            None => support::stack(),
        }
    }

    /// The keyring account of this profile (IPC.md, "Launching the app").
    pub fn keyring_account(&self, stack: &Api) -> String {
        format!("{}#{}", stack.info.api_url.trim_end_matches('/'), self.name)
    }

    /// Every directory the app may write files in for this profile.
    pub fn dirs(&self) -> [&Path; 3] {
        [self.config.path(), self.data.path(), self.cache.path()]
    }
}

/// A running app under WebDriver control. Dropping it ends the session's whole process group
/// (tauri-driver does not end its WebKitWebDriver child by itself; see
/// docs/desktop-on-linux.md §4).
pub struct App {
    pub client: Client,
    driver: Child,
    /// `<test>-<instance>`: the prefix of this instance's screenshots and log.
    name: String,
    shots: AtomicU32,
    /// The app process (a grandchild of tauri-driver).
    pub pid: u32,
    pub log: PathBuf,
}

impl App {
    /// Launches Quire on `profile` through a fresh tauri-driver on a free port. `test` and
    /// `instance` name the screenshots (`artifacts/e2e/<test>-<instance>-NN-<label>.png`).
    pub async fn launch(test: &str, instance: &str, profile: &Profile) -> Result<Self> {
        Self::launch_with(test, instance, profile, &[]).await
    }

    /// Like [`App::launch`], with `env` in the app's environment too: the answer of a native
    /// dialog (`QUIRE_E2E_CONFIRM_LINKS`, docs/desktop-on-linux.md §4), a `PATH` with a
    /// recorder first.
    pub async fn launch_with(
        test: &str,
        instance: &str,
        profile: &Profile,
        env: &[(&str, String)],
    ) -> Result<Self> {
        if std::env::var_os("DISPLAY").is_none() {
            bail!("no DISPLAY: run the end-to-end tests through `cargo xtask test` (Xvfb + D-Bus)");
        }
        let stack = profile.stack()?;
        support::ensure_keyring()?;
        let app = app_binary()?;
        let name = format!("{test}-{instance}");
        std::fs::create_dir_all(artifacts().join("logs"))?;
        // Appended to: a restarted instance keeps the earlier run's lines.
        let log = artifacts().join("logs").join(format!("{name}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let port = free_port()?;
        let native_port = free_port()?;
        let mut command = Command::new(tauri_driver());
        command.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ]);
        // The test process knows the stack file and its secrets; the app gets only what a
        // user's machine would have.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("QUIRE_") {
                command.env_remove(&key);
            }
        }
        if profile.configured {
            command.envs(stack.app_env());
        }
        command
            .env("QUIRE_PROFILE", &profile.name)
            .env("XDG_CONFIG_HOME", profile.config.path())
            .env("XDG_DATA_HOME", profile.data.path())
            .env("XDG_CACHE_HOME", profile.cache.path())
            // WebKitWebDriver's screenshots never return without compositing, which the app
            // turns off in software (docs/desktop-on-linux.md §8): keep it on for the tests.
            .env("NO_AT_BRIDGE", "1")
            .env("WEBKIT_DISABLE_COMPOSITING_MODE", "0")
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .process_group(0);
        let driver = command
            .spawn()
            .context("starting tauri-driver (installed by `cargo xtask setup`)")?;
        let mut guard = GroupGuard(Some(driver));
        wait_for_port(port, Duration::from_secs(20)).await?;
        let caps = json!({
            "browserName": "wry",
            "tauri:options": { "application": app },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        // WebKitWebDriver waits for ever for a browser that exited at once (a profile whose
        // window is still open, for instance): bound the wait and show the app's output.
        let mut builder = ClientBuilder::native();
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{port}");
        let connect = builder.connect(&url);
        let client = match tokio::time::timeout(Duration::from_secs(60), connect).await {
            Ok(client) => client.with_context(|| {
                format!(
                    "opening a WebDriver session on the app (its output: {})",
                    log.display()
                )
            })?,
            Err(_) => {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = output.lines().rev().take(12).collect();
                bail!(
                    "the app did not open a window within 60 s; the end of its output ({}):\n{}",
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        };
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(60)),
                Some(Duration::ZERO),
            ))
            .await?;
        let driver = guard.0.take().expect("guard holds the driver");
        let pid = match app_process(driver.id(), &app) {
            Some(pid) => pid,
            None => {
                let mut driver = driver;
                end_group(&mut driver);
                bail!("no process of {} below tauri-driver", app.display());
            }
        };
        let launched = Self {
            client,
            driver,
            name,
            shots: AtomicU32::new(0),
            pid,
            log,
        };
        launched.check_environment(stack, profile)?;
        launched.check_given(env)?;
        Ok(launched)
    }

    /// The app got the three project values and its profile from tauri-driver, and nothing
    /// else of the test's `QUIRE_*` environment (the stack file, secrets).
    fn check_environment(&self, stack: &Api, profile: &Profile) -> Result<()> {
        let environ = std::fs::read(format!("/proc/{}/environ", self.pid))
            .context("reading the app's environment")?;
        let vars: Vec<(String, String)> = environ
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect();
        let get = |key: &str| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let given: &[&str] = if profile.configured {
            &[
                "QUIRE_ANON_KEY",
                "QUIRE_API_URL",
                "QUIRE_COMPANION_URL",
                "QUIRE_PROFILE",
            ]
        } else {
            &["QUIRE_PROFILE"]
        };
        for (key, value) in stack.app_env().into_iter().filter(|_| profile.configured) {
            ensure!(
                get(key) == Some(value.as_str()),
                "the app did not inherit {key} from tauri-driver"
            );
        }
        ensure!(get("QUIRE_PROFILE") == Some(profile.name.as_str()));
        ensure!(get("XDG_DATA_HOME") == profile.data.path().to_str());
        let mut quire: Vec<&str> = vars
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("QUIRE_") && !k.starts_with("QUIRE_E2E_"))
            .collect();
        quire.sort();
        ensure!(quire == given, "the app's QUIRE_* environment: {quire:?}");
        for secret in [&stack.info.service_role_key, &stack.info.jwt_secret] {
            ensure!(
                !support::contains(&environ, secret),
                "a stack secret is in the app's environment"
            );
        }
        Ok(())
    }

    /// Saves a PNG of the web view under `artifacts/e2e/<test>-<instance>-NN-<label>.png`.
    pub async fn screenshot(&self, label: &str) -> Result<PathBuf> {
        // The WebDriver screenshot can lag the DOM by a frame or two.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client.screenshot().await?;
        let dir = artifacts();
        std::fs::create_dir_all(&dir)?;
        let n = self.shots.fetch_add(1, Ordering::Relaxed) + 1;
        let path = dir.join(format!("{}-{n:02}-{label}.png", self.name));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// A screenshot that never fails the test (for failure paths).
    pub async fn try_screenshot(&self, label: &str) {
        if let Err(e) = self.screenshot(label).await {
            eprintln!("{}: no screenshot `{label}`: {e:#}", self.name);
        }
    }

    /// Ends the WebDriver session and every process it started, and waits until the app has
    /// exited (so the same profile can be launched again at once).
    pub async fn close(mut self) -> Result<()> {
        let result = self.client.clone().close().await;
        end_group(&mut self.driver);
        end_process(self.pid).await;
        result.map_err(Into::into)
    }

    // --- reading the DOM -----------------------------------------------------------------

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Every element with `data-testid` = `testid` (optionally narrowed by `extra`, a CSS
    /// attribute selector such as `[data-id="…"]`), read in one go: its `data-*` attributes,
    /// `aria-current`, its rendered text and, for an answer, its `message-body`'s text.
    pub async fn items(&self, testid: &str, extra: &str) -> Result<Vec<Item>> {
        self.items_css(&format!("{}{extra}", testid_css(testid)))
            .await
    }

    /// Like [`App::items`], for any CSS selector.
    pub async fn items_css(&self, css: &str) -> Result<Vec<Item>> {
        let found = self
            .js(
                r#"const [sel] = arguments;
                   return Array.from(document.querySelectorAll(sel)).map(el => {
                     const body = el.querySelector('[data-testid="message-body"]');
                     return {
                       data: Object.assign({}, el.dataset),
                       current: el.getAttribute('aria-current'),
                       role: el.getAttribute('role'),
                       visible: !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length),
                       text: el.innerText ?? el.textContent ?? '',
                       value: 'value' in el ? String(el.value) : null,
                       body: body ? (body.innerText ?? body.textContent ?? '') : null,
                     };
                   });"#,
                vec![json!(css)],
            )
            .await?;
        Ok(serde_json::from_value(found)?)
    }

    /// The first element matching, if any.
    pub async fn item(&self, testid: &str, extra: &str) -> Result<Option<Item>> {
        Ok(self.items(testid, extra).await?.into_iter().next())
    }

    /// Waits until an element with `testid` (and `extra`) exists and returns it.
    pub async fn wait_item(&self, testid: &str, extra: &str, within: Duration) -> Result<Item> {
        self.wait_until(&format!("{testid}{extra}"), within, |items| {
            items.into_iter().next()
        })
        .await
    }

    /// Polls the elements with `testid` until `check` accepts them.
    pub async fn wait_until<T>(
        &self,
        testid: &str,
        within: Duration,
        mut check: impl FnMut(Vec<Item>) -> Option<T>,
    ) -> Result<T> {
        let (id, extra) = match testid.find('[') {
            Some(i) => testid.split_at(i),
            None => (testid, ""),
        };
        let start = Instant::now();
        loop {
            if let Some(v) = check(self.items(id, extra).await?) {
                return Ok(v);
            }
            if start.elapsed() > within {
                self.try_screenshot(&format!("timeout-{id}")).await;
                let seen = self.items(id, extra).await.unwrap_or_default();
                bail!(
                    "{}: timed out after {within:?} waiting on `{testid}`; last seen: {seen:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element to click or type into.
    pub async fn element(&self, testid: &str, extra: &str) -> Result<Element> {
        let css = format!("{}{extra}", testid_css(testid));
        let start = Instant::now();
        loop {
            match self.client.find(Locator::Css(&css)).await {
                Ok(el) => return Ok(el),
                Err(e) if start.elapsed() > UI => {
                    self.try_screenshot(&format!("missing-{testid}")).await;
                    return Err(e).with_context(|| format!("{}: no `{css}`", self.name));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn click(&self, testid: &str, extra: &str) -> Result<()> {
        self.element(testid, extra)
            .await?
            .click()
            .await
            .with_context(|| format!("{}: clicking {testid}{extra}", self.name))?;
        Ok(())
    }

    pub async fn type_into(&self, testid: &str, text: &str) -> Result<()> {
        let el = self.element(testid, "").await?;
        el.clear().await?;
        el.send_keys(text).await?;
        Ok(())
    }

    /// The page's whole text and markup, for "none of A's data is here" checks.
    pub async fn page_text(&self) -> Result<String> {
        let v = self
            .js(
                "return document.documentElement.innerText + '\\n' + document.documentElement.outerHTML;",
                vec![],
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    // --- talking to the shell like the UI does -------------------------------------------

    /// Calls a shell command from the page, as `ui/src/backend.ts` does:
    /// `Ok(value)` when the promise resolved, `Err(error)` when it rejected. An `ArrayBuffer`
    /// result comes back as `{"bytes": <length>, "latin1": <the bytes as Latin-1 text>}`.
    pub async fn invoke(&self, command: &str, args: Value) -> Result<Result<Value, Value>> {
        self.invoke_within(command, args, Duration::from_secs(45))
            .await?
            .with_context(|| format!("{}: `{command}` did not answer", self.name))
    }

    /// Like [`App::invoke`], `None` when the command has not answered within `within`
    /// (a native dialog waiting for a person, for instance).
    pub async fn invoke_within(
        &self,
        command: &str,
        args: Value,
        within: Duration,
    ) -> Result<Option<Result<Value, Value>>> {
        let v = self
            .client
            .execute_async(
                r#"const [name, args, ms, done] = arguments;
                   const bytes = v => {
                     const u8 = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
                     let s = '';
                     for (let i = 0; i < u8.length; i++) s += String.fromCharCode(u8[i]);
                     return { bytes: u8.length, latin1: s };
                   };
                   const plain = v => (v instanceof ArrayBuffer || v instanceof Uint8Array) ? bytes(v) : v;
                   const timer = setTimeout(() => done({ pending: true }), ms);
                   let call;
                   try { call = window.__TAURI_INTERNALS__.invoke(name, args); }
                   catch (e) { clearTimeout(timer); done({ err: String(e) }); return; }
                   call.then(
                     v => { clearTimeout(timer); done({ ok: plain(v) === undefined ? null : plain(v) }); },
                     e => { clearTimeout(timer); done({ err: e === undefined ? null : e }); });"#,
                vec![json!(command), args, json!(within.as_millis() as u64)],
            )
            .await
            .with_context(|| format!("{}: invoking `{command}`", self.name))?;
        if v.get("pending").is_some() {
            return Ok(None);
        }
        Ok(Some(match v.get("err") {
            Some(e) => Err(e.clone()),
            None => Ok(v.get("ok").cloned().unwrap_or(Value::Null)),
        }))
    }

    /// Starts keeping every payload of the shell's `quire://*` events in the page
    /// (`window.__e2eEvents`), through the same `plugin:event|listen` call `listen()` makes.
    pub async fn record_events(&self) -> Result<()> {
        let v = self
            .client
            .execute_async(
                r#"const done = arguments[0];
                   const t = window.__TAURI_INTERNALS__;
                   window.__e2eEvents = window.__e2eEvents || [];
                   const names = ['quire://auth', 'quire://live', 'quire://update', 'quire://resync', 'quire://upload'];
                   Promise.all(names.map(event => t.invoke('plugin:event|listen', {
                     event, target: { kind: 'Any' },
                     handler: t.transformCallback(e => window.__e2eEvents.push({ event, payload: e.payload, at: performance.now() })),
                   }))).then(() => done({ ok: true }), e => done({ err: String(e) }));"#,
                vec![],
            )
            .await?;
        ensure!(
            v.get("ok").is_some(),
            "listening to the shell's events: {v}"
        );
        Ok(())
    }

    /// The events recorded since [`App::record_events`].
    pub async fn recorded_events(&self) -> Result<Vec<Value>> {
        let v = self.js("return window.__e2eEvents || [];", vec![]).await?;
        Ok(serde_json::from_value(v)?)
    }

    /// Starts recording, on every DOM change, each element with `testid` whose state changed
    /// (its `data-*` and its text / `message-body` text): a record of every intermediate
    /// state, independent of how fast the test polls.
    pub async fn observe(&self, key: &str, testid: &str) -> Result<()> {
        self.js(
            r#"const [key, sel] = arguments;
               window.__e2eSeen = window.__e2eSeen || {};
               const rec = window.__e2eSeen[key] = [];
               const last = new Map();
               const snap = () => {
                 for (const el of document.querySelectorAll(sel)) {
                   const body = el.querySelector('[data-testid="message-body"]');
                   const state = {
                     data: Object.assign({}, el.dataset),
                     text: body ? (body.textContent ?? '') : (el.textContent ?? ''),
                     at: performance.now(),
                   };
                   const id = el.dataset.id ?? '';
                   const k = JSON.stringify([state.data, state.text]);
                   if (last.get(id) !== k) { last.set(id, k); rec.push(state); }
                 }
               };
               snap();
               new MutationObserver(snap).observe(document.documentElement,
                 { subtree: true, childList: true, characterData: true, attributes: true });
               return true;"#,
            vec![json!(key), json!(testid_css(testid))],
        )
        .await?;
        Ok(())
    }

    /// What [`App::observe`] recorded under `key`.
    pub async fn observed(&self, key: &str) -> Result<Vec<Seen>> {
        let v = self
            .js(
                "const [key] = arguments; return (window.__e2eSeen || {})[key] || [];",
                vec![json!(key)],
            )
            .await?;
        Ok(serde_json::from_value(v)?)
    }

    // --- flows ---------------------------------------------------------------------------

    /// Types the credentials into the sign-in form and submits it.
    pub async fn submit_sign_in(&self, email: &str, password: &str) -> Result<()> {
        self.type_into("sign-in-email", email).await?;
        self.type_into("sign-in-password", password).await?;
        self.click("sign-in-submit", "").await
    }

    /// Signs in through the UI and waits for the signed-in window (the account menu and the
    /// composer).
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<()> {
        self.wait_item("sign-in-email", "", UI).await?;
        self.submit_sign_in(email, password).await?;
        self.wait_signed_in().await
    }

    pub async fn wait_signed_in(&self) -> Result<()> {
        self.wait_item("account-menu", "", UI).await?;
        self.wait_item("composer", "", UI).await?;
        Ok(())
    }

    /// Waits for the live indicator to say `live` (the Realtime socket joined).
    pub async fn wait_live(&self) -> Result<()> {
        self.wait_item("live-indicator", r#"[data-state="live"]"#, UI)
            .await
            .map(|_| ())
    }

    /// The app got `given` ([`App::launch_with`]), and of the `QUIRE_E2E_*` variables only
    /// those given.
    fn check_given(&self, given: &[(&str, String)]) -> Result<()> {
        let environ = std::fs::read(format!("/proc/{}/environ", self.pid))
            .context("reading the app's environment")?;
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|kv| String::from_utf8_lossy(kv).into_owned())
            .collect();
        for (key, value) in given {
            ensure!(
                vars.contains(&format!("{key}={value}")),
                "the app did not get {key} from tauri-driver"
            );
        }
        let e2e = vars
            .iter()
            .filter(|kv| kv.starts_with("QUIRE_E2E_"))
            .count();
        let asked = given
            .iter()
            .filter(|(k, _)| k.starts_with("QUIRE_E2E_"))
            .count();
        ensure!(
            e2e == asked,
            "the app has QUIRE_E2E_* variables it was not given"
        );
        Ok(())
    }

    /// Drops files on the window for real (XDND, `xdnd.rs`), as a person drags them from a file
    /// manager: the shell uploads only files dropped on it, and the page calls `upload_files`
    /// with them. Returns once the window took the drop.
    pub async fn drop_files(&self, paths: &[&Path]) -> Result<()> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        let pid = self.pid;
        tokio::task::spawn_blocking(move || crate::xdnd::drop_files(pid, &paths, UI))
            .await?
            .with_context(|| format!("{}: dropping files on the window", self.name))
    }

    /// Waits for the sidebar's document titled `title` to reach `status` and returns it.
    pub async fn wait_document(&self, title: &str, status: &str, within: Duration) -> Result<Item> {
        let extra = format!(r#"[data-title="{}"]"#, css_escape(title));
        self.wait_until(&format!("document{extra}"), within, |items| {
            let doc = items.into_iter().next()?;
            if doc.data("status") != status && matches!(doc.data("status"), "failed" | "no_text") {
                return Some(Err(anyhow::anyhow!(
                    "the document `{title}` went to {:?} instead of {status}: {doc:?}",
                    doc.data("status")
                )));
            }
            (doc.data("status") == status).then_some(Ok(doc))
        })
        .await?
    }

    /// Types a question into the composer and sends it.
    pub async fn ask(&self, question: &str) -> Result<()> {
        self.type_into("composer", question).await?;
        self.click("send", "").await
    }

    /// Waits for the newest assistant message and returns it.
    pub async fn wait_answer(&self) -> Result<Item> {
        self.wait_until(r#"message[data-role="assistant"]"#, ANSWER, |items| {
            items.into_iter().last()
        })
        .await
    }

    /// Waits for the assistant message `id` to reach a final status and returns it. A
    /// complete answer is returned once its text is drawn too: a message mounted as
    /// `complete` (a short answer that finished before the conversation was shown) has an
    /// empty body for a moment, until its Markdown is rendered.
    pub async fn wait_answer_settled(&self, id: &str) -> Result<Item> {
        let extra = format!(r#"[data-id="{}"]"#, css_escape(id));
        self.wait_until(&format!("message{extra}"), ANSWER, |items| {
            items.into_iter().next().filter(|m| match m.data("status") {
                "streaming" => false,
                "complete" => m.body.as_deref().is_some_and(|b| !b.trim().is_empty()),
                _ => true,
            })
        })
        .await
    }
}

impl Drop for App {
    fn drop(&mut self) {
        end_group(&mut self.driver);
    }
}

/// One element as [`App::items`] reads it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Item {
    pub data: std::collections::BTreeMap<String, String>,
    pub current: Option<String>,
    pub role: Option<String>,
    pub visible: bool,
    pub text: String,
    pub value: Option<String>,
    pub body: Option<String>,
}

impl Item {
    /// A `data-*` attribute (camelCased as in `dataset`: `data-document-id` is `documentId`).
    pub fn data(&self, key: &str) -> &str {
        self.data.get(key).map(String::as_str).unwrap_or_default()
    }
}

/// One state [`App::observe`] recorded.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Seen {
    pub data: std::collections::BTreeMap<String, String>,
    pub text: String,
    /// When, in the page's `performance.now()` milliseconds.
    pub at: f64,
}

impl Seen {
    pub fn data(&self, key: &str) -> &str {
        self.data.get(key).map(String::as_str).unwrap_or_default()
    }
}

/// The selector of the message `id`.
pub fn message_css(id: &str) -> String {
    format!(r#"[data-testid="message"][data-id="{}"]"#, css_escape(id))
}

pub fn testid_css(testid: &str) -> String {
    format!(r#"[data-testid="{testid}"]"#)
}

/// Escapes a value for a double-quoted CSS attribute selector.
pub fn css_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The app process below tauri-driver (tauri-driver → WebKitWebDriver → quire).
fn app_process(driver: u32, app: &Path) -> Option<u32> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let found = std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            (exe == app && descends_from(pid, driver)).then_some(pid)
        });
        if found.is_some() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..16 {
        if pid == ancestor {
            return true;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The command name may hold spaces and parentheses; the ppid follows the last `)`.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        else {
            return false;
        };
        pid = ppid;
    }
    false
}

/// Waits for process `pid` to exit: SIGTERM after 5 s, SIGKILL after 15 s.
async fn end_process(pid: u32) {
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    };
    let start = Instant::now();
    let mut signalled = None;
    while alive() {
        let elapsed = start.elapsed();
        let signal = if elapsed > Duration::from_secs(15) {
            Some("-KILL")
        } else if elapsed > Duration::from_secs(5) {
            Some("-TERM")
        } else {
            None
        };
        if signal.is_some() && signal != signalled {
            eprintln!("the app (pid {pid}) is still running after the session ended: {signal:?}");
            let _ = Command::new("kill")
                .args([signal.unwrap_or("-TERM"), &pid.to_string()])
                .stderr(Stdio::null())
                .status();
            signalled = signal;
        }
        if elapsed > Duration::from_secs(20) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct GroupGuard(Option<Child>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            end_group(child);
        }
    }
}
