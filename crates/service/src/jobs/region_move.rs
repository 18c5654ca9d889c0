//! Moving an organization to another region: a job that copies each of its blobs to the new
//! region's backends, verifies the copies, then removes the old ones.
//!
//! The organization's region changes when the move is asked for (`Ops::start_region_move`), so
//! every blob written from then on goes to the new region; the job then works through the blob
//! rows still naming another region. For each blob:
//! 1. unless every copy in the new region already verifies (an earlier attempt got that far), a
//!    copy in the old region that verifies is streamed, byte for byte, to the new region's
//!    backends (all of them at once, acknowledged once `copies` hold it);
//! 2. every new copy is verified by its tags, with the data key (a missing or failing one fails
//!    the attempt, which is retried);
//! 3. the old region's copies are deleted (all of them, or the attempt fails and is retried);
//! 4. the row is updated to the new region.
//!
//! Reads look in every region (`strongroom_blob::Regions`), so a download during the move finds
//! the blob wherever it is at that moment. Each step can be repeated, so a crash or a lost lease
//! anywhere only repeats work. The scrub leaves alone the blobs of an organization being moved.

use std::sync::Arc;

use strongroom_blob::{BlobError, BlobStore, Replicated, verify_copy};
use strongroom_crypto::keys::DataKey;
use strongroom_domain::OrgId;
use strongroom_store::BlobRow;

use crate::audit::Record;
use crate::ctx::Ctx;
use crate::jobs::queue::{JobCtx, JobFailure};
use crate::keys::keyring::Keyring;

/// Attempts before a move job gives up (each resumes where the last one stopped).
pub(crate) const REGION_MOVE_ATTEMPTS: u32 = 10;

/// Blob rows read per page.
const PAGE: u32 = 100;

/// How much ciphertext is moved per read.
const PIECE: usize = 1 << 20;

/// The payload of a region move: the organization (the job's) and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RegionMoveJob {
    /// The organization moving.
    pub(crate) org_id: OrgId,
    /// Its new region.
    pub(crate) to: String,
}

/// Runs region moves.
pub(crate) struct RegionMover {
    ctx: Arc<Ctx>,
    keyring: Arc<Keyring>,
}

fn retry(e: impl std::fmt::Display) -> JobFailure {
    JobFailure::Retry(e.to_string())
}

impl RegionMover {
    pub(crate) fn new(ctx: Arc<Ctx>, keyring: Arc<Keyring>) -> RegionMover {
        RegionMover { ctx, keyring }
    }

    /// Moves every blob of the organization that is not in `job.to` yet.
    pub(crate) async fn run(
        &self,
        job: &RegionMoveJob,
        ctx: &JobCtx,
    ) -> std::result::Result<(), JobFailure> {
        let store = &self.ctx.store;
        let current = store.org_region(&job.org_id).await.map_err(retry)?;
        match current {
            None => return Err(JobFailure::Permanent("the organization is gone".into())),
            Some(r) if r != job.to => {
                return Err(JobFailure::Permanent(format!(
                    "the organization's region is now '{r}', not '{}': a later move replaced this one",
                    job.to
                )));
            }
            Some(_) => {}
        }
        let to = self.ctx.blobs.home(&job.to).map_err(retry)?;
        let mut moved = 0u64;
        loop {
            let page = store
                .blobs_outside(&job.org_id, &job.to, PAGE)
                .await
                .map_err(retry)?;
            if page.is_empty() {
                break;
            }
            for blob in &page {
                self.move_blob(blob, &job.to, to.as_ref()).await?;
                moved += 1;
                let spread = store
                    .region_spread(&job.org_id, &job.to)
                    .await
                    .map_err(retry)?;
                let total = (spread.home + spread.away).max(1);
                ctx.set_progress(u8::try_from(spread.home * 100 / total).unwrap_or(100));
            }
        }
        ctx.set_progress(100);
        let mut tx = store.begin().await.map_err(retry)?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record {
                    org_id: &job.org_id,
                    actor: "system".into(),
                    subject: None,
                    action: "org.region_moved",
                    target: job.org_id.to_string(),
                    ip: String::new(),
                    detail: serde_json::json!({"region": job.to, "blobs_moved": moved}),
                },
            )
            .await
            .map_err(retry)?;
        tx.commit().await.map_err(retry)?;
        Ok(())
    }

    /// Copies, verifies, removes, relabels one blob (see the module docs).
    async fn move_blob(
        &self,
        blob: &BlobRow,
        region: &str,
        to: &Replicated,
    ) -> std::result::Result<(), JobFailure> {
        let id = blob.id.as_str();
        let dek = self
            .keyring
            .data_key(&self.ctx.store, blob)
            .await
            .map_err(retry)?;
        if verify_all(to, blob, &dek).await.is_err() {
            let from = self.ctx.blobs.home(&blob.region).map_err(retry)?;
            let mut good = None;
            for copy in 0..from.copies() {
                if verify_copy(from.as_ref(), id, copy, &dek, blob.size)
                    .await
                    .is_ok()
                {
                    good = Some(copy);
                    break;
                }
            }
            let Some(good) = good else {
                return Err(JobFailure::Permanent(format!(
                    "blob {id} has no good copy in region '{}': restore it from a backup, then run the move again",
                    blob.region
                )));
            };
            copy_blob(from.as_ref(), good, to, id, blob.stored_size)
                .await
                .map_err(|e| retry(format!("copying blob {id} to region '{region}': {e}")))?;
            verify_all(to, blob, &dek).await.map_err(|e| {
                retry(format!(
                    "blob {id} does not verify in region '{region}' after the copy: {e}"
                ))
            })?;
        }
        let from = self.ctx.blobs.home(&blob.region).map_err(retry)?;
        from.delete(id).await.map_err(|e| {
            retry(format!(
                "removing blob {id} from region '{}': {e}",
                blob.region
            ))
        })?;
        let mut tx = self.ctx.store.begin().await.map_err(retry)?;
        tx.move_blob_region(&blob.id, &blob.region, region)
            .await
            .map_err(retry)?;
        tx.commit().await.map_err(retry)?;
        Ok(())
    }
}

/// Checks every copy of `blob` in `store` by its tags.
async fn verify_all(store: &Replicated, blob: &BlobRow, dek: &DataKey) -> Result<(), BlobError> {
    for copy in 0..store.copies() {
        verify_copy(store, blob.id.as_str(), copy, dek, blob.size).await?;
    }
    Ok(())
}

/// Streams copy `copy` of blob `id` (`stored_len` bytes of ciphertext) from `from` into a new
/// blob of `to`, visible once `to` holds it durably.
async fn copy_blob(
    from: &dyn BlobStore,
    copy: usize,
    to: &dyn BlobStore,
    id: &str,
    stored_len: u64,
) -> Result<(), BlobError> {
    let mut w = to.create(id).await?;
    let mut at = 0u64;
    while at < stored_len {
        let want = usize::try_from(stored_len - at).map_or(PIECE, |n| n.min(PIECE));
        let piece = from.read_copy_at(id, copy, at, want).await?;
        if piece.is_empty() {
            return Err(strongroom_crypto::CryptoError::Truncated.into());
        }
        at += piece.len() as u64;
        w.write(piece).await?;
    }
    w.commit().await
}
