//! API keys resolved once and kept in memory, forgotten as soon as anything they were resolved
//! from may have changed.
//!
//! Resolving a key reads its row, its owner's membership and custom roles, the MFA facts and,
//! sometimes, the owner's grants: one or two round trips to the database on every request. This
//! cache keeps what they resolved to (never the secret, never a refusal), keyed by the secret's
//! HMAC, and uses it only while all of these hold:
//!
//! - **this process changed nothing since**: every write transaction this process commits
//!   moves the store's generation ([`strongroom_store::Store::authz_generation`]), and an entry
//!   resolved under another generation is not used. A revocation, a demotion or a new grant
//!   made through this node is in force for the very next request.
//! - **the database's epoch is the same, and recently confirmed**: triggers move the database's
//!   authorization epoch in the same transaction as every change to what a key's permissions
//!   are read from, whichever process makes it (another node, the command line). Each
//!   resolution reads the epoch with the key, in the same statement; the cache is used only
//!   while the newest epoch read is younger than [`CONFIRM_WINDOW`], so a change made by
//!   another process is in force here within that window. Past it, the next request resolves
//!   its key from the database again, which confirms the epoch for every other key.
//! - **the entry is younger than [`MAX_AGE`]**.
//!
//! Time-dependent checks (expiry, a rotated secret's grace period) are made on every request,
//! against the cached row, exactly as against a freshly read one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strongroom_domain::{SpaceId, Timestamp};
use strongroom_store::ApiKeyRow;

use super::principal::Access;

/// How long an epoch read from the database vouches for the entries resolved under it: the
/// longest a change made by another process (node, command line) goes unnoticed here.
pub(crate) const CONFIRM_WINDOW: Duration = Duration::from_millis(100);

/// The longest any entry is used, confirmed or not.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// The most entries kept; past it the cache starts again empty.
const CAPACITY: usize = 10_000;

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

struct Entry {
    resolved: ResolvedKey,
    generation: u64,
    epoch: i64,
    at: Instant,
}

/// The newest database epoch this process has read, and when the read began.
#[derive(Clone, Copy)]
struct Confirmed {
    epoch: i64,
    at: Instant,
}

/// The cache of resolved API keys (see the module documentation).
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    confirmed: Mutex<Option<Confirmed>>,
}

/// Where a resolution began: taken before the database is read, handed back with its result.
pub(crate) struct Lookup {
    generation: u64,
    began: Instant,
}

impl KeyCache {
    /// The key resolved for `hash`, if it may still be used under the store's current
    /// `generation`.
    pub(crate) fn get(&self, hash: &[u8; 32], generation: u64) -> Option<ResolvedKey> {
        let now = Instant::now();
        let confirmed = (*self.confirmed.lock().ok()?)?;
        if now.duration_since(confirmed.at) >= CONFIRM_WINDOW {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(hash)?;
        (entry.generation == generation
            && entry.epoch == confirmed.epoch
            && now.duration_since(entry.at) < MAX_AGE)
            .then(|| entry.resolved.clone())
    }

    /// Starts a resolution from the database: call before the first read.
    pub(crate) fn begin(&self, generation: u64) -> Lookup {
        Lookup {
            generation,
            began: Instant::now(),
        }
    }

    /// Records the epoch a resolution read, whatever the key turned out to be.
    pub(crate) fn confirm(&self, lookup: &Lookup, epoch: i64) {
        let Ok(mut confirmed) = self.confirmed.lock() else {
            return;
        };
        *confirmed = match *confirmed {
            // An older read finishing late says nothing new.
            Some(c) if c.epoch > epoch || (c.epoch == epoch && c.at >= lookup.began) => Some(c),
            _ => Some(Confirmed {
                epoch,
                at: lookup.began,
            }),
        };
    }

    /// Keeps what a key resolved to, read under `lookup` with the database at `epoch`.
    pub(crate) fn insert(
        &self,
        hash: [u8; 32],
        lookup: &Lookup,
        epoch: i64,
        resolved: ResolvedKey,
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            hash,
            Entry {
                resolved,
                generation: lookup.generation,
                epoch,
                at: lookup.began,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_domain::{ApiKeyId, OrgId, RoleRef};

    fn resolved() -> ResolvedKey {
        ResolvedKey {
            key: ApiKeyRow {
                id: ApiKeyId::generate(),
                org_id: OrgId::generate(),
                user_id: None,
                name: strongroom_domain::Name::parse("k").unwrap_or_else(|e| panic!("{}", e.0)),
                role: RoleRef::Builtin(strongroom_domain::Role::Viewer),
                created_at: Timestamp::from_millis(0),
                expires_at: None,
                revoked_at: None,
            },
            secret_hash: vec![1; 32],
            previous: None,
            role: "viewer".into(),
            access: Access::default(),
            mfa_enrolment_required: false,
            space_limit: None,
        }
    }

    fn cached(cache: &KeyCache, generation: u64, epoch: i64) {
        let lookup = cache.begin(generation);
        cache.confirm(&lookup, epoch);
        cache.insert([7; 32], &lookup, epoch, resolved());
    }

    #[test]
    fn an_entry_is_used_under_its_generation_and_epoch_only() {
        let cache = KeyCache::default();
        cached(&cache, 3, 10);
        assert!(cache.get(&[7; 32], 3).is_some());
        assert!(cache.get(&[8; 32], 3).is_none(), "another key");
        assert!(
            cache.get(&[7; 32], 4).is_none(),
            "this process committed a change since"
        );

        // Another process moved the epoch: a later resolution of any key reads it.
        let lookup = cache.begin(3);
        cache.confirm(&lookup, 11);
        assert!(
            cache.get(&[7; 32], 3).is_none(),
            "resolved under an older epoch"
        );
    }

    #[test]
    fn a_late_read_of_an_older_epoch_does_not_bring_old_entries_back() {
        let cache = KeyCache::default();
        let early = cache.begin(0);
        cached(&cache, 0, 10);
        let lookup = cache.begin(0);
        cache.confirm(&lookup, 11);
        // The earlier read (begun before) finishes now, having seen epoch 10.
        cache.confirm(&early, 10);
        assert!(cache.get(&[7; 32], 0).is_none());
    }

    #[test]
    fn nothing_is_used_once_the_epoch_has_gone_unconfirmed_for_the_window() {
        let cache = KeyCache::default();
        cached(&cache, 0, 10);
        assert!(cache.get(&[7; 32], 0).is_some());
        std::thread::sleep(CONFIRM_WINDOW + Duration::from_millis(20));
        assert!(cache.get(&[7; 32], 0).is_none());
    }
}
