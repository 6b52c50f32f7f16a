//! Who is calling: the user's access token, verified as strictly as the
//! platform's own `@require_user_auth` (docs/platform/ai-api.md §2)
//! and more — HS256 only (so `alg: none` and algorithm confusion fail), the
//! project secret, `exp` required and enforced, `aud` = `authenticated`,
//! `sub` a UUID, `role` = `authenticated` (a token claiming `service_role`
//! is refused, whoever signed it).
//!
//! A user signed in anonymously (GoTrue's anonymous sign-ins:
//! `is_anonymous: true` in an otherwise ordinary user token) is refused on
//! every user route with 403 `anonymous_not_allowed` unless
//! `QUIRE_COMPANION_ALLOW_ANONYMOUS_USERS=true`
//! ([`crate::config::Config::allow_anonymous_users`]): anyone can make such
//! an account, as many as they like.
//!
//! Also signs the 60-second user tokens the search tool runs `search_chunks`
//! under ([`JwtKeys::sign_user_token`]).

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::server::AppState;

/// Lifetime of the tokens the tool signs.
pub const TOOL_TOKEN_SECS: i64 = 60;
/// Clock skew tolerated on `exp` (PostgREST allows 30 s).
const LEEWAY_SECS: u64 = 30;

/// The project's HS256 key, for verifying and signing.
#[derive(Clone)]
pub struct JwtKeys {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKeys([REDACTED])")
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    role: Option<String>,
    /// GoTrue's claim; absent in older tokens (and the tool's own): `false`.
    #[serde(default)]
    is_anonymous: bool,
}

/// What a verified user access token says of its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// `sub`.
    pub id: Uuid,
    /// `is_anonymous`: an anonymous sign-in.
    pub anonymous: bool,
}

#[derive(Serialize)]
struct UserClaims<'a> {
    sub: Uuid,
    role: &'a str,
    aud: &'a str,
    iss: &'a str,
    iat: i64,
    exp: i64,
}

/// A verified user.
#[derive(Clone)]
pub struct User {
    /// `sub`.
    pub id: Uuid,
    /// The access token itself, for calls made under the user's identity.
    pub token: SecretString,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl User {
    /// The token as a string, for [`crate::platform::Auth::User`].
    pub fn token(&self) -> &str {
        self.token.expose_secret()
    }
}

impl JwtKeys {
    /// Keys for the project's HS256 `secret`: verifying users' access
    /// tokens (audience `authenticated`, `exp`, `sub` required) and signing
    /// the short-lived user tokens the search tool acts under.
    pub fn new(secret: &SecretString) -> JwtKeys {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_audience(&["authenticated"]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        JwtKeys {
            decoding: DecodingKey::from_secret(bytes),
            encoding: EncodingKey::from_secret(bytes),
            validation,
        }
    }

    /// The user of `token`, or `None` for any token that is not a valid,
    /// unexpired user access token of this project.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        self.verify_user(token).map(|user| user.id)
    }

    /// [`JwtKeys::verify`], with whether the user signed in anonymously.
    pub fn verify_user(&self, token: &str) -> Option<Verified> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        if data.header.alg != Algorithm::HS256 {
            return None;
        }
        if data.claims.role.as_deref() != Some("authenticated") {
            return None;
        }
        Some(Verified {
            id: Uuid::parse_str(&data.claims.sub).ok()?,
            anonymous: data.claims.is_anonymous,
        })
    }

    /// A user token for `user`, valid for [`TOOL_TOKEN_SECS`]: what the
    /// search tool presents to PostgREST so that RLS applies.
    pub fn sign_user_token(&self, user: Uuid) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = UserClaims {
            sub: user,
            role: "authenticated",
            aud: "authenticated",
            iss: "quire-companion",
            iat: now,
            exp: now + TOOL_TOKEN_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }
}

/// The bearer token of `Authorization`, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let verified = state
            .jwt
            .verify_user(token)
            .ok_or_else(ApiError::unauthorized)?;
        if verified.anonymous && !state.config.allow_anonymous_users {
            return Err(ApiError::anonymous_not_allowed());
        }
        Ok(User {
            id: verified.id,
            token: SecretString::from(token.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789";

    fn keys() -> JwtKeys {
        JwtKeys::new(&SecretString::from(SECRET))
    }

    fn sign_with(secret: &str, alg: Algorithm, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims() -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"sub": Uuid::new_v4(), "role": "authenticated", "aud": "authenticated",
               "iat": now, "exp": now + 600})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut c = claims();
        c[key] = value;
        c
    }

    fn without(key: &str) -> Value {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(key);
        c
    }

    #[test]
    fn a_user_access_token_is_accepted() {
        let c = claims();
        let token = sign_with(SECRET, Algorithm::HS256, &c);
        assert_eq!(
            keys().verify(&token).map(|u| u.to_string()),
            c["sub"].as_str().map(str::to_owned)
        );
    }

    #[test]
    fn an_anonymous_sign_in_is_told_apart() {
        let k = keys();
        let plain = sign_with(SECRET, Algorithm::HS256, &claims());
        assert!(!k.verify_user(&plain).unwrap().anonymous);
        let named = sign_with(
            SECRET,
            Algorithm::HS256,
            &with("is_anonymous", json!(false)),
        );
        assert!(!k.verify_user(&named).unwrap().anonymous);
        let anonymous = sign_with(SECRET, Algorithm::HS256, &with("is_anonymous", json!(true)));
        assert!(k.verify_user(&anonymous).unwrap().anonymous);
        // A claim that is not a boolean is not a token GoTrue made.
        let odd = sign_with(SECRET, Algorithm::HS256, &with("is_anonymous", json!("no")));
        assert_eq!(k.verify_user(&odd), None);
    }

    #[test]
    fn anything_else_is_refused() {
        let k = keys();
        let past = chrono::Utc::now().timestamp() - 3600;
        let refused = [
            sign_with(
                "another-secret-another-secret-another",
                Algorithm::HS256,
                &claims(),
            ),
            sign_with(SECRET, Algorithm::HS384, &claims()),
            sign_with(SECRET, Algorithm::HS256, &with("exp", json!(past))),
            sign_with(SECRET, Algorithm::HS256, &without("exp")),
            sign_with(
                SECRET,
                Algorithm::HS256,
                &with("aud", json!("somebody-else")),
            ),
            sign_with(SECRET, Algorithm::HS256, &without("aud")),
            sign_with(SECRET, Algorithm::HS256, &with("sub", json!("not-a-uuid"))),
            sign_with(SECRET, Algorithm::HS256, &without("sub")),
            sign_with(
                SECRET,
                Algorithm::HS256,
                &with("role", json!("service_role")),
            ),
            sign_with(SECRET, Algorithm::HS256, &with("role", json!("anon"))),
            sign_with(SECRET, Algorithm::HS256, &without("role")),
            sign_with(SECRET, Algorithm::HS256, &with("nbf", json!(past + 7200))),
        ];
        for (i, token) in refused.iter().enumerate() {
            assert_eq!(k.verify(token), None, "token #{i} must be refused");
        }
    }

    #[test]
    fn alg_none_is_refused() {
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims())
        );
        assert_eq!(keys().verify(&token), None);
        assert_eq!(keys().verify("garbage"), None);
        assert_eq!(keys().verify(""), None);
    }

    #[test]
    fn tool_tokens_verify_as_the_user_and_expire_in_a_minute() {
        let k = keys();
        let user = Uuid::new_v4();
        let token = k.sign_user_token(user);
        assert_eq!(k.verify(&token), Some(user));
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            TOOL_TOKEN_SECS
        );
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer   abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
