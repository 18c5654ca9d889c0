//! The background worker over the durable job queue.
//!
//! A use case enqueues a job inside its own transaction, so work is never started for a change
//! that rolled back, and never lost for one that committed. Workers on every node claim due jobs
//! one at a time (a conditional update in the database decides who gets each), hold a lease they
//! renew while working, and on failure put the job back with exponential backoff until its
//! attempts run out. A job whose worker died becomes due again when its lease expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use strongroom_crypto::token;
use strongroom_domain::{JobId, OrgId};
use strongroom_store::{JobRow, NewJob, Tx};

use crate::{Result, Service, ServiceError};

/// How long a claim holds before another worker may take the job over.
const LEASE_SECS: i64 = 60;

/// How often an idle worker looks for due jobs (it is also woken at once by local enqueues).
const POLL: Duration = Duration::from_secs(1);

/// The first retry waits this long; each later one twice as long as the one before.
const FIRST_BACKOFF_SECS: i64 = 5;

/// No retry waits longer than this.
const MAX_BACKOFF_SECS: i64 = 3600;

/// Why a job attempt failed, and whether trying again could help.
#[derive(Debug)]
pub enum JobFailure {
    /// Try again later (a server that did not answer, a full disk).
    Retry(String),
    /// Trying again cannot help (a refused address, an unreadable file).
    Permanent(String),
}

/// How often a running job renews its lease and records its progress.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// What a handler knows about the job it runs, and how it reports progress.
pub(crate) struct JobCtx {
    /// The organization the job works for.
    pub(crate) org_id: Option<OrgId>,
    progress: AtomicU8,
}

impl JobCtx {
    /// Records progress (0..=100); the heartbeat writes it to the database.
    pub(crate) fn set_progress(&self, percent: u8) {
        self.progress.store(percent.min(100), Ordering::Relaxed);
    }
}

/// The wait before the attempt after `attempts` failed ones.
pub(crate) fn backoff_secs(attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(20);
    (FIRST_BACKOFF_SECS << doublings).min(MAX_BACKOFF_SECS)
}

/// The queue at a glance.
#[derive(Debug, serde::Serialize)]
pub struct JobReport {
    /// Jobs per status (`queued`, `running`, `done`, `failed`).
    pub counts: Vec<(String, u64)>,
    /// The latest jobs that failed for good.
    pub recent_failures: Vec<FailedJob>,
}

/// A job that failed for good.
#[derive(Debug, serde::Serialize)]
pub struct FailedJob {
    /// Its id.
    pub id: JobId,
    /// What it did.
    pub kind: String,
    /// What it was about (an asset id).
    pub subject: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When it failed.
    pub updated_at: strongroom_domain::Timestamp,
}

/// A job to add to the queue.
pub(crate) struct Enqueue<'a> {
    pub(crate) kind: &'static str,
    pub(crate) org_id: Option<&'a OrgId>,
    pub(crate) subject: Option<String>,
    pub(crate) payload: serde_json::Value,
    pub(crate) max_attempts: u32,
}

impl Service {
    /// Adds a job in the caller's transaction. The payload is sealed to the job's id with a
    /// root-derived key: the queue may hold personal data and secrets (an invitation link).
    pub(crate) async fn enqueue(&self, tx: &mut Tx, job: Enqueue<'_>) -> Result<JobId> {
        let id = JobId::generate();
        let plain =
            serde_json::to_vec(&job.payload).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let now = self.clock.now();
        tx.enqueue_job(
            &NewJob {
                id: id.clone(),
                org_id: job.org_id.cloned(),
                kind: job.kind.to_owned(),
                subject: job.subject,
                payload: self.jobs_key.seal(id.as_str().as_bytes(), &plain),
                max_attempts: job.max_attempts,
                run_after: now,
            },
            now,
        )
        .await?;
        self.jobs_ready.notify_one();
        Ok(id)
    }

    /// Runs due jobs until the task is dropped. Every node runs one worker.
    pub async fn run_worker(self: Arc<Self>) {
        let worker = format!("worker-{}", token::random_token(8));
        loop {
            match self.run_one(&worker).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "job queue: cannot claim a job"),
            }
            let _ = tokio::time::timeout(POLL, self.jobs_ready.notified()).await;
        }
    }

    /// Claims and runs one due job; false when none was due.
    pub async fn run_one(&self, worker: &str) -> Result<bool> {
        let now = self.clock.now();
        let Some(job) = self
            .store
            .claim_job(worker, now, now.plus_secs(LEASE_SECS))
            .await?
        else {
            return Ok(false);
        };
        let payload = match self.jobs_key.open(job.id.as_str().as_bytes(), &job.payload) {
            Ok(plain) => serde_json::from_slice::<serde_json::Value>(&plain)
                .map_err(|e| JobFailure::Permanent(format!("unreadable payload: {e}"))),
            Err(_) => Err(JobFailure::Permanent(
                "the payload failed its integrity check".into(),
            )),
        };
        let ctx = JobCtx {
            org_id: job.org_id.clone(),
            progress: AtomicU8::new(0),
        };
        let outcome = match &payload {
            Ok(p) => self.run_with_heartbeat(&job, worker, p.clone(), &ctx).await,
            Err(JobFailure::Permanent(m)) => Err(JobFailure::Permanent(m.clone())),
            Err(JobFailure::Retry(m)) => Err(JobFailure::Retry(m.clone())),
        };
        let now = self.clock.now();
        match outcome {
            Ok(()) => {
                self.store.finish_job(&job.id, worker, now).await?;
                tracing::info!(job = %job.id, kind = %job.kind, attempts = job.attempts, "job done");
            }
            Err(failure) => {
                let (message, retry) = match failure {
                    JobFailure::Retry(m) => (m, job.attempts < job.max_attempts),
                    JobFailure::Permanent(m) => (m, false),
                };
                let retry_at = retry.then(|| now.plus_secs(backoff_secs(job.attempts)));
                if !retry
                    && job.kind == crate::media::MEDIA_JOB
                    && let Ok(p) = &payload
                {
                    self.media_gave_up(job.org_id.as_ref(), p, &message).await;
                }
                self.store
                    .fail_job(&job.id, worker, &message, retry_at, now)
                    .await?;
                tracing::warn!(
                    job = %job.id,
                    kind = %job.kind,
                    attempts = job.attempts,
                    retry = retry,
                    error = %message,
                    "job failed"
                );
            }
        }
        Ok(true)
    }

    /// Runs the handler while renewing the lease (and recording progress) every
    /// [`HEARTBEAT`]. If the lease is lost (another worker took the job over after this one
    /// stalled), the handler is dropped, which kills any process it started.
    async fn run_with_heartbeat(
        &self,
        job: &JobRow,
        worker: &str,
        payload: serde_json::Value,
        ctx: &JobCtx,
    ) -> std::result::Result<(), JobFailure> {
        let work = self.dispatch(job, payload, ctx);
        tokio::pin!(work);
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.tick().await;
        loop {
            tokio::select! {
                outcome = &mut work => return outcome,
                _ = beat.tick() => {
                    let now = self.clock.now();
                    let progress = ctx.progress.load(Ordering::Relaxed);
                    match self.store.renew_job(&job.id, worker, progress, now.plus_secs(LEASE_SECS), now).await {
                        Ok(true) => {}
                        Ok(false) => return Err(JobFailure::Retry("the job's lease was lost to another worker".into())),
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "could not renew a job's lease"),
                    }
                }
            }
        }
    }

    async fn dispatch(
        &self,
        job: &JobRow,
        payload: serde_json::Value,
        ctx: &JobCtx,
    ) -> std::result::Result<(), JobFailure> {
        match job.kind.as_str() {
            crate::mail::MAIL_JOB => self.deliver_mail(payload).await,
            crate::media::MEDIA_JOB => self.process_media(payload, ctx).await,
            other => Err(JobFailure::Permanent(format!("unknown job kind {other:?}"))),
        }
    }

    /// The queue at a glance, for operators: counts per status and the latest failures.
    pub async fn job_report(&self) -> Result<JobReport> {
        let counts = self
            .store
            .job_counts()
            .await?
            .into_iter()
            .map(|(s, n)| (format!("{s:?}").to_ascii_lowercase(), n))
            .collect();
        let recent_failures = self
            .store
            .failed_jobs(10)
            .await?
            .into_iter()
            .map(|j| FailedJob {
                id: j.id,
                kind: j.kind,
                subject: j.subject,
                attempts: j.attempts,
                error: j.last_error.unwrap_or_default(),
                updated_at: j.updated_at,
            })
            .collect();
        Ok(JobReport {
            counts,
            recent_failures,
        })
    }

    /// Forgets finished jobs a week after they finished.
    pub async fn prune_jobs(&self) -> Result<u64> {
        let before = self.clock.now().plus_secs(-7 * 24 * 3600);
        Ok(self.store.prune_jobs(before).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_secs(1), 5);
        assert_eq!(backoff_secs(2), 10);
        assert_eq!(backoff_secs(3), 20);
        assert_eq!(backoff_secs(10), 2560);
        assert_eq!(backoff_secs(11), 3600);
        assert_eq!(backoff_secs(u32::MAX), 3600);
    }
}
