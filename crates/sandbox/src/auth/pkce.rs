//! PKCE (RFC 7636) as GoTrue implements it: challenge validation, flow state,
//! and the `grant_type=pkce` exchange.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::error::{AuthError, code};
use super::extract::nullable;
use super::sessions::{self, AuthMethod, ClientInfo, SessionResponse};
use crate::state::AppState;

const MIN_CHALLENGE_LEN: usize = 43;
const MAX_CHALLENGE_LEN: usize = 128;

/// A code challenge method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    S256,
    Plain,
}

impl Method {
    /// Parses `s256` or `plain` in any case.
    pub(crate) fn parse(method: &str) -> Result<Method, AuthError> {
        match method.to_ascii_lowercase().as_str() {
            "s256" => Ok(Method::S256),
            "plain" => Ok(Method::Plain),
            _ => Err(AuthError::validation(format!(
                "unsupported code_challenge method {method:?}"
            ))),
        }
    }

    /// As stored in `auth.flow_state.code_challenge_method`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::S256 => "s256",
            Method::Plain => "plain",
        }
    }
}

/// GoTrue's `validatePKCEParams`: both or neither, and a well-formed challenge.
/// Returns the method when PKCE is in use.
pub(crate) fn validate_params(method: &str, challenge: &str) -> Result<Option<Method>, AuthError> {
    match (method.is_empty(), challenge.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => {
            if !(MIN_CHALLENGE_LEN..=MAX_CHALLENGE_LEN).contains(&challenge.len()) {
                return Err(AuthError::validation(format!(
                    "code challenge has to be between {MIN_CHALLENGE_LEN} and {MAX_CHALLENGE_LEN} characters"
                )));
            }
            if !challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            {
                return Err(AuthError::validation(
                    "code challenge can only contain alphanumeric characters, hyphens, periods, underscores and tildes",
                ));
            }
            Method::parse(method).map(Some)
        }
        _ => Err(AuthError::validation(
            "PKCE flow requires code_challenge_method and code_challenge",
        )),
    }
}

/// Whether `verifier` answers `challenge` (constant-time comparison).
pub(crate) fn verifies(method: Method, challenge: &str, verifier: &str) -> bool {
    let expected = match method {
        Method::S256 => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes())),
        Method::Plain => verifier.to_owned(),
    };
    expected.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct PkceGrantParams {
    #[serde(deserialize_with = "nullable")]
    auth_code: String,
    #[serde(deserialize_with = "nullable")]
    code_verifier: String,
}

/// `POST /token?grant_type=pkce`: exchanges an `auth_code` and its
/// `code_verifier` for a session, once. Unknown or unused codes are 404
/// `flow_state_not_found`, old ones 422 `flow_state_expired`, a wrong
/// verifier 400 `bad_code_verifier` (the code stays usable, as in GoTrue).
pub(crate) async fn exchange(
    state: &AppState,
    params: PkceGrantParams,
    from: &ClientInfo,
) -> Result<SessionResponse, AuthError> {
    if params.auth_code.is_empty() || params.code_verifier.is_empty() {
        return Err(AuthError::validation(
            "invalid request: both auth code and code verifier should be non-empty",
        ));
    }
    let not_found = || {
        AuthError::not_found(
            code::FLOW_STATE_NOT_FOUND,
            "invalid flow state, no valid flow state found",
        )
    };
    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error finding flow state", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| AuthError::internal("Database error finding flow state", e))?;
    // Locking the row makes the code single use under concurrent exchanges:
    // the second one waits, then finds the row gone.
    let row = tx
        .query_opt(
            "select id, user_id, code_challenge_method, code_challenge, authentication_method, created_at \
             from auth.flow_state where auth_code = $1 for update",
            &[&params.auth_code],
        )
        .await
        .map_err(|e| AuthError::internal("Database error finding flow state", e))?
        .ok_or_else(not_found)?;
    let flow_id: Uuid = row.get(0);
    let user_id: Uuid = row.get::<_, Option<Uuid>>(1).ok_or_else(not_found)?;
    let method = Method::parse(row.get(2))?;
    let challenge: String = row.get(3);
    let auth_method: String = row.get(4);
    let created_at: DateTime<Utc> = row.get(5);

    let expiry = chrono::Duration::from_std(state.config.flow_state_expiry()).unwrap_or_default();
    if Utc::now() > created_at + expiry {
        return Err(AuthError::unprocessable(
            code::FLOW_STATE_EXPIRED,
            "invalid flow state, flow state has expired",
        ));
    }
    if !verifies(method, &challenge, &params.code_verifier) {
        return Err(AuthError::bad_request(
            code::BAD_CODE_VERIFIER,
            "code challenge does not match previously saved code verifier",
        ));
    }
    tx.execute("delete from auth.flow_state where id = $1", &[&flow_id])
        .await
        .map_err(|e| AuthError::internal("Database error deleting flow state", e))?;
    let method = if auth_method == AuthMethod::Password.as_str() {
        AuthMethod::Password
    } else {
        AuthMethod::OAuth
    };
    let session = sessions::issue(state, &tx, user_id, method, from).await?;
    tx.commit()
        .await
        .map_err(|e| AuthError::internal("Database error granting user", e))?;
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verifies(Method::S256, challenge, verifier));
        assert!(!verifies(Method::S256, challenge, "x"));
        assert!(verifies(Method::Plain, verifier, verifier));
    }

    #[test]
    fn params_are_both_or_neither() {
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(validate_params("", "").unwrap(), None);
        assert_eq!(
            validate_params("S256", challenge).unwrap(),
            Some(Method::S256)
        );
        assert!(validate_params("s256", "").is_err());
        assert!(validate_params("", challenge).is_err());
        assert!(validate_params("s256", "short").is_err());
        assert!(validate_params("s256", &format!("{}!", &challenge[..43])).is_err());
        assert!(validate_params("md5", challenge).is_err());
    }
}
