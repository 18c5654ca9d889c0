//! Who may do what: custom roles, member role changes and removal (never the last owner),
//! space grants (collaborators), and invitations by email with single-use links.
//!
//! One rule runs through all of it: nobody hands out, edits or takes away more than they hold.
//! A role assigned, granted or edited must be within the caller's own permissions, and a member
//! whose permissions exceed the caller's cannot be changed or removed by them.

use std::collections::HashMap;

use strongroom_crypto::token;
use strongroom_domain::{
    Email, InvitationId, Name, OrgId, Permission, PermissionSet, Role, RoleId, RoleRef, SpaceId,
    Timestamp, UserId,
};
use strongroom_store::{GrantRow, InvitationRow, RoleRow, UserRow};
use zeroize::Zeroizing;

use super::Tenancy;
use crate::audit::Record;
use crate::authz::{InvitationAuthz, OrgAuthz, SpaceAuthz, perm};
use crate::ctx::Ctx;
use crate::keys::{check_password, is_admin_level, last_owner};
use crate::{Principal, RequestMeta, Result, ServiceError};

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

/// An invitation as the API shows it (never its link).
#[derive(Debug, Clone, serde::Serialize)]
pub struct InvitationInfo {
    /// Its id.
    pub id: InvitationId,
    /// Who is invited.
    pub email: Email,
    /// The role's name.
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: &'static str,
    /// When it was sent.
    pub created_at: Timestamp,
    /// When the link stops working.
    pub expires_at: Timestamp,
}

/// What accepting an invitation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Accepted {
    /// The member (new or existing account).
    pub user_id: UserId,
    /// The organization joined.
    pub org_id: OrgId,
    /// Whether a new account was created.
    pub created_account: bool,
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

fn invitation_status(row: &InvitationRow, now: Timestamp) -> &'static str {
    if row.accepted_at.is_some() {
        "accepted"
    } else if row.revoked_at.is_some() {
        "revoked"
    } else if row.expires_at <= now {
        "expired"
    } else {
        "pending"
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
    async fn assignable(
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

    // ----- invitations --------------------------------------------------------------------

    fn invitation_info(names: &RoleNames, row: InvitationRow, now: Timestamp) -> InvitationInfo {
        InvitationInfo {
            status: invitation_status(&row, now),
            role: names.name(&row.role),
            id: row.id,
            email: row.email,
            created_at: row.created_at,
            expires_at: row.expires_at,
        }
    }

    /// Invites someone by email: they get a message with a link that works once, until it
    /// expires, and makes them a member with `role` (creating their account if they have
    /// none). The link's token is never stored or shown to the inviter.
    pub async fn invite(
        &self,
        authz: &OrgAuthz<'_, perm::MemberInvite>,
        email: Email,
        role: &str,
    ) -> Result<InvitationInfo> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        let (role, display, _) = self.assignable(p, role, None).await?;
        if !self.notify.mail_configured() {
            return Err(ServiceError::Unavailable(
                "mail is not configured, so the invitation could not be delivered: set [mail] \
                 smtp_url in the server's configuration"
                    .into(),
            ));
        }
        if let Some(user) = self.ctx.store.user_by_email(&email).await?
            && self.ctx.store.membership(org_id, &user.id).await?.is_some()
        {
            return Err(ServiceError::Conflict(format!(
                "{} is already a member",
                email.as_str()
            )));
        }
        let org = self
            .ctx
            .store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let now = self.ctx.clock.now();
        let ttl = i64::try_from(self.ctx.config.invitation_ttl.as_secs()).unwrap_or(i64::MAX);
        let row = InvitationRow {
            id: InvitationId::generate(),
            org_id: org_id.clone(),
            email,
            role,
            invited_by: p.actor.audit_name(),
            inviter: p.user_id().cloned(),
            created_at: now,
            expires_at: now.plus_secs(ttl),
            accepted_at: None,
            revoked_at: None,
        };
        let secret = Zeroizing::new(token::random_token(32));
        let link = Zeroizing::new(format!(
            "{}/invite#{}",
            self.ctx.config.public_url.trim_end_matches('/'),
            secret.as_str()
        ));
        let mut tx = self.ctx.store.begin().await?;
        tx.insert_invitation(&row, &self.invitation_hasher.mac(secret.as_bytes()))
            .await?;
        let mail = self.notify.invitation_mail(
            &row.email,
            org.name.as_str(),
            &display,
            &link,
            &row.expires_at.rfc3339(),
        );
        self.notify.queue_mail(&mut tx, Some(org_id), mail).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                // Not the address: it is the invited person's, and this event is sealed under
                // the inviter's key, which erasing the invited person would not reach. The
                // invitation row holds it (and erasure deletes that); their `member.join`
                // event records it under their own key.
                Record::by(p, "member.invite", &row.id).detail(serde_json::json!({
                    "role": display, "expires_at": row.expires_at,
                })),
            )
            .await?;
        tx.commit().await?;
        Ok(InvitationInfo {
            status: "pending",
            role: display,
            id: row.id,
            email: row.email,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }

    /// The organization's invitations, newest first.
    pub async fn list_invitations(
        &self,
        authz: &OrgAuthz<'_, perm::MemberInvite>,
    ) -> Result<Vec<InvitationInfo>> {
        let org_id = authz.org_id();
        let names = self.ctx.role_names(org_id).await?;
        let now = self.ctx.clock.now();
        Ok(self
            .ctx
            .store
            .invitations(org_id)
            .await?
            .into_iter()
            .map(|r| Self::invitation_info(&names, r, now))
            .collect())
    }

    /// Withdraws an open invitation: its link stops working at once.
    pub async fn revoke_invitation(&self, authz: &InvitationAuthz<'_>) -> Result<()> {
        let (p, id) = (authz.principal(), authz.id());
        let mut tx = self.ctx.store.begin().await?;
        if !tx
            .revoke_invitation(&p.org_id, id, self.ctx.clock.now())
            .await?
        {
            return Err(ServiceError::NotFound("invitation"));
        }
        self.ctx
            .audit
            .append(&mut tx, Record::by(p, "member.invite_revoke", id))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Accepts an invitation with the token from its link. Someone without an account sets
    /// their password here (checked by the password policy); someone with one proves it is
    /// them with their password. An unknown, used, revoked or expired link is "not found".
    pub async fn accept_invitation(
        &self,
        secret: &str,
        password: Zeroizing<String>,
        captcha: Option<&str>,
        meta: RequestMeta,
    ) -> Result<Accepted> {
        let gone = || ServiceError::NotFound("invitation");
        if secret.is_empty() || secret.len() > 100 {
            return Err(gone());
        }
        let hash = self.invitation_hasher.mac(secret.as_bytes());
        let inv = self
            .ctx
            .store
            .invitation_by_hash(&hash)
            .await?
            .ok_or_else(gone)?;
        let now = self.ctx.clock.now();
        if invitation_status(&inv, now) != "pending" {
            return Err(gone());
        }
        // The inviter must still be allowed to send it (checked again under the lock below).
        let Some(vouching_role) = self.inviter_still_may_grant(&inv, now).await? else {
            return Err(gone());
        };
        let existing = self.ctx.store.user_by_email(&inv.email).await?;
        let (user, new_hash) = match existing {
            Some(user) => {
                if self
                    .ctx
                    .store
                    .membership(&inv.org_id, &user.id)
                    .await?
                    .is_some()
                {
                    return Err(ServiceError::Conflict(format!(
                        "{} is already a member",
                        inv.email.as_str()
                    )));
                }
                // Under the sign-in limits: an invitation link is no way around them.
                self.passwords
                    .check_password_throttled(&user.id, &inv.email, &meta.ip, &password, captcha)
                    .await?;
                (user, None)
            }
            None => {
                check_password(&password, &inv.email)?;
                let hash = self.passwords.hash_password_bounded(password).await?;
                let user = UserRow {
                    id: UserId::generate(),
                    email: inv.email.clone(),
                    created_at: now,
                };
                (user, Some(hash))
            }
        };
        let mut tx = self.ctx.store.begin().await?;
        if let Some(h) = &new_hash {
            tx.insert_user(&user, Some(h)).await?;
        }
        if !tx.accept_invitation(&inv.id, &user.id, now).await? {
            // Another request used the link first; this transaction (and any new account)
            // rolls back.
            return Err(gone());
        }
        tx.lock_org(&inv.org_id).await?;
        // Under the organization's lock, like member removal: the inviter is still the member
        // (with the role) the check above found allowed to send this invitation.
        if let Some(inviter) = &inv.inviter
            && tx.member_role(&inv.org_id, inviter).await? != vouching_role
        {
            return Err(gone());
        }
        tx.upsert_membership(&inv.org_id, &user.id, &inv.role, now)
            .await?;
        let record = Record {
            org_id: &inv.org_id,
            actor: format!("user:{}", user.id),
            subject: Some(user.id.clone()),
            action: "member.join",
            target: user.id.to_string(),
            ip: meta.ip.clone(),
            detail: serde_json::json!({
                "invitation_id": inv.id, "email": inv.email, "created_account": new_hash.is_some(),
            }),
        };
        self.ctx.audit.append(&mut tx, record).await?;
        tx.commit().await?;
        Ok(Accepted {
            user_id: user.id,
            org_id: inv.org_id,
            created_account: new_hash.is_some(),
        })
    }

    /// Whether an invitation's sender could still send it now: a member holding
    /// `member:invite` and every permission of the role, and, when a key sent it, a key that is
    /// neither revoked, expired, space-limited nor below the role. `Some(role)` when it could,
    /// with the inviting member's role then (`None` for a service key's invitation), which the
    /// acceptance checks again under the organization's lock.
    async fn inviter_still_may_grant(
        &self,
        inv: &InvitationRow,
        now: Timestamp,
    ) -> Result<Option<Option<RoleRef>>> {
        // Who vouches for the invitation: the member who sent it, and the key they sent it
        // with (a service key alone, for one that belongs to nobody).
        let mut held = strongroom_domain::PermissionSet::all();
        let mut vouched = false;
        let mut inviter_role = None;
        if let Some(inviter) = &inv.inviter {
            let Some(member_role) = self.ctx.store.membership(&inv.org_id, inviter).await? else {
                return Ok(None);
            };
            held = self
                .ctx
                .member_access(&inv.org_id, inviter, &member_role)
                .await?
                .org;
            inviter_role = Some(member_role);
            vouched = true;
        }
        if let Some(key) = inv.invited_by.strip_prefix("key:") {
            let Ok(key_id) = strongroom_domain::ApiKeyId::parse(key) else {
                return Ok(None);
            };
            let Some(d) = self.ctx.store.api_key_details(&inv.org_id, &key_id).await? else {
                return Ok(None);
            };
            if d.key.revoked_at.is_some()
                || d.key.expires_at.is_some_and(|t| t <= now)
                || d.spaces.is_some()
                || d.key.user_id != inv.inviter
            {
                return Ok(None);
            }
            held = held.intersection(self.ctx.resolve_role(&inv.org_id, &d.key.role).await?.1);
            vouched = true;
        }
        if !vouched {
            return Ok(None);
        }
        let (_, granted) = self.ctx.resolve_role(&inv.org_id, &inv.role).await?;
        Ok(
            (held.contains(Permission::MemberInvite) && granted.is_subset(held))
                .then_some(inviter_role),
        )
    }
}
