//! Schema migrations: an ordered list of SQL scripts compiled into the binary.
//!
//! A small runner instead of sqlx's `migrate!` macro keeps the macro machinery out of the build.
//! Both engines share one script; `BYTES` is spelled `BLOB` on SQLite and `BYTEA` on PostgreSQL.
//! Applied versions are recorded in `schema_migrations`; a released script never changes.

use sqlx::AssertSqlSafe;

use crate::seal::{Seal, existing};
use crate::{Backend, Result, Store, StoreError};

/// (version, script). Append only.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_foundation.sql")),
    (2, include_str!("../migrations/0002_sessions.sql")),
    (3, include_str!("../migrations/0003_api_key_lifecycle.sql")),
    (4, include_str!("../migrations/0004_login_throttle.sql")),
    (5, include_str!("../migrations/0005_mfa.sql")),
    (
        6,
        include_str!("../migrations/0006_roles_invitations_jobs.sql"),
    ),
    (7, include_str!("../migrations/0007_links.sql")),
    (8, include_str!("../migrations/0008_media.sql")),
    (9, include_str!("../migrations/0009_invitation_inviter.sql")),
    (10, include_str!("../migrations/0010_quotas.sql")),
    (11, include_str!("../migrations/0011_job_lanes_outputs.sql")),
    (12, include_str!("../migrations/0012_storage_scrubs.sql")),
    (13, include_str!("../migrations/0013_regions.sql")),
    (14, include_str!("../migrations/0014_scrub_lease.sql")),
    (15, include_str!("../migrations/0015_trash_retention.sql")),
    (16, include_str!("../migrations/0016_backups.sql")),
    (17, include_str!("../migrations/0017_sealed_metadata.sql")),
    (18, include_str!("../migrations/0018_authz_epoch.sql")),
    (19, include_str!("../migrations/0019_erasure.sql")),
    (20, include_str!("../migrations/0020_asset_epoch.sql")),
];

/// The part of a migration written in each engine's own dialect (triggers), run after its
/// shared script: `(version, SQLite, PostgreSQL)`.
const PER_ENGINE: &[(i64, &str, &str)] = &[
    (
        18,
        include_str!("../migrations/0018_authz_epoch.sqlite.sql"),
        include_str!("../migrations/0018_authz_epoch.postgres.sql"),
    ),
    (
        20,
        include_str!("../migrations/0020_asset_epoch.sqlite.sql"),
        include_str!("../migrations/0020_asset_epoch.postgres.sql"),
    ),
];

/// The migration whose transaction also seals the rows written before it (in Rust: the store's
/// sealer is needed, see `seal::existing`).
const SEALING: i64 = 17;

/// The schema version a fully migrated database has: the last migration's. Versions increase
/// but may skip a number (one reserved for a change that lands separately).
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The version of every migration, in the order they apply: what a fully migrated database has
/// recorded in `schema_migrations`.
pub fn versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|(v, _)| *v).collect()
}

pub(crate) async fn run(store: &Store) -> Result<()> {
    let mut conn = store.pool().acquire().await?;
    if store.backend() == Backend::Postgres {
        // Several nodes may start at once: one migrates, the others wait.
        sqlx::query("SELECT pg_advisory_lock(7262454)")
            .execute(&mut *conn)
            .await?;
    }
    let result = apply(store.backend(), store.seal(), &mut conn, i64::MAX).await;
    if store.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(7262454)")
            .execute(&mut *conn)
            .await?;
    }
    result
}

/// Applies the migrations up to `until` (inclusive).
async fn apply(
    backend: Backend,
    seal: &Seal,
    conn: &mut sqlx::AnyConnection,
    until: i64,
) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for &(version, script) in MIGRATIONS.iter().filter(|(v, _)| *v <= until) {
        let bytes = match backend {
            Backend::Sqlite => "BLOB",
            Backend::Postgres => "BYTEA",
        };
        let mut sql = script.replace("BYTES", bytes);
        if let Some((_, sqlite, postgres)) = PER_ENGINE.iter().find(|(v, _, _)| *v == version) {
            sql.push_str(match backend {
                Backend::Sqlite => sqlite,
                Backend::Postgres => postgres,
            });
        }
        // The "already applied?" check runs inside the transaction: on SQLite, BEGIN IMMEDIATE
        // makes a second process starting on a new file wait, then find the migration done.
        let begin = match backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let mut sealed = false;
        let step = async {
            sqlx::raw_sql(begin).execute(&mut *conn).await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
            if done.is_none() {
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut *conn)
                    .await?;
                if version == SEALING {
                    let n = existing::seal_existing(seal, &mut *conn).await?;
                    tracing::info!(values = n, "sealed the metadata of existing rows");
                    sealed = true;
                }
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(0_i64)
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await
        };
        if let Err(source) = step.await {
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            return Err(StoreError::Migration { version, source });
        }
        if sealed && backend == Backend::Sqlite {
            // The write-ahead log may still hold pages from before the sealing: copy it into
            // the database (whose freed cells secure_delete has zeroed) and empty it.
            sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Brings a database up to schema version `until` only: for tests of later migrations, which
/// need rows written the way an older version wrote them.
pub(crate) async fn run_until(store: &Store, until: i64) -> Result<()> {
    let mut conn = store.pool().acquire().await?;
    apply(store.backend(), store.seal(), &mut conn, until).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_strictly_increase_and_end_at_the_schema_version() {
        let v = versions();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
        assert_eq!(v.last().copied(), Some(SCHEMA_VERSION));
    }
}
