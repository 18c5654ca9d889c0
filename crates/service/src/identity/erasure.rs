//! Erasure of a person (`DELETE /api/v1/me`, and an owner's
//! `POST /api/v1/orgs/{org_id}/members/{user_id}/erase`): their account is emptied and every
//! personal part of their audit events becomes unreadable, while the organizations keep their
//! content and every chain still verifies. See docs/privacy.md.
//!
//! The audit events a person did are version 2 (`docs/audit.md`): their address and detail are
//! sealed under the person's own key and the chain hashes a salted digest of them. Erasure
//! destroys that key in the same transaction as the rest, so no later read (and no backup
//! restored afterwards, whose key sets leave erased people's keys out) opens them again.

use serde_json::json;
use strongroom_domain::{Email, OrgId, UserId};

use super::Identity;
use super::throttle::account_scope;
use crate::audit::Record;
use crate::authz::{OwnerAuthz, SelfAuthz};
use crate::{Principal, Result, ServiceError};

impl Identity {
    /// Erases the signed-in user's account. Needs a recent re-authentication; refused while
    /// they are the only owner of an organization.
    pub async fn erase_me(&self, authz: &SelfAuthz<'_>) -> Result<()> {
        let p = authz.principal();
        self.ctx.require_recent_auth(p).await?;
        self.erase(By::Caller(p, "self"), authz.user_id()).await
    }

    /// Erases a member's account on an owner's request: only a member of this organization
    /// alone (someone who also belongs elsewhere erases their own account), never the owner
    /// themselves (that is `erase_me`).
    pub async fn erase_member(&self, authz: &OwnerAuthz<'_>, user_id: &UserId) -> Result<()> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        if user_id == authz.user_id() {
            return Err(ServiceError::Invalid(
                "to erase your own account, use DELETE /api/v1/me".into(),
            ));
        }
        let orgs = self.ctx.store.memberships_of(user_id).await?;
        if !orgs.iter().any(|(o, _, _)| o == org_id) {
            return Err(ServiceError::NotFound("member"));
        }
        if orgs.len() > 1 {
            return Err(ServiceError::Conflict(
                "this person also belongs to other organizations: only they can erase their \
                 account (DELETE /api/v1/me); remove them from this one instead"
                    .into(),
            ));
        }
        self.erase(By::Caller(p, "owner"), user_id).await
    }

    /// Erases the account with this address on the operator's request (`strongroom admin
    /// erase-user`), with the same refusal as a person's own request: never an organization's
    /// only owner.
    pub async fn erase_by_operator(&self, email: &Email) -> Result<UserId> {
        let user = self
            .ctx
            .store
            .user_by_email(email)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        self.erase(By::Operator, &user.id).await?;
        Ok(user.id)
    }

    /// Erases again, in a restored database, a person erased after its backup was taken (the
    /// backup's key set notes them): recorded as done by the system. `false` when they are not
    /// there, or erased already.
    pub async fn erase_again(&self, user_id: &UserId) -> Result<bool> {
        if self.ctx.store.user_erased(user_id).await? != Some(false) {
            return Ok(false);
        }
        self.erase(By::Restore, user_id).await?;
        Ok(true)
    }

    /// Erases `user_id`, recording `user.erase` in each organization they belonged to.
    async fn erase(&self, by: By<'_>, user_id: &UserId) -> Result<()> {
        let store = &self.ctx.store;
        let email = store
            .user_email(user_id)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let mut orgs: Vec<(OrgId, String)> = store
            .memberships_of(user_id)
            .await?
            .into_iter()
            .map(|(o, name, _)| (o, name))
            .collect();
        orgs.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let now = self.ctx.clock.now();
        let mut tx = store.begin().await?;
        // Every organization's chain first, in id order (as every other writer takes them),
        // then the person's rows.
        for (org_id, name) in &orgs {
            tx.lock_org(org_id).await?;
            let owner = tx
                .member_role(org_id, user_id)
                .await?
                .is_some_and(|r| r.is_owner());
            // A restore re-applies an erasure that already happened: it is not refused.
            if !matches!(by, By::Restore) && owner && tx.owner_count(org_id).await? <= 1 {
                return Err(ServiceError::Conflict(format!(
                    "this account is the only owner of the organization {name:?}: make another \
                     member an owner first"
                )));
            }
            let rec = match by {
                By::Caller(p, who) => {
                    let mut rec = Record::by(p, "user.erase", user_id).detail(json!({"by": who}));
                    rec.org_id = org_id;
                    rec
                }
                By::Operator | By::Restore => Record {
                    org_id,
                    actor: by.actor().into(),
                    subject: None,
                    action: "user.erase",
                    target: user_id.to_string(),
                    ip: String::new(),
                    detail: json!({"by": by.actor()}),
                },
            };
            self.ctx.audit.append(&mut tx, rec).await?;
        }
        let scopes = [account_scope(&email)];
        if !tx.erase_user(user_id, email.as_str(), &scopes, now).await? {
            return Err(ServiceError::NotFound("user"));
        }
        tx.commit().await?;
        tracing::info!(user = %user_id, by = by.actor(), orgs = orgs.len(), "erased a person's account");
        Ok(())
    }
}

/// Who asks for an erasure.
#[derive(Clone, Copy)]
enum By<'a> {
    /// A signed-in person: themselves (`"self"`) or an owner (`"owner"`).
    Caller(&'a Principal, &'static str),
    /// The operator, through `strongroom admin erase-user`.
    Operator,
    /// A restore, applying again an erasure made after its backup.
    Restore,
}

impl By<'_> {
    /// The audit trail's name for who asked.
    fn actor(&self) -> &'static str {
        match self {
            By::Caller(_, who) => who,
            By::Operator => "cli",
            By::Restore => "system",
        }
    }
}
