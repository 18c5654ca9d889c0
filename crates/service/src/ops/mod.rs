//! The operator's commands: bootstrap an organization, create users and service keys, set
//! quotas, rotate the key-encryption keys, and the periodic sweeps. The CLI runs these; no HTTP
//! route reaches them.

use std::sync::Arc;

use strongroom_crypto::token;
use strongroom_domain::{ApiKeyId, Email, Name, OrgId, Role, RoleRef, UserId};
use strongroom_store::{ApiKeyRow, OrgRow, QuotaRow, UserRow};
use zeroize::Zeroizing;

use crate::audit::Record;
use crate::ctx::Ctx;
use crate::jobs::queue::JobQueue;
use crate::keys::keyring::{KeyStatus, Keyring, RotationReport};
use crate::keys::{CreatedKey, Keys, check_password, last_owner};
use crate::{Actor, Quota, Result, ServiceError};

pub(crate) mod region;
pub(crate) mod storage;
pub(crate) mod sweep;

/// What `admin bootstrap` created or reused.
pub struct Bootstrapped {
    /// The user (created or reused).
    pub user_id: UserId,
    /// The organization (created or reused).
    pub org_id: OrgId,
    /// Its region.
    pub region: String,
    /// A new owner API key: shown once.
    pub api_key: Zeroizing<String>,
    /// The generated password, when the user was created without one.
    pub password: Option<Zeroizing<String>>,
    /// A password was given but the user already existed, so it was not used.
    pub password_ignored: bool,
}

/// The operator's commands.
pub struct Ops {
    ctx: Arc<Ctx>,
    keyring: Arc<Keyring>,
    /// Bootstrap and `admin create-api-key` issue keys as the key service does.
    keys: Arc<Keys>,
    /// Region moves are jobs.
    queue: JobQueue,
}

fn cli_record<'a>(org_id: &'a OrgId, action: &'static str, target: impl ToString) -> Record<'a> {
    Record {
        org_id,
        actor: Actor::Cli.audit_name(),
        subject: None,
        action,
        target: target.to_string(),
        ip: String::new(),
        detail: serde_json::json!({}),
    }
}

impl Ops {
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        keyring: Arc<Keyring>,
        keys: Arc<Keys>,
        queue: JobQueue,
    ) -> Ops {
        Ops {
            ctx,
            keyring,
            keys,
            queue,
        }
    }

    /// `strongroom admin bootstrap`: the user, the organization with that user as owner, and a
    /// new owner API key. Idempotent for the user and the organization.
    pub async fn bootstrap(
        &self,
        email: Email,
        org_name: Name,
        pw: Option<Zeroizing<String>>,
        region: Option<&str>,
    ) -> Result<Bootstrapped> {
        let now = self.ctx.clock.now();
        let region = self.ctx.resolve_region(region)?;
        let existing_user = self.ctx.store.user_by_email(&email).await?;
        let password_ignored = existing_user.is_some() && pw.is_some();
        let mut generated = None;
        let new_hash = match (&existing_user, pw) {
            (None, Some(pw)) => {
                check_password(&pw, &email)?;
                Some(Keys::hash_password(pw).await?)
            }
            (None, None) => {
                let pw = Zeroizing::new(token::random_token(18));
                let h = Keys::hash_password(pw.clone()).await?;
                generated = Some(pw);
                Some(h)
            }
            (Some(_), _) => None,
        };
        let existing_org = self.ctx.store.org_by_name(&org_name).await?;
        if let Some(o) = &existing_org
            && o.region != region
        {
            return Err(ServiceError::Invalid(format!(
                "the organization exists already, in region '{}': move it with `strongroom storage move {} --region {region}`",
                o.region, o.id
            )));
        }
        let mut tx = self.ctx.store.begin().await?;
        let user = match existing_user {
            Some(u) => u,
            None => {
                let u = UserRow {
                    id: UserId::generate(),
                    email: email.clone(),
                    created_at: now,
                };
                tx.insert_user(&u, new_hash.as_deref()).await?;
                u
            }
        };
        let org = match existing_org {
            Some(o) => o,
            None => {
                let o = OrgRow {
                    id: OrgId::generate(),
                    name: org_name,
                    created_at: now,
                    region: region.clone(),
                };
                let (g, mac) = self.ctx.audit.genesis(&o.id);
                tx.insert_org(&o, &g, &mac).await?;
                self.ctx
                    .audit
                    .append(
                        &mut tx,
                        cli_record(&o.id, "org.create", &o.id)
                            .detail(serde_json::json!({"name": o.name, "region": o.region})),
                    )
                    .await?;
                o
            }
        };
        tx.upsert_membership(&org.id, &user.id, &Role::Owner.into(), now)
            .await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                cli_record(&org.id, "member.set_role", &user.id)
                    .detail(serde_json::json!({"role": "owner"})),
            )
            .await?;
        let key = ApiKeyRow {
            id: ApiKeyId::generate(),
            org_id: org.id.clone(),
            user_id: Some(user.id.clone()),
            name: Name::parse("bootstrap").map_err(|e| ServiceError::Internal(e.to_string()))?,
            role: Role::Owner.into(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
        };
        let api_key = self.keys.insert_key(&mut tx, &key).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                cli_record(&org.id, "apikey.create", &key.id)
                    .detail(serde_json::json!({"role": "owner", "user_id": user.id})),
            )
            .await?;
        tx.commit().await?;
        Ok(Bootstrapped {
            user_id: user.id,
            org_id: org.id,
            region: org.region,
            api_key,
            password: generated,
            password_ignored,
        })
    }

    /// `strongroom admin create-user`: adds a member (creating the user if new), or changes an
    /// existing member's role — never the last owner's.
    pub async fn create_user(
        &self,
        org_id: &OrgId,
        email: Email,
        role: Role,
        pw: Option<Zeroizing<String>>,
    ) -> Result<UserId> {
        self.ctx
            .store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let existing = self.ctx.store.user_by_email(&email).await?;
        let hash = match (&existing, pw) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::Conflict(format!(
                    "{} already has an account; leave out the password to add them to this organization",
                    email.as_str()
                )));
            }
            (None, Some(pw)) => {
                check_password(&pw, &email)?;
                Some(Keys::hash_password(pw).await?)
            }
            _ => None,
        };
        let now = self.ctx.clock.now();
        let mut tx = self.ctx.store.begin().await?;
        let user_id = match existing {
            Some(u) => u.id,
            None => {
                let u = UserRow {
                    id: UserId::generate(),
                    email,
                    created_at: now,
                };
                tx.insert_user(&u, hash.as_deref()).await?;
                u.id
            }
        };
        tx.lock_org(org_id).await?;
        let current = tx.member_role(org_id, &user_id).await?;
        if current.as_ref().is_some_and(RoleRef::is_owner)
            && role != Role::Owner
            && tx.owner_count(org_id).await? <= 1
        {
            return Err(last_owner());
        }
        tx.upsert_membership(org_id, &user_id, &role.into(), now)
            .await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                cli_record(org_id, "member.set_role", &user_id)
                    .detail(serde_json::json!({"role": role})),
            )
            .await?;
        tx.commit().await?;
        Ok(user_id)
    }

    /// `strongroom admin create-api-key`: a service key (no user) with a role.
    pub async fn create_service_key(
        &self,
        org_id: &OrgId,
        role: Role,
        name: Name,
    ) -> Result<CreatedKey> {
        self.ctx
            .store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let row = ApiKeyRow {
            id: ApiKeyId::generate(),
            org_id: org_id.clone(),
            user_id: None,
            name,
            role: role.into(),
            created_at: self.ctx.clock.now(),
            expires_at: None,
            revoked_at: None,
        };
        let mut tx = self.ctx.store.begin().await?;
        let api_key = self.keys.insert_key(&mut tx, &row).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                cli_record(org_id, "apikey.create", &row.id)
                    .detail(serde_json::json!({"role": role, "name": row.name})),
            )
            .await?;
        tx.commit().await?;
        Ok(CreatedKey {
            id: row.id,
            api_key,
            expires_at: None,
        })
    }

    /// `strongroom admin set-quota`: sets an organization's own limits (`None` clears one, so
    /// the server's default applies). Audited as the operator's action.
    pub async fn set_quota(&self, org_id: &OrgId, quota: Quota) -> Result<Quota> {
        let mut tx = self.ctx.store.begin().await?;
        let row = QuotaRow {
            max_bytes: quota.max_bytes,
            max_assets: quota.max_assets,
        };
        if !tx.set_quota(org_id, row).await? {
            return Err(ServiceError::NotFound("organization"));
        }
        self.ctx.audit.append(
            &mut tx,
            Record {
                org_id,
                actor: Actor::Cli.audit_name(),
                subject: None,
                action: "org.quota_change",
                target: org_id.to_string(),
                ip: String::new(),
                detail: serde_json::json!({"max_bytes": quota.max_bytes, "max_assets": quota.max_assets}),
            },
        )
        .await?;
        tx.commit().await?;
        self.ctx.quota_of(org_id).await
    }

    /// Which KEK is active and how many data keys each version wraps.
    pub async fn key_status(&self) -> Result<KeyStatus> {
        self.keyring.status(&self.ctx).await
    }

    /// Creates a new KEK version and rewraps every data key under it, in batches, reporting
    /// `(done, total)` after each batch (`Keyring::rotate`).
    pub async fn rotate_keys(&self, progress: impl FnMut(u64, u64)) -> Result<RotationReport> {
        self.keyring.rotate(&self.ctx, progress).await
    }
}
