//! The durable job queue: rows in the database, claimed by one conditional update, so any number
//! of workers on any number of nodes share it and a job survives a restart.
//!
//! Workers claim per lane (a set of kinds), fairly between organizations: the next job is the
//! oldest due one of the organization with the fewest jobs of the lane running, and a lane may
//! cap how many one organization runs at once. Objects a job stores are leased to it
//! (`job_outputs`) from before they exist until the job commits them, so the orphan sweep never
//! mistakes them for garbage.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{BlobId, JobId, OrgId, Timestamp};

use crate::seal::{JOB_ERROR, Seal};
use crate::{Backend, Result, Store, StoreError, Tx, parsed};

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
    /// The worker that claimed it last (its current holder while it is running).
    pub worker: Option<String>,
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

const COLUMNS: &str = "id, org_id, kind, subject, payload, status, attempts, worker, \
                       max_attempts, run_after, progress, last_error, created_at, updated_at";

fn job(s: &Seal, row: &AnyRow) -> Result<JobRow> {
    let org: Option<String> = row.try_get("org_id")?;
    let id = parsed(row, "jobs", "id", JobId::parse)?;
    let num = |col: &str| -> Result<i64> { Ok(row.try_get::<i64, _>(col)?) };
    let small = |v: i64| -> Result<u32> {
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            table: "jobs",
            detail: format!("count {v}"),
        })
    };
    Ok(JobRow {
        last_error: s.column_opt(row, JOB_ERROR, id.as_str())?,
        id,
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
        worker: row.try_get("worker")?,
        max_attempts: small(num("max_attempts")?)?,
        run_after: Timestamp::from_millis(num("run_after")?),
        progress: u8::try_from(num("progress")?.clamp(0, 100)).unwrap_or(0),
        created_at: Timestamp::from_millis(num("created_at")?),
        updated_at: Timestamp::from_millis(num("updated_at")?),
    })
}

/// A due job is queued and past its time, or running under a lease that ran out (its worker
/// died or lost the database). `$1` is the time now.
const DUE: &str =
    "((status = 'queued' AND run_after <= $1) OR (status = 'running' AND lease_until < $1))";

/// [`DUE`] for the row named `t`.
fn due(t: &str) -> String {
    format!(
        "(({t}.status = 'queued' AND {t}.run_after <= $1) \
         OR ({t}.status = 'running' AND {t}.lease_until < $1))"
    )
}

/// Key of the PostgreSQL advisory lock that serializes capped claims (the migrations hold
/// 7262454). Without it, two claimers whose clocks disagree about which jobs are due could each
/// pick a different job of one organization, both seeing it below its cap.
const CLAIM_LOCK: i64 = 7262455;

/// Which jobs a worker takes: the kinds of its lane, and how many of the lane's jobs one
/// organization may have running at once, across every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// The kinds named.
    pub kinds: Vec<String>,
    /// `false`: only the kinds named. `true`: every kind but those (a catch-all lane, which also
    /// takes kinds no lane knows, so they fail visibly instead of waiting forever).
    pub except: bool,
    /// Most running jobs of this lane per organization; `None`: no cap. Jobs without an
    /// organization are never capped.
    pub per_org: Option<u32>,
}

impl Lane {
    /// Every job, uncapped.
    pub fn any() -> Lane {
        Lane {
            kinds: Vec::new(),
            except: true,
            per_org: None,
        }
    }

    /// `{t}.kind` is in this lane; kinds are bound from parameter `$first` on.
    fn matches(&self, t: &str, first: usize) -> String {
        if self.kinds.is_empty() {
            return if self.except { "1 = 1" } else { "1 = 0" }.to_owned();
        }
        let params: Vec<String> = (0..self.kinds.len())
            .map(|i| format!("${}", first + i))
            .collect();
        let not = if self.except { "NOT " } else { "" };
        format!("{t}.kind {not}IN ({})", params.join(", "))
    }
}

impl Store {
    /// Claims the next due job of `lane` for `worker` until `lease_until`, counting an attempt.
    ///
    /// The job chosen is the oldest due one of the organization with the fewest running jobs of
    /// the lane, skipping organizations at the lane's cap. Of concurrent claimers exactly one
    /// gets a given job: the update re-checks that it is still due, so a worker that lost the
    /// race updates nothing and gets `None` (and simply asks again). With a cap, claims are
    /// serialized (SQLite: one writer; PostgreSQL: an advisory lock for the claim's
    /// transaction), so concurrent claims on several nodes never overshoot it.
    pub async fn claim_job(
        &self,
        lane: &Lane,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<JobRow>> {
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, worker = $2, \
             lease_until = $3, updated_at = $1 \
             WHERE id = (SELECT c.id FROM (SELECT j.id, j.run_after, \
                 (SELECT COUNT(*) FROM jobs r WHERE r.org_id = j.org_id AND r.status = 'running' \
                  AND r.lease_until >= $1 AND {in_lane_r}) AS busy \
               FROM jobs j WHERE {due_j} AND {in_lane_j}) c \
             WHERE c.busy < $4 ORDER BY c.busy, c.run_after, c.id LIMIT 1) \
             AND {DUE} RETURNING {COLUMNS}",
            in_lane_r = lane.matches("r", 5),
            in_lane_j = lane.matches("j", 5),
            due_j = due("j"),
        );
        let cap = lane.per_org.map_or(i64::MAX, i64::from);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.millis())
            .bind(worker)
            .bind(lease_until.millis())
            .bind(cap);
        for kind in &lane.kinds {
            query = query.bind(kind.as_str());
        }
        let row = if lane.per_org.is_some() && self.backend() == Backend::Postgres {
            let mut tx = self.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CLAIM_LOCK)
                .execute(tx.conn())
                .await?;
            let row = query.fetch_optional(tx.conn()).await?;
            tx.commit().await?;
            row
        } else {
            query.fetch_optional(self.pool()).await?
        };
        row.map(|r| job(self.seal(), &r)).transpose()
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

    /// Ends the leases of the running jobs whose worker name starts with `prefix` (a node that
    /// stops, with its workers aborted): another node may claim them at once instead of when the
    /// leases run out. Returns how many.
    pub async fn release_leases(&self, prefix: &str, now: Timestamp) -> Result<u64> {
        // The prefix is ours (`node-` and random letters): no LIKE wildcard in it.
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $2, updated_at = $2 \
             WHERE status = 'running' AND substr(worker, 1, CAST($3 AS INTEGER)) = $1",
        )
        .bind(prefix)
        .bind(now.millis() - 1)
        .bind(i64::try_from(prefix.len()).unwrap_or(i64::MAX))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
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
        .bind(self.seal().seal(JOB_ERROR, id.as_str(), error))
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
        row.map(|r| job(self.seal(), &r)).transpose()
    }

    /// The jobs about `subject`, oldest first.
    pub async fn jobs_about(&self, subject: &str) -> Result<Vec<JobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM jobs WHERE subject = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(subject)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| job(self.seal(), r)).collect()
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

    /// Per kind, the jobs waiting (`queued`: due or backing off) and when the oldest of them was
    /// enqueued. Kinds with none waiting are absent.
    pub async fn queued_jobs_by_kind(&self) -> Result<Vec<(String, u64, Timestamp)>> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n, MIN(created_at) AS oldest FROM jobs \
             WHERE status = 'queued' GROUP BY kind ORDER BY kind",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("n")?;
                let oldest: i64 = r.try_get("oldest")?;
                Ok((
                    r.try_get("kind")?,
                    u64::try_from(n).unwrap_or(0),
                    Timestamp::from_millis(oldest),
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
        rows.iter().map(|r| job(self.seal(), r)).collect()
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

/// Output leases: an object a job attempt stores is leased to it before it is written.
impl Store {
    /// Leases `blob` to the attempt of job `id` that `worker` runs, before the object is
    /// written. False (nothing leased) when the job is no longer running under `worker`: the
    /// attempt has lost its job and must stop.
    pub async fn lease_output(
        &self,
        id: &JobId,
        worker: &str,
        blob: &BlobId,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO job_outputs (blob_id, job_id, worker, created_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS \
             (SELECT 1 FROM jobs WHERE id = $2 AND worker = $3 AND status = 'running')",
        )
        .bind(blob.as_str())
        .bind(id.as_str())
        .bind(worker)
        .bind(now.millis())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The objects leased to job `id`: by `worker`'s attempt, or by any attempt when `None`.
    pub async fn leased_outputs(&self, id: &JobId, worker: Option<&str>) -> Result<Vec<BlobId>> {
        let rows: Vec<String> = match worker {
            Some(w) => {
                sqlx::query_scalar(
                    "SELECT blob_id FROM job_outputs WHERE job_id = $1 AND worker = $2 \
                     ORDER BY blob_id",
                )
                .bind(id.as_str())
                .bind(w)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query_scalar(
                    "SELECT blob_id FROM job_outputs WHERE job_id = $1 ORDER BY blob_id",
                )
                .bind(id.as_str())
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(|b| lease_blob(b)).collect()
    }

    /// Up to `limit` leased objects whose attempt is over: the job is no longer running under
    /// the worker that leased them (it failed, finished, was taken over, or is gone).
    pub async fn abandoned_outputs(&self, limit: u32) -> Result<Vec<BlobId>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT o.blob_id FROM job_outputs o WHERE NOT EXISTS (SELECT 1 FROM jobs j \
             WHERE j.id = o.job_id AND j.worker = o.worker AND j.status = 'running') \
             ORDER BY o.blob_id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|b| lease_blob(b)).collect()
    }

    /// Ends the leases of these objects (once they are removed, or committed as blobs).
    pub async fn release_outputs(&self, blobs: &[BlobId]) -> Result<()> {
        for b in blobs {
            sqlx::query("DELETE FROM job_outputs WHERE blob_id = $1")
                .bind(b.as_str())
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    /// Whether anything refers to the stored object `id`: a blob row (its data key) or a job's
    /// lease. Both are read by one statement, so an object whose lease turns into a blob row
    /// in between is never seen as unreferenced.
    pub async fn object_referenced(&self, id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM blobs WHERE id = $1) \
             + (SELECT COUNT(*) FROM job_outputs WHERE blob_id = $1)",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }
}

fn lease_blob(raw: &str) -> Result<BlobId> {
    BlobId::parse(raw).map_err(|e| StoreError::Corrupt {
        table: "job_outputs",
        detail: e.to_string(),
    })
}

impl Tx {
    /// Marks `worker`'s job done and ends its output leases, in the transaction that makes the
    /// outputs visible (inserts their blob rows): a job's results and its completion commit
    /// together. False, changing nothing, when the job is no longer `worker`'s: the caller must
    /// then roll back.
    pub async fn complete_job(&mut self, id: &JobId, worker: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'done', progress = 100, lease_until = NULL, \
             last_error = NULL, updated_at = $3 WHERE id = $1 AND worker = $2 AND status = 'running'",
        )
        .bind(id.as_str())
        .bind(worker)
        .bind(now.millis())
        .execute(self.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM job_outputs WHERE job_id = $1 AND worker = $2")
            .bind(id.as_str())
            .bind(worker)
            .execute(self.conn())
            .await?;
        Ok(true)
    }

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
