//! Invitations by email: a single-use link that makes its holder a member with the role it
//! names (creating their account if they have none), re-validated when it is accepted: the
//! inviter must still be a member allowed to grant that role.

use strongroom_crypto::token;
use strongroom_domain::{Email, InvitationId, OrgId, Permission, RoleRef, Timestamp, UserId};
use strongroom_store::{InvitationRow, UserRow};
use zeroize::Zeroizing;

use super::Tenancy;
use super::access::RoleNames;
use crate::audit::Record;
use crate::authz::{InvitationAuthz, OrgAuthz, perm};
use crate::keys::check_password;
use crate::{RequestMeta, Result, ServiceError};

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

impl Tenancy {
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
