//! The companion's configuration, read from `QUIRE_COMPANION_*` environment
//! variables (see [`Config::from_env`] for the list and defaults).
//!
//! Secrets (the service-role key, the JWT secret, the tool-callback secret)
//! are kept in [`SecretString`]s: `Debug` shows them as `[REDACTED]`, so no
//! log line can carry them. Every problem with the environment is reported at
//! once, each naming its variable.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use url::Url;
use uuid::Uuid;

/// Default listen address (ARCHITECTURE.md, "Local ports, keys, files").
pub const DEFAULT_LISTEN: &str = "127.0.0.1:54380";
/// Default interval at which streamed deltas are coalesced into `chat_events` rows.
pub const DEFAULT_DELTA_INTERVAL_MS: u64 = 100;
/// Default least time between two delta events to the asking client.
pub const DEFAULT_RELAY_INTERVAL_MS: u64 = 20;
/// Shortest secret accepted for the JWT secret and the tool-callback secret.
pub const MIN_SECRET_BYTES: usize = 32;
/// Default time `SIGTERM` gives running answers to finish ([`Config::shutdown_grace`]).
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 30;

/// Everything `quire-companion serve` needs.
#[derive(Clone)]
pub struct Config {
    /// `QUIRE_COMPANION_LISTEN`: address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// `QUIRE_COMPANION_API_URL`, `…_ANON_KEY`, `…_SERVICE_ROLE_KEY`: the platform.
    pub platform: PlatformConfig,
    /// `QUIRE_COMPANION_JWT_SECRET`: the project's JWT secret (verifies user
    /// tokens, signs the tool's short-lived user tokens).
    pub jwt_secret: SecretString,
    /// `QUIRE_COMPANION_AGENT_ID`: the agent that answers.
    pub agent_id: Uuid,
    /// `QUIRE_COMPANION_KNOWLEDGE_BASE_ID`: the knowledge base documents are indexed into.
    pub knowledge_base_id: Uuid,
    /// `QUIRE_COMPANION_PUBLIC_URL`: the companion's base URL as the platform
    /// reaches it (tool callbacks). Default: `http://<bound address>`.
    pub public_url: Option<Url>,
    /// `QUIRE_COMPANION_PUBLIC_API_URL`: the project's URL as the desktop
    /// app reaches it, handed out by `GET /.well-known/quire`, when the
    /// companion reaches the platform by another (a private network).
    /// https unless on loopback. Default: `QUIRE_COMPANION_API_URL`.
    pub public_api_url: Option<Url>,
    /// `QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL` (`true`/`false`, default
    /// `false`): start even though the tool's endpoint is one the platform
    /// refuses to call (`localhost`, loopback, private or link-local
    /// addresses; [`crate::startup::check_tool_endpoint`]). Only for a local
    /// sandbox started to allow it; never in production.
    pub dev_allow_private_tool_url: bool,
    /// `QUIRE_COMPANION_ALLOW_ANONYMOUS_USERS` (`true`/`false`, default
    /// `false`): serve users signed in anonymously (GoTrue's anonymous
    /// sign-ins: an `authenticated` token with `is_anonymous: true`). Off,
    /// every user route answers them 403 `anonymous_not_allowed`
    /// ([`crate::auth`]): anyone can mint such an account, and with it run
    /// the agent and fill Storage at the project's cost.
    pub allow_anonymous_users: bool,
    /// `QUIRE_COMPANION_TOOL_SECRET`: sent by the platform in the tool's
    /// `Authorization` header; at least 32 bytes.
    pub tool_secret: SecretString,
    /// `QUIRE_COMPANION_DELTA_INTERVAL_MS` (default 100).
    pub delta_interval: Duration,
    /// `QUIRE_COMPANION_RELAY_INTERVAL_MS` (default 20; 0 sends every
    /// piece as it comes): the asking client gets the first piece of text at
    /// once, and the pieces that follow within this time together, as one
    /// delta event. A fast model's hundreds of pieces a second then cost
    /// the companion, the network and the desktop one event per interval,
    /// faster than a screen draws.
    pub relay_interval: Duration,
    /// `QUIRE_COMPANION_RUN_TIMEOUT_SECS` (default 600): the longest answer,
    /// and the lifetime of its `session_token`.
    pub run_timeout: Duration,
    /// `QUIRE_COMPANION_SHUTDOWN_GRACE_SECS` (default 30; 0 ends them at
    /// once): how long a stopping companion lets the answers it is writing
    /// finish before it ends them `failed` with their text kept.
    pub shutdown_grace: Duration,
    /// `QUIRE_COMPANION_METRICS_ADDR`: where `GET /metrics` (Prometheus
    /// text) is served, on a listener of its own that must not be public.
    /// Unset: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    /// Per-user and per-request limits.
    pub limits: Limits,
    /// The ingestion workers' settings.
    pub ingest: IngestConfig,
}

/// How long the companion waits on the platform, for every call it makes
/// ([`crate::platform::Platform`]). Not settings: the defaults suit any
/// deployment; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting (default 10 s).
    pub connect: Duration,
    /// The whole of an ordinary call, from connecting to the last byte of
    /// its answer (default 30 s, [`crate::platform::CALL_TIMEOUT`]). A call
    /// that streams has a longer one: `run/stream` the run's timeout plus a
    /// minute, a download from Storage and a document's upload to the AI
    /// service ten minutes ([`crate::platform::Platform::send`]).
    pub call: Duration,
    /// The longest silence of any answer, streams included: waiting for its
    /// head, then between two reads of its body (default 120 s,
    /// [`crate::platform::READ_TIMEOUT`]). `run/stream` breaks a silence
    /// with a keepalive comment (docs/platform/ai-api.md §5.4; the sandbox
    /// every 30 s) and a tool call is given 30 s, so two minutes with no
    /// byte is a platform that stopped answering, not a model thinking.
    /// Not applied to a call whose body is a stream (a document's upload to
    /// the AI service): its file is being sent all that time.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            call: crate::platform::CALL_TIMEOUT,
            read: crate::platform::READ_TIMEOUT,
        }
    }
}

/// Where the platform is and the keys to call it with.
#[derive(Clone)]
pub struct PlatformConfig {
    /// Base URL: `/auth/v1`, `/rest/v1`, `/storage/v1`, `/api` hang off it.
    pub api_url: Url,
    /// `QUIRE_COMPANION_ANON_KEY`: the `apikey` of calls made as a user.
    pub anon_key: SecretString,
    /// `QUIRE_COMPANION_SERVICE_ROLE_KEY`: `apikey` and bearer of calls
    /// made as the service role. Never logged, never sent to a client.
    pub service_role_key: SecretString,
    /// How long calls may take.
    pub timeouts: Timeouts,
}

/// Per-user and per-request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `QUIRE_COMPANION_MAX_RUNS_PER_USER` (default 2): answers streaming at
    /// once per user, on every companion together ([`crate::limits`]).
    pub max_runs_per_user: usize,
    /// `QUIRE_COMPANION_MAX_ANSWERS_IN_FLIGHT` (default 64, at least 1):
    /// answers this companion runs at once, everyone's together. One more
    /// question is refused at once with 429 `rate_limited` and `Retry-After`
    /// (the app says the server is busy) rather than queued behind the
    /// others. An answer holds its place from the check, before any
    /// database work, until it has ended in any way.
    ///
    /// The default comes from the load bench (`cargo xtask bench load`) on a
    /// 2-core machine: the companion saturates near 47 answers/s, each
    /// ending about 130 ms after it was asked, so fewer than ten are in
    /// flight at any rate it sustains; past it, with no limit, answers
    /// queued for 2–3 s, that is 100–140 in flight. 64 leaves room above
    /// the first and refuses the excess before the second (at 96 questions/s:
    /// 126 of 576 refused at once, none failed or hung, the slowest answer
    /// ended within 0.9 s). Answers in flight are answers per second times
    /// an answer's seconds: with a model that takes longer per answer,
    /// raise it in proportion.
    pub max_answers_in_flight: usize,
    /// `QUIRE_COMPANION_MAX_UPLOADS_PER_USER` (default 8): documents a user
    /// may have registered and not yet finished (`uploading` … `indexing`).
    pub max_uploads_per_user: usize,
    /// `QUIRE_COMPANION_MAX_MESSAGE_CHARS` (default 8000).
    pub max_message_chars: usize,
    /// `QUIRE_COMPANION_MAX_CHUNK_IDS` (default 20).
    pub max_chunk_ids: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_runs_per_user: 2,
            max_answers_in_flight: 64,
            max_uploads_per_user: 8,
            max_message_chars: 8000,
            max_chunk_ids: 20,
        }
    }
}

/// The ingestion worker.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `QUIRE_COMPANION_INGEST_WORKERS` (default 4; 0 disables ingestion in
    /// this process). A worker mostly waits on the platform's extraction,
    /// so four cost little, and one user's upload of several PDFs still gets
    /// three at once while a fourth stays free for everyone else.
    pub workers: usize,
    /// `QUIRE_COMPANION_INGEST_LEASE_SECS` (default 60).
    pub lease: Duration,
    /// `QUIRE_COMPANION_POLL_INITIAL_MS` (default 250): first wait when
    /// polling extraction or indexing; doubles up to the maximum.
    pub poll_initial: Duration,
    /// `QUIRE_COMPANION_POLL_MAX_MS` (default 5000).
    pub poll_max: Duration,
    /// `QUIRE_COMPANION_INGEST_IDLE_MS` (default 2000): how often an idle
    /// worker looks for work queued by another companion.
    pub idle_poll: Duration,
    /// `QUIRE_COMPANION_INGEST_MAX_ATTEMPTS` (default 8): claims of one
    /// document before it is `failed`.
    pub max_attempts: u32,
    /// `QUIRE_COMPANION_WORKER_ID`: the name leases are taken under.
    /// Default: host name, process id and a random suffix.
    pub worker_id: Option<String>,
    /// `QUIRE_COMPANION_STALE_UPLOAD_SECS` (default 86400, at least 3600):
    /// a document still `uploading` this long after its last change was cut
    /// and is deleted with its file (db/app/96_stale_uploads.sql). At least
    /// the in-flight hour of db/app/83_per_user_limits.sql, so an upload
    /// going on is never taken. A day by default: a TUS upload URL is valid
    /// for 24 hours (docs/platform-contract.md, "A TUS upload outlives the
    /// client that created it"), so none can go on from its offset after it.
    pub stale_upload: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            workers: 4,
            lease: Duration::from_secs(60),
            poll_initial: Duration::from_millis(250),
            poll_max: Duration::from_secs(5),
            idle_poll: Duration::from_secs(2),
            max_attempts: 8,
            worker_id: None,
            stale_upload: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("platform", &self.platform)
            .field("agent_id", &self.agent_id)
            .field("knowledge_base_id", &self.knowledge_base_id)
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field(
                "public_api_url",
                &self.public_api_url.as_ref().map(Url::as_str),
            )
            .field(
                "dev_allow_private_tool_url",
                &self.dev_allow_private_tool_url,
            )
            .field("allow_anonymous_users", &self.allow_anonymous_users)
            .field("delta_interval", &self.delta_interval)
            .field("relay_interval", &self.relay_interval)
            .field("run_timeout", &self.run_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("metrics_listen", &self.metrics_listen)
            .field("limits", &self.limits)
            .field("ingest", &self.ingest)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for PlatformConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformConfig")
            .field("api_url", &self.api_url.as_str())
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// Every problem found in the environment, one per line, each naming its
/// variable.
#[derive(Debug, thiserror::Error)]
#[error("the companion's configuration is incomplete:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    /// One sentence per problem, naming its variable.
    pub problems: Vec<String>,
}

/// Reads variables and collects problems.
struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&mut self, name: &str, what: &str) -> Option<String> {
        let value = self.raw(name);
        if value.is_none() {
            self.problems.push(format!("{name} is not set ({what})"));
        }
        value
    }

    fn url(&mut self, name: &str, what: &str, required: bool) -> Option<Url> {
        let raw = if required {
            self.required(name, what)?
        } else {
            self.raw(name)?
        };
        match Url::parse(&raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            _ => {
                self.problems.push(format!(
                    "{name} is not an http(s) URL ({what}); got {raw:?}"
                ));
                None
            }
        }
    }

    fn secret(&mut self, name: &str, what: &str, min_len: usize) -> Option<SecretString> {
        let value = self.required(name, what)?;
        if value.len() < min_len {
            // The value itself is never echoed.
            self.problems.push(format!(
                "{name} is too short ({what}): at least {min_len} bytes are needed"
            ));
            return None;
        }
        Some(SecretString::from(value))
    }

    fn uuid(&mut self, name: &str, what: &str) -> Option<Uuid> {
        let raw = self.required(name, what)?;
        match Uuid::parse_str(&raw) {
            Ok(id) => Some(id),
            Err(_) => {
                self.problems
                    .push(format!("{name} is not a UUID ({what}); got {raw:?}"));
                None
            }
        }
    }

    /// `QUIRE_COMPANION_PUBLIC_API_URL`: an absolute http(s) URL with nothing
    /// after its path, https unless its host is loopback (people's sign-ins
    /// and documents go there).
    fn public_api_url(&mut self) -> Option<Url> {
        const NAME: &str = "QUIRE_COMPANION_PUBLIC_API_URL";
        let url = self.url(
            NAME,
            "the project's URL as the desktop app reaches it",
            false,
        )?;
        let problem = if !is_secure_or_loopback(&url) {
            Some(
                "must be https (the app sends passwords and tokens there); only a loopback address may use http",
            )
        } else if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            Some("must be the project's base URL, without credentials, query or fragment")
        } else {
            None
        };
        if let Some(problem) = problem {
            self.problems
                .push(format!("{NAME} {problem}; got {:?}", url.as_str()));
            return None;
        }
        Some(url)
    }

    /// An optional address like `127.0.0.1:9464`; `None` when unset or malformed.
    fn address(&mut self, name: &str) -> Option<SocketAddr> {
        let raw = self.raw(name)?;
        let parsed = raw.parse::<SocketAddr>();
        if parsed.is_err() {
            self.problems.push(format!(
                "{name} is not an address like 127.0.0.1:9464; got {raw:?}"
            ));
        }
        parsed.ok()
    }

    /// `true` or `false`, exactly; unset is `false`.
    fn boolean(&mut self, name: &str) -> bool {
        match self.raw(name).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                self.problems
                    .push(format!("{name} must be true or false; got {other:?}"));
                false
            }
        }
    }

    fn number<T>(&mut self, name: &str, default: T, min: T) -> T
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        match raw.parse::<T>() {
            Ok(value) if value >= min => value,
            _ => {
                self.problems.push(format!(
                    "{name} must be a whole number of at least {min}; got {raw:?}"
                ));
                default
            }
        }
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ConfigError> {
        match value {
            Some(value) if self.problems.is_empty() => Ok(value),
            _ => Err(ConfigError {
                problems: self.problems,
            }),
        }
    }
}

/// https, or plain http to a loopback host (`localhost`, `127.0.0.0/8`,
/// `::1`): the rule of every URL the companion sends keys or tokens to, and
/// of the project's URL it hands to people's apps.
fn is_secure_or_loopback(url: &Url) -> bool {
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(name))) => name.eq_ignore_ascii_case("localhost"),
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    }
}

impl PlatformConfig {
    fn read(r: &mut Reader<'_>) -> Option<PlatformConfig> {
        const API_URL: &str = "QUIRE_COMPANION_API_URL";
        let api_url = r
            .url(
                API_URL,
                "the platform's base URL, e.g. https://project.example.com",
                true,
            )
            .filter(|url| {
                let secure = is_secure_or_loopback(url);
                if !secure {
                    r.problems.push(format!(
                        "{API_URL} must be https: the companion sends the service-role key and \
                         people's tokens there; only a loopback address may use http. Put a project \
                         reached over a private network behind TLS, or reach it through a tunnel to \
                         a loopback port; got {:?}",
                        url.as_str()
                    ));
                }
                secure
            });
        let anon_key = r
            .required("QUIRE_COMPANION_ANON_KEY", "the project's anon key")
            .map(SecretString::from);
        let service_role_key = r
            .required(
                "QUIRE_COMPANION_SERVICE_ROLE_KEY",
                "the project's service-role key",
            )
            .map(SecretString::from);
        Some(PlatformConfig {
            api_url: api_url?,
            anon_key: anon_key?,
            service_role_key: service_role_key?,
            timeouts: Timeouts::default(),
        })
    }

    /// The platform settings alone (what `quire-companion provision` needs).
    pub fn from_env() -> Result<PlatformConfig, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// [`PlatformConfig::from_env`] over any lookup (tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };
        let value = PlatformConfig::read(&mut r);
        r.finish(value)
    }

    /// `api_url` without a trailing slash.
    pub fn base(&self) -> &str {
        self.api_url.as_str().trim_end_matches('/')
    }
}

impl Limits {
    /// The `QUIRE_COMPANION_MAX_*` settings, defaults where unset.
    fn read(r: &mut Reader<'_>) -> Limits {
        let d = Limits::default();
        Limits {
            max_runs_per_user: r.number(
                "QUIRE_COMPANION_MAX_RUNS_PER_USER",
                d.max_runs_per_user,
                1,
            ),
            max_answers_in_flight: r.number(
                "QUIRE_COMPANION_MAX_ANSWERS_IN_FLIGHT",
                d.max_answers_in_flight,
                1,
            ),
            max_uploads_per_user: r.number(
                "QUIRE_COMPANION_MAX_UPLOADS_PER_USER",
                d.max_uploads_per_user,
                1,
            ),
            max_message_chars: r.number(
                "QUIRE_COMPANION_MAX_MESSAGE_CHARS",
                d.max_message_chars,
                1,
            ),
            max_chunk_ids: r.number("QUIRE_COMPANION_MAX_CHUNK_IDS", d.max_chunk_ids, 0),
        }
    }
}

impl IngestConfig {
    /// The ingestion settings, defaults where unset.
    fn read(r: &mut Reader<'_>) -> IngestConfig {
        let i = IngestConfig::default();
        IngestConfig {
            workers: r.number("QUIRE_COMPANION_INGEST_WORKERS", i.workers, 0),
            lease: Duration::from_secs(r.number(
                "QUIRE_COMPANION_INGEST_LEASE_SECS",
                i.lease.as_secs(),
                3,
            )),
            poll_initial: Duration::from_millis(r.number(
                "QUIRE_COMPANION_POLL_INITIAL_MS",
                millis(i.poll_initial),
                1,
            )),
            poll_max: Duration::from_millis(r.number(
                "QUIRE_COMPANION_POLL_MAX_MS",
                millis(i.poll_max),
                1,
            )),
            idle_poll: Duration::from_millis(r.number(
                "QUIRE_COMPANION_INGEST_IDLE_MS",
                millis(i.idle_poll),
                1,
            )),
            max_attempts: r.number("QUIRE_COMPANION_INGEST_MAX_ATTEMPTS", i.max_attempts, 1),
            worker_id: r.raw("QUIRE_COMPANION_WORKER_ID"),
            stale_upload: Duration::from_secs(r.number(
                "QUIRE_COMPANION_STALE_UPLOAD_SECS",
                i.stale_upload.as_secs(),
                60 * 60,
            )),
        }
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    ///
    /// Required: `QUIRE_COMPANION_API_URL`, `QUIRE_COMPANION_ANON_KEY`,
    /// `QUIRE_COMPANION_SERVICE_ROLE_KEY`, `QUIRE_COMPANION_JWT_SECRET`,
    /// `QUIRE_COMPANION_AGENT_ID`, `QUIRE_COMPANION_KNOWLEDGE_BASE_ID`,
    /// `QUIRE_COMPANION_TOOL_SECRET`. Optional (defaults in the field docs):
    /// `LISTEN`, `PUBLIC_URL`, `PUBLIC_API_URL`, `DEV_ALLOW_PRIVATE_TOOL_URL`,
    /// `ALLOW_ANONYMOUS_USERS`, `DELTA_INTERVAL_MS`, `RELAY_INTERVAL_MS`, `RUN_TIMEOUT_SECS`,
    /// `MAX_RUNS_PER_USER`, `MAX_ANSWERS_IN_FLIGHT`, `MAX_UPLOADS_PER_USER`, `MAX_MESSAGE_CHARS`,
    /// `MAX_CHUNK_IDS`, `INGEST_WORKERS`,
    /// `INGEST_LEASE_SECS`, `POLL_INITIAL_MS`, `POLL_MAX_MS`,
    /// `INGEST_IDLE_MS`, `INGEST_MAX_ATTEMPTS`, `WORKER_ID`,
    /// `SHUTDOWN_GRACE_SECS`, `METRICS_ADDR` (all prefixed `QUIRE_COMPANION_`).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] over any lookup (tests).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut r = Reader {
            lookup,
            problems: Vec::new(),
        };
        let listen = match r.raw("QUIRE_COMPANION_LISTEN") {
            None => Some(DEFAULT_LISTEN.parse().expect("the default address parses")),
            Some(raw) => match raw.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    r.problems.push(format!(
                        "QUIRE_COMPANION_LISTEN is not an address like 127.0.0.1:54380; got {raw:?}"
                    ));
                    None
                }
            },
        };
        let platform = PlatformConfig::read(&mut r);
        let jwt_secret = r.secret(
            "QUIRE_COMPANION_JWT_SECRET",
            "the project's JWT secret",
            MIN_SECRET_BYTES,
        );
        let agent_id = r.uuid(
            "QUIRE_COMPANION_AGENT_ID",
            "the agent's id; `quire-companion provision` creates one",
        );
        let knowledge_base_id = r.uuid(
            "QUIRE_COMPANION_KNOWLEDGE_BASE_ID",
            "the knowledge base's id; `quire-companion provision` creates one",
        );
        let public_url = r.url(
            "QUIRE_COMPANION_PUBLIC_URL",
            "the companion's URL as the platform reaches it",
            false,
        );
        let public_api_url = r.public_api_url();
        let dev_allow_private_tool_url = r.boolean("QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL");
        let allow_anonymous_users = r.boolean("QUIRE_COMPANION_ALLOW_ANONYMOUS_USERS");
        let tool_secret = r.secret(
            "QUIRE_COMPANION_TOOL_SECRET",
            "the secret the platform presents when it calls the search tool",
            MIN_SECRET_BYTES,
        );
        let delta_ms = r.number(
            "QUIRE_COMPANION_DELTA_INTERVAL_MS",
            DEFAULT_DELTA_INTERVAL_MS,
            1,
        );
        let relay_ms = r.number(
            "QUIRE_COMPANION_RELAY_INTERVAL_MS",
            DEFAULT_RELAY_INTERVAL_MS,
            0,
        );
        let run_timeout = r.number("QUIRE_COMPANION_RUN_TIMEOUT_SECS", 600u64, 1);
        let shutdown_grace = r.number(
            "QUIRE_COMPANION_SHUTDOWN_GRACE_SECS",
            DEFAULT_SHUTDOWN_GRACE_SECS,
            0,
        );
        let metrics_listen = r.address("QUIRE_COMPANION_METRICS_ADDR");
        let limits = Limits::read(&mut r);
        let ingest = IngestConfig::read(&mut r);

        let value = (|| {
            Some(Config {
                listen: listen?,
                platform: platform?,
                jwt_secret: jwt_secret?,
                agent_id: agent_id?,
                knowledge_base_id: knowledge_base_id?,
                public_url,
                public_api_url,
                dev_allow_private_tool_url,
                allow_anonymous_users,
                tool_secret: tool_secret?,
                delta_interval: Duration::from_millis(delta_ms),
                relay_interval: Duration::from_millis(relay_ms),
                run_timeout: Duration::from_secs(run_timeout),
                shutdown_grace: Duration::from_secs(shutdown_grace),
                metrics_listen,
                limits,
                ingest,
            })
        })();
        r.finish(value)
    }

    /// A configuration with every default, listening on `127.0.0.1:0`, for
    /// embedding the companion (tests). Its tool endpoint is on loopback, so
    /// it starts only with [`Config::dev_allow_private_tool_url`] set.
    pub fn new(
        platform: PlatformConfig,
        jwt_secret: SecretString,
        agent_id: Uuid,
        knowledge_base_id: Uuid,
        tool_secret: SecretString,
    ) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            platform,
            jwt_secret,
            agent_id,
            knowledge_base_id,
            public_url: None,
            public_api_url: None,
            dev_allow_private_tool_url: false,
            allow_anonymous_users: false,
            tool_secret,
            delta_interval: Duration::from_millis(DEFAULT_DELTA_INTERVAL_MS),
            relay_interval: Duration::from_millis(DEFAULT_RELAY_INTERVAL_MS),
            run_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            metrics_listen: None,
            limits: Limits::default(),
            ingest: IngestConfig::default(),
        }
    }

    /// The project's base URL the desktop app is told to use (discovery):
    /// [`Config::public_api_url`], else the platform's own; no trailing slash.
    pub fn client_api_url(&self) -> &str {
        self.public_api_url.as_ref().map_or_else(
            || self.platform.base(),
            |url| url.as_str().trim_end_matches('/'),
        )
    }

    /// True when the JWT secret is as long as [`MIN_SECRET_BYTES`].
    pub fn has_strong_secrets(&self) -> bool {
        self.jwt_secret.expose_secret().len() >= MIN_SECRET_BYTES
            && self.tool_secret.expose_secret().len() >= MIN_SECRET_BYTES
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("QUIRE_COMPANION_API_URL", "http://127.0.0.1:54321"),
            ("QUIRE_COMPANION_ANON_KEY", "anon"),
            ("QUIRE_COMPANION_SERVICE_ROLE_KEY", "service-key-value"),
            (
                "QUIRE_COMPANION_JWT_SECRET",
                "0123456789abcdef0123456789abcdef-jwt",
            ),
            (
                "QUIRE_COMPANION_AGENT_ID",
                "6f1e4c1a-1111-4c1a-8c1a-1c1a1c1a1c1a",
            ),
            (
                "QUIRE_COMPANION_KNOWLEDGE_BASE_ID",
                "6f1e4c1a-2222-4c1a-8c1a-1c1a1c1a1c1a",
            ),
            (
                "QUIRE_COMPANION_TOOL_SECRET",
                "0123456789abcdef0123456789abcdef-tool",
            ),
        ]
    }

    #[test]
    fn a_complete_environment_gives_the_defaults() {
        let config = Config::from_lookup(&lookup(&complete())).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.delta_interval, Duration::from_millis(100));
        assert_eq!(config.relay_interval, Duration::from_millis(20));
        assert_eq!(config.limits.max_chunk_ids, 20);
        assert_eq!(config.ingest.workers, 4);
        assert!(config.public_url.is_none());
        assert!(!config.dev_allow_private_tool_url);
        assert!(config.has_strong_secrets());
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.metrics_listen, None);
    }

    #[test]
    fn the_public_api_url_defaults_to_the_platforms_and_must_be_https_off_loopback() {
        let config = Config::from_lookup(&lookup(&complete())).unwrap();
        assert_eq!(config.client_api_url(), "http://127.0.0.1:54321");

        for (given, handed_out) in [
            (
                "https://project.example.com/",
                "https://project.example.com",
            ),
            (
                "https://example.com/powabase",
                "https://example.com/powabase",
            ),
            ("http://localhost:54321", "http://localhost:54321"),
            ("http://127.0.0.2:8000", "http://127.0.0.2:8000"),
            ("http://[::1]:8000", "http://[::1]:8000"),
        ] {
            let mut env = complete();
            env.push(("QUIRE_COMPANION_PUBLIC_API_URL", given));
            let config = Config::from_lookup(&lookup(&env)).unwrap();
            assert_eq!(config.client_api_url(), handed_out, "{given}");
        }
        for (given, words) in [
            ("http://project.example.com", "must be https"),
            ("http://10.0.0.5:8000", "must be https"),
            ("project.example.com", "is not an http(s) URL"),
            ("ftp://project.example.com", "is not an http(s) URL"),
            (
                "https://project.example.com/?x=1",
                "without credentials, query or fragment",
            ),
            (
                "https://user:pw@project.example.com",
                "without credentials, query or fragment",
            ),
        ] {
            let mut env = complete();
            env.push(("QUIRE_COMPANION_PUBLIC_API_URL", given));
            let err = Config::from_lookup(&lookup(&env)).unwrap_err();
            let said = err.problems.join("\n");
            assert!(
                said.contains("QUIRE_COMPANION_PUBLIC_API_URL"),
                "{given}: {said}"
            );
            assert!(said.contains(words), "{given}: {said}");
        }
    }

    #[test]
    fn the_platform_url_must_be_https_unless_on_loopback() {
        for given in [
            "https://project.example.com",
            "https://10.0.0.5:8443",
            "http://127.0.0.1:54321",
            "http://localhost:54321",
            "http://[::1]:54321",
        ] {
            let mut env = complete();
            env.retain(|(k, _)| *k != "QUIRE_COMPANION_API_URL");
            env.push(("QUIRE_COMPANION_API_URL", given));
            assert!(Config::from_lookup(&lookup(&env)).is_ok(), "{given}");
            assert!(
                PlatformConfig::from_lookup(&lookup(&env)).is_ok(),
                "{given}"
            );
        }
        for given in [
            "http://project.example.com",
            "http://10.0.0.5:8000",
            "http://localhost.example.com",
        ] {
            let mut env = complete();
            env.retain(|(k, _)| *k != "QUIRE_COMPANION_API_URL");
            env.push(("QUIRE_COMPANION_API_URL", given));
            // `serve` and `provision` alike.
            let problems = [
                Config::from_lookup(&lookup(&env)).unwrap_err().problems,
                PlatformConfig::from_lookup(&lookup(&env))
                    .unwrap_err()
                    .problems,
            ];
            for problems in problems {
                let said = problems.join("\n");
                assert_eq!(problems.len(), 1, "{given}: {said}");
                for words in [
                    "QUIRE_COMPANION_API_URL",
                    given,
                    "must be https",
                    "service-role key",
                    "TLS",
                    "loopback",
                ] {
                    assert!(said.contains(words), "{given}: {words} in {said}");
                }
            }
        }
    }

    #[test]
    fn anonymous_users_are_refused_unless_allowed() {
        let config = Config::from_lookup(&lookup(&complete())).unwrap();
        assert!(!config.allow_anonymous_users);
        let mut env = complete();
        env.push(("QUIRE_COMPANION_ALLOW_ANONYMOUS_USERS", "true"));
        let config = Config::from_lookup(&lookup(&env)).unwrap();
        assert!(config.allow_anonymous_users);
        let mut env = complete();
        env.push(("QUIRE_COMPANION_ALLOW_ANONYMOUS_USERS", "yes"));
        let err = Config::from_lookup(&lookup(&env)).unwrap_err();
        assert_eq!(
            err.problems,
            ["QUIRE_COMPANION_ALLOW_ANONYMOUS_USERS must be true or false; got \"yes\""]
        );
    }

    #[test]
    fn the_metrics_listener_and_the_grace_period_are_read() {
        let mut env = complete();
        env.push(("QUIRE_COMPANION_METRICS_ADDR", "127.0.0.1:9464"));
        env.push(("QUIRE_COMPANION_SHUTDOWN_GRACE_SECS", "0"));
        let config = Config::from_lookup(&lookup(&env)).unwrap();
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(config.shutdown_grace, Duration::ZERO);

        let mut env = complete();
        env.push(("QUIRE_COMPANION_METRICS_ADDR", ":9464"));
        let err = Config::from_lookup(&lookup(&env)).unwrap_err();
        assert_eq!(
            err.problems,
            ["QUIRE_COMPANION_METRICS_ADDR is not an address like 127.0.0.1:9464; got \":9464\""]
        );
    }

    #[test]
    fn the_answers_in_flight_are_read_and_at_least_one() {
        let config = Config::from_lookup(&lookup(&complete())).unwrap();
        assert_eq!(config.limits.max_answers_in_flight, 64);
        let mut env = complete();
        env.push(("QUIRE_COMPANION_MAX_ANSWERS_IN_FLIGHT", "200"));
        let config = Config::from_lookup(&lookup(&env)).unwrap();
        assert_eq!(config.limits.max_answers_in_flight, 200);
        let mut env = complete();
        env.push(("QUIRE_COMPANION_MAX_ANSWERS_IN_FLIGHT", "0"));
        let err = Config::from_lookup(&lookup(&env)).unwrap_err();
        assert_eq!(
            err.problems,
            [
                "QUIRE_COMPANION_MAX_ANSWERS_IN_FLIGHT must be a whole number of at least 1; got \"0\""
            ]
        );
    }

    #[test]
    fn a_stale_upload_is_a_day_old_by_default_and_never_under_the_in_flight_hour() {
        let config = Config::from_lookup(&lookup(&complete())).unwrap();
        assert_eq!(config.ingest.stale_upload, Duration::from_secs(86_400));
        let mut env = complete();
        env.push(("QUIRE_COMPANION_STALE_UPLOAD_SECS", "7200"));
        let config = Config::from_lookup(&lookup(&env)).unwrap();
        assert_eq!(config.ingest.stale_upload, Duration::from_secs(7200));
        let mut env = complete();
        env.push(("QUIRE_COMPANION_STALE_UPLOAD_SECS", "60"));
        let err = Config::from_lookup(&lookup(&env)).unwrap_err();
        assert_eq!(
            err.problems,
            [
                "QUIRE_COMPANION_STALE_UPLOAD_SECS must be a whole number of at least 3600; got \"60\""
            ]
        );
    }

    #[test]
    fn the_dev_setting_takes_only_true_or_false() {
        for (raw, expected) in [("true", true), ("false", false)] {
            let mut env = complete();
            env.push(("QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL", raw));
            let config = Config::from_lookup(&lookup(&env)).unwrap();
            assert_eq!(config.dev_allow_private_tool_url, expected, "{raw}");
        }
        for raw in ["1", "yes", "TRUE", "on"] {
            let mut env = complete();
            env.push(("QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL", raw));
            let err = Config::from_lookup(&lookup(&env)).unwrap_err();
            assert_eq!(
                err.problems,
                [format!(
                    "QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL must be true or false; got {raw:?}"
                )]
            );
        }
    }

    #[test]
    fn every_missing_or_malformed_setting_is_named_and_no_secret_is_shown() {
        let mut env = complete();
        env.retain(|(k, _)| *k != "QUIRE_COMPANION_SERVICE_ROLE_KEY");
        env.retain(|(k, _)| *k != "QUIRE_COMPANION_JWT_SECRET");
        env.push(("QUIRE_COMPANION_JWT_SECRET", "short-secret-value"));
        env.retain(|(k, _)| *k != "QUIRE_COMPANION_AGENT_ID");
        env.push(("QUIRE_COMPANION_AGENT_ID", "not-a-uuid"));
        env.push(("QUIRE_COMPANION_DELTA_INTERVAL_MS", "fast"));
        env.push(("QUIRE_COMPANION_LISTEN", "nowhere"));
        let err = Config::from_lookup(&lookup(&env)).unwrap_err();
        let text = err.to_string();
        for name in [
            "QUIRE_COMPANION_SERVICE_ROLE_KEY is not set",
            "QUIRE_COMPANION_JWT_SECRET is too short",
            "QUIRE_COMPANION_AGENT_ID is not a UUID",
            "QUIRE_COMPANION_DELTA_INTERVAL_MS must be",
            "QUIRE_COMPANION_LISTEN is not an address",
        ] {
            assert!(text.contains(name), "{name} in {text}");
        }
        assert!(!text.contains("short-secret-value"), "{text}");
        assert_eq!(err.problems.len(), 5, "{text}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = Config::from_lookup(&lookup(&complete())).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("service-key-value"), "{shown}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
