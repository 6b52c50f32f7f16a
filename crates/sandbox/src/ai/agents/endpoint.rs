//! Which URLs a custom HTTP tool may call — the platform's SSRF guard
//! (`agentic.agent.url_validation.validate_url`, run by `CustomTool.execute`
//! each time the tool is called, never at registration; docs/platform-contract.md).
//!
//! The platform reads the URL with Python's `urllib.parse.urlparse` and
//! `ipaddress.ip_address`, and so does this module, step for step:
//! - an empty string is `Empty URL`;
//! - a scheme other than `http`/`https` (none counts as `''`) is refused;
//! - no host name is `No hostname in URL`;
//! - the host names `localhost`, `0.0.0.0` and `::1` are "internal host";
//! - a host that `ipaddress` reads as an address in 127.0.0.0/8, 10.0.0.0/8,
//!   172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 0.0.0.0/8, ::1, fe80::/10,
//!   fc00::/7 or ::ffff:0:0/96 is "internal network";
//! - anything else passes, DNS names included (they are not resolved), and so
//!   do IPv4 spellings `ipaddress` does not take (`127.1`, `0x7f000001`).
//!
//! Messages name the host as `urlparse` gives it (lower-cased, unnormalised).
//! A URL `urlparse` itself rejects (unbalanced IPv6 brackets) is not
//! "blocked": its `ValueError` escapes and the model reads `Error: …`.
//!
//! The sandbox may be started to permit loopback endpoints (`localhost`,
//! 127.0.0.0/8, `::1`), so that tests and the local stack can point a tool at
//! a server on this machine; the real platform never does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an endpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// `SSRFError`: the model reads `Error: URL blocked — {message}`.
    #[error("{0}")]
    Blocked(BlockedUrl),
    /// A `ValueError` of `urlparse`: the model reads `Error: {message}`.
    #[error("{0}")]
    Malformed(String),
}

/// An `SSRFError`. The message is the platform's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BlockedUrl {
    #[error("Empty URL")]
    Empty,
    #[error("Scheme '{0}' not allowed, must be http or https")]
    Scheme(String),
    #[error("No hostname in URL")]
    NoHost,
    #[error("URL targets internal host: {0}")]
    InternalHost(String),
    #[error("URL targets internal network: {0}")]
    InternalNetwork(String),
}

/// The host names refused before any address check (`_BLOCKED_HOSTNAMES`).
const BLOCKED_HOSTNAMES: [&str; 3] = ["localhost", "0.0.0.0", "::1"];

/// Checks a tool endpoint as `validate_url` does. `allow_loopback`
/// additionally lets `localhost`, 127.0.0.0/8 and `::1` through (private and
/// link-local ranges stay refused).
pub(crate) fn check(endpoint: &str, allow_loopback: bool) -> Result<(), Refused> {
    if endpoint.is_empty() {
        return Err(Refused::Blocked(BlockedUrl::Empty));
    }
    let parsed = urlparse(endpoint)?;
    if parsed.scheme != "http" && parsed.scheme != "https" {
        return Err(Refused::Blocked(BlockedUrl::Scheme(parsed.scheme)));
    }
    let Some(hostname) = parsed.hostname else {
        return Err(Refused::Blocked(BlockedUrl::NoHost));
    };
    let ip = ip_address(&hostname);
    if allow_loopback && (hostname == "localhost" || ip.is_some_and(|ip| ip.is_loopback())) {
        return Ok(());
    }
    if BLOCKED_HOSTNAMES.contains(&hostname.as_str()) {
        return Err(Refused::Blocked(BlockedUrl::InternalHost(hostname)));
    }
    match ip {
        Some(ip) if is_internal(ip) => Err(Refused::Blocked(BlockedUrl::InternalNetwork(hostname))),
        _ => Ok(()),
    }
}

/// What `validate_url` reads of `urlparse(url)`.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    scheme: String,
    hostname: Option<String>,
}

/// `urllib.parse.urlparse(url)`'s `scheme` and `hostname` (CPython 3.13
/// `urlsplit` and `_NetlocResultMixinStr`).
fn urlparse(url: &str) -> Result<Parsed, Refused> {
    let url: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let mut scheme = String::new();
    let mut rest = url.as_str();
    if let Some(i) = rest.find(':')
        && i > 0
        && rest.as_bytes()[0].is_ascii_alphabetic()
        && rest[..i]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        scheme = rest[..i].to_ascii_lowercase();
        rest = &rest[i + 1..];
    }
    let Some(after) = rest.strip_prefix("//") else {
        return Ok(Parsed {
            scheme,
            hostname: None,
        });
    };
    let netloc = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
    if netloc.contains('[') != netloc.contains(']') {
        return Err(Refused::Malformed("Invalid IPv6 URL".to_owned()));
    }
    let hostinfo = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let hostname = match hostinfo.split_once('[') {
        Some((before, bracketed)) => {
            let (host, after) = bracketed.split_once(']').unwrap_or((bracketed, ""));
            if !before.is_empty() || !(after.is_empty() || after.starts_with(':')) {
                return Err(Refused::Malformed("Invalid IPv6 URL".to_owned()));
            }
            check_bracketed_host(host)?;
            host
        }
        None => hostinfo.split_once(':').map_or(hostinfo, |(h, _)| h),
    };
    if hostname.is_empty() {
        return Ok(Parsed {
            scheme,
            hostname: None,
        });
    }
    // A scoped IPv6 address keeps its zone's case.
    let hostname = match hostname.split_once('%') {
        Some((host, zone)) => format!("{}%{zone}", host.to_lowercase()),
        None => hostname.to_lowercase(),
    };
    Ok(Parsed {
        scheme,
        hostname: Some(hostname),
    })
}

/// `_check_bracketed_host`: what is inside `[…]` must be an IPv6 address (or
/// an IPvFuture literal).
fn check_bracketed_host(host: &str) -> Result<(), Refused> {
    if let Some(future) = host.strip_prefix('v') {
        let valid = future.split_once('.').is_some_and(|(hex, rest)| {
            !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) && !rest.is_empty()
        });
        return if valid {
            Ok(())
        } else {
            Err(Refused::Malformed(
                "IPvFuture address is invalid".to_owned(),
            ))
        };
    }
    match ip_address(host) {
        Some(IpAddr::V6(_)) => Ok(()),
        Some(IpAddr::V4(_)) => Err(Refused::Malformed(
            "An IPv4 address cannot be in brackets".to_owned(),
        )),
        None => Err(Refused::Malformed(format!(
            "'{host}' does not appear to be an IPv4 or IPv6 address"
        ))),
    }
}

/// `ipaddress.ip_address(host)`: four decimal octets without leading zeros,
/// or an IPv6 address with an optional `%zone` (which plays no part in range
/// checks).
fn ip_address(host: &str) -> Option<IpAddr> {
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let address = match host.split_once('%') {
        Some((address, zone)) if !zone.is_empty() && !zone.contains('%') => address,
        Some(_) => return None,
        None => host,
    };
    address.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// Membership in `_BLOCKED_NETWORKS` (an IPv4 address is never in an IPv6
/// network, nor the reverse).
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
            v6 == Ipv6Addr::LOCALHOST
                || (first & 0xffc0) == 0xfe80
                || (first & 0xfe00) == 0xfc00
                || v6.to_ipv4_mapped().is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(endpoint: &str) -> String {
        check(endpoint, false).unwrap_err().to_string()
    }

    #[test]
    fn public_hosts_and_dns_names_pass() {
        for ok in [
            "https://backend.example.com/tools/x",
            "http://93.184.216.34:8080/a",
            "https://[2606:2800:220:1::1]/x",
            "http://user:pw@tools.example.com:8443/x?q=1#f",
            // Not addresses to `ipaddress`, so DNS names to the platform.
            "http://127.1/x",
            "http://0x7f000001/x",
            "http://127.000.000.001/x",
            "http://localhost./x",
            // Not in any blocked network.
            "http://[::]/x",
            "http://[::127.0.0.1]/x",
        ] {
            assert_eq!(check(ok, false), Ok(()), "{ok}");
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
            ("   ", "Scheme '' not allowed, must be http or https"),
            (
                "example.com/tool",
                "Scheme '' not allowed, must be http or https",
            ),
            (
                "localhost:8080/x",
                "Scheme 'localhost' not allowed, must be http or https",
            ),
            ("http:///x", "No hostname in URL"),
            ("http://:80/x", "No hostname in URL"),
            (
                "http://localhost:8080/x",
                "URL targets internal host: localhost",
            ),
            ("HTTP://LOCALHOST/x", "URL targets internal host: localhost"),
            ("http://0.0.0.0/x", "URL targets internal host: 0.0.0.0"),
            ("http://[::1]:9/x", "URL targets internal host: ::1"),
            (
                "http://[0:0:0:0:0:0:0:1]/x",
                "URL targets internal network: 0:0:0:0:0:0:0:1",
            ),
            (
                " http://127.0.0.1:9/x",
                "URL targets internal network: 127.0.0.1",
            ),
            (
                "http://u@10.1.2.3/x",
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
            ("http://0.1.2.3/x", "URL targets internal network: 0.1.2.3"),
            (
                "http://[FE80::1%25Eth0]/x",
                "URL targets internal network: fe80::1%25Eth0",
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
        for (url, expected) in cases {
            assert_eq!(message(url), expected, "{url:?}");
            assert!(matches!(check(url, false), Err(Refused::Blocked(_))));
        }
    }

    #[test]
    fn urls_urlparse_rejects_are_errors_not_blocks() {
        for (url, expected) in [
            ("http://[::1/x", "Invalid IPv6 URL"),
            ("http://x[::1]/", "Invalid IPv6 URL"),
            ("http://[::1]x/", "Invalid IPv6 URL"),
            (
                "http://[example.com]/",
                "'example.com' does not appear to be an IPv4 or IPv6 address",
            ),
            (
                "http://[127.0.0.1]/",
                "An IPv4 address cannot be in brackets",
            ),
        ] {
            assert_eq!(
                check(url, false),
                Err(Refused::Malformed(expected.to_owned())),
                "{url}"
            );
        }
    }

    #[test]
    fn the_loopback_flag_lets_only_loopback_through() {
        assert_eq!(check("http://127.0.0.1:4000/tool", true), Ok(()));
        assert_eq!(check("http://127.9.9.9:4000/tool", true), Ok(()));
        assert_eq!(check("http://localhost:4000/tool", true), Ok(()));
        assert_eq!(check("http://[::1]:4000/tool", true), Ok(()));
        assert!(check("http://0.0.0.0/tool", true).is_err());
        assert!(check("http://10.0.0.1/tool", true).is_err());
        assert!(check("http://169.254.169.254/", true).is_err());
    }
}
