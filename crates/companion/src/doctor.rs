//! `quire-companion doctor`: checks a deployment from the companion's own
//! configuration (`QUIRE_COMPANION_*`, and `QUIRE_COMPANION_DATABASE_URL`
//! for the database's checks) and prints one line per check, `ok` or
//! `FAIL` with what to do. It exits non-zero if anything fails. A check
//! that needs what an earlier one found missing (the service key refused,
//! the API not answering, no database, no db/app) prints `SKIP … needs …`
//! instead of repeating that failure with another fix.
//!
//! What it checks, in order: the keys and the JWT secret (a throwaway user
//! is created with the service key, signed in with the anon key, its token
//! verified with the secret and used on PostgREST, then deleted); the
//! service-role split ([`crate::startup::check_service_role_split`]);
//! `db/app` applied and at which version, `pg_trgm`, the `realtime.messages`
//! policy (the database); the `documents` bucket and its size limit
//! (Storage); sign-up, OAuth providers and the loopback `redirect_to`
//! (`/auth/v1/settings`, `/auth/v1/admin/generate_link`); that a TUS
//! upload's `Location` has the API URL's scheme and host (a throwaway
//! bucket, removed after); the public URL (https, a public DNS name,
//! answering `/health` from here); the search tool registered for that URL
//! and assigned, and no knowledge base attached; with `--run`, one run of
//! the agent (its model answers).
//!
//! Nothing it creates outlives it: the user, the bucket, the upload and the
//! run's session are removed (a failure to remove one is its own `FAIL`).

use std::fmt::Write as _;
use std::net::IpAddr;

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};
use url::{Host, Url};
use uuid::Uuid;

use crate::auth::JwtKeys;
use crate::config::{Config, ConfigError};
use crate::migrate::{self, Database};
use crate::platform::{Auth, CALL_TIMEOUT, Platform};
use crate::startup::{self, StartupError};
use crate::tool::{self, TOOL_NAME};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It holds; what was found.
    Pass(String),
    /// It does not.
    Fail {
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: String,
    },
    /// Not tried: it needs what an earlier check found missing (a refused
    /// key, an API that does not answer, no database, no db/app), so its
    /// result would only repeat that failure with a misleading fix.
    Skip {
        /// What it needs, e.g. `the service key (see its line)`.
        needs: String,
    },
}

/// One printed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The check's name (`anon key`, `JWT secret`, …).
    pub check: &'static str,
    /// Its result.
    pub outcome: Outcome,
}

/// Every check's line, in order.
#[derive(Debug, Default)]
pub struct Report {
    /// The lines.
    pub lines: Vec<Line>,
}

fn pass(detail: impl Into<String>) -> Outcome {
    Outcome::Pass(detail.into())
}

fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
    Outcome::Fail {
        problem: problem.into(),
        fix: fix.into(),
    }
}

fn skip(needs: &str) -> Outcome {
    Outcome::Skip {
        needs: needs.to_owned(),
    }
}

/// `check`'s outcome, or a skip when it `needs` something found missing.
async fn unless(needs: Option<&str>, check: impl Future<Output = Outcome>) -> Outcome {
    match needs {
        Some(needs) => skip(needs),
        None => check.await,
    }
}

impl Report {
    fn add(&mut self, check: &'static str, outcome: Outcome) {
        self.lines.push(Line { check, outcome });
    }

    /// The line of `check`, if it ran.
    pub fn line(&self, check: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.check == check)
    }

    /// How many checks failed.
    pub fn failed(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| matches!(l.outcome, Outcome::Fail { .. }))
            .count()
    }

    /// How many checks were not tried.
    pub fn skipped(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| matches!(l.outcome, Outcome::Skip { .. }))
            .count()
    }

    /// The report as printed.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match &line.outcome {
                Outcome::Pass(detail) => {
                    let _ = writeln!(out, "ok    {}: {detail}", line.check);
                }
                Outcome::Fail { problem, fix } => {
                    let _ = writeln!(out, "FAIL  {}: {problem}", line.check);
                    let _ = writeln!(out, "      fix: {fix}");
                }
                Outcome::Skip { needs } => {
                    let _ = writeln!(out, "SKIP  {}: needs {needs}", line.check);
                }
            }
        }
        let _ = write!(
            out,
            "doctor: {} checks, {} failed",
            self.lines.len(),
            self.failed()
        );
        match self.skipped() {
            0 => out.push('\n'),
            n => {
                let _ = writeln!(out, ", {n} not tried");
            }
        }
        out
    }
}

/// Check names, as printed.
pub mod checks {
    /// The service-role key on `/api`.
    pub const SERVICE_KEY: &str = "service key";
    /// The anon key through the gateway.
    pub const ANON_KEY: &str = "anon key";
    /// The JWT secret against a token the project issued.
    pub const JWT_SECRET: &str = "JWT secret";
    /// User tokens refused on the management routes.
    pub const SPLIT: &str = "service-role split";
    /// `db/app` applied.
    pub const DB_APP: &str = "db/app";
    /// `pg_trgm` installed.
    pub const PG_TRGM: &str = "pg_trgm";
    /// The `realtime.messages` policy.
    pub const REALTIME_POLICY: &str = "realtime policy";
    /// The `documents` bucket.
    pub const BUCKET: &str = "documents bucket";
    /// Whether anyone may sign up.
    pub const SIGN_UP: &str = "sign-up";
    /// OAuth providers that are on.
    pub const OAUTH: &str = "OAuth providers";
    /// A loopback `redirect_to` allowed.
    pub const LOOPBACK_REDIRECT: &str = "loopback redirect";
    /// A TUS upload's `Location`.
    pub const TUS_LOCATION: &str = "TUS Location";
    /// `QUIRE_COMPANION_PUBLIC_URL`.
    pub const PUBLIC_URL: &str = "public URL";
    /// The search tool registered and assigned.
    pub const TOOL: &str = "search tool";
    /// No knowledge base on the agent.
    pub const KNOWLEDGE_BASES: &str = "knowledge bases";
    /// The agent's model answers (`--run`).
    pub const MODEL: &str = "model";
    /// The configuration itself.
    pub const SETTINGS: &str = "settings";
}

/// What to check besides the free checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Run the agent once (costs one run).
    pub run: bool,
}

/// Runs every check against the deployment `config` describes, and the
/// database `database_url` names (its checks fail without one).
pub async fn check(config: &Config, database_url: Option<&str>, options: Options) -> Report {
    let mut report = Report::default();
    let platform = match Platform::new(&config.platform) {
        Ok(platform) => platform,
        Err(err) => {
            report.add(
                checks::SETTINGS,
                fail(format!("no HTTP client: {err}"), "report this as a bug"),
            );
            return report;
        }
    };
    let doctor = Doctor {
        config,
        platform: &platform,
        jwt: JwtKeys::new(&config.jwt_secret),
    };
    let (service_line, needs) = doctor.service_key().await;
    report.add(checks::SERVICE_KEY, service_line);
    // The database first, so that the checks of what db/app makes are
    // skipped when it is not applied; its lines are printed in their place.
    let (database, no_db_app) = doctor.database(database_url).await;
    let (api, service) = (needs.api.as_deref(), needs.service.as_deref());
    doctor
        .keys(&mut report, service, no_db_app.as_deref())
        .await;
    report.add(checks::SPLIT, unless(api, doctor.split()).await);
    report.lines.extend(database);
    let bucket_needs = service.or(no_db_app.as_deref());
    report.add(checks::BUCKET, unless(bucket_needs, doctor.bucket()).await);
    doctor.auth_settings(&mut report, api, service).await;
    let tus = unless(service, doctor.tus_location()).await;
    report.add(checks::TUS_LOCATION, tus);
    report.add(checks::PUBLIC_URL, doctor.public_url().await);
    report.add(checks::TOOL, unless(service, doctor.tool()).await);
    let knowledge_bases = unless(service, doctor.knowledge_bases()).await;
    report.add(checks::KNOWLEDGE_BASES, knowledge_bases);
    if options.run {
        report.add(checks::MODEL, unless(service, doctor.model()).await);
    }
    report
}

/// What the service key's check found missing, for the checks after it.
#[derive(Debug, Default)]
struct Needs {
    /// The API did not answer: every platform check needs it.
    api: Option<String>,
    /// The service key was refused (or the API did not answer): the checks
    /// that call the platform with it need it.
    service: Option<String>,
}

/// `quire-companion doctor [--run]`: prints the report; an error when a
/// check failed.
pub async fn command(args: &[String]) -> anyhow::Result<()> {
    let options = match args {
        [] => Options::default(),
        [flag] if flag == "--run" => Options { run: true },
        _ => anyhow::bail!("unknown arguments to doctor: {args:?} (doctor [--run])"),
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(ConfigError { problems }) => {
            let mut report = Report::default();
            for problem in problems {
                report.add(
                    checks::SETTINGS,
                    fail(
                        problem,
                        "set it as for `quire-companion serve` (crates/companion/README.md)",
                    ),
                );
            }
            print!("{}", report.text());
            anyhow::bail!("the configuration is incomplete; nothing else was checked");
        }
    };
    let url = std::env::var(migrate::DATABASE_URL)
        .ok()
        .filter(|u| !u.trim().is_empty());
    let report = check(&config, url.as_deref(), options).await;
    print!("{}", report.text());
    match report.failed() {
        0 => Ok(()),
        n => anyhow::bail!("{n} of {} checks failed", report.lines.len()),
    }
}

struct Doctor<'a> {
    config: &'a Config,
    platform: &'a Platform,
    jwt: JwtKeys,
}

/// A user that exists only while the doctor runs.
struct Throwaway {
    id: String,
    email: String,
}

const FIX_SERVICE_KEY: &str =
    "set QUIRE_COMPANION_SERVICE_ROLE_KEY to the project's service_role key";
const FIX_DATABASE_URL: &str = "set QUIRE_COMPANION_DATABASE_URL to the project's database URL (as for `quire-companion migrate`)";

impl Doctor<'_> {
    /// `METHOD path` as `auth`, with the call timeout: status and JSON body
    /// (`Null` when not JSON), or the transport error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let mut request = self
            .platform
            .request(method.clone(), path, auth)
            .timeout(CALL_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: no answer ({e})"))?;
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    fn anon_key(&self) -> &str {
        self.config.platform.anon_key.expose_secret()
    }

    /// The anon key and the JWT secret, through a throwaway user made with
    /// the service key (so both need it). Without db/app, the user's read
    /// through PostgREST is not tried: there is nothing of Quire's to read.
    async fn keys(&self, report: &mut Report, service: Option<&str>, no_db_app: Option<&str>) {
        if let Some(needs) = service {
            report.add(checks::ANON_KEY, skip(needs));
            report.add(checks::JWT_SECRET, skip(needs));
            return;
        }
        let user = match self.create_user().await {
            Ok(user) => user,
            Err(problem) => {
                let why = format!("no throwaway user could be created to check it ({problem})");
                report.add(checks::ANON_KEY, fail(why.clone(), FIX_SERVICE_KEY));
                report.add(checks::JWT_SECRET, fail(why, FIX_SERVICE_KEY));
                return;
            }
        };
        let (anon, secret) = match self.sign_in(&user).await {
            Ok(token) if no_db_app.is_some() => (
                pass(
                    "a throwaway user signed in with it (not read through PostgREST: db/app is not applied)",
                ),
                self.jwt_secret(&token),
            ),
            Ok(token) => (self.anon_key_on_rest(&token).await, self.jwt_secret(&token)),
            Err(problem) => (
                fail(
                    format!("signing a throwaway user in failed ({problem})"),
                    "set QUIRE_COMPANION_ANON_KEY to the project's anon key",
                ),
                skip("an access token the project issued (see anon key)"),
            ),
        };
        report.add(checks::ANON_KEY, anon);
        report.add(checks::JWT_SECRET, secret);
        if let Err(problem) = self.delete_user(&user).await {
            report.add(
                checks::ANON_KEY,
                fail(
                    format!(
                        "the throwaway user {} was not deleted ({problem})",
                        user.email
                    ),
                    "delete it in the project's Auth users",
                ),
            );
        }
    }

    /// The service key on `/api`, and what the later checks lack if it fails.
    async fn service_key(&self) -> (Outcome, Needs) {
        match self
            .call(
                Method::GET,
                "/api/knowledge-bases?limit=1",
                Auth::Service,
                None,
            )
            .await
        {
            Ok((status, _)) if status.is_success() => (pass("accepted by /api"), Needs::default()),
            Ok((status, body)) => (
                fail(
                    format!("GET /api/knowledge-bases with it answered {status}: {body}"),
                    FIX_SERVICE_KEY,
                ),
                Needs {
                    api: None,
                    service: Some("the service key (see its line)".to_owned()),
                },
            ),
            Err(problem) => {
                let api = format!(
                    "the API at {} answering (see service key)",
                    self.config.platform.api_url.as_str().trim_end_matches('/')
                );
                let needs = Needs {
                    api: Some(api.clone()),
                    service: Some(api),
                };
                (fail(problem, "check QUIRE_COMPANION_API_URL"), needs)
            }
        }
    }

    async fn create_user(&self) -> Result<Throwaway, String> {
        let email = format!("quire-doctor-{}@example.com", Uuid::new_v4().simple());
        let body =
            json!({"email": email, "password": self.password(&email), "email_confirm": true});
        match self
            .call(
                Method::POST,
                "/auth/v1/admin/users",
                Auth::Service,
                Some(&body),
            )
            .await?
        {
            (status, user) if status.is_success() => Ok(Throwaway {
                id: user["id"].as_str().unwrap_or_default().to_owned(),
                email,
            }),
            (status, body) => Err(format!(
                "POST /auth/v1/admin/users answered {status}: {body}"
            )),
        }
    }

    /// The throwaway user's password: not guessable, not kept.
    fn password(&self, email: &str) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(format!(
            "{email}{}",
            self.config.tool_secret.expose_secret()
        ));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    }

    async fn sign_in(&self, user: &Throwaway) -> Result<String, String> {
        let body = json!({"email": user.email, "password": self.password(&user.email)});
        let anon = self.anon_key().to_owned();
        match self
            .call(
                Method::POST,
                "/auth/v1/token?grant_type=password",
                Auth::User(&anon),
                Some(&body),
            )
            .await?
        {
            (status, session) if status.is_success() => session["access_token"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("no access_token in {session}")),
            (status, body) => Err(format!("POST /auth/v1/token answered {status}: {body}")),
        }
    }

    async fn anon_key_on_rest(&self, token: &str) -> Outcome {
        match self
            .call(
                Method::GET,
                "/rest/v1/documents?select=id&limit=1",
                Auth::User(token),
                None,
            )
            .await
        {
            Ok((status, _)) if status.is_success() => {
                pass("the gateway takes it, and a signed-in user reads through it")
            }
            Ok((status, body)) => fail(
                format!(
                    "a signed-in user's GET /rest/v1/documents with it answered {status}: {body}"
                ),
                "set QUIRE_COMPANION_ANON_KEY to the project's anon key (and apply db/app: quire-companion migrate)",
            ),
            Err(problem) => fail(problem, "check QUIRE_COMPANION_API_URL"),
        }
    }

    fn jwt_secret(&self, token: &str) -> Outcome {
        match self.jwt.verify(token) {
            Some(_) => pass("verifies an access token the project issued"),
            None => fail(
                format!(
                    "an access token the project issued (alg {}) does not verify with it",
                    token_alg(token)
                ),
                "set QUIRE_COMPANION_JWT_SECRET to the project's JWT secret; Quire verifies HS256 \
                 tokens only, so the project must sign with its shared secret",
            ),
        }
    }

    async fn delete_user(&self, user: &Throwaway) -> Result<(), String> {
        let path = format!("/auth/v1/admin/users/{}", user.id);
        match self
            .call(Method::DELETE, &path, Auth::Service, None)
            .await?
        {
            (status, _) if status.is_success() => Ok(()),
            (status, body) => Err(format!("DELETE {path} answered {status}: {body}")),
        }
    }

    async fn split(&self) -> Outcome {
        match startup::check_service_role_split(self.platform, &self.jwt).await {
            Ok(()) => pass(format!(
                "a user's token is refused on GET {}",
                startup::PROBE_PATH
            )),
            Err(err @ StartupError::ProbeFailed(_)) => {
                fail(err.to_string(), "check QUIRE_COMPANION_API_URL")
            }
            Err(err) => fail(
                err.to_string(),
                format!(
                    "upgrade the platform to {} or later",
                    startup::MIN_PLATFORM_VERSION
                ),
            ),
        }
    }

    /// `db/app`, `pg_trgm` and the `realtime.messages` policy: their lines,
    /// and what the checks of db/app's objects need when none of it is applied.
    async fn database(&self, url: Option<&str>) -> (Vec<Line>, Option<String>) {
        let line = |check, outcome| Line { check, outcome };
        let db = match url {
            None => Err(fail(
                format!(
                    "{} is not set, so the database was not checked",
                    migrate::DATABASE_URL
                ),
                FIX_DATABASE_URL,
            )),
            Some(url) => Database::connect(url)
                .await
                .map_err(|err| fail(err.to_string(), FIX_DATABASE_URL)),
        };
        let db = match db {
            Ok(db) => db,
            Err(outcome) => {
                let needs = skip("the database (see db/app)");
                let lines = vec![
                    line(checks::DB_APP, outcome),
                    line(checks::PG_TRGM, needs.clone()),
                    line(checks::REALTIME_POLICY, needs),
                ];
                return (lines, None);
            }
        };
        let (outcome, nothing_applied) = db_app(&db).await;
        let mut lines = vec![line(checks::DB_APP, outcome)];
        if nothing_applied {
            let needs = "db/app applied (see db/app)";
            lines.push(line(checks::PG_TRGM, skip(needs)));
            lines.push(line(checks::REALTIME_POLICY, skip(needs)));
            return (lines, Some(needs.to_owned()));
        }
        lines.push(line(checks::PG_TRGM, pg_trgm(&db).await));
        lines.push(line(checks::REALTIME_POLICY, realtime_policy(&db).await));
        (lines, None)
    }

    async fn bucket(&self) -> Outcome {
        let fix = "apply db/app (quire-companion migrate creates it: db/app/50_storage.sql)";
        let bucket = match self
            .call(
                Method::GET,
                "/storage/v1/bucket/documents",
                Auth::Service,
                None,
            )
            .await
        {
            Ok((status, bucket)) if status.is_success() => bucket,
            Ok((status, body)) => {
                return fail(
                    format!("GET /storage/v1/bucket/documents answered {status}: {body}"),
                    fix,
                );
            }
            Err(problem) => return fail(problem, "check QUIRE_COMPANION_API_URL"),
        };
        let limit = bucket["file_size_limit"].as_u64();
        match (bucket["public"].as_bool(), limit) {
            (Some(false), Some(limit)) => pass(format!(
                "private, file_size_limit {limit} bytes ({:.0} MiB), the largest document",
                limit as f64 / 1_048_576.0
            )),
            (Some(true), _) => fail(
                "the bucket is public: anyone could read every user's PDFs",
                "make it private: Storage, documents, Edit bucket, Public off (or \
                 update storage.buckets set public = false where id = 'documents')",
            ),
            _ => fail(
                "the bucket has no file_size_limit",
                "give it db/app's limit: Storage, documents, Edit bucket, restrict file size \
                 to 50 MB (or update storage.buckets set file_size_limit = 52428800 \
                 where id = 'documents')",
            ),
        }
    }

    /// `/auth/v1/settings` (the anon key) and the loopback redirect (the
    /// service key).
    async fn auth_settings(&self, report: &mut Report, api: Option<&str>, service: Option<&str>) {
        if let Some(needs) = api {
            for name in [checks::SIGN_UP, checks::OAUTH, checks::LOOPBACK_REDIRECT] {
                report.add(name, skip(needs));
            }
            return;
        }
        let anon = self.anon_key().to_owned();
        let settings = match self
            .call(Method::GET, "/auth/v1/settings", Auth::User(&anon), None)
            .await
        {
            Ok((status, settings)) if status.is_success() => settings,
            Ok((status, body)) => {
                let why = format!("GET /auth/v1/settings answered {status}: {body}");
                for name in [checks::SIGN_UP, checks::OAUTH] {
                    report.add(
                        name,
                        fail(
                            why.clone(),
                            "check QUIRE_COMPANION_API_URL and QUIRE_COMPANION_ANON_KEY",
                        ),
                    );
                }
                return;
            }
            Err(problem) => {
                for name in [checks::SIGN_UP, checks::OAUTH] {
                    report.add(name, fail(problem.clone(), "check QUIRE_COMPANION_API_URL"));
                }
                return;
            }
        };
        report.add(checks::SIGN_UP, sign_up(&settings));
        report.add(checks::OAUTH, oauth_providers(&settings));
        let redirect = unless(service, self.loopback_redirect()).await;
        report.add(checks::LOOPBACK_REDIRECT, redirect);
    }

    /// Whether GoTrue keeps a loopback `redirect_to`: it answers
    /// `generate_link` with the redirect it would use, the site URL when
    /// the requested one is not allowed.
    async fn loopback_redirect(&self) -> Outcome {
        let wanted = "http://127.0.0.1:53682/callback";
        let email = format!("quire-doctor-{}@example.com", Uuid::new_v4().simple());
        let body = json!({"type": "magiclink", "email": email, "redirect_to": wanted});
        let answer = self
            .call(
                Method::POST,
                "/auth/v1/admin/generate_link",
                Auth::Service,
                Some(&body),
            )
            .await;
        // A magic link for an unknown email signs the user up: remove them.
        if let Ok((_, link)) = &answer
            && let Some(id) = link["id"].as_str()
        {
            let _ = self
                .delete_user(&Throwaway {
                    id: id.to_owned(),
                    email,
                })
                .await;
        }
        match answer {
            Ok((status, link)) if status.is_success() => match link["redirect_to"].as_str() {
                Some(got) if got == wanted => {
                    pass(format!("{wanted} is accepted (browser sign-in)"))
                }
                got => fail(
                    format!(
                        "GoTrue replaces {wanted} with {}: browser sign-in would land there",
                        got.unwrap_or("nothing")
                    ),
                    "allow loopback redirects: GoTrue v2.171 or later allows http://127.0.0.1 on any port; \
                     older ones need http://127.0.0.1:*/** in the redirect allow list (URI_ALLOW_LIST)",
                ),
            },
            Ok((status, body)) => fail(
                format!("POST /auth/v1/admin/generate_link answered {status}: {body}"),
                FIX_SERVICE_KEY,
            ),
            Err(problem) => fail(problem, "check QUIRE_COMPANION_API_URL"),
        }
    }
}

/// The `alg` of a JWT's header, as written (`?` when unreadable).
fn token_alg(token: &str) -> String {
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .and_then(|h| h["alg"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The `db/app` line, and whether none of it is applied.
async fn db_app(db: &Database) -> (Outcome, bool) {
    let plan = migrate::plan(db).await;
    let nothing_applied = matches!(&plan, Ok(plan) if plan.applied.is_empty());
    let outcome = match plan {
        Ok(plan) if plan.pending.is_empty() => pass(format!(
            "applied, version {} ({} files)",
            plan.version().unwrap_or("none"),
            plan.applied.len()
        )),
        Ok(plan) => fail(
            format!(
                "{} of {} files are not applied (first: {}); applied version: {}",
                plan.pending.len(),
                plan.pending.len() + plan.applied.len(),
                plan.pending[0].file,
                plan.version().unwrap_or("none")
            ),
            "run quire-companion migrate",
        ),
        Err(err) => fail(
            err.to_string(),
            "run quire-companion migrate status to see why",
        ),
    };
    (outcome, nothing_applied)
}

async fn pg_trgm(db: &Database) -> Outcome {
    match db
        .rows(
            "reading pg_extension",
            "select extversion from pg_catalog.pg_extension where extname = 'pg_trgm'",
        )
        .await
    {
        Ok(rows) => match rows.first().and_then(|r| r.first()).cloned().flatten() {
            Some(version) => pass(format!("installed, version {version}")),
            None => fail(
                "not installed: search_chunks cannot find the query as typed",
                "run quire-companion migrate (db/app/00_prerequisites.sql installs it)",
            ),
        },
        Err(err) => fail(err.to_string(), FIX_DATABASE_URL),
    }
}

async fn realtime_policy(db: &Database) -> Outcome {
    match db
        .rows(
            "reading realtime.messages's policies",
            "select cmd::text from pg_catalog.pg_policies where schemaname = 'realtime' \
             and tablename = 'messages' and policyname = 'user_joins_own_topic'",
        )
        .await
    {
        Ok(rows) if !rows.is_empty() => {
            pass("user_joins_own_topic: a user joins only their own user:<uid> topic")
        }
        Ok(_) => fail(
            "realtime.messages has no user_joins_own_topic policy: no device can follow an answer live",
            "run quire-companion migrate (db/app/40_realtime.sql)",
        ),
        Err(err) => fail(err.to_string(), FIX_DATABASE_URL),
    }
}

fn sign_up(settings: &Value) -> Outcome {
    match settings["disable_signup"].as_bool() {
        Some(false) => pass("open: anyone may create an account"),
        Some(true) => pass("closed: only users you invite or create can sign in"),
        None => fail(
            format!("/auth/v1/settings has no disable_signup: {settings}"),
            "check that QUIRE_COMPANION_API_URL is the project's URL",
        ),
    }
}

fn oauth_providers(settings: &Value) -> Outcome {
    let Some(external) = settings["external"].as_object() else {
        return fail(
            format!("/auth/v1/settings has no external: {settings}"),
            "check that QUIRE_COMPANION_API_URL is the project's URL",
        );
    };
    let on: Vec<&str> = external
        .iter()
        .filter(|(name, on)| {
            on.as_bool() == Some(true)
                && !matches!(name.as_str(), "email" | "phone" | "anonymous_users")
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let email = if external["email"].as_bool() == Some(true) {
        "email and password on"
    } else {
        "email and password off"
    };
    if on.is_empty() {
        pass(format!("none ({email})"))
    } else {
        pass(format!("{} ({email})", on.join(", ")))
    }
}

impl Doctor<'_> {
    /// Creates a TUS upload in a throwaway bucket and compares its
    /// `Location` with the API URL: a gateway that does not pass the
    /// public host on gives clients a URL they cannot reach.
    async fn tus_location(&self) -> Outcome {
        let bucket = format!(
            "quire-doctor-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let created = self
            .call(
                Method::POST,
                "/storage/v1/bucket",
                Auth::Service,
                Some(&json!({"id": bucket, "name": bucket, "public": false})),
            )
            .await;
        match created {
            Ok((status, _)) if status.is_success() => {}
            Ok((status, body)) => {
                return fail(
                    format!("creating a throwaway bucket answered {status}: {body}"),
                    FIX_SERVICE_KEY,
                );
            }
            Err(problem) => return fail(problem, "check QUIRE_COMPANION_API_URL"),
        }
        let location = self.tus_create(&bucket).await;
        if let Ok(Some(location)) = &location {
            self.tus_terminate(location).await;
        }
        let removed = self
            .call(
                Method::DELETE,
                &format!("/storage/v1/bucket/{bucket}"),
                Auth::Service,
                None,
            )
            .await;
        let outcome = match location {
            Ok(Some(location)) => self.judge_location(&location),
            Ok(None) => fail(
                "the upload was created without a Location header",
                "check the gateway in front of Storage",
            ),
            Err(problem) => fail(problem, "check the gateway in front of Storage"),
        };
        match removed {
            Ok((status, _)) if status.is_success() => outcome,
            _ => fail(
                format!("the throwaway bucket {bucket} was not removed"),
                "delete it in the project's Storage",
            ),
        }
    }

    async fn tus_create(&self, bucket: &str) -> Result<Option<String>, String> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let metadata = format!(
            "bucketName {},objectName {},contentType {}",
            b64(bucket),
            b64("doctor.pdf"),
            b64("application/pdf")
        );
        let response = self
            .platform
            .request(Method::POST, "/storage/v1/upload/resumable", Auth::Service)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "1")
            .header("Upload-Metadata", metadata)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("POST /storage/v1/upload/resumable: no answer ({e})"))?;
        let status = response.status();
        if status != StatusCode::CREATED {
            let body = response.text().await.unwrap_or_default();
            return Err(format!(
                "POST /storage/v1/upload/resumable answered {status}: {body}"
            ));
        }
        Ok(response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned))
    }

    /// Abandons the upload, by its path on the API URL (its `Location`
    /// may name a host that cannot be reached from here).
    async fn tus_terminate(&self, location: &str) {
        let Some(path) = Url::parse(location).ok().map(|u| u.path().to_owned()) else {
            return;
        };
        let _ = self
            .platform
            .request(Method::DELETE, &path, Auth::Service)
            .header("Tus-Resumable", "1.0.0")
            .timeout(CALL_TIMEOUT)
            .send()
            .await;
    }

    fn judge_location(&self, location: &str) -> Outcome {
        let api = &self.config.platform.api_url;
        let fix = "make the gateway in front of Storage pass the public scheme and host on \
                   (X-Forwarded-Proto and X-Forwarded-Host, or the Host header)";
        let Ok(url) = Url::parse(location) else {
            return fail(
                format!("the upload's Location {location:?} is not a URL"),
                fix,
            );
        };
        let same = url.scheme() == api.scheme()
            && url.host_str() == api.host_str()
            && url.port_or_known_default() == api.port_or_known_default();
        if same {
            pass(format!(
                "{} (the API URL's scheme and host)",
                url.origin().ascii_serialization()
            ))
        } else {
            fail(
                format!(
                    "a resumable upload's Location is {location}, not on {}: clients could not send the file there",
                    api.origin().ascii_serialization()
                ),
                fix,
            )
        }
    }

    /// `QUIRE_COMPANION_PUBLIC_URL`: https on a public DNS name, answering
    /// `/health` from where the doctor runs.
    async fn public_url(&self) -> Outcome {
        let url = match &self.config.public_url {
            Some(url) => url.clone(),
            None => match Url::parse(&format!("http://{}", self.config.listen)) {
                Ok(url) => url,
                Err(_) => return fail("QUIRE_COMPANION_PUBLIC_URL is not set", FIX_PUBLIC_URL),
            },
        };
        let shown = url.as_str().trim_end_matches('/').to_owned();
        let refusal = match public_name_problem(&url).await {
            None => None,
            Some(problem) if self.config.dev_allow_private_tool_url => {
                tracing::debug!(%problem, "allowed by the dev setting");
                None
            }
            Some(problem) => Some(problem),
        };
        if let Some(problem) = refusal {
            return fail(format!("{shown}: {problem}"), FIX_PUBLIC_URL);
        }
        let health = format!("{shown}/health");
        let answer = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| e.to_string());
        let answer = match answer {
            Ok(http) => http.get(&health).send().await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match answer {
            Ok(response) if response.status().is_success() => {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if body["service"] != "quire-companion" {
                    return fail(
                        format!("{health} answers, but not as the companion: {body}"),
                        FIX_PUBLIC_URL,
                    );
                }
                let dev = if self.config.dev_allow_private_tool_url {
                    " (QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL=true: only a local sandbox calls it)"
                } else {
                    ""
                };
                pass(format!("{health} answers{dev}"))
            }
            Ok(response) => fail(
                format!("{health} answered {}", response.status()),
                FIX_PUBLIC_URL,
            ),
            Err(e) => fail(
                format!("{health} does not answer from here ({e})"),
                "start the companion, and make QUIRE_COMPANION_PUBLIC_URL reach it",
            ),
        }
    }

    async fn tool(&self) -> Outcome {
        let base = self.config.public_url.as_ref().map_or_else(
            || format!("http://{}", self.config.listen),
            |u| u.to_string(),
        );
        let expected = tool::endpoint(&base);
        let fix = "start the companion with this configuration: it registers the tool and assigns it to the agent at start-up";
        let tools = match self
            .call(Method::GET, "/api/tools", Auth::Service, None)
            .await
        {
            Ok((status, tools)) if status.is_success() => tools,
            Ok((status, body)) => {
                return fail(
                    format!("GET /api/tools answered {status}: {body}"),
                    FIX_SERVICE_KEY,
                );
            }
            Err(problem) => return fail(problem, "check QUIRE_COMPANION_API_URL"),
        };
        let Some(registered) = tools["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == TOOL_NAME && !t["id"].is_null())
        else {
            return fail(format!("no custom tool {TOOL_NAME} is registered"), fix);
        };
        let endpoint = registered["config"]["endpoint"]
            .as_str()
            .unwrap_or_default();
        if endpoint != expected {
            return fail(
                format!("{TOOL_NAME} calls {endpoint}, not {expected}"),
                "start the companion with this QUIRE_COMPANION_PUBLIC_URL (replicas must share one)",
            );
        }
        let agent = self.config.agent_id;
        let path = format!("/api/agents/{agent}/tools");
        let assigned = match self.call(Method::GET, &path, Auth::Service, None).await {
            Ok((status, assigned)) if status.is_success() => assigned,
            Ok((status, body)) => {
                return fail(
                    format!("GET {path} answered {status}: {body}"),
                    "check QUIRE_COMPANION_AGENT_ID (quire-companion provision)",
                );
            }
            Err(problem) => return fail(problem, "check QUIRE_COMPANION_API_URL"),
        };
        let ours = assigned["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|a| a["tool_name"] == TOOL_NAME && a["tool_id"] == registered["id"]);
        if ours {
            pass(format!(
                "{TOOL_NAME} calls {expected} and is assigned to the agent"
            ))
        } else {
            fail(
                format!("{TOOL_NAME} is registered but not assigned to the agent {agent}"),
                fix,
            )
        }
    }

    async fn knowledge_bases(&self) -> Outcome {
        match startup::check_no_knowledge_base(self.platform, self.config.agent_id).await {
            Ok(()) => pass("none attached to the agent"),
            Err(err @ StartupError::KnowledgeBaseAttached { .. }) => fail(
                err.to_string(),
                "detach them (DELETE /api/agents/{id}/knowledge-bases/{assignment})",
            ),
            Err(err) => fail(
                err.to_string(),
                "check QUIRE_COMPANION_AGENT_ID (quire-companion provision)",
            ),
        }
    }

    /// One run of the agent, its session removed after.
    async fn model(&self) -> Outcome {
        let agent = self.config.agent_id;
        let path = format!("/api/agents/{agent}/run");
        let body = json!({"message": "Reply with the single word: ready."});
        let fix = "give the agent's model a key on the platform (docs/platform/ai-api.md §5.6), or choose another model";
        let (status, run) = match self
            .call(Method::POST, &path, Auth::Service, Some(&body))
            .await
        {
            Ok(answer) => answer,
            Err(problem) => return fail(problem, "check QUIRE_COMPANION_API_URL"),
        };
        if let Some(session) = run["session_id"].as_str() {
            let _ = self
                .call(
                    Method::DELETE,
                    &format!("/api/agents/{agent}/sessions/{session}"),
                    Auth::Service,
                    None,
                )
                .await;
        }
        let content = run["content"].as_str().unwrap_or_default();
        if status.is_success() && run["status"] == "completed" && !content.trim().is_empty() {
            pass(format!(
                "the agent answered ({} characters)",
                content.chars().count()
            ))
        } else {
            let error = run["error"]
                .as_str()
                .map_or_else(|| run.to_string(), str::to_owned);
            fail(format!("a run answered {status}: {error}"), fix)
        }
    }
}

const FIX_PUBLIC_URL: &str = "set QUIRE_COMPANION_PUBLIC_URL to the companion's https URL on a public DNS name \
                              (a reverse proxy with a certificate in front of it), which the platform can reach";

/// Why `url` is not https on a public DNS name, or `None`.
async fn public_name_problem(url: &Url) -> Option<String> {
    if url.scheme() != "https" {
        return Some(
            "not https: the platform sends the tool secret and users' questions to it".to_owned(),
        );
    }
    let name = match url.host()? {
        Host::Domain(name) => name.to_ascii_lowercase(),
        Host::Ipv4(_) | Host::Ipv6(_) => {
            return Some("an IP address, not a DNS name".to_owned());
        }
    };
    let private_suffix = [
        ".local",
        ".localhost",
        ".internal",
        ".lan",
        ".home.arpa",
        ".test",
    ]
    .iter()
    .any(|s| name.ends_with(s));
    if name == "localhost" || !name.contains('.') || private_suffix {
        return Some(format!("{name} is not a public DNS name"));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = match tokio::net::lookup_host((name.as_str(), port)).await {
        Ok(found) => found.map(|a| a.ip()).collect(),
        Err(e) => return Some(format!("{name} does not resolve from here ({e})")),
    };
    addresses.iter().find_map(|ip| {
        let as_url = Url::parse(&format!(
            "https://{}/",
            match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            }
        ))
        .ok()?;
        startup::blocked_tool_endpoint(&as_url).map(|reason| {
            format!("{name} resolves to {ip}, which the platform refuses to call ({reason})")
        })
    })
}
