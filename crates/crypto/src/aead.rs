//! Thin AES-256-GCM helpers over `aws-lc-rs`, shared by key wrapping and the blob format.
//!
//! The only failures `aws-lc-rs` can report for sealing are a wrong key length or an input larger
//! than GCM allows (64 GiB); every call here passes a 32-byte key and at most one chunk or one key,
//! so those failures are impossible. They are turned into a panic in one named place ([`must`])
//! instead of growing `Result`s that no caller could handle.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::error::Unspecified;

/// Length of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;

/// Unwraps a result that the fixed sizes used in this crate make infallible.
pub(crate) fn must<T>(r: Result<T, Unspecified>, what: &'static str) -> T {
    match r {
        Ok(v) => v,
        Err(Unspecified) => {
            panic!("aws-lc-rs refused {what}, which cannot happen with fixed sizes")
        }
    }
}

/// An AES-256-GCM key from 32 bytes.
pub(crate) fn aes_key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(must(
        UnboundKey::new(&AES_256_GCM, bytes),
        "a 32-byte AES-256 key",
    ))
}

/// Encrypts `buf` in place and returns the tag.
pub(crate) fn seal(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> [u8; TAG_LEN] {
    let tag = must(
        key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf),
        "to seal a buffer",
    );
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Encrypts `first || second` into `out`, which must be exactly `first.len() + second.len() +
/// TAG_LEN` bytes (`ciphertext || tag`); the plaintext is read where it lies, never copied.
pub(crate) fn seal_into(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    first: &[u8],
    second: &[u8],
    out: &mut [u8],
) {
    let (ciphertext, rest_and_tag) = out.split_at_mut(first.len().min(out.len()));
    must(
        key.seal_out_of_place_scatter(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            first,
            ciphertext,
            second,
            rest_and_tag,
        ),
        "to seal a buffer",
    );
}

/// Decrypts `ct || tag` in place; returns the plaintext length, or `Err` if it does not
/// authenticate.
pub(crate) fn open(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<usize, Unspecified> {
    key.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
        .map(|p| p.len())
}

/// `nonce || ct || tag` of a 32-byte secret under `key`, with a fresh random nonce.
///
/// Random 96-bit nonces are safe here: a wrapping key seals at most one value per object, far
/// below the 2^32 messages where random-nonce collisions become a concern.
pub(crate) fn wrap32(key: &LessSafeKey, aad: &[u8], secret: &[u8; 32]) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = crate::token::random_bytes();
    // Allocated at full size up front so the buffer never reallocates while it briefly holds the
    // plaintext secret (a reallocation would leave an unwiped copy behind).
    let mut out = Vec::with_capacity(NONCE_LEN + 32 + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(secret);
    let tag = seal(key, nonce, aad, &mut out[NONCE_LEN..]);
    out.extend_from_slice(&tag);
    out
}

/// Opens the output of [`wrap32`]; `None` if it does not authenticate or has the wrong length.
pub(crate) fn unwrap32(
    key: &LessSafeKey,
    aad: &[u8],
    wrapped: &[u8],
) -> Option<crate::secret::Secret32> {
    if wrapped.len() != NONCE_LEN + 32 + TAG_LEN {
        return None;
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&wrapped[..NONCE_LEN]);
    let mut buf = zeroize::Zeroizing::new([0u8; 32 + TAG_LEN]);
    buf.copy_from_slice(&wrapped[NONCE_LEN..]);
    let n = open(key, nonce, aad, &mut buf[..]).ok()?;
    crate::secret::Secret32::from_slice(&buf[..n])
}
