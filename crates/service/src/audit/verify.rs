//! Verifying each organization's chain: every event's hash and link, the head's MAC, the
//! signed checkpoints, a deleted organization's tombstone, and organizations the database no
//! longer holds (see docs/audit.md, "What `strongroom audit verify` checks").

use std::sync::Arc;

use strongroom_blob::{BlobError, BlobStore};
use strongroom_domain::OrgId;
use strongroom_store::{AuditEventRow, AuditHead};

use super::checkpoint::Read;
use super::{Audit, ChainReport, SeqRange, event_hash, genesis, personal_digest};
use crate::authz::{OrgAuthz, perm};
use crate::{Result, ServiceError};

impl Audit {
    /// Verifies the caller's organization's chain, as `strongroom audit verify` does: every
    /// event's hash and link, the head's MAC and every signed checkpoint.
    pub async fn verify_org_audit(
        &self,
        authz: &OrgAuthz<'_, perm::AuditRead>,
    ) -> Result<ChainReport> {
        let mut reports = self.verify_audit(Some(authz.org_id())).await?;
        reports.pop().ok_or(ServiceError::NotFound("organization"))
    }

    /// Verifies one organization's chain, or every organization's when `org` is `None`: then
    /// also those that have checkpoints in the blob stores but are missing from the database.
    pub async fn verify_audit(&self, org: Option<&OrgId>) -> Result<Vec<ChainReport>> {
        let orgs = match org {
            Some(o) => vec![o.clone()],
            None => self.ctx.store.org_ids().await?,
        };
        let missing = match org {
            Some(_) => Vec::new(),
            None => self.orgs_missing_from_database(&orgs).await?,
        };
        let mut reports = Vec::with_capacity(orgs.len());
        for org_id in orgs {
            // Checkpoints are listed before the head is read. Each was written from a head
            // committed before it, so in a healthy database none lies past the head read next,
            // however fast live traffic and the checkpoint writer move.
            let (_, blobs) = self.ctx.org_blobs(&org_id).await?;
            let checkpoints = blobs.checkpoint_seqs(org_id.as_str()).await?;
            let Some(head) = self.ctx.store.audit_head(&org_id).await? else {
                return Err(ServiceError::NotFound("organization"));
            };
            reports.push(self.verify_chain(&org_id, &head, &checkpoints).await?);
        }
        reports.extend(missing);
        Ok(reports)
    }

    /// Organizations with a checkpoint folder in some region's blob store that the database
    /// does not hold: each is reported broken. An organization deleted through Strongroom keeps
    /// its row (a tombstone), so one missing was removed behind the server's back, or the
    /// database was rolled back to before it existed.
    async fn orgs_missing_from_database(&self, known: &[OrgId]) -> Result<Vec<ChainReport>> {
        let known: std::collections::HashSet<&str> = known.iter().map(OrgId::as_str).collect();
        let mut found: Vec<(OrgId, Arc<dyn BlobStore>)> = Vec::new();
        for (_, blobs) in self.ctx.blobs.each() {
            for id in blobs.checkpoint_orgs().await? {
                if known.contains(id.as_str()) || found.iter().any(|(o, _)| o.as_str() == id) {
                    continue;
                }
                let Ok(org_id) = OrgId::parse(&id) else {
                    continue;
                };
                let store: Arc<dyn BlobStore> = blobs.clone();
                found.push((org_id, store));
            }
        }
        let mut reports = Vec::new();
        for (org_id, blobs) in found {
            let mut report = ChainReport::new(&org_id);
            let mut newest = None;
            for seq in blobs
                .checkpoint_seqs(org_id.as_str())
                .await?
                .into_iter()
                .rev()
            {
                let bytes = match blobs.get_checkpoint(org_id.as_str(), seq).await {
                    Ok(b) => b,
                    Err(BlobError::NotFound) => continue,
                    Err(e) => return Err(e.into()),
                };
                if let Ok(cp) = self.checkpoints.open(&org_id, seq, &bytes) {
                    newest = Some(cp);
                    break;
                }
            }
            reports.push(match newest {
                Some(cp) => {
                    report.latest_checkpoint = Some((&cp).into());
                    report.missing = Some(SeqRange {
                        from: 1,
                        to: cp.seq,
                    });
                    let why = format!(
                        "the organization has a signed checkpoint at seq {} (written {}) but is not in the database: it was removed outside Strongroom, or the database was rolled back to before it existed",
                        cp.seq,
                        cp.at.rfc3339()
                    );
                    report.broken("rolled_back", 1, 0, why)
                }
                None => report.broken(
                    "invalid_checkpoint",
                    0,
                    0,
                    "checkpoints of an organization the database does not hold, none of them authentic: they were planted".into(),
                ),
            });
        }
        Ok(reports)
    }

    /// Checks stored checkpoint `seq` against `hash`, the chain's hash at that seq: `None` when
    /// it is authentic and matches (counted in `report`), else the problem.
    async fn check_checkpoint(
        &self,
        org_id: &OrgId,
        seq: u64,
        hash: &[u8],
        report: &mut ChainReport,
    ) -> Result<Option<(&'static str, String)>> {
        match self.read_checkpoint(org_id, seq).await? {
            Read::Gone => Ok(None),
            Read::Invalid(why) => Ok(Some(("invalid_checkpoint", invalid_checkpoint(seq, &why)))),
            Read::Authentic(cp) if cp.head.as_slice() != hash => Ok(Some((
                "rewritten",
                format!(
                    "event {seq} does not match the checkpoint at seq {seq} (written {}): the chain was rewritten after that checkpoint",
                    cp.at.rfc3339()
                ),
            ))),
            Read::Authentic(cp) => {
                report.checkpoints += 1;
                report.latest_checkpoint = Some((&cp).into());
                Ok(None)
            }
        }
    }

    async fn verify_chain(
        &self,
        org_id: &OrgId,
        head: &AuditHead,
        checkpoints: &[u64],
    ) -> Result<ChainReport> {
        let mut report = ChainReport::new(org_id);
        if self.ctx.store.org_deleted(org_id).await? == Some(true) {
            report.deleted = true;
            return self.verify_deleted(org_id, head, checkpoints, report).await;
        }
        let mut pending = checkpoints.iter().copied().peekable();
        let mut prev = genesis(org_id).to_vec();
        // A checkpoint of seq 0 (never written by Strongroom) could only name the genesis hash.
        while let Some(seq) = pending.next_if_eq(&0) {
            if let Some((kind, why)) = self
                .check_checkpoint(org_id, seq, &prev, &mut report)
                .await?
            {
                return Ok(report.broken(kind, 0, 0, why));
            }
        }
        let mut expected_seq = 1_i64;
        let mut after = 0_i64;
        // Only events up to the head read before the scan: the head and its events commit
        // together, so those are all present, and events appended by live traffic during the
        // scan are not mistaken for a chain longer than its head.
        'scan: loop {
            let rows = self.ctx.store.audit_events(org_id, after, 1000).await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if row.seq > head.seq {
                    break 'scan;
                }
                after = row.seq;
                if row.seq != expected_seq {
                    return Ok(report.broken(
                        "chain",
                        expected_seq,
                        expected_seq - 1,
                        format!(
                            "event {expected_seq} is missing (the next stored event is {})",
                            row.seq
                        ),
                    ));
                }
                if row.prev_hash != prev {
                    return Ok(report.broken(
                        "chain",
                        row.seq,
                        row.seq - 1,
                        format!(
                            "event {} does not link to event {} (deleted, reordered or edited)",
                            row.seq,
                            row.seq - 1
                        ),
                    ));
                }
                if let Some(why) = event_problem(org_id, &row)? {
                    return Ok(report.broken("chain", row.seq, row.seq - 1, why));
                }
                prev = row.hash;
                expected_seq += 1;
                let seq = u64::try_from(row.seq).unwrap_or(0);
                while let Some(cp) = pending.next_if_eq(&seq) {
                    if let Some((kind, why)) = self
                        .check_checkpoint(org_id, cp, &prev, &mut report)
                        .await?
                    {
                        return Ok(report.broken(kind, row.seq, row.seq - 1, why));
                    }
                }
            }
        }
        let count = expected_seq - 1;
        if head.seq != count || head.hash != prev {
            return Ok(report.broken(
                "chain",
                count + 1,
                count,
                format!(
                    "the chain ends at event {count} but the organization's head records event {}: trailing events were deleted",
                    head.seq
                ),
            ));
        }
        if !self.ctx.audit.head_authentic(org_id, head) {
            return Ok(report.broken(
                "chain",
                head.seq,
                count,
                "the chain head's signature does not verify: the trail was rewritten".into(),
            ));
        }
        // Events past the head were not appended through the chain (live appends move the head
        // in the same transaction), unless the head moved since: read it again to tell apart.
        if let Some(extra) = self
            .ctx
            .store
            .audit_events(org_id, head.seq, 1)
            .await?
            .first()
        {
            let now = self
                .ctx
                .store
                .audit_head(org_id)
                .await?
                .map_or(0, |h| h.seq);
            if extra.seq > now {
                return Ok(report.broken(
                    "chain",
                    extra.seq,
                    count,
                    format!(
                        "event {} lies beyond the chain's head: it was inserted",
                        extra.seq
                    ),
                ));
            }
        }
        // Checkpoints past the end of the chain: the newest authentic one names what is missing.
        let trailing: Vec<u64> = pending.collect();
        let mut invalid = None;
        for &seq in trailing.iter().rev() {
            match self.read_checkpoint(org_id, seq).await? {
                Read::Authentic(cp) => {
                    let why = format!(
                        "the database holds events up to seq {count} but the checkpoint at seq {} (written {}) is newer: events {}..{} are missing — the database was rolled back or truncated",
                        cp.seq,
                        cp.at.rfc3339(),
                        count + 1,
                        cp.seq
                    );
                    report.latest_checkpoint = Some((&cp).into());
                    report.missing = Some(SeqRange {
                        from: count + 1,
                        to: cp.seq,
                    });
                    return Ok(report.broken("rolled_back", count + 1, count, why));
                }
                Read::Invalid(why) => invalid = Some((seq, why)),
                Read::Gone => {}
            }
        }
        if let Some((seq, why)) = invalid {
            let at = i64::try_from(seq).unwrap_or(i64::MAX);
            return Ok(report.broken(
                "invalid_checkpoint",
                at,
                count,
                invalid_checkpoint(seq, &why),
            ));
        }
        report.events = count;
        Ok(report)
    }
}

impl Audit {
    /// A deleted organization's chain: only its last event is kept, and it must be the
    /// deletion (`org.delete`) at the MAC'd head. Checkpoints before it named events that went
    /// with the organization and are not checked; none may lie past it.
    async fn verify_deleted(
        &self,
        org_id: &OrgId,
        head: &AuditHead,
        checkpoints: &[u64],
        mut report: ChainReport,
    ) -> Result<ChainReport> {
        let rows = self.ctx.store.audit_events(org_id, 0, 2).await?;
        let [row] = rows.as_slice() else {
            return Ok(report.broken(
                "chain",
                head.seq,
                0,
                format!(
                    "the deleted organization's trail holds {} events: only its deletion should be left",
                    rows.len()
                ),
            ));
        };
        if row.seq != head.seq || row.event.action != "org.delete" || row.hash != head.hash {
            return Ok(report.broken(
                "chain",
                row.seq,
                0,
                format!(
                    "the deleted organization's last event ({} at seq {}) is not its deletion at the head (seq {}): the trail was altered",
                    row.event.action, row.seq, head.seq
                ),
            ));
        }
        if let Some(why) = event_problem(org_id, row)? {
            return Ok(report.broken("chain", row.seq, 0, why));
        }
        if !self.ctx.audit.head_authentic(org_id, head) {
            return Ok(report.broken(
                "chain",
                head.seq,
                0,
                "the chain head's signature does not verify: the trail was rewritten".into(),
            ));
        }
        for &seq in checkpoints {
            let at = i64::try_from(seq).unwrap_or(i64::MAX);
            if at < head.seq {
                continue;
            }
            let problem = if at == head.seq {
                self.check_checkpoint(org_id, seq, &head.hash, &mut report)
                    .await?
            } else {
                Some((
                    "rolled_back",
                    format!(
                        "a checkpoint at seq {seq} lies past the deleted organization's last event {}",
                        head.seq
                    ),
                ))
            };
            if let Some((kind, why)) = problem {
                return Ok(report.broken(kind, at, 1, why));
            }
        }
        report.events = 1;
        Ok(report)
    }
}

/// What is wrong with one stored event on its own, if anything: sealed fields that do not open
/// in its row, a personal part that does not match its digest, content that does not match its
/// hash.
fn event_problem(org_id: &OrgId, row: &AuditEventRow) -> Result<Option<String>> {
    let seq = row.seq;
    if !row.sealed_intact {
        return Ok(Some(format!(
            "event {seq} was edited or moved: its sealed fields do not open in its row"
        )));
    }
    if let Some(p) = &row.event.personal
        && let Some(salt) = &p.salt
        && personal_digest(salt, &row.event.ip, &row.event.detail).as_slice() != p.digest.as_slice()
    {
        return Ok(Some(format!(
            "event {seq} was edited: its address or detail does not match its digest"
        )));
    }
    let hash = event_hash(org_id, seq, &row.event, &row.prev_hash)?;
    if hash.as_slice() != row.hash.as_slice() {
        return Ok(Some(format!(
            "event {seq} was edited: its content does not match its hash"
        )));
    }
    Ok(None)
}

impl ChainReport {
    fn new(org_id: &OrgId) -> ChainReport {
        ChainReport {
            org_id: org_id.clone(),
            events: 0,
            intact: true,
            first_broken_seq: None,
            problem: None,
            problem_kind: None,
            missing: None,
            checkpoints: 0,
            latest_checkpoint: None,
            deleted: false,
        }
    }

    fn broken(mut self, kind: &'static str, seq: i64, events: i64, why: String) -> Self {
        self.intact = false;
        self.events = events;
        self.first_broken_seq = Some(seq);
        self.problem = Some(why);
        self.problem_kind = Some(kind);
        self
    }
}

fn invalid_checkpoint(seq: u64, why: &str) -> String {
    format!(
        "the checkpoint at seq {seq} is not authentic ({why}): it was forged or altered, or signed under another root key"
    )
}
