//! Signing and verifying the project's HS256 JWTs.
//!
//! Every service of the sandbox verifies bearer tokens here and decides what a
//! failure means in its own error shape (GoTrue's `bad_jwt`, PostgREST's
//! `PGRST301`, …). Verification is strict: HS256 only (so `alg: none` and
//! algorithm-confusion tokens fail), the signature must match, `exp` is
//! required and enforced with no leeway, `nbf` is enforced, and the well-known
//! claims must have the types GoTrue gives them. The audience is *not* checked
//! here: GoTrue, PostgREST and Storage each treat it differently.

use std::fmt;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Why a token was refused. `Display` follows the wording of golang-jwt, which
/// GoTrue puts after "invalid JWT: unable to parse or verify signature, ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url segments of JSON.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// An algorithm other than HS256, `none` included.
    #[error("token signature is invalid: signing method {0} is invalid")]
    WrongAlgorithm(String),
    /// The HMAC does not match: another secret, or a tampered payload.
    #[error("token signature is invalid: signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token has invalid claims: token is expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token has invalid claims: token is not valid yet")]
    NotYetValid,
    /// No `exp` claim: the sandbox accepts no token that never expires.
    #[error("token has invalid claims: token is missing required claim: exp claim is required")]
    MissingExpiry,
}

/// The verified claims of a bearer token: who is calling, in which role.
#[derive(Clone, PartialEq)]
pub struct Caller {
    claims: Map<String, Value>,
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("role", &self.role())
            .field("sub", &self.subject())
            .finish_non_exhaustive()
    }
}

impl Caller {
    /// The `role` claim (`anon`, `authenticated`, `service_role`, …), if any.
    /// PostgREST treats a token without one as the anonymous role.
    pub fn role(&self) -> Option<&str> {
        self.claims.get("role").and_then(Value::as_str)
    }

    /// True for the service role (the service key, or any token claiming it).
    pub fn is_service_role(&self) -> bool {
        self.role() == Some("service_role")
    }

    /// The raw `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// `sub` as a user id, when it is a UUID.
    pub fn user_id(&self) -> Option<Uuid> {
        self.subject().and_then(|s| Uuid::parse_str(s).ok())
    }

    /// The raw `session_id` claim of a GoTrue access token.
    pub fn session_id(&self) -> Option<&str> {
        self.claims.get("session_id").and_then(Value::as_str)
    }

    /// The `aud` claim as a list (a single string counts as one).
    pub fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Every claim, as PostgREST exposes them in `request.jwt.claims`.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// The project's JWT signing and verification keys (cheap to clone).
#[derive(Clone)]
pub struct JwtKeys {
    inner: Arc<KeyPair>,
}

struct KeyPair {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKeys([REDACTED])")
    }
}

impl JwtKeys {
    /// Keys for the project secret `secret` (its UTF-8 bytes are the HMAC key,
    /// as with GoTrue's `GOTRUE_JWT_SECRET`).
    pub fn new(secret: &SecretString) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        JwtKeys {
            inner: Arc::new(KeyPair {
                encoding: EncodingKey::from_secret(bytes),
                decoding: DecodingKey::from_secret(bytes),
                validation,
            }),
        }
    }

    /// Signs `claims` with HS256 (`{"alg":"HS256","typ":"JWT"}`).
    pub fn sign(&self, claims: &impl Serialize) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.inner.encoding)
            .expect("HS256 signing of serializable claims cannot fail")
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Caller, JwtError> {
        check_shape(token)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(
            token,
            &self.inner.decoding,
            &self.inner.validation,
        )
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::ExpiredSignature => JwtError::Expired,
            ErrorKind::ImmatureSignature => JwtError::NotYetValid,
            ErrorKind::MissingRequiredClaim(_) => JwtError::MissingExpiry,
            ErrorKind::InvalidAlgorithm => JwtError::WrongAlgorithm("unknown".into()),
            _ => JwtError::Malformed("could not JSON decode claim"),
        })?;
        check_claim_types(&data.claims)?;
        Ok(Caller {
            claims: data.claims,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, matched the way
/// GoTrue does: the scheme in any case, one space, a token without whitespace.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.chars().any(char::is_whitespace)
    {
        return None;
    }
    Some(token)
}

/// Checks the segments and the header ourselves, so that the reason given for
/// a refusal is golang-jwt's and `alg` is judged before any key is used.
fn check_shape(token: &str) -> Result<(), JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "token contains an invalid number of segments",
        ));
    };
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed("could not base64 decode header"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header)
        .map_err(|_| JwtError::Malformed("could not JSON decode header"))?;
    match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => Ok(()),
        Some(alg) => Err(JwtError::WrongAlgorithm(alg.to_owned())),
        None => Err(JwtError::Malformed("could not JSON decode header")),
    }
}

/// GoTrue decodes claims into a typed struct; a claim of the wrong type fails
/// there as a malformed token, and so it does here.
fn check_claim_types(claims: &Map<String, Value>) -> Result<(), JwtError> {
    let bad = || Err(JwtError::Malformed("could not JSON decode claim"));
    for name in ["sub", "role", "session_id", "email", "phone", "iss", "aal"] {
        if let Some(value) = claims.get(name)
            && !value.is_string()
            && !value.is_null()
        {
            return bad();
        }
    }
    match claims.get("aud") {
        None | Some(Value::String(_)) | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => return bad(),
    }
    for name in ["exp", "iat", "nbf"] {
        if let Some(value) = claims.get(name)
            && !value.is_number()
        {
            return bad();
        }
    }
    for name in ["app_metadata", "user_metadata"] {
        if let Some(value) = claims.get(name)
            && !value.is_object()
            && !value.is_null()
        {
            return bad();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretString::from(
            "a-test-secret-of-at-least-32-bytes!!".to_owned(),
        ))
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn b64(value: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn a_signed_token_verifies() {
        let keys = keys();
        let token = keys.sign(&json!({"sub": Uuid::nil(), "role": "authenticated", "exp": now() + 60, "aud": "authenticated"}));
        let caller = keys.verify(&token).unwrap();
        assert_eq!(caller.role(), Some("authenticated"));
        assert_eq!(caller.user_id(), Some(Uuid::nil()));
        assert_eq!(caller.audiences(), vec!["authenticated"]);
    }

    #[test]
    fn expired_tokens_fail_without_leeway() {
        let keys = keys();
        let token = keys.sign(&json!({"role": "anon", "exp": now() - 1}));
        assert_eq!(keys.verify(&token), Err(JwtError::Expired));
    }

    #[test]
    fn tokens_without_exp_fail() {
        let keys = keys();
        let token = keys.sign(&json!({"role": "anon"}));
        assert_eq!(keys.verify(&token), Err(JwtError::MissingExpiry));
    }

    #[test]
    fn another_secret_fails() {
        let other = JwtKeys::new(&SecretString::from(
            "another-secret-another-secret-1234".to_owned(),
        ));
        let token = other.sign(&json!({"role": "service_role", "exp": now() + 60}));
        assert_eq!(keys().verify(&token), Err(JwtError::BadSignature));
    }

    #[test]
    fn alg_none_fails() {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&json!({"role": "service_role", "exp": now() + 60}))
        );
        assert_eq!(
            keys().verify(&token),
            Err(JwtError::WrongAlgorithm("none".into()))
        );
        assert_eq!(
            keys().verify(&token).unwrap_err().to_string(),
            "token signature is invalid: signing method none is invalid"
        );
    }

    #[test]
    fn a_tampered_payload_fails() {
        let keys = keys();
        let token = keys.sign(&json!({"role": "authenticated", "exp": now() + 60}));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(&json!({"role": "service_role", "exp": now() + 60})),
            parts[2]
        );
        assert_eq!(keys.verify(&forged), Err(JwtError::BadSignature));
    }

    #[test]
    fn malformed_tokens_fail() {
        let keys = keys();
        for token in ["", "abc", "a.b", "a.b.c.d", "!!.??.**"] {
            assert!(
                matches!(keys.verify(token), Err(JwtError::Malformed(_))),
                "{token:?}"
            );
        }
    }

    #[test]
    fn wrongly_typed_claims_fail() {
        let keys = keys();
        let token = keys.sign(&json!({"role": 7, "exp": now() + 60}));
        assert!(matches!(keys.verify(&token), Err(JwtError::Malformed(_))));
        let token = keys.sign(&json!({"aud": {"x": 1}, "exp": now() + 60}));
        assert!(matches!(keys.verify(&token), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn bearer_tokens_are_matched_like_gotrue() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer a b", None),
            ("Basic abc", None),
        ] {
            headers.insert(axum::http::header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer_token(&headers), expected, "{value:?}");
        }
    }
}
