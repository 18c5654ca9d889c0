//! HLS segment encryption: `METHOD=AES-128` of RFC 8216 §5.2.
//!
//! An HLS stream is encrypted under one 16-byte content key per asset ([`HlsKey`]); each media
//! segment is AES-128-CBC encrypted as a whole with PKCS#7 padding, under an initialization vector
//! ([`HlsIv`]) that the playlist either states (`IV=0x...`) or leaves implicit as the segment's
//! media sequence number. Players fetch the key from the playlist's key URI and decrypt.
//!
//! This is the format players speak, not a Strongroom design: CBC is unauthenticated, so a
//! tampered segment decrypts to garbage (or fails the padding check) rather than being detected.
//! Integrity at rest comes from the blob layer, which stores these ciphertext segments inside its
//! own AES-256-GCM format like every other blob.

use aws_lc_rs::cipher::{
    AES_128, DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey,
    PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroize;

use crate::CryptoError;
use crate::aead::must;

/// Length of an HLS content key (AES-128).
pub const KEY_LEN: usize = 16;
/// Length of an HLS initialization vector (one AES block).
pub const IV_LEN: usize = 16;

/// The per-asset AES-128 content key of an HLS package: the 16 bytes a player fetches from the
/// key URI. Zeroized on drop, on the heap so moves leave no copies, neither `Clone` nor `Debug`
/// (like every secret type of this crate).
pub struct HlsKey(Box<[u8; KEY_LEN]>);

impl HlsKey {
    /// A fresh random key from the system CSPRNG.
    pub fn generate() -> HlsKey {
        let mut key = HlsKey(Box::new([0u8; KEY_LEN]));
        crate::token::fill_random(&mut key.0[..]);
        key
    }

    /// A key from stored bytes, which must be exactly [`KEY_LEN`] long.
    pub fn from_bytes(bytes: &[u8]) -> Result<HlsKey, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::InvalidKey(format!(
                "an HLS content key is {KEY_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let mut key = HlsKey(Box::new([0u8; KEY_LEN]));
        key.0.copy_from_slice(bytes);
        Ok(key)
    }

    /// The raw key bytes. Exposing them is deliberate and has exactly two legitimate uses: sealing
    /// the key for storage, and the body of the playback key endpoint (which a player needs in
    /// the clear, over TLS, after its token was checked). Never log or persist them unencrypted.
    pub fn expose_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher_key(&self) -> UnboundCipherKey {
        must(
            UnboundCipherKey::new(&AES_128, &self.0[..]),
            "a 16-byte AES-128 key",
        )
    }
}

impl Drop for HlsKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// An AES-128-CBC initialization vector for one segment. Not secret: playlists publish it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HlsIv([u8; IV_LEN]);

impl HlsIv {
    /// A fresh random IV, so no two segments under one key (not even the same segment number of
    /// two renditions) start their CBC chain alike.
    pub fn random() -> HlsIv {
        HlsIv(crate::token::random_bytes())
    }

    /// The implicit IV of RFC 8216 §5.2 when a playlist gives none: the media sequence number as a
    /// 128-bit big-endian integer.
    pub fn from_sequence(sequence: u64) -> HlsIv {
        HlsIv(u128::from(sequence).to_be_bytes())
    }

    /// An IV from its 16 bytes.
    pub fn from_bytes(bytes: [u8; IV_LEN]) -> HlsIv {
        HlsIv(bytes)
    }

    /// Parses the playlist form `0x` + 32 hex digits (either case, `0X` accepted as RFC 8216
    /// allows).
    pub fn parse_hex(s: &str) -> Option<HlsIv> {
        let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
        let mut bytes = [0u8; IV_LEN];
        hex::decode_to_slice(digits, &mut bytes).ok()?;
        Some(HlsIv(bytes))
    }

    /// The IV's bytes.
    pub fn as_bytes(&self) -> &[u8; IV_LEN] {
        &self.0
    }

    /// The playlist form: `0x` followed by 32 lowercase hex digits, as `EXT-X-KEY`'s `IV`
    /// attribute wants it.
    pub fn to_playlist_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

/// Encrypts one whole media segment, in place: AES-128-CBC with PKCS#7 padding under `key` and
/// `iv`, as RFC 8216 §5.2 `METHOD=AES-128` requires. The result is 1 to 16 bytes longer than the
/// input (reserve that capacity to avoid a reallocation).
pub fn encrypt_segment(key: &HlsKey, iv: &HlsIv, mut segment: Vec<u8>) -> Vec<u8> {
    let enc = must(
        PaddedBlockEncryptingKey::cbc_pkcs7(key.cipher_key()),
        "an AES-128-CBC key",
    );
    let context = EncryptionContext::Iv128(FixedLength::from(iv.0));
    must(
        enc.less_safe_encrypt(&mut segment, context),
        "to encrypt with a 16-byte IV",
    );
    segment
}

/// Decrypts a segment made by [`encrypt_segment`] (or by any HLS packager). `None` if the length
/// is not a whole number of blocks or the padding is wrong, which usually means the wrong key or
/// IV. A `Some` proves nothing about integrity: CBC is unauthenticated.
pub fn decrypt_segment(key: &HlsKey, iv: &HlsIv, ciphertext: &[u8]) -> Option<Vec<u8>> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(IV_LEN) {
        return None;
    }
    let dec = must(
        PaddedBlockDecryptingKey::cbc_pkcs7(key.cipher_key()),
        "an AES-128-CBC key",
    );
    let mut buf = ciphertext.to_vec();
    let len = dec
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv.0)))
        .ok()?
        .len();
    buf.truncate(len);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt), blocks 1-2; the PKCS#7 padding block that
    /// follows is checked by the round trip.
    #[test]
    fn matches_the_nist_cbc_vector() {
        let key =
            HlsKey::from_bytes(&hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap()).unwrap();
        let iv = HlsIv::parse_hex("0x000102030405060708090a0b0c0d0e0f").unwrap();
        let pt = hex::decode("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
            .unwrap();
        let ct = encrypt_segment(&key, &iv, pt.clone());
        assert_eq!(ct.len(), 48, "two blocks plus a full padding block");
        assert_eq!(
            hex::encode(&ct[..32]),
            "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
        );
        assert_eq!(decrypt_segment(&key, &iv, &ct).unwrap(), pt);
    }

    #[test]
    fn round_trips_any_length_and_rejects_wrong_keys() {
        let key = HlsKey::generate();
        for len in [0usize, 1, 15, 16, 17, 188 * 7] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let iv = HlsIv::random();
            let ct = encrypt_segment(&key, &iv, pt.clone());
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            assert_eq!(decrypt_segment(&key, &iv, &ct).unwrap(), pt);
            let other = HlsKey::generate();
            // A wrong key fails the padding check with overwhelming probability; if it passes,
            // the "plaintext" still differs.
            assert_ne!(decrypt_segment(&other, &iv, &ct), Some(pt));
        }
        assert!(decrypt_segment(&key, &HlsIv::random(), &[0u8; 15]).is_none());
        assert!(decrypt_segment(&key, &HlsIv::random(), &[]).is_none());
    }

    #[test]
    fn iv_forms() {
        assert_eq!(
            HlsIv::from_sequence(258).to_playlist_hex(),
            "0x00000000000000000000000000000102"
        );
        let iv = HlsIv::random();
        assert_eq!(HlsIv::parse_hex(&iv.to_playlist_hex()), Some(iv));
        assert_eq!(
            HlsIv::parse_hex("0X000102030405060708090A0B0C0D0E0F"),
            Some(HlsIv::from_bytes([
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
            ]))
        );
        assert!(HlsIv::parse_hex("000102030405060708090a0b0c0d0e0f").is_none());
        assert!(HlsIv::parse_hex("0x0001").is_none());
    }

    #[test]
    fn keys_are_random_and_sized() {
        let a = HlsKey::generate();
        let b = HlsKey::generate();
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        assert!(HlsKey::from_bytes(&[0u8; 15]).is_err());
        let c = HlsKey::from_bytes(a.expose_bytes()).unwrap();
        assert_eq!(c.expose_bytes(), a.expose_bytes());
    }
}
