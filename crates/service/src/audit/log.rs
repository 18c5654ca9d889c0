//! The audit log every use case appends to: an event inside the caller's transaction, and the
//! group commit for the audit events of content reads.
//!
//! ## Group commit of reads
//!
//! Every read of content is audited durably before its first byte is sent. Committing each
//! event alone costs one synchronous commit (an fsync on SQLite) per read, and under load the
//! reads queue on the database. Here a read queues its event and waits for the commit of the
//! group it joined: whoever holds the turn commits every event queued so far in one transaction,
//! then hands each waiter its result. A read never returns before its event is committed, and a
//! failed commit fails every read of the group (nothing is sent for them). Events that must be
//! atomic with a change (a link's use, a playback's first view) stay in their own transactions.

use std::sync::{Arc, Mutex};

use strongroom_crypto::keys::{MacKey, RootKey};
use strongroom_domain::{Clock, OrgId, Timestamp, UserId};
use strongroom_store::{AuditHead, NewAuditEvent, Personal, Store, StoreError, Tx};
use tokio::sync::oneshot;

use super::{event_hash, genesis, head_input, personal_digest};
use crate::{Principal, Result, ServiceError};

/// The most events one commit takes; more wait for the next.
const MAX_GROUP: usize = 256;

/// An audit event waiting for its group.
struct Pending {
    org_id: OrgId,
    actor: String,
    subject: Option<UserId>,
    action: &'static str,
    target: String,
    ip: String,
    detail: serde_json::Value,
    done: oneshot::Sender<Result<(), GroupFailure>>,
}

/// Why a group commit failed, told to every read in the group: a busy database stays a
/// retryable "busy" for each of them.
#[derive(Clone)]
enum GroupFailure {
    Busy(Arc<StoreError>),
    Other(String),
}

impl From<GroupFailure> for ServiceError {
    fn from(f: GroupFailure) -> Self {
        match f {
            GroupFailure::Busy(cause) => ServiceError::Busy(cause),
            GroupFailure::Other(why) => ServiceError::Internal(why),
        }
    }
}

/// The queue of read events and the turn to commit them.
#[derive(Default)]
struct ReadBatch {
    queue: Mutex<Vec<Pending>>,
    turn: tokio::sync::Mutex<()>,
}

/// An event about to be recorded, built by a use case.
pub(crate) struct Record<'a> {
    pub org_id: &'a OrgId,
    pub actor: String,
    /// The person whose key seals the address and detail (a version-2 event, see
    /// `docs/audit.md`): the user acting, or owning the key that acts. `None` for the command
    /// line, the system and anonymous visitors.
    pub subject: Option<UserId>,
    pub action: &'static str,
    pub target: String,
    pub ip: String,
    pub detail: serde_json::Value,
}

impl<'a> Record<'a> {
    /// An event done by `p` in its organization.
    pub(crate) fn by(p: &'a Principal, action: &'static str, target: impl ToString) -> Self {
        Record {
            org_id: &p.org_id,
            actor: p.actor.audit_name(),
            subject: p.actor.person().cloned(),
            action,
            target: target.to_string(),
            ip: p.meta.ip.clone(),
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    /// Adds facts to the event.
    pub(crate) fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Appends audit events: in the caller's transaction, or in a group commit for reads.
pub(crate) struct AuditLog {
    store: Store,
    clock: Arc<dyn Clock>,
    /// MACs each organization's chain head.
    key: MacKey,
    batch: ReadBatch,
}

impl AuditLog {
    pub(crate) fn new(store: Store, clock: Arc<dyn Clock>, root: &RootKey) -> AuditLog {
        AuditLog {
            store,
            clock,
            key: root.derive("audit-chain"),
            batch: ReadBatch::default(),
        }
    }

    /// The genesis hash and its head MAC for a new organization.
    pub(crate) fn genesis(&self, org_id: &OrgId) -> ([u8; 32], [u8; 32]) {
        let g = genesis(org_id);
        (g, self.key.mac(&head_input(org_id, 0, &g)))
    }

    /// Appends an event inside `tx`: committed with the change it records, or not at all.
    pub(crate) async fn append(&self, tx: &mut Tx, rec: Record<'_>) -> Result<()> {
        let (seq, prev) = tx.lock_audit_head(rec.org_id).await?;
        let ev = new_event(
            self.clock.now(),
            rec.actor,
            rec.subject.as_ref(),
            rec.action,
            rec.target,
            rec.ip,
            rec.detail.to_string(),
        );
        let hash = event_hash(rec.org_id, seq, &ev, &prev)?;
        let mac = self.key.mac(&head_input(rec.org_id, seq, &hash));
        tx.append_audit(rec.org_id, seq, &ev, &prev, &hash, &mac)
            .await?;
        Ok(())
    }

    /// Appends a run of one organization's events inside `tx`, chained in order, with one
    /// reservation of their sequence numbers, one insert and one move of the head.
    async fn append_run(&self, tx: &mut Tx, run: &[Pending]) -> Result<()> {
        let Some(org_id) = run.first().map(|p| &p.org_id) else {
            return Ok(());
        };
        // The run's first person is read with the lock (their sealing key), in one statement.
        let subject = run.iter().find_map(|p| p.subject.as_ref());
        let (first, mut prev) = tx
            .lock_audit_head_for(org_id, run.len(), subject.map(|s| s.as_str()))
            .await?;
        let at = self.clock.now();
        let mut events = Vec::with_capacity(run.len());
        for (seq, p) in (first..).zip(run) {
            let ev = new_event(
                at,
                p.actor.clone(),
                p.subject.as_ref(),
                p.action,
                p.target.clone(),
                p.ip.clone(),
                p.detail.to_string(),
            );
            let hash = event_hash(org_id, seq, &ev, &prev)?.to_vec();
            events.push((seq, ev, std::mem::replace(&mut prev, hash.clone()), hash));
        }
        let last = events.last().map_or(first, |e| e.0);
        let mac = self.key.mac(&head_input(org_id, last, &prev));
        tx.append_audit_run(org_id, &events, &mac).await?;
        Ok(())
    }

    /// Whether a head's MAC verifies under the audit key.
    pub(crate) fn head_authentic(&self, org_id: &OrgId, head: &AuditHead) -> bool {
        self.key
            .verify(&head_input(org_id, head.seq, &head.hash), &head.mac)
    }

    /// Appends a read's audit event durably, in a group commit with concurrent reads; returns
    /// once the event is committed.
    ///
    /// A read waits for whichever comes first: its event's outcome (a group that took it was
    /// committed by another read) or the turn to commit. Waiting on the outcome itself, not on
    /// the turn, lets every read of a committed group go on at once, instead of each taking and
    /// passing on the turn in a queue only to find its event already settled.
    pub(crate) async fn append_read(&self, rec: Record<'_>) -> Result<()> {
        let mut result = self.enqueue_read(&rec)?;
        loop {
            tokio::select! {
                biased;
                outcome = &mut result => match outcome {
                    Ok(outcome) => return outcome.map_err(ServiceError::from),
                    // The holder of the turn was cancelled mid-commit, so its group rolled
                    // back: queue the event again.
                    Err(_) => result = self.enqueue_read(&rec)?,
                },
                turn = self.batch.turn.lock() => {
                    // The holder of the turn before us may have settled our event already.
                    match result.try_recv() {
                        Ok(outcome) => return outcome.map_err(ServiceError::from),
                        Err(oneshot::error::TryRecvError::Closed) => {
                            result = self.enqueue_read(&rec)?;
                        }
                        Err(oneshot::error::TryRecvError::Empty) => {}
                    }
                    let group = self.take_group()?;
                    if !group.is_empty() {
                        self.commit_group(group).await;
                    }
                    drop(turn);
                    // Our event was beyond this group's size if it is still pending: wait again.
                }
            }
        }
    }

    fn enqueue_read(
        &self,
        rec: &Record<'_>,
    ) -> Result<oneshot::Receiver<Result<(), GroupFailure>>> {
        let (done, result) = oneshot::channel();
        self.batch
            .queue
            .lock()
            .map_err(|_| ServiceError::Internal("the audit queue's lock is poisoned".into()))?
            .push(Pending {
                org_id: rec.org_id.clone(),
                actor: rec.actor.clone(),
                subject: rec.subject.clone(),
                action: rec.action,
                target: rec.target.clone(),
                ip: rec.ip.clone(),
                detail: rec.detail.clone(),
                done,
            });
        Ok(result)
    }

    fn take_group(&self) -> Result<Vec<Pending>> {
        let mut queue = self
            .batch
            .queue
            .lock()
            .map_err(|_| ServiceError::Internal("the audit queue's lock is poisoned".into()))?;
        let n = queue.len().min(MAX_GROUP);
        Ok(queue.drain(..n).collect())
    }

    /// Commits `group` in one transaction and tells every waiter how it went.
    async fn commit_group(&self, mut group: Vec<Pending>) {
        // One order of organization locks for every node's groups, so two groups never wait on
        // each other (the order within an organization is the order of arrival).
        group.sort_by(|a, b| a.org_id.as_str().cmp(b.org_id.as_str()));
        let started = std::time::Instant::now();
        let outcome = async {
            let mut tx = self.store.begin_audit_append().await?;
            // Each organization's events as one run: three statements, however many events.
            for run in group.chunk_by(|a, b| a.org_id == b.org_id) {
                self.append_run(&mut tx, run).await?;
            }
            tx.commit().await?;
            Ok::<(), ServiceError>(())
        }
        .await;
        metrics::counter!("strongroom_audit_group_commits_total").increment(1);
        metrics::counter!("strongroom_audit_group_events_total").increment(group.len() as u64);
        metrics::histogram!("strongroom_audit_group_commit_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        let shared = outcome.map_err(|e| {
            tracing::error!(error = %e, events = group.len(), "an audit group commit failed");
            match e {
                ServiceError::Busy(cause) => GroupFailure::Busy(cause),
                other => GroupFailure::Other(other.to_string()),
            }
        });
        for p in group {
            // A waiter that gave up (its request was cancelled) is no longer listening.
            let _ = p.done.send(shared.clone());
        }
    }
}

/// An event to append: a version-2 one, with a fresh salt, when a person is behind it.
fn new_event(
    at: Timestamp,
    actor: String,
    subject: Option<&UserId>,
    action: &str,
    target: String,
    ip: String,
    detail: String,
) -> NewAuditEvent {
    let personal = subject.map(|s| {
        let salt: [u8; 32] = strongroom_crypto::token::random_bytes();
        Personal {
            subject: s.to_string(),
            digest: personal_digest(&salt, &ip, &detail).to_vec(),
            salt: Some(salt.to_vec()),
        }
    });
    NewAuditEvent {
        at,
        actor,
        action: action.to_owned(),
        target,
        ip,
        detail,
        personal,
    }
}
