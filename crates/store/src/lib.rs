//! The database: every row Strongroom keeps, on SQLite (embedded default) or PostgreSQL.
//!
//! One set of SQL runs on both engines through sqlx's `Any` driver (runtime queries, `$N`
//! parameters, types both engines share). The crate owns the schema and its migrations, row
//! types and queries. It never does crypto (it stores wrapped keys and hashes it is handed), never
//! decides policy, and never turns a database error into "not found": absence is `Ok(None)`.
//!
//! Writes go through [`Tx`]. On SQLite a transaction starts with `BEGIN IMMEDIATE`, so two writers
//! queue on the busy timeout instead of failing when a read lock cannot be upgraded; on PostgreSQL
//! the audit-chain head row lock serializes appends per organization.

mod access;
mod audit;
mod backup;
mod jobs;
mod keys;
mod leases;
mod lifecycle;
mod links;
mod media;
mod mfa;
mod migrate;
mod privacy;
mod quotas;
mod regions;
mod seal;
mod sessions;
mod tenancy;
mod throttle;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A PostgreSQL connection idle for longer than this is pinged before it serves a query.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row};

pub use access::{GrantRow, InvitationRow, RoleRow};
pub use audit::{AuditEventRow, AuditHead, NewAuditEvent, Personal};
pub use backup::{BACKUP_TABLES, BackupRun, NOT_BACKED_UP, Snapshot, Value, Values, b64};
pub use jobs::{JobRow, JobStatus, Lane, NewJob};
pub use keys::{
    ApiKeyDetails, ApiKeyRow, BlobRow, GrantAccessRow, KekRow, KeyPrincipalRow, PrincipalRow,
};
pub use lifecycle::DueAsset;
pub use links::LinkRow;
pub use media::{MediaState, PlaybackRow, RenditionRow};
pub use mfa::{MemberRow, TotpRow};
pub use migrate::{SCHEMA_VERSION, versions as migration_versions};
pub use privacy::DeletedOrg;
pub use quotas::{QuotaRow, Usage};
pub use regions::RegionSpread;
pub use seal::FieldSealer;
pub use sessions::{SessionLookup, SessionRow};
pub use tenancy::{AssetRow, AssetWithBlob, OrgRow, SpaceRow, UserRow};

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not run a statement (connection lost, lock timeout, disk full...).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A uniqueness constraint refused the write (e.g. the email already exists).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A stored value does not parse: the database was edited by hand or is corrupt.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table holding the row.
        table: &'static str,
        /// What did not parse.
        detail: String,
    },
    /// The database URL is not one this build understands.
    #[error("unsupported database URL: expected sqlite:... or postgres://...")]
    UnsupportedUrl,
    /// A migration failed; the schema was left at the previous version.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration that failed.
        version: i64,
        /// Why.
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Whether the failure is the database being busy rather than broken: the pool had no
    /// connection free in time, SQLite's lock was held past its timeout, or PostgreSQL gave up
    /// on a lock, a deadlock or a serialization conflict. Trying again later may succeed.
    pub fn is_busy(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => {
                let code = db.code();
                let code = code.as_deref().unwrap_or_default();
                // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes
                // (the low byte is the primary code). PostgreSQL: serialization_failure,
                // deadlock_detected, lock_not_available, query_canceled (statement timeout).
                let sqlite_busy = code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
                sqlite_busy || matches!(code, "40001" | "40P01" | "55P03" | "57014")
            }
            _ => false,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    seal: seal::Seal,
    /// Moved by every write transaction of this process once it has committed (see
    /// [`Store::authz_generation`]).
    generation: Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `url` (`sqlite:PATH` or `postgres://...`) and brings the schema up to date.
    /// `sealer` seals and opens the columns that hold what users typed (see the `seal` module);
    /// a database written with one sealer is read only with the same one.
    pub async fn connect(url: &str, sealer: Arc<dyn FieldSealer>) -> Result<Store> {
        let store = Store::open(url, sealer).await?;
        migrate::run(&store).await?;
        Ok(store)
    }

    /// [`Store::connect`], but brings the schema only up to `version`: a restore loads a
    /// snapshot into the schema it was taken at, then [`Store::connect`] migrates the rest (so a
    /// backup from before migration 17 has its metadata sealed). Tests of a migration use it
    /// to write rows the way an older release did.
    pub async fn connect_at_version(
        url: &str,
        sealer: Arc<dyn FieldSealer>,
        version: i64,
    ) -> Result<Store> {
        let store = Store::open(url, sealer).await?;
        migrate::run_until(&store, version).await?;
        Ok(store)
    }

    async fn open(url: &str, sealer: Arc<dyn FieldSealer>) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        // sqlx pings every connection it hands out by default: a second round trip for every
        // query. A SQLite connection is a file handle in this process and cannot go stale; a
        // PostgreSQL connection is pinged only after sitting idle (as HikariCP's 500 ms
        // "alive bypass" window does), so a server restart still never reaches a request.
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(30))
            .test_before_acquire(false);
        let pool = match backend {
            Backend::Sqlite => {
                options
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL: readers never block the writer. synchronous=FULL: a committed
                            // transaction survives power loss. secure_delete: a deleted row's
                            // bytes (a shredded data key) are overwritten, not left in free pages.
                            sqlx::raw_sql(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA secure_delete = ON;",
                            )
                            .execute(conn)
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            Backend::Postgres => {
                options
                    .max_connections(16)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for > PING_WHEN_IDLE_FOR {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Like SQLite's busy timeout: a lock held longer than this fails the
                            // statement (lock_not_available), which the service answers with a
                            // retryable 503 instead of holding the request and a connection.
                            sqlx::raw_sql("SET lock_timeout = '10s'")
                                .execute(conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
        };
        Ok(Store {
            pool,
            backend,
            seal: seal::Seal::new(sealer),
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The engine behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. Its commit moves [`Store::authz_generation`]: whatever it
    /// changed, credentials this process resolved before it are resolved again.
    pub async fn begin(&self) -> Result<Tx> {
        self.begin_tx(Some(self.generation.clone())).await
    }

    /// Starts a write transaction that only appends audit events (the group commit of reads):
    /// it changes nothing a credential's permissions are read from, so its commit leaves
    /// [`Store::authz_generation`] alone. Were it to write such a fact after all, the database's
    /// authorization epoch (migration 18) would still move, and every node would notice within
    /// its confirmation window.
    pub async fn begin_audit_append(&self) -> Result<Tx> {
        self.begin_tx(None).await
    }

    async fn begin_tx(&self, generation: Option<Arc<AtomicU64>>) -> Result<Tx> {
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            inner,
            seal: self.seal.clone(),
            generation,
            backend: self.backend,
            person_keys: std::collections::HashMap::new(),
        })
    }

    /// A number this process moves after every write transaction it commits (or fails to:
    /// a failed commit may still have landed). A credential resolved while it had one value is
    /// out of date once it has another: the in-process half of the authorization epoch.
    pub fn authz_generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The database's authorization epoch: moved by triggers, in the changing transaction, by
    /// every change to what an API key's permissions are read from, whichever process made it.
    pub async fn authz_epoch(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT n FROM authz_epoch WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The database's asset epoch: moved by triggers, in the changing transaction, by every
    /// change to an asset or a blob row, whichever process made it (migration 20).
    pub async fn asset_epoch(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT n FROM authz_epoch WHERE id = 2")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Readiness probe: one round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (graceful shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn seal(&self) -> &seal::Seal {
        &self.seal
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    seal: seal::Seal,
    /// The store's generation, moved once this transaction has committed (`None`: an audit
    /// append, see [`Store::begin_audit_append`]).
    generation: Option<Arc<AtomicU64>>,
    backend: Backend,
    /// People's sealing keys already read in this transaction (see `audit.rs`), by user id.
    person_keys: std::collections::HashMap<String, Option<[u8; 32]>>,
}

impl Tx {
    /// Makes every write of this transaction durable.
    pub async fn commit(self) -> Result<()> {
        let result = self.inner.commit().await;
        // Moved after the commit, and before the caller can answer anyone: a credential
        // resolved from before the commit is never used once the change is acknowledged. Moved
        // on failure too: a commit whose answer was lost may have landed.
        if let Some(generation) = &self.generation {
            generation.fetch_add(1, Ordering::SeqCst);
        }
        result?;
        Ok(())
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }

    pub(crate) fn seal(&self) -> &seal::Seal {
        &self.seal
    }
}

/// Maps a unique-constraint violation to `Conflict(what)`, any other error to `Database`.
pub(crate) fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(e),
    }
}

/// Reads a column that holds a parsed domain value.
pub(crate) fn parsed<T, E: std::fmt::Display>(
    row: &AnyRow,
    table: &'static str,
    column: &str,
    parse: impl FnOnce(&str) -> std::result::Result<T, E>,
) -> Result<T> {
    let raw: String = row.try_get(column)?;
    parse(&raw).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("{column}: {e}"),
    })
}

/// Reads a stored role name (built-in name or custom role id).
pub(crate) fn role_ref(raw: &str, table: &'static str) -> Result<strongroom_domain::RoleRef> {
    strongroom_domain::RoleRef::from_stored(raw)
        .map_err(|detail| StoreError::Corrupt { table, detail })
}

/// Reads a stored size, refusing a negative one as corruption rather than reading it as zero.
pub(crate) fn size(v: i64, table: &'static str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt {
        table,
        detail: format!("negative size {v}"),
    })
}

/// A page of a list: the items and the id to continue after, if there may be more.
#[derive(Debug)]
pub struct Page<T> {
    /// The items, in id (creation) order.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; `None` at the end.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items.
    pub(crate) fn from_overfetch(
        mut items: Vec<T>,
        limit: u32,
        key: impl Fn(&T) -> String,
    ) -> Self {
        let limit = limit as usize;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(key)
        } else {
            None
        };
        Page { items, next }
    }
}
