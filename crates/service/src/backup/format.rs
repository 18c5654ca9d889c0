//! The backup format, version 1 (see `docs/backups.md`): object names at a destination, the
//! sealed manifest, the sealed key set, and the lines of the database snapshot.
//!
//! ```text
//! manifest-<backup id>  AES-256-GCM (root-derived key, aad = object name) of the manifest JSON
//! keys-<backup id>      AES-256-GCM (root-derived key, aad = object name) of the key set JSON:
//!                       the wrapped data key of every blob of the backup; rewritten after a purge
//! db-<backup id>        the snapshot's JSON lines, in the blob format under a data key derived
//!                       from the root key and the backup id
//! <blob id>             a blob's ciphertext, byte for byte as stored (shared between backups)
//! ```
//!
//! The manifest is written last: a backup without one (cut off halfway) is never listed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strongroom_crypto::keys::{DataKey, FieldKey, MacKey, RootKey};
use strongroom_domain::BackupId;
use strongroom_store::Value;

use crate::{Result, ServiceError};

/// Format version this code writes and reads.
pub(crate) const FORMAT: u32 = 1;
/// HKDF purposes. Frozen: changing one makes every backup unreadable.
const MANIFEST_PURPOSE: &str = "strongroom backup manifest v1";
const KEYSET_PURPOSE: &str = "strongroom backup keys v1";
const DATA_PURPOSE: &str = "strongroom backup data v1";

/// The keys of the backup format, all derived from the root key.
pub(crate) struct BackupKeys {
    manifest: FieldKey,
    keyset: FieldKey,
    data: MacKey,
}

impl BackupKeys {
    pub(crate) fn derive(root: &RootKey) -> BackupKeys {
        BackupKeys {
            manifest: root.field_key(MANIFEST_PURPOSE),
            keyset: root.field_key(KEYSET_PURPOSE),
            data: root.derive(DATA_PURPOSE),
        }
    }

    /// The data key of one backup's database snapshot (one object per key: never reused).
    pub(crate) fn snapshot_key(&self, id: &BackupId) -> DataKey {
        DataKey::from_bytes(&self.data.mac(id.as_str().as_bytes()))
    }

    pub(crate) fn seal_manifest(&self, m: &Manifest) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(m).map_err(internal)?;
        Ok(self.manifest.seal(manifest_object(&m.id).as_bytes(), &json))
    }

    /// Opens a manifest; `None` when it is not authentic (altered, misplaced, or sealed under
    /// another root key).
    pub(crate) fn open_manifest(&self, object: &str, sealed: &[u8]) -> Option<Manifest> {
        let json = self.manifest.open(object.as_bytes(), sealed).ok()?;
        let m: Manifest = serde_json::from_slice(&json).ok()?;
        (manifest_object(&m.id) == object && m.format == FORMAT).then_some(m)
    }

    pub(crate) fn seal_keyset(&self, id: &BackupId, keys: &KeySet) -> Result<Vec<u8>> {
        let json = zeroize::Zeroizing::new(serde_json::to_vec(keys).map_err(internal)?);
        Ok(self.keyset.seal(keys_object(id).as_bytes(), &json))
    }

    pub(crate) fn open_keyset(&self, id: &BackupId, sealed: &[u8]) -> Option<KeySet> {
        let json = self.keyset.open(keys_object(id).as_bytes(), sealed).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

pub(crate) fn manifest_object(id: &BackupId) -> String {
    format!("manifest-{id}")
}

pub(crate) fn keys_object(id: &BackupId) -> String {
    format!("keys-{id}")
}

pub(crate) fn db_object(id: &BackupId) -> String {
    format!("db-{id}")
}

/// The backup id a manifest object is named after, if `object` is one.
pub(crate) fn manifest_id(object: &str) -> Option<BackupId> {
    object
        .strip_prefix("manifest-")
        .and_then(|id| BackupId::parse(id).ok())
}

/// The backup id of a snapshot or key set object, if `object` is one.
pub(crate) fn part_id(object: &str) -> Option<BackupId> {
    object
        .strip_prefix("db-")
        .or_else(|| object.strip_prefix("keys-"))
        .and_then(|id| BackupId::parse(id).ok())
}

/// What one backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) format: u32,
    pub(crate) id: BackupId,
    /// Milliseconds since the epoch.
    pub(crate) created_at: i64,
    /// The schema version of the snapshot.
    pub(crate) schema_version: i64,
    /// The engine it was taken from (`sqlite`, `postgres`).
    pub(crate) source: String,
    /// The snapshot object: ciphertext bytes, plaintext bytes, rows.
    pub(crate) db_stored_size: u64,
    pub(crate) db_size: u64,
    pub(crate) rows: u64,
    /// Every blob the snapshot's rows refer to.
    pub(crate) blobs: Vec<BlobEntry>,
    /// Bytes of blob ciphertext copied by this backup (the rest were there already).
    pub(crate) new_bytes: u64,
}

impl Manifest {
    /// Stored bytes the backup refers to: its snapshot and every blob.
    pub(crate) fn bytes(&self) -> u64 {
        self.db_stored_size + self.blobs.iter().map(|b| b.stored_size).sum::<u64>()
    }
}

/// One blob of a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BlobEntry {
    pub(crate) id: String,
    pub(crate) size: u64,
    pub(crate) stored_size: u64,
    pub(crate) region: String,
}

/// The keys a purge or an erasure must be able to destroy, kept apart from the immutable
/// snapshot: the data keys of a backup's blobs (blob id -> KEK version, wrapped data key), and
/// the people's keys (user id -> the sealed `users.person_key`, which seals the personal part
/// of their audit events).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct KeySet {
    pub(crate) keys: BTreeMap<String, WrappedKey>,
    /// Since schema 19 (absent from older key sets).
    #[serde(default)]
    pub(crate) persons: BTreeMap<String, String>,
    /// People erased since the backup: their keys were taken out, and a restore erases them
    /// again (the snapshot still holds their account as it was).
    #[serde(default)]
    pub(crate) erased: std::collections::BTreeSet<String>,
    /// Organizations deleted since the backup: a restore deletes them again.
    #[serde(default)]
    pub(crate) deleted_orgs: std::collections::BTreeSet<String>,
}

impl KeySet {
    /// Takes out the keys of purged blobs and erased people, and notes deleted organizations;
    /// whether anything changed.
    pub(crate) fn forget(
        &mut self,
        shredded: &std::collections::HashSet<String>,
        erased: &std::collections::HashSet<String>,
        deleted_orgs: &std::collections::HashSet<String>,
    ) -> bool {
        let noted = self.deleted_orgs.len();
        self.deleted_orgs.extend(deleted_orgs.iter().cloned());
        let before = (self.keys.len(), self.persons.len(), noted);
        self.keys.retain(|k, _| !shredded.contains(k));
        let gone: Vec<String> = self
            .persons
            .keys()
            .filter(|u| erased.contains(*u))
            .cloned()
            .collect();
        for u in gone {
            self.persons.remove(&u);
            self.erased.insert(u);
        }
        before != (self.keys.len(), self.persons.len(), self.deleted_orgs.len())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WrappedKey {
    pub(crate) kek: u32,
    #[serde(with = "strongroom_store::b64")]
    pub(crate) wrapped: Vec<u8>,
}

/// One line of the snapshot (JSON lines): a header, then each table's columns followed by its
/// rows, then an end line with the row count.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Line {
    /// First: an array is only ever a row (a struct variant would also accept one).
    Row(Vec<Value>),
    Header {
        format: String,
        version: u32,
        schema_version: i64,
    },
    Table {
        table: String,
        columns: Vec<String>,
    },
    End {
        end: bool,
        rows: u64,
    },
}

/// The header line's `format`.
pub(crate) const DB_FORMAT: &str = "strongroom-backup-db";
