//! What the core's benches share: a real stack of their own — a throwaway PostgreSQL cluster
//! (`quire-testdb`), the sandbox in-process on a free port, and, when asked for, Quire's agent
//! and knowledge base provisioned on it with the companion in front — plus users and an
//! in-memory token store. Never the dev stack on 54321/54322/54380.

// Each bench uses the part it needs.
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;

use quire_core::TokenStore;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use uuid::Uuid;

/// A running stack. Dropping it stops the servers and removes the cluster and data directory.
pub struct Stack {
    pub db: quire_testdb::TestDb,
    pub sandbox: quire_sandbox::Sandbox,
    pub companion: Option<quire_companion::Companion>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

/// The sandbox alone (bench defaults; `adjust` may change its configuration first).
pub async fn sandbox(adjust: impl FnOnce(&mut quire_sandbox::Config)) -> anyhow::Result<Stack> {
    let db = quire_testdb::TestDb::new().await;
    let dir = tempfile::tempdir()?;
    let mut config = quire_sandbox::Config::new(dir.path(), db.url());
    config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
    adjust(&mut config);
    let sandbox = quire_sandbox::spawn(config).await?;
    Ok(Stack {
        db,
        sandbox,
        companion: None,
        http: reqwest::Client::new(),
        dir,
    })
}

/// The sandbox with Quire's agent and knowledge base provisioned and the companion in front,
/// as `cargo xtask stack up` runs them (the offline model at zero pace).
pub async fn full(adjust: impl FnOnce(&mut quire_sandbox::Config)) -> anyhow::Result<Stack> {
    use quire_companion::config::{Config, PlatformConfig};
    let mut stack = sandbox(|c| {
        c.agents.allow_loopback_tool_endpoints = true;
        c.agents.token_delay_ms = 0;
        adjust(c);
    })
    .await?;
    let platform = PlatformConfig {
        api_url: stack.api().parse()?,
        anon_key: stack.sandbox.anon_key().clone(),
        service_role_key: stack.sandbox.service_role_key().clone(),
    };
    let ids = quire_companion::provision::provision(
        &quire_companion::platform::Platform::new(&platform)?,
        None,
    )
    .await?;
    let mut config = Config::new(
        platform,
        stack.sandbox.jwt_secret().clone(),
        ids.agent_id,
        ids.knowledge_base_id,
        SecretString::from(format!("tool-secret-{}", Uuid::new_v4().simple())),
    );
    config.ingest.poll_initial = Duration::from_millis(20);
    config.ingest.poll_max = Duration::from_millis(300);
    config.ingest.idle_poll = Duration::from_millis(200);
    // The sandbox allows loopback tool endpoints; the real platform does not.
    config.dev_allow_private_tool_url = true;
    stack.companion = Some(quire_companion::spawn(config).await?);
    Ok(stack)
}

impl Stack {
    /// The sandbox's API base URL.
    pub fn api(&self) -> String {
        self.sandbox.api_base().to_owned()
    }

    pub fn anon(&self) -> String {
        self.sandbox.anon_key().expose_secret().to_owned()
    }

    pub fn service(&self) -> String {
        self.sandbox.service_role_key().expose_secret().to_owned()
    }

    /// The companion's URL, or a closed port when none runs.
    pub fn companion_url(&self) -> String {
        self.companion
            .as_ref()
            .map_or_else(|| "http://127.0.0.1:9".to_owned(), |c| c.url())
    }

    /// Creates a confirmed user through the admin API; returns its id.
    pub async fn create_user(&self, email: &str, password: &str) -> anyhow::Result<Uuid> {
        let service = self.service();
        let created: Value = self
            .http
            .post(format!("{}/auth/v1/admin/users", self.api()))
            .header("apikey", &service)
            .bearer_auth(&service)
            .json(&json!({"email": email, "password": password, "email_confirm": true}))
            .send()
            .await?
            .json()
            .await?;
        Ok(created["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no user id: {created}"))?
            .parse()?)
    }

    /// A user access token (password grant), for clients other than the core.
    pub async fn access_token(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let session: Value = self
            .http
            .post(format!("{}/auth/v1/token?grant_type=password", self.api()))
            .header("apikey", self.anon())
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?
            .json()
            .await?;
        Ok(session["access_token"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("no access token: {session}"))?
            .to_owned())
    }
}

/// A refresh-token store in memory (the benches are not about the keyring).
#[derive(Default)]
pub struct MemoryTokens(Mutex<Option<String>>);

impl TokenStore for MemoryTokens {
    fn load(&self) -> quire_core::Result<Option<SecretString>> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .map(SecretString::from))
    }
    fn save(&self, token: &SecretString) -> quire_core::Result<()> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(token.expose_secret().to_owned());
        Ok(())
    }
    fn clear(&self) -> quire_core::Result<()> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        Ok(())
    }
}
