//! The orphan sweep: stored objects nothing refers to (a crash between the durable write and
//! the commit, or a failed removal after a delete) are removed once older than the grace period.
//!
//! An object refers to a blob row (its data key), or is leased to the job attempt that stored
//! it, from before it was written until the job commits it: a running job's outputs are never
//! swept, whatever the grace period. The leases of attempts that are over (failed, crashed,
//! taken over by another worker) are ended here, and their objects removed.

use std::time::SystemTime;

use super::Ops;
use crate::Result;

/// Abandoned leases handled per sweep; the next sweep takes the rest.
const ABANDONED_BATCH: u32 = 10_000;

impl Ops {
    /// Removes the outputs of job attempts that are over, then unreferenced stored objects older
    /// than the grace period; returns how many objects were removed.
    pub async fn sweep_orphans(&self) -> Result<usize> {
        let mut removed = 0;
        for id in self.ctx.store.abandoned_outputs(ABANDONED_BATCH).await? {
            // Never the object of a committed blob (a lease always ends as its row appears, but
            // a stored blob is not the sweep's to judge).
            if !self.ctx.store.blob_exists(id.as_str()).await? {
                self.ctx.blobs.delete_everywhere(id.as_str()).await?;
                removed += 1;
            }
            self.ctx
                .store
                .release_outputs(std::slice::from_ref(&id))
                .await?;
        }
        let cutoff = SystemTime::now()
            .checked_sub(self.ctx.config.orphan_grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for id in self.ctx.blobs.list_older_than(cutoff).await? {
            if !self.ctx.store.object_referenced(&id).await? {
                self.ctx.blobs.delete_everywhere(&id).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "orphan sweep removed unreferenced objects");
        }
        Ok(removed)
    }
}
