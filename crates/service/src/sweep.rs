//! The orphan sweep: stored objects no blob row refers to (a crash between the durable write and
//! the commit, or a failed removal after a delete) are removed once older than the grace period.

use std::time::SystemTime;

use crate::{Result, Service};

impl Service {
    /// Removes unreferenced stored objects older than the grace period; returns how many.
    pub async fn sweep_orphans(&self) -> Result<usize> {
        let cutoff = SystemTime::now()
            .checked_sub(self.config.orphan_grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut removed = 0;
        for id in self.blobs.list_older_than(cutoff).await? {
            if !self.store.blob_exists(&id).await? {
                self.blobs.delete(&id).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "orphan sweep removed unreferenced objects");
        }
        Ok(removed)
    }
}
