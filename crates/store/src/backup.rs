//! Backups: a consistent snapshot of every table read as portable values, and the same values
//! loaded back into an empty database of either engine; the log of shredded blobs the backups'
//! key sets are cleaned against; the record of backup runs; the scheduled backup's lease.
//!
//! A snapshot is one read transaction (`REPEATABLE READ` on PostgreSQL; on SQLite in WAL mode a
//! read transaction sees one point in time), so rows written while it runs are not in it and
//! every row it holds refers to rows it also holds.

use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyTypeInfoKind;
use sqlx::{Column, Row, TypeInfo, ValueRef};
use strongroom_domain::{BlobId, Timestamp};

use crate::leases::Lease;
use crate::{Backend, Result, Store, StoreError};

/// Every table a backup holds, in an order where each table comes after the tables it refers
/// to (the order they were created in). The migrations' bookkeeping, the two leases and the
/// authorization epoch (a counter every database starts afresh) are left
/// out: a restored database gets its own. A test checks this against the live schema, so a new
/// table cannot be forgotten.
pub const BACKUP_TABLES: &[&str] = &[
    "orgs",
    "users",
    "memberships",
    "api_keys",
    "spaces",
    "keks",
    "blobs",
    "assets",
    "audit_events",
    "sessions",
    "login_failures",
    "login_successes",
    "spent_challenges",
    "user_totp",
    "recovery_codes",
    "roles",
    "space_grants",
    "invitations",
    "user_devices",
    "jobs",
    "links",
    "renditions",
    "hls_keys",
    "playbacks",
    "job_outputs",
    "storage_scrubs",
    "shredded_blobs",
    "backup_runs",
];

/// Tables deliberately not in a backup (see [`BACKUP_TABLES`]).
pub const NOT_BACKED_UP: &[&str] = &[
    "schema_migrations",
    "storage_scrub_lease",
    "backup_lease",
    "authz_epoch",
];

/// One stored value, in a form both engines accept back. The schema uses only integers, text
/// and bytes (times are milliseconds, flags are 0/1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Any integer column.
    Int(i64),
    /// A text column.
    Text(String),
    /// A bytes column (`BLOB` / `BYTEA`), base64 in JSON.
    Bytes {
        /// The bytes.
        #[serde(with = "b64")]
        b: Vec<u8>,
    },
}

/// Serde for bytes as base64 text (`#[serde(with = "strongroom_store::b64")]`).
pub mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the bytes as base64.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    /// Reads base64 back into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// A column's type where it matters for binding.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Int32,
    Text,
    Bytes,
}

/// One row: its values in the order of the table's columns.
pub type Values = Vec<Value>;

/// A consistent read of the whole database (see the module docs).
pub struct Snapshot {
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl Store {
    /// Starts a snapshot: every read through it sees the database as of this moment.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let mut tx = match self.backend() {
            Backend::Sqlite => self.pool().begin().await?,
            Backend::Postgres => {
                self.pool()
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        };
        // Both engines take the snapshot at the transaction's first read, not at BEGIN: read
        // now, so the snapshot is of this moment.
        sqlx::query("SELECT COUNT(*) FROM orgs")
            .fetch_one(&mut *tx)
            .await?;
        Ok(Snapshot { tx })
    }

    /// Whether the database holds no organization, user or blob: a restore refuses any other.
    pub async fn is_empty(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM orgs) + (SELECT COUNT(*) FROM users) \
             + (SELECT COUNT(*) FROM blobs)",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(n == 0)
    }

    /// The highest migration applied to this database.
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
            .fetch_one(self.pool())
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// The names of every table in the database (for the test that [`BACKUP_TABLES`] is whole).
    pub async fn table_names(&self) -> Result<Vec<String>> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT table_name::TEXT FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY table_name"
            }
        };
        Ok(sqlx::query_scalar(sql).fetch_all(self.pool()).await?)
    }

    /// Every blob ever shredded (the key sets of all backups are cleaned against this).
    pub async fn shredded_blobs(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT blob_id FROM shredded_blobs ORDER BY blob_id")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Shredded blobs, erased people and deleted organizations the backups' key sets may not
    /// reflect yet (not applied everywhere): blob, user and organization ids.
    pub async fn pending_shreds(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT blob_id FROM shredded_blobs WHERE backups_done = 0 \
             UNION SELECT id FROM users WHERE erased_at IS NOT NULL AND erasure_backups_done = 0 \
             UNION SELECT id FROM orgs WHERE deleted_at IS NOT NULL AND deletion_backups_done = 0 \
             ORDER BY 1",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Every destination a backup was successfully written to.
    pub async fn backup_destinations_used(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT destination FROM backup_runs WHERE kind = 'create' AND ok = 1 \
             ORDER BY destination",
        )
        .fetch_all(self.pool())
        .await?)
    }

    /// Marks the shreds in `ids` as applied to every destination.
    pub async fn shreds_applied(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            sqlx::query("UPDATE shredded_blobs SET backups_done = 1 WHERE blob_id = $1")
                .bind(id.as_str())
                .execute(self.pool())
                .await?;
            sqlx::query("UPDATE users SET erasure_backups_done = 1 WHERE id = $1")
                .bind(id.as_str())
                .execute(self.pool())
                .await?;
            sqlx::query("UPDATE orgs SET deletion_backups_done = 1 WHERE id = $1")
                .bind(id.as_str())
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// Records the outcome of a backup, verification or restore.
    pub async fn record_backup_run(&self, run: &BackupRun) -> Result<()> {
        sqlx::query(
            "INSERT INTO backup_runs (id, kind, backup_id, destination, finished_at, ok, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(run.id.as_str())
        .bind(run.kind.as_str())
        .bind(run.backup_id.as_str())
        .bind(run.destination.as_str())
        .bind(run.finished_at.millis())
        .bind(i64::from(run.ok))
        .bind(run.detail.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The latest run of `kind` (`create`, `verify`, `restore`), successful or not.
    pub async fn last_backup_run(&self, kind: &str) -> Result<Option<BackupRun>> {
        let row = sqlx::query(
            "SELECT id, kind, backup_id, destination, finished_at, ok, detail FROM backup_runs \
             WHERE kind = $1 ORDER BY finished_at DESC, id DESC LIMIT 1",
        )
        .bind(kind)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(BackupRun {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                backup_id: r.try_get("backup_id")?,
                destination: r.try_get("destination")?,
                finished_at: Timestamp::from_millis(r.try_get("finished_at")?),
                ok: r.try_get::<i64, _>("ok")? != 0,
                detail: r.try_get("detail")?,
            })
        })
        .transpose()
    }

    /// Takes (or renews) the scheduled backup's lease until `until`, if nobody else holds it.
    pub async fn lease_backup(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        self.take_lease(Lease::Backup, holder, now, until).await
    }

    /// Ends `holder`'s backup lease.
    pub async fn release_backup(&self, holder: &str) -> Result<()> {
        self.end_lease(Lease::Backup, holder).await
    }

    /// Loads rows of `table` (columns as named) into an empty database, in one transaction
    /// per call. The columns must exist: a backup from a newer schema is refused by name.
    pub async fn load_rows(&self, table: &str, columns: &[String], rows: &[Values]) -> Result<()> {
        check_table(table)?;
        for c in columns {
            check_column(c)?;
        }
        if rows.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            placeholders.join(", ")
        );
        let kinds = self.column_kinds(table, columns).await?;
        let mut tx = self.begin().await?;
        for row in rows {
            if row.len() != columns.len() {
                return Err(StoreError::Corrupt {
                    table: "backup",
                    detail: format!(
                        "a row of {table} has {} values for {} columns",
                        row.len(),
                        columns.len()
                    ),
                });
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for (v, kind) in row.iter().zip(&kinds) {
                // PostgreSQL wants every value, NULL too, of its column's type.
                q = match (v, kind) {
                    (Value::Null, Kind::Int) => q.bind(Option::<i64>::None),
                    (Value::Null, Kind::Int32) => q.bind(Option::<i32>::None),
                    (Value::Null, Kind::Bytes) => q.bind(Option::<Vec<u8>>::None),
                    (Value::Null, _) => q.bind(Option::<String>::None),
                    (Value::Int(i), Kind::Int32) => {
                        q.bind(i32::try_from(*i).map_err(|_| StoreError::Corrupt {
                            table: "backup",
                            detail: format!("a value of {table} is out of range"),
                        })?)
                    }
                    (Value::Int(i), _) => q.bind(*i),
                    (Value::Text(t), _) => q.bind(t.as_str()),
                    (Value::Bytes { b }, _) => q.bind(b.as_slice()),
                };
            }
            q.execute(tx.conn()).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The type of each of `columns` of `table` in this database (all `Text` on SQLite, whose
    /// columns take any value).
    async fn column_kinds(&self, table: &str, columns: &[String]) -> Result<Vec<Kind>> {
        if self.backend() == Backend::Sqlite {
            return Ok(vec![Kind::Text; columns.len()]);
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(table)
        .fetch_all(self.pool())
        .await?;
        columns
            .iter()
            .map(|c| match rows.iter().find(|(name, _)| name == c) {
                Some((_, t)) if t == "bigint" => Ok(Kind::Int),
                Some((_, t)) if t == "integer" || t == "smallint" => Ok(Kind::Int32),
                Some((_, t)) if t == "bytea" => Ok(Kind::Bytes),
                Some(_) => Ok(Kind::Text),
                None => Err(StoreError::Corrupt {
                    table: "backup",
                    detail: format!(
                        "the backup has a column {table}.{c} this version of Strongroom does not: restore it with the version that made it"
                    ),
                }),
            })
            .collect()
    }

    /// After a restore: removes what refers to blobs whose data keys the backup no longer holds
    /// (purged after it was taken): those renditions and assets (with their links, playbacks
    /// and package keys) and the blob rows. Returns how many assets went.
    pub async fn drop_shredded(&self, blobs: &[BlobId]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut assets = 0;
        for id in blobs {
            sqlx::query("DELETE FROM renditions WHERE blob_id = $1")
                .bind(id.as_str())
                .execute(tx.conn())
                .await?;
            let gone: Vec<String> = sqlx::query_scalar("SELECT id FROM assets WHERE blob_id = $1")
                .bind(id.as_str())
                .fetch_all(tx.conn())
                .await?;
            for asset in gone {
                for t in ["links", "playbacks", "hls_keys", "renditions"] {
                    let sql = format!("DELETE FROM {t} WHERE asset_id = $1");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(asset.as_str())
                        .execute(tx.conn())
                        .await?;
                }
                sqlx::query("DELETE FROM assets WHERE id = $1")
                    .bind(asset.as_str())
                    .execute(tx.conn())
                    .await?;
                assets += 1;
            }
            sqlx::query("DELETE FROM job_outputs WHERE blob_id = $1")
                .bind(id.as_str())
                .execute(tx.conn())
                .await?;
            sqlx::query("DELETE FROM blobs WHERE id = $1")
                .bind(id.as_str())
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await?;
        Ok(assets)
    }

    /// Puts a person's key (its stored, sealed form, from a backup's key set) back into their
    /// restored row, unless they are erased in it.
    pub async fn restore_person_key(&self, user_id: &str, stored: &str) -> Result<bool> {
        let done =
            sqlx::query("UPDATE users SET person_key = $1 WHERE id = $2 AND erased_at IS NULL")
                .bind(stored)
                .bind(user_id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets the data keys of restored blob rows (a backup keeps data keys apart from its rows):
    /// `(blob id, KEK version, wrapped key)` each, in one transaction. Returns the rows set.
    pub async fn restore_data_keys(&self, keys: &[(&str, u32, &[u8])]) -> Result<u64> {
        let mut tx = self.begin().await?;
        let mut set = 0;
        for (id, kek_version, wrapped) in keys {
            set += sqlx::query("UPDATE blobs SET kek_version = $1, wrapped_dek = $2 WHERE id = $3")
                .bind(i64::from(*kek_version))
                .bind(*wrapped)
                .bind(*id)
                .execute(tx.conn())
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(set)
    }
}

impl Snapshot {
    /// Every row of `table` (one of [`BACKUP_TABLES`]), streamed, with the column names first.
    pub async fn columns(&mut self, table: &str) -> Result<Vec<String>> {
        check_table(table)?;
        // `LIMIT 0` has no rows to name the columns on SQLite: describe one row instead.
        let sql = format!("SELECT * FROM {table} LIMIT 1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row
            .map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect())
            .unwrap_or_default())
    }

    /// The rows of `table` in a stable order (by the first column), as portable values.
    pub fn rows<'a>(&'a mut self, table: &str) -> Result<BoxStream<'a, Result<Values>>> {
        check_table(table)?;
        let sql = format!("SELECT * FROM {table} ORDER BY 1");
        let stream = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch(&mut *self.tx)
            .map_err(StoreError::from)
            .and_then(|row| async move { values(&row) });
        Ok(Box::pin(stream))
    }

    /// Ends the snapshot.
    pub async fn finish(self) -> Result<()> {
        self.tx.rollback().await?;
        Ok(())
    }
}

fn values(row: &sqlx::any::AnyRow) -> Result<Values> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            out.push(Value::Null);
            continue;
        }
        let v = match col.type_info().kind() {
            AnyTypeInfoKind::Bool => Value::Int(i64::from(row.try_get::<bool, _>(i)?)),
            AnyTypeInfoKind::SmallInt => Value::Int(i64::from(row.try_get::<i16, _>(i)?)),
            AnyTypeInfoKind::Integer => Value::Int(i64::from(row.try_get::<i32, _>(i)?)),
            AnyTypeInfoKind::BigInt => Value::Int(row.try_get::<i64, _>(i)?),
            AnyTypeInfoKind::Text => Value::Text(row.try_get::<String, _>(i)?),
            AnyTypeInfoKind::Blob => Value::Bytes {
                b: row.try_get::<Vec<u8>, _>(i)?,
            },
            // SQLite reports the type of the value, not of the column, for some expressions:
            // take whichever of the three it decodes as.
            AnyTypeInfoKind::Null => {
                if let Ok(n) = row.try_get::<i64, _>(i) {
                    Value::Int(n)
                } else if let Ok(t) = row.try_get::<String, _>(i) {
                    Value::Text(t)
                } else {
                    Value::Bytes {
                        b: row.try_get::<Vec<u8>, _>(i)?,
                    }
                }
            }
            AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => {
                return Err(StoreError::Corrupt {
                    table: "backup",
                    detail: format!(
                        "column {} holds a {} value: the schema has none",
                        col.name(),
                        col.type_info().name()
                    ),
                });
            }
        };
        out.push(v);
    }
    Ok(out)
}

/// Records that a blob row was deleted (its data key destroyed), in the deleting transaction.
/// The time is informational (the wall clock of this process).
pub(crate) async fn log_shred(conn: &mut sqlx::AnyConnection, id: &str) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    sqlx::query(
        "INSERT INTO shredded_blobs (blob_id, shredded_at) VALUES ($1, $2) \
         ON CONFLICT (blob_id) DO NOTHING",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Only the fixed table names are ever formatted into SQL.
fn check_table(table: &str) -> Result<()> {
    if BACKUP_TABLES.contains(&table) {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            table: "backup",
            detail: format!("'{table}' is not a table a backup holds"),
        })
    }
}

/// Column names come from the backup (authenticated, but from another version maybe): only
/// plain identifiers are formatted into SQL.
fn check_column(c: &str) -> Result<()> {
    let ok = !c.is_empty()
        && c.len() <= 63
        && c.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            table: "backup",
            detail: "a column name in the backup is not a plain identifier".into(),
        })
    }
}

/// A backup, verification or restore as `storage status` shows it.
#[derive(Debug, Clone)]
pub struct BackupRun {
    /// This run's id.
    pub id: String,
    /// `create`, `verify` or `restore`.
    pub kind: String,
    /// The backup it made, checked or restored.
    pub backup_id: String,
    /// Where (the destination's URL, without credentials).
    pub destination: String,
    /// When it ended.
    pub finished_at: Timestamp,
    /// Whether it succeeded.
    pub ok: bool,
    /// JSON counts, and what failed.
    pub detail: String,
}
