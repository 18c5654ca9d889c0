//! Storage scrub reports, and the one-row leases that keep a periodic task (the scrub, the
//! scheduled backup) to one node at a time.

use sqlx::Row;
use strongroom_domain::Timestamp;

use crate::{Result, Store};

impl Store {
    /// Records a finished scrub's report (JSON).
    pub async fn record_scrub(&self, finished_at: Timestamp, report: &str) -> Result<()> {
        sqlx::query("INSERT INTO storage_scrubs (finished_at, report) VALUES ($1, $2)")
            .bind(finished_at.millis())
            .bind(report)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Takes (or renews) the scrub lease for `holder` until `until`, unless another holder's
    /// lease runs past `now`; returns whether `holder` holds it.
    pub async fn lease_scrub(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        self.take_lease(Lease::Scrub, holder, now, until).await
    }

    /// Who holds the scrub lease and until when (an empty holder: nobody ever did).
    pub async fn scrub_lease(&self) -> Result<(String, Timestamp)> {
        let row = sqlx::query("SELECT holder, lease_until FROM storage_scrub_lease WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok((
            row.try_get("holder")?,
            Timestamp::from_millis(row.try_get("lease_until")?),
        ))
    }

    /// Ends `holder`'s scrub lease (nothing happens if it is another's now).
    pub async fn release_scrub(&self, holder: &str) -> Result<()> {
        self.end_lease(Lease::Scrub, holder).await
    }

    /// Takes (or renews) `lease` for `holder` until `until`, unless another holder's runs past
    /// `now`; returns whether `holder` holds it.
    pub(crate) async fn take_lease(
        &self,
        lease: Lease,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE {} SET holder = $1, lease_until = $2 WHERE id = 1 AND (lease_until < $3 OR holder = $1)",
            lease.table()
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .bind(until.millis())
            .bind(now.millis())
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends `holder`'s hold on `lease` (nothing happens if it is another's now).
    pub(crate) async fn end_lease(&self, lease: Lease, holder: &str) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET lease_until = 0 WHERE id = 1 AND holder = $1",
            lease.table()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The latest scrub's finish time and report, if any ran.
    pub async fn last_scrub(&self) -> Result<Option<(Timestamp, String)>> {
        let row = sqlx::query(
            "SELECT finished_at, report FROM storage_scrubs ORDER BY finished_at DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok((
                Timestamp::from_millis(r.try_get("finished_at")?),
                r.try_get("report")?,
            ))
        })
        .transpose()
    }
}

/// The one-row leases that keep a periodic task to one node at a time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lease {
    /// The storage scrub.
    Scrub,
    /// The scheduled backup.
    Backup,
}

impl Lease {
    fn table(self) -> &'static str {
        match self {
            Lease::Scrub => "storage_scrub_lease",
            Lease::Backup => "backup_lease",
        }
    }
}
