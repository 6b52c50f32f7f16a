//! [`Stack`]: the sandbox in this process on port 0, over a fresh database of
//! its own (`quire-testdb`), and with feature `stack` the companion in front
//! of it with Quire's agent and knowledge base provisioned. It derefs to an
//! [`Api`], so it has a method per endpoint.
//!
//! The service key appears here to create users and provision; the clients
//! under test get the anon key alone.

use std::ops::Deref;
use std::time::Duration;

use quire_sandbox::Sandbox;
use quire_testdb::TestDb;
use secrecy::ExposeSecret as _;
use tempfile::TempDir;

use crate::api::{Api, StackInfo};

/// A change to the sandbox's configuration before it starts.
type SandboxAdjust<'a> = Box<dyn FnOnce(&mut quire_sandbox::Config) + 'a>;
/// A change to the companion's configuration before it starts.
#[cfg(feature = "stack")]
type CompanionAdjust<'a> = Box<dyn FnOnce(&mut quire_companion::config::Config) + 'a>;

/// A running stack. Dropping it stops the servers; the database is removed
/// by a later test, the cluster when the process ends.
pub struct Stack {
    api: Api,
    /// The stack's own database.
    pub db: TestDb,
    /// The running sandbox.
    pub sandbox: Sandbox,
    /// The sandbox's configuration, to start it again.
    pub sandbox_config: quire_sandbox::Config,
    #[cfg(feature = "stack")]
    pub(crate) companion: Option<crate::companion::Running>,
    /// The sandbox's data directory.
    pub dir: TempDir,
}

impl Deref for Stack {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

/// The sandbox alone, with test defaults.
pub async fn spawn_sandbox() -> Stack {
    Stack::builder().spawn().await
}

/// The sandbox alone, its configuration changed by `adjust` first (short
/// token lifetimes, a smaller upload limit, …).
pub async fn spawn_sandbox_with(adjust: impl FnOnce(&mut quire_sandbox::Config)) -> Stack {
    Stack::builder().sandbox(adjust).spawn().await
}

/// The full stack with test defaults: the sandbox, Quire's agent and
/// knowledge base provisioned on it, the companion in front.
#[cfg(feature = "stack")]
pub async fn spawn_stack() -> Stack {
    Stack::builder().with_companion().spawn().await
}

/// What [`Builder::spawn`] starts, and how.
#[must_use]
pub struct Builder<'a> {
    sandbox: Vec<SandboxAdjust<'a>>,
    /// The database has `db/platform` only (a Powabase project before Quire).
    platform_only: bool,
    #[cfg(feature = "stack")]
    companion: Option<Vec<CompanionAdjust<'a>>>,
}

impl<'a> Builder<'a> {
    /// Changes the sandbox's configuration before it starts (after the test
    /// defaults: cheap password hashing; with a companion, loopback tool
    /// endpoints allowed and the offline model at 2 ms a piece).
    pub fn sandbox(mut self, adjust: impl FnOnce(&mut quire_sandbox::Config) + 'a) -> Self {
        self.sandbox.push(Box::new(adjust));
        self
    }

    /// A database with `db/platform` only: a Powabase project before Quire's
    /// `db/app` is applied (`quire-companion migrate` applies it).
    pub fn platform_only(mut self) -> Self {
        self.platform_only = true;
        self
    }

    /// The offline model's pause between answer pieces.
    pub fn token_delay_ms(self, ms: u64) -> Self {
        self.sandbox(move |c| c.agents.token_delay_ms = ms)
    }

    /// Starts the companion too, with test defaults (short ingest polls and
    /// lease, the sandbox's loopback tool URL allowed).
    #[cfg(feature = "stack")]
    pub fn with_companion(mut self) -> Self {
        self.companion.get_or_insert_with(Vec::new);
        self
    }

    /// Starts the companion too, its configuration changed by `adjust` first.
    #[cfg(feature = "stack")]
    pub fn companion(
        mut self,
        adjust: impl FnOnce(&mut quire_companion::config::Config) + 'a,
    ) -> Self {
        self.companion
            .get_or_insert_with(Vec::new)
            .push(Box::new(adjust));
        self
    }

    /// Starts what was asked for.
    pub async fn spawn(self) -> Stack {
        crate::logs::init();
        let db = if self.platform_only {
            TestDb::platform_only().await
        } else {
            TestDb::new().await
        };
        let dir = tempfile::tempdir().expect("a temp data directory");
        let mut config = quire_sandbox::Config::new(dir.path(), db.url());
        config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
        #[cfg(feature = "stack")]
        if self.companion.is_some() {
            // The companion's tool endpoint is on loopback; the real platform refuses that.
            config.agents.allow_loopback_tool_endpoints = true;
            // Answers stream in pieces, quickly.
            config.agents.token_delay_ms = 2;
        }
        for adjust in self.sandbox {
            adjust(&mut config);
        }
        let sandbox = quire_sandbox::spawn(config.clone())
            .await
            .expect("the sandbox starts");
        let info = StackInfo {
            api_url: sandbox.api_base().to_owned(),
            anon_key: sandbox.anon_key().expose_secret().to_owned(),
            service_role_key: sandbox.service_role_key().expose_secret().to_owned(),
            jwt_secret: sandbox.jwt_secret().expose_secret().to_owned(),
            companion_url: None,
            db_url: Some(db.url()),
            agent_id: None,
            knowledge_base_id: None,
        };
        #[allow(unused_mut)]
        let mut stack = Stack {
            api: Api::new(info),
            db,
            sandbox,
            sandbox_config: config,
            #[cfg(feature = "stack")]
            companion: None,
            dir,
        };
        #[cfg(feature = "stack")]
        if let Some(adjust) = self.companion {
            stack
                .start_companion(None, move |c| adjust.into_iter().for_each(|a| a(c)))
                .await;
        }
        stack
    }
}

impl Stack {
    /// The sandbox alone unless [`Builder::companion`] asks for more.
    pub fn builder<'a>() -> Builder<'a> {
        Builder {
            sandbox: Vec::new(),
            platform_only: false,
            #[cfg(feature = "stack")]
            companion: None,
        }
    }

    /// The [`Api`] of this stack, to hand on (it is `Clone`).
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Stops the sandbox (every connection to it ends).
    pub fn stop_sandbox(&self) {
        self.sandbox.shutdown_handle().cancel();
    }

    /// Starts the sandbox again on the same port, data directory and
    /// database (after [`Stack::stop_sandbox`]).
    pub async fn restart_sandbox(&mut self) {
        let mut config = self.sandbox_config.clone();
        config.listen = self.sandbox.addr();
        let mut tries = 0;
        let sandbox = loop {
            match quire_sandbox::spawn(config.clone()).await {
                Ok(sandbox) => break sandbox,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 100, "the sandbox does not come back: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        drop(std::mem::replace(&mut self.sandbox, sandbox));
    }

    #[cfg(feature = "stack")]
    pub(crate) fn info_mut(&mut self) -> &mut StackInfo {
        &mut self.api.info
    }
}
