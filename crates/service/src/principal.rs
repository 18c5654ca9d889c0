//! Who is calling: API key authentication and the permission check every use case starts with.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strongroom_crypto::token::ct_eq;
use strongroom_domain::{ApiKeyId, OrgId, Permission, Role, UserId};

use crate::{Result, Service, ServiceError};

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
    /// How the actor is written in the audit trail.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::ApiKey { key_id, .. } => format!("key:{key_id}"),
            Actor::Session { user_id, .. } => format!("user:{user_id}"),
            Actor::Cli => "cli".to_owned(),
        }
    }
}

/// An authenticated caller acting in exactly one organization with one effective role.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The organization the caller acts in.
    pub org_id: OrgId,
    /// The effective role: the key's role capped by its owner's current role.
    pub role: Role,
    /// Who acts.
    pub actor: Actor,
    /// Where the request came from.
    pub meta: RequestMeta,
}

impl Principal {
    /// Refuses unless the effective role grants `p`.
    pub fn require(&self, p: Permission) -> Result<()> {
        if self.role.allows(p) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(p.as_str()))
        }
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

impl Service {
    /// Resolves an `Authorization: Bearer` secret into a principal. Unknown, malformed, expired
    /// and revoked keys, and keys whose owner left the organization, are all `Unauthenticated`.
    pub async fn authenticate_api_key(&self, secret: &str, meta: RequestMeta) -> Result<Principal> {
        if !secret.starts_with(API_KEY_PREFIX) || secret.len() > 200 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = self.api_key_hasher.mac(secret.as_bytes());
        let Some(found) = self.store.principal_by_key_hash(&hash).await? else {
            return Err(ServiceError::Unauthenticated);
        };
        let key = found.key;
        // The index lookup was by hash; the constant-time comparison is what decides, so a
        // future change of lookup strategy cannot open a timing side channel.
        if !ct_eq(&found.secret_hash, &hash) {
            return Err(ServiceError::Unauthenticated);
        }
        let now = self.clock.now();
        if key.revoked_at.is_some() || key.expires_at.is_some_and(|t| t <= now) {
            return Err(ServiceError::Unauthenticated);
        }
        let role = match (&key.user_id, found.member_role) {
            (Some(_), Some(member)) => key.role.min(member),
            (Some(_), None) => return Err(ServiceError::Unauthenticated),
            (None, _) => key.role,
        };
        if self.key_touches.due(&key.id)
            && let Err(e) = self.store.touch_api_key(&key.id, now, &meta.ip).await
        {
            tracing::warn!(error = %e, "could not record API key use");
        }
        Ok(Principal {
            org_id: key.org_id,
            role,
            actor: Actor::ApiKey {
                key_id: key.id,
                user_id: key.user_id,
            },
            meta,
        })
    }
}
