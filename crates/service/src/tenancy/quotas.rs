//! Storage quotas: per organization, in plaintext bytes and number of original assets. The
//! operator sets them (`strongroom admin set-quota`, or a server-wide default); members see their
//! usage. An upload is checked before its first byte is read, cut off as soon as it passes what
//! is left, and checked again at commit under the organization's lock, so concurrent uploads can
//! never together pass the quota.

use strongroom_domain::OrgId;
use strongroom_store::{QuotaRow, Tx, Usage};

use super::Tenancy;
use crate::authz::{OrgAuthz, perm};
use crate::ctx::Ctx;
use crate::{Quota, Result, ServiceError};

/// An organization's usage and limits, as members see them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageInfo {
    /// Plaintext bytes stored (original assets).
    pub bytes: u64,
    /// Assets stored.
    pub assets: u64,
    /// The byte limit in force (`None`: none).
    pub max_bytes: Option<u64>,
    /// The asset limit in force (`None`: none).
    pub max_assets: Option<u64>,
}

/// How many bytes an upload may still add, and why not when it may add none.
pub(crate) struct Headroom {
    /// Bytes left under the quota (`None`: no byte limit).
    pub(crate) bytes: Option<u64>,
}

fn over_assets(max: u64) -> ServiceError {
    ServiceError::QuotaExceeded(format!(
        "the organization's storage quota allows {max} assets and it holds that many (assets in \
         the trash count until purged): delete and purge some, or ask the operator to raise the quota"
    ))
}

fn over_bytes(max: u64) -> ServiceError {
    ServiceError::QuotaExceeded(format!(
        "this upload would pass the organization's storage quota of {max} bytes (assets in the \
         trash count until purged): delete and purge some assets, or ask the operator to raise \
         the quota"
    ))
}

impl Ctx {
    /// The limits in force for an organization: its own, else the server's default.
    pub(crate) async fn quota_of(&self, org_id: &OrgId) -> Result<Quota> {
        let own = self.store.quota(org_id).await?.unwrap_or_default();
        Ok(self.in_force(own))
    }

    fn in_force(&self, own: QuotaRow) -> Quota {
        let default = self.config.default_quota;
        Quota {
            max_bytes: own.max_bytes.or(default.max_bytes),
            max_assets: own.max_assets.or(default.max_assets),
        }
    }

    /// Refuses an upload that the quota leaves no room for; else what room is left.
    pub(crate) async fn upload_headroom(&self, org_id: &OrgId) -> Result<Headroom> {
        let quota = self.quota_of(org_id).await?;
        if quota.max_bytes.is_none() && quota.max_assets.is_none() {
            return Ok(Headroom { bytes: None });
        }
        let used = self.store.usage(org_id).await?;
        if let Some(max) = quota.max_assets
            && used.assets >= max
        {
            return Err(over_assets(max));
        }
        let bytes = quota.max_bytes.map(|max| max.saturating_sub(used.bytes));
        if bytes == Some(0) {
            return Err(over_bytes(quota.max_bytes.unwrap_or_default()));
        }
        Ok(Headroom { bytes })
    }

    /// The refusal for an upload cut off because it passed what the quota left.
    pub(crate) async fn quota_passed(&self, org_id: &OrgId) -> ServiceError {
        match self.quota_of(org_id).await {
            Ok(q) => over_bytes(q.max_bytes.unwrap_or_default()),
            Err(e) => e,
        }
    }

    /// The check at commit, inside the upload's transaction and under the organization's lock.
    /// Everything is read through `tx`: a pool connection taken while holding the write lock
    /// could wait on others that wait on this lock.
    pub(crate) async fn check_quota_in(
        &self,
        tx: &mut Tx,
        org_id: &OrgId,
        size: u64,
    ) -> Result<()> {
        let quota = self.in_force(tx.quota(org_id).await?.unwrap_or_default());
        if quota.max_bytes.is_none() && quota.max_assets.is_none() {
            return Ok(());
        }
        tx.lock_org(org_id).await?;
        let used: Usage = tx.usage(org_id).await?;
        if let Some(max) = quota.max_assets
            && used.assets >= max
        {
            return Err(over_assets(max));
        }
        if let Some(max) = quota.max_bytes
            && used.bytes.saturating_add(size) > max
        {
            return Err(over_bytes(max));
        }
        Ok(())
    }
}

impl Tenancy {
    /// What the caller's organization stores, and its limits.
    pub async fn usage(&self, authz: &OrgAuthz<'_, perm::OrgRead>) -> Result<UsageInfo> {
        let org = authz.org_id();
        let used = self.ctx.store.usage(org).await?;
        let quota = self.ctx.quota_of(org).await?;
        Ok(UsageInfo {
            bytes: used.bytes,
            assets: used.assets,
            max_bytes: quota.max_bytes,
            max_assets: quota.max_assets,
        })
    }
}
