//! The audit trail: appending events in the caller's transaction, listing them, and verifying
//! each organization's hash chain.
//!
//! Event hash = SHA-256(prev_hash || canonical JSON of (org, seq, at, actor, action, target, ip,
//! detail)). The chain starts from a genesis hash derived from the organization id. The
//! organization row keeps the head (seq, hash) and an HMAC of it under a key derived from the root
//! key: anyone can recompute the chain from the API, and someone who edits the database without
//! the root key cannot make a rewritten chain (or a truncated one) verify.

use strongroom_crypto::digest::{Sha256, sha256};
use strongroom_domain::{OrgId, Timestamp};
use strongroom_store::{AuditEventRow, AuditHead, NewAuditEvent, Tx};

use crate::authz::{OrgAuthz, perm};
use crate::{Principal, Result, Service, ServiceError};

/// An audit event as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEvent {
    /// Position in the organization's chain, from 1.
    pub seq: i64,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// To what.
    pub target: String,
    /// From which address.
    pub ip: String,
    /// Extra facts.
    pub detail: serde_json::Value,
    /// Hex SHA-256 of the previous event (or the genesis hash).
    pub prev_hash: String,
    /// Hex SHA-256 of this event.
    pub hash: String,
}

/// The verdict on one organization's chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainReport {
    /// The organization.
    pub org_id: OrgId,
    /// Events checked.
    pub events: i64,
    /// Whether every check passed.
    pub intact: bool,
    /// The first event that failed, if any.
    pub first_broken_seq: Option<i64>,
    /// Why it failed.
    pub problem: Option<String>,
}

#[derive(serde::Serialize)]
struct Canonical<'a> {
    org: &'a str,
    seq: i64,
    at: i64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    ip: &'a str,
    detail: &'a str,
}

fn genesis(org_id: &OrgId) -> [u8; 32] {
    let mut input = b"strongroom audit genesis v1\0".to_vec();
    input.extend_from_slice(org_id.as_str().as_bytes());
    sha256(&input)
}

fn event_hash(org_id: &OrgId, seq: i64, ev: &NewAuditEvent, prev: &[u8]) -> Result<[u8; 32]> {
    let canonical = serde_json::to_vec(&Canonical {
        org: org_id.as_str(),
        seq,
        at: ev.at.millis(),
        actor: &ev.actor,
        action: &ev.action,
        target: &ev.target,
        ip: &ev.ip,
        detail: &ev.detail,
    })
    .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let mut h = Sha256::new();
    h.update(prev);
    h.update(&canonical);
    Ok(h.finish())
}

fn head_input(org_id: &OrgId, seq: i64, hash: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(96);
    v.extend_from_slice(b"strongroom audit head v1\0");
    v.extend_from_slice(org_id.as_str().as_bytes());
    v.push(0);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(hash);
    v
}

/// An event about to be recorded, built by a use case.
pub(crate) struct Record<'a> {
    pub org_id: &'a OrgId,
    pub actor: String,
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

impl Service {
    /// The genesis hash and its head MAC for a new organization.
    pub(crate) fn audit_genesis(&self, org_id: &OrgId) -> ([u8; 32], [u8; 32]) {
        let g = genesis(org_id);
        (g, self.audit_key.mac(&head_input(org_id, 0, &g)))
    }

    /// Appends an event inside `tx`: committed with the change it records, or not at all.
    pub(crate) async fn audit(&self, tx: &mut Tx, rec: Record<'_>) -> Result<()> {
        let (seq, prev) = tx.lock_audit_head(rec.org_id).await?;
        let ev = NewAuditEvent {
            at: self.clock.now(),
            actor: rec.actor,
            action: rec.action.to_owned(),
            target: rec.target,
            ip: rec.ip,
            detail: rec.detail.to_string(),
        };
        let hash = event_hash(rec.org_id, seq, &ev, &prev)?;
        let mac = self.audit_key.mac(&head_input(rec.org_id, seq, &hash));
        tx.append_audit(rec.org_id, seq, &ev, &prev, &hash, &mac)
            .await?;
        Ok(())
    }

    /// Lists an organization's events after `after` (a sequence number), oldest first.
    pub async fn list_audit(
        &self,
        authz: &OrgAuthz<'_, perm::AuditRead>,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<AuditEvent>, Option<i64>)> {
        // The trail covers every space (file names included): the proof is never given to a
        // key limited to some spaces.
        let org_id = authz.org_id();
        let rows = self.store.audit_events(org_id, after, limit + 1).await?;
        let more = rows.len() > limit as usize;
        let items: Vec<AuditEvent> = rows.into_iter().take(limit as usize).map(render).collect();
        let next = if more {
            items.last().map(|e| e.seq)
        } else {
            None
        };
        Ok((items, next))
    }

    /// Verifies one organization's chain, or every organization's when `org` is `None`.
    pub async fn verify_audit(&self, org: Option<&OrgId>) -> Result<Vec<ChainReport>> {
        let orgs = match org {
            Some(o) => vec![o.clone()],
            None => self.store.org_ids().await?,
        };
        let mut reports = Vec::with_capacity(orgs.len());
        for org_id in orgs {
            let Some(head) = self.store.audit_head(&org_id).await? else {
                return Err(ServiceError::NotFound("organization"));
            };
            reports.push(self.verify_chain(&org_id, &head).await?);
        }
        Ok(reports)
    }

    async fn verify_chain(&self, org_id: &OrgId, head: &AuditHead) -> Result<ChainReport> {
        let broken = |seq: i64, events: i64, why: String| ChainReport {
            org_id: org_id.clone(),
            events,
            intact: false,
            first_broken_seq: Some(seq),
            problem: Some(why),
        };
        let mut prev = genesis(org_id).to_vec();
        let mut expected_seq = 1_i64;
        let mut after = 0_i64;
        // Only events up to the head read before the scan: the head and its events commit
        // together, so those are all present, and events appended by live traffic during the
        // scan are not mistaken for a chain longer than its head.
        'scan: loop {
            let rows = self.store.audit_events(org_id, after, 1000).await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if row.seq > head.seq {
                    break 'scan;
                }
                after = row.seq;
                if row.seq != expected_seq {
                    return Ok(broken(
                        expected_seq,
                        expected_seq - 1,
                        format!(
                            "event {expected_seq} is missing (the next stored event is {})",
                            row.seq
                        ),
                    ));
                }
                if row.prev_hash != prev {
                    return Ok(broken(
                        row.seq,
                        row.seq - 1,
                        format!(
                            "event {} does not link to event {} (deleted, reordered or edited)",
                            row.seq,
                            row.seq - 1
                        ),
                    ));
                }
                let hash = event_hash(org_id, row.seq, &row.event, &row.prev_hash)?;
                if hash.as_slice() != row.hash.as_slice() {
                    return Ok(broken(
                        row.seq,
                        row.seq - 1,
                        format!(
                            "event {} was edited: its content does not match its hash",
                            row.seq
                        ),
                    ));
                }
                prev = row.hash;
                expected_seq += 1;
            }
        }
        let count = expected_seq - 1;
        if head.seq != count || head.hash != prev {
            return Ok(broken(
                count + 1,
                count,
                format!(
                    "the chain ends at event {count} but the organization's head records event {}: trailing events were deleted",
                    head.seq
                ),
            ));
        }
        if !self
            .audit_key
            .verify(&head_input(org_id, head.seq, &head.hash), &head.mac)
        {
            return Ok(broken(
                head.seq,
                count,
                "the chain head's signature does not verify: the trail was rewritten".into(),
            ));
        }
        // Events past the head were not appended through the chain (live appends move the head
        // in the same transaction), unless the head moved since: read it again to tell apart.
        if let Some(extra) = self.store.audit_events(org_id, head.seq, 1).await?.first() {
            let now = self.store.audit_head(org_id).await?.map_or(0, |h| h.seq);
            if extra.seq > now {
                return Ok(broken(
                    extra.seq,
                    count,
                    format!(
                        "event {} lies beyond the chain's head: it was inserted",
                        extra.seq
                    ),
                ));
            }
        }
        Ok(ChainReport {
            org_id: org_id.clone(),
            events: count,
            intact: true,
            first_broken_seq: None,
            problem: None,
        })
    }
}

fn render(row: AuditEventRow) -> AuditEvent {
    AuditEvent {
        seq: row.seq,
        at: row.event.at,
        actor: row.event.actor,
        action: row.event.action,
        target: row.event.target,
        ip: row.event.ip,
        detail: serde_json::from_str(&row.event.detail).unwrap_or(serde_json::Value::Null),
        prev_hash: hex::encode(&row.prev_hash),
        hash: hex::encode(&row.hash),
    }
}
