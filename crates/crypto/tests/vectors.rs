//! Frozen test vectors for the stored formats: the blob format (`docs/blob-format.md`), key
//! wrapping, key derivation and the root key fingerprint.
//!
//! If one of these fails, a change has altered bytes already on disk or in databases: existing
//! data would become unreadable. Do not "fix" the constants; revert the change or introduce a new
//! format version that still reads these. The values were cross-checked against an independent
//! implementation (Python `cryptography`, see the doc).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strongroom_crypto::CryptoError;
use strongroom_crypto::blobfmt::{
    BlobOpener, BlobSealer, CHUNK_SIZE, HEADER_LEN, TAG_LEN, chunk_count, ciphertext_len,
    plaintext_len,
};
use strongroom_crypto::digest::sha256;
use strongroom_crypto::keys::{DataKey, Kek, RootKey};

const OBJECT_ID: &str = "ast_vector";
const PREFIX: [u8; 7] = [0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6];

const HEADER_HEX: &str = "5352424c4f42000100010000a0a1a2a3a4a5a600000000000000000000000000";
const HELLO_BLOB_HEX: &str = "5352424c4f42000100010000a0a1a2a3a4a5a600000000000000000000000000\
                              1f042572d7ef42092116e2261ff32f626e95b2df47";
const PATTERN_LEN: usize = 70000;
const PATTERN_BLOB_LEN: u64 = 70064;
const PATTERN_BLOB_SHA256: &str =
    "38c62baafb132069c16104d2f65644e5210128fdef4da22b796f685642beaf18";

const KEK_VERSION: u32 = 7;
const WRAPPED_KEK_HEX: &str = "df9c817c8e9f57a2de95c64f827bbc8be5c2cd607e79ecc82df805177d957e5a\
                               aac5d6ce43cd8bd3fbe170bc58093b9422f692ac9366ad9782378c2b";
const WRAPPED_DEK_HEX: &str = "0ed2d4a3b99b5e514e570efd27e2a3139e39faf29ebf3daf5fa90830e85af9d4\
                               cc3f02640b4478f92a6b86b7a75a9b36a7d49b3d41286f8f9000de64";
const ROOT_FINGERPRINT: &str = "6bbd12badfb88899";
const DERIVED_VECTOR_MAC_HELLO: &str =
    "529364f5363020c2bc1b2551aed00839f1d298eaa69d2d3c9102800a8b033ae9";

fn dek_bytes() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

fn kek_bytes() -> [u8; 32] {
    std::array::from_fn(|i| 0x40 + i as u8)
}

fn root() -> RootKey {
    let b: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    RootKey::from_bytes(&b).unwrap()
}

fn pattern() -> Vec<u8> {
    (0..PATTERN_LEN).map(|i| (i % 251) as u8).collect()
}

fn seal(dek: &DataKey, pt: &[u8]) -> Vec<u8> {
    let mut s = BlobSealer::with_nonce_prefix(dek, OBJECT_ID, PREFIX);
    let mut out = s.header().to_vec();
    let chunks: Vec<&[u8]> = if pt.is_empty() {
        vec![pt]
    } else {
        pt.chunks(CHUNK_SIZE).collect()
    };
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        s.seal_chunk(c, i + 1 == n, &mut out).unwrap();
    }
    out
}

fn open(dek: &DataKey, blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let size = plaintext_len(blob.len() as u64)?;
    let opener = BlobOpener::new(dek, OBJECT_ID, &blob[..HEADER_LEN])?;
    let n = chunk_count(size);
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    for i in 0..n {
        let len = (CHUNK_SIZE + TAG_LEN).min(blob.len() - pos);
        let mut buf = blob[pos..pos + len].to_vec();
        let got = opener.open_chunk(i, i + 1 == n, &mut buf)?;
        out.extend_from_slice(&buf[..got]);
        pos += len;
    }
    Ok(out)
}

#[test]
fn header_is_frozen() {
    let s = BlobSealer::with_nonce_prefix(&DataKey::from_bytes(&dek_bytes()), OBJECT_ID, PREFIX);
    assert_eq!(hex::encode(s.header()), HEADER_HEX);
}

#[test]
fn hello_blob_is_frozen() {
    let dek = DataKey::from_bytes(&dek_bytes());
    let blob = seal(&dek, b"hello");
    assert_eq!(hex::encode(&blob), HELLO_BLOB_HEX);
    assert_eq!(
        open(&dek, &hex::decode(HELLO_BLOB_HEX).unwrap()).unwrap(),
        b"hello"
    );
}

#[test]
fn two_chunk_pattern_blob_is_frozen() {
    let dek = DataKey::from_bytes(&dek_bytes());
    let pt = pattern();
    let blob = seal(&dek, &pt);
    assert_eq!(blob.len() as u64, PATTERN_BLOB_LEN);
    assert_eq!(ciphertext_len(PATTERN_LEN as u64), PATTERN_BLOB_LEN);
    assert_eq!(hex::encode(sha256(&blob)), PATTERN_BLOB_SHA256);
    assert_eq!(open(&dek, &blob).unwrap(), pt);
}

#[test]
fn key_hierarchy_is_frozen() {
    // Root key -> stored KEK -> stored DEK -> the DEK that sealed the hello blob.
    let root = root();
    let kek = root
        .unwrap_kek(KEK_VERSION, &hex::decode(WRAPPED_KEK_HEX).unwrap())
        .unwrap();
    assert_eq!(kek.version(), KEK_VERSION);
    let dek = kek
        .unwrap_dek(OBJECT_ID, &hex::decode(WRAPPED_DEK_HEX).unwrap())
        .unwrap();
    assert_eq!(
        open(&dek, &hex::decode(HELLO_BLOB_HEX).unwrap()).unwrap(),
        b"hello"
    );

    // The KEK recovered is the fixed one: it unwraps what the fixed KEK wraps, and vice versa.
    let fixed = Kek::from_bytes(KEK_VERSION, &kek_bytes());
    let rewrapped = fixed.wrap_dek(OBJECT_ID, &dek);
    assert!(kek.unwrap_dek(OBJECT_ID, &rewrapped).is_ok());
}

#[test]
fn derivation_and_fingerprint_are_frozen() {
    let root = root();
    assert_eq!(root.fingerprint(), ROOT_FINGERPRINT);
    let mac = root.derive("vector").mac(b"hello");
    assert_eq!(hex::encode(mac), DERIVED_VECTOR_MAC_HELLO);
    assert!(root.derive("vector").verify(b"hello", &mac));
}
