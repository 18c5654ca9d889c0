//! Storage quotas: what an organization stores (original assets: their plaintext bytes and their
//! number) and the limits the operator set for it.

use sqlx::Row;
use strongroom_domain::OrgId;

use crate::{Result, Store, Tx};

/// An organization's stored originals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Plaintext bytes of every asset (renditions not counted).
    pub bytes: u64,
    /// Number of assets.
    pub assets: u64,
}

/// The limits set for one organization; `None`: the server's default applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaRow {
    /// Most plaintext bytes.
    pub max_bytes: Option<u64>,
    /// Most assets.
    pub max_assets: Option<u64>,
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

// Assets in the trash count: their bytes are stored until they are purged.
// PostgreSQL sums a BIGINT column as NUMERIC: cast it back.
const USAGE_SQL: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes, COUNT(*) AS n \
                         FROM assets WHERE org_id = $1";

fn usage_of(row: &sqlx::any::AnyRow) -> Result<Usage> {
    Ok(Usage {
        bytes: unsigned(row.try_get::<i64, _>("bytes")?),
        assets: unsigned(row.try_get::<i64, _>("n")?),
    })
}

fn quota_of(row: &sqlx::any::AnyRow) -> Result<QuotaRow> {
    Ok(QuotaRow {
        max_bytes: row.try_get::<Option<i64>, _>("max_bytes")?.map(unsigned),
        max_assets: row.try_get::<Option<i64>, _>("max_assets")?.map(unsigned),
    })
}

impl Store {
    /// What the organization stores now.
    pub async fn usage(&self, org_id: &OrgId) -> Result<Usage> {
        let row = sqlx::query(USAGE_SQL)
            .bind(org_id.as_str())
            .fetch_one(self.pool())
            .await?;
        usage_of(&row)
    }

    /// The organization's own limits (`None` where none is set); `None` for an unknown org.
    pub async fn quota(&self, org_id: &OrgId) -> Result<Option<QuotaRow>> {
        let row = sqlx::query("SELECT max_bytes, max_assets FROM orgs WHERE id = $1")
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(quota_of).transpose()
    }
}

impl Tx {
    /// What the organization stores, read inside the transaction (after `lock_org`, so
    /// concurrent uploads of one organization are counted one after the other).
    pub async fn usage(&mut self, org_id: &OrgId) -> Result<Usage> {
        let row = sqlx::query(USAGE_SQL)
            .bind(org_id.as_str())
            .fetch_one(self.conn())
            .await?;
        usage_of(&row)
    }

    /// The organization's own limits, read inside the transaction.
    pub async fn quota(&mut self, org_id: &OrgId) -> Result<Option<QuotaRow>> {
        let row = sqlx::query("SELECT max_bytes, max_assets FROM orgs WHERE id = $1")
            .bind(org_id.as_str())
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(quota_of).transpose()
    }

    /// Sets (or, with `None`, clears) an organization's limits; false for an unknown org.
    pub async fn set_quota(&mut self, org_id: &OrgId, quota: QuotaRow) -> Result<bool> {
        let to_db = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let done = sqlx::query("UPDATE orgs SET max_bytes = $1, max_assets = $2 WHERE id = $3")
            .bind(to_db(quota.max_bytes))
            .bind(to_db(quota.max_assets))
            .bind(org_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
