//! Rows read from the database kept in memory, and forgotten as soon as anything they were read
//! from may have changed: the scheme shared by the API-key cache (`key_cache`) and the asset
//! cache (`Authz::authorize_asset`).
//!
//! An entry is used only while all of these hold:
//!
//! - **this process changed nothing since**: every write transaction this process commits
//!   moves the store's generation ([`strongroom_store::Store::authz_generation`]), and an entry
//!   read under another generation is not used. A change made through this node is in force for
//!   the very next request.
//! - **the database's epoch is the same, and recently confirmed**: triggers move an epoch in the
//!   database in the same transaction as every change to what the cached rows are read from,
//!   whichever process makes it (another node, the command line). Each read from the database
//!   reads the epoch with its rows, in the same statement; the cache is used only while the
//!   newest epoch read is younger than [`CONFIRM_WINDOW`], so a change made by another process
//!   is in force here within that window. Past it, the next request reads from the database
//!   again, which confirms the epoch for every other entry.
//! - **the entry is younger than [`MAX_AGE`]**.
//!
//! Absences and refusals are never kept: a miss always goes to the database.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an epoch read from the database vouches for the entries read under it: the longest
/// a change made by another process (node, command line) goes unnoticed here.
pub(crate) const CONFIRM_WINDOW: Duration = Duration::from_millis(100);

/// The longest any entry is used, confirmed or not.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(60);

/// The most entries kept; past it the cache starts again empty.
const CAPACITY: usize = 10_000;

struct Entry<V> {
    value: V,
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

/// A cache of values read under one database epoch (see the module documentation).
pub(crate) struct EpochCache<K, V> {
    entries: Mutex<HashMap<K, Entry<V>>>,
    confirmed: Mutex<Option<Confirmed>>,
}

impl<K, V> Default for EpochCache<K, V> {
    fn default() -> Self {
        EpochCache {
            entries: Mutex::new(HashMap::new()),
            confirmed: Mutex::new(None),
        }
    }
}

/// Where a read began: taken before the database is read, handed back with its result.
pub(crate) struct Lookup {
    generation: u64,
    began: Instant,
}

impl<K: Eq + Hash, V: Clone> EpochCache<K, V> {
    /// The value kept for `key`, if it may still be used under the store's current
    /// `generation`.
    pub(crate) fn get(&self, key: &K, generation: u64) -> Option<V> {
        let now = Instant::now();
        let confirmed = (*self.confirmed.lock().ok()?)?;
        if now.duration_since(confirmed.at) >= CONFIRM_WINDOW {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(key)?;
        (entry.generation == generation
            && entry.epoch == confirmed.epoch
            && now.duration_since(entry.at) < MAX_AGE)
            .then(|| entry.value.clone())
    }

    /// Starts a read from the database: call before the first query.
    pub(crate) fn begin(&self, generation: u64) -> Lookup {
        Lookup {
            generation,
            began: Instant::now(),
        }
    }

    /// Records the epoch a read saw, whatever it found.
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

    /// Keeps `value`, read under `lookup` with the database at `epoch`.
    pub(crate) fn insert(&self, key: K, lookup: &Lookup, epoch: i64, value: V) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                value,
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

    fn cached(cache: &EpochCache<u8, &'static str>, generation: u64, epoch: i64) {
        let lookup = cache.begin(generation);
        cache.confirm(&lookup, epoch);
        cache.insert(7, &lookup, epoch, "row");
    }

    #[test]
    fn an_entry_is_used_under_its_generation_and_epoch_only() {
        let cache = EpochCache::default();
        cached(&cache, 3, 10);
        assert_eq!(cache.get(&7, 3), Some("row"));
        assert!(cache.get(&8, 3).is_none(), "another key");
        assert!(
            cache.get(&7, 4).is_none(),
            "this process committed a change since"
        );

        // Another process moved the epoch: a later read of any entry sees it.
        let lookup = cache.begin(3);
        cache.confirm(&lookup, 11);
        assert!(cache.get(&7, 3).is_none(), "read under an older epoch");
    }

    #[test]
    fn a_late_read_of_an_older_epoch_does_not_bring_old_entries_back() {
        let cache = EpochCache::default();
        let early = cache.begin(0);
        cached(&cache, 0, 10);
        let lookup = cache.begin(0);
        cache.confirm(&lookup, 11);
        // The earlier read (begun before) finishes now, having seen epoch 10.
        cache.confirm(&early, 10);
        assert!(cache.get(&7, 0).is_none());
    }

    #[test]
    fn nothing_is_used_once_the_epoch_has_gone_unconfirmed_for_the_window() {
        let cache = EpochCache::default();
        cached(&cache, 0, 10);
        assert!(cache.get(&7, 0).is_some());
        std::thread::sleep(CONFIRM_WINDOW + Duration::from_millis(20));
        assert!(cache.get(&7, 0).is_none());
    }

    #[test]
    fn a_full_cache_starts_again_empty() {
        let cache = EpochCache::default();
        let lookup = cache.begin(0);
        cache.confirm(&lookup, 1);
        for i in 0..CAPACITY {
            cache.insert(i, &lookup, 1, i);
        }
        assert_eq!(cache.get(&0, 0), Some(0));
        cache.insert(CAPACITY, &lookup, 1, CAPACITY);
        assert!(cache.get(&0, 0).is_none(), "dropped when the cache filled");
        assert_eq!(cache.get(&CAPACITY, 0), Some(CAPACITY));
    }
}
