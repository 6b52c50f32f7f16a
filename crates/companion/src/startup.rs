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

use reqwest::Method;
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
    UserTokensOnManagementRoutes { status: u16 },
    /// Neither accepted nor refused as 0.12 refuses: the split is unconfirmed.
    #[error(
        "the platform answered a user's token on GET {PROBE_PATH} with {status}, not 401 or 403, \
         so Quire cannot confirm that its management routes accept only the service-role key \
         (platform {MIN_PLATFORM_VERSION} or later); check QUIRE_COMPANION_API_URL and the platform version"
    )]
    ServiceRoleSplitUnconfirmed { status: u16 },
    /// The probe got no answer.
    #[error("checking the platform's management routes failed: {0}")]
    ProbeFailed(#[source] PlatformError),
}

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
