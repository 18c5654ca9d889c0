//! API keys resolved once and kept in memory, forgotten as soon as anything they were resolved
//! from may have changed.
//!
//! Resolving a key reads its row, its owner's membership and custom roles, the MFA facts and,
//! sometimes, the owner's grants: one or two round trips to the database on every request. This
//! cache keeps what they resolved to (never the secret, never a refusal), keyed by the secret's
//! HMAC, under the scheme of [`super::epoch_cache`]: the epoch is the database's authorization
//! epoch (migration 18), moved by every change to what a key's permissions are read from, and
//! read with the key in the same statement.
//!
//! Time-dependent checks (expiry, a rotated secret's grace period) are made on every request,
//! against the cached row, exactly as against a freshly read one.

use strongroom_domain::{SpaceId, Timestamp};
use strongroom_store::ApiKeyRow;

use super::epoch_cache::EpochCache;
use super::principal::Access;

/// Resolved API keys, keyed by the HMAC of their secret.
pub(crate) type KeyCache = EpochCache<[u8; 32], ResolvedKey>;

/// What a key resolved to, independent of the time and of the request.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedKey {
    /// The key's row (revocation and expiry are checked on every use).
    pub(crate) key: ApiKeyRow,
    /// The HMAC of the current secret.
    pub(crate) secret_hash: Vec<u8>,
    /// The HMAC of the secret a rotation replaced, and until when it still works.
    pub(crate) previous: Option<(Vec<u8>, Timestamp)>,
    /// The role name the caller acts with.
    pub(crate) role: String,
    /// What the key may do.
    pub(crate) access: Access,
    /// The organization requires a second factor the key's owner has not set up.
    pub(crate) mfa_enrolment_required: bool,
    /// The spaces the key is limited to.
    pub(crate) space_limit: Option<Vec<SpaceId>>,
}
