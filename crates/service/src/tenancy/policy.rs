//! The organization's security policy: whether every member must use a second factor, and who
//! has one.

use strongroom_store::MemberRow;

use super::Tenancy;
use crate::Result;
use crate::audit::Record;
use crate::authz::{OrgAuthz, perm};

impl Tenancy {
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
