//! The storage scrub and status: every copy of every blob checked by its tags, a missing or
//! damaged copy rewritten from a good one, and what was found kept for `storage status`.
//!
//! The scrub walks the blob rows (originals and renditions) in id order, checking two blobs at
//! once. For each, it unwraps the data key and checks each copy alone, reading it in order
//! ([`strongroom_blob::verify_copy`]): header and every chunk's tag. A copy that is missing (a backend that was down during the upload, or added
//! since) or damaged is rewritten byte for byte from a copy that passed, and the repair is
//! recorded in the organization's audit trail. A blob with no good copy left is recorded as
//! unrecoverable: the scrub cannot make one up, so the operator must restore it from a backup.
//! A backend that does not answer is counted as unreachable for that blob and left alone.

use std::collections::{BTreeSet, HashMap};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use serde::Serialize;
use strongroom_blob::{BlobError, BlobStore, rewrite_copy, verify_copy};
use strongroom_crypto::keys::DataKey;
use strongroom_domain::OrgId;
use strongroom_store::BlobRow;

use super::Ops;
use crate::audit::Record;
use crate::{Result, ServiceError};

/// Blob rows read per page.
const PAGE: u32 = 500;

/// Blobs checked at once.
const SCRUB_PARALLEL: usize = 2;

/// What a scrub found and did, per backend and in all.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ScrubReport {
    /// When it finished (RFC 3339).
    pub finished_at: Option<String>,
    /// Blobs checked.
    pub checked: u64,
    /// Copies rewritten from a good one.
    pub repaired: u64,
    /// Blobs with no good copy left.
    pub unrecoverable: u64,
    /// The ids of those blobs (at most 100 listed).
    pub unrecoverable_blobs: Vec<String>,
    /// Blobs left alone because their organization is moving to another region (the move
    /// verifies them); a move is queued again for an organization that has such blobs and no
    /// move under way.
    #[serde(default)]
    pub moving: u64,
    /// Per backend, in the configured order.
    pub backends: Vec<BackendScrub>,
}

/// One backend's share of a scrub.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct BackendScrub {
    /// The backend's name.
    pub name: String,
    /// Copies it holds that passed (after repairs).
    pub objects: u64,
    /// Their stored (ciphertext) bytes.
    pub bytes: u64,
    /// Copies it lacked.
    pub missing: u64,
    /// Copies it held that failed their check.
    pub corrupt: u64,
    /// Blobs it did not answer for.
    pub unreachable: u64,
}

/// `strongroom storage status`: each backend now, and the last scrub's findings.
#[derive(Debug, Clone, Serialize)]
pub struct StorageStatus {
    /// Every backend, in the configured order.
    pub backends: Vec<BackendStatus>,
    /// How many backends must hold a blob before an upload is acknowledged.
    pub copies_required: usize,
    /// The last scrub, if one ran.
    pub last_scrub: Option<ScrubReport>,
}

/// One backend as `storage status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    /// Its name.
    pub name: String,
    /// The data-residency region it belongs to.
    pub region: String,
    /// Whether it answers now.
    pub up: bool,
    /// Why not, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// From the last scrub: good copies it held, their bytes, and what it lacked or had damaged.
    pub objects: u64,
    /// See `objects`.
    pub bytes: u64,
    /// See `objects`.
    pub missing: u64,
    /// See `objects`.
    pub corrupt: u64,
}

/// How long the scrub lease lasts without renewal: a node that dies mid-scrub blocks the next
/// one this long at most.
const LEASE_SECS: i64 = 600;

/// This process's hold on the scrub lease (one scrub at a time across every node).
struct ScrubLease {
    holder: String,
    renewed: std::sync::Mutex<std::time::Instant>,
}

impl ScrubLease {
    /// Takes the lease, or says who holds it (a conflict: try again later).
    async fn take(ctx: &crate::ctx::Ctx) -> Result<ScrubLease> {
        let holder = format!("scrub-{}", strongroom_crypto::token::random_token(8));
        let now = ctx.clock.now();
        if !ctx
            .store
            .lease_scrub(&holder, now, now.plus_secs(LEASE_SECS))
            .await?
        {
            let (other, until) = ctx.store.scrub_lease().await?;
            return Err(ServiceError::Conflict(format!(
                "another scrub is running ({other}, lease until {}): try again when it has finished",
                until.rfc3339()
            )));
        }
        Ok(ScrubLease {
            holder,
            renewed: std::sync::Mutex::new(std::time::Instant::now()),
        })
    }

    /// Renews the lease once a minute; fails if another node took it (this one stalled).
    async fn renew(&self, ctx: &crate::ctx::Ctx) -> Result<()> {
        let due = self
            .renewed
            .lock()
            .map(|t| t.elapsed() >= std::time::Duration::from_secs(60))
            .unwrap_or(true);
        if !due {
            return Ok(());
        }
        let now = ctx.clock.now();
        if !ctx
            .store
            .lease_scrub(&self.holder, now, now.plus_secs(LEASE_SECS))
            .await?
        {
            return Err(ServiceError::Conflict(
                "the scrub lease was lost to another node; that node goes on".into(),
            ));
        }
        if let Ok(mut t) = self.renewed.lock() {
            *t = std::time::Instant::now();
        }
        Ok(())
    }

    async fn release(self, ctx: &crate::ctx::Ctx) {
        if let Err(e) = ctx.store.release_scrub(&self.holder).await {
            tracing::warn!(error = %e, "could not end the scrub lease; it runs out by itself");
        }
    }
}

/// How one copy of a blob fared.
enum CopyState {
    Good,
    Missing,
    Corrupt,
    Unreachable(String),
}

/// The scrub's findings as metrics (this process's last scrub; `storage status` has the last of
/// any node's).
fn record_metrics(report: &ScrubReport, finished_ms: i64) {
    metrics::gauge!("strongroom_scrub_last_finished_timestamp_seconds")
        .set(finished_ms as f64 / 1000.0);
    metrics::gauge!("strongroom_scrub_checked_blobs").set(report.checked as f64);
    metrics::gauge!("strongroom_scrub_unrecoverable_blobs").set(report.unrecoverable as f64);
    metrics::counter!("strongroom_scrub_repaired_copies_total").increment(report.repaired);
    for b in &report.backends {
        let name = b.name.clone();
        metrics::gauge!("strongroom_scrub_missing_copies", "backend" => name.clone())
            .set(b.missing as f64);
        metrics::gauge!("strongroom_scrub_corrupt_copies", "backend" => name.clone())
            .set(b.corrupt as f64);
        metrics::gauge!("strongroom_scrub_unreachable_copies", "backend" => name)
            .set(b.unreachable as f64);
    }
}

impl Ops {
    /// Checks every copy of every blob and repairs what it can; `progress(done, total)` after
    /// each blob. The report is kept for `storage status`.
    pub async fn scrub(&self, mut progress: impl FnMut(u64, u64)) -> Result<ScrubReport> {
        let total: u64 = self
            .ctx
            .store
            .blob_counts_by_kek()
            .await?
            .into_iter()
            .map(|(_, n)| n)
            .sum();
        // Every region's backends, region by region: a blob's copies are those of its region.
        let mut report = ScrubReport::default();
        let mut first_copy = std::collections::BTreeMap::new();
        for (region, blobs) in self.ctx.blobs.each() {
            first_copy.insert(region.to_owned(), report.backends.len());
            report
                .backends
                .extend((0..blobs.copies()).map(|c| BackendScrub {
                    name: blobs.copy_name(c),
                    ..BackendScrub::default()
                }));
        }
        // One scrub at a time, across every node.
        let lease = ScrubLease::take(&self.ctx).await?;
        metrics::gauge!("strongroom_scrub_running").set(1.0);
        metrics::gauge!("strongroom_scrub_total_blobs").set(total as f64);
        let outcome = self
            .scrub_all(&first_copy, &mut report, &lease, |done| {
                metrics::gauge!("strongroom_scrub_done_blobs").set(done as f64);
                progress(done, total.max(done));
            })
            .await;
        metrics::gauge!("strongroom_scrub_running").set(0.0);
        lease.release(&self.ctx).await;
        outcome?;
        let now = self.ctx.clock.now();
        report.finished_at = Some(now.rfc3339());
        record_metrics(&report, now.millis());
        let json =
            serde_json::to_string(&report).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.ctx.store.record_scrub(now, &json).await?;
        Ok(report)
    }

    async fn scrub_all(
        &self,
        first_copy: &std::collections::BTreeMap<String, usize>,
        report: &mut ScrubReport,
        lease: &ScrubLease,
        mut progress: impl FnMut(u64),
    ) -> Result<()> {
        let mut moving = BTreeSet::new();
        let mut org_regions: HashMap<OrgId, Option<String>> = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.ctx.store.blobs_after(after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.to_string());
            // Blobs to check, in order; those of a moving organization are the move's to check.
            let mut work = Vec::with_capacity(page.len());
            for blob in &page {
                if !org_regions.contains_key(&blob.org_id) {
                    let region = self.ctx.store.org_region(&blob.org_id).await?;
                    org_regions.insert(blob.org_id.clone(), region);
                }
                if org_regions
                    .get(&blob.org_id)
                    .is_some_and(|r| r.as_deref() != Some(blob.region.as_str()))
                {
                    report.moving += 1;
                    moving.insert(blob.org_id.clone());
                    report.checked += 1;
                    progress(report.checked);
                    continue;
                }
                let (Some(&first), Ok(home)) = (
                    first_copy.get(&blob.region),
                    self.ctx.blobs.home(&blob.region),
                ) else {
                    return Err(ServiceError::Unavailable(format!(
                        "blob {} is stored in region '{}', which has no storage backend here",
                        blob.id, blob.region
                    )));
                };
                work.push((blob, home, first));
            }
            // Checking (reading and authenticating every copy) runs for a few blobs at once, so
            // one blob's reads overlap another's decryption; repairs and the report follow in
            // order, one blob at a time.
            let mut work = work.into_iter();
            let mut checking = FuturesOrdered::new();
            loop {
                while checking.len() < SCRUB_PARALLEL {
                    let Some((blob, home, first)) = work.next() else {
                        break;
                    };
                    checking.push_back(async move {
                        let found = self.check_copies(home.as_ref(), blob).await;
                        (blob, home, first, found)
                    });
                }
                let Some((blob, home, first, found)) = checking.next().await else {
                    break;
                };
                lease.renew(&self.ctx).await?;
                let (dek, states) = found?;
                self.settle(home.as_ref(), first, blob, &dek, &states, report)
                    .await?;
                report.checked += 1;
                progress(report.checked);
            }
        }
        for org in moving {
            if self.resume_region_move(&org).await? {
                tracing::warn!(org = %org, "scrub: blobs outside the organization's region and no move under way; queued a move");
            }
        }
        Ok(())
    }

    /// Checks each copy of `blob` in its region (`blobs`) alone; returns its data key for the
    /// repairs.
    async fn check_copies(
        &self,
        blobs: &dyn BlobStore,
        blob: &BlobRow,
    ) -> Result<(DataKey, Vec<CopyState>)> {
        let id = blob.id.as_str();
        let dek = self.keyring.data_key(&self.ctx.store, blob).await?;
        let mut states = Vec::with_capacity(blobs.copies());
        for copy in 0..blobs.copies() {
            states.push(match verify_copy(blobs, id, copy, &dek, blob.size).await {
                Ok(()) => CopyState::Good,
                Err(BlobError::NotFound) => CopyState::Missing,
                Err(BlobError::Crypto(_)) => CopyState::Corrupt,
                Err(e) => CopyState::Unreachable(e.to_string()),
            });
        }
        Ok((dek, states))
    }

    /// Repairs the copies of `blob` that [`Ops::check_copies`] found missing or damaged, from
    /// one that passed, and counts them in `report.backends[first..]` (the region's backends).
    async fn settle(
        &self,
        blobs: &dyn BlobStore,
        first: usize,
        blob: &BlobRow,
        dek: &DataKey,
        states: &[CopyState],
        report: &mut ScrubReport,
    ) -> Result<()> {
        let id = blob.id.as_str();
        let good = states.iter().position(|s| matches!(s, CopyState::Good));
        let mut repaired = Vec::new();
        for (copy, state) in states.iter().enumerate() {
            let b = &mut report.backends[first + copy];
            match state {
                CopyState::Good => {
                    b.objects += 1;
                    b.bytes += blob.stored_size;
                }
                CopyState::Unreachable(why) => {
                    b.unreachable += 1;
                    tracing::warn!(blob = %id, backend = %b.name, error = %why, "scrub: backend did not answer");
                }
                CopyState::Missing | CopyState::Corrupt => {
                    if matches!(state, CopyState::Missing) {
                        b.missing += 1;
                    } else {
                        b.corrupt += 1;
                    }
                    let Some(from) = good else { continue };
                    match rewrite_copy(blobs, id, from, copy, blob.stored_size).await {
                        Ok(()) => match verify_copy(blobs, id, copy, dek, blob.size).await {
                            Ok(()) => {
                                b.objects += 1;
                                b.bytes += blob.stored_size;
                                repaired.push(b.name.clone());
                            }
                            Err(e) => {
                                tracing::error!(blob = %id, backend = %b.name, error = %e, "scrub: a rewritten copy does not verify");
                            }
                        },
                        Err(e) => {
                            tracing::warn!(blob = %id, backend = %b.name, error = %e, "scrub: could not rewrite a copy");
                        }
                    }
                }
            }
        }
        if good.is_none()
            && states
                .iter()
                .any(|s| !matches!(s, CopyState::Unreachable(_)))
        {
            report.unrecoverable += 1;
            if report.unrecoverable_blobs.len() < 100 {
                report.unrecoverable_blobs.push(id.to_owned());
            }
            tracing::error!(blob = %id, "scrub: no good copy of this blob is left; restore it from a backup");
            self.record(blob, "storage.unrecoverable", serde_json::json!({}))
                .await?;
        }
        if !repaired.is_empty() {
            report.repaired += repaired.len() as u64;
            self.record(
                blob,
                "storage.repaired",
                serde_json::json!({"backends": repaired}),
            )
            .await?;
        }
        Ok(())
    }

    /// Records a scrub's finding about a blob in its organization's trail.
    async fn record(
        &self,
        blob: &BlobRow,
        action: &'static str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.ctx.store.begin().await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record {
                    org_id: &blob.org_id,
                    actor: "system".into(),
                    subject: None,
                    action,
                    target: blob.id.to_string(),
                    ip: String::new(),
                    detail,
                },
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Runs a scrub when none has finished within `interval` (on any node: the last one is
    /// read from the database), for the server's schedule. When two nodes find it due at once,
    /// one takes the scrub lease and the other leaves it (`None`).
    pub async fn scrub_if_due(&self, interval: std::time::Duration) -> Result<Option<ScrubReport>> {
        let now = self.ctx.clock.now();
        let secs = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
        if let Some((at, _)) = self.ctx.store.last_scrub().await?
            && now < at.plus_secs(secs)
        {
            return Ok(None);
        }
        match self.scrub(|_, _| {}).await {
            Ok(r) => Ok(Some(r)),
            Err(ServiceError::Conflict(why)) => {
                tracing::info!(reason = %why, "scheduled scrub left to another node");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Each backend now (does it answer?) and the last scrub's findings.
    pub async fn storage_status(&self) -> Result<StorageStatus> {
        let last_scrub = match self.ctx.store.last_scrub().await? {
            Some((_, json)) => Some(serde_json::from_str::<ScrubReport>(&json).map_err(|e| {
                ServiceError::Internal(format!("a stored scrub report does not parse: {e}"))
            })?),
            None => None,
        };
        let mut backends = Vec::new();
        let mut copies_required = 0;
        for (_, blobs) in self.ctx.blobs.each() {
            copies_required = blobs.required_copies();
            for copy in 0..blobs.copies() {
                let name = blobs.copy_name(copy);
                let seen = last_scrub
                    .as_ref()
                    .and_then(|r| r.backends.iter().find(|b| b.name == name))
                    .cloned()
                    .unwrap_or_default();
                let check = blobs.check_copy(copy).await;
                backends.push(BackendStatus {
                    up: check.is_ok(),
                    error: check.err().map(|e| e.to_string()),
                    region: blobs.copy_region(copy),
                    name,
                    objects: seen.objects,
                    bytes: seen.bytes,
                    missing: seen.missing,
                    corrupt: seen.corrupt,
                });
            }
        }
        Ok(StorageStatus {
            backends,
            copies_required,
            last_scrub,
        })
    }
}
