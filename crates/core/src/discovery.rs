//! Connecting with one address: the person types their Quire server's
//! address (the companion's URL) and the core finds the rest in the
//! companion's `GET /.well-known/quire` (docs/platform/supabase.md §3.7).
//!
//! Rules for the address:
//! * trimmed; without a scheme it is `https://`; query and fragment dropped;
//! * https only, except plain http to a loopback host (`localhost`,
//!   `127.0.0.0/8`, `::1`: the local stack), for the server and for the
//!   project it names alike;
//! * redirects are not followed: a server that moved is not the one typed.
//!
//! Each failure has its own [`Error`] and code, so the connect screen can say
//! what is wrong: [`Error::InvalidAddress`], [`Error::InsecureServer`],
//! [`Error::ServerUnreachable`], [`Error::NotAQuireServer`].

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use url::{Host, Url};

use crate::config::Config;
use crate::error::{Error, Result, cut};

/// Where the companion serves the document.
pub const PATH: &str = "/.well-known/quire";
/// The document version this core reads.
const VERSION: u32 = 1;
/// How long the server has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The sign-in methods the project allows (from GoTrue's `/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct SignInMethods {
    /// Email and password.
    pub password: bool,
    /// New accounts may be created.
    pub signup: bool,
    /// A new account confirms its address by email before signing in.
    pub confirm_email: bool,
    /// The enabled OAuth providers, by GoTrue's name (`github`, `google`…).
    pub providers: Vec<String>,
}

/// A Quire server, found from its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The address as normalised (the companion's URL).
    pub address: Url,
    /// The project and the companion, ready for [`crate::Quire::new`].
    pub config: Config,
    /// What the sign-in screen offers.
    pub sign_in: SignInMethods,
}

#[derive(Deserialize)]
struct Document {
    quire: u32,
    api_url: String,
    anon_key: String,
    auth: SignInMethods,
}

/// The address a person typed, as a URL the core may call.
pub fn normalise(typed: &str) -> Result<Url> {
    let typed = typed.trim();
    let invalid = || Error::InvalidAddress {
        address: typed.to_owned(),
    };
    if typed.is_empty() || typed.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let with_scheme = if typed.contains("://") {
        typed.to_owned()
    } else {
        format!("https://{typed}")
    };
    let mut url = Url::parse(&with_scheme).map_err(|_| invalid())?;
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid());
    }
    url.set_query(None);
    url.set_fragment(None);
    check_scheme(&url)?;
    Ok(url)
}

/// The one rule for every address the core calls (here and in
/// [`crate::config`]): https, or plain http to a loopback host.
pub(crate) fn is_secure_or_local(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => is_loopback(url),
        _ => false,
    }
}

/// https, or http to a loopback host.
fn check_scheme(url: &Url) -> Result<()> {
    match url.scheme() {
        _ if is_secure_or_local(url) => Ok(()),
        "http" => Err(Error::InsecureServer {
            address: url.as_str().trim_end_matches('/').to_owned(),
        }),
        _ => Err(Error::InvalidAddress {
            address: url.to_string(),
        }),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Finds the Quire server at the address a person typed: its project and
/// the sign-in methods that project allows.
pub async fn discover(typed: &str) -> Result<Server> {
    let address = normalise(typed)?;
    let base = address.as_str().trim_end_matches('/');
    let host = address.host_str().unwrap_or_default().to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(TIMEOUT)
        .timeout(TIMEOUT)
        .user_agent(concat!("quire-core/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initializes");
    let response = http
        .get(format!("{base}{PATH}"))
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| Error::ServerUnreachable {
            host: host.clone(),
            source: Box::new(e),
        })?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let not_quire = |detail: String| Error::NotAQuireServer {
        address: base.to_owned(),
        detail,
        body: cut(&text),
    };
    if !status.is_success() {
        return Err(not_quire(format!("it answered HTTP {}", status.as_u16())));
    }
    let document: Document = serde_json::from_str(&text)
        .map_err(|_| not_quire("its answer is not Quire's".to_owned()))?;
    if document.quire != VERSION {
        return Err(not_quire(format!(
            "it speaks version {} of Quire, this app version {VERSION}",
            document.quire
        )));
    }
    let api_url = Url::parse(&document.api_url)
        .map_err(|_| not_quire("it names no valid project address".to_owned()))?;
    check_scheme(&api_url)?;
    let config = Config {
        api_url,
        anon_key: document.anon_key,
        companion_url: address.clone(),
    };
    Ok(Server {
        address,
        config,
        sign_in: document.auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn an_address_without_a_scheme_is_https() {
        let url = normalise("  quire.example.com/team?x=1#y ").unwrap();
        assert_eq!(url.as_str(), "https://quire.example.com/team");
    }

    #[test]
    fn plain_http_is_only_for_this_computer() {
        for local in [
            "http://127.0.0.1:54380",
            "http://localhost:54380",
            "http://[::1]:1",
            "http://127.8.0.1",
        ] {
            assert!(normalise(local).is_ok(), "{local}");
        }
        for remote in [
            "http://quire.example.com",
            "http://10.0.0.2:54380",
            "http://localhost.example.com",
        ] {
            let error = normalise(remote).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InsecureServer, "{remote}");
            assert!(error.to_string().contains("https"), "{error}");
        }
    }

    #[test]
    fn what_is_not_an_address_is_named() {
        for typed in [
            "",
            "   ",
            "quire example",
            "ftp://quire.example.com",
            "https://",
        ] {
            let error = normalise(typed).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidAddress, "{typed:?}");
        }
    }
}
