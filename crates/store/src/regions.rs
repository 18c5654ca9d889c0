//! Data residency: which region each organization's content lives in, and which region's
//! backends hold each blob (they differ only while the organization is being moved).

use sqlx::Row;
use strongroom_domain::{BlobId, OrgId};

use crate::{Result, Store, Tx};

/// How far an organization's move to its region has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionSpread {
    /// Blobs of the organization stored in its region.
    pub home: u64,
    /// Blobs of the organization still stored in another region.
    pub away: u64,
}

impl Store {
    /// The region of organization `org` (`None` when there is no such organization).
    pub async fn org_region(&self, org: &OrgId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT region FROM orgs WHERE id = $1")
            .bind(org.as_str())
            .fetch_optional(self.pool())
            .await?)
    }

    /// Every region an organization or a blob row names, sorted (the server checks at start that
    /// each one is configured).
    pub async fn regions_in_use(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT region FROM orgs UNION SELECT region FROM blobs ORDER BY region")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("region").map_err(Into::into))
            .collect()
    }

    /// Sets every organization and blob row to `region`: for a server with exactly one region,
    /// where every blob is in that region's backends whatever its row says (rows from before
    /// regions existed say `default`). Returns the rows changed.
    pub async fn relabel_all_regions(&self, region: &str) -> Result<u64> {
        let mut tx = self.begin().await?;
        let orgs = sqlx::query("UPDATE orgs SET region = $1 WHERE region <> $1")
            .bind(region)
            .execute(tx.conn())
            .await?
            .rows_affected();
        let blobs = sqlx::query("UPDATE blobs SET region = $1 WHERE region <> $1")
            .bind(region)
            .execute(tx.conn())
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(orgs + blobs)
    }

    /// Up to `limit` blobs of `org` stored outside `region`, by id.
    pub async fn blobs_outside(
        &self,
        org: &OrgId,
        region: &str,
        limit: u32,
    ) -> Result<Vec<crate::BlobRow>> {
        let sql = format!(
            "SELECT {} FROM blobs WHERE org_id = $1 AND region <> $2 ORDER BY id LIMIT $3",
            crate::keys::BLOB_COLUMNS
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.as_str())
            .bind(region)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(crate::keys::blob).collect()
    }

    /// How many of `org`'s blobs are stored in `region`, and how many elsewhere.
    pub async fn region_spread(&self, org: &OrgId, region: &str) -> Result<RegionSpread> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN region = $2 THEN 1 ELSE 0 END), 0) AS home, \
                    COALESCE(SUM(CASE WHEN region <> $2 THEN 1 ELSE 0 END), 0) AS away \
             FROM blobs WHERE org_id = $1",
        )
        .bind(org.as_str())
        .bind(region)
        .fetch_one(self.pool())
        .await?;
        let n = |col: &str| -> Result<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(col)?).unwrap_or(0))
        };
        Ok(RegionSpread {
            home: n("home")?,
            away: n("away")?,
        })
    }
}

impl Tx {
    /// Sets organization `org`'s region: its new blobs are written there from now on.
    pub async fn set_org_region(&mut self, org: &OrgId, region: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE orgs SET region = $1 WHERE id = $2")
            .bind(region)
            .bind(org.as_str())
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that blob `id`, stored in region `from`, is now stored (copied and verified) in
    /// region `to`; false when its row no longer says `from` (gone, or moved by someone else).
    pub async fn move_blob_region(&mut self, id: &BlobId, from: &str, to: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE blobs SET region = $1 WHERE id = $2 AND region = $3")
            .bind(to)
            .bind(id.as_str())
            .bind(from)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
