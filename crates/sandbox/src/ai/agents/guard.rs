//! Where a custom HTTP tool may connect: the sandbox's own guard, a hardening
//! **stricter than the platform**, and labelled so in what the model reads.
//!
//! agentic 0.3.0's `validate_url` ([`super::endpoint`], which runs first and
//! keeps the platform's messages) reads the URL's text only: it never resolves
//! a DNS name, and address literals outside its list pass (`[::]`, `127.1`,
//! CGNAT, NAT64, 6to4). After it, the sandbox also:
//! - judges the host the HTTP client will really connect to (`url`'s reading:
//!   `127.1` and `0x7f000001` are 127.0.0.1), by [`check_address`];
//! - resolves a DNS name itself, refuses it if any of its addresses is
//!   refused, and connects only to the addresses it checked: the client's
//!   resolver *is* the check, so no second DNS answer (a rebinding) can come
//!   between check and connect;
//! - follows no redirect (a 3xx answer is the tool's error, see
//!   [`super::http_tool`]), where the platform's `requests` follows up to 30
//!   to anywhere: a redirect would carry the tool's static headers (its
//!   `Authorization`) and the arguments on to a host nobody configured;
//! - uses no proxy from the environment (a proxy would resolve the host
//!   itself).
//!
//! `allow_loopback` (`QUIRE_SANDBOX_ALLOW_LOOPBACK_TOOL_ENDPOINTS`) lets plain
//! loopback through, 127.0.0.0/8 and `::1`, for tests and a local stack.
//! Quire does not depend on this guard: its companion refuses a private public
//! URL itself (docs/platform-contract.md §6).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

/// An address the guard refuses. The model reads
/// `Error: URL blocked — {this}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "URL targets internal address {address} ({range}) of host {host} \
     (refused by the sandbox's guard, which is stricter than the platform)"
)]
pub(crate) struct Internal {
    /// The host as the client read it (a name, or an address literal).
    pub(crate) host: String,
    pub(crate) address: IpAddr,
    /// What the address is, e.g. `loopback` or `shared address space (CGNAT)`.
    pub(crate) range: &'static str,
}

/// Why the guard refuses `address`, or `Ok` when a tool may connect to it.
pub(crate) fn check_address(address: IpAddr, allow_loopback: bool) -> Result<(), &'static str> {
    if allow_loopback && address.is_loopback() {
        return Ok(());
    }
    match address {
        IpAddr::V4(v4) => v4_range(v4).map_or(Ok(()), Err),
        IpAddr::V6(v6) => v6_range(v6).map_or(Ok(()), Err),
    }
}

fn v4_range(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = v4.octets();
    Some(match (a, b, c) {
        (0, ..) => "this network",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "private",
        (100, 64..=127, _) => "shared address space (CGNAT)",
        (127, ..) => "loopback",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "IETF protocol assignments",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

fn v6_range(v6: Ipv6Addr) -> Option<&'static str> {
    let s = v6.segments();
    let embedded =
        |high: u16, low: u16| v4_range(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)));
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback",
        [0, 0, 0, 0, 0, 0xffff, ..] => "IPv4-mapped",
        [0, 0, 0, 0, 0, 0, ..] => "IPv4-compatible",
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => {
            embedded(high, low).map(|_| "NAT64 of an internal IPv4 address")?
        }
        [0x64, 0xff9b, 1, ..] => "local-use NAT64",
        [0x100, 0, 0, 0, ..] => "discard-only",
        [0x2001, 0..=0x1ff, ..] => "IETF protocol assignments (Teredo included)",
        [0x2002, high, low, ..] => {
            embedded(high, low).map(|_| "6to4 of an internal IPv4 address")?
        }
        [first, ..] if first & 0xfe00 == 0xfc00 => "unique-local",
        [first, ..] if first & 0xffc0 == 0xfe80 => "link-local",
        [first, ..] if first & 0xffc0 == 0xfec0 => "site-local",
        [first, ..] if first & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// Checks a URL whose host is an address literal, which the client connects
/// to without resolving. A DNS name passes here: the client's resolver
/// ([`ToolClient`]) checks what it resolves to.
pub(crate) fn check_url(url: &url::Url, allow_loopback: bool) -> Result<(), Internal> {
    let address = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) | None => return Ok(()),
    };
    check_address(address, allow_loopback).map_err(|range| Internal {
        host: url.host_str().unwrap_or_default().to_owned(),
        address,
        range,
    })
}

/// Resolves a host name to its addresses.
pub(crate) trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The system's resolver (`getaddrinfo`, through tokio).
pub(crate) struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The client's resolver: every address of a name is checked, and only the
/// checked ones are handed to the connector.
struct CheckingResolver {
    lookup: Arc<dyn Lookup>,
    allow_loopback: bool,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let lookup = self.lookup.lookup(&host);
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let addresses = lookup.await?;
            if addresses.is_empty() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no address").into());
            }
            for &address in &addresses {
                check_address(address, allow_loopback).map_err(|range| Internal {
                    host: host.clone(),
                    address,
                    range,
                })?;
            }
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The HTTP client for custom tools, behind the guard: names resolved
/// through its [`Lookup`] and checked, no redirect followed, no proxy.
#[derive(Clone)]
pub(crate) struct ToolClient {
    pub(crate) http: reqwest::Client,
    pub(crate) allow_loopback: bool,
}

impl ToolClient {
    /// A client over the system's resolver.
    pub(crate) fn new(allow_loopback: bool) -> Self {
        Self::with_lookup(allow_loopback, Arc::new(SystemLookup))
    }

    /// A client over `lookup` (tests answer names with it).
    pub(crate) fn with_lookup(allow_loopback: bool, lookup: Arc<dyn Lookup>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(redirect::Policy::none())
            .dns_resolver(Arc::new(CheckingResolver {
                lookup,
                allow_loopback,
            }))
            .build()
            .expect("the tool client's settings are valid");
        ToolClient {
            http,
            allow_loopback,
        }
    }
}

/// The guard's refusal behind a failed request, if that is why it failed.
pub(crate) fn refusal(err: &reqwest::Error) -> Option<&Internal> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(internal) = e.downcast_ref::<Internal>() {
            return Some(internal);
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range the guard refuses, and neighbours it lets through.
    const ADDRESSES: &[(&str, Option<&str>)] = &[
        ("0.0.0.0", Some("this network")),
        ("0.1.2.3", Some("this network")),
        ("10.1.2.3", Some("private")),
        ("172.16.0.1", Some("private")),
        ("172.31.255.255", Some("private")),
        ("172.32.0.1", None),
        ("192.168.1.1", Some("private")),
        ("100.64.0.1", Some("shared address space (CGNAT)")),
        ("100.127.255.255", Some("shared address space (CGNAT)")),
        ("100.128.0.1", None),
        ("127.0.0.1", Some("loopback")),
        ("127.9.9.9", Some("loopback")),
        ("169.254.169.254", Some("link-local")),
        ("192.0.0.170", Some("IETF protocol assignments")),
        ("198.18.0.1", Some("benchmarking")),
        ("224.0.0.1", Some("multicast")),
        ("255.255.255.255", Some("reserved")),
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("::", Some("unspecified")),
        ("::1", Some("loopback")),
        ("::ffff:127.0.0.1", Some("IPv4-mapped")),
        ("::ffff:8.8.8.8", Some("IPv4-mapped")),
        ("::127.0.0.1", Some("IPv4-compatible")),
        ("64:ff9b::7f00:1", Some("NAT64 of an internal IPv4 address")),
        (
            "64:ff9b::a9fe:a9fe",
            Some("NAT64 of an internal IPv4 address"),
        ),
        ("64:ff9b::808:808", None),
        ("64:ff9b:1::1", Some("local-use NAT64")),
        ("100::1", Some("discard-only")),
        (
            "2001::1",
            Some("IETF protocol assignments (Teredo included)"),
        ),
        ("2002:7f00:1::", Some("6to4 of an internal IPv4 address")),
        ("2002:a00:1::1", Some("6to4 of an internal IPv4 address")),
        ("2002:808:808::1", None),
        ("fd00::1", Some("unique-local")),
        ("fc00::1", Some("unique-local")),
        ("fe80::1", Some("link-local")),
        ("fec0::1", Some("site-local")),
        ("ff02::1", Some("multicast")),
        ("2606:2800:220:1::1", None),
    ];

    #[test]
    fn each_internal_range_is_refused_and_public_neighbours_pass() {
        for &(address, range) in ADDRESSES {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(check_address(ip, false).err(), range, "{address}");
        }
    }

    #[test]
    fn the_loopback_allowance_lets_only_plain_loopback_through() {
        for (address, allowed) in [
            ("127.0.0.1", true),
            ("127.9.9.9", true),
            ("::1", true),
            ("::ffff:127.0.0.1", false),
            ("64:ff9b::7f00:1", false),
            ("2002:7f00:1::", false),
            ("::", false),
            ("0.0.0.0", false),
            ("10.0.0.1", false),
            ("169.254.169.254", false),
        ] {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(check_address(ip, true).is_ok(), allowed, "{address}");
        }
    }

    #[test]
    fn address_literals_the_platform_lets_through_are_refused_as_the_client_reads_them() {
        for (url, address) in [
            ("http://127.1/x", "127.0.0.1"),
            ("http://0x7f000001/x", "127.0.0.1"),
            ("http://127.000.000.001/x", "127.0.0.1"),
            ("http://[::]/x", "::"),
            ("http://[::127.0.0.1]/x", "::7f00:1"),
            ("http://100.64.0.1/x", "100.64.0.1"),
            ("http://[64:ff9b::a9fe:a9fe]/x", "64:ff9b::a9fe:a9fe"),
            ("http://[2002:a9fe:a9fe::]/x", "2002:a9fe:a9fe::"),
        ] {
            let parsed = url::Url::parse(url).unwrap();
            let refused = check_url(&parsed, false).expect_err(url);
            assert_eq!(refused.address.to_string(), address, "{url}");
        }
        let public = url::Url::parse("http://93.184.216.34/x").unwrap();
        assert_eq!(check_url(&public, false), Ok(()));
        let name = url::Url::parse("http://tools.example.com/x").unwrap();
        assert_eq!(check_url(&name, false), Ok(()), "names go to the resolver");
    }

    #[test]
    fn the_refusal_says_it_is_the_sandboxs_guard() {
        let refused = Internal {
            host: "tools.example.com".to_owned(),
            address: "10.0.0.7".parse().unwrap(),
            range: "private",
        };
        assert_eq!(
            refused.to_string(),
            "URL targets internal address 10.0.0.7 (private) of host tools.example.com \
             (refused by the sandbox's guard, which is stricter than the platform)"
        );
    }

    #[tokio::test]
    async fn localhost_through_the_systems_resolver_is_refused_without_the_allowance() {
        let resolver = CheckingResolver {
            lookup: Arc::new(SystemLookup),
            allow_loopback: false,
        };
        let err = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        let internal = err.downcast_ref::<Internal>().expect("the guard's refusal");
        assert!(internal.address.is_loopback(), "{internal}");
        let allowing = CheckingResolver {
            lookup: Arc::new(SystemLookup),
            allow_loopback: true,
        };
        let addrs = allowing
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap();
        assert!(addrs.into_iter().all(|a| a.ip().is_loopback()));
    }
}
