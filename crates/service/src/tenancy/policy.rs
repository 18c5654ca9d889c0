//! The organization's security policy: whether every member must use a second factor, and who
//! has one.

use strongroom_store::MemberRow;

use strongroom_domain::OrgId;

use super::Tenancy;
use crate::audit::Record;
use crate::authz::{OrgAuthz, perm};
use crate::ops::region::latest_move;
use crate::{Result, ServiceError};

/// An organization as its members see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgDetail {
    /// Its id.
    pub id: OrgId,
    /// Its name.
    pub name: String,
    /// The data-residency region its content is stored in.
    pub region: String,
    /// Whether every member must use a second factor.
    pub require_mfa: bool,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Its latest move to another region, if it was ever moved.
    pub region_move: Option<RegionMoveSummary>,
}

/// How far a move to another region has come (no job internals).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionMoveSummary {
    /// Where it goes.
    pub to: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Blobs in the new region.
    pub blobs_in_region: u64,
    /// Blobs still elsewhere.
    pub blobs_elsewhere: u64,
}

impl Tenancy {
    /// The organization: its name, region, policy, and any move to another region.
    pub async fn org_detail(&self, authz: &OrgAuthz<'_, perm::OrgRead>) -> Result<OrgDetail> {
        let org = authz.org_id();
        let row = self
            .ctx
            .store
            .org(org)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let require_mfa = self.ctx.store.requires_mfa(org).await?;
        let region_move = latest_move(&self.ctx, org)
            .await?
            .map(|m| RegionMoveSummary {
                to: m.to,
                status: m.status,
                blobs_in_region: m.blobs_in_region,
                blobs_elsewhere: m.blobs_elsewhere,
            });
        Ok(OrgDetail {
            id: row.id,
            name: row.name.as_str().to_owned(),
            region: row.region,
            require_mfa,
            created_at: row.created_at.rfc3339(),
            region_move,
        })
    }

    /// Requires (or stops requiring) a second factor of every member.
    pub async fn set_require_mfa(
        &self,
        authz: &OrgAuthz<'_, perm::OrgManage>,
        required: bool,
    ) -> Result<()> {
        let (p, org) = (authz.principal(), authz.org_id());
        let mut tx = self.ctx.store.begin().await?;
        tx.set_require_mfa(org, required).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "org.policy_change", org)
                    .detail(serde_json::json!({"require_mfa": required})),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The organization's members, with whether each has two-factor authentication on.
    pub async fn list_members(
        &self,
        authz: &OrgAuthz<'_, perm::MemberManage>,
    ) -> Result<Vec<MemberRow>> {
        Ok(self.ctx.store.members(authz.org_id()).await?)
    }
}
