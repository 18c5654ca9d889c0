//! The audit trail: append-only, hash-chained events per organization.
//!
//! The store keeps the chain and its head; hashing and MACs are computed by the caller (only
//! `strongroom-crypto` does crypto). `lock_audit_head` is the first write of an append, so on
//! PostgreSQL it row-locks the organization and appends of one organization never interleave.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{OrgId, Timestamp};

use crate::seal::{AUDIT_DETAIL, AUDIT_IP, Seal, audit_row};
use crate::{Result, Store, StoreError, Tx, parsed};

/// An event to append.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Who did it (`key:...`, `user:...`, `cli`, `system`).
    pub actor: String,
    /// What was done (`asset.create`, `asset.read`, ...).
    pub action: String,
    /// To what (an id).
    pub target: String,
    /// The client address, or empty.
    pub ip: String,
    /// Extra facts as a JSON object.
    pub detail: String,
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct AuditEventRow {
    /// The organization whose chain holds it.
    pub org_id: OrgId,
    /// Its position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The event.
    pub event: NewAuditEvent,
    /// The previous event's hash (the genesis hash for seq 1).
    pub prev_hash: Vec<u8>,
    /// This event's hash.
    pub hash: Vec<u8>,
    /// Whether its sealed fields (address, detail) opened in this row. `false`: the row was
    /// moved or its sealed values edited by hand; they read as empty and verification reports
    /// the event as tampered with, while listings still show the rest of the trail.
    pub sealed_intact: bool,
}

/// The head of an organization's chain as the organization row records it.
#[derive(Debug, Clone)]
pub struct AuditHead {
    /// The last sequence number (0: no events yet).
    pub seq: i64,
    /// The last hash (the genesis hash when seq is 0).
    pub hash: Vec<u8>,
    /// The MAC over (org, seq, hash).
    pub mac: Vec<u8>,
}

pub(crate) fn event(s: &Seal, row: &AnyRow) -> Result<AuditEventRow> {
    let org_id = parsed(row, "audit_events", "org_id", OrgId::parse)?;
    let seq: i64 = row.try_get("seq")?;
    let row_id = audit_row(org_id.as_str(), seq);
    let mut sealed_intact = true;
    let mut open = |f| match s.column(row, f, &row_id) {
        Ok(v) => Ok(v),
        Err(StoreError::Corrupt { .. }) => {
            sealed_intact = false;
            Ok(String::new())
        }
        Err(e) => Err(e),
    };
    let ip = open(AUDIT_IP)?;
    let detail = open(AUDIT_DETAIL)?;
    Ok(AuditEventRow {
        org_id,
        seq,
        sealed_intact,
        event: NewAuditEvent {
            at: Timestamp::from_millis(row.try_get("at")?),
            actor: row.try_get("actor")?,
            action: row.try_get("action")?,
            target: row.try_get("target")?,
            ip,
            detail,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl Store {
    /// Events of an organization with `seq > after`, in chain order.
    pub async fn audit_events(
        &self,
        org_id: &OrgId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEventRow>> {
        let rows = sqlx::query(
            "SELECT org_id, seq, at, actor, action, target, ip, detail, prev_hash, hash \
             FROM audit_events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(org_id.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| event(self.seal(), r)).collect()
    }

    /// The recorded head of an organization's chain.
    pub async fn audit_head(&self, org_id: &OrgId) -> Result<Option<AuditHead>> {
        let row =
            sqlx::query("SELECT audit_seq, audit_head, audit_head_mac FROM orgs WHERE id = $1")
                .bind(org_id.as_str())
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            Ok(AuditHead {
                seq: r.try_get("audit_seq")?,
                hash: r.try_get("audit_head")?,
                mac: r.try_get("audit_head_mac")?,
            })
        })
        .transpose()
    }

    /// The recorded head of every organization's chain, in organization id order.
    pub async fn audit_heads(&self) -> Result<Vec<(OrgId, AuditHead)>> {
        let rows =
            sqlx::query("SELECT id, audit_seq, audit_head, audit_head_mac FROM orgs ORDER BY id")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    parsed(r, "orgs", "id", OrgId::parse)?,
                    AuditHead {
                        seq: r.try_get("audit_seq")?,
                        hash: r.try_get("audit_head")?,
                        mac: r.try_get("audit_head_mac")?,
                    },
                ))
            })
            .collect()
    }
}

impl Tx {
    /// Claims the next sequence number of the organization's chain and returns it with the
    /// previous hash. Locks the chain until the transaction ends.
    pub async fn lock_audit_head(&mut self, org_id: &OrgId) -> Result<(i64, Vec<u8>)> {
        let row = sqlx::query(
            "UPDATE orgs SET audit_seq = audit_seq + 1 WHERE id = $1 RETURNING audit_seq, audit_head",
        )
        .bind(org_id.as_str())
        .fetch_optional(self.conn())
        .await?
        .ok_or_else(|| StoreError::Corrupt { table: "orgs", detail: format!("no organization {org_id}") })?;
        Ok((row.try_get("audit_seq")?, row.try_get("audit_head")?))
    }

    /// Reserves the next `n` (at least 1) sequence numbers of an organization's chain and
    /// row-locks it, like [`Tx::lock_audit_head`] for `n` events at once: returns the first
    /// reserved seq and the head the first event extends.
    pub async fn lock_audit_head_for(
        &mut self,
        org_id: &OrgId,
        n: usize,
    ) -> Result<(i64, Vec<u8>)> {
        let n = i64::try_from(n.max(1)).map_err(|_| StoreError::Corrupt {
            table: "audit_events",
            detail: "too many events in one append".into(),
        })?;
        let row = sqlx::query(
            "UPDATE orgs SET audit_seq = audit_seq + $1 WHERE id = $2 RETURNING audit_seq, audit_head",
        )
        .bind(n)
        .bind(org_id.as_str())
        .fetch_optional(self.conn())
        .await?
        .ok_or_else(|| StoreError::Corrupt { table: "orgs", detail: format!("no organization {org_id}") })?;
        let last: i64 = row.try_get("audit_seq")?;
        Ok((last - n + 1, row.try_get("audit_head")?))
    }

    /// Appends consecutive events of one organization (seqs reserved by
    /// [`Tx::lock_audit_head_for`]) in one statement, and moves the head to the last of them:
    /// three round trips for the whole run, whatever its length. `events` are
    /// `(seq, event, prev_hash, hash)`, in chain order.
    pub async fn append_audit_run(
        &mut self,
        org_id: &OrgId,
        events: &[(i64, NewAuditEvent, Vec<u8>, Vec<u8>)],
        head_mac: &[u8],
    ) -> Result<()> {
        let Some((_, _, _, head)) = events.last() else {
            return Ok(());
        };
        let mut sql = String::from(
            "INSERT INTO audit_events (org_id, seq, at, actor, action, target, ip, detail, prev_hash, hash) VALUES ",
        );
        for i in 0..events.len() {
            let b = i * 10;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10
            ));
        }
        let sealed = events
            .iter()
            .map(|(seq, ev, _, _)| {
                let row_id = audit_row(org_id.as_str(), *seq);
                (
                    self.seal().seal(AUDIT_IP, &row_id, &ev.ip),
                    self.seal().seal(AUDIT_DETAIL, &row_id, &ev.detail),
                )
            })
            .collect::<Vec<_>>();
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((seq, ev, prev, hash), (ip, detail)) in events.iter().zip(sealed) {
            q = q
                .bind(org_id.as_str())
                .bind(*seq)
                .bind(ev.at.millis())
                .bind(ev.actor.as_str())
                .bind(ev.action.as_str())
                .bind(ev.target.as_str())
                .bind(ip)
                .bind(detail)
                .bind(prev.as_slice())
                .bind(hash.as_slice());
        }
        q.execute(self.conn()).await?;
        sqlx::query("UPDATE orgs SET audit_head = $1, audit_head_mac = $2 WHERE id = $3")
            .bind(head.as_slice())
            .bind(head_mac)
            .bind(org_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Appends an event at `seq` (from `lock_audit_head`) and moves the head to it.
    pub async fn append_audit(
        &mut self,
        org_id: &OrgId,
        seq: i64,
        ev: &NewAuditEvent,
        prev_hash: &[u8],
        hash: &[u8],
        head_mac: &[u8],
    ) -> Result<()> {
        let row_id = audit_row(org_id.as_str(), seq);
        let ip = self.seal().seal(AUDIT_IP, &row_id, &ev.ip);
        let detail = self.seal().seal(AUDIT_DETAIL, &row_id, &ev.detail);
        sqlx::query(
            "INSERT INTO audit_events (org_id, seq, at, actor, action, target, ip, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(org_id.as_str())
        .bind(seq)
        .bind(ev.at.millis())
        .bind(ev.actor.as_str())
        .bind(ev.action.as_str())
        .bind(ev.target.as_str())
        .bind(ip)
        .bind(detail)
        .bind(prev_hash)
        .bind(hash)
        .execute(self.conn())
        .await?;
        sqlx::query("UPDATE orgs SET audit_head = $1, audit_head_mac = $2 WHERE id = $3")
            .bind(hash)
            .bind(head_mac)
            .bind(org_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
