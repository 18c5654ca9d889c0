//! Backups (F17): a consistent snapshot of the database with every blob it names, to a
//! destination (a folder or an S3 bucket); listing, pruning, verification and restore; and the
//! pass that carries each purge into every earlier backup (see `format` and `docs/backups.md`).
//!
//! - A backup is one database snapshot (one read transaction: rows written during the backup
//!   are not in it, and every row in it has its blobs), written as portable JSON lines, sealed
//!   in the blob format; then the blobs the snapshot names, copied as stored ciphertext, each
//!   only if the destination lacks it (blob ids are never reused, so an object present is the
//!   same object); then the key set; then the manifest, last, so a backup cut off halfway is
//!   never listed.
//! - Data keys are not in the snapshot: the key set holds them, and the shred pass rewrites
//!   every key set without the blobs purged since. A restore of an older backup then finds no
//!   key for a purged blob and drops its rows: its content is unreadable in every backup.

pub(crate) mod format;
mod prune;
mod restore;
mod status;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use strongroom_blob::{BackendSpec, Batch, BlobError, BlobStore, EncryptedWriter};
use strongroom_crypto::keys::RootKey;
use strongroom_domain::{BackupId, Timestamp};
use strongroom_store::{BACKUP_TABLES, SCHEMA_VERSION, Value};

pub use prune::{PRUNE_GRACE, PruneReport, ShredReport};
pub use restore::{
    BadObject, CheckedBackup, RestoredDatabase, VerifyReport, check, publish_restored,
    restore_blobs, restore_database, verify,
};
pub use status::{BackupStatus, OwnerBackupView, RunBrief, RunView};

use self::format::{
    BackupKeys, BlobEntry, DB_FORMAT, FORMAT, KeySet, Line, Manifest, WrappedKey, db_object,
    keys_object, manifest_id, manifest_object,
};
use crate::ctx::Ctx;
use crate::{Result, ServiceError};

/// Blob copies in flight at once.
pub(crate) const PARALLEL_COPIES: usize = 4;
/// Bytes read per storage request while copying.
const COPY_PIECE: usize = 1 << 20;
/// Snapshot bytes buffered before they are sealed and written.
const FLUSH_AT: usize = 1 << 20;
/// Where backups go: a folder (`fs:///path`) or an S3 bucket (`s3://bucket/prefix?...`).
#[derive(Clone)]
pub struct Destination {
    /// The URL as configured (no credential is ever in it).
    pub url: String,
    store: Arc<dyn BlobStore>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Destination {
    /// Opens a destination from its URL. S3 credentials come from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (or a secret file, like a storage backend's).
    pub fn open(
        url: &str,
        access_key_id: Option<String>,
        secret_access_key_file: Option<std::path::PathBuf>,
    ) -> Result<Destination> {
        // Credentials are for S3 destinations only; a folder next to them takes none.
        let s3 = url.starts_with("s3://");
        let spec = BackendSpec {
            name: "backup".into(),
            url: url.to_owned(),
            access_key_id: access_key_id.filter(|_| s3),
            secret_access_key_file: secret_access_key_file.filter(|_| s3),
        };
        let store = strongroom_blob::open_backend(&spec)
            .map_err(|e| ServiceError::Invalid(format!("backup destination {url}: {e}")))?;
        Ok(Destination {
            url: url.to_owned(),
            store,
        })
    }

    /// A destination over an already opened store (tests, and the blob crate's own stores).
    pub fn from_store(url: impl Into<String>, store: Arc<dyn BlobStore>) -> Destination {
        Destination {
            url: url.into(),
            store,
        }
    }
}

/// The `[backup]` settings.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Where scheduled backups go, and the default of every `backup` command.
    pub destinations: Vec<Destination>,
    /// How often the server takes a backup; `None`: only by hand.
    pub interval: Option<Duration>,
    /// Prune keeps the newest backup of each of this many recent days...
    pub keep_daily: u32,
    /// ...and of each of this many recent weeks.
    pub keep_weekly: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            destinations: Vec::new(),
            interval: None,
            keep_daily: 7,
            keep_weekly: 4,
        }
    }
}

/// How far a long backup, verification or restore has got.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// `database` or `blobs`.
    pub phase: &'static str,
    /// Items done in this phase.
    pub done: u64,
    /// Items in this phase.
    pub total: u64,
    /// Bytes moved so far in this phase.
    pub bytes: u64,
}

/// A progress callback.
pub type OnProgress<'a> = &'a (dyn Fn(Progress) + Send + Sync);

/// What `backup create` made.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// The backup's id.
    pub id: BackupId,
    /// When its snapshot was taken (RFC 3339).
    pub created_at: String,
    /// Where it is.
    pub destination: String,
    /// Objects it refers to: the snapshot and every blob.
    pub objects: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Bytes this backup wrote (the snapshot, the key set and the blobs the destination lacked).
    pub new_bytes: u64,
    /// Database rows in the snapshot.
    pub rows: u64,
}

/// One backup at a destination, as `backup list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupItem {
    /// The backup's id.
    pub id: BackupId,
    /// When its snapshot was taken (RFC 3339).
    pub created_at: String,
    /// Where it is.
    pub destination: String,
    /// Stored bytes it refers to.
    pub bytes: u64,
    /// Objects it refers to.
    pub objects: u64,
}

/// Backups of this instance.
pub struct Backups {
    ctx: Arc<Ctx>,
    keys: BackupKeys,
}

impl Backups {
    pub(crate) fn new(ctx: Arc<Ctx>, root: &RootKey) -> Backups {
        Backups {
            ctx,
            keys: BackupKeys::derive(root),
        }
    }

    /// The configured destinations.
    pub fn destinations(&self) -> &[Destination] {
        &self.ctx.config.backup.destinations
    }

    /// `strongroom backup create`: one backup to `dest` (see the module docs).
    pub async fn create(
        &self,
        dest: &Destination,
        progress: OnProgress<'_>,
    ) -> Result<BackupSummary> {
        let result = self.create_inner(dest, progress).await;
        let (id, ok, detail) = match &result {
            Ok(s) => (
                s.id.to_string(),
                true,
                serde_json::json!({"objects": s.objects, "bytes": s.bytes, "new_bytes": s.new_bytes, "rows": s.rows}),
            ),
            Err(e) => (
                String::new(),
                false,
                serde_json::json!({"error": e.to_string()}),
            ),
        };
        self.record("create", &id, &dest.url, ok, detail).await?;
        result
    }

    async fn create_inner(
        &self,
        dest: &Destination,
        progress: OnProgress<'_>,
    ) -> Result<BackupSummary> {
        let store = &self.ctx.store;
        let id = BackupId::generate();
        let created_at = self.ctx.clock.now();

        // 1. The snapshot, with the blob rows' keys taken out into the key set.
        let mut snap = store.snapshot().await?;
        let mut writer = EncryptedWriter::create(
            &*dest.store,
            &db_object(&id),
            &self.keys.snapshot_key(&id),
            None,
        )
        .await?;
        let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
        line(
            &mut buf,
            &Line::Header {
                format: DB_FORMAT.into(),
                version: FORMAT,
                schema_version: SCHEMA_VERSION,
            },
        )?;
        let mut blobs = Vec::new();
        let mut keyset = KeySet::default();
        let mut rows = 0_u64;
        for table in BACKUP_TABLES {
            let columns = snap.columns(table).await?;
            if columns.is_empty() {
                continue;
            }
            let blob_cols = if *table == "blobs" {
                Some(BlobColumns::find(&columns)?)
            } else {
                None
            };
            let person_cols = if *table == "users" {
                PersonColumns::find(&columns)
            } else {
                None
            };
            line(
                &mut buf,
                &Line::Table {
                    table: (*table).to_owned(),
                    columns,
                },
            )?;
            let mut stream = snap.rows(table)?;
            while let Some(mut row) = stream.try_next().await? {
                if let Some(cols) = &blob_cols {
                    let (entry, key) = cols.take_key(&mut row)?;
                    keyset.keys.insert(entry.id.clone(), key);
                    blobs.push(entry);
                }
                if let Some(cols) = &person_cols
                    && let Some((user, key)) = cols.take_key(&mut row)
                {
                    keyset.persons.insert(user, key);
                }
                line(&mut buf, &Line::Row(row))?;
                rows += 1;
                if buf.len() >= FLUSH_AT {
                    writer.push(&buf).await?;
                    buf.clear();
                    progress(Progress {
                        phase: "database",
                        done: rows,
                        total: 0,
                        bytes: 0,
                    });
                }
            }
        }
        line(&mut buf, &Line::End { end: true, rows })?;
        writer.push(&buf).await?;
        drop(buf);
        let written = writer.finish().await?;
        snap.finish().await?;

        // 2. The blobs the destination lacks.
        let present: HashSet<String> = dest
            .store
            .list_objects()
            .await?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let total = blobs.len() as u64;
        let batch = Batch::default();
        let jobs: Vec<_> = blobs
            .iter()
            .map(|b| self.copy_blob(&present, dest, b, &batch))
            .collect();
        let mut copies = futures_util::stream::iter(jobs).buffer_unordered(PARALLEL_COPIES);
        let (mut done, mut new_bytes) = (0, 0);
        let mut gone = HashSet::new();
        while let Some(copied) = copies.next().await {
            match copied? {
                (_, Some(n)) => new_bytes += n,
                // Purged after the snapshot: its key is gone too.
                (blob, None) => {
                    gone.insert(blob);
                }
            }
            done += 1;
            progress(Progress {
                phase: "blobs",
                done,
                total,
                bytes: new_bytes,
            });
        }
        drop(copies);
        // Every copy durable and under its name before the key set and manifest may name it.
        dest.store.publish(&batch).await?;
        blobs.retain(|b| !gone.contains(&b.id));
        keyset.keys.retain(|k, _| !gone.contains(k));

        // 3. The key set, without any blob purged since the snapshot (checked again after the
        // write, so a purge that lands meanwhile is never missed).
        loop {
            let shredded: HashSet<String> = store.shredded_blobs().await?.into_iter().collect();
            let erased: HashSet<String> = store.erased_users().await?.into_iter().collect();
            // A backup's own snapshot already holds what was deleted before it.
            keyset.forget(&shredded, &erased, &HashSet::new());
            let sealed = self.keys.seal_keyset(&id, &keyset)?;
            new_bytes += sealed.len() as u64;
            put_object(&*dest.store, &keys_object(&id), sealed.into()).await?;
            if store.shredded_blobs().await?.len() == shredded.len()
                && store.erased_users().await?.len() == erased.len()
            {
                break;
            }
        }

        // 4. The manifest: from now on the backup exists.
        let manifest = Manifest {
            format: FORMAT,
            id: id.clone(),
            created_at: created_at.millis(),
            schema_version: SCHEMA_VERSION,
            source: match store.backend() {
                strongroom_store::Backend::Sqlite => "sqlite".into(),
                strongroom_store::Backend::Postgres => "postgres".into(),
            },
            db_stored_size: written.stored_size,
            db_size: written.size,
            rows,
            blobs,
            new_bytes: new_bytes + written.stored_size,
        };
        put_object(
            &*dest.store,
            &manifest_object(&id),
            self.keys.seal_manifest(&manifest)?.into(),
        )
        .await?;
        Ok(BackupSummary {
            id,
            created_at: created_at.rfc3339(),
            destination: dest.url.clone(),
            objects: manifest.blobs.len() as u64 + 1,
            bytes: manifest.bytes(),
            new_bytes: manifest.new_bytes,
            rows,
        })
    }

    /// Copies one blob unless the destination has it: `(id, Some(bytes copied))`, or
    /// `(id, None)` when the blob was purged since the snapshot.
    async fn copy_blob(
        &self,
        present: &HashSet<String>,
        dest: &Destination,
        b: &BlobEntry,
        batch: &Batch,
    ) -> Result<(String, Option<u64>)> {
        if present.contains(&b.id) {
            return Ok((b.id.clone(), Some(0)));
        }
        let src = self.ctx.region_blobs(&b.region)?;
        Ok((
            b.id.clone(),
            copy_object(&*src, &*dest.store, &b.id, batch).await?,
        ))
    }

    /// `strongroom backup list`: every complete backup at `dest`, oldest first. A manifest that
    /// does not open under this root key is left out, with a warning in the log.
    pub async fn list(&self, dest: &Destination) -> Result<Vec<BackupItem>> {
        Ok(self
            .manifests(dest)
            .await?
            .into_iter()
            .map(|m| BackupItem {
                id: m.id.clone(),
                created_at: Timestamp::from_millis(m.created_at).rfc3339(),
                destination: dest.url.clone(),
                bytes: m.bytes(),
                objects: m.blobs.len() as u64 + 1,
            })
            .collect())
    }

    async fn manifests(&self, dest: &Destination) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        for (name, _) in dest.store.list_objects().await? {
            if manifest_id(&name).is_none() {
                continue;
            }
            let sealed = read_object(&*dest.store, &name).await?;
            match self.keys.open_manifest(&name, &sealed) {
                Some(m) => out.push(m),
                None => tracing::warn!(destination = %dest.url, object = %name,
                    "a backup manifest does not open under this root key: altered, or another instance's"),
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// One round of the schedule: a backup to every configured destination when the last
    /// successful one is older than the interval, then prune; the lease keeps it to one node.
    /// `Ok(None)` when nothing was due.
    pub async fn scheduled(&self) -> Result<Option<Vec<BackupSummary>>> {
        let config = &self.ctx.config.backup;
        let Some(interval) = config.interval else {
            return Ok(None);
        };
        if config.destinations.is_empty() {
            return Ok(None);
        }
        let now = self.ctx.clock.now();
        let due = match self.ctx.store.last_backup_run("create").await? {
            Some(r) if r.ok => {
                now.millis() - r.finished_at.millis()
                    >= i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)
            }
            _ => true,
        };
        if !due {
            return Ok(None);
        }
        let holder = format!("backup-{}", strongroom_crypto::token::random_token(8));
        if !self
            .ctx
            .store
            .lease_backup(&holder, now, now.plus_secs(6 * 3600))
            .await?
        {
            return Ok(None);
        }
        let mut made = Vec::new();
        let mut result = Ok(());
        for dest in &config.destinations {
            let quiet = |_: Progress| {};
            match self.create(dest, &quiet).await {
                Ok(s) => made.push(s),
                Err(e) => {
                    tracing::error!(destination = %dest.url, error = %e, "the scheduled backup failed");
                    result = Err(e);
                    continue;
                }
            }
            if let Err(e) = self
                .prune(dest, config.keep_daily, config.keep_weekly, PRUNE_GRACE)
                .await
            {
                tracing::warn!(destination = %dest.url, error = %e, "pruning old backups failed");
            }
        }
        self.ctx.store.release_backup(&holder).await?;
        result.map(|()| Some(made))
    }

    /// Runs the schedule and the shred pass every minute, until the task is dropped.
    pub async fn run_schedule(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.shred_pass().await {
                Ok(r) if r.rewritten > 0 => {
                    tracing::info!(
                        rewritten = r.rewritten,
                        "purged data keys removed from the backups"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the backup shred pass failed"),
            }
            match self.scheduled().await {
                Ok(Some(made)) => {
                    for s in made {
                        tracing::info!(backup = %s.id, destination = %s.destination, bytes = s.bytes, new_bytes = s.new_bytes, "scheduled backup done");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "the scheduled backup failed"),
            }
        }
    }
}

/// The columns of the `users` table a backup moves a person's key out of (schema 19 on).
struct PersonColumns {
    id: usize,
    key: usize,
}

impl PersonColumns {
    fn find(columns: &[String]) -> Option<PersonColumns> {
        let at = |name: &str| columns.iter().position(|c| c == name);
        Some(PersonColumns {
            id: at("id")?,
            key: at("person_key")?,
        })
    }

    /// The row's user and key (its sealed form), if it has one; the key's place is emptied.
    fn take_key(&self, row: &mut [Value]) -> Option<(String, String)> {
        let Value::Text(user) = row.get(self.id)? else {
            return None;
        };
        let user = user.clone();
        match std::mem::replace(row.get_mut(self.key)?, Value::Null) {
            Value::Text(key) => Some((user, key)),
            _ => None,
        }
    }
}

/// The columns of the `blobs` table a backup moves into its key set.
struct BlobColumns {
    id: usize,
    kek: usize,
    wrapped: usize,
    size: usize,
    stored_size: usize,
    region: usize,
}

impl BlobColumns {
    fn find(columns: &[String]) -> Result<BlobColumns> {
        let at = |name: &str| {
            columns
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| ServiceError::Internal(format!("blobs has no {name} column")))
        };
        Ok(BlobColumns {
            id: at("id")?,
            kek: at("kek_version")?,
            wrapped: at("wrapped_dek")?,
            size: at("size")?,
            stored_size: at("stored_size")?,
            region: at("region")?,
        })
    }

    /// The row's blob and its key; the key's place in the row is emptied.
    fn take_key(&self, row: &mut [Value]) -> Result<(BlobEntry, WrappedKey)> {
        let bad = || ServiceError::Internal("a blob row has an unexpected shape".into());
        let text = |v: &Value| match v {
            Value::Text(t) => Ok(t.clone()),
            _ => Err(bad()),
        };
        let int = |v: &Value| match v {
            Value::Int(i) => u64::try_from(*i).map_err(|_| bad()),
            _ => Err(bad()),
        };
        let entry = BlobEntry {
            id: text(&row[self.id])?,
            size: int(&row[self.size])?,
            stored_size: int(&row[self.stored_size])?,
            region: text(&row[self.region])?,
        };
        let kek = u32::try_from(int(&row[self.kek])?).map_err(|_| bad())?;
        let wrapped =
            match std::mem::replace(&mut row[self.wrapped], Value::Bytes { b: Vec::new() }) {
                Value::Bytes { b } => b,
                _ => return Err(bad()),
            };
        Ok((entry, WrappedKey { kek, wrapped }))
    }
}

fn line(buf: &mut Vec<u8>, l: &Line) -> Result<()> {
    serde_json::to_writer(&mut *buf, l).map_err(|e| ServiceError::Internal(e.to_string()))?;
    buf.push(b'\n');
    Ok(())
}

/// Copies object `id` byte for byte; `None` when the source does not have it. Written
/// into `batch`: durable once the batch is published.
pub(crate) async fn copy_object(
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    id: &str,
    batch: &Batch,
) -> Result<Option<u64>> {
    let len = match from.len(id).await {
        Ok(n) => n,
        Err(BlobError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut w = to.create_in(id, batch).await?;
    let mut at = 0;
    while at < len {
        let piece = match from.read_at(id, at, COPY_PIECE).await {
            Ok(p) => p,
            Err(BlobError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if piece.is_empty() {
            return Err(ServiceError::Internal(format!(
                "blob {id} ended at {at} of {len} bytes while it was copied"
            )));
        }
        at += piece.len() as u64;
        w.write(piece).await?;
    }
    w.commit().await?;
    Ok(Some(len))
}

async fn put_object(store: &dyn BlobStore, id: &str, data: Bytes) -> Result<()> {
    let mut w = store.create(id).await?;
    w.write(data).await?;
    w.commit().await?;
    Ok(())
}

/// A small object (manifest, key set) whole.
pub(crate) async fn read_object(store: &dyn BlobStore, id: &str) -> Result<Bytes> {
    let len = store.len(id).await?;
    let len =
        usize::try_from(len).map_err(|_| ServiceError::Internal("object too large".into()))?;
    Ok(store.read_at(id, 0, len).await?)
}
