//! The audit trail: appending events in the caller's transaction, listing them, and verifying
//! each organization's hash chain.
//!
//! Event hash = SHA-256(prev_hash || canonical JSON of (org, seq, at, actor, action, target, ip,
//! detail)). The chain starts from a genesis hash derived from the organization id. The
//! organization row keeps the head (seq, hash) and an HMAC of it under a key derived from the root
//! key: anyone can recompute the chain from the API, and someone who edits the database without
//! the root key cannot make a rewritten chain (or a truncated one) verify.
//!
//! A head that verifies can still be an old one (a restored database). Signed checkpoints kept
//! outside the database (`checkpoint`) catch that: verification also fails when the chain is
//! shorter than, or does not pass through, a checkpoint. The export streams the chain with its
//! checkpoints as NDJSON for offline verification (`docs/audit.md`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use strongroom_crypto::digest::{Sha256, sha256};
use strongroom_domain::{OrgId, Timestamp};
use strongroom_store::{AuditEventRow, NewAuditEvent};

use strongroom_crypto::keys::RootKey;

use crate::authz::{OrgAuthz, perm};
use crate::ctx::Ctx;
use crate::{Result, ServiceError};
use checkpoint::{Checkpoint, Checkpoints, Read};

pub(crate) mod checkpoint;
pub(crate) mod log;
mod verify;

pub(crate) use log::Record;

/// The audit trail: listing, exporting and verifying each organization's chain, and writing
/// the signed checkpoints of its heads. Appending is the shared `AuditLog`'s.
pub struct Audit {
    ctx: Arc<Ctx>,
    checkpoints: Checkpoints,
}

impl Audit {
    pub(crate) fn new(ctx: Arc<Ctx>, root: &RootKey) -> Audit {
        Audit {
            ctx,
            checkpoints: Checkpoints::new(root.derive(checkpoint::KEY_PURPOSE)),
        }
    }
}

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
    /// The person who did it was erased: their address and the detail are gone for good
    /// (empty), and the event still verifies by the digest its hash covers.
    pub erased: bool,
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
    /// What failed: `chain` (an event edited, deleted, reordered or inserted, or the head does
    /// not match the chain or its MAC), `rolled_back` (events a checkpoint covers are missing),
    /// `rewritten` (an event differs from the checkpoint of its seq), `invalid_checkpoint`
    /// (a checkpoint that is forged, altered or unreadable).
    pub problem_kind: Option<&'static str>,
    /// The events a newer checkpoint covers that the database no longer holds.
    pub missing: Option<SeqRange>,
    /// Checkpoints checked (every stored one when the chain is intact).
    pub checkpoints: usize,
    /// The newest authentic checkpoint seen.
    pub latest_checkpoint: Option<CheckpointInfo>,
    /// The organization was deleted: only its deletion event is left (and checked).
    pub deleted: bool,
}

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SeqRange {
    /// First.
    pub from: i64,
    /// Last.
    pub to: i64,
}

/// A checkpoint as reports show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckpointInfo {
    /// The event it covers up to.
    pub seq: i64,
    /// When it was written.
    pub at: Timestamp,
}

impl From<&Checkpoint> for CheckpointInfo {
    fn from(cp: &Checkpoint) -> Self {
        CheckpointInfo {
            seq: cp.seq,
            at: cp.at,
        }
    }
}

/// The body of `GET /api/v1/orgs/{org_id}/audit/export`: NDJSON lines, streamed.
pub type AuditExport = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

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

/// The canonical form of a version-2 event: its personal part (address and detail) is
/// replaced by the person's id and the salted digest of that part.
#[derive(serde::Serialize)]
struct CanonicalV2<'a> {
    org: &'a str,
    seq: i64,
    at: i64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    subject: &'a str,
    personal: String,
}

/// Leads the input of a personal part's digest. Frozen (docs/audit.md).
const PERSONAL_LABEL: &[u8] = b"strongroom audit personal v2\0";

/// SHA-256 of a version-2 event's personal part: label, salt (32 bytes), then the address and
/// the detail, each as u64 big-endian length and bytes.
pub(crate) fn personal_digest(salt: &[u8], ip: &str, detail: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(PERSONAL_LABEL);
    h.update(salt);
    for part in [ip, detail] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finish()
}

pub(crate) fn genesis(org_id: &OrgId) -> [u8; 32] {
    let mut input = b"strongroom audit genesis v1\0".to_vec();
    input.extend_from_slice(org_id.as_str().as_bytes());
    sha256(&input)
}

pub(crate) fn event_hash(
    org_id: &OrgId,
    seq: i64,
    ev: &NewAuditEvent,
    prev: &[u8],
) -> Result<[u8; 32]> {
    let canonical = match &ev.personal {
        None => serde_json::to_vec(&Canonical {
            org: org_id.as_str(),
            seq,
            at: ev.at.millis(),
            actor: &ev.actor,
            action: &ev.action,
            target: &ev.target,
            ip: &ev.ip,
            detail: &ev.detail,
        }),
        Some(p) => serde_json::to_vec(&CanonicalV2 {
            org: org_id.as_str(),
            seq,
            at: ev.at.millis(),
            actor: &ev.actor,
            action: &ev.action,
            target: &ev.target,
            subject: &p.subject,
            personal: hex::encode(&p.digest),
        }),
    }
    .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let mut h = Sha256::new();
    h.update(prev);
    h.update(&canonical);
    Ok(h.finish())
}

pub(crate) fn head_input(org_id: &OrgId, seq: i64, hash: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(96);
    v.extend_from_slice(b"strongroom audit head v1\0");
    v.extend_from_slice(org_id.as_str().as_bytes());
    v.push(0);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(hash);
    v
}

impl Audit {
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
        let rows = self
            .ctx
            .store
            .audit_events(org_id, after, limit + 1)
            .await?;
        let more = rows.len() > limit as usize;
        let items: Vec<AuditEvent> = rows.into_iter().take(limit as usize).map(render).collect();
        let next = if more {
            items.last().map(|e| e.seq)
        } else {
            None
        };
        Ok((items, next))
    }

    /// Streams an organization's whole chain with its checkpoints as NDJSON (`docs/audit.md`):
    /// a header line; every event up to the head read at the start, each followed by the
    /// checkpoints of its seq; checkpoints past the chain's end; an end line with the counts.
    /// The store is read a page at a time, so memory stays flat whatever the chain's length.
    pub async fn export_audit(
        self: &Arc<Self>,
        authz: &OrgAuthz<'_, perm::AuditRead>,
    ) -> Result<AuditExport> {
        // The trail covers every space: the proof is never given to a space-limited key.
        let org_id = authz.org_id();
        // Listed before the head is read, as in `verify_audit`: none then lies past the head.
        let (_, blobs) = self.ctx.org_blobs(org_id).await?;
        let checkpoints = blobs.checkpoint_seqs(org_id.as_str()).await?.into();
        let Some(head) = self.ctx.store.audit_head(org_id).await? else {
            return Err(ServiceError::NotFound("organization"));
        };
        let export = Export {
            audit: Arc::clone(self),
            org_id: org_id.clone(),
            head_seq: head.seq,
            checkpoints,
            after: 0,
            events: 0,
            checkpoint_lines: 0,
            phase: Phase::Header,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            export,
            |mut export| async move {
                match export.next_chunk().await {
                    Ok(Some(bytes)) => Some((Ok(bytes), export)),
                    Ok(None) => None,
                    Err(e) => {
                        export.phase = Phase::Done;
                        Some((Err(e), export))
                    }
                }
            },
        )))
    }
}

/// Events read per page by the export.
const EXPORT_PAGE: u32 = 500;
/// Value of the export header's `format` field. Frozen: offline verifiers recognize it.
pub(crate) const EXPORT_FORMAT: &str = "strongroom-audit-export";

enum Phase {
    Header,
    Events,
    Trailing,
    End,
    Done,
}

/// The state of one export stream.
struct Export {
    audit: Arc<Audit>,
    org_id: OrgId,
    head_seq: i64,
    checkpoints: VecDeque<u64>,
    after: i64,
    events: u64,
    checkpoint_lines: u64,
    phase: Phase,
}

fn push_line(out: &mut Vec<u8>, v: &serde_json::Value) {
    out.extend_from_slice(v.to_string().as_bytes());
    out.push(b'\n');
}

impl Export {
    /// The next chunk of lines, `None` at the end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let mut out = Vec::new();
        while out.is_empty() {
            match self.phase {
                Phase::Header => {
                    push_line(
                        &mut out,
                        &serde_json::json!({
                            "type": "header",
                            "format": EXPORT_FORMAT,
                            "version": 1,
                            "org_id": self.org_id,
                            "genesis": hex::encode(genesis(&self.org_id)),
                            "head_seq": self.head_seq,
                            "exported_at": self.audit.ctx.clock.now(),
                        }),
                    );
                    self.phase = Phase::Events;
                }
                Phase::Events => {
                    let rows = self
                        .audit
                        .ctx
                        .store
                        .audit_events(&self.org_id, self.after, EXPORT_PAGE)
                        .await?;
                    let mut done = rows.is_empty();
                    for row in rows {
                        if row.seq > self.head_seq {
                            done = true;
                            break;
                        }
                        self.after = row.seq;
                        self.events += 1;
                        push_line(&mut out, &export_event(&row));
                        let seq = u64::try_from(row.seq).unwrap_or(0);
                        while let Some(cp) = self.checkpoints.front().copied()
                            && cp <= seq
                        {
                            self.checkpoints.pop_front();
                            self.push_checkpoint(&mut out, cp).await?;
                        }
                    }
                    if done || self.after >= self.head_seq {
                        self.phase = Phase::Trailing;
                    }
                }
                Phase::Trailing => {
                    for _ in 0..100 {
                        let Some(cp) = self.checkpoints.pop_front() else {
                            self.phase = Phase::End;
                            break;
                        };
                        self.push_checkpoint(&mut out, cp).await?;
                    }
                }
                Phase::End => {
                    push_line(
                        &mut out,
                        &serde_json::json!({
                            "type": "end",
                            "events": self.events,
                            "checkpoints": self.checkpoint_lines,
                        }),
                    );
                    self.phase = Phase::Done;
                }
                Phase::Done => return Ok(None),
            }
        }
        Ok(Some(out.into()))
    }

    async fn push_checkpoint(&mut self, out: &mut Vec<u8>, seq: u64) -> Result<()> {
        let line = match self.audit.read_checkpoint(&self.org_id, seq).await? {
            Read::Authentic(cp) => serde_json::json!({
                "type": "checkpoint",
                "seq": cp.seq,
                "head": hex::encode(&cp.head),
                "at": cp.at,
                "at_ms": cp.at.millis(),
                "authentic": true,
            }),
            Read::Invalid(why) => serde_json::json!({
                "type": "checkpoint",
                "seq": seq,
                "authentic": false,
                "problem": why,
            }),
            Read::Gone => return Ok(()),
        };
        self.checkpoint_lines += 1;
        push_line(out, &line);
        Ok(())
    }
}

/// An event as the export writes it: every field its hash covers, exactly as hashed (`detail`
/// is the stored JSON text, `at_ms` the hashed time).
///
/// A version-2 event also carries `subject`, `personal` (the digest its hash covers) and
/// `salt`; once its person is erased, `ip`, `detail` and `salt` are `null` and `erased` is true.
fn export_event(row: &AuditEventRow) -> serde_json::Value {
    let mut line = serde_json::json!({
        "type": "event",
        "seq": row.seq,
        "at": row.event.at,
        "at_ms": row.event.at.millis(),
        "actor": row.event.actor,
        "action": row.event.action,
        "target": row.event.target,
        "ip": row.event.ip,
        "detail": row.event.detail,
        "prev_hash": hex::encode(&row.prev_hash),
        "hash": hex::encode(&row.hash),
    });
    if let Some(p) = &row.event.personal
        && let Some(obj) = line.as_object_mut()
    {
        let erased = p.salt.is_none();
        obj.insert("version".into(), 2.into());
        obj.insert("subject".into(), p.subject.clone().into());
        obj.insert("personal".into(), hex::encode(&p.digest).into());
        obj.insert("salt".into(), p.salt.as_ref().map(hex::encode).into());
        obj.insert("erased".into(), erased.into());
        if erased {
            obj.insert("ip".into(), serde_json::Value::Null);
            obj.insert("detail".into(), serde_json::Value::Null);
        }
    }
    line
}

fn render(row: AuditEventRow) -> AuditEvent {
    AuditEvent {
        erased: row
            .event
            .personal
            .as_ref()
            .is_some_and(|p| p.salt.is_none()),
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
