//! Which URLs a custom HTTP tool may call — the platform's SSRF guard
//! (shared/reference/POWABASE.md §6.2; `agentic.agent.url_validation`):
//! `http`/`https` only; the host `localhost` (and `0.0.0.0`, `::1`) and IP
//! literals in loopback, private, link-local, "this network", unique-local
//! and IPv4-mapped ranges are refused. Host names are not resolved, as on the
//! platform.
//!
//! The sandbox may be started to permit loopback endpoints, so that tests
//! and the local stack can point a tool at a server on this machine; the real
//! platform never does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why an endpoint is refused. The message is the platform's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockedUrl {
    #[error("Empty URL")]
    Empty,
    #[error("Invalid URL: {0}")]
    Unparsable(String),
    #[error("Scheme '{0}' not allowed, must be http or https")]
    Scheme(String),
    #[error("No hostname in URL")]
    NoHost,
    #[error("URL targets internal host: {0}")]
    InternalHost(String),
    #[error("URL targets internal network: {0}")]
    InternalNetwork(String),
}

/// Checks a tool endpoint. `allow_loopback` additionally lets `localhost`,
/// `127.0.0.0/8` and `::1` through (private and link-local ranges stay refused).
pub fn check(endpoint: &str, allow_loopback: bool) -> Result<Url, BlockedUrl> {
    if endpoint.trim().is_empty() {
        return Err(BlockedUrl::Empty);
    }
    let url = Url::parse(endpoint).map_err(|e| BlockedUrl::Unparsable(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BlockedUrl::Scheme(url.scheme().to_owned()));
    }
    let ip = match url.host() {
        None => return Err(BlockedUrl::NoHost),
        Some(Host::Domain(name)) => {
            let lower = name.to_ascii_lowercase();
            if lower == "localhost" {
                if allow_loopback {
                    return Ok(url);
                }
                return Err(BlockedUrl::InternalHost(lower));
            }
            return Ok(url);
        }
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
    };
    let shown = ip.to_string();
    if allow_loopback && ip.is_loopback() {
        return Ok(url);
    }
    if ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || ip == IpAddr::V6(Ipv6Addr::LOCALHOST) {
        return Err(BlockedUrl::InternalHost(shown));
    }
    if is_internal(ip) {
        return Err(BlockedUrl::InternalNetwork(shown));
    }
    Ok(url)
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 127
                || a == 10
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 169 && b == 254)
                || a == 0
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || (first & 0xffc0) == 0xfe80
                || (first & 0xfe00) == 0xfc00
                || v6.to_ipv4_mapped().is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_http_and_https_pass() {
        for ok in [
            "https://backend.example.com/tools/x",
            "http://93.184.216.34:8080/a",
            "https://[2606:2800:220:1::1]/x",
        ] {
            assert!(check(ok, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn internal_targets_are_refused_with_the_platform_messages() {
        let cases = [
            ("", "Empty URL"),
            (
                "ftp://example.com/x",
                "Scheme 'ftp' not allowed, must be http or https",
            ),
            (
                "http://localhost:8080/x",
                "URL targets internal host: localhost",
            ),
            ("http://LOCALHOST/x", "URL targets internal host: localhost"),
            ("http://0.0.0.0/x", "URL targets internal host: 0.0.0.0"),
            ("http://[::1]/x", "URL targets internal host: ::1"),
            (
                "http://127.0.0.1:9/x",
                "URL targets internal network: 127.0.0.1",
            ),
            (
                "http://10.1.2.3/x",
                "URL targets internal network: 10.1.2.3",
            ),
            (
                "http://172.20.0.1/x",
                "URL targets internal network: 172.20.0.1",
            ),
            (
                "http://192.168.1.1/x",
                "URL targets internal network: 192.168.1.1",
            ),
            (
                "http://169.254.169.254/latest",
                "URL targets internal network: 169.254.169.254",
            ),
            (
                "http://[fe80::1]/x",
                "URL targets internal network: fe80::1",
            ),
            (
                "http://[fd00::1]/x",
                "URL targets internal network: fd00::1",
            ),
            (
                "http://[::ffff:8.8.8.8]/x",
                "URL targets internal network: ::ffff:8.8.8.8",
            ),
        ];
        for (url, message) in cases {
            assert_eq!(check(url, false).unwrap_err().to_string(), message, "{url}");
        }
        assert!(matches!(
            check("not a url", false),
            Err(BlockedUrl::Unparsable(_))
        ));
    }

    #[test]
    fn the_loopback_flag_lets_only_loopback_through() {
        assert!(check("http://127.0.0.1:4000/tool", true).is_ok());
        assert!(check("http://localhost:4000/tool", true).is_ok());
        assert!(check("http://[::1]:4000/tool", true).is_ok());
        assert!(check("http://10.0.0.1/tool", true).is_err());
        assert!(check("http://169.254.169.254/", true).is_err());
    }
}
