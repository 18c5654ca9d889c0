//! The owner's proof: for what cannot be undone across an organization (erasing a member's
//! account, deleting the organization).

use strongroom_domain::{OrgId, UserId};

use super::Authz;
use crate::{Actor, Principal, Result, ServiceError};

/// Proof that a signed-in owner of one organization acts, having confirmed their password in
/// the last ten minutes: for what cannot be undone (erasing a member's account, deleting the
/// organization). API keys and every other role are refused.
#[derive(Debug)]
pub struct OwnerAuthz<'a> {
    pub(super) principal: &'a Principal,
    user_id: UserId,
}

impl OwnerAuthz<'_> {
    /// The owner acting.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }
}

impl Authz {
    /// Authorizes an owner's irreversible action in `org_id`: a signed-in session (never an
    /// API key, whatever its role), the owner role, a second factor if the organization
    /// requires one, and a recent re-authentication.
    pub async fn authorize_owner<'a>(
        &self,
        p: &'a Principal,
        org_id: &OrgId,
    ) -> Result<OwnerAuthz<'a>> {
        p.require_org(org_id)?;
        let Actor::Session { user_id, .. } = &p.actor else {
            return Err(ServiceError::Forbidden("this without a signed-in session"));
        };
        p.require_enrolled()?;
        if p.role != strongroom_domain::Role::Owner.as_str() {
            return Err(ServiceError::Forbidden("this: only an owner may"));
        }
        self.ctx.require_recent_auth(p).await?;
        Ok(OwnerAuthz {
            principal: p,
            user_id: user_id.clone(),
        })
    }
}
