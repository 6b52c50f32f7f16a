//! Security invariants (ARCHITECTURE.md, invariants 1 and 2), checked on the built app:
//!
//! * the app binary, its config, its capabilities and its bundled UI contain neither the
//!   service key nor the JWT secret;
//! * signed in, the web view calls every command the shell exposes with plausible arguments
//!   and gets no token, key or secret back — in results, errors, events, cookies, storage or
//!   the page.
//!
//! Each scan first proves it can see what it looks for (a canary), so a broken scan cannot
//! pass quietly.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::chat::{current_conversation, upload_ready};
use crate::driver::{self, App, Profile, repo_root};
use crate::signin::file_containing;
use crate::support::{self, DevStack as _, QUESTION, Secrets, stack};

/// Every command the sweep calls. A unit check compares it with the shell's
/// `commands![…]` list and IPC.md's table, so a new command cannot be forgotten.
const SWEEP: &[&str] = &[
    "session",
    "connect",
    "sign_in_methods",
    "sign_in",
    "sign_in_browser",
    "cancel_sign_in",
    "sign_up",
    "send_password_reset",
    "reset_password",
    "sign_out",
    "snapshot",
    "open_conversation",
    "search_conversations",
    "rename_conversation",
    "delete_conversation",
    "create_conversation",
    "set_scope",
    "retrieve",
    "ask",
    "regenerate",
    "stop",
    "upload_files",
    "opened_files",
    "pick_files",
    "retry_document",
    "delete_document",
    "document_pdf",
    "save_document",
    "export_conversation",
    "answer_text",
    "suggestions",
    "open_link",
];

// --- the built app and its files --------------------------------------------------------

/// The files that ship or configure the app: the binary, tauri.conf.json, the capabilities
/// and the bundled UI.
fn shipped_files() -> Result<Vec<PathBuf>> {
    let root = repo_root();
    let mut files = vec![driver::app_binary()?, root.join("tauri.conf.json")];
    for dir in ["src-tauri/capabilities", "ui/dist"] {
        collect(&root.join(dir), &mut files)?;
    }
    for extra in ["src-tauri/tauri.conf.json", "src-tauri/Tauri.toml"] {
        if root.join(extra).is_file() {
            files.push(root.join(extra));
        }
    }
    Ok(files)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The secrets of `stack` found in `files`, as "`<secret>` in `<file>`".
fn secrets_in(files: &[PathBuf], secrets: &[(&str, &str)]) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        for (name, secret) in secrets {
            if support::contains(&bytes, secret) {
                found.push(format!("{name} in {}", file.display()));
            }
        }
    }
    Ok(found)
}

#[test]
fn the_app_binary_and_its_config_hold_no_service_key_or_jwt_secret() -> Result<()> {
    let stack = stack()?;
    let secrets = [
        ("the service key", stack.info.service_role_key.as_str()),
        ("the JWT secret", stack.info.jwt_secret.as_str()),
    ];
    let files = shipped_files()?;
    ensure!(
        files.iter().any(|f| f.ends_with("index.html")),
        "ui/dist has no index.html: build the UI first"
    );

    // Canary: the same scan finds the secrets in a file that holds them.
    let canary = tempfile::NamedTempFile::new()?;
    std::fs::write(
        canary.path(),
        format!(
            "x{}y{}z",
            stack.info.service_role_key, stack.info.jwt_secret
        ),
    )?;
    ensure!(secrets_in(&[canary.path().to_owned()], &secrets)?.len() == 2);

    let found = secrets_in(&files, &secrets)?;
    ensure!(found.is_empty(), "secrets shipped with the app: {found:?}");

    // The core has no path to the platform's management routes.
    let binary = std::fs::read(driver::app_binary()?)?;
    for route in ["/api/agents", "/api/sources", "/api/knowledge-bases"] {
        ensure!(
            !support::contains(&binary, route),
            "the app binary names the management route {route}"
        );
    }
    eprintln!("scanned {} shipped files", files.len());
    Ok(())
}

// --- the command list ----------------------------------------------------------------------

/// The commands the shell registers: the names in its `commands![…]` list under src-tauri/src
/// (the one list its `COMMANDS` and Tauri's handler are both made from).
fn registered_commands() -> Result<BTreeSet<String>> {
    let mut files = Vec::new();
    collect(&repo_root().join("src-tauri/src"), &mut files)?;
    let mut names = BTreeSet::new();
    let mut found = false;
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
    {
        let source = std::fs::read_to_string(file)?;
        let mut rest = source.as_str();
        while let Some(start) = rest.find("\ncommands![") {
            found = true;
            let inside = &rest[start + "\ncommands![".len()..];
            let end = inside.find(']').context("an unclosed commands!")?;
            for path in inside[..end].split(',') {
                let name = path.trim().rsplit("::").next().unwrap_or_default().trim();
                if !name.is_empty() {
                    names.insert(name.to_owned());
                }
            }
            rest = &inside[end..];
        }
    }
    ensure!(
        found,
        "no commands![…] in src-tauri/src: the shell registers no commands yet"
    );
    Ok(names)
}

/// The commands IPC.md's table lists.
fn documented_commands() -> Result<BTreeSet<String>> {
    let ipc = std::fs::read_to_string(repo_root().join("src-tauri/IPC.md"))?;
    let section = ipc
        .split("## Commands")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .context("IPC.md has no Commands section")?;
    Ok(section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect())
}

#[test]
fn the_sweep_calls_every_command_the_shell_registers() -> Result<()> {
    let sweep: BTreeSet<String> = SWEEP.iter().map(|s| (*s).to_owned()).collect();
    let documented = documented_commands()?;
    ensure!(
        sweep == documented,
        "the sweep and IPC.md differ: only in the sweep {:?}, only in IPC.md {:?}",
        sweep.difference(&documented).collect::<Vec<_>>(),
        documented.difference(&sweep).collect::<Vec<_>>()
    );
    let registered = registered_commands()?;
    ensure!(
        sweep == registered,
        "the sweep and the shell's commands![…] list differ: not swept {:?}, not registered {:?}",
        registered.difference(&sweep).collect::<Vec<_>>(),
        sweep.difference(&registered).collect::<Vec<_>>()
    );
    Ok(())
}

// --- the web view ------------------------------------------------------------------------

#[tokio::test]
async fn the_web_view_obtains_no_token_through_any_command() -> Result<()> {
    let _x_input = support::x_input();
    let stack = stack()?;
    let a = stack.new_user("sec-a").await?;
    let b = stack.new_user("sec-b").await?;
    let files = tempfile::tempdir()?;
    let title = format!("Security almanac {}", support::unique());
    let spare_title = format!("Spare almanac {}", support::unique());

    let profile = Profile::new("security")?;
    // The link dialog answers no: `open_link` is called with a real link below.
    let no_links = [("QUIRE_E2E_CONFIRM_LINKS", "no".to_owned())];
    let app = App::launch_with("security", "a", &profile, &no_links).await?;
    app.record_events().await?;
    app.sign_in(&a.email, &a.password).await?;
    let doc = upload_ready(&app, files.path(), &title).await?;
    let spare = upload_ready(&app, files.path(), &spare_title).await?;
    app.ask(QUESTION).await?;
    let answer = app.wait_answer().await?;
    let message = answer.data("id").to_owned();
    app.wait_answer_settled(&message).await?;
    let conversation = current_conversation(&app).await?.data("id").to_owned();
    app.screenshot("before-sweep").await?;

    // Every call the web view can make, signed in, with plausible arguments.
    let pdf = files.path().join(format!("{title}.pdf"));
    let mut results: Vec<(String, String)> = Vec::new();
    let results = &mut results;
    let short = Duration::from_secs(45);
    let mut called = BTreeSet::new();
    for name in SWEEP {
        called.insert(*name);
        match *name {
            "session" | "sign_in_methods" | "snapshot" | "cancel_sign_in" | "opened_files" => {
                call(&app, results, name, json!({}), short).await?;
            }
            "connect" => {
                // Signed in, another server is refused; so is a plain-http one.
                let companion = stack.companion_url().unwrap_or_default().to_owned();
                for address in [companion.as_str(), "http://quire.example.com"] {
                    let got =
                        call(&app, results, name, json!({ "address": address }), short).await?;
                    ensure!(matches!(got, Some(Err(_))), "connect {address}: {got:?}");
                }
            }
            "sign_up" => {
                // A's own address: taken, so A stays signed in.
                call(
                    &app,
                    results,
                    name,
                    json!({ "email": a.email, "password": a.password }),
                    short,
                )
                .await?;
            }
            "send_password_reset" => {
                call(&app, results, name, json!({ "email": a.email }), short).await?;
            }
            "reset_password" => {
                let got = call(
                    &app,
                    results,
                    name,
                    json!({ "email": a.email, "code": "000000", "password": "not set by the sweep" }),
                    short,
                )
                .await?;
                ensure!(
                    matches!(got, Some(Err(_))),
                    "a wrong code reset A's password: {got:?}"
                );
            }
            "sign_in" => {
                call(
                    &app,
                    results,
                    name,
                    json!({ "email": a.email, "password": b.password }),
                    short,
                )
                .await?;
                call(
                    &app,
                    results,
                    name,
                    json!({ "email": a.email, "password": a.password }),
                    short,
                )
                .await?;
            }
            "sign_in_browser" => {
                // It waits for the browser's redirect; cancelling ends it.
                let started = app.client.execute(
                    "window.__e2eBrowser = window.__TAURI_INTERNALS__
                       .invoke('sign_in_methods', {})
                       .then(m => window.__TAURI_INTERNALS__.invoke('sign_in_browser', { provider: m.providers[0] }))
                       .then(v => ({ ok: v }), e => ({ err: e })); return true;",
                    vec![],
                );
                started.await?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                call(&app, results, "cancel_sign_in", json!({}), short).await?;
                let v = app
                    .client
                    .execute_async(
                        "const done = arguments[0];
                         setTimeout(() => done({ pending: true }), 20000);
                         window.__e2eBrowser.then(done);",
                        vec![],
                    )
                    .await?;
                ensure!(
                    v.get("pending").is_none(),
                    "sign_in_browser still waits 20 s after cancel_sign_in"
                );
                results.push(("sign_in_browser".into(), v.to_string()));
                // Whatever the cancelled browser sign-in did, go on signed in as A.
                call(
                    &app,
                    results,
                    "sign_in",
                    json!({ "email": a.email, "password": a.password }),
                    short,
                )
                .await?;
            }
            "open_conversation" => {
                call(&app, results, name, json!({ "id": conversation }), short).await?;
                call(
                    &app,
                    results,
                    name,
                    json!({ "id": conversation, "before": 1_000_000, "limit": 5 }),
                    short,
                )
                .await?;
            }
            "search_conversations" => {
                call(&app, results, name, json!({ "query": "lantern" }), short).await?;
            }
            "rename_conversation" => {
                call(
                    &app,
                    results,
                    name,
                    json!({ "id": conversation, "title": "Renamed in the sweep" }),
                    short,
                )
                .await?;
            }
            "create_conversation" => {
                call(
                    &app,
                    results,
                    name,
                    json!({ "title": "Scoped in the sweep", "document_ids": [] }),
                    short,
                )
                .await?;
            }
            "set_scope" => {
                call(
                    &app,
                    results,
                    name,
                    json!({ "id": conversation, "document_ids": [] }),
                    short,
                )
                .await?;
            }
            "retrieve" => {
                call(&app, results, name, json!({ "text": QUESTION }), short).await?;
                call(
                    &app,
                    results,
                    name,
                    json!({ "text": QUESTION, "conversation_id": conversation }),
                    short,
                )
                .await?;
            }
            "ask" => {
                let hits = app
                    .invoke("retrieve", json!({ "text": QUESTION }))
                    .await?
                    .unwrap_or(Value::Array(vec![]));
                let asked = call(
                    &app,
                    results,
                    name,
                    json!({ "conversation_id": conversation, "conversationId": conversation,
                            "text": "Who reads the names at the slipway?", "sources": hits }),
                    short,
                )
                .await?;
                if let Some(Ok(v)) = asked {
                    let id = v["message_id"].clone();
                    call(
                        &app,
                        results,
                        "stop",
                        json!({ "message_id": id, "messageId": id }),
                        short,
                    )
                    .await?;
                }
            }
            "regenerate" => {
                call(
                    &app,
                    results,
                    name,
                    json!({ "message_id": message, "messageId": message, "sources": [] }),
                    short,
                )
                .await?;
            }
            "stop" => {
                call(
                    &app,
                    results,
                    name,
                    json!({ "message_id": message, "messageId": message }),
                    short,
                )
                .await?;
            }
            "upload_files" => {
                call(
                    &app,
                    results,
                    name,
                    json!({ "paths": [pdf.display().to_string()] }),
                    short,
                )
                .await?;
            }
            "suggestions" => {
                call(&app, results, name, json!({}), short).await?;
            }
            "answer_text" => {
                call(&app, results, name, json!({ "message_id": message }), short).await?;
            }
            "retry_document" | "document_pdf" => {
                call(&app, results, name, json!({ "id": doc }), short).await?;
            }
            "open_link" => {
                call(
                    &app,
                    results,
                    name,
                    json!({ "url": "https://example.com/" }),
                    short,
                )
                .await?;
                for url in ["file:///etc/passwd", "javascript:alert(1)", "quire://x"] {
                    let got = call(&app, results, name, json!({ "url": url }), short).await?;
                    ensure!(
                        matches!(got, Some(Err(_))),
                        "open_link accepted {url}: {got:?}"
                    );
                }
            }
            "delete_document" => {
                call(&app, results, name, json!({ "id": spare }), short).await?;
            }
            "delete_conversation"
            | "sign_out"
            | "pick_files"
            | "save_document"
            | "export_conversation" => {
                // At the end: these end the session, remove data or open native dialogs.
            }
            other => bail!("the sweep does not know how to call `{other}`"),
        }
    }
    // Native dialogs wait for a person: whatever they answer (nothing) is scanned too.
    call(
        &app,
        results,
        "save_document",
        json!({ "id": doc }),
        Duration::from_secs(3),
    )
    .await?;
    call(
        &app,
        results,
        "export_conversation",
        json!({ "id": conversation }),
        Duration::from_secs(3),
    )
    .await?;
    call(
        &app,
        results,
        "pick_files",
        json!({}),
        Duration::from_secs(3),
    )
    .await?;
    call(
        &app,
        results,
        "delete_conversation",
        json!({ "id": conversation }),
        short,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    app.screenshot("after-sweep").await?;

    // What the page holds and every event the shell sent, while still signed in.
    let storage = app
        .js(
            "const dump = s => { const o = {}; for (let i = 0; i < s.length; i++) o[s.key(i)] = s.getItem(s.key(i)); return o; };
             return JSON.stringify({ cookie: document.cookie, local: dump(localStorage),
                                     session: dump(sessionStorage), title: document.title,
                                     location: String(location) });",
            vec![],
        )
        .await?;
    results.push((
        "storage".into(),
        storage.as_str().unwrap_or_default().to_owned(),
    ));
    results.push(("page".into(), app.page_text().await?));
    let signed_in_events = app.recorded_events().await?;
    let kept = stack
        .keyring_secret(&profile.keyring_account(stack))?
        .context("no keyring entry for the signed-in profile")?;
    // Signing out deletes the session's refresh tokens: read them while they exist.
    let mut issued = stack.refresh_tokens(&a.id).await?;

    call(&app, results, "sign_out", json!({}), short).await?;
    call(&app, results, "session", json!({}), short).await?;
    app.wait_item("sign-in-email", "", driver::UI).await?;
    app.screenshot("signed-out").await?;
    ensure!(
        stack
            .keyring_secret(&profile.keyring_account(stack))?
            .is_none(),
        "signing out left the refresh token in the keyring"
    );
    for event in app.recorded_events().await? {
        results.push((
            format!("event {}", event["event"]),
            event["payload"].to_string(),
        ));
    }
    ensure!(
        signed_in_events
            .iter()
            .any(|e| e["event"] == "quire://update"),
        "no quire://update event was recorded: the event scan would see nothing"
    );

    // The secrets to look for: the stack's keys, every refresh token A was issued (the
    // keyring entry among them), any JWT at all (the access token is one).
    let mut secrets = Secrets::of_stack(stack);
    issued.extend(stack.refresh_tokens(&a.id).await?);
    issued.sort();
    issued.dedup();
    ensure!(
        !issued.is_empty(),
        "A has no refresh tokens in auth.refresh_tokens"
    );
    for (i, token) in issued.iter().enumerate() {
        secrets.add(format!("A's refresh token #{i}"), token.clone());
    }
    ensure!(
        issued.iter().any(|t| kept.contains(t.as_str())),
        "the keyring entry holds none of A's refresh tokens"
    );
    secrets.add("the keyring entry", kept);
    let mine = stack.tokens(&a).await?;

    // Canary: the scan sees each kind of secret where it is.
    let canary = format!(
        "{} {} {} {}",
        mine.token, issued[0], stack.info.service_role_key, stack.info.jwt_secret
    );
    let seen = secrets.found_in(&canary);
    ensure!(
        seen.iter().any(|s| s.starts_with("a JWT"))
            && seen.iter().any(|s| s.starts_with("A's refresh token"))
            && seen.contains(&"the service key".to_owned())
            && seen.contains(&"the JWT secret".to_owned()),
        "the scan misses secrets: {seen:?}"
    );
    secrets.add("the test's own refresh token", mine.refresh_token.clone());

    let mut leaks = Vec::new();
    for (what, text) in results.iter() {
        let found = secrets.found_in(text);
        if !found.is_empty() {
            leaks.push(format!("{what}: {found:?}"));
        }
    }
    // The app's own output (its log) names no secret either.
    let log = std::fs::read_to_string(&app.log).unwrap_or_default();
    let in_log = secrets.found_in_except(&log, &["the anon key"], &[&stack.info.anon_key]);
    if !in_log.is_empty() {
        leaks.push(format!("the app's log {}: {in_log:?}", app.log.display()));
    }
    for dir in profile.dirs() {
        for token in &issued {
            if let Some(file) = file_containing(dir, token)? {
                leaks.push(format!("a refresh token on disk in {}", file.display()));
            }
        }
    }
    ensure!(
        leaks.is_empty(),
        "secrets reached the web view:\n{}",
        leaks.join("\n")
    );
    ensure!(called.len() == SWEEP.len(), "the sweep skipped commands");
    app.close().await
}

/// Calls `name` from the page and keeps what came back (or that nothing did) in `results`.
async fn call(
    app: &App,
    results: &mut Vec<(String, String)>,
    name: &str,
    args: Value,
    wait: Duration,
) -> Result<Option<Result<Value, Value>>> {
    let got = app.invoke_within(name, args.clone(), wait).await?;
    let shown = match &got {
        None => "(no answer: waiting for a person)".to_owned(),
        Some(Ok(v)) => format!("ok {v}"),
        Some(Err(e)) => format!("err {e}"),
    };
    eprintln!(
        "security: {name}({args}) → {}",
        shown.chars().take(200).collect::<String>()
    );
    results.push((name.to_owned(), shown));
    Ok(got)
}
