//! Reading a backup back: `backup verify` (every object authenticated, the first bad one named)
//! and the database half of `backup restore`. Both need only the destination and the root key:
//! no running instance, no database of the source.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;
use strongroom_blob::{Batch, BlobError, Regions, read_range, verify_copy};
use strongroom_crypto::keys::{Kek, RootKey};
use strongroom_domain::{BackupId, BlobId, OrgId, Timestamp, UserId};
use strongroom_store::{SCHEMA_VERSION, Store, Value, Values};

use super::format::{
    BackupKeys, BlobEntry, DB_FORMAT, FORMAT, KeySet, Line, Manifest, db_object, keys_object,
    manifest_object,
};
use super::{Destination, OnProgress, PARALLEL_COPIES, Progress, copy_object, read_object};
use crate::{Result, ServiceError};

/// Rows loaded per transaction during a restore.
const LOAD_BATCH: usize = 500;

/// What `backup verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The backup.
    pub id: BackupId,
    /// Where it is.
    pub destination: String,
    /// Whether every object read back authentic and whole.
    pub ok: bool,
    /// Objects checked (the manifest, the key set, the snapshot and each blob).
    pub objects: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Blobs purged since the backup was taken (no key any more: unreadable by design).
    pub shredded: u64,
    /// The first object that failed, and how.
    pub first_bad: Option<BadObject>,
}

/// An object of a backup that failed verification.
#[derive(Debug, Clone, Serialize)]
pub struct BadObject {
    /// Its name at the destination.
    pub object: String,
    /// What is wrong with it.
    pub problem: String,
}

/// What the database half of a restore loaded.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredDatabase {
    /// The backup.
    pub id: BackupId,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Rows loaded.
    pub rows: u64,
    /// Assets left out because they were purged after the backup was taken.
    pub shredded_assets: u64,
    /// People erased after the backup was taken: to erase again, through the service
    /// (`Identity::erase_again`), once the database is restored and migrated.
    pub erased_people: Vec<UserId>,
    /// Organizations deleted after the backup was taken: to delete again, through the service
    /// (`Tenancy::delete_org_again`), once the database is restored.
    pub deleted_orgs: Vec<OrgId>,
}

fn bad(object: impl Into<String>, problem: impl Into<String>) -> BadObject {
    BadObject {
        object: object.into(),
        problem: problem.into(),
    }
}

/// Reads and opens the manifest and the key set, or names which one failed.
async fn open_backup(
    keys: &BackupKeys,
    dest: &Destination,
    id: &BackupId,
) -> Result<std::result::Result<(Manifest, KeySet), BadObject>> {
    let name = manifest_object(id);
    let sealed = match read_object(&*dest.store, &name).await {
        Ok(b) => b,
        Err(ServiceError::Blob(BlobError::NotFound)) => {
            return Err(ServiceError::NotFound("backup"));
        }
        Err(e) => return Err(e),
    };
    let Some(manifest) = keys.open_manifest(&name, &sealed) else {
        return Ok(Err(bad(
            name,
            "not authentic: altered, or sealed under another root key",
        )));
    };
    let kname = keys_object(id);
    let keyset = match read_object(&*dest.store, &kname).await {
        Ok(sealed) => keys.open_keyset(id, &sealed),
        Err(ServiceError::Blob(BlobError::NotFound)) => {
            return Ok(Err(bad(kname, "missing")));
        }
        Err(e) => return Err(e),
    };
    match keyset {
        Some(k) => Ok(Ok((manifest, k))),
        None => Ok(Err(bad(kname, "not authentic: altered"))),
    }
}

/// Streams the snapshot's lines to `each`, checking the header and the final row count.
/// A failure to read or authenticate is returned as the snapshot object's problem.
async fn read_snapshot(
    keys: &BackupKeys,
    dest: &Destination,
    manifest: &Manifest,
    mut each: impl AsyncFnMut(Line) -> Result<()>,
) -> Result<std::result::Result<(), String>> {
    let id = &manifest.id;
    let mut stream = Box::pin(read_range(
        Arc::clone(&dest.store),
        db_object(id),
        keys.snapshot_key(id),
        manifest.db_size,
        0,
        manifest.db_size,
    ));
    let mut pending: Vec<u8> = Vec::new();
    let mut first = true;
    let mut rows = 0_u64;
    let mut ended = false;
    while let Some(piece) = stream.next().await {
        let piece = match piece {
            Ok(p) => p,
            Err(BlobError::NotFound) => return Ok(Err("missing".into())),
            Err(BlobError::Crypto(_)) => {
                return Ok(Err(
                    "failed its integrity check (altered or truncated)".into()
                ));
            }
            Err(e) => return Err(e.into()),
        };
        pending.extend_from_slice(&piece);
        let mut start = 0;
        while let Some(nl) = pending[start..].iter().position(|&b| b == b'\n') {
            let text = &pending[start..start + nl];
            start += nl + 1;
            let Ok(parsed) = serde_json::from_slice::<Line>(text) else {
                return Ok(Err("holds a line that is not part of the format".into()));
            };
            if first {
                match &parsed {
                    Line::Header {
                        format, version, ..
                    } if format == DB_FORMAT && *version == FORMAT => {}
                    _ => return Ok(Err("does not start with the snapshot header".into())),
                }
                first = false;
                continue;
            }
            match &parsed {
                Line::Row(_) => rows += 1,
                Line::End { rows: n, .. } => {
                    if *n != rows {
                        return Ok(Err(format!("ends after {rows} rows but says {n}")));
                    }
                    ended = true;
                }
                _ => {}
            }
            each(parsed).await?;
        }
        pending.drain(..start);
    }
    if !ended || !pending.is_empty() {
        return Ok(Err("ends before its last line".into()));
    }
    Ok(Ok(()))
}

/// Opens backup `id`'s manifest and key set under `root` (a quick check before a restore
/// touches anything); an error names what does not open.
pub async fn check(root: &RootKey, dest: &Destination, id: &BackupId) -> Result<CheckedBackup> {
    let keys = BackupKeys::derive(root);
    match open_backup(&keys, dest, id).await? {
        Ok((m, _)) if m.schema_version > SCHEMA_VERSION => Err(newer(id, m.schema_version)),
        Ok((m, _)) => Ok(CheckedBackup {
            created_at: Timestamp::from_millis(m.created_at).rfc3339(),
            schema_version: m.schema_version,
        }),
        Err(b) => Err(ServiceError::Invalid(format!(
            "backup {id} cannot be restored: {} is {}",
            b.object, b.problem
        ))),
    }
}

/// What [`check`] found in a backup's manifest.
#[derive(Debug, Clone)]
pub struct CheckedBackup {
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// The schema version of its snapshot: restore into a database at this version, then let
    /// the migrations bring it up to date (sealing the metadata of a snapshot older than 17).
    pub schema_version: i64,
}

fn newer(id: &BackupId, version: i64) -> ServiceError {
    ServiceError::Invalid(format!(
        "backup {id} was made by a newer Strongroom (schema {version}, this one has {SCHEMA_VERSION}): restore it with that version"
    ))
}

/// `strongroom backup verify`: reads back every object of backup `id` and authenticates it —
/// the manifest and key set (AES-GCM), the snapshot (every chunk, and its row count), and each
/// blob (its size, and every chunk under its data key) — stopping at the first bad one.
pub async fn verify(
    root: &RootKey,
    dest: &Destination,
    id: &BackupId,
    progress: OnProgress<'_>,
) -> Result<VerifyReport> {
    let keys = BackupKeys::derive(root);
    let mut report = VerifyReport {
        id: id.clone(),
        destination: dest.url.clone(),
        ok: false,
        objects: 0,
        bytes: 0,
        shredded: 0,
        first_bad: None,
    };
    let (manifest, keyset) = match open_backup(&keys, dest, id).await? {
        Ok(found) => found,
        Err(b) => {
            report.first_bad = Some(b);
            return Ok(report);
        }
    };
    report.objects = 2;

    // The snapshot, keeping the KEKs its blob keys are wrapped with.
    let mut keks: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut table = String::new();
    let mut cols = (0, 0);
    let read = read_snapshot(&keys, dest, &manifest, async |l| {
        match l {
            Line::Table { table: t, columns } => {
                let at = |n: &str| columns.iter().position(|c| c == n).unwrap_or(usize::MAX);
                cols = (at("version"), at("wrapped"));
                table = t;
            }
            Line::Row(row) if table == "keks" => {
                if let (Some(Value::Int(v)), Some(Value::Bytes { b })) =
                    (row.get(cols.0), row.get(cols.1))
                    && let Ok(v) = u32::try_from(*v)
                {
                    keks.insert(v, b.clone());
                }
            }
            _ => {}
        }
        Ok(())
    })
    .await?;
    if let Err(problem) = read {
        report.first_bad = Some(bad(db_object(id), problem));
        return Ok(report);
    }
    report.objects += 1;
    report.bytes += manifest.db_stored_size;
    let mut unwrapped: BTreeMap<u32, Kek> = BTreeMap::new();
    for (v, wrapped) in &keks {
        match root.unwrap_kek(*v, wrapped) {
            Ok(k) => {
                unwrapped.insert(*v, k);
            }
            Err(_) => {
                report.first_bad = Some(bad(
                    db_object(id),
                    format!("key-encryption key {v} does not unwrap under this root key"),
                ));
                return Ok(report);
            }
        }
    }

    let total = manifest.blobs.len() as u64;
    for (i, b) in manifest.blobs.iter().enumerate() {
        progress(Progress {
            phase: "blobs",
            done: i as u64,
            total,
            bytes: report.bytes,
        });
        let Some(key) = keyset.keys.get(&b.id) else {
            report.shredded += 1;
            continue;
        };
        match dest.store.len(&b.id).await {
            Ok(n) if n == b.stored_size => {}
            Ok(n) => {
                report.first_bad = Some(bad(
                    &b.id,
                    format!("is {n} bytes, the backup recorded {}", b.stored_size),
                ));
                return Ok(report);
            }
            Err(BlobError::NotFound) => {
                report.first_bad = Some(bad(&b.id, "missing"));
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        }
        let dek = match unwrapped
            .get(&key.kek)
            .map(|k| k.unwrap_dek(&b.id, &key.wrapped))
        {
            Some(Ok(d)) => d,
            _ => {
                report.first_bad = Some(bad(
                    keys_object(id),
                    format!("the data key of {} does not unwrap", b.id),
                ));
                return Ok(report);
            }
        };
        match verify_copy(&*dest.store, &b.id, 0, &dek, b.size).await {
            Ok(()) => {}
            Err(BlobError::Crypto(_)) => {
                report.first_bad = Some(bad(
                    &b.id,
                    "failed its integrity check (altered, truncated or swapped)",
                ));
                return Ok(report);
            }
            Err(BlobError::NotFound) => {
                report.first_bad = Some(bad(&b.id, "missing"));
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        }
        report.objects += 1;
        report.bytes += b.stored_size;
    }
    progress(Progress {
        phase: "blobs",
        done: total,
        total,
        bytes: report.bytes,
    });
    report.ok = true;
    Ok(report)
}

/// The manifest and key set of backup `id`, for either half of a restore: an object that is
/// missing or does not open stops it, named.
async fn open_for_restore(
    keys: &BackupKeys,
    dest: &Destination,
    id: &BackupId,
) -> Result<(Manifest, KeySet)> {
    open_backup(keys, dest, id).await?.map_err(|b| {
        ServiceError::Invalid(format!(
            "backup {id} cannot be restored: {} is {}",
            b.object, b.problem
        ))
    })
}

/// The blob half of `strongroom backup restore`: copies the blobs of backup `id` that its key
/// set still holds a key for (the others were purged since) into `blobs`, each into its region,
/// as one batch: under temporary names until [`publish_restored`] names them all, so it can run
/// beside [`restore_database`], and a restore that fails in either half leaves no object behind
/// (the batch removes its files when dropped). Returns (objects, bytes).
pub async fn restore_blobs(
    root: &RootKey,
    blobs: &Regions,
    dest: &Destination,
    id: &BackupId,
    batch: &Batch,
    progress: OnProgress<'_>,
) -> Result<(u64, u64)> {
    let keys = BackupKeys::derive(root);
    let (manifest, keyset) = open_for_restore(&keys, dest, id).await?;
    let wanted: Vec<&BlobEntry> = manifest
        .blobs
        .iter()
        .filter(|b| keyset.keys.contains_key(&b.id))
        .collect();
    let total = wanted.len() as u64;
    let jobs: Vec<_> = wanted
        .into_iter()
        .map(|b| async move {
            let target = blobs.in_region(&b.region)?;
            copy_object(&*dest.store, &*target, &b.id, batch)
                .await?
                .ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "backup {id} lacks blob {}: run `strongroom backup verify {id}`",
                        b.id
                    ))
                })
        })
        .collect();
    // Several at once, as the backup copies them: one object's reads overlap another's writes.
    let mut copies = futures_util::stream::iter(jobs).buffer_unordered(PARALLEL_COPIES);
    let (mut done, mut bytes) = (0, 0);
    while let Some(copied) = copies.next().await {
        bytes += copied?;
        done += 1;
        progress(Progress {
            phase: "blobs",
            done,
            total,
            bytes,
        });
    }
    Ok((done, bytes))
}

/// Names the objects [`restore_blobs`] copied into `batch`, region by region, once their bytes
/// are flushed: called after both halves of a restore succeeded.
pub async fn publish_restored(blobs: &Regions, batch: &Batch) -> Result<()> {
    for region in blobs.names() {
        blobs.in_region(region)?.publish(batch).await?;
    }
    Ok(())
}

/// The database half of `strongroom backup restore`: loads backup `id` into `store`, which
/// must be empty (a new SQLite file or an empty PostgreSQL database, either engine whatever the
/// backup was taken from). Data keys come from the key set; a blob without one was purged after
/// the backup was taken, and its rows (asset, renditions, links) are left out.
pub async fn restore_database(
    store: &Store,
    root: &RootKey,
    dest: &Destination,
    id: &BackupId,
    progress: OnProgress<'_>,
) -> Result<RestoredDatabase> {
    if !store.is_empty().await? {
        return Err(ServiceError::Conflict(
            "the target database is not empty: restore onto a new data directory or an empty database".into(),
        ));
    }
    let keys = BackupKeys::derive(root);
    let (manifest, keyset) = open_for_restore(&keys, dest, id).await?;
    if manifest.schema_version > SCHEMA_VERSION {
        return Err(newer(id, manifest.schema_version));
    }
    let target = store.schema_version().await?;
    if target != manifest.schema_version {
        // Rows are loaded as the snapshot holds them: into a later schema they would skip the
        // migrations in between (the sealing of metadata among them).
        return Err(ServiceError::Conflict(format!(
            "backup {id} holds schema {}, but the target database is already at schema {target}: \
             restore into a new, empty database",
            manifest.schema_version
        )));
    }
    let mut table = String::new();
    let mut columns: Vec<String> = Vec::new();
    let mut batch: Vec<Values> = Vec::new();
    let mut blob_ids: Vec<String> = Vec::new();
    let mut blob_id_col = None;
    let mut rows = 0_u64;
    let read = read_snapshot(&keys, dest, &manifest, async |l| {
        match l {
            Line::Table {
                table: t,
                columns: c,
            } => {
                if !batch.is_empty() {
                    store.load_rows(&table, &columns, &batch).await?;
                    batch.clear();
                }
                blob_id_col = (t == "blobs")
                    .then(|| c.iter().position(|n| n == "id"))
                    .flatten();
                table = t;
                columns = c;
            }
            Line::Row(row) => {
                if let Some(Value::Text(b)) = blob_id_col.and_then(|i| row.get(i)) {
                    blob_ids.push(b.clone());
                }
                batch.push(row);
                rows += 1;
                if batch.len() >= LOAD_BATCH {
                    store.load_rows(&table, &columns, &batch).await?;
                    batch.clear();
                    progress(Progress {
                        phase: "database",
                        done: rows,
                        total: manifest.rows,
                        bytes: 0,
                    });
                }
            }
            Line::End { .. } => {
                if !batch.is_empty() {
                    store.load_rows(&table, &columns, &batch).await?;
                    batch.clear();
                }
            }
            Line::Header { .. } => {}
        }
        Ok(())
    })
    .await?;
    if let Err(problem) = read {
        return Err(ServiceError::Invalid(format!(
            "backup {id} cannot be restored: {} {problem}; nothing usable was restored, start again on an empty target",
            db_object(id)
        )));
    }
    progress(Progress {
        phase: "database",
        done: rows,
        total: manifest.rows,
        bytes: 0,
    });
    let mut shredded = Vec::new();
    let mut keys = Vec::with_capacity(blob_ids.len());
    for b in &blob_ids {
        match keyset.keys.get(b) {
            Some(k) => keys.push((b.as_str(), k.kek, k.wrapped.as_slice())),
            None => {
                shredded.push(BlobId::parse(b).map_err(|e| ServiceError::Internal(e.to_string()))?)
            }
        }
    }
    // A transaction per batch of keys, not one commit (and fsync) per blob.
    for chunk in keys.chunks(LOAD_BATCH) {
        store.restore_data_keys(chunk).await?;
    }
    let shredded_assets = if shredded.is_empty() {
        0
    } else {
        store.drop_shredded(&shredded).await?
    };
    for (user, key) in &keyset.persons {
        store.restore_person_key(user, key).await?;
    }

    Ok(RestoredDatabase {
        id: id.clone(),
        created_at: Timestamp::from_millis(manifest.created_at).rfc3339(),
        rows,
        shredded_assets,
        erased_people: keyset
            .erased
            .iter()
            .filter_map(|u| UserId::parse(u).ok())
            .collect(),
        deleted_orgs: keyset
            .deleted_orgs
            .iter()
            .filter_map(|o| OrgId::parse(o).ok())
            .collect(),
    })
}
