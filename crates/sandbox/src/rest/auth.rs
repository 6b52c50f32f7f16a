//! Who a REST request runs as: the gateway's `apikey` check, then
//! PostgREST's own reading of `Authorization: Bearer` (`Auth/Jwt.hs`, v14).
//!
//! PostgREST verifies differently from GoTrue, so the REST service does not
//! reuse [`crate::jwt::JwtKeys::verify`]: `exp` is optional, `exp`/`nbf`/`iat`
//! get 30 s of skew, any HMAC algorithm works with the secret, a token
//! without `role` runs as the anonymous role, and each failure has its own
//! `PGRST301`/`PGRST303` message.

use axum::http::HeaderMap;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

use super::error::RestError;

/// The role a request without a token runs as (`db-anon-role`).
pub(crate) const ANON_ROLE: &str = "anon";

/// PostgREST's clock skew allowance for `exp`, `nbf` and `iat`.
pub(crate) const ALLOWED_SKEW_SECS: i64 = 30;

/// The identity a request runs under.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Identity {
    /// The database role (`set_config('role', …)`).
    pub(crate) role: String,
    /// The claims with `role` filled in, as `request.jwt.claims`.
    pub(crate) claims: Map<String, Value>,
}

impl Identity {
    /// Whether 42501 should answer 403 (a role other than anon) or 401.
    pub(crate) fn authenticated(&self) -> bool {
        self.role != ANON_ROLE
    }
}

/// Kong's `key-auth` in front of PostgREST: the `apikey` header (or query
/// parameter) must be the anon or the service-role key.
pub(crate) fn check_api_key(
    headers: &HeaderMap,
    query_apikey: Option<&str>,
    keys: [&str; 2],
) -> Result<(), RestError> {
    let given = headers
        .get("apikey")
        .and_then(|v| v.to_str().ok())
        .or(query_apikey);
    let Some(given) = given else {
        return Err(RestError::no_api_key());
    };
    let ok = keys
        .iter()
        .any(|k| bool::from(k.as_bytes().ct_eq(given.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(RestError::invalid_api_key())
    }
}

/// wai-extra's `extractBearerAuth`: scheme `bearer` in any case, then the
/// rest after whitespace. `None` when there is no such header (anon).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(axum::http::header::AUTHORIZATION)?;
    let value = String::from_utf8_lossy(raw.as_bytes()).into_owned();
    let (scheme, rest) = match value.find(char::is_whitespace) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value.as_str(), ""),
    };
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start().to_string())
}

/// Resolves the request's identity from its bearer token, if any.
pub(crate) fn identify(
    token: Option<&str>,
    secret: &[u8],
    now: i64,
) -> Result<Identity, RestError> {
    let mut claims = match token {
        None => Map::new(),
        Some(t) => verify(t, secret, now)?,
    };
    let role = match claims.get("role") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => ANON_ROLE.to_string(),
    };
    claims.insert("role".into(), Value::String(role.clone()));
    Ok(Identity { role, claims })
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// Verifies `token` with the HMAC `secret` and checks its time claims.
pub(crate) fn verify(
    token: &str,
    secret: &[u8],
    now: i64,
) -> Result<Map<String, Value>, RestError> {
    if token.is_empty() {
        return Err(RestError::jwt_decode(
            "Empty JWT is sent in Authorization header",
            None,
        ));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(RestError::jwt_decode(
            &format!("Expected 3 parts in JWT; got {}", parts.len()),
            None,
        ));
    }
    let crypto_failed = || RestError::jwt_decode("JWT cryptographic operation failed", None);
    let header: Map<String, Value> = b64(parts[0])
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(crypto_failed)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let algorithm = match alg {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "none" => {
            return Err(RestError::jwt_decode(
                "Wrong or unsupported encoding algorithm",
                Some("JWT is unsecured but expected 'alg' was not 'none'"),
            ));
        }
        "RS256" | "RS384" | "RS512" | "ES256" | "ES384" | "ES512" | "PS256" | "PS384" | "PS512"
        | "EdDSA" => {
            return Err(RestError::jwt_decode(
                "No suitable key or wrong key type",
                Some("None of the keys was able to decode the JWT"),
            ));
        }
        _ => return Err(crypto_failed()),
    };
    let message = format!("{}.{}", parts[0], parts[1]);
    let valid = jsonwebtoken::crypto::verify(
        parts[2],
        message.as_bytes(),
        &DecodingKey::from_secret(secret),
        algorithm,
    )
    .unwrap_or(false);
    if !valid {
        return Err(crypto_failed());
    }
    let claims: Map<String, Value> = b64(parts[1])
        .and_then(|c| serde_json::from_slice(&c).ok())
        .ok_or_else(|| RestError::jwt_claims("Parsing claims failed"))?;
    check_claims(&claims, now)?;
    Ok(claims)
}

/// `checkForErrors`: the first failing of exp, nbf, iat, aud.
fn check_claims(claims: &Map<String, Value>, now: i64) -> Result<(), RestError> {
    let time = |key: &str, not_number: &str| -> Result<Option<i64>, RestError> {
        match claims.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(Some(
                n.as_i64()
                    .or_else(|| n.as_f64().map(|f| f.floor() as i64))
                    .unwrap_or(0),
            )),
            Some(_) => Err(RestError::jwt_claims(not_number)),
        }
    };
    if let Some(exp) = time("exp", "The JWT 'exp' claim must be a number")?
        && now - ALLOWED_SKEW_SECS > exp
    {
        return Err(RestError::jwt_claims("JWT expired"));
    }
    if let Some(nbf) = time("nbf", "The JWT 'nbf' claim must be a number")?
        && now + ALLOWED_SKEW_SECS < nbf
    {
        return Err(RestError::jwt_claims("JWT not yet valid"));
    }
    if let Some(iat) = time("iat", "The JWT 'iat' claim must be a number")?
        && now + ALLOWED_SKEW_SECS < iat
    {
        return Err(RestError::jwt_claims("JWT issued at future"));
    }
    match claims.get("aud") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(RestError::jwt_claims(
                "The JWT 'aud' claim must be a string or an array of strings",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";
    const NOW: i64 = 1_800_000_000;

    fn sign(claims: Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn b64e(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn no_token_is_anon() {
        let id = identify(None, SECRET, NOW).unwrap();
        assert_eq!(id.role, "anon");
        assert_eq!(Value::Object(id.claims), json!({"role": "anon"}));
        assert!(!identify(None, SECRET, NOW).unwrap().authenticated());
    }

    #[test]
    fn roles_and_defaults() {
        let t = sign(
            json!({"sub": "u", "role": "authenticated", "exp": NOW + 10}),
            SECRET,
        );
        assert_eq!(
            identify(Some(&t), SECRET, NOW).unwrap().role,
            "authenticated"
        );
        let t = sign(json!({"sub": "u"}), SECRET);
        assert_eq!(identify(Some(&t), SECRET, NOW).unwrap().role, "anon");
    }

    #[test]
    fn failures_have_postgrest_messages() {
        let msg = |t: &str| {
            let e = verify(t, SECRET, NOW).unwrap_err();
            (e.code.clone(), e.message.clone())
        };
        assert_eq!(
            msg(""),
            (
                "PGRST301".into(),
                "Empty JWT is sent in Authorization header".into()
            )
        );
        assert_eq!(
            msg("a.b"),
            ("PGRST301".into(), "Expected 3 parts in JWT; got 2".into())
        );
        assert_eq!(msg("x.y.z").1, "JWT cryptographic operation failed");
        let wrong = sign(
            json!({"role": "service_role"}),
            b"another-secret-another-secret-1234",
        );
        assert_eq!(msg(&wrong).1, "JWT cryptographic operation failed");
        let none = format!(
            "{}.{}.",
            b64e(&json!({"alg": "none"})),
            b64e(&json!({"role": "service_role"}))
        );
        assert_eq!(msg(&none).1, "Wrong or unsupported encoding algorithm");
        let expired = sign(json!({"role": "authenticated", "exp": NOW - 31}), SECRET);
        assert_eq!(msg(&expired), ("PGRST303".into(), "JWT expired".into()));
        let skewed = sign(json!({"role": "authenticated", "exp": NOW - 29}), SECRET);
        assert!(verify(&skewed, SECRET, NOW).is_ok());
        let bad_exp = sign(json!({"exp": "soon"}), SECRET);
        assert_eq!(msg(&bad_exp).1, "The JWT 'exp' claim must be a number");
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "bearer   abc".parse().unwrap());
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert("authorization", "Bearer".parse().unwrap());
        assert_eq!(bearer(&h).as_deref(), Some(""));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
