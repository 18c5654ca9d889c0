//! API keys: creating, listing, rotating and revoking them; and the keyring of key-encryption
//! keys (`keyring`).

use strongroom_crypto::{password, token};
use strongroom_domain::{
    ApiKeyId, Email, Name, OrgId, Permission, PermissionSet, SpaceId, Timestamp, UserId,
};
use strongroom_store::{ApiKeyRow, Page, Tx};
use zeroize::Zeroizing;

use crate::audit::Record;
use crate::authz::{KeyManageAuthz, KeyOwnerAuthz, OrgAuthz, perm};
use std::sync::Arc;

use strongroom_crypto::keys::{MacKey, RootKey};

use crate::authz::principal::{API_KEY_PREFIX, SpaceScope};
use crate::ctx::Ctx;
use crate::{Actor, ListQuery, Result, ServiceError};

pub(crate) mod keyring;

/// The most spaces one API key may be limited to.
pub const MAX_KEY_SPACES: usize = 100;

/// How long a rotated-out secret keeps working when the caller does not say.
pub const DEFAULT_ROTATION_GRACE_SECS: u64 = 24 * 60 * 60;

/// The longest grace period a rotation may give the secret it replaces.
pub const MAX_ROTATION_GRACE_SECS: u64 = 7 * 24 * 60 * 60;

/// Shortest password accepted (NIST 800-63B recommends at least 8; ASVS level 2 asks for 12).
pub const MIN_PASSWORD_LEN: usize = strongroom_identity::password_policy::MIN_CHARS;

/// A newly created API key: the secret is shown once and never stored.
pub struct CreatedKey {
    /// The key's id.
    pub id: ApiKeyId,
    /// The secret to give to the client.
    pub api_key: Zeroizing<String>,
    /// When it expires, if it does.
    pub expires_at: Option<Timestamp>,
}

/// A rotated API key: the new secret, shown once, and until when the old one still works.
pub struct RotatedKey {
    /// The key's id (unchanged by rotation).
    pub id: ApiKeyId,
    /// The new secret to give to the client.
    pub api_key: Zeroizing<String>,
    /// The previous secret stops working at this time (now, for a grace of zero).
    pub previous_valid_until: Timestamp,
}

/// An API key as its organization's managers see it: never the secret or its hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiKeyInfo {
    /// Its id.
    pub id: ApiKeyId,
    /// Its label.
    pub name: Name,
    /// The name of the role it was created with (its owner's current role caps it).
    pub role: String,
    /// The user it acts for, if any.
    pub user_id: Option<UserId>,
    /// The spaces it is limited to; `None`: every space.
    pub spaces: Option<Vec<SpaceId>>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it was last used (recorded at most about once a minute per key).
    pub last_used_at: Option<Timestamp>,
    /// The client address of that use.
    pub last_used_ip: Option<String>,
    /// When the secret its last rotation replaced stops (or stopped) working, if a rotation
    /// left one with a grace period.
    pub previous_valid_until: Option<Timestamp>,
}

/// Permissions that make a key "admin-level": creating such a key needs a recent sign-in.
const ADMIN_LEVEL: [Permission; 5] = [
    Permission::OrgManage,
    Permission::MemberManage,
    Permission::MemberInvite,
    Permission::RoleManage,
    Permission::ApiKeyManage,
];

/// Whether a role with these permissions can change who has access.
pub(crate) fn is_admin_level(perms: PermissionSet) -> bool {
    ADMIN_LEVEL.iter().any(|p| perms.contains(*p))
}

/// The refusal for anything that would leave an organization without an owner.
pub(crate) fn last_owner() -> ServiceError {
    ServiceError::Conflict(
        "the organization must keep at least one owner: make someone else owner first".into(),
    )
}

/// The password policy (length, common/breached list, personal data, strength); the reason for
/// a refusal is safe to show.
pub(crate) fn check_password(pw: &str, email: &Email) -> Result<()> {
    strongroom_identity::password_policy::check(pw, email.as_str(), None)
        .map_err(|weak| ServiceError::WeakPassword(weak.reason))
}

/// Builds the managers' view of a key from the store's details row (passed field by field:
/// the store does not export that row's type).
fn key_info(
    role: String,
    key: ApiKeyRow,
    spaces: Option<Vec<SpaceId>>,
    last_used_at: Option<Timestamp>,
    last_used_ip: Option<String>,
    previous_valid_until: Option<Timestamp>,
) -> ApiKeyInfo {
    ApiKeyInfo {
        id: key.id,
        name: key.name,
        role,
        user_id: key.user_id,
        spaces,
        created_at: key.created_at,
        expires_at: key.expires_at,
        revoked_at: key.revoked_at,
        last_used_at,
        last_used_ip: last_used_ip.filter(|ip| !ip.is_empty()),
        previous_valid_until,
    }
}

/// API keys: create, list, rotate, revoke.
pub struct Keys {
    ctx: Arc<Ctx>,
    /// Hashes new secrets as [`Authz`](crate::authz::Authz) looks them up.
    api_key_hasher: MacKey,
}

impl Keys {
    pub(crate) fn new(ctx: Arc<Ctx>, root: &RootKey) -> Keys {
        Keys {
            ctx,
            api_key_hasher: root.derive("api-key"),
        }
    }

    fn new_secret(&self) -> (Zeroizing<String>, [u8; 32]) {
        let secret = Zeroizing::new(format!("{API_KEY_PREFIX}{}", token::random_token(32)));
        let hash = self.api_key_hasher.mac(secret.as_bytes());
        (secret, hash)
    }

    pub(crate) async fn hash_password(pw: Zeroizing<String>) -> Result<String> {
        tokio::task::spawn_blocking(move || password::hash(&pw))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    pub(crate) async fn insert_key(
        &self,
        tx: &mut Tx,
        row: &ApiKeyRow,
    ) -> Result<Zeroizing<String>> {
        let (secret, hash) = self.new_secret();
        tx.insert_api_key(row, &hash).await?;
        Ok(secret)
    }

    /// Creates an API key through the API: never more powerful than its creator, in role or in
    /// reach. `spaces` limits the key to some spaces of the organization; a space-limited
    /// creator may only make keys limited to a subset of its own spaces.
    pub async fn create_api_key(
        &self,
        authz: &OrgAuthz<'_, perm::ApiKeyManage>,
        name: Name,
        role: &str,
        spaces: Option<Vec<SpaceId>>,
        expires_in: Option<u64>,
    ) -> Result<CreatedKey> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        let role = self.ctx.role_named(org_id, role).await?;
        let (role_name, perms) = self.ctx.resolve_role(org_id, &role).await?;
        if !perms.is_subset(p.permissions()) {
            return Err(ServiceError::Forbidden(
                "creating a key with a role above your own",
            ));
        }
        if is_admin_level(perms) {
            // An admin-level key outlives the session that makes it: confirm it is really them.
            self.ctx.require_recent_auth(p).await?;
        }
        let scope = p.space_scope();
        let spaces = match spaces {
            None if scope != SpaceScope::All => {
                return Err(ServiceError::Forbidden(
                    "creating a key beyond your own spaces; list them in \"spaces\"",
                ));
            }
            None => None,
            Some(ids) => Some(self.key_spaces(org_id, &scope, ids).await?),
        };
        let now = self.ctx.clock.now();
        let expires_at = match expires_in {
            Some(0) => {
                return Err(ServiceError::Invalid(
                    "expires_in must be at least 1 second".into(),
                ));
            }
            Some(s) => Some(now.plus_secs(i64::try_from(s).unwrap_or(i64::MAX))),
            None => None,
        };
        let user_id = match &p.actor {
            Actor::ApiKey { user_id, .. } => user_id.clone(),
            Actor::Session { user_id, .. } => Some(user_id.clone()),
            Actor::Cli => None,
        };
        let row = ApiKeyRow {
            id: ApiKeyId::generate(),
            org_id: org_id.clone(),
            user_id,
            name,
            role,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        let mut tx = self.ctx.store.begin().await?;
        let api_key = self.insert_key(&mut tx, &row).await?;
        if let Some(ids) = &spaces {
            tx.limit_api_key_spaces(&row.id, ids).await?;
        }
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "apikey.create", &row.id).detail(serde_json::json!({
                    "role": role_name, "name": row.name, "spaces": spaces, "expires_at": expires_at,
                })),
            )
            .await?;
        tx.commit().await?;
        Ok(CreatedKey {
            id: row.id,
            api_key,
            expires_at,
        })
    }

    /// Checks a requested space limit: 1..=[`MAX_KEY_SPACES`] distinct spaces of `org_id`,
    /// each within the creator's reach. A space that does not exist, belongs to another
    /// organization or is beyond the creator's reach gets the same answer: "unknown space".
    async fn key_spaces(
        &self,
        org_id: &OrgId,
        scope: &SpaceScope,
        mut ids: Vec<SpaceId>,
    ) -> Result<Vec<SpaceId>> {
        ids.sort();
        ids.dedup();
        if ids.is_empty() || ids.len() > MAX_KEY_SPACES {
            return Err(ServiceError::Invalid(format!(
                "spaces must list between 1 and {MAX_KEY_SPACES} spaces; omit it for every space"
            )));
        }
        for id in &ids {
            if !scope.allows(id) || self.ctx.store.space(org_id, id).await?.is_none() {
                return Err(ServiceError::Invalid(format!("unknown space {id}")));
            }
        }
        Ok(ids)
    }

    /// Lists the organization's API keys, with when and from where each was last used. A
    /// space-limited caller sees only keys limited to its own spaces.
    pub async fn list_api_keys(
        &self,
        authz: &OrgAuthz<'_, perm::ApiKeyManage>,
        q: ListQuery,
    ) -> Result<Page<ApiKeyInfo>> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        let scope = p.space_scope();
        let page = self
            .ctx
            .store
            .api_key_details_page(org_id, q.after.as_deref(), q.limit)
            .await?;
        let names = self.ctx.role_names(org_id).await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|d| {
                    key_info(
                        names.name(&d.key.role),
                        d.key,
                        d.spaces,
                        d.last_used_at,
                        d.last_used_ip,
                        d.previous_valid_until,
                    )
                })
                .filter(|k| scope.covers(k.spaces.as_deref()))
                .collect(),
            next: page.next,
        })
    }

    /// Gives a key a new secret, keeping its id, role, spaces and expiry. The old secret keeps
    /// working for `grace_secs` (default [`DEFAULT_ROTATION_GRACE_SECS`], at most
    /// [`MAX_ROTATION_GRACE_SECS`]; 0 stops it at once), so clients can switch without an
    /// outage. Rotation hands over a working secret that acts as the key's owner, so only the
    /// owner gets one (see [`Authz::authorize_key_owner`](crate::authz::Authz::authorize_key_owner)).
    pub async fn rotate_api_key(
        &self,
        authz: &KeyOwnerAuthz<'_>,
        grace_secs: Option<u64>,
    ) -> Result<RotatedKey> {
        let (p, id) = (authz.principal(), authz.key_id());
        let key = self
            .ctx
            .store
            .api_key_details(&p.org_id, id)
            .await?
            .ok_or(ServiceError::NotFound("API key"))?
            .key;
        let grace = grace_secs.unwrap_or(DEFAULT_ROTATION_GRACE_SECS);
        if grace > MAX_ROTATION_GRACE_SECS {
            return Err(ServiceError::Invalid(format!(
                "grace_secs must be between 0 and {MAX_ROTATION_GRACE_SECS}"
            )));
        }
        let now = self.ctx.clock.now();
        if key.revoked_at.is_some() {
            return Err(ServiceError::Conflict("the API key is revoked".into()));
        }
        if key.expires_at.is_some_and(|t| t <= now) {
            return Err(ServiceError::Conflict("the API key has expired".into()));
        }
        // `grace` is at most a week, so the conversion cannot fail.
        let until = now.plus_secs(i64::try_from(grace).unwrap_or(0));
        let (secret, hash) = self.new_secret();
        let mut tx = self.ctx.store.begin().await?;
        let previous = (grace > 0).then_some(until);
        if !tx.rotate_api_key(&p.org_id, id, &hash, previous).await? {
            // Revoked between the check and the update.
            return Err(ServiceError::Conflict("the API key is revoked".into()));
        }
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "apikey.rotate", id).detail(
                    serde_json::json!({"grace_secs": grace, "previous_valid_until": until}),
                ),
            )
            .await?;
        tx.commit().await?;
        Ok(RotatedKey {
            id: id.clone(),
            api_key: secret,
            previous_valid_until: until,
        })
    }

    /// Revokes an API key of the caller's organization, effective immediately for its current
    /// and any previous secret. Any manager may revoke a key it can see, whatever its role:
    /// taking power away is always allowed (an admin can stop a leaked owner key).
    pub async fn revoke_api_key(&self, authz: &KeyManageAuthz<'_>) -> Result<()> {
        let (p, id) = (authz.principal(), authz.key_id());
        let mut tx = self.ctx.store.begin().await?;
        if !tx
            .revoke_api_key(&p.org_id, id, self.ctx.clock.now())
            .await?
        {
            return Err(ServiceError::NotFound("API key"));
        }
        self.ctx
            .audit
            .append(&mut tx, Record::by(p, "apikey.revoke", id))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
