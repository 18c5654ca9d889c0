//! What every context shares: the store, the blob store, the clock, the limits in force and the
//! audit log every use case appends to, with the few key-free lookups several contexts need.
//!
//! No secret lives here but the audit log's chain key, which every context needs to append its
//! events; each context derives the keys of its own work itself (see the crate's table).

use std::sync::Arc;

use strongroom_blob::{BlobStore, DEFAULT_REGION, Regions};
use strongroom_crypto::keys::RootKey;
use strongroom_domain::{BlobId, Clock, OrgId, PermissionSet, RoleRef, UserId};
use strongroom_store::Store;

use crate::audit::log::AuditLog;
use crate::authz::principal::Access;
use crate::{Result, ServiceConfig, ServiceError};

/// The shared context of every service.
pub(crate) struct Ctx {
    pub(crate) store: Store,
    pub(crate) blobs: Arc<Regions>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: ServiceConfig,
    pub(crate) audit: AuditLog,
}

impl Ctx {
    pub(crate) fn new(
        store: Store,
        blobs: Arc<Regions>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
        root: &RootKey,
    ) -> Ctx {
        let audit = AuditLog::new(store.clone(), Arc::clone(&clock), root);
        Ctx {
            store,
            blobs,
            clock,
            config,
            audit,
        }
    }

    /// A role's name and permissions. A custom role is read from the database each time, so an
    /// edit reaches every holder at once; one that no longer exists grants nothing.
    pub(crate) async fn resolve_role(
        &self,
        org_id: &OrgId,
        role: &RoleRef,
    ) -> Result<(String, PermissionSet)> {
        Ok(match role {
            RoleRef::Builtin(r) => (r.as_str().to_owned(), PermissionSet::of(r.permissions())),
            RoleRef::Custom(id) => match self.store.custom_role(org_id, id).await? {
                Some(row) => (row.name.as_str().to_owned(), row.permissions),
                None => (id.to_string(), PermissionSet::EMPTY),
            },
        })
    }

    /// What a member may do: their organization role, plus the roles granted to them in single
    /// spaces.
    pub(crate) async fn member_access(
        &self,
        org_id: &OrgId,
        user_id: &UserId,
        role: &RoleRef,
    ) -> Result<Access> {
        let (_, org) = self.resolve_role(org_id, role).await?;
        let mut spaces = Vec::new();
        for grant in self.store.grants_of(org_id, user_id).await? {
            let (_, set) = self.resolve_role(org_id, &grant.role).await?;
            spaces.push((grant.space_id, set));
        }
        Ok(Access {
            org,
            cap: PermissionSet::all(),
            spaces,
        })
    }

    /// Whether the organization requires a second factor that this user has not set up.
    pub(crate) async fn mfa_enrolment_pending(&self, org: &OrgId, user: &UserId) -> Result<bool> {
        if !self.store.requires_mfa(org).await? {
            return Ok(false);
        }
        Ok(!self.store.totp(user).await?.is_some_and(|t| t.active))
    }

    /// Organization `org_id`'s region and the blob store its new content is written to (that
    /// region's backends; reads fall back to every region). The region goes into the row of
    /// each blob written, so a move that starts meanwhile finds the blob where it is.
    pub(crate) async fn org_blobs(&self, org_id: &OrgId) -> Result<(String, Arc<dyn BlobStore>)> {
        let region = self
            .store
            .org_region(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let blobs = self.region_blobs(&region)?;
        Ok((region, blobs))
    }

    /// The region a new organization gets: `asked` when it has backends; else `default` when
    /// it has, or the only region there is. A clear error otherwise.
    pub(crate) fn resolve_region(&self, asked: Option<&str>) -> Result<String> {
        let names: Vec<&str> = self.blobs.names().collect();
        let listed = || names.join(", ");
        match asked {
            Some(r) if self.blobs.contains(r) => Ok(r.to_owned()),
            Some(r) => Err(ServiceError::Invalid(format!(
                "no storage backend is in region '{r}': this server's regions are {}",
                listed()
            ))),
            None if self.blobs.contains(DEFAULT_REGION) => Ok(DEFAULT_REGION.to_owned()),
            None if names.len() == 1 => Ok(names[0].to_owned()),
            None => Err(ServiceError::Invalid(format!(
                "this server has several regions ({}): say which one with --region",
                listed()
            ))),
        }
    }

    /// The blob store of `region` (a blob row's): reads fall back to every other region.
    pub(crate) fn region_blobs(&self, region: &str) -> Result<Arc<dyn BlobStore>> {
        Ok(self.blobs.in_region(region)?)
    }

    /// Removes stored objects whose rows are gone, from every region; a failure leaves them to
    /// the sweep.
    pub(crate) async fn remove_objects(&self, blobs: &[BlobId]) {
        for id in blobs {
            if let Err(e) = self.blobs.delete_everywhere(id.as_str()).await {
                tracing::warn!(blob = %id, error = %e, "could not remove a shredded blob");
            }
        }
    }
}
