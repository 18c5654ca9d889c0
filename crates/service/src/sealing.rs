//! The sealer the store seals metadata with (names, filenames, emails, addresses): AES-256-GCM
//! under a root-derived field key, and HMAC-SHA256 under a root-derived key for blind indexes.
//! The store decides what is sealed and binds each value to its row; this only holds the keys.

use std::sync::Arc;

use strongroom_crypto::keys::{FieldKey, MacKey, RootKey};
use strongroom_store::FieldSealer;

/// Field-key purpose of sealed metadata. Frozen: changing it makes every sealed value unreadable.
const SEAL_PURPOSE: &str = "metadata";
/// Key purpose of blind indexes. Frozen: changing it breaks every lookup by email or name.
const INDEX_PURPOSE: &str = "metadata blind index";

struct MetadataSealer {
    seal: FieldKey,
    index: MacKey,
}

impl FieldSealer for MetadataSealer {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.seal.seal(aad, plaintext)
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.seal.open(aad, sealed).ok().map(|p| p.to_vec())
    }

    fn index(&self, data: &[u8]) -> [u8; 32] {
        self.index.mac(data)
    }

    fn new_person_key(&self) -> [u8; 32] {
        strongroom_crypto::token::random_bytes()
    }

    fn seal_with(&self, key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        FieldKey::from_bytes(key).seal(aad, plaintext)
    }

    fn open_with(&self, key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        FieldKey::from_bytes(key)
            .open(aad, sealed)
            .ok()
            .map(|p| p.to_vec())
    }
}

/// The sealer for a store whose rows this root key protects.
pub fn metadata_sealer(root: &RootKey) -> Arc<dyn FieldSealer> {
    Arc::new(MetadataSealer {
        seal: root.field_key(SEAL_PURPOSE),
        index: root.derive(INDEX_PURPOSE),
    })
}
