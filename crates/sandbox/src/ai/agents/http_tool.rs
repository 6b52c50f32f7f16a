//! Calling a custom HTTP tool the way the platform does
//! (`agentic.agent.tools.CustomTool.execute`; docs/platform-contract.md):
//! first the endpoint check ([`endpoint`]; a blocked URL is the result
//! `Error: URL blocked — {reason}`), then `requests.request(method, endpoint,
//! json=arguments, headers=config.headers, timeout=timeout_seconds)` — the
//! arguments go as a JSON body whatever the method, only the tool's static
//! headers are sent (no caller identity), a non-2xx answer or a transport
//! failure becomes the tool result `Error: …` (the run goes on), and the
//! response text is cut to its first 10 000 characters (`text[:10000]`:
//! Unicode characters, not bytes, and no marker is added).
//!
//! Stricter than the platform: the call goes through [`guard::ToolClient`],
//! which refuses internal addresses the platform's check lets through (a name
//! resolving to one, `127.1`, `[::]`, CGNAT, NAT64, 6to4) and connects only
//! to the addresses it checked; and it follows no redirect, where `requests`
//! would: a 3xx answer is the result [`redirect_refused`] (`Error: 302 Found
//! for url: … (a redirect, not followed: …)`), and the run goes on.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::endpoint::{self, Refused};
use super::guard::{self, ToolClient};

/// Default timeout of a custom tool call (`CUSTOM_TOOL_TIMEOUT`).
pub(crate) const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// Characters of a response kept as the tool result (`MAX_TOOL_OUTPUT_LENGTH`).
pub(crate) const MAX_OUTPUT_CHARS: usize = 10_000;

/// A custom tool's `config`: `endpoint`, `method` (default `POST`),
/// `headers`, `timeout_seconds` (default 30).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpToolConfig {
    pub(crate) endpoint: String,
    pub(crate) method: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Duration,
}

impl HttpToolConfig {
    /// Reads a tool's stored `config` object; missing or odd values fall
    /// back to the defaults (non-string header values are dropped).
    pub(crate) fn from_config(config: &Value) -> Self {
        let endpoint = config
            .get("endpoint")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let method = config
            .get("method")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or("POST")
            .to_ascii_uppercase();
        let headers = config
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let secs = config
            .get("timeout_seconds")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(DEFAULT_TIMEOUT_SECS);
        HttpToolConfig {
            endpoint,
            method,
            headers,
            timeout: Duration::from_secs_f64(secs),
        }
    }
}

/// Calls the tool and returns its result: the response text (at most
/// [`MAX_OUTPUT_CHARS`] characters) or an `Error: …` string, never a Rust
/// error — a failing tool is something the model reads, not a failed run.
pub(crate) async fn call(
    client: &ToolClient,
    config: &HttpToolConfig,
    arguments: &Map<String, Value>,
) -> String {
    match endpoint::check(&config.endpoint, client.allow_loopback) {
        Ok(()) => {}
        Err(Refused::Blocked(blocked)) => return format!("Error: URL blocked — {blocked}"),
        Err(Refused::Malformed(message)) => return format!("Error: {message}"),
    }
    // What `requests` says of a URL it cannot use.
    let url = match url::Url::parse(&config.endpoint) {
        Ok(url) => url,
        Err(err) => return format!("Error: Invalid URL '{}': {err}", config.endpoint),
    };
    if let Err(internal) = guard::check_url(&url, client.allow_loopback) {
        return format!("Error: URL blocked — {internal}");
    }
    let method = match reqwest::Method::from_bytes(config.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => return format!("Error: Invalid HTTP method {:?}", config.method),
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in &config.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) else {
            return format!("Error: Invalid header {name:?}");
        };
        headers.insert(name, value);
    }
    let body = serde_json::to_vec(arguments).expect("JSON arguments serialize");
    let response = client
        .http
        .request(method, url.clone())
        .headers(headers)
        .body(body)
        .timeout(config.timeout)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(err) => match guard::refusal(&err) {
            Some(internal) => return format!("Error: URL blocked — {internal}"),
            None => return format!("Error: {}", transport_error(&url, &err, config.timeout)),
        },
    };
    let status = response.status();
    if status.is_redirection() {
        return redirect_refused(status, &url);
    }
    if status.is_client_error() || status.is_server_error() {
        let kind = if status.is_client_error() {
            "Client"
        } else {
            "Server"
        };
        let reason = status.canonical_reason().unwrap_or("");
        return format!(
            "Error: {} {kind} Error: {reason} for url: {url}",
            status.as_u16()
        );
    }
    match response.text().await {
        Ok(text) => text.chars().take(MAX_OUTPUT_CHARS).collect(),
        Err(err) => format!("Error: {}", transport_error(&url, &err, config.timeout)),
    }
}

/// What the model reads when the tool answers with a redirect: an error in
/// the platform's shape (`Error: <status> … for url: <url>`, as
/// `raise_for_status` words a failed answer), labelled as the sandbox's own
/// refusal, since the platform would have followed it.
fn redirect_refused(status: reqwest::StatusCode, url: &url::Url) -> String {
    let reason = status.canonical_reason().unwrap_or("Redirect");
    format!(
        "Error: {} {reason} for url: {url} (a redirect, not followed: refused by the sandbox's \
         guard, which is stricter than the platform)",
        status.as_u16()
    )
}

/// A transport failure in the words of `requests`/urllib3, which is what the
/// platform puts after `Error: `.
fn transport_error(url: &url::Url, err: &reqwest::Error, timeout: Duration) -> String {
    let pool = if url.scheme() == "https" {
        "HTTPSConnectionPool"
    } else {
        "HTTPConnectionPool"
    };
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or_default();
    let secs = timeout.as_secs_f64();
    let secs = if secs.fract() == 0.0 {
        format!("{}", secs as u64)
    } else {
        format!("{secs}")
    };
    if err.is_timeout() {
        format!("{pool}(host='{host}', port={port}): Read timed out. (read timeout={secs})")
    } else if err.is_connect() {
        format!(
            "{pool}(host='{host}', port={port}): Max retries exceeded with url: {} \
             (Caused by NewConnectionError('Failed to establish a new connection: {}'))",
            url.path(),
            root_cause(err)
        )
    } else {
        format!("{pool}(host='{host}', port={port}): {}", root_cause(err))
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn config_defaults_follow_the_platform() {
        let c = HttpToolConfig::from_config(&json!({"endpoint": "https://x.example/t"}));
        assert_eq!(c.method, "POST");
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(c.headers.is_empty());
        let c = HttpToolConfig::from_config(&json!({
            "endpoint": "https://x.example/t", "method": "get",
            "headers": {"Authorization": "Bearer s", "X-N": 5}, "timeout_seconds": 2
        }));
        assert_eq!(c.method, "GET");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(
            c.headers,
            vec![("Authorization".to_owned(), "Bearer s".to_owned())]
        );
    }

    #[tokio::test]
    async fn a_blocked_endpoint_is_an_error_result() {
        let client = ToolClient::new(false);
        let config = HttpToolConfig::from_config(&json!({"endpoint": "http://127.0.0.1:9/x"}));
        let result = call(&client, &config, &Map::new()).await;
        assert_eq!(
            result,
            "Error: URL blocked — URL targets internal network: 127.0.0.1"
        );
    }

    #[tokio::test]
    async fn a_url_urlparse_rejects_is_a_plain_error_result() {
        let client = ToolClient::new(true);
        let config = HttpToolConfig::from_config(&json!({"endpoint": "http://[::1/x"}));
        let result = call(&client, &config, &Map::new()).await;
        assert_eq!(result, "Error: Invalid IPv6 URL");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_error_result() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = ToolClient::new(true);
        let config = HttpToolConfig::from_config(
            &json!({"endpoint": format!("http://127.0.0.1:{port}/tool")}),
        );
        let result = call(&client, &config, &Map::new()).await;
        assert!(
            result.starts_with(&format!(
                "Error: HTTPConnectionPool(host='127.0.0.1', port={port}): Max retries"
            )),
            "{result}"
        );
    }

    /// The sandbox's guard, stricter than the platform (`guard`): each test
    /// aims a tool at a server on this machine and checks it is never reached.
    mod guard_tests {
        use std::collections::HashMap;
        use std::net::IpAddr;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use axum::extract::Query;
        use axum::response::Redirect;
        use futures_util::future::BoxFuture;
        use serde_json::json;

        use super::super::guard::{Lookup, ToolClient};
        use super::super::*;

        const ANSWER: &str = "the tool's answer";

        /// A loopback server: `/tool` answers and counts, `/redirect?to=…`
        /// redirects.
        struct ToolServer {
            port: u16,
            hits: Arc<AtomicUsize>,
        }

        async fn tool_server() -> ToolServer {
            let hits = Arc::new(AtomicUsize::new(0));
            let counter = hits.clone();
            let app = axum::Router::new()
                .route(
                    "/tool",
                    axum::routing::any(move || {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async { ANSWER }
                    }),
                )
                .route(
                    "/redirect",
                    axum::routing::any(|Query(q): Query<HashMap<String, String>>| async move {
                        Redirect::temporary(&q["to"])
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move { axum::serve(listener, app).await });
            ToolServer { port, hits }
        }

        /// Answers a name with `answer(name, lookups so far)`, and counts.
        struct FakeLookup<F> {
            answer: F,
            lookups: AtomicUsize,
        }

        impl<F: Fn(&str, usize) -> Vec<IpAddr> + Send + Sync + 'static> Lookup for FakeLookup<F> {
            fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
                let n = self.lookups.fetch_add(1, Ordering::SeqCst);
                let addresses = (self.answer)(host, n);
                Box::pin(async move { Ok(addresses) })
            }
        }

        fn fake<F: Fn(&str, usize) -> Vec<IpAddr> + Send + Sync + 'static>(
            answer: F,
        ) -> Arc<FakeLookup<F>> {
            Arc::new(FakeLookup {
                answer,
                lookups: AtomicUsize::new(0),
            })
        }

        fn ip(address: &str) -> IpAddr {
            address.parse().unwrap()
        }

        async fn call_at(client: &ToolClient, endpoint: &str) -> String {
            let config =
                HttpToolConfig::from_config(&json!({"endpoint": endpoint, "timeout_seconds": 5}));
            call(client, &config, &Map::new()).await
        }

        #[tokio::test]
        async fn loopback_spelled_so_the_platform_lets_it_through_is_never_reached() {
            let server = tool_server().await;
            let client = ToolClient::new(false);
            for host in ["127.1", "0x7f000001", "2130706433", "127.0.0.01"] {
                let result = call_at(&client, &format!("http://{host}:{}/tool", server.port)).await;
                assert!(
                    result.starts_with(
                        "Error: URL blocked — URL targets internal address 127.0.0.1 (loopback)"
                    ),
                    "{host}: {result}"
                );
            }
            assert_eq!(server.hits.load(Ordering::SeqCst), 0);
        }

        #[tokio::test]
        async fn a_name_with_any_internal_address_is_never_reached() {
            let server = tool_server().await;
            let lookup = fake(|_, _| vec![ip("93.184.216.34"), ip("127.0.0.1")]);
            let client = ToolClient::with_lookup(false, lookup);
            let result = call_at(
                &client,
                &format!("http://tools.example.com:{}/tool", server.port),
            )
            .await;
            assert_eq!(
                result,
                "Error: URL blocked — URL targets internal address 127.0.0.1 (loopback) of host \
                 tools.example.com (refused by the sandbox's guard, which is stricter than the platform)"
            );
            assert_eq!(server.hits.load(Ordering::SeqCst), 0);
        }

        #[tokio::test]
        async fn a_name_is_connected_to_at_the_address_that_was_checked() {
            // A rebinding name: public when checked, loopback when asked again.
            let server = tool_server().await;
            let lookup = fake(|_, n| match n {
                0 => vec![ip("198.51.100.7")],
                _ => vec![ip("127.0.0.1")],
            });
            let client = ToolClient::with_lookup(false, lookup.clone());
            let config = HttpToolConfig::from_config(&json!({
                "endpoint": format!("http://rebind.example.com:{}/tool", server.port),
                "timeout_seconds": 1,
            }));
            let result = call(&client, &config, &Map::new()).await;
            assert!(
                result.starts_with("Error: HTTPConnectionPool(host='rebind.example.com'"),
                "{result}"
            );
            assert_eq!(
                server.hits.load(Ordering::SeqCst),
                0,
                "the loopback answer was used"
            );
            assert_eq!(lookup.lookups.load(Ordering::SeqCst), 1);
        }

        #[tokio::test]
        async fn no_redirect_is_followed_wherever_it_points() {
            let server = tool_server().await;
            let asked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
            let lookup = fake({
                let asked = asked.clone();
                move |host, _| {
                    asked.lock().unwrap().push(host.to_owned());
                    match host {
                        "metadata.example.com" => vec![ip("169.254.169.254")],
                        "public.example.com" => vec![ip("93.184.216.34")],
                        _ => vec![ip("127.0.0.1")],
                    }
                }
            });
            // The loopback allowance lets the first hop reach the test server.
            let client = ToolClient::with_lookup(true, lookup);
            for target in [
                format!("http://tools.example.com:{}/tool", server.port),
                format!("http://127.0.0.1:{}/tool", server.port),
                "http://public.example.com/x".to_owned(),
                "http://10.0.0.1/x".to_owned(),
                "http://[::]/x".to_owned(),
                "http://metadata.example.com/latest".to_owned(),
            ] {
                let endpoint = format!(
                    "http://tools.example.com:{}/redirect?to={target}",
                    server.port
                );
                let result = call_at(&client, &endpoint).await;
                assert_eq!(
                    result,
                    format!(
                        "Error: 307 Temporary Redirect for url: {endpoint} (a redirect, not \
                         followed: refused by the sandbox's guard, which is stricter than the \
                         platform)"
                    ),
                    "{target}"
                );
            }
            assert_eq!(server.hits.load(Ordering::SeqCst), 0, "never followed");
            let asked = asked.lock().unwrap();
            assert!(
                asked.iter().all(|host| host == "tools.example.com"),
                "only the first hop's name was resolved: {asked:?}"
            );
        }

        #[tokio::test]
        async fn loopback_stays_reachable_for_the_local_stack_when_allowed() {
            let server = tool_server().await;
            let client = ToolClient::new(true);
            for host in ["127.0.0.1", "localhost"] {
                let result = call_at(&client, &format!("http://{host}:{}/tool", server.port)).await;
                assert_eq!(result, ANSWER, "{host}");
            }
            assert_eq!(server.hits.load(Ordering::SeqCst), 2);
        }
    }
}
