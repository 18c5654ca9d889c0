//! Password hashing: Argon2id for every new hash, bcrypt accepted for migrated users.
//!
//! Parameters follow the OWASP Password Storage Cheat Sheet's first Argon2id option (19 MiB of
//! memory, 2 passes, 1 lane). Hashes are PHC strings, so they carry their own parameters and old
//! hashes keep verifying after the parameters change; `needs_rehash` tells the caller to upgrade
//! one at the next successful login.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory cost in KiB (OWASP: 19 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Passes over memory (OWASP: 2).
pub const ARGON2_ITERATIONS: u32 = 2;
/// Lanes (OWASP: 1).
pub const ARGON2_LANES: u32 = 1;
/// The lowest bcrypt cost accepted from migrated hashes.
pub const BCRYPT_MIN_COST: u32 = 11;

/// A hash could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("password hashing: {0}")]
pub struct PasswordError(String);

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .map_err(|e| PasswordError(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with Argon2id and a random salt; returns the PHC string. Slow on purpose:
/// call it off the async runtime (`spawn_blocking`).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    hasher()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Whether `password` matches `stored` (an Argon2 PHC string or a `$2a$/$2b$/$2y$` bcrypt hash
/// of cost >= 11). Any malformed or unsupported hash is simply no match.
pub fn verify(password: &str, stored: &str) -> bool {
    if is_bcrypt(stored) {
        return bcrypt_cost(stored).is_some_and(|c| c >= BCRYPT_MIN_COST)
            && bcrypt::verify(password, stored).unwrap_or(false);
    }
    match (PasswordHash::new(stored), hasher()) {
        (Ok(parsed), Ok(h)) => h.verify_password(password.as_bytes(), &parsed).is_ok(),
        _ => false,
    }
}

/// Whether a stored hash should be replaced by a fresh one with today's parameters.
pub fn needs_rehash(stored: &str) -> bool {
    let current =
        format!("$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p={ARGON2_LANES}$");
    !stored.starts_with(&current)
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

fn bcrypt_cost(stored: &str) -> Option<u32> {
    stored.get(4..6)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip_with_owasp_parameters() {
        let h = hash("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapler", &h));
        assert!(!needs_rehash(&h));
        assert_ne!(
            h,
            hash("correct horse battery staple").unwrap(),
            "salts must differ"
        );
    }

    #[test]
    fn bcrypt_accepted_from_cost_11_and_marked_for_rehash() {
        let legacy = bcrypt::hash_with_result("migrated password", 11)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        assert!(verify("migrated password", &legacy));
        assert!(!verify("wrong", &legacy));
        assert!(needs_rehash(&legacy));
        let weak = bcrypt::hash("migrated password", 4).unwrap();
        assert!(
            !verify("migrated password", &weak),
            "cost below 11 must be refused"
        );
        assert!(!verify("x", "garbage"));
    }
}
