//! `strongroom storage move`: moving an organization to another region, and how far it is.
//! The work itself is a job (`jobs::region_move`), so exactly one node runs it, and a crash
//! resumes it.

use serde::Serialize;
use strongroom_domain::{JobId, OrgId};

use super::{Ops, cli_record};
use crate::ctx::Ctx;
use crate::jobs::queue::{Job, JobKind};
use crate::jobs::region_move::RegionMoveJob;
use crate::{Result, ServiceError};

/// An organization's latest move to another region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionMove {
    /// The job doing it.
    pub job_id: JobId,
    /// Where the organization goes (its region since the move was asked for).
    pub to: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// The organization's blobs stored in `to` now.
    pub blobs_in_region: u64,
    /// Its blobs still in another region.
    pub blobs_elsewhere: u64,
    /// Why the last attempt failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RegionMove {
    /// Whether the job is over (done or failed for good).
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "done" | "failed")
    }
}

/// The latest region move of `org`, with its progress counted from the blob rows.
pub(crate) async fn latest_move(ctx: &Ctx, org: &OrgId) -> Result<Option<RegionMove>> {
    let jobs = ctx.store.jobs_about(org.as_str()).await?;
    let Some(job) = jobs
        .into_iter()
        .rev()
        .find(|j| j.kind == JobKind::RegionMove.name())
    else {
        return Ok(None);
    };
    let to = ctx
        .store
        .org_region(org)
        .await?
        .ok_or(ServiceError::NotFound("organization"))?;
    let spread = ctx.store.region_spread(org, &to).await?;
    Ok(Some(RegionMove {
        job_id: job.id,
        to,
        status: format!("{:?}", job.status).to_ascii_lowercase(),
        blobs_in_region: spread.home,
        blobs_elsewhere: spread.away,
        error: job.last_error,
    }))
}

impl Ops {
    /// Moves organization `org` to region `to`: from now on its new blobs go there, and a job
    /// moves the existing ones (copy, verify, remove). Refused while a move of it is under way,
    /// and when it is wholly in `to` already.
    pub async fn start_region_move(&self, org: &OrgId, to: &str) -> Result<RegionMove> {
        let to = self.ctx.resolve_region(Some(to))?;
        let from = self
            .ctx
            .store
            .org_region(org)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        if let Some(m) = latest_move(&self.ctx, org).await?
            && !m.finished()
        {
            return Err(ServiceError::Conflict(format!(
                "a move of this organization to region '{}' is {} (job {}): wait for it to finish",
                m.to, m.status, m.job_id
            )));
        }
        let spread = self.ctx.store.region_spread(org, &to).await?;
        if from == to && spread.away == 0 {
            return Err(ServiceError::Invalid(format!(
                "the organization is in region '{to}' already"
            )));
        }
        let mut tx = self.ctx.store.begin().await?;
        tx.set_org_region(org, &to).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                cli_record(org, "org.region_move", org)
                    .detail(serde_json::json!({"from": from, "to": to})),
            )
            .await?;
        let job = Job::RegionMove(RegionMoveJob {
            org_id: org.clone(),
            to: to.clone(),
        });
        self.queue.enqueue(&mut tx, Some(org), job).await?;
        tx.commit().await?;
        latest_move(&self.ctx, org)
            .await?
            .ok_or_else(|| ServiceError::Internal("the move job just queued is missing".into()))
    }

    /// The latest move of organization `org`, if it was ever moved.
    pub async fn region_move(&self, org: &OrgId) -> Result<Option<RegionMove>> {
        if self.ctx.store.org_region(org).await?.is_none() {
            return Err(ServiceError::NotFound("organization"));
        }
        latest_move(&self.ctx, org).await
    }

    /// Queues a move for an organization that has blobs outside its region and no move under
    /// way (an upload that began before a move started can land after the move finished; the
    /// scrub finds it and calls this).
    pub(crate) async fn resume_region_move(&self, org: &OrgId) -> Result<bool> {
        if let Some(m) = latest_move(&self.ctx, org).await?
            && !m.finished()
        {
            return Ok(false);
        }
        let Some(to) = self.ctx.store.org_region(org).await? else {
            return Ok(false);
        };
        let mut tx = self.ctx.store.begin().await?;
        let job = Job::RegionMove(RegionMoveJob {
            org_id: org.clone(),
            to,
        });
        self.queue.enqueue(&mut tx, Some(org), job).await?;
        tx.commit().await?;
        Ok(true)
    }
}
