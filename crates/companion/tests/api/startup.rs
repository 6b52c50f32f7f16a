//! Start-up refusals: the companion will not run on a platform that lets a
//! user's token through the management routes (platform before 0.12), since
//! Quire's isolation rests on that split; nor with a tool endpoint the
//! platform refuses to call (docs/platform-contract.md), unless the dev
//! setting says the sandbox allows it.

use quire_companion::Companion;
use quire_companion::config::Config;
use quire_companion::startup::StartupError;
use quire_testkit::Stack;
use reqwest::Method;
use serde_json::Value;

/// A sandbox (0.7's management auth when `emulate_0_7`), provisioned, and a
/// companion configuration for it (not started).
async fn stack(emulate_0_7: bool) -> (Stack, Config) {
    let stack = Stack::builder()
        .sandbox(move |c| {
            // The companion's tool endpoint is on loopback.
            c.agents.allow_loopback_tool_endpoints = true;
            c.agents.emulate_0_7_management_auth = emulate_0_7;
        })
        .spawn()
        .await;
    let config = stack.provision_companion(None).await;
    (stack, config)
}

#[tokio::test]
async fn the_companion_refuses_a_platform_that_accepts_user_tokens_on_management_routes() {
    let (_stack, config) = stack(true).await;
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
    let (_stack, config) = stack(false).await;
    let companion: Companion = quire_companion::spawn(config)
        .await
        .expect("the companion starts on the current platform");
    companion.shutdown().await.unwrap();
}

/// The custom tools registered on the platform (service key).
async fn custom_tools(stack: &Stack) -> Vec<Value> {
    let body: Value = stack
        .service(Method::GET, "/api/tools")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["id"].is_null())
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_tool_url_the_platform_blocks_is_refused_unless_the_dev_setting_is_on() {
    let (stack, config) = stack(false).await;
    let cases: [(Option<&str>, &str, &str); 4] = [
        (
            None,
            "QUIRE_COMPANION_PUBLIC_URL is not set (the default is the listen address http://127.0.0.1:",
            "URL targets internal network: 127.0.0.1",
        ),
        (
            Some("http://localhost:54380"),
            "QUIRE_COMPANION_PUBLIC_URL is http://localhost:54380/",
            "URL targets internal host: localhost",
        ),
        (
            Some("https://192.168.1.20/quire/"),
            "QUIRE_COMPANION_PUBLIC_URL is https://192.168.1.20/quire/",
            "URL targets internal network: 192.168.1.20",
        ),
        (
            Some("http://169.254.169.254"),
            "QUIRE_COMPANION_PUBLIC_URL is http://169.254.169.254/",
            "URL targets internal network: 169.254.169.254",
        ),
    ];
    for (public_url, origin, reason) in cases {
        let mut refused = config.clone();
        refused.public_url = public_url.map(|u| u.parse().unwrap());
        refused.dev_allow_private_tool_url = false;
        let err = match quire_companion::spawn(refused).await {
            Ok(companion) => {
                companion.shutdown().await.unwrap();
                panic!("the companion started with the tool at {public_url:?}");
            }
            Err(err) => err,
        };
        let typed = err
            .downcast_ref::<StartupError>()
            .unwrap_or_else(|| panic!("a StartupError, got: {err:#}"));
        assert!(
            matches!(typed, StartupError::PrivateToolUrl { reason: r, .. } if r == reason),
            "{typed:?}"
        );
        let text = format!("{err:#}");
        assert!(text.starts_with(origin), "{text}");
        assert!(
            text.contains("QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL=true"),
            "{text}"
        );
    }
    assert!(
        custom_tools(&stack).await.is_empty(),
        "a refused start registers nothing"
    );

    // With the dev setting (the sandbox allows loopback tool endpoints), the
    // loopback default is accepted and the tool is registered there.
    let companion = quire_companion::spawn(config)
        .await
        .expect("the companion starts with the dev setting");
    let tools = custom_tools(&stack).await;
    assert_eq!(tools.len(), 1);
    assert_eq!(
        tools[0]["config"]["endpoint"],
        format!(
            "http://{}/internal/tools/search-documents",
            companion.addr()
        )
    );
    companion.shutdown().await.unwrap();
}
