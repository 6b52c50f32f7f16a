//! Password hashing (Argon2id, PHC strings GoTrue also understands) and
//! GoTrue's strength rule.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::error::{AuthError, code};

/// Hashes `password` with Argon2id (`memory_kib` KiB, 2 passes, 1 lane) on
/// the blocking pool, so a burst of sign-ups does not stall the server.
pub async fn hash(password: String, memory_kib: u32) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || {
        let params = Params::new(memory_kib.max(Params::MIN_M_COST), 2, 1, None)
            .map_err(|e| AuthError::internal("Error hashing password", e))?;
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| AuthError::internal("Error hashing password", e))?;
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| AuthError::internal("Error hashing password", e))?;
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| AuthError::internal("Error hashing password", e))
    })
    .await
    .map_err(|e| AuthError::internal("Error hashing password", e))?
}

/// True when `password` matches the stored PHC `hash`. A missing or
/// unparsable hash matches nothing.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    let Some(hash) = hash.filter(|h| !h.is_empty()) else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// GoTrue's `checkPasswordStrength` with only the length rule configured.
pub fn check_strength(password: &str, min_length: usize) -> Result<(), AuthError> {
    if password.len() < min_length {
        return Err(AuthError::WeakPassword {
            message: format!("Password should be at least {min_length} characters."),
            reasons: vec!["length"],
        });
    }
    Ok(())
}

/// 400 `validation_failed` for an empty password where one is required.
pub fn required(password: &str, message: &'static str) -> Result<(), AuthError> {
    if password.is_empty() {
        return Err(AuthError::bad_request(code::VALIDATION_FAILED, message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash("correct horse".into(), Params::MIN_M_COST)
            .await
            .unwrap();
        let b = hash("correct horse".into(), Params::MIN_M_COST)
            .await
            .unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(a.clone())).await);
        assert!(!verify("wrong horse".into(), Some(a)).await);
        assert!(!verify("x".into(), None).await);
        assert!(!verify("x".into(), Some("not a hash".into())).await);
    }

    #[test]
    fn strength_is_length_only() {
        assert!(check_strength("12345", 6).is_err());
        assert!(check_strength("123456", 6).is_ok());
    }
}
