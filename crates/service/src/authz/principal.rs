//! Who is calling: API key authentication and the permission check every use case starts with.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strongroom_crypto::token::{self, ct_eq};
use strongroom_domain::{ApiKeyId, OrgId, PermissionSet, RoleRef, SpaceId, UserId};

use super::Authz;
use super::key_cache::ResolvedKey;
use crate::identity::sessions::SessionCredentials;
use crate::{Result, ServiceError};

/// Where a request came from, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The client address, as the server saw it.
    pub ip: String,
}

/// Who acts: an API key (maybe on behalf of a user) or the operator's CLI.
#[derive(Debug, Clone)]
pub enum Actor {
    /// An API key.
    ApiKey {
        /// The key.
        key_id: ApiKeyId,
        /// The user it belongs to, if any.
        user_id: Option<UserId>,
    },
    /// A signed-in user's browser session.
    Session {
        /// The session.
        session_id: strongroom_domain::SessionId,
        /// The user.
        user_id: UserId,
    },
    /// The `strongroom admin` command line (operator with access to the data dir).
    Cli,
}

impl Actor {
    /// The person behind the actor: the signed-in user, or the user owning the key.
    pub fn person(&self) -> Option<&UserId> {
        match self {
            Actor::ApiKey { user_id, .. } => user_id.as_ref(),
            Actor::Session { user_id, .. } => Some(user_id),
            Actor::Cli => None,
        }
    }

    /// How the actor is written in the audit trail.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::ApiKey { key_id, .. } => format!("key:{key_id}"),
            Actor::Session { user_id, .. } => format!("user:{user_id}"),
            Actor::Cli => "cli".to_owned(),
        }
    }
}

/// What a caller may do, resolved from the database on every request, so a role change, a
/// custom role's new permissions or a removed grant take effect at the next request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Access {
    /// Organization-wide: the member's role, capped by the key's role.
    pub(crate) org: PermissionSet,
    /// The key's own role (everything, for sessions and the CLI): a space grant never lifts a
    /// key above the role it was made with.
    pub(crate) cap: PermissionSet,
    /// Roles granted in single spaces (not yet capped).
    pub(crate) spaces: Vec<(SpaceId, PermissionSet)>,
}

/// An authenticated caller acting in exactly one organization.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The organization the caller acts in.
    pub org_id: OrgId,
    /// The name of the role the caller acts with: the key's role for an API key, the member's
    /// organization role for a session.
    pub role: String,
    /// What the role, its cap and any space grants allow.
    pub(crate) access: Access,
    /// Who acts.
    pub actor: Actor,
    /// Where the request came from.
    pub meta: RequestMeta,
    /// The organization requires a second factor this user has not set up: until they do, only
    /// enrolment (and signing out) is open to them.
    pub mfa_enrolment_required: bool,
    /// The spaces a space-limited API key is confined to; `None`: not limited (sessions, and
    /// keys made for every space). Read with the key on every request.
    pub(crate) space_limit: Option<Vec<SpaceId>>,
}

impl Principal {
    /// When and from where, for a security notice about this caller's action.
    pub(crate) fn notice_context(&self) -> crate::notify::NoticeContext<'_> {
        crate::notify::NoticeContext {
            ip: &self.meta.ip,
            user_agent: None,
        }
    }

    /// What the caller may do organization-wide.
    pub fn permissions(&self) -> PermissionSet {
        self.access.org
    }

    /// Whether the credential is an API key limited to some spaces.
    pub fn is_space_limited(&self) -> bool {
        self.space_limit.is_some()
    }

    /// What the caller may do in `space`.
    pub fn permissions_in(&self, space: &SpaceId) -> PermissionSet {
        let granted = self
            .access
            .spaces
            .iter()
            .filter(|(id, _)| id == space)
            .fold(PermissionSet::EMPTY, |acc, (_, set)| acc.union(*set));
        self.access.org.union(granted.intersection(self.access.cap))
    }

    /// The spaces granted to the caller one by one, each with what the caller may do there.
    pub fn granted_spaces(&self) -> Vec<(SpaceId, PermissionSet)> {
        let mut out: Vec<(SpaceId, PermissionSet)> = Vec::new();
        for (space, _) in &self.access.spaces {
            if !out.iter().any(|(s, _)| s == space) {
                out.push((space.clone(), self.permissions_in(space)));
            }
        }
        out
    }

    /// Refuses (as not found) an organization other than the caller's.
    pub fn require_org(&self, org_id: &OrgId) -> Result<()> {
        if &self.org_id == org_id {
            Ok(())
        } else {
            Err(ServiceError::NotFound("organization"))
        }
    }
}

/// Which spaces of its organization a caller may reach. Sessions and unrestricted keys reach
/// every space; a space-limited key only its own list, and anything outside it is invisible
/// ("not found"), exactly like another organization's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpaceScope {
    /// Every space of the organization.
    All,
    /// Only these.
    Only(Vec<SpaceId>),
}

impl SpaceScope {
    /// Whether `space` is within reach.
    pub(crate) fn allows(&self, space: &SpaceId) -> bool {
        match self {
            SpaceScope::All => true,
            SpaceScope::Only(ids) => ids.contains(space),
        }
    }

    /// Whether a key limited to `limit` (`None`: every space) reaches nothing beyond this scope.
    pub(crate) fn covers(&self, limit: Option<&[SpaceId]>) -> bool {
        match (self, limit) {
            (SpaceScope::All, _) => true,
            (SpaceScope::Only(_), None) => false,
            (SpaceScope::Only(_), Some(ids)) => ids.iter().all(|id| self.allows(id)),
        }
    }

    /// Only the spaces both scopes reach.
    pub(crate) fn intersect(self, other: SpaceScope) -> SpaceScope {
        match (self, other) {
            (SpaceScope::All, o) | (o, SpaceScope::All) => o,
            (SpaceScope::Only(a), SpaceScope::Only(b)) => {
                SpaceScope::Only(a.into_iter().filter(|id| b.contains(id)).collect())
            }
        }
    }

    /// Refuses, as not found, a space outside the scope.
    pub(crate) fn require(&self, space: &SpaceId) -> Result<()> {
        if self.allows(space) {
            Ok(())
        } else {
            Err(ServiceError::NotFound("space"))
        }
    }
}

/// A role's permissions, given a custom role's as read with it (a custom role that no longer
/// exists grants nothing).
fn permissions_of(role: &RoleRef, custom: Option<PermissionSet>) -> PermissionSet {
    match role {
        RoleRef::Builtin(r) => PermissionSet::of(r.permissions()),
        RoleRef::Custom(_) => custom.unwrap_or(PermissionSet::EMPTY),
    }
}

/// A role's display name and permissions, given a custom role's name and permissions as read
/// with it.
fn named_permissions(
    role: &RoleRef,
    custom: Option<(String, PermissionSet)>,
) -> (String, PermissionSet) {
    match (role, custom) {
        (RoleRef::Builtin(r), _) => (r.as_str().to_owned(), PermissionSet::of(r.permissions())),
        (RoleRef::Custom(_), Some((name, perms))) => (name, perms),
        (RoleRef::Custom(id), None) => (id.to_string(), PermissionSet::EMPTY),
    }
}

/// Prefix of every API key secret, so secret scanners can find leaked keys.
pub const API_KEY_PREFIX: &str = "srk_";

/// Remembers when each key's last use was written, so a busy key does not write on every call.
#[derive(Default)]
pub(crate) struct TouchThrottle(Mutex<HashMap<ApiKeyId, Instant>>);

impl TouchThrottle {
    fn due(&self, id: &ApiKeyId) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return false;
        };
        let now = Instant::now();
        match map.get(id) {
            Some(t) if now.duration_since(*t) < Duration::from_secs(60) => false,
            _ => {
                if map.len() > 100_000 {
                    map.clear();
                }
                map.insert(id.clone(), now);
                true
            }
        }
    }
}

impl Authz {
    /// Resolves an `Authorization: Bearer` secret into a principal. Unknown, malformed, expired
    /// and revoked keys, and keys whose owner left the organization, are all `Unauthenticated`.
    pub async fn authenticate_api_key(&self, secret: &str, meta: RequestMeta) -> Result<Principal> {
        if !secret.starts_with(API_KEY_PREFIX) || secret.len() > 200 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = self.api_key_hasher.mac(secret.as_bytes());
        let generation = self.ctx.store.authz_generation();
        let resolved = match self.key_cache.get(&hash, generation) {
            Some(resolved) => resolved,
            None => self.resolve_api_key(hash, generation).await?,
        };
        let now = self.ctx.clock.now();
        // The index lookup was by hash; the constant-time comparison is what decides, so a
        // future change of lookup strategy (the cache's map included) cannot open a timing side
        // channel. The secret a rotation replaced works only until the end of its grace period.
        let current = ct_eq(&resolved.secret_hash, &hash);
        let previous = resolved
            .previous
            .as_ref()
            .is_some_and(|(h, until)| ct_eq(h, &hash) && now < *until);
        let key = &resolved.key;
        if !(current || previous)
            || key.revoked_at.is_some()
            || key.expires_at.is_some_and(|t| t <= now)
        {
            return Err(ServiceError::Unauthenticated);
        }
        // At most once a minute per key (and per node): not on the request's round trips.
        if self.key_touches.due(&key.id)
            && let Err(e) = self.ctx.store.touch_api_key(&key.id, now, &meta.ip).await
        {
            tracing::warn!(error = %e, "could not record API key use");
        }
        Ok(Principal {
            org_id: key.org_id.clone(),
            role: resolved.role,
            access: resolved.access,
            actor: Actor::ApiKey {
                key_id: key.id.clone(),
                user_id: key.user_id.clone(),
            },
            meta,
            mfa_enrolment_required: resolved.mfa_enrolment_required,
            space_limit: resolved.space_limit,
        })
    }

    /// Reads what the key with this secret's `hash` may do from the database, and keeps it in
    /// the cache. A key that is unknown, revoked, expired, or whose owner left the organization
    /// is `Unauthenticated` (and not kept).
    async fn resolve_api_key(&self, hash: [u8; 32], generation: u64) -> Result<ResolvedKey> {
        let lookup = self.key_cache.begin(generation);
        // Round trip 1: the key, its limit, its owner's membership and custom roles, the MFA
        // facts, whether the owner holds space grants, and the authorization epoch. Round trip
        // 2, only for a key whose owner holds grants that could matter: those grants.
        let Some(row) = self.ctx.store.key_principal(&hash).await? else {
            return Err(ServiceError::Unauthenticated);
        };
        self.key_cache.confirm(&lookup, row.authz_epoch);
        let found = row.found;
        let key = found.key;
        let now = self.ctx.clock.now();
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|t| t <= now) {
            return Err(ServiceError::Unauthenticated);
        }
        let (mut role, cap) = named_permissions(&key.role, row.key_custom_role);
        let access = match (&key.user_id, found.member_role) {
            (Some(user), Some(member)) => {
                let (member_name, member_perms) =
                    named_permissions(&member, row.member_custom_role);
                // Grants lift permissions in single spaces, never above the key's role: when the
                // member's role already holds all of that role, or there are no grants, they
                // change nothing and cost no second round trip.
                let spaces = if row.owner_has_grants && !cap.is_subset(member_perms) {
                    self.ctx
                        .store
                        .grant_access(&key.org_id, user)
                        .await?
                        .into_iter()
                        .map(|g| (g.space_id, permissions_of(&g.role, g.custom_permissions)))
                        .collect()
                } else {
                    Vec::new()
                };
                if member_perms.is_subset(cap) {
                    // The owner's own role is what binds (an owner key of a demoted member):
                    // name that one.
                    role = member_name;
                }
                Access {
                    org: member_perms.intersection(cap),
                    cap,
                    spaces,
                }
            }
            (Some(_), None) => return Err(ServiceError::Unauthenticated),
            (None, _) => Access {
                org: cap,
                cap,
                spaces: Vec::new(),
            },
        };
        let mfa_enrolment_required =
            key.user_id.is_some() && row.org_requires_mfa && !row.owner_has_mfa;
        let resolved = ResolvedKey {
            secret_hash: found.secret_hash,
            previous: found.previous_secret_hash.zip(found.previous_valid_until),
            key,
            role,
            access,
            mfa_enrolment_required,
            space_limit: row.spaces,
        };
        self.key_cache
            .insert(hash, &lookup, row.authz_epoch, resolved.clone());
        Ok(resolved)
    }

    /// Resolves a session cookie into a principal. Unknown, revoked, idle-expired and
    /// absolutely-expired sessions, and users no longer in the organization, are
    /// `Unauthenticated`; a state-changing request without the session's CSRF token is
    /// `CsrfRejected`.
    pub async fn authenticate_session(
        &self,
        creds: SessionCredentials<'_>,
        meta: RequestMeta,
    ) -> Result<Principal> {
        if creds.secret.is_empty() || creds.secret.len() > 100 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = self.session_hasher.mac(creds.secret.as_bytes());
        let Some(found) = self.ctx.store.session_by_hash(&hash).await? else {
            return Err(ServiceError::Unauthenticated);
        };
        if !token::ct_eq(&found.secret_hash, &hash) {
            return Err(ServiceError::Unauthenticated);
        }
        let s = &found.session;
        let now = self.ctx.clock.now();
        let idle_deadline = s.last_seen_at.plus_secs(found.idle_secs);
        let absolute_deadline = s.created_at.plus_secs(found.absolute_secs);
        if s.revoked_at.is_some() || now >= idle_deadline || now >= absolute_deadline {
            return Err(ServiceError::Unauthenticated);
        }
        let Some(role) = found.role else {
            return Err(ServiceError::Unauthenticated);
        };
        if creds.unsafe_method {
            let presented = creds.csrf.map(|t| self.csrf_hasher.mac(t.as_bytes()));
            if !presented.is_some_and(|h| token::ct_eq(&h, &found.csrf_hash)) {
                return Err(ServiceError::CsrfRejected);
            }
        }
        // Idle time is counted in whole minutes at most: no write on every request.
        if now.millis() - s.last_seen_at.millis() > 30_000
            && let Err(e) = self.ctx.store.touch_session(&s.id, now).await
        {
            tracing::warn!(error = %e, "could not record session use");
        }
        let mfa_enrolment_required = self
            .ctx
            .mfa_enrolment_pending(&s.org_id, &s.user_id)
            .await?;
        let access = self.ctx.member_access(&s.org_id, &s.user_id, &role).await?;
        let (role, _) = self.ctx.resolve_role(&s.org_id, &role).await?;
        Ok(Principal {
            org_id: s.org_id.clone(),
            role,
            access,
            actor: Actor::Session {
                session_id: s.id.clone(),
                user_id: s.user_id.clone(),
            },
            meta,
            mfa_enrolment_required,
            space_limit: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(n: u8) -> SpaceId {
        SpaceId::parse(&format!("spc_{:032x}", n)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_limited_scope_reaches_only_its_spaces() {
        let scope = SpaceScope::Only(vec![space(1), space(2)]);
        assert!(scope.allows(&space(1)));
        assert!(!scope.allows(&space(3)));
        assert!(scope.require(&space(3)).is_err());
        assert!(SpaceScope::All.allows(&space(3)));
    }

    #[test]
    fn a_limited_scope_covers_only_subsets() {
        let scope = SpaceScope::Only(vec![space(1), space(2)]);
        assert!(scope.covers(Some(&[space(1)])));
        assert!(scope.covers(Some(&[space(1), space(2)])));
        assert!(!scope.covers(Some(&[space(1), space(3)])));
        // An unlimited key reaches more than any limited scope.
        assert!(!scope.covers(None));
        assert!(SpaceScope::All.covers(None));
        assert!(SpaceScope::All.covers(Some(&[space(3)])));
    }
}
