//! One connection pool per service, each logging in as the role the real
//! service uses (see [`crate::config::DbConfig`]).
//!
//! Pools connect lazily: a service that is not built yet costs nothing.
//! Every query goes through bound parameters; no service builds SQL text from
//! request input.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::ExposeSecret;
use tokio_postgres::NoTls;

use crate::config::DbConfig;

/// A service of the sandbox that talks to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `/auth/v1` (GoTrue): owns the `auth` schema.
    Auth,
    /// `/rest/v1` (PostgREST): switches to the caller's role per request.
    Rest,
    /// `/storage/v1`: owns `storage`, runs object queries as the caller.
    Storage,
    /// `/realtime/v1`: owns `realtime`, checks joins as the caller.
    Realtime,
    /// `/api` (the AI service): owns `ai`.
    Ai,
}

impl Service {
    /// Every service, in a stable order.
    pub const ALL: [Service; 5] = [
        Service::Auth,
        Service::Rest,
        Service::Storage,
        Service::Realtime,
        Service::Ai,
    ];

    /// The login role the service connects as (created by `db/platform`).
    pub fn login_role(self) -> &'static str {
        match self {
            Service::Auth => "supabase_auth_admin",
            Service::Rest => "authenticator",
            Service::Storage => "supabase_storage_admin",
            Service::Realtime => "supabase_realtime_admin",
            Service::Ai => "powabase_ai_admin",
        }
    }

    /// Short lowercase name, as in logs and `application_name`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Auth => "auth",
            Service::Rest => "rest",
            Service::Storage => "storage",
            Service::Realtime => "realtime",
            Service::Ai => "ai",
        }
    }
}

/// Configuration or connection failures.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "no database URL for {service}: pass --db-url (QUIRE_SANDBOX_DB_URL) or --{service}-db-url"
    )]
    MissingUrl { service: &'static str },
    #[error("the database URL for {service} does not parse: {reason}")]
    BadUrl {
        service: &'static str,
        reason: String,
    },
    #[error("could not build the {service} connection pool: {reason}")]
    Pool {
        service: &'static str,
        reason: String,
    },
    #[error("could not connect to PostgreSQL as {role} (for {service}): {reason}")]
    Connect {
        service: &'static str,
        role: &'static str,
        reason: String,
    },
}

impl DbConfig {
    /// The connection settings `service` uses. The result's `Debug` output
    /// hides the password.
    pub fn pg_config(&self, service: Service) -> Result<tokio_postgres::Config, DbError> {
        let own = match service {
            Service::Auth => &self.auth_db_url,
            Service::Rest => &self.rest_db_url,
            Service::Storage => &self.storage_db_url,
            Service::Realtime => &self.realtime_db_url,
            Service::Ai => &self.ai_db_url,
        };
        let parse = |url: &str| {
            tokio_postgres::Config::from_str(url).map_err(|e| DbError::BadUrl {
                service: service.name(),
                reason: e.to_string(),
            })
        };
        let mut config = match (own, &self.db_url) {
            (Some(url), _) => parse(url.expose_secret())?,
            (None, Some(base)) => {
                // The base URL's password belongs to its own user, not to this role.
                let mut config = without_password(parse(base.expose_secret())?);
                config.user(service.login_role());
                config
            }
            (None, None) => {
                return Err(DbError::MissingUrl {
                    service: service.name(),
                });
            }
        };
        config.application_name(format!("quire-sandbox/{}", service.name()));
        config.connect_timeout(Duration::from_secs(5));
        Ok(config)
    }
}

/// tokio-postgres has no way to unset a password; rebuild the config without it.
fn without_password(config: tokio_postgres::Config) -> tokio_postgres::Config {
    let mut fresh = tokio_postgres::Config::new();
    if let Some(user) = config.get_user() {
        fresh.user(user);
    }
    if let Some(dbname) = config.get_dbname() {
        fresh.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        fresh.options(options);
    }
    for host in config.get_hosts() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => {
                fresh.host(h);
            }
            tokio_postgres::config::Host::Unix(p) => {
                fresh.host_path(p);
            }
        }
    }
    for port in config.get_ports() {
        fresh.port(*port);
    }
    fresh
}

/// The per-service connection pools (cheap to clone).
#[derive(Clone)]
pub struct Databases {
    /// Auth, as `supabase_auth_admin`.
    pub auth: Pool,
    /// REST, as `authenticator`.
    pub rest: Pool,
    /// Storage, as `supabase_storage_admin`.
    pub storage: Pool,
    /// Realtime, as `supabase_realtime_admin`.
    pub realtime: Pool,
    /// The AI service, as `powabase_ai_admin`.
    pub ai: Pool,
}

impl Databases {
    /// Builds every pool; nothing connects until first use.
    pub fn new(config: &DbConfig) -> Result<Self, DbError> {
        let pool = |service: Service| -> Result<Pool, DbError> {
            let pg = config.pg_config(service)?;
            let manager = Manager::from_config(
                pg,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(config.db_pool_size.max(1))
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(10)))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| DbError::Pool {
                    service: service.name(),
                    reason: e.to_string(),
                })
        };
        Ok(Databases {
            auth: pool(Service::Auth)?,
            rest: pool(Service::Rest)?,
            storage: pool(Service::Storage)?,
            realtime: pool(Service::Realtime)?,
            ai: pool(Service::Ai)?,
        })
    }

    /// The pool of `service`.
    pub fn pool(&self, service: Service) -> &Pool {
        match service {
            Service::Auth => &self.auth,
            Service::Rest => &self.rest,
            Service::Storage => &self.storage,
            Service::Realtime => &self.realtime,
            Service::Ai => &self.ai,
        }
    }

    /// Connects once as `service`'s role and runs `select 1`, so that a wrong
    /// URL or a missing role fails at start-up rather than on the first request.
    pub async fn check(&self, service: Service) -> Result<(), DbError> {
        let fail = |reason: String| DbError::Connect {
            service: service.name(),
            role: service.login_role(),
            reason,
        };
        let client = self
            .pool(service)
            .get()
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        client
            .simple_query("select 1")
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        Ok(())
    }
}

/// `error` and its sources, joined with ": " (pool errors hide the cause).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn secret(s: &str) -> Option<SecretString> {
        Some(SecretString::from(s.to_owned()))
    }

    #[test]
    fn services_derive_their_role_from_the_base_url() {
        let config = DbConfig {
            db_url: secret("postgresql://postgres:pw@127.0.0.1:54322/postgres"),
            ..DbConfig::default()
        };
        for service in Service::ALL {
            let pg = config.pg_config(service).unwrap();
            assert_eq!(pg.get_user(), Some(service.login_role()));
            assert_eq!(
                pg.get_password(),
                None,
                "the superuser's password must not leak"
            );
            assert_eq!(pg.get_dbname(), Some("postgres"));
            assert_eq!(pg.get_ports(), &[54322]);
        }
    }

    #[test]
    fn a_service_url_wins_and_keeps_its_password() {
        let config = DbConfig {
            db_url: secret("postgresql://postgres@127.0.0.1:54322/postgres"),
            auth_db_url: secret("postgresql://supabase_auth_admin:s3cret@db:5432/app"),
            ..DbConfig::default()
        };
        let pg = config.pg_config(Service::Auth).unwrap();
        assert_eq!(pg.get_user(), Some("supabase_auth_admin"));
        assert_eq!(pg.get_password(), Some(&b"s3cret"[..]));
        assert!(!format!("{pg:?}").contains("s3cret"));
        assert_eq!(
            config.pg_config(Service::Rest).unwrap().get_user(),
            Some("authenticator")
        );
    }

    #[test]
    fn no_url_is_an_error() {
        let config = DbConfig::default();
        assert!(matches!(
            config.pg_config(Service::Auth),
            Err(DbError::MissingUrl { service: "auth" })
        ));
    }
}
