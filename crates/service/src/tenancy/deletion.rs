//! Deleting a whole organization (`DELETE /api/v1/orgs/{org_id}`): an owner, signed in and
//! re-authenticated, types the organization's name, and everything it holds is purged in one
//! transaction. See docs/privacy.md.
//!
//! Content is crypto-shredded (every blob row, and so every data key, goes with the commit; the
//! shred pass takes the keys out of the backups). Members who belong to this organization alone
//! are erased with it, as `DELETE /api/v1/me` would. Of the audit trail only the deletion's own
//! event is kept: the organization's row stays as a tombstone holding the chain's head, so
//! `audit verify` still proves the deletion was done through Strongroom, with the root key.

use serde_json::json;
use strongroom_domain::{OrgId, UserId};

use super::Tenancy;
use crate::audit::Record;
use crate::authz::OwnerAuthz;
use crate::identity::throttle::account_scope;
use crate::{Result, ServiceError};

/// What a deletion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgDeleted {
    /// Assets purged.
    pub assets: u64,
    /// Stored objects (originals and renditions) whose keys were destroyed.
    pub blobs: usize,
    /// Members who belonged to this organization alone, erased with it.
    pub members_erased: usize,
}

impl Tenancy {
    /// Deletes the owner's organization for good, when `confirm` is its name.
    pub async fn delete_org(&self, authz: &OwnerAuthz<'_>, confirm: &str) -> Result<OrgDeleted> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        let store = &self.ctx.store;
        let org = store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        confirmed(org.name.as_str(), confirm)?;
        let done = self
            .purge(org_id, |n| {
                Record::by(p, "org.delete", org_id).detail(json!({"members_erased": n}))
            })
            .await?;
        done.ok_or(ServiceError::NotFound("organization"))
    }

    /// Deletes an organization on the operator's request (`strongroom admin delete-org`), when
    /// `confirm` is its name.
    pub async fn delete_org_by_operator(
        &self,
        org_id: &OrgId,
        confirm: &str,
    ) -> Result<OrgDeleted> {
        let store = &self.ctx.store;
        if store.org_deleted(org_id).await? != Some(false) {
            return Err(ServiceError::NotFound("organization"));
        }
        let org = store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        confirmed(org.name.as_str(), confirm)?;
        let done = self
            .purge(org_id, |n| {
                unattended(org_id, "cli", json!({"members_erased": n}))
            })
            .await?;
        done.ok_or(ServiceError::NotFound("organization"))
    }

    /// Deletes again, in a restored database, an organization deleted after its backup was
    /// taken (the backup's key set notes it). `None` when it is not there, or deleted already.
    pub async fn delete_org_again(&self, org_id: &OrgId) -> Result<Option<OrgDeleted>> {
        self.purge(org_id, |n| {
            unattended(
                org_id,
                "system",
                json!({"members_erased": n, "reason": "deleted after the backup this database was restored from"}),
            )
        })
        .await
    }

    /// Purges `org_id`, recording `event(members erased)` as the chain's last event.
    async fn purge<'a>(
        &self,
        org_id: &'a OrgId,
        event: impl FnOnce(usize) -> Record<'a>,
    ) -> Result<Option<OrgDeleted>> {
        let store = &self.ctx.store;
        // The people who belong here alone, with their addresses (read before the transaction:
        // a membership elsewhere added meanwhile is checked again inside it).
        let mut alone: Vec<(UserId, strongroom_domain::Email)> = Vec::new();
        for m in store.members(org_id).await? {
            if store.memberships_of(&m.user_id).await?.len() == 1 {
                alone.push((m.user_id, m.email));
            }
        }
        let now = self.ctx.clock.now();
        let mut tx = store.begin().await?;
        tx.lock_org(org_id).await?;
        if store.org_deleted(org_id).await? != Some(false) {
            return Ok(None);
        }
        let still_alone = tx.members_of_org_alone(org_id).await?;
        alone.retain(|(u, _)| still_alone.contains(u));
        // The last event of the chain, and the only one kept.
        self.ctx.audit.append(&mut tx, event(alone.len())).await?;
        let Some(deleted) = tx.delete_org(org_id, now).await? else {
            return Ok(None);
        };
        for (user, email) in &alone {
            let scopes = [account_scope(email)];
            tx.erase_user(user, email.as_str(), &scopes, now).await?;
        }
        tx.commit().await?;
        tracing::info!(org = %org_id, assets = deleted.assets, blobs = deleted.blobs.len(),
            members_erased = alone.len(), "deleted an organization");
        // The keys are gone: the objects are unreadable already. Removing them can take a
        // while on a large organization, so it goes on after the answer (and the orphan sweep
        // removes whatever this misses).
        let ctx = std::sync::Arc::clone(&self.ctx);
        let blobs = deleted.blobs.clone();
        tokio::spawn(async move { ctx.remove_objects(&blobs).await });
        Ok(Some(OrgDeleted {
            assets: deleted.assets,
            blobs: deleted.blobs.len(),
            members_erased: alone.len(),
        }))
    }
}

/// Refuses unless `confirm` is the organization's name.
fn confirmed(name: &str, confirm: &str) -> Result<()> {
    if confirm.trim() == name {
        Ok(())
    } else {
        Err(ServiceError::Invalid(
            "type the organization's name exactly as it is shown to confirm: nothing was deleted"
                .into(),
        ))
    }
}

/// The deletion event of a deletion no signed-in person asked for: the operator's (`cli`) or a
/// restore's (`system`).
fn unattended<'a>(org_id: &'a OrgId, actor: &str, detail: serde_json::Value) -> Record<'a> {
    Record {
        org_id,
        actor: actor.into(),
        subject: None,
        action: "org.delete",
        target: org_id.to_string(),
        ip: String::new(),
        detail,
    }
}
