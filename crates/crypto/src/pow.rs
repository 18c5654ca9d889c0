//! Proof of work for the login captcha: find a nonce such that
//! `SHA-256(challenge || ":" || nonce)` starts with `bits` zero bits.
//!
//! Self-hosted and stateless to issue (the challenge is signed by the caller), cheap to check,
//! and a few lines for any client to solve (see `solve`, and docs/authentication.md for a Python one).

use crate::digest::Sha256;

/// How many leading zero bits a hash has.
pub fn leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            bits += byte.leading_zeros();
            break;
        }
    }
    bits
}

fn work(challenge: &str, nonce: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(challenge.as_bytes());
    h.update(b":");
    h.update(nonce.as_bytes());
    h.finish()
}

/// Whether `nonce` solves `challenge` at `bits` of difficulty. Nonces are decimal, at most 20
/// digits, so checking costs one hash however the client behaves.
pub fn check(challenge: &str, nonce: &str, bits: u32) -> bool {
    nonce.len() <= 20
        && !nonce.is_empty()
        && nonce.bytes().all(|b| b.is_ascii_digit())
        && leading_zero_bits(&work(challenge, nonce)) >= bits
}

/// Finds the smallest solving nonce (what a client does; about 2^bits hashes).
pub fn solve(challenge: &str, bits: u32) -> u64 {
    (0u64..)
        .find(|n| leading_zero_bits(&work(challenge, &n.to_string())) >= bits)
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solutions_check_and_others_do_not() {
        let c = "v1.123.abc.10.mac";
        let n = solve(c, 10);
        assert!(check(c, &n.to_string(), 10));
        assert!(!check("v1.124.abc.10.mac", &n.to_string(), 12) || n == 0);
        assert!(!check(c, "", 0));
        assert!(!check(c, "12a", 0));
        assert!(!check(c, &"9".repeat(21), 0));
        // Harder targets are harder: the nonce for 10 bits rarely meets 20.
        let strict = (0..50u64)
            .filter(|i| {
                check(
                    &format!("c{i}"),
                    &solve(&format!("c{i}"), 4).to_string(),
                    12,
                )
            })
            .count();
        assert!(strict < 10, "{strict}");
    }

    #[test]
    fn counts_leading_zero_bits() {
        let mut h = [0xffu8; 32];
        assert_eq!(leading_zero_bits(&h), 0);
        h[0] = 0;
        h[1] = 0x10;
        assert_eq!(leading_zero_bits(&h), 11);
        assert_eq!(leading_zero_bits(&[0u8; 32]), 256);
    }
}
