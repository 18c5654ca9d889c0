//! The one place this crate draws randomness: through `strongroom-crypto`, the workspace's only
//! door to cryptographic primitives (its generator is AWS-LC's, seeded from the operating system).

/// Fills `buf` with cryptographically secure random bytes.
pub(crate) fn fill(buf: &mut [u8]) {
    strongroom_crypto::token::fill_random(buf);
}
