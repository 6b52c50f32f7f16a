//! The sandbox's configuration: command-line flags, each also readable from a
//! `QUIRE_SANDBOX_*` environment variable.
//!
//! Database URLs and the JWT secret are secrets: they are kept in
//! [`SecretString`]s, so `Debug` output (and therefore logs) shows them as
//! `[REDACTED]`. Pass them through the environment rather than the command line,
//! where any local user could read them in the process list.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Default listen address: the port the Supabase CLI's gateway uses.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:54321";
/// Default data directory (relative to the working directory): the dev stack's.
pub const DEFAULT_DATA_DIR: &str = ".quire/sandbox";
/// Default access-token lifetime, as GoTrue's `GOTRUE_JWT_EXP`.
pub const DEFAULT_JWT_EXPIRY_SECS: u64 = 3600;
/// Default refresh-token reuse interval, as the Supabase CLI's `refresh_token_reuse_interval`.
pub const DEFAULT_REFRESH_TOKEN_REUSE_INTERVAL_SECS: u64 = 10;
/// Default lifetime of a PKCE flow state, as GoTrue's `FlowStateExpiryDuration`.
pub const DEFAULT_FLOW_STATE_EXPIRY_SECS: u64 = 300;
/// Default object size limit (52,428,800 bytes), as Supabase Storage's `FILE_SIZE_LIMIT`.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;
/// Default time limit on reading one file's text, in seconds: a few hundred
/// pages take seconds, so only a file that makes the reader loop reaches it.
pub const DEFAULT_EXTRACTION_TIME_LIMIT_SECS: u64 = 300;
/// Default site URL, as the Supabase CLI's `site_url`.
pub const DEFAULT_SITE_URL: &str = "http://127.0.0.1:3000";
/// The OAuth providers a sandbox enables unless told otherwise (an empty
/// `QUIRE_SANDBOX_OAUTH_PROVIDERS` enables none).
pub const DEFAULT_OAUTH_PROVIDERS: &str = "github,google";
/// Default connection-pool size per service.
pub const DEFAULT_DB_POOL_SIZE: usize = 10;
/// Default minimum password length, as GoTrue's `GOTRUE_PASSWORD_MIN_LENGTH`.
pub const DEFAULT_MIN_PASSWORD_LENGTH: usize = 6;

/// Everything `quire-sandbox` needs to run. Build it with clap
/// (`quire-sandbox --help`) or, in tests, with [`Config::new`] and plain field
/// assignments.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on. Port 0 picks a free port. Any address that is not
    /// loopback needs a JWT secret of at least 32 bytes.
    #[arg(long, env = "QUIRE_SANDBOX_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Public base URL of the API (`api_url`), used in token issuers and
    /// redirects. Defaults to `http://<bound address>`.
    #[arg(long, env = "QUIRE_SANDBOX_API_URL")]
    pub api_url: Option<Url>,

    /// Directory for the sandbox's own state: the JWT secret and, later,
    /// storage objects. Created (0700) if missing.
    #[arg(long, env = "QUIRE_SANDBOX_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// Where each service's database connections go.
    #[command(flatten)]
    pub db: DbConfig,

    /// JWT secret to use instead of the one kept in `<data-dir>/jwt_secret`.
    #[arg(long, env = "QUIRE_SANDBOX_JWT_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub jwt_secret: Option<SecretString>,

    /// Lifetime of access tokens, in seconds.
    #[arg(long = "jwt-expiry", env = "QUIRE_SANDBOX_JWT_EXPIRY", default_value_t = DEFAULT_JWT_EXPIRY_SECS)]
    pub jwt_expiry_secs: u64,

    /// How long (seconds) a rotated refresh token may still be presented and
    /// answered with the session's current tokens.
    #[arg(
        long = "refresh-token-reuse-interval",
        env = "QUIRE_SANDBOX_REFRESH_TOKEN_REUSE_INTERVAL",
        default_value_t = DEFAULT_REFRESH_TOKEN_REUSE_INTERVAL_SECS
    )]
    pub refresh_token_reuse_interval_secs: u64,

    /// How long (seconds) a PKCE flow state (an `auth_code`) stays valid.
    #[arg(
        long = "flow-state-expiry",
        env = "QUIRE_SANDBOX_FLOW_STATE_EXPIRY",
        default_value_t = DEFAULT_FLOW_STATE_EXPIRY_SECS
    )]
    pub flow_state_expiry_secs: u64,

    /// Largest object Storage accepts, in bytes, single or resumable (TUS)
    /// upload alike: Storage's global `FILE_SIZE_LIMIT`. A bucket's
    /// `file_size_limit` can only lower it.
    #[arg(long = "max-upload-size", env = "QUIRE_SANDBOX_MAX_UPLOAD_SIZE", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,

    /// Longest time (seconds) reading one source file's text may take; past
    /// it the extraction ends `failed`.
    #[arg(
        long = "extraction-time-limit",
        env = "QUIRE_SANDBOX_EXTRACTION_TIME_LIMIT",
        default_value_t = DEFAULT_EXTRACTION_TIME_LIMIT_SECS
    )]
    pub extraction_time_limit_secs: u64,

    /// The site URL: where `/authorize` redirects when `redirect_to` is not allowed.
    #[arg(long, env = "QUIRE_SANDBOX_SITE_URL", default_value = DEFAULT_SITE_URL)]
    pub site_url: Url,

    /// Extra allowed `redirect_to` patterns (globs, comma separated), as
    /// GoTrue's `GOTRUE_URI_ALLOW_LIST`. Loopback IP literals are always allowed.
    #[arg(
        long,
        env = "QUIRE_SANDBOX_ADDITIONAL_REDIRECT_URLS",
        value_delimiter = ','
    )]
    pub additional_redirect_urls: Vec<String>,

    /// Emulate GoTrue before v2.171 (supabase/auth 347e23a, #1984, added the
    /// exception): a loopback IP literal is not allowed as `redirect_to` on
    /// any port, only when the site URL has its host or the allow list
    /// matches it (`http://127.0.0.1:*/**`). The sandbox's other refusals
    /// (decimal IPs, odd hostnames, control characters) stay as today's. For
    /// testing what Quire's doctor says of such a project.
    /// (The variable takes `1`/`0`, `true`/`false`, `yes`/`no`, `on`/`off`.)
    #[arg(
        long,
        env = "QUIRE_SANDBOX_EMULATE_GOTRUE_BEFORE_2_171",
        value_parser = clap::builder::BoolishValueParser::new(),
        hide = true
    )]
    pub emulate_gotrue_before_2_171: bool,

    /// The OAuth providers the project enabled (comma separated; GoTrue's
    /// `EXTERNAL_<NAME>_ENABLED`): `/settings` lists them `true` and
    /// `/authorize` serves the sandbox's sign-in page for them only.
    #[arg(
        long,
        env = "QUIRE_SANDBOX_OAUTH_PROVIDERS",
        value_delimiter = ',',
        default_value = DEFAULT_OAUTH_PROVIDERS
    )]
    pub oauth_providers: Vec<String>,

    /// Refuse new sign-ups (`/signup` answers 422 `signup_disabled`).
    #[arg(long, env = "QUIRE_SANDBOX_DISABLE_SIGNUP")]
    pub disable_signup: bool,

    /// New email accounts confirm their address before signing in (GoTrue's
    /// `MAILER_AUTOCONFIRM=false`); the mails go to [`Config::mailbox`].
    #[arg(long, env = "QUIRE_SANDBOX_CONFIRM_EMAIL")]
    pub confirm_email: bool,

    /// Minimum password length for sign-up and password changes.
    #[arg(long, env = "QUIRE_SANDBOX_MIN_PASSWORD_LENGTH", default_value_t = DEFAULT_MIN_PASSWORD_LENGTH)]
    pub min_password_length: usize,

    /// Argon2 memory cost in KiB for new password hashes (default: OWASP's 19 MiB).
    /// Tests lower it; stored hashes carry their own parameters.
    #[arg(long, env = "QUIRE_SANDBOX_PASSWORD_HASH_MEMORY_KIB", default_value_t = argon2::Params::DEFAULT_M_COST, hide = true)]
    pub password_hash_memory_kib: u32,

    /// Realtime's delays and limits.
    #[command(flatten)]
    pub realtime: crate::realtime::RealtimeConfig,

    /// How agents run.
    #[command(flatten)]
    pub agents: crate::ai::agents::AgentsConfig,

    /// Write `{api_url, anon_key, service_role_key, jwt_secret}` (0600) to this
    /// file once the server is listening.
    #[arg(long, env = "QUIRE_SANDBOX_KEYS_FILE")]
    pub keys_file: Option<PathBuf>,
}

/// Where each service's database connections go.
///
/// Every service connects as its own login role, as the real services do:
/// Auth as `supabase_auth_admin`, REST as `authenticator`, Storage as
/// `supabase_storage_admin`, Realtime as `supabase_realtime_admin`, the AI
/// service as `powabase_ai_admin`. A service's URL is its own
/// `--<service>-db-url` when given; otherwise `--db-url` with the user
/// replaced by the service's role and the password dropped (fine with `trust`
/// authentication, as in tests; the dev stack passes every URL explicitly).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DbConfig {
    /// Base database URL (host, port, database) shared by all services.
    #[arg(long, env = "QUIRE_SANDBOX_DB_URL", hide_env_values = true, value_parser = parse_secret)]
    pub db_url: Option<SecretString>,

    /// Auth's database URL (connects as `supabase_auth_admin`).
    #[arg(long, env = "QUIRE_SANDBOX_AUTH_DB_URL", hide_env_values = true, value_parser = parse_secret)]
    pub auth_db_url: Option<SecretString>,

    /// REST's database URL (connects as `authenticator`).
    #[arg(long, env = "QUIRE_SANDBOX_REST_DB_URL", hide_env_values = true, value_parser = parse_secret)]
    pub rest_db_url: Option<SecretString>,

    /// Storage's database URL (connects as `supabase_storage_admin`).
    #[arg(long, env = "QUIRE_SANDBOX_STORAGE_DB_URL", hide_env_values = true, value_parser = parse_secret)]
    pub storage_db_url: Option<SecretString>,

    /// Realtime's database URL (connects as `supabase_realtime_admin`).
    #[arg(long, env = "QUIRE_SANDBOX_REALTIME_DB_URL", hide_env_values = true, value_parser = parse_secret)]
    pub realtime_db_url: Option<SecretString>,

    /// The AI service's database URL (connects as `powabase_ai_admin`).
    #[arg(long, env = "QUIRE_SANDBOX_AI_DB_URL", hide_env_values = true, value_parser = parse_secret)]
    pub ai_db_url: Option<SecretString>,

    /// Maximum connections per service pool.
    #[arg(long, env = "QUIRE_SANDBOX_DB_POOL_SIZE", default_value_t = DEFAULT_DB_POOL_SIZE)]
    pub db_pool_size: usize,
}

impl Config {
    /// A configuration with every default, listening on `127.0.0.1:0`, for
    /// embedding the sandbox (tests, `cargo xtask`).
    pub fn new(data_dir: impl Into<PathBuf>, db_url: impl Into<String>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_url: None,
            data_dir: data_dir.into(),
            db: DbConfig {
                db_url: Some(SecretString::from(db_url.into())),
                db_pool_size: DEFAULT_DB_POOL_SIZE,
                ..DbConfig::default()
            },
            jwt_secret: None,
            jwt_expiry_secs: DEFAULT_JWT_EXPIRY_SECS,
            refresh_token_reuse_interval_secs: DEFAULT_REFRESH_TOKEN_REUSE_INTERVAL_SECS,
            flow_state_expiry_secs: DEFAULT_FLOW_STATE_EXPIRY_SECS,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            extraction_time_limit_secs: DEFAULT_EXTRACTION_TIME_LIMIT_SECS,
            site_url: Url::parse(DEFAULT_SITE_URL).expect("default site URL parses"),
            additional_redirect_urls: Vec::new(),
            emulate_gotrue_before_2_171: false,
            oauth_providers: DEFAULT_OAUTH_PROVIDERS
                .split(',')
                .map(str::to_owned)
                .collect(),
            disable_signup: false,
            confirm_email: false,
            min_password_length: DEFAULT_MIN_PASSWORD_LENGTH,
            password_hash_memory_kib: argon2::Params::DEFAULT_M_COST,
            realtime: crate::realtime::RealtimeConfig::default(),
            agents: crate::ai::agents::AgentsConfig::default(),
            keys_file: None,
        }
    }

    /// The file the sandbox's mails are appended to, one JSON line each
    /// (`mailbox.jsonl` in the data directory).
    pub fn mailbox(&self) -> PathBuf {
        self.data_dir.join("mailbox.jsonl")
    }

    /// Access-token lifetime.
    pub fn jwt_expiry(&self) -> Duration {
        Duration::from_secs(self.jwt_expiry_secs)
    }

    /// Refresh-token reuse interval.
    pub fn refresh_token_reuse_interval(&self) -> Duration {
        Duration::from_secs(self.refresh_token_reuse_interval_secs)
    }

    /// Lifetime of a PKCE flow state.
    pub fn flow_state_expiry(&self) -> Duration {
        Duration::from_secs(self.flow_state_expiry_secs)
    }
}

fn parse_secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn clap_defaults_match_the_embedding_constructor() {
        let parsed = Cli::parse_from(["quire-sandbox"]).config;
        let built = Config::new(DEFAULT_DATA_DIR, "postgres://x");
        assert_eq!(parsed.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(parsed.data_dir, built.data_dir);
        assert_eq!(parsed.jwt_expiry_secs, built.jwt_expiry_secs);
        assert_eq!(
            parsed.refresh_token_reuse_interval_secs,
            built.refresh_token_reuse_interval_secs
        );
        assert_eq!(parsed.flow_state_expiry_secs, built.flow_state_expiry_secs);
        assert_eq!(parsed.max_upload_bytes, built.max_upload_bytes);
        assert_eq!(
            parsed.extraction_time_limit_secs,
            built.extraction_time_limit_secs
        );
        assert_eq!(parsed.site_url, built.site_url);
        assert_eq!(parsed.min_password_length, built.min_password_length);
        assert_eq!(
            parsed.password_hash_memory_kib,
            built.password_hash_memory_kib
        );
        assert_eq!(parsed.db.db_pool_size, built.db.db_pool_size);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut config = Config::new("/tmp/x", "postgres://u:hunter2@localhost/db");
        config.jwt_secret = Some(SecretString::from("super-secret-value".to_owned()));
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("super-secret-value"), "{shown}");
    }
}
