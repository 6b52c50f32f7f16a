//! Realtime's reading of a JWT (`ChannelsAuthorization.authorize_conn`):
//! verified with the project secret, `role` and `exp` required, expired when
//! `exp` is not after the current second. Refusals carry Realtime's error
//! codes and texts, which clients show and tests match.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::jwt::{JwtError, JwtKeys};

/// A token Realtime accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// Every claim.
    pub claims: Map<String, Value>,
    /// The `role` claim.
    pub role: String,
    /// The `exp` claim (unix seconds).
    pub exp: i64,
}

/// Why Realtime refuses a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// `exp` has passed.
    #[error("Token has expired {0} seconds ago")]
    Expired(i64),
    /// No `role` or no `exp`.
    #[error("Fields `role` and `exp` are required in JWT")]
    MissingClaims,
    /// Not a JWT at all.
    #[error("The token provided is not a valid JWT")]
    Malformed,
    /// The HMAC does not match.
    #[error("Failed to validate JWT signature")]
    BadSignature,
    /// An algorithm the project has no key for (`none` included).
    #[error("Failed to generate JWT signer, check your JWT secret or JWKS configuration")]
    NoSigner,
    /// `nbf` is in the future (the sandbox's verifier enforces it).
    #[error("Token is not valid yet")]
    NotYetValid,
}

impl TokenRefusal {
    /// Realtime's error code for a join refused with this token.
    pub fn code(&self) -> &'static str {
        match self {
            TokenRefusal::Expired(_) | TokenRefusal::MissingClaims | TokenRefusal::NotYetValid => {
                "InvalidJWTToken"
            }
            TokenRefusal::Malformed => "MalformedJWT",
            TokenRefusal::BadSignature => "JwtSignatureError",
            TokenRefusal::NoSigner => "JwtSignerError",
        }
    }

    /// `<Code>: <text>`, as in a join error's `reason`.
    pub fn join_reason(&self) -> String {
        format!("{}: {self}", self.code())
    }
}

/// Verifies `token` as Realtime does at connect, join and token refresh.
pub fn verify(keys: &JwtKeys, token: &str, now: i64) -> Result<VerifiedToken, TokenRefusal> {
    // Realtime strips whitespace (a token pasted with a line break still works).
    let token: String = token.chars().filter(|c| !c.is_whitespace()).collect();
    let caller = keys.verify(&token).map_err(|e| match e {
        JwtError::Expired => match peek_exp(&token) {
            Some(exp) => TokenRefusal::Expired(now - exp),
            None => TokenRefusal::Malformed,
        },
        JwtError::MissingExpiry => TokenRefusal::MissingClaims,
        JwtError::Malformed(_) => TokenRefusal::Malformed,
        JwtError::BadSignature => TokenRefusal::BadSignature,
        JwtError::WrongAlgorithm(_) => TokenRefusal::NoSigner,
        JwtError::NotYetValid => TokenRefusal::NotYetValid,
    })?;
    let claims = caller.claims().clone();
    let role = claims
        .get("role")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let exp = claims.get("exp").and_then(exp_seconds);
    let (Some(role), Some(exp)) = (role, exp) else {
        return Err(TokenRefusal::MissingClaims);
    };
    // Realtime wants `exp - now > 0`; jsonwebtoken still accepts `exp == now`.
    if exp <= now {
        return Err(TokenRefusal::Expired(now - exp));
    }
    Ok(VerifiedToken { claims, role, exp })
}

fn exp_seconds(value: &Value) -> Option<i64> {
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|f| f.floor() as i64))
}

/// The `exp` of a token whose signature has already been checked.
fn peek_exp(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp").and_then(exp_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use serde_json::json;

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretString::from(
            "realtime-test-secret-of-32-bytes-or-more".to_owned(),
        ))
    }

    const NOW: i64 = 2_000_000_000;

    #[test]
    fn a_token_with_role_and_exp_verifies() {
        let keys = keys();
        let now = chrono::Utc::now().timestamp();
        let token = keys.sign(&json!({"role": "authenticated", "exp": now + 60, "sub": "u"}));
        let verified = verify(&keys, &format!(" {token}\n"), now).unwrap();
        assert_eq!(verified.role, "authenticated");
        assert_eq!(verified.exp, now + 60);
        assert_eq!(verified.claims["sub"], "u");
    }

    #[test]
    fn refusals_carry_realtimes_reasons() {
        let keys = keys();
        let now = chrono::Utc::now().timestamp();
        let expired = keys.sign(&json!({"role": "anon", "exp": now - 30}));
        assert_eq!(
            verify(&keys, &expired, now).unwrap_err().join_reason(),
            "InvalidJWTToken: Token has expired 30 seconds ago"
        );
        let no_role = keys.sign(&json!({"exp": now + 30}));
        assert_eq!(
            verify(&keys, &no_role, now).unwrap_err().join_reason(),
            "InvalidJWTToken: Fields `role` and `exp` are required in JWT"
        );
        let no_exp = keys.sign(&json!({"role": "anon"}));
        assert_eq!(
            verify(&keys, &no_exp, now),
            Err(TokenRefusal::MissingClaims)
        );
        assert_eq!(
            verify(&keys, "not-a-jwt", now).unwrap_err().join_reason(),
            "MalformedJWT: The token provided is not a valid JWT"
        );
        let other = JwtKeys::new(&SecretString::from(
            "another-secret-another-secret-123456".to_owned(),
        ));
        let forged = other.sign(&json!({"role": "service_role", "exp": now + 30}));
        assert_eq!(
            verify(&keys, &forged, now).unwrap_err().join_reason(),
            "JwtSignatureError: Failed to validate JWT signature"
        );
    }

    #[test]
    fn exp_equal_to_now_is_expired() {
        let keys = keys();
        let token = keys.sign(&json!({"role": "anon", "exp": NOW + 5}));
        // jsonwebtoken checks against the real clock; pass a `now` at exp.
        assert_eq!(
            verify(&keys, &token, NOW + 5),
            Err(TokenRefusal::Expired(0))
        );
    }

    #[test]
    fn alg_none_has_no_signer() {
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(json!({"role": "service_role", "exp": NOW}))
        );
        assert_eq!(
            verify(&keys(), &token, NOW - 10),
            Err(TokenRefusal::NoSigner)
        );
    }
}
