//! OAuth sign-in with PKCE in the system browser (RFC 8252 loopback
//! redirect; docs/platform/supabase.md §3.5).
//!
//! 1. A one-shot callback server listens on `127.0.0.1:<random port>`.
//! 2. The browser opens `/auth/v1/authorize?provider=…&redirect_to=
//!    http://127.0.0.1:<port>/callback?state=<random>&code_challenge=…&
//!    code_challenge_method=S256` and nothing else: GoTrue passes every
//!    other query parameter on to the provider, where a `client_id`,
//!    `redirect_uri` or `state` overrides GoTrue's own and the provider
//!    fails (docs/platform-contract.md). Our state rides inside `redirect_to`.
//! 3. GoTrue sends the browser back to the callback with `?code=` (or
//!    `error`, `error_description`). The `state` in the callback URL must be
//!    ours: anything else is answered 400 and ignored.
//! 4. The code and verifier are exchanged (`grant_type=pkce`); the browser
//!    tab then gets a page saying it can be closed (or what went wrong).
//!
//! Opening the browser goes through [`Browser`], so tests can drive the
//! authorize page over HTTP themselves.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use super::{Auth, User};
use crate::error::{Error, Result};
use crate::http::Api;

/// Opens a URL for the person to sign in.
pub trait Browser: Send + Sync {
    /// Shows `url` to the person (in the system browser, normally).
    fn open(&self, url: &Url) -> Result<()>;
}

/// The system's default browser (`webbrowser` crate).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemBrowser;

impl Browser for SystemBrowser {
    fn open(&self, url: &Url) -> Result<()> {
        webbrowser::open(url.as_str()).map_err(|e| {
            Error::SignInCancelled(format!(
                "could not open a web browser ({e}). Sign in with email and password instead"
            ))
        })
    }
}

/// Options of a browser sign-in.
#[derive(Debug, Clone)]
pub struct BrowserSignIn {
    /// The OAuth provider GoTrue should use (`github`, `google`, …): one the
    /// project enabled ([`crate::discovery::SignInMethods::providers`]).
    pub provider: String,
    /// How long to wait for the person to finish in the browser.
    pub timeout: Duration,
}

impl BrowserSignIn {
    /// How long the person has by default to finish in the browser.
    pub const TIMEOUT: Duration = Duration::from_secs(300);

    /// Signing in with `provider`, waiting [`BrowserSignIn::TIMEOUT`].
    pub fn new(provider: &str) -> BrowserSignIn {
        BrowserSignIn {
            provider: provider.to_owned(),
            timeout: BrowserSignIn::TIMEOUT,
        }
    }
}

pub(crate) async fn sign_in(
    auth: &Auth,
    api: &Api,
    browser: &dyn Browser,
    options: &BrowserSignIn,
) -> Result<User> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| {
        Error::SignInCancelled(format!("could not listen for the browser's answer: {e}"))
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| {
            Error::SignInCancelled(format!("could not listen for the browser's answer: {e}"))
        })?
        .port();
    let state = random_token()?;
    let verifier = random_token()?;
    let redirect = format!("http://127.0.0.1:{port}/callback?state={state}");
    let url = authorize_url(
        &api.url("/auth/v1/authorize"),
        &options.provider,
        &redirect,
        &verifier,
    )?;

    browser.open(&url)?;

    let (callback, mut stream) =
        tokio::time::timeout(options.timeout, wait_for_callback(&listener, &state))
            .await
            .map_err(|_| {
                Error::SignInCancelled("nobody finished signing in in the browser in time".into())
            })??;
    drop(listener);

    let outcome = match callback {
        Callback::Code(code) => auth.sign_in_with_code(&code, &verifier).await,
        Callback::Refused(description) => Err(Error::SignInCancelled(description)),
    };
    let page = match &outcome {
        Ok(_) => page(
            "200 OK",
            "You are signed in to Quire",
            "You can close this tab and go back to Quire.",
        ),
        Err(e) => page(
            "400 Bad Request",
            "Signing in to Quire did not work",
            &format!("{e} You can close this tab and try again from Quire."),
        ),
    };
    let _ = stream.write_all(page.as_bytes()).await;
    let _ = stream.shutdown().await;
    outcome
}

/// `/authorize` with exactly GoTrue's own parameters and the S256 challenge
/// of `verifier` (RFC 7636 §4.2).
fn authorize_url(authorize: &str, provider: &str, redirect: &str, verifier: &str) -> Result<Url> {
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let mut url = Url::parse(authorize).map_err(|e| {
        Error::NotConfigured(format!("api_url does not make an authorize URL: {e}"))
    })?;
    url.query_pairs_mut()
        .append_pair("provider", provider)
        .append_pair("redirect_to", redirect)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url)
}

/// 32 random bytes, base64url: 43 characters, a valid PKCE verifier
/// (RFC 7636 §4.1) and an unguessable loopback state.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::SignInCancelled(format!(
            "the system gave no randomness to sign in with: {e}"
        ))
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

enum Callback {
    Code(String),
    Refused(String),
}

/// Serves the loopback port until a request to `/callback` with our state
/// arrives; answers everything else with 404 (or 400 for a wrong state).
async fn wait_for_callback(listener: &TcpListener, state: &str) -> Result<(Callback, TcpStream)> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(|e| {
            Error::SignInCancelled(format!("the browser's answer could not be read: {e}"))
        })?;
        let Some(target) = read_request_target(&mut stream).await else {
            continue;
        };
        let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
            respond(&mut stream, "400 Bad Request", "Not a sign-in answer", "").await;
            continue;
        };
        if url.path() != "/callback" {
            respond(&mut stream, "404 Not Found", "Nothing here", "").await;
            continue;
        }
        let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
        if query.get("state").map(String::as_str) != Some(state) {
            respond(
                &mut stream,
                "400 Bad Request",
                "This sign-in answer is not for this Quire",
                "Start signing in again from Quire.",
            )
            .await;
            continue;
        }
        if let Some(code) = query.get("code").filter(|c| !c.is_empty()) {
            return Ok((Callback::Code(code.clone()), stream));
        }
        let description = query
            .get("error_description")
            .or_else(|| query.get("error"))
            .cloned()
            .unwrap_or_else(|| "the browser came back without a sign-in code".to_owned());
        return Ok((Callback::Refused(description), stream));
    }
}

/// The request target of an HTTP/1.x request line (`GET <target> HTTP/1.1`).
async fn read_request_target(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Only the request line matters; cap what a stray client can make us hold.
    while !buffer.windows(2).any(|w| w == b"\r\n") && buffer.len() < 16 * 1024 {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let line = String::from_utf8_lossy(&buffer);
    let line = line.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    (method == "GET" && target.starts_with('/')).then(|| target.to_owned())
}

async fn respond(stream: &mut TcpStream, status: &str, title: &str, text: &str) {
    let _ = stream.write_all(page(status, title, text).as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn page(status: &str, title: &str, text: &str) -> String {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;display:grid;place-items:center;min-height:90vh;\
         margin:0;background:#f4f4f5;color:#18181b}}main{{max-width:28rem;padding:2rem;background:#fff;\
         border:1px solid #e4e4e7;border-radius:12px}}</style></head>\
         <body><main><h1>{title}</h1><p>{text}</p></main></body></html>",
        title = escape(title),
        text = escape(text),
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_callback_server_ignores_strangers_and_wrong_states() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let waiting = tokio::spawn(async move {
            let (callback, _stream) = wait_for_callback(&listener, "good").await.unwrap();
            match callback {
                Callback::Code(code) => code,
                Callback::Refused(e) => panic!("{e}"),
            }
        });
        let get = |path: &str| {
            let path = path.to_owned();
            async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                stream
                    .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut answer = String::new();
                stream.read_to_string(&mut answer).await.unwrap();
                answer
            }
        };
        assert!(get("/favicon.ico").await.starts_with("HTTP/1.1 404"));
        assert!(
            get("/callback?state=evil&code=x")
                .await
                .starts_with("HTTP/1.1 400")
        );
        let client = tokio::spawn(get("/callback?state=good&code=the-code"));
        assert_eq!(waiting.await.unwrap(), "the-code");
        drop(client);
    }

    #[test]
    fn the_authorize_url_carries_only_gotrues_parameters() {
        // The challenge as Python's hashlib + urlsafe_b64encode compute it.
        let verifier = "dBjftJeZ4CVP-mJ0gEZ6XMGb7V4-2HhE5aNIH0d4Zh8";
        let url = authorize_url(
            "http://h/auth/v1/authorize",
            "github",
            "http://127.0.0.1:1/callback?state=s",
            verifier,
        )
        .unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("provider".into(), "github".into()),
                (
                    "redirect_to".into(),
                    "http://127.0.0.1:1/callback?state=s".into()
                ),
                (
                    "code_challenge".into(),
                    "TlbJLWXesCKVotHTW5aALKQ7hdx64LB-SrXJY0k_FL4".into()
                ),
                ("code_challenge_method".into(), "S256".into()),
            ]
        );
        assert_eq!(random_token().unwrap().len(), 43);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let html = page("400 Bad Request", "Oops", "<script>x</script>");
        assert!(!html.contains("<script>"));
        assert!(html.contains("Content-Security-Policy: default-src 'none'"));
    }
}
