//! Start-up refusals: the companion will not run on a platform that lets a
//! user's token through the management routes (platform before 0.12), since
//! Quire's isolation rests on that split.

use quire_companion::Companion;
use quire_companion::config::{Config, PlatformConfig};
use quire_companion::platform::Platform;
use quire_companion::provision;
use quire_companion::startup::StartupError;
use quire_sandbox::Sandbox;
use quire_testdb::TestDb;
use secrecy::SecretString;
use tempfile::TempDir;

/// A sandbox (0.7's management auth when `emulate_0_7`), provisioned, and a
/// companion configuration for it.
async fn stack(emulate_0_7: bool) -> (TestDb, TempDir, Sandbox, Config) {
    let db = TestDb::new().await;
    let data_dir = tempfile::tempdir().expect("a temp data directory");
    let mut sandbox_config = quire_sandbox::Config::new(data_dir.path(), db.url());
    sandbox_config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
    sandbox_config.agents.allow_loopback_tool_endpoints = true;
    sandbox_config.agents.emulate_0_7_management_auth = emulate_0_7;
    let sandbox = quire_sandbox::spawn(sandbox_config)
        .await
        .expect("the sandbox starts");
    let platform = PlatformConfig {
        api_url: sandbox.api_base().parse().expect("a platform URL"),
        anon_key: sandbox.anon_key().clone(),
        service_role_key: sandbox.service_role_key().clone(),
    };
    let ids = provision::provision(&Platform::new(&platform).unwrap(), None)
        .await
        .expect("provisioning the agent and knowledge base");
    let config = Config::new(
        platform,
        sandbox.jwt_secret().clone(),
        ids.agent_id,
        ids.knowledge_base_id,
        SecretString::from(format!("tool-secret-{}", uuid::Uuid::new_v4().simple())),
    );
    (db, data_dir, sandbox, config)
}

#[tokio::test]
async fn the_companion_refuses_a_platform_that_accepts_user_tokens_on_management_routes() {
    let (_db, _dir, _sandbox, config) = stack(true).await;
    let err = match quire_companion::spawn(config).await {
        Ok(companion) => {
            companion.shutdown().await.unwrap();
            panic!("the companion started on a platform without the service-role split");
        }
        Err(err) => err,
    };
    let typed = err
        .downcast_ref::<StartupError>()
        .unwrap_or_else(|| panic!("a StartupError, got: {err:#}"));
    assert!(
        matches!(
            typed,
            StartupError::UserTokensOnManagementRoutes { status: 200 }
        ),
        "{typed:?}"
    );
    let text = format!("{err:#}");
    assert!(text.contains("0.12.0"), "{text}");
}

#[tokio::test]
async fn the_companion_starts_on_a_platform_that_refuses_user_tokens_on_management_routes() {
    let (_db, _dir, _sandbox, config) = stack(false).await;
    let companion: Companion = quire_companion::spawn(config)
        .await
        .expect("the companion starts on the current platform");
    companion.shutdown().await.unwrap();
}
