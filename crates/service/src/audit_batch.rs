//! Group commit for the audit events of content reads.
//!
//! Every read of content is audited durably before its first byte is sent. Committing each
//! event alone costs one synchronous commit (an fsync on SQLite) per read, and under load the
//! reads queue on the database. Here a read queues its event and waits for the commit of the
//! group it joined: whoever holds the turn commits every event queued so far in one transaction,
//! then hands each waiter its result. A read never returns before its event is committed, and a
//! failed commit fails every read of the group (nothing is sent for them). Events that must be
//! atomic with a change (a link's use, a playback's first view) stay in their own transactions.

use std::sync::Mutex;

use strongroom_domain::OrgId;
use tokio::sync::oneshot;

use crate::audit::Record;
use crate::{Result, Service, ServiceError};

/// The most events one commit takes; more wait for the next.
const MAX_GROUP: usize = 256;

/// An audit event waiting for its group.
struct Pending {
    org_id: OrgId,
    actor: String,
    action: &'static str,
    target: String,
    ip: String,
    detail: serde_json::Value,
    done: oneshot::Sender<Result<(), String>>,
}

/// The queue of read events and the turn to commit them.
#[derive(Default)]
pub(crate) struct ReadBatch {
    queue: Mutex<Vec<Pending>>,
    turn: tokio::sync::Mutex<()>,
}

impl Service {
    /// Appends a read's audit event durably, in a group commit with concurrent reads; returns
    /// once the event is committed.
    pub(crate) async fn audit_read(&self, rec: Record<'_>) -> Result<()> {
        let mut result = self.enqueue_read(&rec)?;
        loop {
            let turn = self.read_batch.turn.lock().await;
            // The holder of the turn before us may have settled our event already.
            match result.try_recv() {
                Ok(outcome) => return outcome.map_err(ServiceError::Internal),
                // That holder's request was cancelled mid-commit, so the group rolled back:
                // queue the event again.
                Err(oneshot::error::TryRecvError::Closed) => result = self.enqueue_read(&rec)?,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let group = self.take_group()?;
            if !group.is_empty() {
                self.commit_group(group).await;
            }
            drop(turn);
            if let Ok(outcome) = result.try_recv() {
                return outcome.map_err(ServiceError::Internal);
            }
            // Our event was beyond this group's size: take the next turn.
        }
    }

    fn enqueue_read(&self, rec: &Record<'_>) -> Result<oneshot::Receiver<Result<(), String>>> {
        let (done, result) = oneshot::channel();
        self.read_batch
            .queue
            .lock()
            .map_err(|_| ServiceError::Internal("the audit queue's lock is poisoned".into()))?
            .push(Pending {
                org_id: rec.org_id.clone(),
                actor: rec.actor.clone(),
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
            .read_batch
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
        let outcome = async {
            let mut tx = self.store.begin().await?;
            for p in &group {
                let rec = Record {
                    org_id: &p.org_id,
                    actor: p.actor.clone(),
                    action: p.action,
                    target: p.target.clone(),
                    ip: p.ip.clone(),
                    detail: p.detail.clone(),
                };
                self.audit(&mut tx, rec).await?;
            }
            tx.commit().await?;
            Ok::<(), ServiceError>(())
        }
        .await;
        let shared = outcome.map_err(|e| {
            tracing::error!(error = %e, events = group.len(), "an audit group commit failed");
            e.to_string()
        });
        for p in group {
            // A waiter that gave up (its request was cancelled) is no longer listening.
            let _ = p.done.send(shared.clone());
        }
    }
}
