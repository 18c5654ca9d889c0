//! The key hierarchy: root key -> versioned key-encryption keys (KEK) -> one data key (DEK) per
//! blob, plus purpose-derived MAC keys.
//!
//! Only the root key lives outside the database (a file or the environment). KEKs are stored
//! wrapped by the root key; DEKs are stored wrapped by a KEK beside the row of the object they
//! protect. Every wrap binds its context (KEK version; object id) as associated data, so a wrapped
//! key copied to another row or relabelled with another version fails to unwrap.
//!
//! All types here zeroize on drop and implement neither `Debug` nor `Clone`.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use aws_lc_rs::aead::LessSafeKey;
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::CryptoError;
use crate::aead::{aes_key, must, unwrap32, wrap32};
use crate::secret::Secret32;

/// HKDF salt for purpose keys. Frozen: changing it changes every derived key, invalidating every
/// token and MAC made with them.
const DERIVE_SALT: &[u8] = b"strongroom hkdf salt v1";
/// Prefix of the HKDF info string. Frozen for the same reason as [`DERIVE_SALT`].
const DERIVE_INFO_PREFIX: &[u8] = b"strongroom v1 ";
/// Message MACed by the root key to fingerprint it. Frozen: operators compare fingerprints across
/// releases to check they loaded the right key.
const FINGERPRINT_MSG: &[u8] = b"strongroom root key fingerprint v1";
/// Associated-data label of a wrapped KEK. Frozen: changing it makes stored KEKs unreadable.
const KEK_AAD_LABEL: &[u8] = b"strongroom kek";
/// Associated-data label of a wrapped DEK. Frozen: changing it makes stored DEKs unreadable.
const DEK_AAD_LABEL: &[u8] = b"strongroom dek";
/// Prefix of a field key's purpose inside the HKDF info string (`"strongroom v1 field:totp"`).
/// Frozen: changing it makes every field-encrypted value (TOTP secrets, job payloads, HLS content
/// keys) unreadable. It also keeps field keys apart from every [`RootKey::derive`] key.
const FIELD_PURPOSE_PREFIX: &str = "field:";
/// Largest key file we are willing to read; a real one is 65 bytes.
const MAX_KEY_FILE: u64 = 4096;

/// The 32-byte root of the key hierarchy. It wraps KEKs and derives purpose keys, and must be
/// backed up separately from the data: losing it makes every blob unreadable.
pub struct RootKey {
    secret: Secret32,
}

impl RootKey {
    /// A fresh random root key.
    pub fn generate() -> RootKey {
        RootKey {
            secret: Secret32::random(),
        }
    }

    /// A root key from exactly 32 raw bytes.
    pub fn from_bytes(b: &[u8]) -> Result<RootKey, CryptoError> {
        Secret32::from_slice(b)
            .map(|secret| RootKey { secret })
            .ok_or_else(|| CryptoError::InvalidKey(format!("expected 32 bytes, got {}", b.len())))
    }

    /// A root key from 64 hex characters (surrounding whitespace, e.g. a trailing newline, is
    /// ignored). The error never echoes the input.
    pub fn from_hex(s: &str) -> Result<RootKey, CryptoError> {
        let mut buf = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(s.trim(), &mut buf[..])
            .map_err(|_| CryptoError::InvalidKey("expected 64 hex characters".into()))?;
        Ok(RootKey {
            secret: Secret32::from_array(&buf),
        })
    }

    /// Loads a key file holding 64 hex characters and a newline (32 raw bytes are accepted too).
    ///
    /// Refuses with [`CryptoError::KeyFilePermissions`] a file whose mode grants any access to
    /// group or others: a readable root key is as good as a published one.
    pub fn load_file(path: &Path) -> Result<RootKey, CryptoError> {
        let file = File::open(path)?;
        // Checked on the opened handle, not the path, so the file cannot be swapped in between.
        let mode = file.metadata()?.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::KeyFilePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        let mut content = Zeroizing::new(Vec::with_capacity(80));
        file.take(MAX_KEY_FILE + 1).read_to_end(&mut content)?;
        let invalid = || {
            CryptoError::KeyFileInvalid(format!(
                "{}: expected 64 hex characters or 32 raw bytes",
                path.display()
            ))
        };
        // 32 bytes cannot be hex for a 32-byte key (that takes 64), so the encodings never clash.
        if content.len() == 32 {
            return RootKey::from_bytes(&content).map_err(|_| invalid());
        }
        let text = std::str::from_utf8(&content).map_err(|_| invalid())?;
        RootKey::from_hex(text).map_err(|_| invalid())
    }

    /// Generates a key and writes it as hex plus newline to a new file created with mode 0600.
    /// Fails if the file exists (never overwrite a key: that would orphan all data). The file and
    /// its directory are fsynced so the key survives a crash right after first start.
    pub fn create_file(path: &Path) -> Result<RootKey, CryptoError> {
        let key = RootKey::generate();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let mut text = Zeroizing::new(hex::encode(key.secret.expose()));
        text.push('\n');
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            // A half-written key file would be loaded (and fail) on the next start; remove it so
            // the next start simply generates again.
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
        Ok(key)
    }

    /// Wraps a KEK for storage: `nonce(12) || ciphertext(32) || tag(16)`, AES-256-GCM with a random
    /// nonce; the associated data binds the KEK's version.
    pub fn wrap_kek(&self, kek: &Kek) -> Vec<u8> {
        wrap32(
            &aes_key(self.secret.expose()),
            &kek_aad(kek.version),
            kek.secret.expose(),
        )
    }

    /// Unwraps a KEK stored with [`RootKey::wrap_kek`] under `version`; [`CryptoError::Unwrap`] if
    /// the root key, the version or the bytes are wrong.
    pub fn unwrap_kek(&self, version: u32, wrapped: &[u8]) -> Result<Kek, CryptoError> {
        let secret = unwrap32(&aes_key(self.secret.expose()), &kek_aad(version), wrapped)
            .ok_or(CryptoError::Unwrap)?;
        Ok(Kek::from_secret(version, secret))
    }

    /// A MAC key for one purpose (e.g. `"share-link"`, `"csrf"`), derived with HKDF-SHA256 so
    /// purposes are independent: a token minted for one cannot verify as another.
    pub fn derive(&self, purpose: &str) -> MacKey {
        MacKey::new(&self.derive_bytes(purpose))
    }

    fn derive_bytes(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, DERIVE_SALT).extract(self.secret.expose());
        let info = [DERIVE_INFO_PREFIX, purpose.as_bytes()];
        let okm = must(
            prk.expand(&info, hkdf::HKDF_SHA256),
            "a 32-byte HKDF output",
        );
        let mut bytes = Zeroizing::new([0u8; 32]);
        must(okm.fill(&mut bytes[..]), "a 32-byte HKDF output");
        bytes
    }

    /// An AES-256-GCM key for one kind of secret kept in a database field (TOTP secrets,
    /// third-party credentials), derived for `purpose` (independent of every `derive` key).
    pub fn field_key(&self, purpose: &str) -> FieldKey {
        let bytes = self.derive_bytes(&format!("{FIELD_PURPOSE_PREFIX}{purpose}"));
        FieldKey {
            key: aes_key(&bytes),
        }
    }

    /// 16 hex characters identifying this key without revealing it (a truncated HMAC of a
    /// constant), safe to log and print so operators can check which key is loaded.
    pub fn fingerprint(&self) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.secret.expose());
        let tag = hmac::sign(&key, FINGERPRINT_MSG);
        hex::encode(&tag.as_ref()[..8])
    }
}

/// Associated data of a wrapped KEK: label || version (u32 BE).
fn kek_aad(version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(KEK_AAD_LABEL.len() + 4);
    aad.extend_from_slice(KEK_AAD_LABEL);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// A versioned key-encryption key: wraps the per-object data keys. One version is active at a
/// time; rotation creates a new version and rewraps DEKs.
pub struct Kek {
    version: u32,
    secret: Secret32,
    // Cached so rewrapping many DEKs during rotation does not redo the AES key schedule each time.
    aead: LessSafeKey,
}

impl Kek {
    /// A fresh random KEK with the given version number.
    pub fn generate(version: u32) -> Kek {
        Kek::from_secret(version, Secret32::random())
    }

    /// A KEK from fixed bytes. For test vectors and tests only: real KEKs come from
    /// [`Kek::generate`] or [`RootKey::unwrap_kek`].
    pub fn from_bytes(version: u32, bytes: &[u8; 32]) -> Kek {
        Kek::from_secret(version, Secret32::from_array(bytes))
    }

    fn from_secret(version: u32, secret: Secret32) -> Kek {
        let aead = aes_key(secret.expose());
        Kek {
            version,
            secret,
            aead,
        }
    }

    /// This KEK's version, stored beside every DEK it wraps.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Wraps a DEK for storage beside object `object_id`: `nonce(12) || ciphertext(32) || tag(16)`.
    /// The associated data binds the object id and this KEK's version, so the wrapped bytes copied
    /// to another object (or relabelled with another version) fail to unwrap.
    pub fn wrap_dek(&self, object_id: &str, dek: &DataKey) -> Vec<u8> {
        wrap32(
            &self.aead,
            &dek_aad(self.version, object_id),
            dek.secret.expose(),
        )
    }

    /// Unwraps a DEK stored with [`Kek::wrap_dek`] for `object_id`; [`CryptoError::Unwrap`] if it
    /// belongs to another object or KEK, or was altered.
    pub fn unwrap_dek(&self, object_id: &str, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let secret = unwrap32(&self.aead, &dek_aad(self.version, object_id), wrapped)
            .ok_or(CryptoError::Unwrap)?;
        Ok(DataKey { secret })
    }
}

/// Associated data of a wrapped DEK: label || KEK version (u32 BE) || len(object_id) (u32 BE) ||
/// object_id. The length prefix keeps the encoding unambiguous.
fn dek_aad(version: u32, object_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DEK_AAD_LABEL.len() + 8 + object_id.len());
    aad.extend_from_slice(DEK_AAD_LABEL);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&(object_id.len() as u32).to_be_bytes());
    aad.extend_from_slice(object_id.as_bytes());
    aad
}

/// A per-blob data key (AES-256-GCM). Deleting its wrapped form makes every copy of the blob,
/// including copies in old backups, unreadable.
pub struct DataKey {
    secret: Secret32,
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> DataKey {
        DataKey {
            secret: Secret32::random(),
        }
    }

    /// A data key from fixed bytes. For test vectors and tests only: real data keys come from
    /// [`DataKey::generate`] or [`Kek::unwrap_dek`].
    pub fn from_bytes(bytes: &[u8; 32]) -> DataKey {
        DataKey {
            secret: Secret32::from_array(bytes),
        }
    }

    /// The AES key for the blob format.
    pub(crate) fn aead_key(&self) -> LessSafeKey {
        aes_key(self.secret.expose())
    }
}

/// An HMAC-SHA256 key for one purpose, from [`RootKey::derive`].
/// Encrypts small secrets stored in database fields. Each value gets a random nonce; the
/// associated data binds it to its row (e.g. the user id), so a value copied to another row does
/// not decrypt.
pub struct FieldKey {
    key: LessSafeKey,
}

impl FieldKey {
    /// A field key from 32 random bytes kept elsewhere (one person's key, sealed in their row),
    /// rather than derived from the root key: destroying the bytes destroys the key.
    pub fn from_bytes(bytes: &[u8; 32]) -> FieldKey {
        FieldKey {
            key: aes_key(bytes),
        }
    }

    /// `nonce || ciphertext || tag`, with a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.seal_with_nonce(crate::token::random_bytes(), aad, plaintext)
    }

    /// [`FieldKey::seal`] with a fixed nonce. For test vectors only: two values sealed with one
    /// nonce under the same key break AES-GCM.
    pub fn seal_with_nonce(&self, nonce: [u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut buf = plaintext.to_vec();
        let tag = crate::aead::seal(&self.key, nonce, aad, &mut buf);
        let mut out = Vec::with_capacity(12 + buf.len() + tag.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        // `buf` holds ciphertext now: the plaintext copy was overwritten in place.
        out
    }

    /// The plaintext of a value made by [`FieldKey::seal`] with the same associated data.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < 12 + 16 {
            return Err(CryptoError::Unwrap);
        }
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&sealed[..12]);
        let mut buf = Zeroizing::new(sealed[12..].to_vec());
        let len =
            crate::aead::open(&self.key, nonce, aad, &mut buf).map_err(|_| CryptoError::Unwrap)?;
        buf.truncate(len);
        Ok(buf)
    }
}

pub struct MacKey {
    // aws-lc-rs keeps the HMAC state in memory it cleanses on drop.
    key: hmac::Key,
}

impl MacKey {
    fn new(bytes: &[u8; 32]) -> MacKey {
        MacKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// HMAC-SHA256 of `data`.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&self.key, data).as_ref());
        out
    }

    /// Whether `tag` is the MAC of `data`, compared in constant time.
    pub fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        crate::token::ct_eq(&self.mac(data), tag)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn field_values_round_trip_and_bind_to_their_row() {
        let root = RootKey::generate();
        let k = root.field_key("totp");
        let sealed = k.seal(b"usr_1", b"JBSWY3DPEHPK3PXP");
        assert_eq!(
            k.open(b"usr_1", &sealed).unwrap().as_slice(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(!contains(&sealed, b"JBSWY3DPEHPK3PXP"));
        assert!(k.open(b"usr_2", &sealed).is_err(), "copied to another row");
        let mut tampered = sealed.clone();
        tampered[14] ^= 1;
        assert!(k.open(b"usr_1", &tampered).is_err());
        assert!(
            root.field_key("other").open(b"usr_1", &sealed).is_err(),
            "purposes are separate"
        );
        assert!(k.open(b"usr_1", &sealed[..20]).is_err());
        assert_ne!(
            k.seal(b"usr_1", b"x"),
            k.seal(b"usr_1", b"x"),
            "fresh nonce each time"
        );
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn key_types_are_send_and_sync() {
        assert_send_sync::<RootKey>();
        assert_send_sync::<Kek>();
        assert_send_sync::<DataKey>();
        assert_send_sync::<MacKey>();
    }

    #[test]
    fn root_key_parsing() {
        let hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = RootKey::from_hex(&format!("  {hex64}\n")).unwrap();
        let b = RootKey::from_bytes(&hex::decode(hex64).unwrap()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        assert!(RootKey::from_hex(&hex64[..62]).is_err());
        assert!(RootKey::from_hex(&format!("{}zz", &hex64[..62])).is_err());
        assert!(RootKey::from_bytes(&[0u8; 31]).is_err());
        assert!(RootKey::from_bytes(&[0u8; 33]).is_err());
        // The error must not echo the secret input.
        let err = RootKey::from_hex(&format!("{hex64}00")).err().unwrap();
        assert!(!err.to_string().contains("0011"));
        assert_ne!(
            RootKey::generate().fingerprint(),
            RootKey::generate().fingerprint()
        );
    }

    #[test]
    fn kek_wrap_round_trip_and_refusals() {
        let root = RootKey::generate();
        let kek = Kek::generate(3);
        let wrapped = root.wrap_kek(&kek);
        assert_eq!(wrapped.len(), 60);
        let back = root.unwrap_kek(3, &wrapped).unwrap();
        assert_eq!(back.version(), 3);
        assert_eq!(back.secret.expose(), kek.secret.expose());
        // Two wraps of the same key differ (random nonce).
        assert_ne!(root.wrap_kek(&kek), wrapped);

        assert!(matches!(
            root.unwrap_kek(4, &wrapped),
            Err(CryptoError::Unwrap)
        ));
        assert!(matches!(
            RootKey::generate().unwrap_kek(3, &wrapped),
            Err(CryptoError::Unwrap)
        ));
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x01;
            assert!(matches!(root.unwrap_kek(3, &bad), Err(CryptoError::Unwrap)));
        }
        assert!(matches!(
            root.unwrap_kek(3, &wrapped[..59]),
            Err(CryptoError::Unwrap)
        ));
    }

    #[test]
    fn dek_wrap_round_trip_and_refusals() {
        let kek = Kek::generate(1);
        let dek = DataKey::generate();
        let wrapped = kek.wrap_dek("ast_1", &dek);
        let back = kek.unwrap_dek("ast_1", &wrapped).unwrap();
        assert_eq!(back.secret.expose(), dek.secret.expose());

        // Copied to another object.
        assert!(matches!(
            kek.unwrap_dek("ast_2", &wrapped),
            Err(CryptoError::Unwrap)
        ));
        // Same key bytes under another version number.
        let relabelled = Kek::from_bytes(2, kek.secret.expose());
        assert!(matches!(
            relabelled.unwrap_dek("ast_1", &wrapped),
            Err(CryptoError::Unwrap)
        ));
        // Another KEK.
        assert!(matches!(
            Kek::generate(1).unwrap_dek("ast_1", &wrapped),
            Err(CryptoError::Unwrap)
        ));
        let mut bad = wrapped.clone();
        bad[20] ^= 0x80;
        assert!(matches!(
            kek.unwrap_dek("ast_1", &bad),
            Err(CryptoError::Unwrap)
        ));
        // Length-prefixing keeps ("ab","c") apart from ("a","bc")-style collisions in the AAD.
        assert_ne!(dek_aad(1, "ab"), dek_aad(1, "a"));
    }

    #[test]
    fn derived_keys_are_independent_per_purpose() {
        let root = RootKey::generate();
        let a = root.derive("share-link");
        let b = root.derive("csrf");
        let tag = a.mac(b"payload");
        assert!(a.verify(b"payload", &tag));
        assert!(!a.verify(b"payloae", &tag));
        assert!(!a.verify(b"payload", &tag[..31]));
        assert!(!b.verify(b"payload", &tag));
        // Deterministic: the same root and purpose give the same key.
        assert_eq!(root.derive("csrf").mac(b"x"), b.mac(b"x"));
        assert!(
            !RootKey::generate()
                .derive("share-link")
                .verify(b"payload", &tag)
        );
    }

    #[test]
    fn key_file_permissions_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let created = RootKey::create_file(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
        let loaded = RootKey::load_file(&path).unwrap();
        assert_eq!(loaded.fingerprint(), created.fingerprint());

        // Never overwrite an existing key.
        assert!(matches!(
            RootKey::create_file(&path),
            Err(CryptoError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists
        ));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        match RootKey::load_file(&path) {
            Err(CryptoError::KeyFilePermissions { path: p, mode }) => {
                assert_eq!(p, path);
                assert_eq!(mode, 0o644);
            }
            other => panic!("expected a permissions refusal, got {:?}", other.err()),
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            RootKey::load_file(&path),
            Err(CryptoError::KeyFilePermissions { .. })
        ));
    }

    #[test]
    fn key_file_raw_bytes_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw.key");
        let bytes = [7u8; 32];
        write_private(&raw, &bytes);
        assert_eq!(
            RootKey::load_file(&raw).unwrap().fingerprint(),
            RootKey::from_bytes(&bytes).unwrap().fingerprint()
        );
        let bad = dir.path().join("bad.key");
        write_private(&bad, b"not a key\n");
        assert!(matches!(
            RootKey::load_file(&bad),
            Err(CryptoError::KeyFileInvalid(_))
        ));
        assert!(matches!(
            RootKey::load_file(&dir.path().join("missing.key")),
            Err(CryptoError::Io(_))
        ));
    }

    fn write_private(path: &Path, content: &[u8]) {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        f.write_all(content).unwrap();
    }
}
