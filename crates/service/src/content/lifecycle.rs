//! An asset's end: deleted to its space's trash (restorable for the organization's grace
//! period), then purged by crypto-shredding, by the lifecycle job or at once with
//! `asset:purge`. A space's retention rule sends assets older than its number of days to the
//! trash. The job runs on every node; each step is a conditional update, so two nodes never act
//! twice on one asset.

use strongroom_domain::{AssetId, OrgId};
use strongroom_store::{AssetRow, Page};

use super::ContentService;
use super::assets::{Asset, ListQuery, Space};
use crate::audit::Record;
use crate::authz::{AssetAuthz, SpaceAuthz, TrashedAssetAuthz, perm};
use crate::{Result, ServiceError};

/// The longest retention rule a space may have, days (about 100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// The bounds of an organization's grace period in the trash, days.
pub const TRASH_DAYS: std::ops::RangeInclusive<u32> = 1..=365;
/// How many assets one pass of the lifecycle job takes of each kind; the rest wait for the next.
const BATCH: u32 = 500;

/// What one pass of the lifecycle job did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LifecycleReport {
    /// Assets a retention rule moved to the trash.
    pub trashed: u64,
    /// Assets purged because their grace period in the trash ended.
    pub purged: u64,
}

/// Who a lifecycle step is recorded as.
enum By<'a> {
    /// A caller with a proof.
    Caller(&'a crate::Principal),
    /// The lifecycle job, for this reason.
    Job(&'static str),
}

impl By<'_> {
    fn record<'r>(&self, org_id: &'r OrgId, action: &'static str, id: &AssetId) -> Record<'r> {
        match self {
            By::Caller(p) => Record {
                org_id,
                ..Record::by(p, action, id)
            },
            By::Job(why) => Record {
                org_id,
                actor: format!("system:{why}"),
                subject: None,
                action,
                target: id.to_string(),
                ip: String::new(),
                detail: serde_json::json!({}),
            },
        }
    }

    fn actor(&self) -> String {
        match self {
            By::Caller(p) => p.actor.audit_name(),
            By::Job(why) => format!("system:{why}"),
        }
    }
}

impl ContentService {
    /// Deletes an asset to its space's trash: from then on it is not listed, read, shared or
    /// streamed, until restored or purged.
    pub async fn delete_asset(&self, authz: &AssetAuthz<'_, perm::AssetDelete>) -> Result<()> {
        let (p, id) = (authz.principal(), &authz.asset().id);
        self.trash(&p.org_id, id, By::Caller(p))
            .await?
            .ok_or(ServiceError::NotFound("asset"))?;
        Ok(())
    }

    async fn trash(&self, org_id: &OrgId, id: &AssetId, by: By<'_>) -> Result<Option<AssetRow>> {
        let now = self.ctx.clock.now();
        // Read before the transaction: a pool connection taken while holding the write lock
        // could wait on others that wait on this lock.
        let days = self.ctx.store.trash_days(org_id).await?;
        let mut tx = self.ctx.store.begin().await?;
        let Some(row) = tx.trash_asset(org_id, id, now, &by.actor()).await? else {
            return Ok(None);
        };
        let purge_at = now.plus_secs(i64::from(days) * 86_400);
        let detail = serde_json::json!({"filename": row.filename, "space_id": row.space_id,
            "to": "trash", "purge_after": purge_at.rfc3339()});
        self.ctx
            .audit
            .append(
                &mut tx,
                by.record(org_id, "asset.delete", id).detail(detail),
            )
            .await?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// Brings an asset back from the trash, as it was.
    pub async fn restore_asset(
        &self,
        authz: &TrashedAssetAuthz<'_, perm::AssetDelete>,
    ) -> Result<Asset> {
        let (p, id) = (authz.principal(), &authz.asset().id);
        let mut tx = self.ctx.store.begin().await?;
        let row = tx
            .restore_asset(&p.org_id, id)
            .await?
            .ok_or(ServiceError::NotFound("asset"))?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "asset.restore", id)
                    .detail(serde_json::json!({"filename": row.filename})),
            )
            .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Purges an asset, live or in the trash: its data key goes in the same transaction as its
    /// row and the audit event (crypto-shredding: every copy of the blob is unreadable from
    /// then on), then the stored objects are removed.
    pub async fn purge_asset(&self, authz: &AssetAuthz<'_, perm::AssetPurge>) -> Result<()> {
        let (p, id) = (authz.principal(), &authz.asset().id);
        if self.shred(&p.org_id, id, By::Caller(p)).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound("asset"))
        }
    }

    /// Crypto-shreds one asset; `false` when it is already gone.
    async fn shred(&self, org_id: &OrgId, id: &AssetId, by: By<'_>) -> Result<bool> {
        let mut tx = self.ctx.store.begin().await?;
        // Renditions (and their data keys) go in the same transaction as the asset.
        let renditions = tx.delete_renditions(id).await?;
        let Some(row) = tx.delete_asset(org_id, id).await? else {
            return Ok(false);
        };
        tx.delete_blob(&row.blob_id).await?;
        let detail = serde_json::json!({"filename": row.filename, "sha256": row.sha256,
            "from": if row.deleted_at.is_some() { "trash" } else { "space" }});
        self.ctx
            .audit
            .append(&mut tx, by.record(org_id, "asset.purge", id).detail(detail))
            .await?;
        tx.commit().await?;
        self.ctx.remove_objects(&renditions).await;
        self.ctx.remove_objects(&[row.blob_id]).await;
        Ok(true)
    }

    /// A space's trash, with when each asset was deleted.
    pub async fn list_trash(
        &self,
        authz: &SpaceAuthz<'_, perm::AssetDelete>,
        q: ListQuery,
    ) -> Result<Page<Asset>> {
        let page = self
            .ctx
            .store
            .trash(&authz.space().id, q.after.as_deref(), q.limit)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(Asset::from).collect(),
            next: page.next,
        })
    }

    /// Sets (or removes, with `None`) a space's retention rule: its assets go to the trash
    /// this many days after their upload, at the lifecycle job's next pass.
    pub async fn set_retention(
        &self,
        authz: &SpaceAuthz<'_, perm::SpaceManage>,
        days: Option<u32>,
    ) -> Result<Space> {
        let (p, space) = (authz.principal(), authz.space());
        if let Some(d) = days
            && !(1..=MAX_RETENTION_DAYS).contains(&d)
        {
            return Err(ServiceError::Invalid(format!(
                "retention_days must be between 1 and {MAX_RETENTION_DAYS}, or null to keep assets until they are deleted"
            )));
        }
        let mut tx = self.ctx.store.begin().await?;
        if space.retention_days != days {
            tx.set_space_retention(&p.org_id, &space.id, days).await?;
            self.ctx
                .audit
                .append(
                    &mut tx,
                    Record::by(p, "space.retention", &space.id)
                        .detail(serde_json::json!({"retention_days": days})),
                )
                .await?;
        }
        tx.commit().await?;
        let mut row = space.clone();
        row.retention_days = days;
        Ok(row.into())
    }

    /// One pass of the lifecycle job: assets past their space's retention go to the trash,
    /// and assets past the grace period in the trash are purged. Each step is audited, as the
    /// `system:retention` and `system:trash` actors.
    pub async fn enforce_lifecycle(&self) -> Result<LifecycleReport> {
        let mut report = LifecycleReport::default();
        let now = self.ctx.clock.now();
        for due in self.ctx.store.retention_due(now, BATCH).await? {
            if self
                .trash(&due.org_id, &due.id, By::Job("retention"))
                .await?
                .is_some()
            {
                report.trashed += 1;
            }
        }
        for due in self.ctx.store.trash_expired(now, BATCH).await? {
            if self.shred(&due.org_id, &due.id, By::Job("trash")).await? {
                report.purged += 1;
            }
        }
        if report != LifecycleReport::default() {
            tracing::info!(
                trashed = report.trashed,
                purged = report.purged,
                "lifecycle: retention and trash enforced"
            );
        }
        Ok(report)
    }
}
