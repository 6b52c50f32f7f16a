//! `cargo xtask bench` (desktop part): the app as it ships (`target/dist/quire`, or
//! `QUIRE_APP_BIN`) under Xvfb, side by side with a bare WebKitGTK window.
//!
//! 1. The binary's size, as built and stripped.
//! 2. Launch: WebDriver new-session request → an interactive window (the composer, or the
//!    sign-in form, present, visible and enabled), median of several launches — vs a bare
//!    `WebKitWebDriver` session on `about:blank` in WebKitGTK's own `MiniBrowser` (same WebKit,
//!    no app). Interactivity is polled through WebDriver `execute` every 10 ms; both sides pay
//!    the same polling. Each launch's timeline as the page saw it is printed too: when the
//!    page was created, its navigation milestones, then interactive.
//! 3. Memory: proportional set size (`/proc/<pid>/smaps_rollup` `Pss`) summed over the app
//!    process and every process below it (WebKitWebProcess, WebKitNetworkProcess, …), after
//!    start, after opening a 500-message conversation, after streaming an answer into it, and
//!    after opening a 5,000-message one — vs the same sum for MiniBrowser on `about:blank`.
//! 4. Streaming: 200 `delta` rows per second written into `chat_events` the way the companion
//!    writes them (`append_chat_events`), so the app's Realtime follower path renders them
//!    (the path a second device takes, and the heaviest one: the companion coalesces deltas,
//!    this does not). Frame intervals are recorded inside the page with
//!    `requestAnimationFrame`: max, p99, frames > 50 ms — vs the same page idle for as long.
//!    Where the page's JavaScript went meanwhile, in all and inside each frame over 50 ms: the
//!    `quire://update` handlers and the other animation-frame callbacks, each with the
//!    microtasks it queued (Svelte's DOM updates). The answer's text on screen is sampled
//!    every second and compared with what had been written so far.
//! 5. Opening a conversation of 500 and of 5,000 messages: click in the sidebar → its latest
//!    message in the DOM and a frame painted after it, timed inside the page — vs a
//!    20-message one; each opened once, after an unmeasured warm-up opening.
//!
//! Conversations are seeded straight into Postgres as the companion leaves finished turns
//! (`complete` rows, questions and Markdown answers alternating).
//!
//! The bench brings up its own stack (a throwaway PostgreSQL, the sandbox, the companion), one
//! user, and runs the app with its own HOME, profile and unlocked gnome-keyring. It re-executes
//! itself under `xvfb-run` and `dbus-run-session` (docs/desktop-on-linux.md §3, §7).
//!
//! Numbers are printed, never asserted: benchmarks measure, tests decide.
//!
//! `QUIRE_BENCH_QUICK=1` (for iterating on one step): one launch per side instead of
//! [`LAUNCHES`], and no 5,000-message conversation; the streaming step is unchanged.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use quire_testkit::window::{self, app_binary, free_port, tauri_driver, wait_for_port};
use serde_json::{Value, json};
use uuid::Uuid;

/// Set in the re-executed child, which runs under Xvfb and its own session bus.
const UNDER_XVFB: &str = "QUIRE_BENCH_UNDER_XVFB";
const SCREEN: &str = "-screen 0 1280x800x24";
const EMAIL: &str = "bench@quire.test";
const PASSWORD: &str = "bench password, long enough";
const PROFILE: &str = "bench";
const KEYRING_PASSWORD: &str = "bench-keyring";
const MINIBROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";
/// Launches per side for the launch-time median.
const LAUNCHES: usize = 5;
/// How long a window is left alone before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// WebDriver polling interval while waiting for an interactive window.
const POLL: Duration = Duration::from_millis(10);
const DELTAS_PER_SECOND: u64 = 200;
const STREAM_SECONDS: u64 = 10;
const PATIENCE: Duration = Duration::from_secs(60);
/// Set (to anything) for a quick run: see the module doc.
const QUICK: &str = "QUIRE_BENCH_QUICK";

fn main() -> Result<()> {
    if std::env::var_os(UNDER_XVFB).is_none() {
        return reexec_under_xvfb();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// Runs this same binary again under a private Xvfb and D-Bus session, so nothing is left behind
/// and every run sees the same 1280×800 screen.
fn reexec_under_xvfb() -> Result<()> {
    for tool in ["xvfb-run", "dbus-run-session", "gnome-keyring-daemon"] {
        if !on_path(tool) {
            bail!("{tool} is missing: `cargo xtask setup` installs it");
        }
    }
    let status = Command::new("xvfb-run")
        .args(["-a", "-s", SCREEN, "dbus-run-session", "--"])
        .arg(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env(UNDER_XVFB, "1")
        .env("NO_AT_BRIDGE", "1")
        .status()
        .context("running xvfb-run")?;
    if !status.success() {
        bail!("the desktop bench failed under Xvfb ({status})");
    }
    Ok(())
}

async fn run() -> Result<()> {
    let quick = std::env::var_os(QUICK).is_some();
    let launches = if quick { 1 } else { LAUNCHES };
    let app = app_binary()?;
    println!(
        "desktop app under Xvfb (1280x800x24, 2 cores): {}\n",
        app.display()
    );

    // 1. Size.
    print_size(&app)?;

    // The session: own HOME (config, window state, WebKit caches), unlocked keyring.
    let home = tempfile::tempdir()?;
    let env = Env::new(home.path())?;
    let _keyring = env.keyring()?;

    // The stack.
    let stack = Stack::up().await?;
    let owner = stack.create_user(EMAIL, PASSWORD).await?;
    let warm_up = stack.seed(owner, "bench: warm-up", 20).await?;
    let seeded_20 = stack.seed(owner, "bench: 20 messages", 20).await?;
    let seeded_500 = stack.seed(owner, "bench: 500 messages", 500).await?;
    let seeded_5000 = if quick {
        None
    } else {
        Some(stack.seed(owner, "bench: 5,000 messages", 5000).await?)
    };
    let mut env = env;
    env.vars.extend([
        ("QUIRE_API_URL".into(), stack.api.clone()),
        ("QUIRE_ANON_KEY".into(), stack.anon.clone()),
        ("QUIRE_COMPANION_URL".into(), stack.companion_url.clone()),
        ("QUIRE_PROFILE".into(), PROFILE.into()),
    ]);

    // 2 + 3. Launch and memory: the baseline first.
    let (mut base_launch, mut base_session, mut base_pss) = baseline(&env, launches).await?;

    // The app: the first launch signs in through the form when the UI has one.
    let first = Window::app(&app, &env).await?;
    let (_, state) = first.until_interactive(&[]).await?;
    let ui = match state {
        Interactive::SignIn => {
            first.sign_in(EMAIL, PASSWORD).await?;
            true
        }
        Interactive::Composer => true,
        _ => false,
    };
    first.close().await;

    // Signed in (the UI) or not (the placeholder): every launch must end the same way.
    let expected: &[Interactive] = if ui { &[Interactive::Composer] } else { &[] };
    let (mut app_launch, mut app_session, mut app_pss, marker, window) =
        app_launches(&app, &env, launches, expected).await?;

    print_launch(
        launches,
        marker,
        (median(&mut base_session), median(&mut app_session)),
        (median(&mut base_launch), median(&mut app_launch)),
    );

    let rows = Rows {
        base: median_pss(&mut base_pss),
    };
    let start = median_pss(&mut app_pss);
    rows.header();
    rows.row("baseline: MiniBrowser about:blank", &rows.base);
    rows.row(&format!("after start ({})", marker.describe()), &start);

    if !ui {
        println!(
            "    500- and 5,000-message conversations: n/a (the window shows {}; no sign-in form yet)\n",
            marker.describe()
        );
        println!(
            "  streaming 200 deltas/s, opening a 5,000-message conversation: n/a until the UI lands\n"
        );
        window.close().await;
        return Ok(());
    }

    // 3 (cont.) and 5: the 500-message conversation, after a warm-up opening (so the first
    // measured one does not pay for the page's cold code paths) and a 20-message one.
    window.open_conversation(&warm_up).await?;
    let open_20 = window.open_conversation(&seeded_20).await?;
    let open_500 = window.open_conversation(&seeded_500).await?;
    tokio::time::sleep(SETTLE).await;
    rows.row("after opening 500 messages", &window.pss()?);

    // 4. 200 deltas per second into that conversation.
    let streamed = streaming(&window, &stack, owner, seeded_500.id, &rows).await?;

    // 5. The 5,000-message conversation.
    let open_5000 = match &seeded_5000 {
        Some(seeded) => {
            let open = window.open_conversation(seeded).await?;
            tokio::time::sleep(SETTLE).await;
            rows.row("after opening 5,000 messages", &window.pss()?);
            Some(open)
        }
        None => None,
    };
    println!("    (ratios: against the baseline; \"network\" includes any other child process;");
    println!("     PSS shares a page among all its mappers machine-wide, so it drops while other");
    println!("     WebKit processes run; \"private\" = Private_Clean + Private_Dirty does not)\n");

    streamed.print();
    print_opening(open_20, open_500, open_5000);
    window.close().await;
    Ok(())
}

/// Prints the binary's size, as built and stripped.
fn print_size(app: &Path) -> Result<()> {
    let size = std::fs::metadata(app)?.len();
    let stripped = stripped_size(app)?;
    println!("  binary size");
    println!("    {:<34} {:>10}", "target/dist/quire", mib_bytes(size));
    match stripped {
        Some(s) if s != size => println!(
            "    {:<34} {:>10}   ({:.0}% of the build)",
            "stripped",
            mib_bytes(s),
            100.0 * s as f64 / size as f64
        ),
        Some(_) => println!("    {:<34} {:>10}", "stripped (already)", mib_bytes(size)),
        None => println!("    {:<34} {:>10}", "stripped", "n/a (no strip)"),
    }
    println!();
    Ok(())
}

/// MiniBrowser launched `launches` times: to interactive, to an established session, and its PSS
/// after settling, per launch.
async fn baseline(env: &Env, launches: usize) -> Result<(Vec<Duration>, Vec<Duration>, Vec<Pss>)> {
    let mut launch = Vec::new();
    let mut session = Vec::new();
    let mut pss = Vec::new();
    for _ in 0..launches {
        let window = Window::minibrowser(env).await?;
        let (elapsed, _) = window.until_interactive(&[]).await?;
        launch.push(elapsed);
        session.push(window.connected);
        tokio::time::sleep(SETTLE).await;
        pss.push(window.pss()?);
        window.close().await;
    }
    Ok((launch, session, pss))
}

/// The app launched `launches` times, each to one of the `expected` states: to interactive, to an
/// established session and its PSS after settling per launch, the state reached, and the last
/// window, left open.
async fn app_launches(
    app: &Path,
    env: &Env,
    launches: usize,
    expected: &[Interactive],
) -> Result<(Vec<Duration>, Vec<Duration>, Vec<Pss>, Interactive, Window)> {
    let mut launch = Vec::new();
    let mut session = Vec::new();
    let mut pss = Vec::new();
    println!("  launch timelines (ms after the new-session request; the page's own clock):");
    for n in 0..launches {
        let window = Window::app(app, env).await?;
        let (elapsed, state) = window.until_interactive(expected).await?;
        println!("    {}", window.timeline(elapsed).await?);
        launch.push(elapsed);
        session.push(window.connected);
        tokio::time::sleep(SETTLE).await;
        pss.push(window.pss()?);
        if n + 1 == launches {
            return Ok((launch, session, pss, state, window));
        }
        window.close().await;
    }
    bail!("no launch (LAUNCHES is 0)")
}

/// Prints the launch medians: (baseline, Quire) to an established session and to an interactive
/// window.
fn print_launch(
    launches: usize,
    marker: Interactive,
    session: (Duration, Duration),
    interactive: (Duration, Duration),
) {
    println!();
    println!(
        "  launch → interactive window (median of {launches}; WebDriver polled every {} ms)",
        POLL.as_millis()
    );
    println!(
        "    {:<34} {:>10} {:>10} {:>7}",
        "", "baseline", "Quire", "ratio"
    );
    for (label, (base, quire)) in [
        ("new session → session established", session),
        (
            &*format!("new session → {}", marker.describe()),
            interactive,
        ),
    ] {
        println!(
            "    {:<34} {:>10.2?} {:>10.2?} {:>6.1}×",
            label,
            base,
            quire,
            quire.as_secs_f64() / base.as_secs_f64()
        );
    }
    println!("    (baseline: WebKitWebDriver + MiniBrowser on about:blank, same WebKitGTK)\n");
}

/// The memory table's rows, with ratios against the baseline.
struct Rows {
    base: Pss,
}

impl Rows {
    fn header(&self) {
        println!(
            "  memory: PSS of the app and its WebKit processes, {} s after each step",
            SETTLE.as_secs()
        );
        println!(
            "    {:<34} {:>10} {:>10} {:>10} {:>10} {:>7} {:>10} {:>7}",
            "", "app", "web", "network", "PSS", "ratio", "private", "ratio"
        );
    }

    fn row(&self, label: &str, pss: &Pss) {
        println!(
            "    {:<34} {:>10} {:>10} {:>10} {:>10} {:>6.2}× {:>10} {:>6.2}×",
            label,
            mib(pss.app),
            mib(pss.web),
            mib(pss.network + pss.other),
            mib(pss.total()),
            pss.total() as f64 / self.base.total() as f64,
            mib(pss.private),
            pss.private as f64 / self.base.private as f64
        );
    }
}

/// What streaming an answer into the open conversation cost.
struct Streamed {
    sent: u64,
    achieved: f64,
    idle: Vec<f64>,
    streaming: Vec<f64>,
    /// The page's JavaScript while streaming (`FRAMES_STOP`).
    js: Value,
    /// Samples of the answer's text on screen while it streamed that were what had been
    /// written so far (every word once, in order), of all samples taken.
    shown: (usize, usize),
    catch_up: Duration,
    churn: Value,
    growth: Vec<(&'static str, i64)>,
}

/// Streams an answer into `conversation` (open in the window) and measures it; prints the
/// memory row after it.
async fn streaming(
    window: &Window,
    stack: &Stack,
    owner: Uuid,
    conversation: Uuid,
    rows: &Rows,
) -> Result<Streamed> {
    let maps_before = window.web_maps()?;
    let idle = window
        .frames(Duration::from_secs(STREAM_SECONDS), async {
            Ok::<_, anyhow::Error>(())
        })
        .await?;
    let answer = stack.begin_turn(owner, conversation).await?;
    window.client.execute(CHURN_START, vec![]).await?;
    let pumped = window
        .frames(Duration::ZERO, async {
            let (sent, shown) =
                tokio::try_join!(stack.stream(&answer), window.sample_text(answer.message_id))?;
            let finished = Instant::now();
            window.until_complete(answer.message_id).await?;
            Ok((sent, shown, finished.elapsed()))
        })
        .await?;
    let ((sent, achieved), shown, catch_up) = pumped.result;
    let written = letters(&(1..=sent).map(delta_text).collect::<String>());
    let in_order = shown
        .iter()
        .filter(|text| written.starts_with(&letters(text)))
        .count();
    let churn = window.client.execute(CHURN_STOP, vec![]).await?;
    tokio::time::sleep(SETTLE).await;
    rows.row(
        &format!("after streaming {sent} deltas there"),
        &window.pss()?,
    );
    Ok(Streamed {
        sent,
        achieved,
        idle: idle.intervals,
        streaming: pumped.intervals,
        js: pumped.js,
        shown: (in_order, shown.len()),
        catch_up,
        churn,
        growth: growth(&maps_before, &window.web_maps()?),
    })
}

impl Streamed {
    fn print(&self) {
        let Self { sent, achieved, .. } = self;
        println!(
            "  streaming: {sent} deltas at {DELTAS_PER_SECOND}/s (achieved {achieved:.0}/s) as chat_events rows → Realtime → the app"
        );
        println!(
            "    {:<34} {:>10} {:>10} {:>10} {:>10} {:>7}",
            "frames (requestAnimationFrame)", "frames", "max", "p99", "> 50 ms", "fps"
        );
        for (label, f) in [
            ("baseline: same page, idle", &self.idle),
            ("while streaming", &self.streaming),
        ] {
            let f = FrameStats(f);
            println!(
                "    {:<34} {:>10} {:>8.1}ms {:>8.1}ms {:>10} {:>7.1}",
                label,
                f.len(),
                f.max(),
                f.quantile(0.99),
                f.longer_than(50.0),
                f.fps()
            );
        }
        let long = FrameStats(&self.streaming).long_frames(50.0);
        if !long.is_empty() {
            let at: Vec<String> = long
                .iter()
                .map(|(at, ms)| format!("{ms:.0} ms at {:.1} s", at / 1000.0))
                .collect();
            println!("    frames over 50 ms while streaming: {}", at.join(", "));
        }
        self.print_js();
        println!(
            "    last row written → answer shown complete: {:.0?} (polled every 50 ms)",
            self.catch_up
        );
        println!(
            "    the answer's text on screen while streaming, sampled every second: {} of {} samples were what had been written so far (each word once, in order)",
            self.shown.0, self.shown.1
        );
        let churn = &self.churn;
        println!(
            "    DOM churn in the page while streaming: {} nodes added, {} removed, {} text changes, in {} batches",
            churn["added"], churn["removed"], churn["text"], churn["batches"]
        );
        println!("    web process growth while streaming, by mapping (PSS):");
        for (kind, kib) in &self.growth {
            println!("      {kind:<32} {:>+10.1} MiB", *kib as f64 / 1024.0);
        }
        println!();
    }
}

impl Streamed {
    /// Where the page's JavaScript time went while streaming, and inside each long frame:
    /// `update` = the `quire://update` handlers, `frame` = other animation-frame callbacks
    /// (the rest of a long frame is parsing the events' scripts, style, layout, paint, GC).
    fn print_js(&self) {
        let part = |v: &Value| {
            format!(
                "{} runs, {:.1} ms (max {:.1})",
                v["n"],
                v["ms"].as_f64().unwrap_or(0.0),
                v["max"].as_f64().unwrap_or(0.0)
            )
        };
        println!(
            "    page JS while streaming: updates {}; frame callbacks {}",
            part(&self.js["update"]),
            part(&self.js["frame"])
        );
        for long in self.js["long"].as_array().into_iter().flatten() {
            println!(
                "      a {:.0} ms frame: updates {}; frame callbacks {}",
                long["ms"].as_f64().unwrap_or(0.0),
                part(&long["update"]),
                part(&long["frame"])
            );
        }
    }
}

/// Prints click → last message painted, and the messages then in the DOM, per conversation size.
fn print_opening(open_20: (f64, u64), open_500: (f64, u64), open_5000: Option<(f64, u64)>) {
    println!("  opening a conversation: click in the sidebar → latest message rendered (in-page)");
    println!(
        "    {:<34} {:>10} {:>10} {:>10} {:>7}",
        "", "20", "500", "5,000", "ratio"
    );
    match open_5000 {
        Some(open_5000) => {
            println!(
                "    {:<34} {:>8.0}ms {:>8.0}ms {:>8.0}ms {:>6.1}×",
                "click → last message painted",
                open_20.0,
                open_500.0,
                open_5000.0,
                open_5000.0 / open_20.0
            );
            println!(
                "    {:<34} {:>10} {:>10} {:>10}",
                "messages then in the DOM", open_20.1, open_500.1, open_5000.1
            );
        }
        None => {
            println!(
                "    {:<34} {:>8.0}ms {:>8.0}ms {:>10}",
                "click → last message painted", open_20.0, open_500.0, "(quick)"
            );
            println!(
                "    {:<34} {:>10} {:>10} {:>10}",
                "messages then in the DOM", open_20.1, open_500.1, "(quick)"
            );
        }
    }
    println!(
        "    (baseline: a 20-message conversation; each opened once, after a warm-up opening)\n"
    );
}

// ---------------------------------------------------------------------------------------------
// The stack

struct Stack {
    /// The servers (quire-testkit's full stack), kept alive for the bench.
    kit: quire_testkit::Stack,
    admin: tokio_postgres::Client,
    api: String,
    anon: String,
    companion_url: String,
}

/// A seeded conversation and the id of its latest message.
struct Seeded {
    id: Uuid,
    last_message: Uuid,
}

/// An answer being streamed.
struct Turn {
    message_id: Uuid,
}

impl Stack {
    async fn up() -> Result<Self> {
        let kit = quire_testkit::spawn_stack().await;
        Ok(Self {
            admin: kit.db.admin().await,
            api: kit.api_base().to_owned(),
            anon: kit.anon_key(),
            companion_url: kit.companion_url().context("a companion")?.to_owned(),
            kit,
        })
    }

    async fn create_user(&self, email: &str, password: &str) -> Result<Uuid> {
        Ok(self.kit.create_user(email, password).await)
    }

    /// A conversation of `messages` finished rows, questions and Markdown answers alternating,
    /// as the companion leaves them (`complete`, no citations).
    async fn seed(&self, owner: Uuid, title: &str, messages: i32) -> Result<Seeded> {
        let id: Uuid = self
            .admin
            .query_one(
                "insert into public.conversations (owner_id, title) values ($1, $2) returning id",
                &[&owner, &title],
            )
            .await?
            .get(0);
        self.admin
            .execute(
                "insert into public.chat_messages (conversation_id, owner_id, seq, role, status, content, created_at) \
                 select $1, $2, n, \
                        case when n % 2 = 0 then 'user' else 'assistant' end, 'complete', \
                        case when n % 2 = 0 \
                          then 'Question ' || n || ': what does the manual say about part ' || (n % 37) || '?' \
                          else '**Part ' || (n % 37) || '** is covered on page ' || (n % 211) || '.' || E'\\n\\n' \
                               || '- It ships with two glass jars and a *1200 W* motor.' || E'\\n' \
                               || '- Rinse the jars with warm water after every use; never put the base in water.' || E'\\n' \
                               || '- The motor is covered for five years, the jars for one.' || E'\\n\\n' \
                               || 'See `section ' || n || '` for the exploded view and the list of spare parts.' \
                        end, \
                        now() - make_interval(secs => $3 - n) \
                 from generate_series(0, $3 - 1) as n",
                &[&id, &owner, &messages],
            )
            .await?;
        let last_message: Uuid = self
            .admin
            .query_one(
                "select id from public.chat_messages where conversation_id = $1 order by seq desc limit 1",
                &[&id],
            )
            .await?
            .get(0);
        Ok(Seeded { id, last_message })
    }

    /// The question's row and the answer's `streaming` row, as `begin_chat_turn` writes them.
    async fn begin_turn(&self, owner: Uuid, conversation: Uuid) -> Result<Turn> {
        let row = self
            .admin
            .query_one(
                "select message_id from public.begin_chat_turn($1, $2, $3)",
                &[
                    &conversation,
                    &owner,
                    &"Summarise the warranty terms, please.",
                ],
            )
            .await?;
        Ok(Turn {
            message_id: row.get(0),
        })
    }

    /// Writes a `context` row, then one `delta` row every 1/200 s for `STREAM_SECONDS` (each
    /// through `append_chat_events`, with the text so far), then finishes the answer. Returns the
    /// deltas written and the rate achieved.
    async fn stream(&self, turn: &Turn) -> Result<(u64, f64)> {
        let append = "select public.append_chat_events($1, $2, $3)";
        self.admin
            .execute(
                append,
                &[
                    &turn.message_id,
                    &json!([{"seq": 0, "kind": "context", "payload": {"chunks": [], "dropped": 0}}]),
                    &None::<String>,
                ],
            )
            .await?;
        let total = DELTAS_PER_SECOND * STREAM_SECONDS;
        let mut content = String::new();
        let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / DELTAS_PER_SECOND));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let started = Instant::now();
        for n in 1..=total {
            ticks.tick().await;
            let piece = delta_text(n);
            content.push_str(&piece);
            self.admin
                .execute(
                    append,
                    &[
                        &turn.message_id,
                        &json!([{"seq": n as i32, "kind": "delta", "payload": {"text": piece}}]),
                        &content,
                    ],
                )
                .await?;
        }
        let achieved = total as f64 / started.elapsed().as_secs_f64();
        let complete = json!([{
            "seq": total as i32 + 1,
            "kind": "complete",
            "payload": {"status": "complete", "content": content, "citations": [], "run_id": null},
        }]);
        self.admin
            .execute(
                "select public.finish_chat_message($1, $2, 'complete', $3)",
                &[&turn.message_id, &complete, &content],
            )
            .await?;
        Ok((total, achieved))
    }
}

/// The letters and digits of a text: what its Markdown source and its rendering share.
fn letters(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// The n-th piece of a streamed answer: words, with some Markdown every so often.
fn delta_text(n: u64) -> String {
    const WORDS: [&str; 8] = [
        "the", "motor", "is", "covered", "for", "five", "years", "and",
    ];
    let word = WORDS[(n % WORDS.len() as u64) as usize];
    match n % 60 {
        0 => "\n\n".to_owned(),
        20 => format!(" **{word}**"),
        40 => format!(" `{word}`"),
        _ => format!(" {word}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The windows

/// The environment every window runs in.
struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(home: &Path) -> Result<Self> {
        let runtime = home.join("run");
        for dir in [".config", ".local/share", ".cache", "run"] {
            std::fs::create_dir_all(home.join(dir))?;
        }
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        let s = |p: PathBuf| p.to_string_lossy().into_owned();
        Ok(Self {
            vars: vec![
                ("HOME".into(), s(home.to_path_buf())),
                ("XDG_CONFIG_HOME".into(), s(home.join(".config"))),
                ("XDG_DATA_HOME".into(), s(home.join(".local/share"))),
                ("XDG_CACHE_HOME".into(), s(home.join(".cache"))),
                ("XDG_RUNTIME_DIR".into(), s(runtime)),
                ("NO_AT_BRIDGE".into(), "1".into()),
            ],
        })
    }

    /// An unlocked gnome-keyring (Secret Service) on this session bus, where the app keeps its
    /// sign-in; ended when the returned guard drops.
    fn keyring(&self) -> Result<Group> {
        let mut daemon = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting gnome-keyring-daemon")?;
        if let Some(mut stdin) = daemon.stdin.take() {
            stdin.write_all(KEYRING_PASSWORD.as_bytes())?;
        }
        // Ready once it owns org.freedesktop.secrets on this session bus.
        let start = Instant::now();
        loop {
            let owned = Command::new("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("true"));
            if owned {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("gnome-keyring-daemon did not register on the session bus");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Group(daemon))
    }
}

/// What made a window count as interactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interactive {
    Composer,
    SignIn,
    Placeholder,
    Blank,
}

impl Interactive {
    fn describe(self) -> &'static str {
        match self {
            Interactive::Composer => "composer enabled",
            Interactive::SignIn => "sign-in form enabled",
            Interactive::Placeholder => "placeholder page, script ran",
            Interactive::Blank => "about:blank loaded",
        }
    }
}

/// Returns which interactive state the page is in, or null.
const PROBE: &str = r#"
const ok = (e) => e && !e.disabled && e.getClientRects().length > 0;
if (ok(document.querySelector('[data-testid="composer"]'))) return 'composer';
if (ok(document.querySelector('[data-testid="sign-in-email"]'))) return 'sign-in';
const status = document.querySelector('#status');
if (status && status.textContent !== 'Starting…' && !document.querySelector('[data-testid]')) return 'placeholder';
if (location.href === 'about:blank' && document.readyState === 'complete') return 'blank';
return null;
"#;

/// Clicks a conversation in the sidebar (at the item's centre, as a pointer would) and records,
/// in the page, the time until its latest message is in the DOM and a frame has been painted
/// after it (two animation frames), and how many messages the DOM then holds.
const OPEN: &str = r#"
const [conversation, last] = arguments;
window.__quireOpen = null;
const item = document.querySelector(`[data-testid="conversation"][data-id="${conversation}"]`);
if (!item) return 'no sidebar item';
item.scrollIntoView({ block: 'center' });
const r = item.getBoundingClientRect();
let target = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
if (!target || !item.contains(target)) target = item.querySelector('button') || item;
const t0 = performance.now();
const check = () => {
  if (document.querySelector(`[data-testid="message"][data-id="${last}"]`)) {
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.__quireOpen = {
        ms: performance.now() - t0,
        messages: document.querySelectorAll('[data-testid="message"]').length,
      };
    }));
  } else {
    requestAnimationFrame(check);
  }
};
target.click();
check();
return null;
"#;

/// When the page was created and its navigation milestones, on the page's clock
/// (`performance.timeOrigin` is wall-clock ms). WebKit lists no resource timing for the app's
/// IPC (`ipc://`), so what follows `load` is the UI's start: its listeners, `session`, the
/// first render.
const TIMELINE: &str = r#"
const nav = performance.getEntriesByType('navigation')[0];
return {
  origin: performance.timeOrigin,
  nav: nav ? [nav.responseEnd, nav.domInteractive, nav.domContentLoadedEventEnd, nav.loadEventEnd] : null,
};
"#;

/// The text of one message's body as shown (`arguments[0]`: its id), or null.
const SHOWN_TEXT: &str = r#"
const body = document.querySelector(`[data-testid="message"][data-id="${arguments[0]}"] [data-testid="message-body"]`);
return body ? body.textContent : null;
"#;

/// Records every animation frame's timestamp into `window.__quireFrames` until stopped, and the
/// page's own JavaScript while it runs: each `quire://update` handler (the store's work; the
/// script that carries the event is parsed before it) and each other animation-frame callback
/// (the app's coalesced refresh and Markdown render), each with the microtasks it queued (where
/// Svelte updates the DOM), as `[start, ms, kind]`.
const FRAMES_START: &str = r#"
const raf = window.requestAnimationFrame;
const rec = { run: true, times: [], work: [], raf, undo: [] };
window.__quireFrames = rec;
const tick = (t) => { rec.times.push(t); if (rec.run) raf.call(window, tick); };
// Until the microtasks it queued have run too: Svelte applies state changes to the DOM in one.
const timed = (f, kind) => function (...args) {
  const s = performance.now();
  try { return f.apply(this, args); } finally {
    queueMicrotask(() => { if (rec.run) rec.work.push([s, performance.now() - s, kind]); });
  }
};
window.requestAnimationFrame = (cb) => raf.call(window, timed(cb, 'frame'));
rec.undo.push(() => { window.requestAnimationFrame = raf; });
const callbacks = window.__TAURI_INTERNALS__ && window.__TAURI_INTERNALS__.callbacks;
const events = window.__internal_unstable_listeners_object_id__;
const listeners = events && events['quire://update'];
if (callbacks && listeners) {
  for (const id of Object.getOwnPropertyNames(listeners)) {
    const handler = listeners[id].handlerId;
    const f = callbacks.get(handler);
    if (!f) continue;
    callbacks.set(handler, timed(f, 'update'));
    rec.undo.push(() => callbacks.set(handler, f));
  }
}
raf.call(window, tick);
return null;
"#;

/// Stops recording: the frame intervals and, per frame over 50 ms, the page's JavaScript that
/// started inside it, plus the totals over the whole recording.
const FRAMES_STOP: &str = r#"
const rec = window.__quireFrames;
rec.run = false;
rec.undo.forEach((u) => u());
const intervals = [];
const long = [];
const sum = (list, kind) => {
  const of = list.filter((w) => w[2] === kind);
  return { n: of.length, ms: of.reduce((a, w) => a + w[1], 0), max: of.reduce((a, w) => Math.max(a, w[1]), 0) };
};
for (let i = 1; i < rec.times.length; i++) {
  const ms = rec.times[i] - rec.times[i - 1];
  intervals.push(ms);
  if (ms > 50) {
    const inside = rec.work.filter((w) => w[0] >= rec.times[i - 1] && w[0] < rec.times[i]);
    long.push({ ms, update: sum(inside, 'update'), frame: sum(inside, 'frame') });
  }
}
return { intervals, long, update: sum(rec.work, 'update'), frame: sum(rec.work, 'frame') };
"#;

/// Counts DOM mutations in the page (nodes added and removed, text changes) until stopped: how
/// much of the document a streaming answer rebuilds.
const CHURN_START: &str = r#"
const rec = { added: 0, removed: 0, text: 0, batches: 0 };
const observer = new MutationObserver((records) => {
  rec.batches += 1;
  for (const r of records) {
    if (r.type === 'characterData') rec.text += 1;
    rec.added += r.addedNodes.length;
    rec.removed += r.removedNodes.length;
  }
});
observer.observe(document.body, { childList: true, subtree: true, characterData: true });
window.__quireChurn = { rec, observer };
return null;
"#;

const CHURN_STOP: &str = r#"
const { rec, observer } = window.__quireChurn;
for (const r of observer.takeRecords()) {
  if (r.type === 'characterData') rec.text += 1;
  rec.added += r.addedNodes.length;
  rec.removed += r.removedNodes.length;
}
observer.disconnect();
return rec;
"#;

/// One window under WebDriver: the driver's process group and its session.
struct Window {
    client: Client,
    driver: Group,
    /// The program whose process (and descendants) the memory figures cover.
    program: String,
    requested: Instant,
    /// The same instant on the wall clock, to place the page's own timeline.
    requested_at: std::time::SystemTime,
    /// New-session request → session established (the process is up and its web view
    /// answers WebDriver).
    connected: Duration,
}

impl Window {
    /// Quire through tauri-driver, as the end-to-end tests run it (tests/desktop/driver.rs),
    /// with the bench's environment and profile.
    async fn app(app: &Path, env: &Env) -> Result<Self> {
        let port = free_port()?;
        let native = free_port()?;
        let driver = Command::new(tauri_driver())
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .envs(env.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting tauri-driver (installed by `cargo xtask setup`)")?;
        let caps = json!({
            "browserName": "wry",
            "tauri:options": { "application": app, "args": ["--profile", PROFILE] },
        });
        Self::connect(Group(driver), port, caps, "quire").await
    }

    /// WebKitGTK's MiniBrowser through WebKitWebDriver directly, on about:blank.
    async fn minibrowser(env: &Env) -> Result<Self> {
        let port = free_port()?;
        let driver = Command::new("WebKitWebDriver")
            .arg(format!("--port={port}"))
            .envs(env.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("starting WebKitWebDriver")?;
        let caps = json!({
            "webkitgtk:browserOptions": { "binary": MINIBROWSER, "args": ["--automation"] },
        });
        Self::connect(Group(driver), port, caps, "MiniBrowser").await
    }

    async fn connect(driver: Group, port: u16, caps: Value, program: &str) -> Result<Self> {
        wait_for_port(port, Duration::from_secs(20)).await?;
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let requested = Instant::now();
        let requested_at = std::time::SystemTime::now();
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .with_context(|| format!("opening a WebDriver session on {program}"))?;
        Ok(Self {
            client,
            driver,
            program: program.to_owned(),
            requested,
            requested_at,
            connected: requested.elapsed(),
        })
    }

    /// Polls until the page is interactive (in one of the `accepted` ways, any when empty); the
    /// time since the new-session request.
    async fn until_interactive(&self, accepted: &[Interactive]) -> Result<(Duration, Interactive)> {
        loop {
            let state = self.client.execute(PROBE, vec![]).await;
            let at = self.requested.elapsed();
            let found = match state.ok().as_ref().and_then(Value::as_str) {
                Some("composer") => Some(Interactive::Composer),
                Some("sign-in") => Some(Interactive::SignIn),
                Some("placeholder") => Some(Interactive::Placeholder),
                Some("blank") => Some(Interactive::Blank),
                _ => None,
            };
            if let Some(found) = found.filter(|f| accepted.is_empty() || accepted.contains(f)) {
                return Ok((at, found));
            }
            if at > PATIENCE {
                bail!("{} was not interactive after {PATIENCE:?}", self.program);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One line: the launch as the page saw it (`TIMELINE`), then `interactive`, as polled.
    async fn timeline(&self, interactive: Duration) -> Result<String> {
        let t = self.client.execute(TIMELINE, vec![]).await?;
        let requested_ms = self
            .requested_at
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs_f64()
            * 1000.0;
        let created = t["origin"].as_f64().unwrap_or(requested_ms) - requested_ms;
        let at = |v: &Value| created + v.as_f64().unwrap_or(0.0);
        let mut line = format!("page created {created:.0}");
        if let Some(nav) = t["nav"].as_array() {
            line += &format!(
                ", response {:.0}, DOM interactive {:.0}, DOMContentLoaded {:.0}, load {:.0}",
                at(&nav[0]),
                at(&nav[1]),
                at(&nav[2]),
                at(&nav[3])
            );
        }
        line += &format!("; interactive {:.0}", interactive.as_secs_f64() * 1000.0);
        Ok(line)
    }

    async fn sign_in(&self, email: &str, password: &str) -> Result<()> {
        let c = &self.client;
        c.find(Locator::Css(r#"[data-testid="sign-in-email"]"#))
            .await?
            .send_keys(email)
            .await?;
        c.find(Locator::Css(r#"[data-testid="sign-in-password"]"#))
            .await?
            .send_keys(password)
            .await?;
        c.find(Locator::Css(r#"[data-testid="sign-in-submit"]"#))
            .await?
            .click()
            .await?;
        let start = Instant::now();
        loop {
            let state = self
                .client
                .execute(
                    r#"
                    if (document.querySelector('[data-testid="composer"]')) return 'ok';
                    const e = document.querySelector('[data-testid="sign-in-error"]');
                    return e && e.textContent.trim() ? e.textContent.trim() : null;
                    "#,
                    vec![],
                )
                .await?;
            match state.as_str() {
                Some("ok") => return Ok(()),
                Some(error) => bail!("signing in through the form failed: {error}"),
                None if start.elapsed() > PATIENCE => {
                    bail!("no composer {PATIENCE:?} after signing in")
                }
                None => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    async fn wait_for(&self, css: &str, what: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            let found = self
                .client
                .execute(
                    "return document.querySelector(arguments[0]) !== null;",
                    vec![json!(css)],
                )
                .await;
            if matches!(found, Ok(Value::Bool(true))) {
                return Ok(());
            }
            if start.elapsed() > PATIENCE {
                bail!("timed out after {PATIENCE:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Click in the sidebar → latest message painted, in milliseconds (timed in the page), and
    /// the number of messages then in the DOM.
    async fn open_conversation(&self, seeded: &Seeded) -> Result<(f64, u64)> {
        let item = format!(r#"[data-testid="conversation"][data-id="{}"]"#, seeded.id);
        self.wait_for(&item, "the conversation in the sidebar")
            .await?;
        // Already open (a UI may reopen the latest conversation at start): start from a new chat.
        let selected = format!(r#"{item}[aria-current="page"]"#);
        let open = self
            .client
            .execute(
                "return document.querySelector(arguments[0]) !== null;",
                vec![json!(selected)],
            )
            .await?;
        if open == Value::Bool(true) {
            self.client
                .find(Locator::Css(r#"[data-testid="new-chat"]"#))
                .await?
                .click()
                .await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let started = self
            .client
            .execute(
                OPEN,
                vec![
                    json!(seeded.id.to_string()),
                    json!(seeded.last_message.to_string()),
                ],
            )
            .await?;
        if let Some(problem) = started.as_str() {
            bail!("opening {}: {problem}", seeded.id);
        }
        let start = Instant::now();
        loop {
            let done = self
                .client
                .execute("return window.__quireOpen;", vec![])
                .await?;
            if let Some(ms) = done["ms"].as_f64() {
                return Ok((ms, done["messages"].as_u64().unwrap_or(0)));
            }
            if start.elapsed() > PATIENCE {
                bail!("the latest message of {} never rendered", seeded.id);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn until_complete(&self, message: Uuid) -> Result<()> {
        self.wait_for(
            &format!(r#"[data-testid="message"][data-id="{message}"][data-status="complete"]"#),
            "the streamed answer to show complete",
        )
        .await
    }

    /// The text of `message`'s body on screen, once a second while the bench's answer streams.
    async fn sample_text(&self, message: Uuid) -> Result<Vec<String>> {
        let mut samples = Vec::new();
        for _ in 1..STREAM_SECONDS {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let text = self
                .client
                .execute(SHOWN_TEXT, vec![json!(message.to_string())])
                .await?;
            if let Some(text) = text.as_str() {
                samples.push(text.to_owned());
            }
        }
        Ok(samples)
    }

    /// Records animation frames while `work` runs, and at least for `at_least`.
    async fn frames<T>(
        &self,
        at_least: Duration,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<Frames<T>> {
        self.client.execute(FRAMES_START, vec![]).await?;
        let started = Instant::now();
        let result = work.await?;
        if let Some(rest) = at_least.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        let mut stopped = self.client.execute(FRAMES_STOP, vec![]).await?;
        let intervals: Vec<f64> = serde_json::from_value(stopped["intervals"].take())?;
        Ok(Frames {
            intervals,
            js: stopped,
            result,
        })
    }

    /// The PSS of the windowed program's process and everything below it.
    fn pss(&self) -> Result<Pss> {
        let table = processes()?;
        let app = descendants(&table, self.driver.0.id())
            .into_iter()
            .find(|pid| table[pid].1 == self.program)
            .with_context(|| format!("no {} process below the driver", self.program))?;
        let mut pss = Pss::default();
        for pid in std::iter::once(app).chain(descendants(&table, app)) {
            let (kib, private) = rollup_kib(pid).unwrap_or((0, 0));
            pss.private += private;
            match table[&pid].1.as_str() {
                _ if pid == app => pss.app += kib,
                "WebKitWebProces" | "WebKitWebProcess" => pss.web += kib,
                "WebKitNetworkPr" | "WebKitNetworkProcess" => pss.network += kib,
                _ => pss.other += kib,
            }
        }
        Ok(pss)
    }

    /// The web process's PSS by kind of mapping (KiB), to see where it grows: the malloc heap,
    /// anonymous memory (JavaScriptCore's heap, Mesa's and other allocators' arenas), shared
    /// buffers (memfd, /dev/shm, DRM), and files (libraries, fonts, caches).
    fn web_maps(&self) -> Result<HashMap<&'static str, u64>> {
        let table = processes()?;
        let mut out = HashMap::new();
        for pid in descendants(&table, self.driver.0.id()) {
            if !matches!(
                table[&pid].1.as_str(),
                "WebKitWebProces" | "WebKitWebProcess"
            ) {
                continue;
            }
            let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
            let mut kind = "";
            for line in smaps.lines() {
                if let Some(kib) = line.strip_prefix("Pss:") {
                    let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse()?;
                    *out.entry(kind).or_default() += kib;
                } else if line
                    .split_whitespace()
                    .next()
                    .is_some_and(|a| a.contains('-'))
                {
                    kind = mapping_kind(line.split_whitespace().nth(5).unwrap_or(""));
                }
            }
        }
        Ok(out)
    }

    /// Ends the session and every process below the driver, and waits until they are gone (the
    /// next launch of the same profile must not find this one's single-instance lock).
    async fn close(self) {
        let tree = processes()
            .map(|t| descendants(&t, self.driver.0.id()))
            .unwrap_or_default();
        let _ = self.client.clone().close().await;
        drop(self.driver);
        for pid in &tree {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let start = Instant::now();
        while tree.iter().any(|&pid| alive(pid)) && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether `pid` is a live process (not gone, not a zombie waiting to be reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|close| stat[close + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

struct Frames<T> {
    /// Intervals between consecutive animation frames, in milliseconds.
    intervals: Vec<f64>,
    /// The page's JavaScript meanwhile (`FRAMES_STOP`): `long`, `update`, `frame`.
    js: Value,
    result: T,
}

/// Statistics over frame intervals (milliseconds).
struct FrameStats<'a>(&'a [f64]);

impl FrameStats<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn fps(&self) -> f64 {
        let total: f64 = self.0.iter().sum();
        if total > 0.0 {
            1000.0 * self.0.len() as f64 / total
        } else {
            0.0
        }
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.0.to_vec();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return 0.0;
        }
        sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
    }
    fn longer_than(&self, ms: f64) -> usize {
        self.0.iter().filter(|&&i| i > ms).count()
    }
    /// The frames longer than `ms`: (when each ended, since the first frame; its length).
    fn long_frames(&self, ms: f64) -> Vec<(f64, f64)> {
        let mut at = 0.0;
        let mut out = Vec::new();
        for &interval in self.0 {
            at += interval;
            if interval > ms {
                out.push((at, interval));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Processes and memory

/// A process group started by the bench, ended (SIGTERM to the whole group) on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        window::end_group(&mut self.0);
    }
}

/// PSS in KiB, by role.
#[derive(Debug, Default, Clone, Copy)]
struct Pss {
    app: u64,
    web: u64,
    network: u64,
    other: u64,
    /// Private memory of all of them together (not split by sharing, so the same whatever
    /// else maps WebKit's libraries on the machine).
    private: u64,
}

impl Pss {
    fn total(&self) -> u64 {
        self.app + self.web + self.network + self.other
    }
}

/// Every process: pid → (parent pid, comm).
fn processes() -> Result<HashMap<u32, (u32, String)>> {
    let mut table = HashMap::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        table.insert(pid, (ppid, comm));
    }
    Ok(table)
}

/// Every process below `root`, breadth first.
fn descendants(table: &HashMap<u32, (u32, String)>, root: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(parent) = queue.pop() {
        let mut children: Vec<u32> = table
            .iter()
            .filter(|(_, (ppid, _))| *ppid == parent)
            .map(|(pid, _)| *pid)
            .collect();
        children.sort_unstable();
        out.extend(&children);
        queue.extend(children);
    }
    out
}

/// A process's `Pss` and its private memory (`Private_Clean` + `Private_Dirty`, its USS), KiB.
fn rollup_kib(pid: u32) -> Option<(u64, u64)> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((
        field("Pss:")?,
        field("Private_Clean:")? + field("Private_Dirty:")?,
    ))
}

/// What a mapping in `smaps` holds, from its path.
fn mapping_kind(path: &str) -> &'static str {
    match path {
        "" => "anonymous (JS heap, arenas)",
        "[heap]" => "malloc heap ([heap])",
        "[stack]" => "stacks",
        p if p.starts_with("/memfd:") || p.starts_with("/dev/shm") => "shared buffers (memfd, shm)",
        p if p.starts_with("/dev/dri") => "GPU (/dev/dri)",
        p if p.starts_with('[') => "other ([vdso], …)",
        _ => "files (libraries, fonts)",
    }
}

/// `after - before`, per kind, largest change first.
fn growth(
    before: &HashMap<&'static str, u64>,
    after: &HashMap<&'static str, u64>,
) -> Vec<(&'static str, i64)> {
    let mut kinds: Vec<&'static str> = before.keys().chain(after.keys()).copied().collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut out: Vec<(&'static str, i64)> = kinds
        .into_iter()
        .map(|k| {
            let b = before.get(k).copied().unwrap_or(0);
            let a = after.get(k).copied().unwrap_or(0);
            (k, a as i64 - b as i64)
        })
        .collect();
    out.sort_by_key(|(_, d)| -d.abs());
    out
}

fn median_pss(samples: &mut [Pss]) -> Pss {
    samples.sort_by_key(Pss::total);
    samples[samples.len() / 2]
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// Small things

/// The size of a stripped copy (`strip` from binutils), if `strip` is there.
fn stripped_size(app: &Path) -> Result<Option<u64>> {
    if !on_path("strip") {
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("quire");
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(app)
        .stderr(Stdio::null())
        .status()?
        .success();
    Ok(if ok {
        Some(std::fs::metadata(&out)?.len())
    } else {
        None
    })
}

/// A file size in bytes, in MiB.
fn mib_bytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A PSS in KiB, in MiB.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}
