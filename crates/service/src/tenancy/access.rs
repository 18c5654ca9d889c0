//! Who may do what: custom roles, member role changes and removal (never the last owner),
//! and space grants (collaborators); invitations by email are in `invitations`.
//!
//! One rule runs through all of it: nobody hands out, edits or takes away more than they hold.
//! A role assigned, granted or edited must be within the caller's own permissions, and a member
//! whose permissions exceed the caller's cannot be changed or removed by them.

use std::collections::HashMap;

use strongroom_domain::{
    Email, Name, OrgId, Permission, PermissionSet, Role, RoleId, RoleRef, SpaceId, Timestamp,
    UserId,
};
use strongroom_store::{GrantRow, RoleRow};

use super::Tenancy;
use crate::audit::Record;
use crate::authz::{OrgAuthz, SpaceAuthz, perm};
use crate::ctx::Ctx;
use crate::keys::{is_admin_level, last_owner};
use crate::{Principal, Result, ServiceError};

/// The longest permission list a custom role may have is every permission; names are short.
const MAX_ROLE_NAME: usize = 64;

/// A role as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleInfo {
    /// The custom role's id; `None` for a built-in role.
    pub id: Option<RoleId>,
    /// Its name.
    pub name: String,
    /// Whether it is built in (and so cannot be changed).
    pub builtin: bool,
    /// What it grants.
    pub permissions: PermissionSet,
}

impl From<RoleRow> for RoleInfo {
    fn from(r: RoleRow) -> Self {
        RoleInfo {
            id: Some(r.id),
            name: r.name.as_str().to_owned(),
            builtin: false,
            permissions: r.permissions,
        }
    }
}

/// A space grant as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GrantInfo {
    /// The space.
    pub space_id: SpaceId,
    /// The user.
    pub user_id: UserId,
    /// Their email.
    pub email: Email,
    /// The role's name.
    pub role: String,
    /// When it was granted.
    pub created_at: Timestamp,
}

/// Names of an organization's custom roles, for listings.
pub(crate) struct RoleNames(HashMap<RoleId, String>);

impl RoleNames {
    /// A role's display name.
    pub(crate) fn name(&self, role: &RoleRef) -> String {
        match role {
            RoleRef::Builtin(r) => r.as_str().to_owned(),
            RoleRef::Custom(id) => self.0.get(id).cloned().unwrap_or_else(|| id.to_string()),
        }
    }
}

fn check_role_name(name: &Name) -> Result<()> {
    let n = name.as_str();
    if n.parse::<Role>().is_ok() || n.starts_with("rol_") {
        return Err(ServiceError::Invalid(format!(
            "{n:?} is a built-in role's name or looks like a role id: choose another name"
        )));
    }
    if n.chars().count() > MAX_ROLE_NAME {
        return Err(ServiceError::Invalid(format!(
            "a role name has at most {MAX_ROLE_NAME} characters"
        )));
    }
    Ok(())
}

fn parse_permissions(names: &[String]) -> Result<PermissionSet> {
    if names.is_empty() {
        return Err(ServiceError::Invalid(
            "permissions must list at least one permission, e.g. [\"asset:read\"]".into(),
        ));
    }
    PermissionSet::parse(names).map_err(|e| {
        let known: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        ServiceError::Invalid(format!("{e}; known permissions: {}", known.join(", ")))
    })
}

impl Ctx {
    /// The role a name from the outside world means in an organization: a built-in name, a
    /// custom role's name, or a custom role's id.
    pub(crate) async fn role_named(&self, org_id: &OrgId, name: &str) -> Result<RoleRef> {
        if let Ok(r) = name.parse::<Role>() {
            return Ok(RoleRef::Builtin(r));
        }
        let found = match RoleId::parse(name) {
            Ok(id) => self.store.custom_role(org_id, &id).await?,
            Err(_) => self.store.custom_role_by_name(org_id, name).await?,
        };
        found.map(|r| RoleRef::Custom(r.id)).ok_or_else(|| {
            ServiceError::Invalid(format!(
                "unknown role {name:?}: use owner, admin, editor, contributor, viewer, \
                 collaborator, or one of the organization's custom roles"
            ))
        })
    }

    /// The display names of an organization's custom roles.
    pub(crate) async fn role_names(&self, org_id: &OrgId) -> Result<RoleNames> {
        Ok(RoleNames(
            self.store
                .custom_roles(org_id)
                .await?
                .into_iter()
                .map(|r| (r.id, r.name.as_str().to_owned()))
                .collect(),
        ))
    }
}

impl Tenancy {
    /// Resolves a role name and refuses it unless the caller holds every permission it grants
    /// (in `space`, for a space grant); an admin-level role also needs a recent sign-in.
    pub(super) async fn assignable(
        &self,
        p: &Principal,
        name: &str,
        space: Option<&SpaceId>,
    ) -> Result<(RoleRef, String, PermissionSet)> {
        let role = self.ctx.role_named(&p.org_id, name).await?;
        let (display, perms) = self.ctx.resolve_role(&p.org_id, &role).await?;
        let own = match space {
            Some(s) => p.permissions_in(s),
            None => p.permissions(),
        };
        if !perms.is_subset(own) {
            return Err(ServiceError::Forbidden(
                "handing out a role with permissions you do not have",
            ));
        }
        if is_admin_level(perms) {
            self.ctx.require_recent_auth(p).await?;
        }
        Ok((role, display, perms))
    }

    // ----- custom roles -------------------------------------------------------------------

    /// The built-in roles and the organization's custom roles.
    pub async fn list_roles(&self, authz: &OrgAuthz<'_, perm::OrgRead>) -> Result<Vec<RoleInfo>> {
        let org_id = authz.org_id();
        let builtin = Role::ALL.into_iter().map(|r| RoleInfo {
            id: None,
            name: r.as_str().to_owned(),
            builtin: true,
            permissions: PermissionSet::of(r.permissions()),
        });
        let custom = self.ctx.store.custom_roles(org_id).await?;
        Ok(builtin
            .chain(custom.into_iter().map(RoleInfo::from))
            .collect())
    }

    /// Defines a custom role, with permissions the caller holds.
    pub async fn create_role(
        &self,
        authz: &OrgAuthz<'_, perm::RoleManage>,
        name: Name,
        permissions: &[String],
    ) -> Result<RoleInfo> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        check_role_name(&name)?;
        let perms = parse_permissions(permissions)?;
        if !perms.is_subset(p.permissions()) {
            return Err(ServiceError::Forbidden(
                "defining a role with permissions you do not have",
            ));
        }
        let row = RoleRow {
            id: RoleId::generate(),
            org_id: org_id.clone(),
            name,
            permissions: perms,
            created_at: self.ctx.clock.now(),
        };
        let mut tx = self.ctx.store.begin().await?;
        tx.insert_role(&row).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "role.create", &row.id)
                    .detail(serde_json::json!({"name": row.name, "permissions": perms})),
            )
            .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// A custom role of the caller's organization that the caller may change: one granting
    /// nothing beyond the caller's own permissions.
    async fn managed_role(
        &self,
        authz: &OrgAuthz<'_, perm::RoleManage>,
        id: &RoleId,
    ) -> Result<RoleRow> {
        let p = authz.principal();
        let row = self
            .ctx
            .store
            .custom_role(&p.org_id, id)
            .await?
            .ok_or(ServiceError::NotFound("role"))?;
        if !row.permissions.is_subset(p.permissions()) {
            return Err(ServiceError::Forbidden(
                "changing a role with permissions you do not have",
            ));
        }
        Ok(row)
    }

    /// Replaces a custom role's permissions; every member, grant and key holding it has the
    /// new set from their next request on.
    pub async fn update_role(
        &self,
        authz: &OrgAuthz<'_, perm::RoleManage>,
        id: &RoleId,
        permissions: &[String],
    ) -> Result<RoleInfo> {
        let p = authz.principal();
        let mut row = self.managed_role(authz, id).await?;
        let perms = parse_permissions(permissions)?;
        if !perms.is_subset(p.permissions()) {
            return Err(ServiceError::Forbidden(
                "defining a role with permissions you do not have",
            ));
        }
        let mut tx = self.ctx.store.begin().await?;
        if !tx.set_role_permissions(&p.org_id, id, perms).await? {
            return Err(ServiceError::NotFound("role"));
        }
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "role.update", id)
                    .detail(serde_json::json!({"from": row.permissions, "to": perms})),
            )
            .await?;
        tx.commit().await?;
        row.permissions = perms;
        Ok(row.into())
    }

    /// Deletes a custom role nobody holds any more.
    pub async fn delete_role(
        &self,
        authz: &OrgAuthz<'_, perm::RoleManage>,
        id: &RoleId,
    ) -> Result<()> {
        let p = authz.principal();
        let row = self.managed_role(authz, id).await?;
        let holders = self
            .ctx
            .store
            .role_holders(&p.org_id, id.as_str(), self.ctx.clock.now())
            .await?;
        if holders > 0 {
            return Err(ServiceError::Conflict(format!(
                "the role {:?} is still held by {holders} member(s), grant(s), key(s) or \
                 invitation(s): give them another role first",
                row.name.as_str()
            )));
        }
        let mut tx = self.ctx.store.begin().await?;
        if !tx.delete_role(&p.org_id, id).await? {
            return Err(ServiceError::NotFound("role"));
        }
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "role.delete", id).detail(serde_json::json!({"name": row.name})),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- members ------------------------------------------------------------------------

    /// A member of the caller's organization the caller may change: not someone holding
    /// permissions the caller lacks. Returns their current role.
    async fn managed_member(
        &self,
        authz: &OrgAuthz<'_, perm::MemberManage>,
        user_id: &UserId,
    ) -> Result<RoleRef> {
        let p = authz.principal();
        let current = self
            .ctx
            .store
            .membership(&p.org_id, user_id)
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        let (_, perms) = self.ctx.resolve_role(&p.org_id, &current).await?;
        if !perms.is_subset(p.permissions()) {
            return Err(ServiceError::Forbidden(
                "changing a member whose role is above your own",
            ));
        }
        Ok(current)
    }

    /// Changes a member's organization role. It takes effect at their next request, for their
    /// sessions and keys alike. The last owner cannot be demoted.
    pub async fn set_member_role(
        &self,
        authz: &OrgAuthz<'_, perm::MemberManage>,
        user_id: &UserId,
        role: &str,
    ) -> Result<()> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        self.managed_member(authz, user_id).await?;
        let (role, display, _) = self.assignable(p, role, None).await?;
        let names = self.ctx.role_names(org_id).await?;
        let mut tx = self.ctx.store.begin().await?;
        tx.lock_org(org_id).await?;
        let current = tx
            .member_role(org_id, user_id)
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        if current.is_owner() && !role.is_owner() && tx.owner_count(org_id).await? <= 1 {
            return Err(last_owner());
        }
        tx.set_member_role(org_id, user_id, &role).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "member.set_role", user_id)
                    .detail(serde_json::json!({"from": names.name(&current), "to": display})),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a member: their membership, space grants, sessions and API keys in the
    /// organization end at once. The last owner cannot be removed.
    pub async fn remove_member(
        &self,
        authz: &OrgAuthz<'_, perm::MemberManage>,
        user_id: &UserId,
    ) -> Result<()> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        self.managed_member(authz, user_id).await?;
        let now = self.ctx.clock.now();
        let mut tx = self.ctx.store.begin().await?;
        tx.lock_org(org_id).await?;
        let current = tx
            .member_role(org_id, user_id)
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        if current.is_owner() && tx.owner_count(org_id).await? <= 1 {
            return Err(last_owner());
        }
        tx.remove_member(org_id, user_id, now).await?;
        // What they sent out goes with them: an invitation must not outlive its inviter.
        let withdrawn = tx.revoke_invitations_by(org_id, user_id, now).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "member.remove", user_id)
                    .detail(serde_json::json!({"invitations_revoked": withdrawn})),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- space grants -------------------------------------------------------------------

    fn grant_info(names: &RoleNames, g: GrantRow) -> GrantInfo {
        GrantInfo {
            role: names.name(&g.role),
            space_id: g.space_id,
            user_id: g.user_id,
            email: g.email,
            created_at: g.created_at,
        }
    }

    /// Grants a member (often a collaborator, who sees no other space) a role in one space.
    pub async fn grant_space(
        &self,
        authz: &SpaceAuthz<'_, perm::MemberManage>,
        user_id: &UserId,
        role: &str,
    ) -> Result<GrantInfo> {
        let (p, space) = (authz.principal(), authz.space());
        if self
            .ctx
            .store
            .membership(&p.org_id, user_id)
            .await?
            .is_none()
        {
            return Err(ServiceError::NotFound("member"));
        }
        let (role, display, _) = self.assignable(p, role, Some(&space.id)).await?;
        let now = self.ctx.clock.now();
        let mut tx = self.ctx.store.begin().await?;
        tx.upsert_grant(&p.org_id, &space.id, user_id, &role, now)
            .await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "space.grant", &space.id)
                    .detail(serde_json::json!({"user_id": user_id, "role": display})),
            )
            .await?;
        tx.commit().await?;
        let names = self.ctx.role_names(&p.org_id).await?;
        self.ctx
            .store
            .grants_on(&space.id)
            .await?
            .into_iter()
            .find(|g| &g.user_id == user_id)
            .map(|g| Self::grant_info(&names, g))
            .ok_or(ServiceError::NotFound("grant"))
    }

    /// Everyone granted a role in a space.
    pub async fn list_grants(
        &self,
        authz: &SpaceAuthz<'_, perm::MemberManage>,
    ) -> Result<Vec<GrantInfo>> {
        let (p, space) = (authz.principal(), authz.space());
        let names = self.ctx.role_names(&p.org_id).await?;
        Ok(self
            .ctx
            .store
            .grants_on(&space.id)
            .await?
            .into_iter()
            .map(|g| Self::grant_info(&names, g))
            .collect())
    }

    /// Takes back a space grant; it stops applying at the member's next request.
    pub async fn revoke_grant(
        &self,
        authz: &SpaceAuthz<'_, perm::MemberManage>,
        user_id: &UserId,
    ) -> Result<()> {
        let (p, space) = (authz.principal(), authz.space());
        let mut tx = self.ctx.store.begin().await?;
        if !tx.delete_grant(&space.id, user_id).await? {
            return Err(ServiceError::NotFound("grant"));
        }
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "space.revoke_grant", &space.id)
                    .detail(serde_json::json!({"user_id": user_id})),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
