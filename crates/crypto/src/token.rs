//! Random tokens and constant-time comparison.
//!
//! Tokens (share links, playback, CSRF, magic links, session ids) are random bytes encoded as
//! base64url; anything compared against a secret goes through [`ct_eq`] so the comparison time
//! does not reveal how many leading bytes matched.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

/// Fill `buf` from the system CSPRNG (AWS-LC's `RAND_bytes`).
///
/// # Panics
/// Only if the CSPRNG reports failure, which AWS-LC does not do in practice (it aborts the process
/// itself when it cannot gather entropy). Continuing with predictable bytes would silently break
/// every key and token, so a panic is the only acceptable outcome; a `Result` here would force
/// every caller to handle an error that cannot be recovered from.
pub fn fill_random(buf: &mut [u8]) {
    if aws_lc_rs::rand::fill(buf).is_err() {
        panic!("system random number generator failed");
    }
}

/// `N` random bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill_random(&mut b);
    b
}

/// A random token of `nbytes` bytes of entropy, encoded base64url without padding (URL and
/// cookie safe). Use at least 16 bytes for anything guessable-by-attack; 32 is the default choice.
pub fn random_token(nbytes: usize) -> String {
    let mut b = vec![0u8; nbytes];
    fill_random(&mut b);
    URL_SAFE_NO_PAD.encode(&b)
}

/// Constant-time equality of two byte strings. Lengths are not secret: different lengths return
/// `false` immediately.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(random_bytes::<16>(), random_bytes::<16>());
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }
}
