//! Pruning old backups, and the shred pass that carries purges into every earlier backup.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use strongroom_domain::BackupId;

use super::format::{Manifest, keys_object, manifest_id, manifest_object, part_id};
use super::{Backups, Destination, put_object, read_object};
use crate::Result;

/// How old an unreferenced object must be before prune removes it: younger ones may belong to
/// a backup still being written.
pub const PRUNE_GRACE: Duration = Duration::from_secs(24 * 3600);

/// What `backup prune` did at one destination.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// The destination.
    pub destination: String,
    /// Backups kept.
    pub kept: Vec<BackupId>,
    /// Backups removed.
    pub removed: Vec<BackupId>,
    /// Objects deleted (the removed backups' own objects, and blobs no kept backup refers to).
    pub objects_deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
}

/// What a shred pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShredReport {
    /// Key sets rewritten without purged blobs.
    pub rewritten: u64,
    /// Destinations that could not be reached (tried again at the next pass).
    pub unreachable: Vec<String>,
}

/// The backups prune keeps: the newest overall, and the newest of each of the most recent
/// `daily` days and `weekly` weeks (UTC) that have one.
fn kept(manifests: &[Manifest], daily: u32, weekly: u32) -> HashSet<BackupId> {
    const DAY: i64 = 86_400_000;
    let mut keep = HashSet::new();
    let mut newest: Vec<&Manifest> = manifests.iter().collect();
    newest.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    if let Some(m) = newest.first() {
        keep.insert(m.id.clone());
    }
    for (period, count) in [(DAY, daily), (7 * DAY, weekly)] {
        let mut seen: HashMap<i64, ()> = HashMap::new();
        for m in &newest {
            // Weeks start on Monday: the epoch was a Thursday.
            let bucket =
                (m.created_at + if period == DAY { 0 } else { 3 * DAY }).div_euclid(period);
            if seen.len() as u32 >= count && !seen.contains_key(&bucket) {
                break;
            }
            if seen.insert(bucket, ()).is_none() {
                keep.insert(m.id.clone());
            }
        }
    }
    keep
}

impl Backups {
    /// `strongroom backup prune`: keeps the newest backup of each of the last `keep_daily` days
    /// and `keep_weekly` weeks that have one (and always the newest), removes the others, then
    /// every object no kept backup refers to that is older than `grace`, and the temp files of
    /// interrupted backups as old.
    pub async fn prune(
        &self,
        dest: &Destination,
        keep_daily: u32,
        keep_weekly: u32,
        grace: Duration,
    ) -> Result<PruneReport> {
        let manifests = self.manifests(dest).await?;
        let keep = kept(&manifests, keep_daily, keep_weekly);
        let mut report = PruneReport {
            destination: dest.url.clone(),
            kept: Vec::new(),
            removed: Vec::new(),
            objects_deleted: 0,
            bytes_deleted: 0,
        };
        let mut referenced = HashSet::new();
        for m in &manifests {
            if keep.contains(&m.id) {
                report.kept.push(m.id.clone());
                referenced.extend(m.blobs.iter().map(|b| b.id.clone()));
            } else {
                // The manifest first: from then on the backup is gone, whatever happens next.
                dest.store.delete(&manifest_object(&m.id)).await?;
                report.removed.push(m.id.clone());
            }
        }
        let old = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // The temp files of copies an interrupted backup never published, once as old: the
        // store's sweep removes them (the old ids it also lists are judged below).
        dest.store.list_older_than(old).await?;
        for (name, modified) in dest.store.list_objects().await? {
            let unreferenced = match (manifest_id(&name), part_id(&name)) {
                (Some(_), _) => false,
                (None, Some(owner)) => !keep.contains(&owner),
                (None, None) => !referenced.contains(&name),
            };
            // A removed backup's own objects go now; anything else only once it is old
            // enough not to belong to a backup being written.
            let removed_part = part_id(&name).is_some_and(|o| report.removed.contains(&o));
            if unreferenced && (removed_part || modified < old) {
                let len = dest.store.len(&name).await.unwrap_or(0);
                dest.store.delete(&name).await?;
                report.objects_deleted += 1;
                report.bytes_deleted += len;
            }
        }
        Ok(report)
    }

    /// Carries purges and erasures into the backups: every key set at every destination this
    /// instance has backed up to (configured, or used by a `backup create`) is rewritten
    /// without the data keys of blobs shredded since and the keys of people erased since. Marks the shreds done only when every destination answered.
    pub async fn shred_pass(&self) -> Result<ShredReport> {
        let store = &self.ctx.store;
        let pending = store.pending_shreds().await?;
        let mut report = ShredReport::default();
        if pending.is_empty() {
            return Ok(report);
        }
        let shredded: HashSet<String> = store.shredded_blobs().await?.into_iter().collect();
        let erased: HashSet<String> = store.erased_users().await?.into_iter().collect();
        let deleted: HashSet<String> = store.deleted_orgs().await?.into_iter().collect();
        let mut urls: BTreeSet<String> =
            self.destinations().iter().map(|d| d.url.clone()).collect();
        urls.extend(store.backup_destinations_used().await?);
        for url in urls {
            let dest = match self.destinations().iter().find(|d| d.url == url) {
                Some(d) => d.clone(),
                None => match Destination::open(&url, None, None) {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(destination = %url, error = %e, "cannot open a backup destination to remove purged keys");
                        report.unreachable.push(url);
                        continue;
                    }
                },
            };
            match self.shred_at(&dest, &shredded, &erased, &deleted).await {
                Ok(n) => report.rewritten += n,
                Err(e) => {
                    tracing::warn!(destination = %url, error = %e, "cannot remove purged keys from a backup destination; trying again at the next pass");
                    report.unreachable.push(url);
                }
            }
        }
        if report.unreachable.is_empty() {
            store.shreds_applied(&pending).await?;
        }
        Ok(report)
    }

    async fn shred_at(
        &self,
        dest: &Destination,
        shredded: &HashSet<String>,
        erased: &HashSet<String>,
        deleted: &HashSet<String>,
    ) -> Result<u64> {
        let mut rewritten = 0;
        for (name, _) in dest.store.list_objects().await? {
            let Some(id) = manifest_id(&name) else {
                continue;
            };
            let object = keys_object(&id);
            let sealed = read_object(&*dest.store, &object).await?;
            let Some(mut keyset) = self.keys.open_keyset(&id, &sealed) else {
                tracing::warn!(destination = %dest.url, object = %object, "a backup key set does not open under this root key");
                continue;
            };
            if keyset.forget(shredded, erased, deleted) {
                let sealed = self.keys.seal_keyset(&id, &keyset)?;
                put_object(&*dest.store, &object, sealed.into()).await?;
                rewritten += 1;
            }
        }
        Ok(rewritten)
    }
}
