//! The audit trail: append-only, hash-chained events per organization.
//!
//! The store keeps the chain and its head; hashing and MACs are computed by the caller (only
//! `strongroom-crypto` does crypto). `lock_audit_head` is the first write of an append, so on
//! PostgreSQL it row-locks the organization and appends of one organization never interleave.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{OrgId, Timestamp};

use crate::seal::{AUDIT_DETAIL, AUDIT_IP, Seal, audit_row};
use crate::{Backend, Result, Store, StoreError, Tx, parsed};

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
    /// Set for a version-2 event (a person's): the address and detail are then stored sealed
    /// under that person's key, and the hash covers their digest instead of them.
    pub personal: Option<Personal>,
}

/// The personal part of a version-2 event (schema 19): whose it is, and the salted digest of
/// its address and detail that the event's hash covers. The store seals the address, the
/// detail and the salt under the person's key (a random key in their `users` row, made on
/// their first event); erasing the person destroys that key.
#[derive(Debug, Clone)]
pub struct Personal {
    /// The person: a user id.
    pub subject: String,
    /// The digest of the salt, the address and the detail (computed by the caller).
    pub digest: Vec<u8>,
    /// The digest's random salt. Read back as `None` when the part no longer opens because
    /// the person was erased (the address and detail then read as empty).
    pub salt: Option<Vec<u8>>,
}

/// What a version-2 event's sealed part holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct PersonalPart {
    #[serde(with = "crate::backup::b64")]
    salt: Vec<u8>,
    ip: String,
    detail: String,
}

/// The columns `event` reads: an event, and its person's key and erasure for a version-2 one.
pub(crate) const EVENT_COLUMNS: &str = "e.org_id, e.seq, e.at, e.actor, e.action, e.target, \
    e.ip, e.detail, e.prev_hash, e.hash, e.subject, e.personal, e.personal_digest, \
    u.person_key, u.erased_at";
/// The join `EVENT_COLUMNS` needs after `FROM audit_events e`.
pub(crate) const EVENT_JOIN: &str = "LEFT JOIN users u ON u.id = e.subject";

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
    let mut ip = open(AUDIT_IP)?;
    let mut detail = open(AUDIT_DETAIL)?;
    let subject: Option<String> = row.try_get("subject")?;
    let personal = match subject {
        None => None,
        Some(subject) => {
            let digest: Vec<u8> = row
                .try_get::<Option<Vec<u8>>, _>("personal_digest")?
                .unwrap_or_default();
            let sealed: Vec<u8> = row
                .try_get::<Option<Vec<u8>>, _>("personal")?
                .unwrap_or_default();
            let key: Option<String> = row.try_get("person_key")?;
            let erased: Option<i64> = row.try_get("erased_at")?;
            let part = match key {
                Some(k) => s
                    .open_person_key(&subject, &k)
                    .ok()
                    .and_then(|key| s.open_personal(&key, &row_id, &sealed))
                    .and_then(|p| serde_json::from_slice::<PersonalPart>(&p).ok()),
                None => None,
            };
            let salt = match part {
                Some(part) => {
                    (ip, detail) = (part.ip, part.detail);
                    Some(part.salt)
                }
                // Erased: the part is gone for good, and the event still verifies by its
                // digest. Otherwise the key or the part was tampered with.
                None if erased.is_some() => None,
                None => {
                    sealed_intact = false;
                    None
                }
            };
            Some(Personal {
                subject,
                digest,
                salt,
            })
        }
    };
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
            personal,
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
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events e {EVENT_JOIN} \
             WHERE e.org_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
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

    /// The recorded head of every live organization's chain (a deleted one's never moves
    /// again), in organization id order.
    pub async fn audit_heads(&self) -> Result<Vec<(OrgId, AuditHead)>> {
        let rows =
            sqlx::query("SELECT id, audit_seq, audit_head, audit_head_mac FROM orgs WHERE deleted_at IS NULL ORDER BY id")
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
        self.lock_audit_head_for(org_id, 1, None).await
    }

    /// Reserves the next `n` (at least 1) sequence numbers of an organization's chain and
    /// row-locks it, like [`Tx::lock_audit_head`] for `n` events at once: returns the first
    /// reserved seq and the head the first event extends. With `subject` (a user id whose
    /// events the run holds), that person's sealing key is read in the same statement, sparing
    /// [`Tx::append_audit_run`] a round trip.
    pub async fn lock_audit_head_for(
        &mut self,
        org_id: &OrgId,
        n: usize,
        subject: Option<&str>,
    ) -> Result<(i64, Vec<u8>)> {
        let n = i64::try_from(n.max(1)).map_err(|_| StoreError::Corrupt {
            table: "audit_events",
            detail: "too many events in one append".into(),
        })?;
        const LOCK: &str = "UPDATE orgs SET audit_seq = audit_seq + $1 WHERE id = $2 RETURNING audit_seq, audit_head";
        const LOCK_AND_PERSON: &str = "UPDATE orgs SET audit_seq = audit_seq + $1 WHERE id = $2 \
             RETURNING audit_seq, audit_head, \
             (SELECT person_key FROM users WHERE id = $3) AS person_key, \
             (SELECT erased_at FROM users WHERE id = $3) AS erased_at, \
             (SELECT COUNT(*) FROM users WHERE id = $3) AS person";
        let query = match subject {
            Some(subject) => sqlx::query(LOCK_AND_PERSON)
                .bind(n)
                .bind(org_id.as_str())
                .bind(subject),
            None => sqlx::query(LOCK).bind(n).bind(org_id.as_str()),
        };
        let row = query
            .fetch_optional(self.conn())
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                table: "orgs",
                detail: format!("no organization {org_id}"),
            })?;
        if let Some(subject) = subject {
            let found = PersonKeyRow {
                exists: row.try_get::<i64, _>("person")? > 0,
                erased: row.try_get::<Option<i64>, _>("erased_at")?.is_some(),
                stored: row.try_get("person_key")?,
            };
            // A person without a key yet is given one by `person_key`, on its own.
            if let Some(key) = self.person_key_from(subject, found)? {
                self.person_keys.insert(subject.to_owned(), key);
            }
        }
        let last: i64 = row.try_get("audit_seq")?;
        Ok((last - n + 1, row.try_get("audit_head")?))
    }

    /// The keys of the people `subjects` (user ids) for sealing their events, made for anyone
    /// who has none yet (a user from before schema 19). An erased person, or an id that names
    /// no user, maps to `None`: their part is then sealed under a key nobody keeps. A key this
    /// transaction read already (with the chain's lock) is not read again.
    async fn person_keys(
        &mut self,
        subjects: &[&str],
    ) -> Result<std::collections::HashMap<String, Option<[u8; 32]>>> {
        let mut keys = std::collections::HashMap::new();
        for &subject in subjects {
            if keys.contains_key(subject) {
                continue;
            }
            let key = match self.person_keys.get(subject) {
                Some(known) => *known,
                None => self.person_key(subject).await?,
            };
            keys.insert(subject.to_owned(), key);
        }
        Ok(keys)
    }

    /// What a person's row says of their key: `Some(key)` when that settles it (the key, or
    /// `None` for an erased or unknown person), `None` when they have no key yet.
    fn person_key_from(
        &self,
        subject: &str,
        row: PersonKeyRow,
    ) -> Result<Option<Option<[u8; 32]>>> {
        if !row.exists || row.erased {
            return Ok(Some(None));
        }
        match row.stored {
            Some(stored) => Ok(Some(Some(self.seal().open_person_key(subject, &stored)?))),
            None => Ok(None),
        }
    }

    async fn person_key(&mut self, subject: &str) -> Result<Option<[u8; 32]>> {
        for _ in 0..2 {
            let row = sqlx::query("SELECT person_key, erased_at FROM users WHERE id = $1")
                .bind(subject)
                .fetch_optional(self.conn())
                .await?;
            let found = match row {
                None => PersonKeyRow {
                    exists: false,
                    erased: false,
                    stored: None,
                },
                Some(row) => PersonKeyRow {
                    exists: true,
                    erased: row.try_get::<Option<i64>, _>("erased_at")?.is_some(),
                    stored: row.try_get("person_key")?,
                },
            };
            if let Some(settled) = self.person_key_from(subject, found)? {
                return Ok(settled);
            }
            let (key, stored) = self.seal().new_person_key(subject);
            let made = sqlx::query(
                "UPDATE users SET person_key = $1 \
                 WHERE id = $2 AND person_key IS NULL AND erased_at IS NULL",
            )
            .bind(stored)
            .bind(subject)
            .execute(self.conn())
            .await?;
            if made.rows_affected() == 1 {
                return Ok(Some(key));
            }
            // Another transaction made one (or erased the person) first: read again.
        }
        Err(StoreError::Corrupt {
            table: "users",
            detail: format!("person_key of {subject}: neither made nor found"),
        })
    }

    /// The stored form of an event's address, detail and personal part: `(ip, detail,
    /// subject, personal, digest)`.
    fn sealed_event(
        &self,
        org_id: &OrgId,
        seq: i64,
        ev: &NewAuditEvent,
        keys: &std::collections::HashMap<String, Option<[u8; 32]>>,
    ) -> Result<StoredEvent> {
        let row_id = audit_row(org_id.as_str(), seq);
        let Some(p) = &ev.personal else {
            return Ok(StoredEvent {
                ip: self.seal().seal(AUDIT_IP, &row_id, &ev.ip),
                detail: self.seal().seal(AUDIT_DETAIL, &row_id, &ev.detail),
                subject: None,
                personal: None,
                digest: None,
            });
        };
        let part = serde_json::to_vec(&PersonalPart {
            salt: p.salt.clone().unwrap_or_default(),
            ip: ev.ip.clone(),
            detail: ev.detail.clone(),
        })
        .map_err(|e| StoreError::Corrupt {
            table: "audit_events",
            detail: e.to_string(),
        })?;
        // An erased person's events are sealed under a key that is dropped at once.
        let key = match keys.get(&p.subject) {
            Some(Some(k)) => *k,
            _ => self.seal().new_person_key(&p.subject).0,
        };
        Ok(StoredEvent {
            ip: self.seal().seal(AUDIT_IP, &row_id, ""),
            detail: self.seal().seal(AUDIT_DETAIL, &row_id, ""),
            subject: Some(p.subject.clone()),
            personal: Some(self.seal().seal_personal(&key, &row_id, &part)),
            digest: Some(p.digest.clone()),
        })
    }

    /// Appends consecutive events of one organization (seqs reserved by
    /// [`Tx::lock_audit_head_for`]) in one statement, and moves the head to the last of them:
    /// a few round trips for the whole run, whatever its length. `events` are
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
        let subjects: Vec<&str> = events
            .iter()
            .filter_map(|(_, ev, _, _)| ev.personal.as_ref().map(|p| p.subject.as_str()))
            .collect();
        let keys = self.person_keys(&subjects).await?;
        let mut sql = String::from(
            "INSERT INTO audit_events (org_id, seq, at, actor, action, target, ip, detail, prev_hash, hash, subject, personal, personal_digest) VALUES ",
        );
        for i in 0..events.len() {
            let b = i * COLUMNS;
            if i > 0 {
                sql.push_str(", ");
            }
            let row: Vec<String> = (1..=COLUMNS).map(|n| format!("${}", b + n)).collect();
            sql.push('(');
            sql.push_str(&row.join(", "));
            sql.push(')');
        }
        // On PostgreSQL the head moves in the same statement (a data-modifying WITH runs to
        // completion whatever the outer statement reads): one round trip fewer.
        let together = self.backend == Backend::Postgres;
        if together {
            let b = events.len() * COLUMNS;
            sql = format!(
                "WITH appended AS ({sql} RETURNING 1) \
                 UPDATE orgs SET audit_head = ${}, audit_head_mac = ${} WHERE id = ${}",
                b + 1,
                b + 2,
                b + 3
            );
        }
        let sealed = events
            .iter()
            .map(|(seq, ev, _, _)| self.sealed_event(org_id, *seq, ev, &keys))
            .collect::<Result<Vec<_>>>()?;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((seq, ev, prev, hash), stored) in events.iter().zip(sealed) {
            q = q
                .bind(org_id.as_str())
                .bind(*seq)
                .bind(ev.at.millis())
                .bind(ev.actor.as_str())
                .bind(ev.action.as_str())
                .bind(ev.target.as_str())
                .bind(stored.ip)
                .bind(stored.detail)
                .bind(prev.as_slice())
                .bind(hash.as_slice())
                .bind(stored.subject)
                .bind(stored.personal)
                .bind(stored.digest);
        }
        if together {
            q.bind(head.as_slice())
                .bind(head_mac)
                .bind(org_id.as_str())
                .execute(self.conn())
                .await?;
            return Ok(());
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
        let events = [(seq, ev.clone(), prev_hash.to_vec(), hash.to_vec())];
        self.append_audit_run(org_id, &events, head_mac).await
    }
}

/// The columns of one inserted event.
const COLUMNS: usize = 13;

/// What a person's row says of their sealing key.
struct PersonKeyRow {
    /// The row exists.
    exists: bool,
    erased: bool,
    /// The key, sealed under the instance's field key; `None` until one is made.
    stored: Option<String>,
}

/// An event's columns as stored.
struct StoredEvent {
    ip: String,
    detail: String,
    subject: Option<String>,
    personal: Option<Vec<u8>>,
    digest: Option<Vec<u8>>,
}
