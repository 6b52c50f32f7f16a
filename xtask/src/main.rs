//! `cargo xtask`: the developer's one entry point.
//!
//! - `setup`: install what is missing on Debian/Ubuntu (system packages, npm packages, tauri-driver).
//! - `stack up | down | status`: the local PostgreSQL cluster (and, as they land, the sandbox and
//!   the companion), described in `.quire/stack.json`.
//! - `demo [--second]`: setup + the release app + stack up + Quire open as the demo user.
//! - `demo-pdfs`: regenerate `demo/*.pdf` from `demo/src/*.txt`.
//! - `refs`: every reference to a document in code and docs resolves inside the repo.
//! - `dist`: the app's `.deb` and AppImage in `target/dist/bundle/`.
//! - `dist companion`: the companion's static binary, systemd unit and OCI image in
//!   `target/dist/companion/` (DEPLOY.md).
//! - `test`: the reference check, setup, then every test of the project.

mod demo;
mod dist;
mod dist_companion;
mod pdf;
mod refs;
mod services;
mod setup;
mod stack;
mod util;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup                 install whatever is missing (system packages, npm packages, tauri-driver)
  stack up|down|status  the local dev stack: PostgreSQL :54322 (data in .quire/pg), sandbox
                        :54321, companion :54380 (QUIRE_PG_PORT, QUIRE_SANDBOX_PORT and
                        QUIRE_COMPANION_PORT move them)
  demo [--second]       setup, build the app, bring the stack up, open Quire signed in as the
                        demo user with the demo PDFs ready (--second: a second window, same user)
  demo-pdfs             regenerate demo/*.pdf from demo/src/*.txt
  pdf-corpus [--install]  regenerate tests/pdf-corpus (PDFs and pdftotext truth) with the real tools
  pdf-measure           score the PDF text extractor on tests/pdf-corpus beside pdftotext
  search-measure        how often search_chunks finds a page of tests/pdf-corpus first from a
                        distinctive phrase of it (4 words, or 4 to 8 CJK characters), per document
  refs                  check that every reference to a document resolves inside the repo
  dist                  build the app and package it: a .deb and an AppImage in
                        target/dist/bundle/ (docs/packaging.md)
  dist companion        the companion as something to run: a static binary, its systemd unit
                        and an OCI image FROM scratch in target/dist/companion/ (DEPLOY.md)
  test                  check references, setup, then run every test (what CI runs)
  bench                 measure the stack against its baselines, side by side (prints ratios)
  bench NAME [FLAGS]    one of them, e.g. `bench load --rates 1,4,16 --seconds 20`
  fuzz [SECONDS]        fuzz the PDF text extractor (seeded with tests/pdf-corpus), then the PostgREST
                        query-string parser, each for a bounded time (default 60 s)
";

fn main() {
    if let Err(err) = run() {
        eprintln!("xtask: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["setup"] => setup::run(),
        ["stack", "up"] => stack::up().map(|_| ()),
        ["stack", "down"] => stack::down(),
        ["stack", "status"] => stack::status(),
        ["demo"] => demo::run(false),
        ["demo", "--second"] => demo::run(true),
        ["demo-pdfs"] => pdf::generate(),
        ["pdf-corpus", rest @ ..] => {
            util::cmd(util::repo_root().join("tests/pdf-corpus/generate.sh"))
                .args(rest)
                .run()
        }
        ["pdf-measure"] => util::cmd("cargo")
            .args([
                "run",
                "-q",
                "--release",
                "-p",
                "quire-pdftext",
                "--example",
                "pdf_measure",
                "--",
            ])
            .arg(util::repo_root().join("tests/pdf-corpus"))
            .run(),
        ["search-measure"] => util::cmd("cargo")
            .args([
                "bench",
                "-q",
                "-p",
                "quire-testdb",
                "--bench",
                "search_corpus",
            ])
            .current_dir(util::repo_root())
            .run(),
        ["refs"] => refs::check(),
        ["dist"] => dist::run(),
        ["dist", "companion"] => dist_companion::run().map(drop),
        ["test", rest @ ..] => test(rest),
        ["bench"] => bench(None, &[]),
        ["bench", name, flags @ ..] => bench(Some(name), flags),
        ["fuzz"] => fuzz(60),
        ["fuzz", secs] => fuzz(
            secs.parse()
                .map_err(|_| anyhow::anyhow!("fuzz takes a number of seconds"))?,
        ),
        [] | ["help"] | ["--help"] | ["-h"] => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("{USAGE}");
            bail!("unknown command: {}", args.join(" "))
        }
    }
}

/// The benchmarks `cargo xtask bench` runs: (package, bench target, what it measures).
const BENCHES: &[(&str, &str, &str)] = &[
    (
        "quire-sandbox",
        "platform",
        "sandbox REST vs direct Postgres; TUS upload vs disk",
    ),
    (
        "quire-sandbox",
        "realtime",
        "realtime.send() commit to receipt, 1 and 100 subscribers",
    ),
    (
        "quire-companion",
        "chat",
        "answers through the companion vs run/stream directly",
    ),
    (
        "quire-e2e",
        "load",
        "many people at once: companion vs platform, open-loop rates, a replica, REST vs direct",
    ),
    (
        "quire-e2e",
        "follow",
        "second-device lag, 1 and 50 followers",
    ),
    (
        "quire-e2e",
        "upload",
        "100 MiB PDF upload, core vs curl (TUS); the core's peak memory",
    ),
    (
        "quire-testdb",
        "search_corpus",
        "search_chunks: a page's distinctive phrase finds it first (tests/pdf-corpus)",
    ),
    (
        "quire-e2e",
        "desktop",
        "the release app under Xvfb: size, memory, launch, 200 deltas/s, 5,000 messages",
    ),
];

/// Benchmarks print measurements next to a baseline measured in the same run; nothing asserts.
/// `only` runs one of them, with `flags` after `--`.
fn bench(only: Option<&str>, flags: &[&str]) -> Result<()> {
    if let Some(name) = only
        && !BENCHES.iter().any(|(_, bench, _)| *bench == name)
    {
        bail!("no bench named {name}");
    }
    setup::run()?;
    let root = util::repo_root();
    for (package, bench, what) in BENCHES {
        if only.is_some_and(|name| name != *bench) {
            continue;
        }
        let dir = match *package {
            "quire-sandbox" => "crates/sandbox",
            "quire-companion" => "crates/companion",
            "quire-testdb" => "crates/testdb",
            _ => "tests",
        };
        if !root
            .join(dir)
            .join("benches")
            .join(format!("{bench}.rs"))
            .is_file()
        {
            continue;
        }
        if *bench == "desktop" {
            build_app()?;
        }
        util::step(&format!("bench: {what}"));
        util::cmd("cargo")
            .args(["bench", "-p", package, "--bench", bench, "--"])
            .args(flags)
            .current_dir(&root)
            .run()?;
    }
    Ok(())
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The latest modification time of the UI's sources (everything but `dist/` and `node_modules/`).
fn newest_source(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "dist" || name == "node_modules" {
            continue;
        }
        let time = if path.is_dir() {
            newest_source(&path)
        } else {
            modified(&path)
        };
        newest = newest.max(time);
    }
    newest
}

/// Fuzzes the PDF text extractor for `seconds` (a mutation loop over the corpus PDFs, stable
/// Rust, offline; findings in `target/fuzz-pdftext`), then the REST query-string fuzz target for
/// `seconds` (cargo-fuzz, installed on demand).
fn fuzz(seconds: u64) -> Result<()> {
    let root = util::repo_root();
    util::step(&format!("fuzz: quire_pdftext::page_texts for {seconds} s"));
    util::cmd("cargo")
        .args([
            "run",
            "-q",
            "--release",
            "-p",
            "quire-pdftext",
            "--example",
            "pdf_fuzz",
            "--",
        ])
        .arg(seconds.to_string())
        .arg(root.join("tests/pdf-corpus/pdf"))
        .arg(util::target_dir().join("fuzz-pdftext"))
        .current_dir(&root)
        .run()?;
    if !util::cmd("cargo").args(["fuzz", "--version"]).succeeds() {
        util::step("fuzz: installing cargo-fuzz");
        util::cmd("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .run()?;
    }
    util::step(&format!("fuzz: rest_query for {seconds} s"));
    // cargo-fuzz needs a nightly compiler. Use the machine's nightly toolchain when rustup has
    // one (with AddressSanitizer); otherwise let stable accept nightly flags and run without a
    // sanitizer (libFuzzer's coverage guidance still works).
    let nightly = util::cmd("rustup")
        .args(["toolchain", "list"])
        .read()
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("nightly"));
    let mut fuzz = util::cmd("cargo");
    if nightly {
        fuzz.args(["+nightly", "fuzz", "run", "rest_query", "--"]);
    } else {
        fuzz.args(["fuzz", "run", "--sanitizer", "none", "rest_query", "--"])
            .env("RUSTC_BOOTSTRAP", "1");
    }
    fuzz.arg(format!("-max_total_time={seconds}"))
        .current_dir(root.join("crates/sandbox"))
        .run()
}

/// Bundles `ui/` into `ui/dist`, which the desktop shell embeds at compile time.
fn build_ui() -> Result<()> {
    util::step("ui: npm run build");
    util::cmd("npm")
        .args(["run", "--silent", "build"])
        .current_dir(util::repo_root().join("ui"))
        .run()
}

/// The app as it ships (the `dist` profile, docs/packaging.md §5), which the demo, the
/// end-to-end tests, the desktop bench and `cargo xtask dist` run (`target/dist/quire`);
/// returns its path. `ui/dist` is rebuilt only when something in `ui/`
/// is newer than it (a fresh `dist` would make the shell recompile for nothing); cargo itself
/// decides whether the binary is stale.
fn build_app() -> Result<std::path::PathBuf> {
    let ui = util::repo_root().join("ui");
    let built = modified(&ui.join("dist/index.html"));
    let newest = newest_source(&ui);
    if built.is_none() || newest > built {
        build_ui()?;
    }
    util::step("app: cargo build --profile dist -p quire-desktop --features custom-protocol");
    let start = std::time::Instant::now();
    util::cmd("cargo")
        .args(["build", "--profile", "dist", "-p", "quire-desktop"])
        .args(["--features", "custom-protocol"])
        .current_dir(util::repo_root())
        .run()?;
    let binary = util::target_dir().join("dist/quire");
    println!("    {} ({} s)", binary.display(), start.elapsed().as_secs());
    Ok(binary)
}

/// The UI's unit tests (`npm test`, Vitest), when `ui/package.json` has a test script.
fn ui_tests() -> Result<()> {
    let dir = util::repo_root().join("ui");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("package.json"))?)?;
    if manifest["scripts"]["test"].is_null() {
        util::step("ui: no test script in ui/package.json yet; skipped");
        return Ok(());
    }
    util::step("ui: npm test");
    util::cmd("npm").arg("test").current_dir(&dir).run()
}

/// Runs the end-to-end tests inside the D-Bus session of `dbus-run-session`, with an unlocked
/// gnome-keyring of its own (a throwaway keyring file) registered on that bus first, so that a
/// sign-in the tests make, through the app or `quire-cli login`, has somewhere to live.
const E2E_SESSION: &str = r#"
set -e
data=$(mktemp -d)
mkdir -m 700 "$data/run"
printf %s quire-e2e | XDG_DATA_HOME="$data" XDG_RUNTIME_DIR="$data/run" \
  gnome-keyring-daemon --foreground --unlock --components=secrets >"$data/keyring.log" 2>&1 &
keyring=$!
trap 'kill $keyring 2>/dev/null; rm -rf "$data"' EXIT
tries=0
until dbus-send --session --print-reply --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q true; do
  tries=$((tries + 1))
  if [ "$tries" -ge 100 ]; then cat "$data/keyring.log" >&2; echo "gnome-keyring did not start" >&2; exit 1; fi
  sleep 0.1
done
cargo test -p quire-e2e --test desktop --no-fail-fast
"#;

/// `rust-version` (the workspace's, 1.88) says what the code needs: clippy's
/// `incompatible_msrv` fails on a standard-library item stabilised after a crate's
/// `rust-version`. It does not see language features (let-chains are what set 1.88). Skipped,
/// saying so, where clippy is not installed: it is a rustup component that needs the network.
fn msrv_check() -> Result<()> {
    util::step(
        "rust-version: no std item newer than a crate's rust-version (clippy::incompatible_msrv)",
    );
    let clippy = std::process::Command::new("cargo")
        .args(["clippy", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !clippy.is_ok_and(|s| s.success()) {
        println!("    skipped: clippy is not installed (rustup component add clippy)");
        return Ok(());
    }
    util::cmd("cargo")
        .args([
            "clippy",
            "--all-targets",
            "--",
            "-A",
            "clippy::all",
            "-D",
            "clippy::incompatible_msrv",
        ])
        .current_dir(util::repo_root())
        .run()
}

/// Every doc comment's links resolve: the workspace's docs as a maintainer reads them (private
/// items included, so a link to one leads somewhere; quire-testkit with all its features), then
/// quire-core's public API as the app and the CLI see it, where a link to a private item would
/// lead nowhere. After clippy, whose metadata of the dependencies it reuses.
fn doc_check() -> Result<()> {
    util::step("rustdoc: every intra-doc link resolves (-D warnings)");
    let doc = |args: &[&str], flags: &str| {
        util::cmd("cargo")
            .args(["doc", "--no-deps"])
            .args(args)
            .env("RUSTDOCFLAGS", flags)
            .current_dir(util::repo_root())
            .run()
    };
    let maintainers = "-D warnings -A rustdoc::private_intra_doc_links";
    let private = "--document-private-items";
    doc(
        &["--workspace", "--exclude", "quire-testkit", private],
        maintainers,
    )?;
    doc(
        &["-p", "quire-testkit", "--all-features", private],
        maintainers,
    )?;
    doc(&["-p", "quire-core"], "-D warnings")
}

fn test(args: &[&str]) -> Result<()> {
    refs::check()?;
    setup::run()?;
    let root = util::repo_root();
    util::step("demo PDFs match their sources (demo/src)");
    pdf::check_committed(&root.join("demo"))?;
    build_ui()?;
    let ui = ui_tests();
    util::step("cargo build (whole workspace, desktop shell included)");
    util::cmd("cargo")
        .args(["build", "--workspace", "--all-targets"])
        .current_dir(&root)
        .run()?;
    // Every suite but the window tests (quire-e2e's `desktop` target is `test = false`).
    util::step("cargo test");
    let mut cargo_test = util::cmd("cargo");
    cargo_test
        .args(["test", "--workspace", "--no-fail-fast"])
        .current_dir(&root);
    if !args.is_empty() {
        cargo_test.arg("--").args(args);
    }
    let unit = cargo_test.run();
    let msrv = msrv_check();
    let docs = doc_check();
    let image = dist_companion::test_image();

    // The window tests run the app as it ships, and its packages, against the dev stack. They
    // need a display and a session bus: a private Xvfb and D-Bus per run, so nothing is left
    // behind (docs/desktop-on-linux.md §7).
    let e2e = build_app().and_then(|app| {
        dist::package(&app)?;
        stack::up()?;
        util::step(
            "end-to-end tests of the app window (Xvfb + dbus-run-session + gnome-keyring + tauri-driver)",
        );
        util::cmd("xvfb-run")
            .args([
                "-a",
                "-s",
                "-screen 0 1280x800x24",
                "dbus-run-session",
                "--",
                "sh",
                "-c",
                E2E_SESSION,
            ])
            .env("NO_AT_BRIDGE", "1")
            .env("QUIRE_STACK", root.join(".quire/stack.json"))
            .env("QUIRE_APP_BIN", &app)
            .current_dir(&root)
            .run()
    });
    ui?;
    unit?;
    msrv?;
    docs?;
    image?;
    e2e?;
    Ok(())
}
