//! Trash and retention: an asset deleted to its space's trash, restored from it, purged when the
//! organization's grace period has passed, and moved there when its space's retention says so.

use strongroom_domain::{AssetId, OrgId, SpaceId, Timestamp};

use crate::tenancy::{ASSET_COLUMNS, AssetState, asset};
use crate::{AssetRow, Page, Result, Store, Tx, parsed};

/// A day, in the milliseconds timestamps are stored in.
const DAY_MS: i64 = 86_400_000;

/// An asset the lifecycle job acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAsset {
    /// Its organization.
    pub org_id: OrgId,
    /// The asset.
    pub id: AssetId,
}

impl Store {
    /// The asset with this id in the trash of `org_id`'s spaces.
    pub async fn trashed_asset(&self, org_id: &OrgId, id: &AssetId) -> Result<Option<AssetRow>> {
        self.asset_where(org_id, id, AssetState::Trashed).await
    }

    /// The asset with this id, live or in the trash: for internal work (media processing) that
    /// must carry on while an asset sits in the trash, in case it is restored.
    pub async fn asset_in_any_state(
        &self,
        org_id: &OrgId,
        id: &AssetId,
    ) -> Result<Option<AssetRow>> {
        self.asset_where(org_id, id, AssetState::Any).await
    }

    /// Whether the asset exists and is not in the trash (a stream stops with its asset).
    pub async fn asset_is_live(&self, id: &AssetId) -> Result<bool> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM assets WHERE id = $1 AND deleted_at IS NULL")
                .bind(id.as_str())
                .fetch_one(self.pool())
                .await?;
        Ok(n > 0)
    }

    /// The space's trash, in id order (creation order) after `after`.
    pub async fn trash(
        &self,
        space_id: &SpaceId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<AssetRow>> {
        let sql = format!(
            "SELECT {ASSET_COLUMNS} FROM assets \
             WHERE space_id = $1 AND id > $2 AND deleted_at IS NOT NULL ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(space_id.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(self.pool())
            .await?;
        let items = rows
            .iter()
            .map(|r| asset(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |a| a.id.to_string()))
    }

    /// The organization's grace period: days an asset stays in the trash before it is purged.
    pub async fn trash_days(&self, org_id: &OrgId) -> Result<u32> {
        let days: i64 = sqlx::query_scalar("SELECT trash_days FROM orgs WHERE id = $1")
            .bind(org_id.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(u32::try_from(days).unwrap_or(0))
    }

    /// Assets whose grace period in the trash has ended at `now`, oldest deletions first.
    pub async fn trash_expired(&self, now: Timestamp, limit: u32) -> Result<Vec<DueAsset>> {
        let rows = sqlx::query(
            "SELECT a.id, a.org_id FROM assets a JOIN orgs o ON o.id = a.org_id \
             WHERE a.deleted_at IS NOT NULL AND a.deleted_at <= $1 - o.trash_days * $2 \
             ORDER BY a.deleted_at LIMIT $3",
        )
        .bind(now.millis())
        .bind(DAY_MS)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(due).collect()
    }

    /// Live assets older than their space's retention at `now`, oldest first.
    pub async fn retention_due(&self, now: Timestamp, limit: u32) -> Result<Vec<DueAsset>> {
        let rows = sqlx::query(
            "SELECT a.id, a.org_id FROM assets a JOIN spaces s ON s.id = a.space_id \
             WHERE a.deleted_at IS NULL AND s.retention_days IS NOT NULL \
             AND a.created_at <= $1 - s.retention_days * $2 \
             ORDER BY a.created_at LIMIT $3",
        )
        .bind(now.millis())
        .bind(DAY_MS)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(due).collect()
    }
}

fn due(row: &sqlx::any::AnyRow) -> Result<DueAsset> {
    Ok(DueAsset {
        org_id: parsed(row, "assets", "org_id", OrgId::parse)?,
        id: parsed(row, "assets", "id", AssetId::parse)?,
    })
}

impl Tx {
    /// Moves a live asset of `org_id` to its space's trash, recording who did (`by`: the
    /// audit trail's actor name); returns it, or `None` if there is no such live asset (already
    /// deleted, by another node too).
    pub async fn trash_asset(
        &mut self,
        org_id: &OrgId,
        id: &AssetId,
        at: Timestamp,
        by: &str,
    ) -> Result<Option<AssetRow>> {
        self.set_deleted(org_id, id, Some((at, by))).await
    }

    /// Brings an asset of `org_id` back from the trash; `None` if it is not there.
    pub async fn restore_asset(
        &mut self,
        org_id: &OrgId,
        id: &AssetId,
    ) -> Result<Option<AssetRow>> {
        self.set_deleted(org_id, id, None).await
    }

    /// Moves an asset between its space (`deleted: None`) and its trash, only from the other
    /// one: the conditional update is what lets two nodes act on an asset at most once.
    async fn set_deleted(
        &mut self,
        org_id: &OrgId,
        id: &AssetId,
        deleted: Option<(Timestamp, &str)>,
    ) -> Result<Option<AssetRow>> {
        let from = if deleted.is_some() {
            "IS NULL"
        } else {
            "IS NOT NULL"
        };
        let sql = format!(
            "UPDATE assets SET deleted_at = $3, deleted_by = $4 \
             WHERE id = $1 AND org_id = $2 AND deleted_at {from} RETURNING {ASSET_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .bind(deleted.map(|(at, _)| at.millis()))
            .bind(deleted.map(|(_, by)| by))
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| asset(self.seal(), &r)).transpose()
    }

    /// Sets (or, with `None`, removes) a space's retention rule.
    pub async fn set_space_retention(
        &mut self,
        org_id: &OrgId,
        space_id: &SpaceId,
        days: Option<u32>,
    ) -> Result<()> {
        sqlx::query("UPDATE spaces SET retention_days = $1 WHERE id = $2 AND org_id = $3")
            .bind(days.map(i64::from))
            .bind(space_id.as_str())
            .bind(org_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Sets the organization's grace period in the trash, days.
    pub async fn set_trash_days(&mut self, org_id: &OrgId, days: u32) -> Result<()> {
        sqlx::query("UPDATE orgs SET trash_days = $1 WHERE id = $2")
            .bind(i64::from(days))
            .bind(org_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
