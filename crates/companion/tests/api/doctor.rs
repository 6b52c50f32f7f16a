//! `quire-companion doctor` against a real stack: every line passes on a
//! stack set up as `cargo xtask stack up` sets it up (db/app applied with
//! `migrate`, the companion started), and on a stack broken in exactly one
//! way, that line fails with its fix and the others still pass.
//!
//! No user data is involved: the doctor's own throwaway user and bucket are
//! created and removed by it (the tests check that they are gone).

use quire_companion::config::Config;
use quire_companion::doctor::{self, Options, Outcome, Report, checks};
use quire_companion::migrate::{self, Database, Mode};
use quire_testkit::Stack;
use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::proxy::start_proxy;

/// A stack with the companion running, db/app recorded by `migrate`, and
/// the doctor's configuration for it (the companion's own, with its URL as
/// the public URL; the sandbox allows loopback tool endpoints).
async fn stack(adjust: impl FnOnce(&mut quire_sandbox::Config)) -> (Stack, Config) {
    let stack = Stack::builder()
        .with_companion()
        .sandbox(adjust)
        .spawn()
        .await;
    let db = Database::connect(&stack.db.url()).await.unwrap();
    migrate::run(&db, Mode::Apply, &mut |_| {}).await.unwrap();
    let mut config = stack.companion_config().clone();
    config.public_url = Some(stack.companion().url().parse().unwrap());
    (stack, config)
}

async fn doctor(stack: &Stack, config: &Config) -> Report {
    doctor::check(config, Some(&stack.db.url()), Options::default()).await
}

fn passed(report: &Report, check: &str) -> String {
    match report.line(check).map(|l| &l.outcome) {
        Some(Outcome::Pass(detail)) => detail.clone(),
        other => panic!("{check}: {other:?}\n{}", report.text()),
    }
}

/// The line of `check` fails, its problem containing `problem` and its fix
/// `fix`; every other line passes.
fn only_fails(report: &Report, check: &str, problem: &str, fix: &str) {
    let failing: Vec<&str> = report
        .lines
        .iter()
        .filter(|l| matches!(l.outcome, Outcome::Fail { .. }))
        .map(|l| l.check)
        .collect();
    assert_eq!(failing, [check], "{}", report.text());
    let text = report.text();
    let line = text
        .lines()
        .position(|l| l.starts_with(&format!("FAIL  {check}: ")))
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[line].contains(problem), "{}", lines[line]);
    assert!(lines[line + 1].starts_with("      fix: "), "{text}");
    assert!(lines[line + 1].contains(fix), "{}", lines[line + 1]);
    assert!(
        text.ends_with(&format!("{} checks, 1 failed\n", report.lines.len())),
        "{text}"
    );
}

async fn count(stack: &Stack, sql: &str) -> i64 {
    stack.count(sql, &[]).await
}

#[tokio::test]
async fn a_deployment_set_up_as_documented_passes_every_check_and_leaves_nothing_behind() {
    let (stack, config) = stack(|_| {}).await;
    let users_before = count(&stack, "select count(*) from auth.users").await;
    let report = doctor::check(&config, Some(&stack.db.url()), Options { run: true }).await;
    assert_eq!(report.failed(), 0, "{}", report.text());
    let last = migrate::migrations().last().unwrap().version;
    assert_eq!(
        passed(&report, checks::DB_APP),
        format!(
            "applied, version {last} ({} files)",
            migrate::migrations().len()
        )
    );
    assert!(passed(&report, checks::BUCKET).contains("file_size_limit 52428800 bytes (50 MiB)"));
    assert_eq!(
        passed(&report, checks::SIGN_UP),
        "open: anyone may create an account"
    );
    assert!(passed(&report, checks::OAUTH).contains("github"));
    assert!(
        passed(&report, checks::LOOPBACK_REDIRECT)
            .contains("http://127.0.0.1:53682/callback is accepted")
    );
    assert!(passed(&report, checks::TUS_LOCATION).starts_with(stack.api_base()));
    assert!(
        passed(&report, checks::PUBLIC_URL)
            .contains("QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL=true")
    );
    assert!(passed(&report, checks::MODEL).starts_with("the agent answered"));
    for check in [
        checks::SERVICE_KEY,
        checks::ANON_KEY,
        checks::JWT_SECRET,
        checks::SPLIT,
        checks::PG_TRGM,
        checks::REALTIME_POLICY,
        checks::TOOL,
        checks::KNOWLEDGE_BASES,
    ] {
        passed(&report, check);
    }
    // The throwaway users, bucket and the run's session are gone.
    assert_eq!(
        count(&stack, "select count(*) from auth.users").await,
        users_before
    );
    assert_eq!(
        count(
            &stack,
            "select count(*) from storage.buckets where id like 'quire-doctor-%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn wrong_keys_and_secret_each_fail_their_own_line() {
    let (stack, config) = stack(|_| {}).await;
    let other = quire_companion::auth::JwtKeys::new(&SecretString::from(
        "an-entirely-different-project-secret-0123456789".to_owned(),
    ));
    // A key of another project: a token signed with another secret.
    let mut wrong = config.clone();
    wrong.platform.anon_key = SecretString::from(other.sign_user_token(uuid::Uuid::new_v4()));
    only_fails(
        &doctor(&stack, &wrong).await,
        checks::ANON_KEY,
        "GET /rest/v1/documents with it answered 401",
        "set QUIRE_COMPANION_ANON_KEY to the project's anon key",
    );

    let mut wrong = config.clone();
    wrong.jwt_secret =
        SecretString::from("an-entirely-different-project-secret-0123456789".to_owned());
    only_fails(
        &doctor(&stack, &wrong).await,
        checks::JWT_SECRET,
        "an access token the project issued (alg HS256) does not verify with it",
        "set QUIRE_COMPANION_JWT_SECRET to the project's JWT secret",
    );

    let mut wrong = config.clone();
    wrong.platform.service_role_key = SecretString::from(format!(
        "{}x",
        config.platform.service_role_key.expose_secret()
    ));
    let report = doctor(&stack, &wrong).await;
    match &report.line(checks::SERVICE_KEY).unwrap().outcome {
        Outcome::Fail { problem, fix } => {
            assert!(problem.contains("answered 401"), "{problem}");
            assert!(fix.contains("QUIRE_COMPANION_SERVICE_ROLE_KEY"), "{fix}");
        }
        other => panic!("{other:?}"),
    }
}

/// The printed lines that start with `prefix` (`FAIL`, `SKIP`, `ok`).
fn lines_starting<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[tokio::test]
async fn a_wrong_service_key_fails_one_line_and_skips_the_checks_that_need_it() {
    let (stack, config) = stack(|_| {}).await;
    let mut wrong = config.clone();
    wrong.platform.service_role_key = SecretString::from(format!(
        "{}x",
        config.platform.service_role_key.expose_secret()
    ));

    let text = doctor(&stack, &wrong).await.text();

    let failed = lines_starting(&text, "FAIL");
    assert_eq!(failed.len(), 1, "{text}");
    assert!(failed[0].starts_with("FAIL  service key: "), "{text}");
    assert!(
        text.contains("fix: set QUIRE_COMPANION_SERVICE_ROLE_KEY"),
        "{text}"
    );
    // Each check that calls the platform with the service key (the anon key
    // and JWT secret through a user it creates) says so instead of failing.
    for check in [
        checks::ANON_KEY,
        checks::JWT_SECRET,
        checks::BUCKET,
        checks::LOOPBACK_REDIRECT,
        checks::TUS_LOCATION,
        checks::TOOL,
        checks::KNOWLEDGE_BASES,
    ] {
        let line = format!("SKIP  {check}: needs the service key (see its line)");
        assert!(text.contains(&line), "{line}\n{text}");
    }
    // What does not need it still ran.
    for check in [
        checks::SPLIT,
        checks::DB_APP,
        checks::PG_TRGM,
        checks::REALTIME_POLICY,
        checks::SIGN_UP,
        checks::OAUTH,
        checks::PUBLIC_URL,
    ] {
        assert!(
            text.contains(&format!("ok    {check}: ")),
            "{check}\n{text}"
        );
    }
    assert!(
        text.ends_with("doctor: 15 checks, 1 failed, 7 not tried\n"),
        "{text}"
    );
}

#[tokio::test]
async fn a_project_without_db_app_fails_only_that_line_and_skips_what_db_app_makes() {
    let stack = Stack::builder()
        .platform_only()
        .with_companion()
        .spawn()
        .await;
    let mut config = stack.companion_config().clone();
    config.public_url = Some(stack.companion().url().parse().unwrap());

    let text = doctor(&stack, &config).await.text();

    let failed = lines_starting(&text, "FAIL");
    assert_eq!(failed.len(), 1, "{text}");
    let all = migrate::migrations().len();
    let line = format!("FAIL  db/app: {all} of {all} files are not applied");
    assert!(failed[0].starts_with(&line), "{text}");
    assert!(text.contains("fix: run quire-companion migrate"), "{text}");
    for check in [checks::PG_TRGM, checks::REALTIME_POLICY, checks::BUCKET] {
        let line = format!("SKIP  {check}: needs db/app applied (see db/app)");
        assert!(text.contains(&line), "{line}\n{text}");
    }
    assert!(
        text.contains("ok    anon key: a throwaway user signed in with it"),
        "{text}"
    );
}

#[tokio::test]
async fn the_database_checks_fail_on_what_is_missing() {
    let (stack, config) = stack(|_| {}).await;
    let admin = stack.db.admin().await;

    // db/app not recorded: the two newest files are pending.
    let all = migrate::migrations();
    let [before, newer, newest] = &all[all.len() - 3..] else {
        unreachable!()
    };
    admin
        .batch_execute(&format!(
            "delete from supabase_migrations.schema_migrations where version in ('{}', '{}')",
            newer.version, newest.version
        ))
        .await
        .unwrap();
    only_fails(
        &doctor(&stack, &config).await,
        checks::DB_APP,
        &format!(
            "2 of {} files are not applied (first: {}); applied version: {}",
            all.len(),
            newer.file,
            before.version
        ),
        "run quire-companion migrate",
    );
    let db = Database::connect(&stack.db.url()).await.unwrap();
    migrate::run(&db, Mode::Apply, &mut |_| {}).await.unwrap();

    admin
        .batch_execute("drop policy user_joins_own_topic on realtime.messages")
        .await
        .unwrap();
    only_fails(
        &doctor(&stack, &config).await,
        checks::REALTIME_POLICY,
        "realtime.messages has no user_joins_own_topic policy",
        "run quire-companion migrate (db/app/40_realtime.sql)",
    );
    admin
        .batch_execute("drop extension pg_trgm cascade")
        .await
        .unwrap();
    let report = doctor(&stack, &config).await;
    match &report.line(checks::PG_TRGM).unwrap().outcome {
        Outcome::Fail { problem, fix } => {
            assert!(problem.starts_with("not installed"), "{problem}");
            assert!(fix.contains("quire-companion migrate"), "{fix}");
        }
        other => panic!("{other:?}"),
    }

    // Without a database URL, db/app's line says which variable to set and
    // the other database lines wait for it.
    let report = doctor::check(&config, None, Options::default()).await;
    match &report.line(checks::DB_APP).unwrap().outcome {
        Outcome::Fail { fix, .. } => assert!(fix.contains("QUIRE_COMPANION_DATABASE_URL"), "{fix}"),
        other => panic!("{other:?}"),
    }
    for check in [checks::PG_TRGM, checks::REALTIME_POLICY] {
        assert_eq!(
            report.line(check).unwrap().outcome,
            Outcome::Skip {
                needs: "the database (see db/app)".to_owned()
            }
        );
    }
}

#[tokio::test]
async fn a_missing_bucket_a_detached_tool_and_an_attached_knowledge_base_each_fail() {
    let (stack, config) = stack(|_| {}).await;
    let agent = config.agent_id;

    // The tool, unassigned.
    let path = format!("/api/agents/{agent}/tools");
    let assigned: Value = stack
        .service(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assignment = assigned["tools"][0]["id"].as_str().unwrap().to_owned();
    let gone = stack
        .service(Method::DELETE, &format!("{path}/{assignment}"))
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success());
    only_fails(
        &doctor(&stack, &config).await,
        checks::TOOL,
        "search_my_documents is registered but not assigned to the agent",
        "it registers the tool and assigns it to the agent at start-up",
    );
    let back = stack
        .service(Method::POST, &path)
        .json(&json!({"tool_type": "custom", "tool_name": "search_my_documents", "tool_id": assigned["tools"][0]["tool_id"]}))
        .send()
        .await
        .unwrap();
    assert!(back.status().is_success());

    // A knowledge base attached to the agent.
    let attach = stack
        .service(
            Method::POST,
            &format!("/api/agents/{agent}/knowledge-bases"),
        )
        .json(&json!({"knowledge_base_id": config.knowledge_base_id}))
        .send()
        .await
        .unwrap();
    assert!(
        attach.status().is_success(),
        "{}",
        attach.text().await.unwrap()
    );
    only_fails(
        &doctor(&stack, &config).await,
        checks::KNOWLEDGE_BASES,
        "has knowledge bases attached",
        "detach them",
    );
    let attached: Value = stack
        .service(Method::GET, &format!("/api/agents/{agent}/knowledge-bases"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = attached["knowledge_bases"][0]["id"].as_str().unwrap();
    let detached = stack
        .service(
            Method::DELETE,
            &format!("/api/agents/{agent}/knowledge-bases/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert!(detached.status().is_success());

    // The documents bucket gone.
    stack
        .db
        .admin()
        .await
        .batch_execute("delete from storage.buckets where id = 'documents'")
        .await
        .unwrap();
    only_fails(
        &doctor(&stack, &config).await,
        checks::BUCKET,
        "GET /storage/v1/bucket/documents answered 4",
        "quire-companion migrate creates it",
    );
}

#[tokio::test]
async fn a_public_bucket_or_one_without_a_size_limit_fails_the_bucket_line() {
    let (stack, config) = stack(|_| {}).await;
    let admin = stack.db.admin().await;
    admin
        .batch_execute("update storage.buckets set public = true where id = 'documents'")
        .await
        .unwrap();
    only_fails(
        &doctor(&stack, &config).await,
        checks::BUCKET,
        "the bucket is public: anyone could read every user's PDFs",
        "update storage.buckets set public = false where id = 'documents'",
    );
    admin
        .batch_execute(
            "update storage.buckets set public = false, file_size_limit = null \
             where id = 'documents'",
        )
        .await
        .unwrap();
    only_fails(
        &doctor(&stack, &config).await,
        checks::BUCKET,
        "the bucket has no file_size_limit",
        "set file_size_limit = 52428800",
    );
    admin
        .batch_execute(
            "update storage.buckets set file_size_limit = 52428800 where id = 'documents'",
        )
        .await
        .unwrap();
    let report = doctor(&stack, &config).await;
    assert!(
        passed(&report, checks::BUCKET)
            .contains("private, file_size_limit 52428800 bytes (50 MiB)"),
        "{}",
        report.text()
    );
}

/// GoTrue before v2.171 allowed a loopback `redirect_to` only by the site URL's host or the
/// allow list: the doctor says so, and passes once the allow list has what its fix says.
#[tokio::test]
async fn a_gotrue_that_replaces_the_loopback_redirect_fails_until_the_allow_list_has_it() {
    let old_gotrue = |config: &mut quire_sandbox::Config| {
        config.site_url = "https://app.example.com".parse().unwrap();
        config.emulate_gotrue_before_2_171 = true;
    };
    let (old, config) = stack(old_gotrue).await;
    only_fails(
        &doctor(&old, &config).await,
        checks::LOOPBACK_REDIRECT,
        "GoTrue replaces http://127.0.0.1:53682/callback with https://app.example.com",
        "http://127.0.0.1:*/** in the redirect allow list",
    );
    drop(old);

    let (allowed, config) = stack(|config| {
        old_gotrue(config);
        config.additional_redirect_urls = vec!["http://127.0.0.1:*/**".to_owned()];
    })
    .await;
    let report = doctor(&allowed, &config).await;
    passed(&report, checks::LOOPBACK_REDIRECT);
    assert_eq!(report.failed(), 0, "{}", report.text());
}

#[tokio::test]
async fn a_public_url_the_platform_cannot_call_fails_unless_the_dev_setting_allows_it() {
    let (stack, config) = stack(|_| {}).await;
    let mut production = config.clone();
    production.dev_allow_private_tool_url = false;
    // The companion registered its tool for its loopback URL, so only the
    // public URL's line fails.
    only_fails(
        &doctor(&stack, &production).await,
        checks::PUBLIC_URL,
        "not https",
        "set QUIRE_COMPANION_PUBLIC_URL to the companion's https URL on a public DNS name",
    );
    for (url, problem) in [
        ("https://127.0.0.1:9/", "an IP address, not a DNS name"),
        ("https://localhost/", "localhost is not a public DNS name"),
        (
            "https://quire.internal/",
            "quire.internal is not a public DNS name",
        ),
    ] {
        let mut private = production.clone();
        private.public_url = Some(url.parse().unwrap());
        let report = doctor(&stack, &private).await;
        match &report.line(checks::PUBLIC_URL).unwrap().outcome {
            Outcome::Fail { problem: p, .. } => assert!(p.contains(problem), "{url}: {p}"),
            other => panic!("{url}: {other:?}"),
        }
    }
    // Nothing answers there.
    let mut dead = config.clone();
    dead.public_url = Some("http://127.0.0.1:9/".parse().unwrap());
    let report = doctor(&stack, &dead).await;
    match &report.line(checks::PUBLIC_URL).unwrap().outcome {
        Outcome::Fail { problem, fix } => {
            assert!(
                problem.contains("http://127.0.0.1:9/health does not answer from here"),
                "{problem}"
            );
            assert!(fix.contains("start the companion"), "{fix}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_gateway_that_hides_the_public_host_fails_the_tus_location() {
    let (stack, config) = stack(|_| {}).await;
    // A gateway that forwards with the upstream's Host: Storage builds the
    // upload's URL from it.
    let (proxy_url, _proxy) = start_proxy(stack.api_base().to_owned(), usize::MAX).await;
    let mut behind = config.clone();
    behind.platform.api_url = proxy_url.parse().unwrap();
    only_fails(
        &doctor(&stack, &behind).await,
        checks::TUS_LOCATION,
        &format!(
            "a resumable upload's Location is {}/storage/v1/upload/resumable/",
            stack.api_base()
        ),
        "make the gateway in front of Storage pass the public scheme and host on",
    );
    assert_eq!(
        count(
            &stack,
            "select count(*) from storage.buckets where id like 'quire-doctor-%'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_platform_without_the_service_role_split_or_a_model_fails_those_lines() {
    // The companion refuses to start on such a platform, so the platform
    // changes under a running deployment: restarted as 0.7 answered.
    let (mut old, config) = stack(|_| {}).await;
    old.stop_sandbox();
    old.sandbox_config.agents.emulate_0_7_management_auth = true;
    old.restart_sandbox().await;
    only_fails(
        &doctor(&old, &config).await,
        checks::SPLIT,
        "the platform let a user's token list its knowledge bases",
        "upgrade the platform to 0.12.0 or later",
    );
    drop(old);

    let (stack, config) = stack(|c| c.agents.model_without_key = true).await;
    let report = doctor::check(&config, Some(&stack.db.url()), Options { run: true }).await;
    only_fails(
        &report,
        checks::MODEL,
        "a run answered 400",
        "give the agent's model a key on the platform",
    );
}

#[tokio::test]
async fn the_binary_exits_non_zero_when_a_check_fails_and_names_missing_settings() {
    let (stack, config) = stack(|_| {}).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_quire-companion"))
        .env_clear()
        .env("QUIRE_COMPANION_LOG", "warn")
        .env("QUIRE_COMPANION_API_URL", stack.api_base())
        .env("QUIRE_COMPANION_ANON_KEY", stack.anon_key())
        .env(
            "QUIRE_COMPANION_SERVICE_ROLE_KEY",
            config.platform.service_role_key.expose_secret(),
        )
        .env(
            "QUIRE_COMPANION_JWT_SECRET",
            config.jwt_secret.expose_secret(),
        )
        .env("QUIRE_COMPANION_AGENT_ID", config.agent_id.to_string())
        .env(
            "QUIRE_COMPANION_KNOWLEDGE_BASE_ID",
            config.knowledge_base_id.to_string(),
        )
        .env(
            "QUIRE_COMPANION_TOOL_SECRET",
            config.tool_secret.expose_secret(),
        )
        .env("QUIRE_COMPANION_PUBLIC_URL", stack.companion().url())
        .arg("doctor")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // No database URL and no dev setting: those lines fail, the rest pass.
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok    JWT secret: verifies an access token the project issued"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  db/app: QUIRE_COMPANION_DATABASE_URL is not set"),
        "{stdout}"
    );
    assert!(stdout.contains("FAIL  public URL: "), "{stdout}");
    assert!(
        stdout.contains("SKIP  pg_trgm: needs the database (see db/app)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("doctor: 15 checks, 2 failed, 2 not tried"),
        "{stdout}"
    );
    assert!(stderr.contains("2 of 15 checks failed"), "{stderr}");

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_quire-companion"))
        .env_clear()
        .arg("doctor")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stdout.contains("FAIL  settings: QUIRE_COMPANION_API_URL is not set"),
        "{stdout}"
    );
}
