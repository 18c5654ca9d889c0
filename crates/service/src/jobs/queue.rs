//! The background workers over the durable job queue.
//!
//! A use case enqueues a typed [`Job`] inside its own transaction, so work is never started for a
//! change that rolled back, and never lost for one that committed. Each kind of job runs in its
//! [`Lane`]: a node runs a few workers per lane, so a long transcode never delays mail. Workers
//! on every node claim due jobs one at a time (a conditional update in the database decides who
//! gets each, and picks fairly between organizations), hold a lease they renew while working,
//! and on failure put the job back with exponential backoff until its attempts run out. A job
//! whose worker died becomes due again when its lease expires.
//!
//! Payloads are typed structs, serialized as JSON and sealed to the job id. A row whose kind this
//! build does not know, or whose payload does not open or parse as its kind's struct, fails that
//! job for good with a message saying so; it never stops a worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use strongroom_crypto::token;
use strongroom_domain::{AssetId, JobId, OrgId};
use strongroom_store::{JobRow, NewJob, Tx};

use strongroom_crypto::keys::{FieldKey, RootKey};

use super::media::{MEDIA_ATTEMPTS, MediaJob, MediaWorker};
use super::region_move::{REGION_MOVE_ATTEMPTS, RegionMoveJob, RegionMover};
use crate::ctx::Ctx;
use crate::notify::{MAIL_ATTEMPTS, Mail, Notify};
use crate::{Result, ServiceError};

/// How long a claim holds before another worker may take the job over.
const LEASE_SECS: i64 = 60;

/// How often an idle worker looks for due jobs (it is also woken at once by local enqueues).
const POLL: Duration = Duration::from_secs(1);

/// The first retry waits this long; each later one twice as long as the one before.
const FIRST_BACKOFF_SECS: i64 = 5;

/// No retry waits longer than this.
const MAX_BACKOFF_SECS: i64 = 3600;

/// Why a job attempt failed, and whether trying again could help.
#[derive(Debug, Clone)]
pub enum JobFailure {
    /// Try again later (a server that did not answer, a full disk).
    Retry(String),
    /// Trying again cannot help (a refused address, an unreadable file).
    Permanent(String),
}

/// How often a running job renews its lease and records its progress.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// What a job does. Its name is what `jobs.kind` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Deliver one message (an invitation, a security notice).
    Mail,
    /// Process one uploaded image or video into renditions.
    Media,
    /// Move one organization's blobs to its new region.
    RegionMove,
}

impl JobKind {
    /// Every kind this build runs.
    pub const ALL: [JobKind; 3] = [JobKind::Mail, JobKind::Media, JobKind::RegionMove];

    /// The name stored in the database (frozen: rows outlive releases).
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Mail => "mail",
            JobKind::Media => "media",
            JobKind::RegionMove => "region_move",
        }
    }

    /// The kind stored as `name`; `None` for a kind this build does not know.
    pub fn parse(name: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind stored as `name`, or the failure of a job of a kind this build does not know.
    fn known(name: &str) -> std::result::Result<JobKind, JobFailure> {
        JobKind::parse(name).ok_or_else(|| {
            JobFailure::Permanent(format!(
                "unknown job kind {name:?}: this server runs {}",
                JobKind::ALL.map(JobKind::name).join(", ")
            ))
        })
    }

    /// The lane whose workers run it.
    pub fn lane(self) -> Lane {
        match self {
            JobKind::Mail => Lane::Mail,
            JobKind::Media => Lane::Media,
            JobKind::RegionMove => Lane::Storage,
        }
    }

    fn max_attempts(self) -> u32 {
        match self {
            JobKind::Mail => MAIL_ATTEMPTS,
            JobKind::Media => MEDIA_ATTEMPTS,
            JobKind::RegionMove => REGION_MOVE_ATTEMPTS,
        }
    }
}

/// A set of workers with a queue of its own, so one kind of work never waits behind another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Short jobs: mail, and any kind this build does not know (so such a row is claimed and
    /// fails visibly instead of waiting forever).
    Mail,
    /// Media processing: long, CPU-heavy, fair between organizations and capped per
    /// organization ([`JobsConfig::media_jobs_per_org`]).
    Media,
    /// Storage work that reads and writes whole organizations' blobs (region moves): long,
    /// bound by the backends' bandwidth.
    Storage,
}

impl Lane {
    /// Every lane.
    pub const ALL: [Lane; 3] = [Lane::Mail, Lane::Media, Lane::Storage];

    /// Its name, for logs and worker names.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Mail => "mail",
            Lane::Media => "media",
            Lane::Storage => "storage",
        }
    }

    /// The rows its workers claim.
    fn filter(self, config: &JobsConfig) -> strongroom_store::Lane {
        let mine = |lane: Lane| -> Vec<String> {
            JobKind::ALL
                .into_iter()
                .filter(|k| k.lane() == lane)
                .map(|k| k.name().to_owned())
                .collect()
        };
        match self {
            // Everything the other lanes do not take.
            Lane::Mail => strongroom_store::Lane {
                kinds: [mine(Lane::Media), mine(Lane::Storage)].concat(),
                except: true,
                per_org: None,
            },
            Lane::Storage => strongroom_store::Lane {
                kinds: mine(Lane::Storage),
                except: false,
                per_org: None,
            },
            Lane::Media => strongroom_store::Lane {
                kinds: mine(Lane::Media),
                except: false,
                per_org: Some(config.media_jobs_per_org.max(1)),
            },
        }
    }

    fn workers(self, config: &JobsConfig) -> u32 {
        match self {
            Lane::Mail => config.mail_workers,
            Lane::Media => config.media_workers,
            Lane::Storage => config.storage_workers,
        }
    }
}

/// How many workers each lane runs on this node, and how much of the media lane one
/// organization may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// Workers of the mail lane (default 1; 0 runs none on this node).
    pub mail_workers: u32,
    /// Workers of the media lane (default 2; 0 runs none on this node). None run where media
    /// processing is off.
    pub media_workers: u32,
    /// Most media jobs one organization may have running at once, across every node (default
    /// 1, at least 1). Below the media worker count, an organization's backlog can never take
    /// every worker, so another organization's upload starts at once.
    pub media_jobs_per_org: u32,
    /// Workers of the storage lane (region moves; default 1; 0 runs none on this node).
    pub storage_workers: u32,
}

impl Default for JobsConfig {
    fn default() -> JobsConfig {
        JobsConfig {
            mail_workers: 1,
            media_workers: 2,
            media_jobs_per_org: 1,
            storage_workers: 1,
        }
    }
}

/// Wakes a lane's idle workers on this node when a job of the lane is enqueued here.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    mail: tokio::sync::Notify,
    media: tokio::sync::Notify,
    storage: tokio::sync::Notify,
}

impl Wakers {
    fn of(&self, lane: Lane) -> &tokio::sync::Notify {
        match lane {
            Lane::Mail => &self.mail,
            Lane::Media => &self.media,
            Lane::Storage => &self.storage,
        }
    }
}

/// A job and its typed payload: what a use case enqueues and a worker runs.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// Deliver this message.
    Mail(Mail),
    /// Process this asset.
    Media(MediaJob),
    /// Move this organization to its new region.
    RegionMove(RegionMoveJob),
}

impl Job {
    fn kind(&self) -> JobKind {
        match self {
            Job::Mail(_) => JobKind::Mail,
            Job::Media(_) => JobKind::Media,
            Job::RegionMove(_) => JobKind::RegionMove,
        }
    }

    /// What the job is about, for status lookups (never secret).
    fn subject(&self) -> Option<String> {
        match self {
            Job::Mail(_) => None,
            Job::Media(m) => Some(m.asset_id.to_string()),
            Job::RegionMove(m) => Some(m.org_id.to_string()),
        }
    }

    /// The payload as stored before sealing: the kind's struct as JSON.
    fn encode(&self) -> Result<Vec<u8>> {
        match self {
            Job::Mail(m) => serde_json::to_vec(m),
            Job::Media(m) => serde_json::to_vec(m),
            Job::RegionMove(m) => serde_json::to_vec(m),
        }
        .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// The job a row holds, from its kind and its opened payload. A kind this build does not
    /// know, or a payload that is not its kind's struct, fails the job for good.
    pub(crate) fn decode(kind: &str, plain: &[u8]) -> std::result::Result<Job, JobFailure> {
        let known = JobKind::known(kind)?;
        let unreadable = |e: serde_json::Error| {
            JobFailure::Permanent(format!(
                "the payload of this {kind} job does not parse: {e}"
            ))
        };
        Ok(match known {
            JobKind::Mail => Job::Mail(serde_json::from_slice(plain).map_err(unreadable)?),
            JobKind::Media => Job::Media(serde_json::from_slice(plain).map_err(unreadable)?),
            JobKind::RegionMove => {
                Job::RegionMove(serde_json::from_slice(plain).map_err(unreadable)?)
            }
        })
    }
}

/// What a handler knows about the job it runs, and how it reports progress.
pub(crate) struct JobCtx {
    /// The job.
    pub(crate) id: JobId,
    /// The worker running this attempt: its claim on the job.
    pub(crate) worker: String,
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

/// A stored kind as a metrics label: a known kind's name, or `unknown` (a row's kind is data, and
/// labels take only a closed set of values).
fn kind_label(kind: &str) -> &'static str {
    JobKind::parse(kind).map_or("unknown", JobKind::name)
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

/// The jobs of one kind waiting in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    /// The kind's name.
    pub kind: &'static str,
    /// Jobs waiting (due or backing off).
    pub queued: u64,
    /// Seconds since the oldest of them was enqueued; 0 when none waits.
    pub oldest_age_secs: f64,
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

/// Enqueues jobs, in the caller's transaction; cheap to clone.
#[derive(Clone)]
pub(crate) struct JobQueue {
    ctx: Arc<Ctx>,
    /// Seals each payload to its job id.
    jobs_key: Arc<FieldKey>,
    /// Wakes this node's workers of a lane when a job of the lane is enqueued here.
    wakers: Arc<Wakers>,
}

impl JobQueue {
    pub(crate) fn new(ctx: Arc<Ctx>, root: &RootKey) -> JobQueue {
        JobQueue {
            ctx,
            jobs_key: Arc::new(root.field_key("jobs")),
            wakers: Arc::default(),
        }
    }

    /// Adds `job` in the caller's transaction. The payload is sealed to the job's id with a
    /// root-derived key: the queue may hold personal data and secrets (an invitation link).
    pub(crate) async fn enqueue(
        &self,
        tx: &mut Tx,
        org_id: Option<&OrgId>,
        job: Job,
    ) -> Result<JobId> {
        let id = JobId::generate();
        let plain = job.encode()?;
        let kind = job.kind();
        let now = self.ctx.clock.now();
        tx.enqueue_job(
            &NewJob {
                id: id.clone(),
                org_id: org_id.cloned(),
                kind: kind.name().to_owned(),
                subject: job.subject(),
                payload: self.jobs_key.seal(id.as_str().as_bytes(), &plain),
                max_attempts: kind.max_attempts(),
                run_after: now,
            },
            now,
        )
        .await?;
        self.wakers.of(kind.lane()).notify_one();
        Ok(id)
    }
}

/// The job queue's workers: they claim due jobs and run them.
pub struct Jobs {
    ctx: Arc<Ctx>,
    /// This process's workers are named `<node>-<lane>-<random>`: the prefix that finds them
    /// all when the node stops.
    node: String,
    queue: JobQueue,
    media: MediaWorker,
    mover: RegionMover,
    notify: Notify,
}

impl Jobs {
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        queue: JobQueue,
        media: MediaWorker,
        mover: RegionMover,
        notify: Notify,
    ) -> Jobs {
        Jobs {
            ctx,
            node: format!("node-{}", token::random_token(8)),
            queue,
            media,
            mover,
            notify,
        }
    }

    /// Runs this node's workers until the task is dropped: [`JobsConfig`] says how many per
    /// lane (no media workers where media processing is off).
    pub async fn run_worker(self: Arc<Self>) {
        let mut workers = tokio::task::JoinSet::new();
        let mut lanes = std::collections::HashMap::new();
        for lane in Lane::ALL {
            let count = match lane {
                Lane::Media if !self.media.enabled() => 0,
                _ => lane.workers(&self.ctx.config.jobs),
            };
            for _ in 0..count {
                let task = workers.spawn(Arc::clone(&self).run_lane(lane));
                lanes.insert(task.id(), lane);
            }
        }
        // Workers only end by panicking (a bug): log it and start another, so a lane never
        // silently loses its workers. Dropping this future (the server stopping) aborts them.
        while let Some(ended) = workers.join_next_with_id().await {
            let id = match &ended {
                Ok((id, ())) => *id,
                Err(e) => e.id(),
            };
            let Some(lane) = lanes.remove(&id) else {
                continue;
            };
            tracing::error!(
                lane = lane.name(),
                "a job worker stopped unexpectedly; starting another"
            );
            let task = workers.spawn(Arc::clone(&self).run_lane(lane));
            lanes.insert(task.id(), lane);
        }
        std::future::pending::<()>().await;
    }

    /// One worker of `lane`: runs its due jobs, one at a time, forever.
    async fn run_lane(self: Arc<Self>, lane: Lane) {
        let worker = format!("{}-{}-{}", self.node, lane.name(), token::random_token(8));
        loop {
            match self.run_one(lane, &worker).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(lane = lane.name(), error = %e, "job queue: cannot claim a job")
                }
            }
            let _ = tokio::time::timeout(POLL, self.queue.wakers.of(lane).notified()).await;
        }
    }

    /// After this node's workers were stopped (the server shutting down): ends the leases of the
    /// jobs they held, so another node takes them over now rather than when the leases run out.
    /// Their stored outputs are removed by whoever claims them next.
    pub async fn release_held(&self) {
        match self
            .ctx
            .store
            .release_leases(&format!("{}-", self.node), self.ctx.clock.now())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                jobs = n,
                "released the running jobs of this node for another to take over"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not release this node's running jobs; their leases run out by themselves")
            }
        }
    }

    /// Claims and runs one due job of `lane` as `worker`; false when none was due.
    pub async fn run_one(&self, lane: Lane, worker: &str) -> Result<bool> {
        let now = self.ctx.clock.now();
        let Some(job) = self
            .ctx
            .store
            .claim_job(
                &lane.filter(&self.ctx.config.jobs),
                worker,
                now,
                now.plus_secs(LEASE_SECS),
            )
            .await?
        else {
            return Ok(false);
        };
        // What an earlier attempt stored and never committed (it crashed, or lost its lease).
        self.discard_outputs(&job.id, None).await;
        // An unknown kind says so before its payload is even opened.
        let decoded = JobKind::known(&job.kind).and_then(|_| {
            match self
                .queue
                .jobs_key
                .open(job.id.as_str().as_bytes(), &job.payload)
            {
                Ok(plain) => Job::decode(&job.kind, &plain),
                Err(_) => Err(JobFailure::Permanent(
                    "the payload failed its integrity check".into(),
                )),
            }
        });
        let ctx = JobCtx {
            id: job.id.clone(),
            worker: worker.to_owned(),
            org_id: job.org_id.clone(),
            progress: AtomicU8::new(0),
        };
        let outcome = match &decoded {
            Ok(j) => self.run_with_heartbeat(&ctx, j).await,
            Err(failure) => Err(failure.clone()),
        };
        let now = self.ctx.clock.now();
        match outcome {
            Ok(()) => {
                // A media job completes in the transaction that commits its renditions; this
                // then finds it done already and changes nothing.
                self.ctx.store.finish_job(&job.id, worker, now).await?;
                metrics::counter!("strongroom_jobs_total", "kind" => kind_label(&job.kind), "outcome" => "done").increment(1);
                tracing::info!(job = %job.id, kind = %job.kind, attempts = job.attempts, "job done");
            }
            Err(failure) => {
                let (message, retry) = match failure {
                    JobFailure::Retry(m) => (m, job.attempts < job.max_attempts),
                    JobFailure::Permanent(m) => (m, false),
                };
                // This attempt's outputs are not a result: remove them before anyone sees the
                // job end.
                self.discard_outputs(&job.id, Some(worker)).await;
                // A worker that lost the job to another (its lease ran out) has nothing to say
                // about how it ends.
                if !retry && self.holds(&job.id, worker).await {
                    self.gave_up(&job, decoded.as_ref().ok(), &message).await;
                }
                let retry_at = retry.then(|| now.plus_secs(backoff_secs(job.attempts)));
                let outcome = if retry { "retry" } else { "failed" };
                metrics::counter!("strongroom_jobs_total", "kind" => kind_label(&job.kind), "outcome" => outcome).increment(1);
                self.ctx
                    .store
                    .fail_job(&job.id, worker, &message, retry_at, now)
                    .await?;
                tracing::warn!(
                    job = %job.id,
                    kind = %job.kind,
                    attempts = job.attempts,
                    retry = retry,
                    error = %without_addresses(&message),
                    "job failed"
                );
            }
        }
        Ok(true)
    }

    /// Whether `worker` still holds job `id` (a failure to tell counts as yes: the job's
    /// outcome is then recorded rather than lost).
    async fn holds(&self, id: &JobId, worker: &str) -> bool {
        match self.ctx.store.job(id).await {
            Ok(Some(j)) => {
                j.status == strongroom_store::JobStatus::Running
                    && j.worker.as_deref() == Some(worker)
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// What a job that failed for good leaves behind: a media asset says `failed`, with the
    /// reason, even when the payload itself was unreadable (the row's subject names the asset).
    async fn gave_up(&self, job: &JobRow, decoded: Option<&Job>, reason: &str) {
        let asset_id = match decoded {
            Some(Job::Media(m)) => Some(m.asset_id.clone()),
            Some(Job::Mail(_) | Job::RegionMove(_)) => None,
            None if JobKind::parse(&job.kind) == Some(JobKind::Media) => {
                job.subject.as_deref().and_then(|s| AssetId::parse(s).ok())
            }
            None => None,
        };
        if let (Some(org_id), Some(asset_id)) = (job.org_id.as_ref(), asset_id) {
            self.media.media_gave_up(org_id, &asset_id, reason).await;
        }
    }

    /// Removes objects leased to job `id` (by `worker`'s attempt, or by any when `None`) and
    /// ends their leases. An object that cannot be removed now is unreferenced once its lease
    /// ends, so the orphan sweep removes it later.
    pub(crate) async fn discard_outputs(&self, id: &JobId, worker: Option<&str>) {
        let blobs = match self.ctx.store.leased_outputs(id, worker).await {
            Ok(blobs) => blobs,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "could not list a job's stored outputs");
                return;
            }
        };
        if blobs.is_empty() {
            return;
        }
        self.ctx.remove_objects(&blobs).await;
        match self.ctx.store.release_outputs(&blobs).await {
            Ok(()) => {
                tracing::info!(job = %id, removed = blobs.len(), "removed a job attempt's outputs")
            }
            Err(e) => tracing::warn!(job = %id, error = %e, "could not end a job's output leases"),
        }
    }

    /// Runs the handler while renewing the lease (and recording progress) every
    /// [`HEARTBEAT`]. If the lease is lost (another worker took the job over after this one
    /// stalled), the handler is dropped, which kills any process it started.
    async fn run_with_heartbeat(
        &self,
        ctx: &JobCtx,
        job: &Job,
    ) -> std::result::Result<(), JobFailure> {
        let work = self.dispatch(job, ctx);
        tokio::pin!(work);
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.tick().await;
        loop {
            tokio::select! {
                outcome = &mut work => return outcome,
                _ = beat.tick() => {
                    let now = self.ctx.clock.now();
                    let progress = ctx.progress.load(Ordering::Relaxed);
                    match self.ctx.store.renew_job(&ctx.id, &ctx.worker, progress, now.plus_secs(LEASE_SECS), now).await {
                        Ok(true) => {}
                        Ok(false) => return Err(JobFailure::Retry("the job's lease was lost to another worker".into())),
                        Err(e) => tracing::warn!(job = %ctx.id, error = %e, "could not renew a job's lease"),
                    }
                }
            }
        }
    }

    async fn dispatch(&self, job: &Job, ctx: &JobCtx) -> std::result::Result<(), JobFailure> {
        match job {
            Job::Mail(mail) => self.notify.deliver_mail(mail).await,
            Job::Media(media) => self.media.process_media(media, ctx).await,
            Job::RegionMove(m) => self.mover.run(m, ctx).await,
        }
    }

    /// The queue at a glance, for operators: counts per status and the latest failures.
    pub async fn job_report(&self) -> Result<JobReport> {
        let counts = self
            .ctx
            .store
            .job_counts()
            .await?
            .into_iter()
            .map(|(s, n)| (format!("{s:?}").to_ascii_lowercase(), n))
            .collect();
        let recent_failures = self
            .ctx
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

    /// Per kind this build runs, the jobs waiting across all nodes and how long the oldest has
    /// waited since it was enqueued (read-only; the metrics sample it at each scrape). Rows of a
    /// kind this build does not know are left out: the first worker to claim one fails it.
    pub async fn queue_depths(&self) -> Result<Vec<QueueDepth>> {
        let now = self.ctx.clock.now();
        let rows = self.ctx.store.queued_jobs_by_kind().await?;
        Ok(JobKind::ALL
            .into_iter()
            .map(|kind| {
                let row = rows.iter().find(|(k, _, _)| k == kind.name());
                QueueDepth {
                    kind: kind.name(),
                    queued: row.map_or(0, |(_, n, _)| *n),
                    oldest_age_secs: row.map_or(0.0, |(_, _, oldest)| {
                        (now.millis() - oldest.millis()).max(0) as f64 / 1000.0
                    }),
                }
            })
            .collect())
    }

    /// Forgets finished jobs a week after they finished.
    pub async fn prune_jobs(&self) -> Result<u64> {
        let before = self.ctx.clock.now().plus_secs(-7 * 24 * 3600);
        Ok(self.ctx.store.prune_jobs(before).await?)
    }
}

/// `message` with every word holding an `@` (an email address a mail server quoted in its
/// answer) replaced by `<address>`: the log gets the reason, the sealed job row keeps the whole
/// answer.
fn without_addresses(message: &str) -> String {
    let is_word = |c: char| !c.is_whitespace() && !"<>()[]{},;:\"'".contains(c);
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('@') {
            out.push_str("<address>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in message.chars() {
        if is_word(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests;
