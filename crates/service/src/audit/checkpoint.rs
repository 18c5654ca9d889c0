//! Signed checkpoints of each organization's audit chain head, kept in the blob store.
//!
//! The head MAC on the organization row proves a head was written by someone holding the root
//! key, but it lives in the database: restoring an older database (or an older (seq, head, MAC)
//! triple after deleting the newest events) brings back a head that verifies. A checkpoint is the
//! same head signed again and written *outside* the database, so a rollback of the database
//! leaves a checkpoint newer than its chain, which `verify_audit` reports.
//!
//! Format version 1 (`docs/audit.md`): one JSON object per checkpoint, stored by the blob store
//! under `checkpoints/<org>/<seq>`, with an HMAC-SHA256 under a root-derived key over
//! [`mac_input`]. Checkpoints hold only hashes: they are not secret, but authenticated.
//!
//! The running server writes a checkpoint for every organization whose head moved since its last
//! checkpoint, every `audit_checkpoint_interval` and once more on shutdown. It never signs a head
//! that is behind, or does not extend, the latest checkpoint: that is the rollback it exists to
//! expose, and it is logged instead.

use std::collections::HashMap;
use std::sync::Arc;

use strongroom_blob::{BlobError, MAX_CHECKPOINT_LEN};
use strongroom_crypto::keys::MacKey;
use strongroom_domain::{OrgId, Timestamp};

use super::Audit;
use crate::{Result, ServiceError};

/// Value of the `format` field. Frozen: readers recognize checkpoints by it.
pub(crate) const FORMAT: &str = "strongroom-audit-checkpoint";
/// The only format version written and read.
pub(crate) const VERSION: u32 = 1;
/// First bytes of the MAC input. Frozen: changing it invalidates every checkpoint written.
const MAC_LABEL: &[u8] = b"strongroom audit checkpoint v1\0";
/// HKDF purpose of the checkpoint key. Frozen for the same reason as [`MAC_LABEL`].
pub(crate) const KEY_PURPOSE: &str = "audit-checkpoint";

/// A checkpoint's facts: the chain of `org_id` had `head` as the hash of event `seq` at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub org_id: OrgId,
    pub seq: i64,
    pub head: Vec<u8>,
    pub at: Timestamp,
}

/// The stored JSON. `at` is `at_ms` rendered for people; only `at_ms` is signed and read.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    format: String,
    version: u32,
    org_id: String,
    seq: i64,
    head: String,
    at: String,
    at_ms: i64,
    mac: String,
}

/// What the MAC covers (frozen, version 1):
/// `"strongroom audit checkpoint v1\0" || org_id || 0x00 || seq (i64 BE) || head (32 bytes) ||
/// at_ms (i64 BE)`.
fn mac_input(org_id: &OrgId, seq: i64, head: &[u8], at_ms: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(MAC_LABEL.len() + 64 + 48);
    v.extend_from_slice(MAC_LABEL);
    v.extend_from_slice(org_id.as_str().as_bytes());
    v.push(0);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(head);
    v.extend_from_slice(&at_ms.to_be_bytes());
    v
}

/// The checkpoint key and what this process last checkpointed per organization.
pub(crate) struct Checkpoints {
    key: MacKey,
    /// (seq, head) of the latest checkpoint known per organization. The lock also keeps two
    /// checkpoint rounds of this process from interleaving.
    last: tokio::sync::Mutex<HashMap<OrgId, (i64, Vec<u8>)>>,
}

impl Checkpoints {
    /// Checkpoints signed with `key` (derived from the root key for [`KEY_PURPOSE`]).
    pub(crate) fn new(key: MacKey) -> Checkpoints {
        Checkpoints {
            key,
            last: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The stored form of `cp`: its JSON, signed.
    pub(crate) fn seal(&self, cp: &Checkpoint) -> Result<Vec<u8>> {
        let mac = self
            .key
            .mac(&mac_input(&cp.org_id, cp.seq, &cp.head, cp.at.millis()));
        serde_json::to_vec(&Stored {
            format: FORMAT.into(),
            version: VERSION,
            org_id: cp.org_id.to_string(),
            seq: cp.seq,
            head: hex::encode(&cp.head),
            at: cp.at.rfc3339(),
            at_ms: cp.at.millis(),
            mac: hex::encode(mac),
        })
        .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Reads the object stored as checkpoint `seq` of `org_id`. `Err` says why it is not an
    /// authentic checkpoint of that organization and sequence number.
    pub(crate) fn open(
        &self,
        org_id: &OrgId,
        seq: u64,
        bytes: &[u8],
    ) -> std::result::Result<Checkpoint, String> {
        if bytes.len() > MAX_CHECKPOINT_LEN {
            return Err(format!("larger than {MAX_CHECKPOINT_LEN} bytes"));
        }
        let s: Stored =
            serde_json::from_slice(bytes).map_err(|e| format!("not a checkpoint document: {e}"))?;
        if s.format != FORMAT || s.version != VERSION {
            return Err(format!(
                "unknown format {:?} version {}",
                s.format, s.version
            ));
        }
        if s.org_id != org_id.as_str() || u64::try_from(s.seq).ok() != Some(seq) {
            return Err(format!(
                "it is stored as checkpoint {seq} of {org_id} but names seq {} of {}",
                s.seq, s.org_id
            ));
        }
        let head = hex::decode(&s.head)
            .ok()
            .filter(|h| h.len() == 32)
            .ok_or("its head is not a SHA-256 in hex")?;
        let mac = hex::decode(&s.mac).map_err(|_| "its signature is not hex")?;
        if !self
            .key
            .verify(&mac_input(org_id, s.seq, &head, s.at_ms), &mac)
        {
            return Err("its signature is invalid".into());
        }
        Ok(Checkpoint {
            org_id: org_id.clone(),
            seq: s.seq,
            head,
            at: Timestamp::from_millis(s.at_ms),
        })
    }
}

/// A stored checkpoint read back: authentic, or why not.
pub(crate) enum Read {
    Authentic(Checkpoint),
    Invalid(String),
    /// Listed but gone when read.
    Gone,
}

/// What one checkpoint round did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckpointRound {
    /// Checkpoints written.
    pub written: usize,
    /// Organizations whose head was not signed because it is behind or does not extend their
    /// latest checkpoint, or its MAC does not verify (each is logged as an error).
    pub refused: Vec<OrgId>,
}

impl Audit {
    /// Reads checkpoint `seq` of `org_id` and checks it.
    pub(crate) async fn read_checkpoint(&self, org_id: &OrgId, seq: u64) -> Result<Read> {
        let (_, blobs) = self.ctx.org_blobs(org_id).await?;
        match blobs.get_checkpoint(org_id.as_str(), seq).await {
            Ok(bytes) => Ok(match self.checkpoints.open(org_id, seq, &bytes) {
                Ok(cp) => Read::Authentic(cp),
                Err(why) => Read::Invalid(why),
            }),
            Err(BlobError::NotFound) => Ok(Read::Gone),
            Err(e) => Err(e.into()),
        }
    }

    /// The latest authentic checkpoint of an organization, searching back past invalid ones.
    async fn latest_checkpoint(&self, org_id: &OrgId) -> Result<Option<Checkpoint>> {
        let (_, blobs) = self.ctx.org_blobs(org_id).await?;
        let seqs = blobs.checkpoint_seqs(org_id.as_str()).await?;
        for seq in seqs.into_iter().rev() {
            if let Read::Authentic(cp) = self.read_checkpoint(org_id, seq).await? {
                return Ok(Some(cp));
            }
        }
        Ok(None)
    }

    /// Writes a checkpoint for every organization whose chain head moved since its latest
    /// checkpoint. A head that is behind the latest checkpoint, or does not extend it, or whose
    /// MAC does not verify, is not signed: it is logged as an error and listed in the result.
    pub async fn write_audit_checkpoints(&self) -> Result<CheckpointRound> {
        let mut last = self.checkpoints.last.lock().await;
        let mut round = CheckpointRound::default();
        for (org_id, head) in self.ctx.store.audit_heads().await? {
            let prev = match last.get(&org_id) {
                Some(p) => Some(p.clone()),
                None => self
                    .latest_checkpoint(&org_id)
                    .await?
                    .map(|cp| (cp.seq, cp.head)),
            };
            if let Some(p) = &prev {
                last.insert(org_id.clone(), p.clone());
            }
            if head.seq == 0 && prev.is_none() {
                continue;
            }
            let refuse = |why: String| {
                tracing::error!(org = %org_id, head_seq = head.seq, "audit chain not checkpointed: {why}");
            };
            if !self.ctx.audit.head_authentic(&org_id, &head) {
                refuse("the head's MAC does not verify: the trail was rewritten".into());
                round.refused.push(org_id);
                continue;
            }
            if let Some((seq, hash)) = &prev {
                if head.seq < *seq {
                    refuse(format!(
                        "the database holds events up to seq {} but checkpoint {seq} is newer: events {}..{seq} are missing (rolled back or truncated)",
                        head.seq,
                        head.seq + 1
                    ));
                    round.refused.push(org_id);
                    continue;
                }
                let at_seq = if head.seq == *seq {
                    Some(head.hash.clone())
                } else {
                    self.ctx
                        .store
                        .audit_events(&org_id, seq - 1, 1)
                        .await?
                        .into_iter()
                        .next()
                        .filter(|e| e.seq == *seq)
                        .map(|e| e.hash)
                };
                if at_seq.as_ref() != Some(hash) {
                    refuse(format!(
                        "event {seq} does not match checkpoint {seq}: the chain was rewritten"
                    ));
                    round.refused.push(org_id);
                    continue;
                }
                if head.seq == *seq {
                    continue;
                }
            }
            let cp = Checkpoint {
                org_id: org_id.clone(),
                seq: head.seq,
                head: head.hash.clone(),
                at: self.ctx.clock.now(),
            };
            let bytes = self.checkpoints.seal(&cp)?;
            let seq = u64::try_from(cp.seq)
                .map_err(|_| ServiceError::Internal(format!("negative audit seq {}", cp.seq)))?;
            let (_, blobs) = self.ctx.org_blobs(&org_id).await?;
            blobs
                .put_checkpoint(org_id.as_str(), seq, bytes.into())
                .await?;
            last.insert(org_id, (cp.seq, cp.head));
            round.written += 1;
        }
        Ok(round)
    }

    /// Writes checkpoints every `audit_checkpoint_interval`, until the task is dropped.
    pub async fn run_audit_checkpoints(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.ctx.config.audit_checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the start-up round already ran before serving.
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = self.write_audit_checkpoints().await {
                tracing::warn!(error = %e, "writing audit checkpoints failed");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use strongroom_crypto::keys::RootKey;

    use super::*;

    fn fixed() -> (Checkpoints, Checkpoint) {
        let root = RootKey::from_bytes(&[7u8; 32]).unwrap();
        let cp = Checkpoint {
            org_id: OrgId::parse("org_0123456789abcdef0123456789abcdef").unwrap(),
            seq: 57,
            head: (0u8..32).collect(),
            at: Timestamp::from_millis(1_795_000_000_123),
        };
        (Checkpoints::new(root.derive(KEY_PURPOSE)), cp)
    }

    /// Freezes format version 1: the stored bytes of a fixed checkpoint under a fixed root key.
    /// If this fails, checkpoints already written no longer verify: make a new version instead.
    /// The MAC was computed independently when the vector was frozen (Python's hmac and hashlib:
    /// HKDF-SHA256 as in `docs/audit.md`, then HMAC-SHA256 over the MAC input).
    #[test]
    fn format_v1_vector() {
        let (c, cp) = fixed();
        let bytes = c.seal(&cp).unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            concat!(
                r#"{"format":"strongroom-audit-checkpoint","version":1,"#,
                r#""org_id":"org_0123456789abcdef0123456789abcdef","seq":57,"#,
                r#""head":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f","#,
                r#""at":"2026-11-18T11:06:40.123Z","at_ms":1795000000123,"#,
                r#""mac":"d9f05cd0f167ac907b09ff11905127713a500eccbc43b8fd4919d384b49a5440"}"#
            )
        );
        assert_eq!(c.open(&cp.org_id, 57, &bytes).unwrap(), cp);
    }

    #[test]
    fn altered_misplaced_or_foreign_checkpoints_do_not_open() {
        let (c, cp) = fixed();
        let bytes = c.seal(&cp).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let bad = |t: &str| c.open(&cp.org_id, 57, t.as_bytes()).unwrap_err();
        // Any signed field changed.
        assert!(bad(&text.replace("\"seq\":57", "\"seq\":58")).contains("names seq 58"));
        assert!(
            bad(&text.replace("at_ms\":1795000000123", "at_ms\":1795000000124"))
                .contains("signature")
        );
        assert!(bad(&text.replace("000102", "ff0102")).contains("signature"));
        // Stored under another name or organization.
        assert!(c.open(&cp.org_id, 58, &bytes).is_err());
        let other = OrgId::parse("org_ffffffffffffffffffffffffffffffff").unwrap();
        assert!(c.open(&other, 57, &bytes).is_err());
        // Signed under another root key.
        let foreign =
            Checkpoints::new(RootKey::from_bytes(&[8u8; 32]).unwrap().derive(KEY_PURPOSE));
        assert!(
            foreign
                .open(&cp.org_id, 57, &bytes)
                .unwrap_err()
                .contains("signature")
        );
        // Junk and oversized objects.
        assert!(bad("{}").contains("not a checkpoint"));
        assert!(
            c.open(&cp.org_id, 57, &vec![b' '; MAX_CHECKPOINT_LEN + 1])
                .is_err()
        );
        assert!(bad(&text.replace(FORMAT, "something-else")).contains("unknown format"));
    }
}
