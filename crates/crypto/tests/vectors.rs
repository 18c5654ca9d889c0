//! Frozen test vectors for the stored formats: the blob format (`docs/blob-format.md`), key
//! wrapping, key derivation, the root key fingerprint and field encryption.
//!
//! If one of these fails, a change has altered bytes already on disk or in databases: existing
//! data would become unreadable. Do not "fix" the constants; revert the change or introduce a new
//! format version that still reads these.
//!
//! [`an_independent_implementation_computes_the_same_values`] recomputes every vector with
//! `independent_vectors.py` (Python `cryptography`, written from the doc alone), and decrypts
//! values this crate has just made with fresh nonces, on every run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use strongroom_crypto::CryptoError;
use strongroom_crypto::blobfmt::{
    BlobOpener, BlobSealer, CHUNK_SIZE, HEADER_LEN, TAG_LEN, chunk_count, ciphertext_len,
    plaintext_len,
};
use strongroom_crypto::digest::sha256;
use strongroom_crypto::keys::{DataKey, Kek, RootKey};

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

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

/// A field-encrypted value: a TOTP secret sealed for user `usr_vector` under the root key's
/// `field_key("totp")`, with nonce `b0 b1 … bb`.
const FIELD_PURPOSE: &str = "totp";
const FIELD_AAD: &str = "usr_vector";
const FIELD_PLAINTEXT: &str = "JBSWY3DPEHPK3PXP";
const FIELD_NONCE: [u8; 12] = [
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb,
];
const FIELD_SEALED_HEX: &str = "b0b1b2b3b4b5b6b7b8b9babbe1772d1895ad266339a31a3aeed752b42b57c5ae\
                                aa11ea1348fa3a0d0a2e4944";

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

#[test]
fn field_encryption_is_frozen() {
    let root = root();
    let key = root.field_key(FIELD_PURPOSE);
    let sealed = key.seal_with_nonce(
        FIELD_NONCE,
        FIELD_AAD.as_bytes(),
        FIELD_PLAINTEXT.as_bytes(),
    );
    assert_eq!(hex::encode(&sealed), FIELD_SEALED_HEX);
    let frozen = hex::decode(FIELD_SEALED_HEX).unwrap();
    assert_eq!(
        key.open(FIELD_AAD.as_bytes(), &frozen).unwrap().as_slice(),
        FIELD_PLAINTEXT.as_bytes()
    );
    // The value is bound to its row and its purpose.
    assert!(key.open(b"usr_other", &frozen).is_err());
    assert!(
        root.field_key("jobs")
            .open(FIELD_AAD.as_bytes(), &frozen)
            .is_err()
    );
}

/// Runs `independent_vectors.py` with `input` (`name=value` lines) and parses what it prints.
fn python(input: &str) -> BTreeMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/independent_vectors.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs the independent implementation (scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'cryptography'"),
        "the independent implementation needs Python `cryptography`: apt-get install \
         python3-cryptography (scripts/test.sh does)"
    );
    assert!(
        out.status.success(),
        "the independent implementation refused a value: {stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn an_independent_implementation_computes_the_same_values() {
    let root = root();
    let kek = Kek::from_bytes(KEK_VERSION, &kek_bytes());
    let dek = DataKey::from_bytes(&dek_bytes());
    let field = root.field_key(FIELD_PURPOSE);
    // Values made now, with fresh random nonces: the other implementation must open them.
    let fresh_blob_plaintext: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let fresh_blob = {
        let mut s = BlobSealer::new(&dek, OBJECT_ID);
        let mut out = s.header().to_vec();
        let chunks: Vec<&[u8]> = fresh_blob_plaintext.chunks(CHUNK_SIZE).collect();
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            s.seal_chunk(c, i + 1 == n, &mut out).unwrap();
        }
        out
    };
    let input = [
        (
            "root",
            hex::encode(std::array::from_fn::<u8, 32, _>(|i| 0x80 + i as u8)),
        ),
        ("kek", hex::encode(kek_bytes())),
        ("kek_version", KEK_VERSION.to_string()),
        ("dek", hex::encode(dek_bytes())),
        ("object_id", OBJECT_ID.to_owned()),
        ("blob_prefix", hex::encode(PREFIX)),
        ("pattern_len", PATTERN_LEN.to_string()),
        ("wrapped_kek_nonce", WRAPPED_KEK_HEX[..24].to_owned()),
        ("wrapped_dek_nonce", WRAPPED_DEK_HEX[..24].to_owned()),
        ("derive_purpose", "vector".to_owned()),
        ("derive_message", "hello".to_owned()),
        ("field_purpose", FIELD_PURPOSE.to_owned()),
        ("field_aad", FIELD_AAD.to_owned()),
        ("field_plaintext", FIELD_PLAINTEXT.to_owned()),
        ("field_nonce", hex::encode(FIELD_NONCE)),
        ("fresh_wrapped_kek", hex::encode(root.wrap_kek(&kek))),
        (
            "fresh_wrapped_dek",
            hex::encode(kek.wrap_dek(OBJECT_ID, &dek)),
        ),
        (
            "fresh_field",
            hex::encode(field.seal(FIELD_AAD.as_bytes(), FIELD_PLAINTEXT.as_bytes())),
        ),
        ("fresh_blob", hex::encode(&fresh_blob)),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}\n"))
    .collect::<String>();
    let got = python(&input);
    let want = [
        ("header", HEADER_HEX.to_owned()),
        ("hello_blob", HELLO_BLOB_HEX.to_owned()),
        ("pattern_blob_len", PATTERN_BLOB_LEN.to_string()),
        ("pattern_blob_sha256", PATTERN_BLOB_SHA256.to_owned()),
        ("wrapped_kek", WRAPPED_KEK_HEX.to_owned()),
        ("wrapped_dek", WRAPPED_DEK_HEX.to_owned()),
        ("fingerprint", ROOT_FINGERPRINT.to_owned()),
        ("derived_mac", DERIVED_VECTOR_MAC_HELLO.to_owned()),
        ("field_sealed", FIELD_SEALED_HEX.to_owned()),
        ("fresh_kek", hex::encode(kek_bytes())),
        ("fresh_dek", hex::encode(dek_bytes())),
        ("fresh_field", FIELD_PLAINTEXT.to_owned()),
        (
            "fresh_blob_sha256",
            hex::encode(sha256(&fresh_blob_plaintext)),
        ),
    ];
    for (name, value) in want {
        assert_eq!(
            got.get(name).map(String::as_str),
            Some(value.as_str()),
            "the independent implementation disagrees on {name}"
        );
    }
    assert_eq!(got.len(), 13, "unexpected output: {got:?}");
}
