//! The durable job queue: rows in the database, claimed by one conditional update, so any number
//! of workers on any number of nodes share it and a job survives a restart.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{JobId, OrgId, Timestamp};

use crate::{Result, Store, StoreError, Tx, parsed};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting until `run_after`.
    Queued,
    /// Claimed by a worker whose lease has not run out.
    Running,
    /// Finished.
    Done,
    /// Gave up after its last attempt, or failed for good.
    Failed,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> std::result::Result<JobStatus, String> {
        match s {
            "queued" => Ok(JobStatus::Queued),
            "running" => Ok(JobStatus::Running),
            "done" => Ok(JobStatus::Done),
            "failed" => Ok(JobStatus::Failed),
            other => Err(format!("unknown job status {other:?}")),
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id (the payload is sealed to it).
    pub id: JobId,
    /// The organization it works for, if any.
    pub org_id: Option<OrgId>,
    /// What to do (the worker's handler name).
    pub kind: String,
    /// What it is about, for status lookups (an asset id); never secret.
    pub subject: Option<String>,
    /// The sealed payload.
    pub payload: Vec<u8>,
    /// How many attempts before it fails for good.
    pub max_attempts: u32,
    /// Not before this time.
    pub run_after: Timestamp,
}

/// A job as stored.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Its id.
    pub id: JobId,
    /// The organization it works for, if any.
    pub org_id: Option<OrgId>,
    /// What to do.
    pub kind: String,
    /// What it is about.
    pub subject: Option<String>,
    /// The sealed payload.
    pub payload: Vec<u8>,
    /// Where it is.
    pub status: JobStatus,
    /// Attempts started so far (including the current one while running).
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Not before this time.
    pub run_after: Timestamp,
    /// 0..=100.
    pub progress: u8,
    /// The last failure's message, safe to show.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "id, org_id, kind, subject, payload, status, attempts, max_attempts, \
                       run_after, progress, last_error, created_at, updated_at";

fn job(row: &AnyRow) -> Result<JobRow> {
    let org: Option<String> = row.try_get("org_id")?;
    let num = |col: &str| -> Result<i64> { Ok(row.try_get::<i64, _>(col)?) };
    let small = |v: i64| -> Result<u32> {
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            table: "jobs",
            detail: format!("count {v}"),
        })
    };
    Ok(JobRow {
        id: parsed(row, "jobs", "id", JobId::parse)?,
        org_id: org
            .map(|o| {
                OrgId::parse(&o).map_err(|e| StoreError::Corrupt {
                    table: "jobs",
                    detail: e.to_string(),
                })
            })
            .transpose()?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        payload: row.try_get("payload")?,
        status: parsed(row, "jobs", "status", JobStatus::parse)?,
        attempts: small(num("attempts")?)?,
        max_attempts: small(num("max_attempts")?)?,
        run_after: Timestamp::from_millis(num("run_after")?),
        progress: u8::try_from(num("progress")?.clamp(0, 100)).unwrap_or(0),
        last_error: row.try_get("last_error")?,
        created_at: Timestamp::from_millis(num("created_at")?),
        updated_at: Timestamp::from_millis(num("updated_at")?),
    })
}

/// A due job is queued and past its time, or running under a lease that ran out (its worker
/// died or lost the database).
const DUE: &str =
    "((status = 'queued' AND run_after <= $1) OR (status = 'running' AND lease_until < $1))";

impl Store {
    /// Claims the next due job for `worker` until `lease_until`, counting an attempt. Of
    /// concurrent claimers exactly one gets a given job: the update re-checks that it is still
    /// due, so a worker that lost the race updates nothing and gets `None` (and simply asks
    /// again).
    pub async fn claim_job(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<JobRow>> {
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $2, \
             lease_until = $3, updated_at = $1 \
             WHERE id = (SELECT id FROM jobs WHERE {DUE} ORDER BY run_after, id LIMIT 1) \
             AND {DUE} RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.millis())
            .bind(worker)
            .bind(lease_until.millis())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job).transpose()
    }

    /// Records progress and extends the lease; false when the job is no longer this worker's
    /// (its lease ran out and another worker took it).
    pub async fn renew_job(
        &self,
        id: &JobId,
        worker: &str,
        progress: u8,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET progress = $3, lease_until = $4, updated_at = $5 \
             WHERE id = $1 AND worker = $2 AND status = 'running'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(i64::from(progress.min(100)))
        .bind(lease_until.millis())
        .bind(now.millis())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks the worker's job done.
    pub async fn finish_job(&self, id: &JobId, worker: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'done', progress = 100, lease_until = NULL, \
             last_error = NULL, updated_at = $3 WHERE id = $1 AND worker = $2 AND status = 'running'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(now.millis())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a failed attempt: queued again at `retry_at`, or failed for good when `None`.
    pub async fn fail_job(
        &self,
        id: &JobId,
        worker: &str,
        error: &str,
        retry_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $3, run_after = COALESCE($4, run_after), lease_until = NULL, \
             last_error = $5, updated_at = $6 WHERE id = $1 AND worker = $2 AND status = 'running'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(if retry_at.is_some() {
            JobStatus::Queued.as_str()
        } else {
            JobStatus::Failed.as_str()
        })
        .bind(retry_at.map(Timestamp::millis))
        .bind(error)
        .bind(now.millis())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The job with this id.
    pub async fn job(&self, id: &JobId) -> Result<Option<JobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job).transpose()
    }

    /// The jobs about `subject`, oldest first.
    pub async fn jobs_about(&self, subject: &str) -> Result<Vec<JobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE subject = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(subject)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job).collect()
    }

    /// How many jobs are in each status, for operators.
    pub async fn job_counts(&self) -> Result<Vec<(JobStatus, u64)>> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status ORDER BY status")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("n")?;
                Ok((
                    parsed(r, "jobs", "status", JobStatus::parse)?,
                    u64::try_from(n).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// The most recent jobs that failed for good, newest first.
    pub async fn failed_jobs(&self, limit: u32) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM jobs WHERE status = 'failed' ORDER BY updated_at DESC, id DESC LIMIT $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job).collect()
    }

    /// Forgets finished jobs last changed before `before`; returns how many.
    pub async fn prune_jobs(&self, before: Timestamp) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM jobs WHERE status IN ('done', 'failed') AND updated_at < $1")
                .bind(before.millis())
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected())
    }
}

impl Tx {
    /// Enqueues a job; it becomes visible to workers when the transaction commits, so work is
    /// never started for a change that rolled back.
    pub async fn enqueue_job(&mut self, job: &NewJob, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobs (id, org_id, kind, subject, payload, status, attempts, max_attempts, \
             run_after, progress, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, 0, $8, $8)",
        )
        .bind(job.id.as_str())
        .bind(job.org_id.as_ref().map(OrgId::as_str))
        .bind(job.kind.as_str())
        .bind(job.subject.as_deref())
        .bind(job.payload.as_slice())
        .bind(i64::from(job.max_attempts))
        .bind(job.run_after.millis())
        .bind(now.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
