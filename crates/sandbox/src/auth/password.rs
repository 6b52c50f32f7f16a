//! Password hashing (Argon2id, PHC strings GoTrue also understands) and
//! GoTrue's strength rule.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::error::{AuthError, code};

/// Argon2 passes of every hash the sandbox makes.
const PASSES: u32 = 2;
/// Argon2 lanes of every hash the sandbox makes.
const LANES: u32 = 1;

/// The memory cost the sandbox hashes with for a configured `memory_kib`.
fn memory_cost(memory_kib: u32) -> u32 {
    memory_kib.max(Params::MIN_M_COST)
}

/// Hashes `password` with Argon2id (`memory_kib` KiB, 2 passes, 1 lane) on
/// the blocking pool, so a burst of sign-ups does not stall the server.
pub(crate) async fn hash(password: String, memory_kib: u32) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || {
        let params = Params::new(memory_cost(memory_kib), PASSES, LANES, None)
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

/// Whether `password` matches the PHC string `hash` (blocking: Argon2);
/// `None` when `hash` does not parse.
fn check(password: &str, hash: &str) -> Option<bool> {
    let parsed = PasswordHash::new(hash).ok()?;
    Some(
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
    )
}

/// True when `password` matches the stored PHC `hash`. A missing or
/// unparsable hash matches nothing.
pub(crate) async fn verify(password: String, hash: Option<String>) -> bool {
    let Some(hash) = hash.filter(|h| !h.is_empty()) else {
        return false;
    };
    tokio::task::spawn_blocking(move || check(&password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

/// A sign-in's password check that takes as long whether or not there is a
/// hash to check: `true` when `password` matches the stored PHC `hash`;
/// with no hash (no such user, a user without a password) or one that does
/// not parse, the same Argon2 verification runs against [`dummy_hash`]
/// (hashes made with `memory_kib`, as [`hash`] makes them) and the answer is
/// `false`. So the time of a failed sign-in does not tell whether the
/// address has an account. Stricter than GoTrue, which answers an unknown
/// address before any hashing (docs/platform-contract.md §1).
pub(crate) async fn verify_for_sign_in(
    password: String,
    hash: Option<String>,
    memory_kib: u32,
) -> bool {
    tokio::task::spawn_blocking(move || {
        let stored = hash.filter(|h| !h.is_empty());
        match stored.and_then(|hash| check(&password, &hash)) {
            Some(matched) => matched,
            None => {
                let _ = check(&password, &dummy_hash(memory_kib));
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// A fixed Argon2id PHC string with the parameters [`hash`] uses for
/// `memory_kib` (a constant salt, an all-zero digest no password is known to
/// give): verifying against it costs what verifying a real hash costs.
pub(crate) fn dummy_hash(memory_kib: u32) -> String {
    // Salt: "sandboxdummysalt"; digest: 32 zero bytes, both unpadded base64.
    format!(
        "$argon2id$v=19$m={},t={PASSES},p={LANES}$c2FuZGJveGR1bW15c2FsdA${}",
        memory_cost(memory_kib),
        "A".repeat(43)
    )
}

/// GoTrue's `checkPasswordStrength` with only the length rule configured.
pub(crate) fn check_strength(password: &str, min_length: usize) -> Result<(), AuthError> {
    if password.len() < min_length {
        return Err(AuthError::WeakPassword {
            message: format!("Password should be at least {min_length} characters."),
            reasons: vec!["length"],
        });
    }
    Ok(())
}

/// 400 `validation_failed` for an empty password where one is required.
pub(crate) fn required(password: &str, message: &'static str) -> Result<(), AuthError> {
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

    #[tokio::test]
    async fn the_dummy_hash_has_the_parameters_of_real_hashes_and_matches_nothing() {
        for memory_kib in [1, Params::MIN_M_COST, 4096, Params::DEFAULT_M_COST] {
            let real = hash("correct horse".into(), memory_kib).await.unwrap();
            let real = PasswordHash::new(&real).unwrap();
            let dummy = dummy_hash(memory_kib);
            let dummy = PasswordHash::new(&dummy).unwrap();
            assert_eq!(dummy.algorithm, real.algorithm);
            assert_eq!(dummy.version, real.version);
            assert_eq!(dummy.params, real.params, "{memory_kib} KiB");
            assert_eq!(
                dummy.hash.map(|h| h.len()),
                real.hash.map(|h| h.len()),
                "a digest as long as a real one"
            );
        }
        for password in ["", "correct horse", "x"] {
            assert!(!verify_for_sign_in(password.into(), None, Params::MIN_M_COST).await);
            assert!(!verify_for_sign_in(password.into(), Some(String::new()), 8).await);
            assert!(!verify_for_sign_in(password.into(), Some("bcrypt?".into()), 8).await);
        }
        let real = hash("correct horse".into(), Params::MIN_M_COST)
            .await
            .unwrap();
        assert!(verify_for_sign_in("correct horse".into(), Some(real.clone()), 8).await);
        assert!(!verify_for_sign_in("wrong horse".into(), Some(real), 8).await);
    }

    #[test]
    fn strength_is_length_only() {
        assert!(check_strength("12345", 6).is_err());
        assert!(check_strength("123456", 6).is_ok());
    }
}
