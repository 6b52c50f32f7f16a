//! `cargo xtask demo [--second]`: Quire open, signed in as the demo user, with the demo PDFs
//! ready to ask about.
//!
//! Setup, the UI bundle and the release app, `stack up`, then for each window's profile
//! (`default`, and `second` with `--second`) a `quire-cli login` as the demo user, the demo PDFs
//! uploaded once (a document of the same title that is ready, or still indexing, counts), and
//! `target/dist/quire` started with the three values it reads (`QUIRE_API_URL`,
//! `QUIRE_ANON_KEY`, `QUIRE_COMPANION_URL`; never the service key or the JWT secret).
//!
//! With a display, the windows open there and the sign-in lives in the desktop's keyring. Without
//! one, the demo brings its own session and keeps it running after it returns: an Xvfb display,
//! a D-Bus session bus and an unlocked gnome-keyring, with `HOME` at `.quire/demo/home` (the
//! keyring file, the app's window state). The CLI logs in through that same bus, so the app finds
//! the sign-in; the demo then saves screenshots under `artifacts/demo/`. `cargo xtask stack down`
//! (or the next `demo`) stops all of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::services::Service;
use crate::stack::{self, DEMO_EMAIL, DEMO_PASSWORD, Stack};
use crate::util::{self, cmd};

/// The processes a demo starts, stopped in this order.
const APPS: [Service; 2] = [
    Service {
        name: "quire-default",
        package: "",
        binary: "quire",
    },
    Service {
        name: "quire-second",
        package: "",
        binary: "quire",
    },
];
const KEYRING: Service = Service {
    name: "keyring",
    package: "",
    binary: "gnome-keyring-daemon",
};
const DBUS: Service = Service {
    name: "dbus",
    package: "",
    binary: "dbus-daemon",
};
const XVFB: Service = Service {
    name: "xvfb",
    package: "",
    binary: "Xvfb",
};

/// Unlocks the demo's own keyring file (under `.quire/demo/home`), nothing else.
const KEYRING_PASSWORD: &str = "quire-demo";
/// The app's window size (tauri.conf.json) and the gap between windows on the virtual display.
const WINDOW: (u32, u32) = (1100, 720);
const GAP: u32 = 20;

/// Where the demo keeps its pid files, logs and (headless) home and runtime directories.
fn dir() -> PathBuf {
    util::repo_root().join(".quire/demo")
}

pub fn run(second: bool) -> Result<()> {
    let started = Instant::now();
    crate::setup::run()?;
    let app = crate::build_app()?;
    let stack = stack::up()?;
    util::step("demo: building quire-cli");
    cmd("cargo")
        .args(["build", "--quiet", "-p", "quire-cli"])
        .current_dir(util::repo_root())
        .run()?;
    let cli = Cli {
        binary: util::target_dir().join("debug/quire-cli"),
        stack: util::repo_root().join(".quire/stack.json"),
    };
    if stop()? {
        util::step("demo: stopped the previous demo's windows");
    }
    let profiles: &[&str] = if second {
        &["default", "second"]
    } else {
        &["default"]
    };
    let session = Session::start(profiles.len()).inspect_err(|_| {
        let _ = stop();
    })?;
    for profile in profiles {
        util::step(&format!(
            "demo: signing {DEMO_EMAIL} in for profile `{profile}` (quire-cli login)"
        ));
        cli.login(&session, profile)?;
    }
    let titles = demo_documents(&cli, &session)?;

    let mut windows = Vec::new();
    for (service, profile) in APPS.iter().zip(profiles) {
        util::step(&format!("demo: starting Quire (profile `{profile}`)"));
        let pid = service.start_with(&dir(), &app, |c| {
            // Of the QUIRE_* variables, only the three the app reads and its profile: nothing
            // of the stack's secrets, even when the calling shell has some exported.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("QUIRE_") {
                    c.env_remove(key);
                }
            }
            c.args(["--profile", profile])
                .stdin(Stdio::null())
                .envs(session.env.iter().map(|(k, v)| (k, v)))
                .env("QUIRE_API_URL", stack.field("api_url"))
                .env("QUIRE_ANON_KEY", stack.field("anon_key"))
                .env("QUIRE_COMPANION_URL", stack.field("companion_url"))
                .env("QUIRE_PROFILE", profile);
        })?;
        windows.push((service, *profile, pid));
    }
    let shots = match session.display {
        Some(display) => screenshots(display, &windows)?,
        None => Vec::new(),
    };
    summary(
        &stack,
        &session,
        &windows,
        &titles,
        &shots,
        started.elapsed(),
    );
    Ok(())
}

/// Stops what a previous demo started (its windows, and its own display, bus and keyring);
/// true when something was running.
pub fn stop() -> Result<bool> {
    let dir = dir();
    let mut stopped = false;
    for service in APPS.iter().chain([&KEYRING, &DBUS, &XVFB]) {
        stopped |= service.stop(&dir)?;
    }
    Ok(stopped)
}

/// Where the windows open and what their processes need in the environment.
struct Session {
    /// The virtual display's number when the demo brought its own (no display here).
    display: Option<u32>,
    /// Added to the environment of the CLI and the app.
    env: Vec<(&'static str, String)>,
}

impl Session {
    fn start(windows: usize) -> Result<Session> {
        let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        if has_display {
            return Ok(Session {
                display: None,
                env: Vec::new(),
            });
        }
        let dir = dir();
        let (home, run) = (dir.join("home"), dir.join("run"));
        for d in [&home, &run] {
            std::fs::create_dir_all(d)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        }

        let display = free_display()?;
        let n = windows as u32;
        let screen = format!("{}x{}x24", n * WINDOW.0 + (n + 1) * GAP, WINDOW.1 + 2 * GAP);
        util::step(&format!(
            "demo: no display here; starting Xvfb :{display} ({screen}), a D-Bus session and an unlocked gnome-keyring"
        ));
        XVFB.start_with(&dir, Path::new("Xvfb"), |c| {
            c.arg(format!(":{display}"))
                .args(["-screen", "0", &screen, "-nolisten", "tcp"])
                .stdin(Stdio::null());
        })?;
        wait_for(&XVFB, &dir, Duration::from_secs(15), "the X server", || {
            cmd("xdpyinfo")
                .args(["-display", &format!(":{display}")])
                .succeeds()
        })?;

        let bus_path = run.join("bus");
        let _ = std::fs::remove_file(&bus_path);
        let bus = format!("unix:path={}", bus_path.display());
        DBUS.start_with(&dir, Path::new("dbus-daemon"), |c| {
            c.args(["--session", "--nofork", "--nopidfile"])
                .arg(format!("--address={bus}"))
                .stdin(Stdio::null());
        })?;
        wait_for(&DBUS, &dir, Duration::from_secs(10), "D-Bus", || {
            bus_path.exists()
        })?;

        let env = vec![
            ("DISPLAY", format!(":{display}")),
            ("DBUS_SESSION_BUS_ADDRESS", bus.clone()),
            ("HOME", home.display().to_string()),
            ("XDG_RUNTIME_DIR", run.display().to_string()),
            ("NO_AT_BRIDGE", "1".to_owned()),
        ];
        // gnome-keyring reads the password from standard input; with --unlock it creates the
        // login keyring on the first run and unlocks it on the next ones.
        let password_file = run.join("keyring-password");
        std::fs::write(&password_file, KEYRING_PASSWORD)?;
        let stdin = std::fs::File::open(&password_file)?;
        let _ = std::fs::remove_file(&password_file);
        KEYRING.start_with(&dir, Path::new("gnome-keyring-daemon"), |c| {
            c.args(["--foreground", "--unlock", "--components=secrets"])
                .stdin(stdin)
                .envs(env.iter().map(|(k, v)| (k, v)));
        })?;
        wait_for(
            &KEYRING,
            &dir,
            Duration::from_secs(10),
            "the keyring",
            || {
                cmd("dbus-send")
                    .args([
                        "--session",
                        "--print-reply",
                        "--dest=org.freedesktop.DBus",
                        "/",
                        "org.freedesktop.DBus.NameHasOwner",
                        "string:org.freedesktop.secrets",
                    ])
                    .env("DBUS_SESSION_BUS_ADDRESS", &bus)
                    .read()
                    .is_ok_and(|out| out.contains("true"))
            },
        )?;
        Ok(Session {
            display: Some(display),
            env,
        })
    }

    fn apply(&self, c: &mut util::Cmd) {
        for (k, v) in &self.env {
            c.env(k, v);
        }
    }
}

/// A display number nobody uses (xvfb-run -a counts up from 99; this counts down from 98).
fn free_display() -> Result<u32> {
    (60..99)
        .rev()
        .find(|n| {
            !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                && !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        })
        .context("no free X display number between :60 and :98")
}

/// Polls `ready` until it holds; fails early, with the log, when the process exited.
fn wait_for(
    service: &Service,
    dir: &Path,
    within: Duration,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let start = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        if service.running_pid(dir).is_none() {
            bail!(
                "{what} exited while starting:\n{}",
                log_tail(&service.log_file(dir))
            );
        }
        if start.elapsed() > within {
            bail!(
                "{what} was not ready within {within:?}; see {}",
                service.log_file(dir).display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("--- last lines of {} ---\n{tail}", path.display())
}

/// `quire-cli` against the stack file.
struct Cli {
    binary: PathBuf,
    stack: PathBuf,
}

impl Cli {
    fn cmd(&self, session: &Session, profile: &str) -> util::Cmd {
        let mut c = cmd(&self.binary);
        c.arg("--stack")
            .arg(&self.stack)
            .args(["--profile", profile]);
        session.apply(&mut c);
        c
    }

    fn login(&self, session: &Session, profile: &str) -> Result<()> {
        self.cmd(session, profile)
            .args(["login", "--email", DEMO_EMAIL, "--password-stdin"])
            .read_with_input(format!("{DEMO_PASSWORD}\n").as_bytes())
            .with_context(|| format!("signing the demo user in for profile `{profile}`"))?;
        Ok(())
    }

    /// `(title, status)` of each of the user's documents.
    fn documents(&self, session: &Session) -> Result<Vec<(String, String)>> {
        let out = self.cmd(session, "default").arg("docs").read()?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t').skip(1);
                Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
            })
            .collect())
    }
}

/// The demo PDFs (`demo/*.pdf`), uploaded unless the user has them, and all `ready`; returns
/// their titles.
fn demo_documents(cli: &Cli, session: &Session) -> Result<Vec<String>> {
    let mut pdfs: Vec<PathBuf> = std::fs::read_dir(util::repo_root().join("demo"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    pdfs.sort();
    // The core titles a document by its file name.
    let title = |p: &Path| {
        p.file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .trim()
            .to_owned()
    };
    let titles: Vec<String> = pdfs.iter().map(|p| title(p)).collect();
    let indexing = ["stored", "extracting", "indexing"];
    let have = cli.documents(session)?;
    let missing: Vec<&PathBuf> = pdfs
        .iter()
        .filter(|p| {
            !have
                .iter()
                .any(|(t, s)| *t == title(p) && (s == "ready" || indexing.contains(&s.as_str())))
        })
        .collect();
    if missing.is_empty() {
        util::step("demo: the demo user has the demo PDFs already");
    } else {
        util::step(&format!(
            "demo: uploading {} demo PDF(s) and waiting until they are ready",
            missing.len()
        ));
        let mut upload = cli.cmd(session, "default");
        upload.arg("upload").args(&missing);
        upload.run()?;
    }
    // A document another run left indexing: wait for it.
    let start = Instant::now();
    loop {
        let have = cli.documents(session)?;
        let pending: Vec<&String> = titles
            .iter()
            .filter(|t| !have.iter().any(|(ht, s)| ht == *t && s == "ready"))
            .collect();
        if pending.is_empty() {
            return Ok(titles);
        }
        if start.elapsed() > Duration::from_secs(180) {
            bail!(
                "the demo PDFs are not ready after 3 minutes: {pending:?}; see .quire/sandbox.log"
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Waits for each window on the virtual display, puts them side by side, waits until the
/// picture settles, and saves screenshots; returns their paths.
fn screenshots(display: u32, windows: &[(&Service, &str, u32)]) -> Result<Vec<PathBuf>> {
    let x = |c: &mut util::Cmd| {
        c.env("DISPLAY", format!(":{display}"));
    };
    let mut ids = Vec::new();
    for (i, (service, profile, pid)) in windows.iter().enumerate() {
        let start = Instant::now();
        let id = loop {
            let mut search = cmd("xdotool");
            search.args(["search", "--onlyvisible", "--pid", &pid.to_string()]);
            x(&mut search);
            if let Some(id) = search
                .read()
                .ok()
                .and_then(|out| out.lines().next().map(str::to_owned))
            {
                break id;
            }
            if service.running_pid(&dir()).is_none() {
                bail!(
                    "Quire (profile `{profile}`) exited before its window appeared:\n{}",
                    log_tail(&service.log_file(&dir()))
                );
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!(
                    "no Quire window (profile `{profile}`) after 60 s; see {}",
                    service.log_file(&dir()).display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let left = GAP + i as u32 * (WINDOW.0 + GAP);
        let mut moved = cmd("xdotool");
        moved.args(["windowmove", &id, &left.to_string(), &GAP.to_string()]);
        x(&mut moved);
        moved.read()?;
        ids.push((id, *profile));
    }

    // The web view paints after the window maps: wait until two grabs a second apart are the
    // same picture (at least 3 s, at most 30 s).
    let grab = || -> Option<Vec<u8>> {
        Command::new("import")
            .args(["-display", &format!(":{display}"), "-window", "root"])
            .args(["-depth", "8", "rgb:-"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
    };
    util::step("demo: waiting for the window to finish drawing");
    let start = Instant::now();
    let mut last = grab();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = grab();
        let settled = now.is_some() && now == last;
        if (settled && start.elapsed() >= Duration::from_secs(3))
            || start.elapsed() > Duration::from_secs(30)
        {
            break;
        }
        last = now;
    }

    let out_dir = util::repo_root().join("artifacts/demo");
    std::fs::create_dir_all(&out_dir)?;
    let mut shots = Vec::new();
    let mut shoot = |window: &str, file: String| -> Result<()> {
        let path = out_dir.join(file);
        cmd("import")
            .args(["-display", &format!(":{display}"), "-window", window])
            .arg(&path)
            .read()?;
        shots.push(path);
        Ok(())
    };
    for (id, profile) in &ids {
        shoot(id, format!("quire-{profile}.png"))?;
    }
    if ids.len() > 1 {
        shoot("root", "quire-side-by-side.png".into())?;
    }
    Ok(shots)
}

fn summary(
    stack: &Stack,
    session: &Session,
    windows: &[(&Service, &str, u32)],
    titles: &[String],
    shots: &[PathBuf],
    took: Duration,
) {
    let root = util::repo_root();
    let rel = |p: &Path| p.strip_prefix(&root).unwrap_or(p).display().to_string();
    println!();
    println!(
        "Quire is running, signed in as the demo user (ready in {} s):",
        took.as_secs()
    );
    for (service, profile, pid) in windows {
        println!(
            "  window  profile `{profile}`, pid {pid}, log {}",
            rel(&service.log_file(&dir()))
        );
    }
    if windows.len() > 1 {
        println!(
            "  Ask in one window and watch the answer stream into the other (the live follow)."
        );
    }
    match session.display {
        Some(display) => {
            println!(
                "  There is no display on this machine, so the windows run on the virtual display \
                 :{display} (Xvfb, with its own D-Bus session and keyring, HOME=.quire/demo/home)."
            );
            println!("  Screenshots taken once the windows had settled:");
            for shot in shots {
                println!("    {}", rel(shot));
            }
            println!(
                "  Another one later: DISPLAY=:{display} import -window root artifacts/demo/now.png"
            );
        }
        None => println!("  The window is open on your desktop."),
    }
    println!();
    println!("The stack (details in .quire/stack.json):");
    println!("  PostgreSQL  {}", stack.db_url_redacted());
    println!(
        "  sandbox     {}  (Auth, REST, Storage, Realtime, AI)",
        stack.field("api_url")
    );
    println!("  companion   {}", stack.field("companion_url"));
    println!("  answers     from {}", stack.model());
    println!();
    println!("Demo user: {DEMO_EMAIL} / {DEMO_PASSWORD}, with these PDFs ready:");
    for title in titles {
        println!("  {title}");
    }
    println!(
        "Try: \"How do I tell a downy woodpecker from a hairy woodpecker?\" or \"How often should I descale the machine?\""
    );
    if session.display.is_some() {
        let vars: Vec<String> = session
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "The same sign-in from a terminal (in the demo's keyring session):\n  \
             env {} \\\n    target/debug/quire-cli --stack .quire/stack.json ask \"How often should I descale the machine?\"",
            vars.join(" ")
        );
    }
    println!();
    println!("Stop everything (windows included): cargo xtask stack down");
}
