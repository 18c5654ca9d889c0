//! Strongroom's only door to cryptography.
//!
//! This crate owns every use of AEAD, KDF, MAC, hash and RNG primitives (through `aws-lc-rs`), the
//! key hierarchy (root key -> versioned key-encryption keys -> one data key per blob), the frozen
//! chunked blob encryption format ([`blobfmt`]), token helpers and the first-start TLS certificate.
//! No other crate in the workspace may name a cryptography crate; they call this one.
//!
//! What it must never do:
//! - perform I/O other than reading and creating the root key file ([`keys::RootKey::load_file`],
//!   [`keys::RootKey::create_file`]); the blob format code is pure so it can be tested with vectors;
//! - expose key material: secret types zeroize on drop, implement neither `Debug` nor `Clone`, and
//!   no error message carries secret bytes;
//! - change a frozen constant of an on-disk format: doing so makes existing data unreadable (the
//!   test vectors in `tests/vectors.rs` are there to catch it).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod aead;
pub mod blobfmt;
pub mod digest;
pub mod hls;
pub mod keys;
pub mod password;
pub mod pow;
mod secret;
pub mod tls;
pub mod token;

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Messages never include key material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The root key file is readable or writable by group or others; it is refused so a
    /// misconfigured deployment fails loudly instead of leaking the key. Fix with `chmod 600`.
    #[error("key file {} has mode {mode:o}; it must not be accessible by group or others (chmod 600 it)", path.display())]
    KeyFilePermissions {
        /// The offending file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The root key file exists but does not hold a key in a recognised encoding.
    #[error("key file is invalid: {0}")]
    KeyFileInvalid(String),
    /// Key bytes or text given directly (not from a file) are malformed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Reading or writing a key file failed.
    #[error("key file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A wrapped key failed to authenticate: wrong wrapping key, wrong version or object id, or the
    /// stored bytes were altered. The caller must treat the data it protects as unreadable.
    #[error("wrapped key failed to authenticate (wrong key, version or object, or altered)")]
    Unwrap,
    /// A blob header is malformed or of an unsupported version or chunk size.
    #[error("blob header invalid: {0}")]
    BadHeader(String),
    /// A blob chunk failed authentication: it was tampered with, truncated, reordered, or belongs
    /// to another object (or the data key is wrong). No plaintext from it may be used.
    #[error(
        "blob chunk {index} failed authentication (tampered, truncated, reordered or bound to another object)"
    )]
    ChunkAuth {
        /// Index of the chunk that failed.
        index: u64,
    },
    /// Ciphertext is shorter or otherwise not the length the blob format requires.
    #[error("blob ciphertext is truncated or has an impossible length")]
    Truncated,
    /// The blob would need more chunks than the 32-bit chunk counter allows (256 TiB).
    #[error("blob too large for the chunk counter")]
    TooManyChunks,
    /// The chunk sealing API was used out of order (a programming error, not bad data).
    #[error("blob sealer misuse: {0}")]
    Misuse(&'static str),
    /// Generating a TLS certificate failed.
    #[error("certificate generation failed: {0}")]
    Cert(String),
}
