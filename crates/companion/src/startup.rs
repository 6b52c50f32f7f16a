//! Start-up checks of the platform the companion runs on.
//!
//! Quire's isolation needs the platform's management routes
//! (`@require_service_role`: knowledge bases, sources, agents, tools) to
//! refuse a user's token: otherwise any signed-in user could read every
//! user's chunks through `/api/knowledge-bases/{id}/search`. Platform 0.12
//! answers such a call 403; 0.7 accepted it (`docs/platform-contract.md`).
//! [`check_service_role_split`] asks the platform once, at start-up, with a
//! token of a user who does not exist, and refuses to run on anything but
//! 401/403.
//!
//! The platform calls the search tool only if its endpoint passes its SSRF
//! guard, checked on every call and never at registration
//! (`docs/platform-contract.md`): a tool on `localhost`, a loopback, private
//! or link-local address would be registered fine and then fail every call,
//! leaving every answer without the user's documents.
//! [`check_tool_endpoint`] refuses such an endpoint at start-up instead,
//! unless `QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL=true` (a local sandbox
//! started to allow loopback endpoints).
//!
//! A knowledge base attached to the agent becomes its `knowledge_search`
//! tool, which searches the whole knowledge base for whoever asks
//! (docs/platform/ai-api.md §5.1): Quire's knowledge base holds every user's
//! documents. [`check_no_knowledge_base`] refuses an agent with any.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Method;
use url::{Host, Url};
use uuid::Uuid;

use crate::auth::JwtKeys;
use crate::platform::{Auth, CALL_TIMEOUT, Platform, PlatformError};

/// The first platform version whose management routes take only the
/// service-role key.
pub const MIN_PLATFORM_VERSION: &str = "0.12.0";

/// The management route the probe calls.
pub const PROBE_PATH: &str = "/api/knowledge-bases";

/// Why the companion refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A user's token was let through a management route.
    #[error(
        "the platform let a user's token list its knowledge bases (GET {PROBE_PATH} answered {status}): \
         Quire needs platform {MIN_PLATFORM_VERSION} or later, whose management routes accept only \
         the service-role key; upgrade the platform at QUIRE_COMPANION_API_URL"
    )]
    UserTokensOnManagementRoutes {
        /// The probe's status (2xx).
        status: u16,
    },
    /// Neither accepted nor refused as 0.12 refuses: the split is unconfirmed.
    #[error(
        "the platform answered a user's token on GET {PROBE_PATH} with {status}, not 401 or 403, \
         so Quire cannot confirm that its management routes accept only the service-role key \
         (platform {MIN_PLATFORM_VERSION} or later); check QUIRE_COMPANION_API_URL and the platform version"
    )]
    ServiceRoleSplitUnconfirmed {
        /// The probe's status.
        status: u16,
    },
    /// The probe got no answer.
    #[error("checking the platform's management routes failed: {0}")]
    ProbeFailed(#[source] PlatformError),
    /// Quire's agent has knowledge bases attached: the platform gives it a
    /// `knowledge_search` tool over them that searches every user's
    /// documents alike, whoever asks.
    #[error(
        "the agent {agent} (QUIRE_COMPANION_AGENT_ID) has knowledge bases attached ({}): the \
         platform gives such an agent a knowledge_search tool that searches them for whoever \
         asks, so any user could read everyone's documents through it. Detach them \
         (DELETE /api/agents/{agent}/knowledge-bases/<assignment id>) and start again; Quire \
         gives the agent each user's own chunks itself",
        knowledge_bases.join(", ")
    )]
    KnowledgeBaseAttached {
        /// The agent.
        agent: Uuid,
        /// The attached knowledge bases' ids.
        knowledge_bases: Vec<String>,
    },
    /// Reading the agent's knowledge bases failed.
    #[error("reading the agent's knowledge bases failed: {0}")]
    KnowledgeBasesUnknown(#[source] PlatformError),
    /// The tool's endpoint is one the platform refuses to call.
    #[error(
        "{origin}, so the search tool's endpoint would be {endpoint}, which the platform refuses \
         to call ({reason}): it blocks localhost, loopback, private and link-local addresses \
         whenever the agent calls a tool, and every answer would run without the user's \
         documents. Set QUIRE_COMPANION_PUBLIC_URL to a URL the platform reaches (a public \
         host name), or, for a local sandbox that allows it, \
         {DEV_ALLOW_PRIVATE_TOOL_URL}=true"
    )]
    PrivateToolUrl {
        /// Where the URL came from: `QUIRE_COMPANION_PUBLIC_URL is …` or its default.
        origin: String,
        /// The endpoint the tool would be registered with.
        endpoint: String,
        /// The platform's words (`URL targets internal network: 127.0.0.1`).
        reason: String,
    },
}

/// The setting that lets the companion start with a tool endpoint the
/// platform refuses (a local sandbox started to allow loopback endpoints).
pub const DEV_ALLOW_PRIVATE_TOOL_URL: &str = "QUIRE_COMPANION_DEV_ALLOW_PRIVATE_TOOL_URL";

/// Calls [`PROBE_PATH`] as a random, short-lived user (anon `apikey`, that
/// user's bearer) and accepts only 401 or 403.
pub async fn check_service_role_split(
    platform: &Platform,
    jwt: &JwtKeys,
) -> Result<(), StartupError> {
    let token = jwt.sign_user_token(Uuid::new_v4());
    let what = format!("GET {PROBE_PATH} as a user");
    let response = platform
        .request(Method::GET, PROBE_PATH, Auth::User(&token))
        .timeout(CALL_TIMEOUT)
        .send()
        .await
        .map_err(|source| StartupError::ProbeFailed(PlatformError::Transport { what, source }))?;
    let status = response.status().as_u16();
    match status {
        401 | 403 => Ok(()),
        200..=299 => Err(StartupError::UserTokensOnManagementRoutes { status }),
        _ => Err(StartupError::ServiceRoleSplitUnconfirmed { status }),
    }
}

/// An agent's knowledge bases (`GET /api/agents/{id}/knowledge-bases`).
#[derive(serde::Deserialize)]
struct Attached {
    #[serde(default)]
    knowledge_bases: Vec<AttachedKnowledgeBase>,
}

#[derive(serde::Deserialize)]
struct AttachedKnowledgeBase {
    knowledge_base_id: String,
}

/// Refuses an `agent` that has any knowledge base attached.
pub async fn check_no_knowledge_base(platform: &Platform, agent: Uuid) -> Result<(), StartupError> {
    let path = format!("/api/agents/{agent}/knowledge-bases");
    let attached: Attached = platform
        .json(
            "GET /api/agents/{id}/knowledge-bases",
            platform.request(Method::GET, &path, Auth::Service),
        )
        .await
        .map_err(StartupError::KnowledgeBasesUnknown)?;
    if attached.knowledge_bases.is_empty() {
        return Ok(());
    }
    Err(StartupError::KnowledgeBaseAttached {
        agent,
        knowledge_bases: attached
            .knowledge_bases
            .into_iter()
            .map(|kb| kb.knowledge_base_id)
            .collect(),
    })
}

/// Why the platform would refuse to call a tool at `endpoint`, in its own
/// words (`agentic.agent.url_validation.validate_url`), or `None` when it
/// would call it. `endpoint` is the URL as registered (already normalised by
/// [`Url`], so `127.1` reads as `127.0.0.1`, as it is sent).
pub fn blocked_tool_endpoint(endpoint: &Url) -> Option<String> {
    // The host as the platform's `urlparse` reads it: no brackets, lower case.
    let shown = endpoint
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let internal = match endpoint.host()? {
        Host::Domain(name) => {
            return (name == "localhost").then(|| format!("URL targets internal host: {shown}"));
        }
        Host::Ipv4(ip) if ip == Ipv4Addr::UNSPECIFIED => {
            return Some(format!("URL targets internal host: {shown}"));
        }
        Host::Ipv6(ip) if ip == Ipv6Addr::LOCALHOST => {
            return Some(format!("URL targets internal host: {shown}"));
        }
        Host::Ipv4(ip) => is_internal(IpAddr::V4(ip)),
        Host::Ipv6(ip) => is_internal(IpAddr::V6(ip)),
    };
    internal.then(|| format!("URL targets internal network: {shown}"))
}

/// The platform's blocked networks: 127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12,
/// 192.168.0.0/16, 169.254.0.0/16, 0.0.0.0/8, ::1, fe80::/10, fc00::/7,
/// ::ffff:0:0/96.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            matches!(a, 0 | 10 | 127)
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 169 && b == 254)
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

/// Refuses to start with a tool `endpoint` the platform would not call,
/// unless `dev_allow` ([`DEV_ALLOW_PRIVATE_TOOL_URL`]). `origin` says where
/// the URL came from, for the message.
pub fn check_tool_endpoint(
    endpoint: &Url,
    origin: &str,
    dev_allow: bool,
) -> Result<(), StartupError> {
    match blocked_tool_endpoint(endpoint) {
        Some(reason) if !dev_allow => Err(StartupError::PrivateToolUrl {
            origin: origin.to_owned(),
            endpoint: endpoint.to_string(),
            reason,
        }),
        Some(reason) => {
            tracing::warn!(
                %endpoint, %reason,
                "{DEV_ALLOW_PRIVATE_TOOL_URL}=true: registering a tool endpoint the real platform refuses to call"
            );
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(endpoint: &str) -> Option<String> {
        blocked_tool_endpoint(&Url::parse(endpoint).unwrap())
    }

    #[test]
    fn endpoints_are_judged_as_the_platform_judges_them() {
        for (endpoint, reason) in [
            (
                "http://localhost:54380/t",
                "URL targets internal host: localhost",
            ),
            ("http://LocalHost/t", "URL targets internal host: localhost"),
            (
                "http://0.0.0.0:54380/t",
                "URL targets internal host: 0.0.0.0",
            ),
            ("http://[::1]:54380/t", "URL targets internal host: ::1"),
            (
                "http://127.0.0.1:54380/t",
                "URL targets internal network: 127.0.0.1",
            ),
            // `Url` reads `127.1` as the address it is sent to.
            ("http://127.1/t", "URL targets internal network: 127.0.0.1"),
            (
                "http://10.2.3.4/t",
                "URL targets internal network: 10.2.3.4",
            ),
            (
                "http://172.31.0.9/t",
                "URL targets internal network: 172.31.0.9",
            ),
            (
                "http://192.168.0.5/t",
                "URL targets internal network: 192.168.0.5",
            ),
            (
                "http://169.254.169.254/t",
                "URL targets internal network: 169.254.169.254",
            ),
            (
                "http://[fe80::1]/t",
                "URL targets internal network: fe80::1",
            ),
            (
                "http://[fd12::1]/t",
                "URL targets internal network: fd12::1",
            ),
            (
                "http://[::ffff:7f00:1]/t",
                "URL targets internal network: ::ffff:7f00:1",
            ),
        ] {
            assert_eq!(blocked(endpoint).as_deref(), Some(reason), "{endpoint}");
        }
        for endpoint in [
            "https://quire.example.com/internal/tools/search-documents",
            "http://172.32.0.1/t",
            "http://8.8.8.8/t",
            "http://[2606:4700::1111]/t",
            // DNS names are not resolved by the platform.
            "http://companion.internal/t",
            "http://host.docker.internal:54380/t",
        ] {
            assert_eq!(blocked(endpoint), None, "{endpoint}");
        }
    }
}
