-- Schema v19: erasure of a person, and deletion of a whole organization.
--
-- Each person gets a random key (sealed in their row) that seals the personal part of the audit
-- events they do: the address and the detail. Such an event's hash covers a salted digest of
-- that part, not the part itself, so destroying the key (erasure) leaves the part unreadable and
-- the chain verifiable. Events with no person behind them (`cli`, `system`, a shared link's
-- visitor) keep the version-1 layout. See docs/audit.md and docs/privacy.md.

-- The person's key, sealed (`users.person_key`); NULL until their first event, and again once
-- they are erased.
ALTER TABLE users ADD COLUMN person_key TEXT;
-- When the person was erased: the row stays, holding nothing about them, so ids in the audit
-- trail still name a row.
ALTER TABLE users ADD COLUMN erased_at BIGINT;
-- Backups keep person keys in their key sets, apart from the snapshot; 1 once every key set
-- has been rewritten without this person's (as `shredded_blobs.backups_done` for data keys).
ALTER TABLE users ADD COLUMN erasure_backups_done BIGINT NOT NULL DEFAULT 0;

-- A version-2 event: the person whose key seals its personal part, that part (address, detail
-- and the salt, sealed under their key) and its digest, which the event's hash covers.
ALTER TABLE audit_events ADD COLUMN subject TEXT;
ALTER TABLE audit_events ADD COLUMN personal BYTES;
ALTER TABLE audit_events ADD COLUMN personal_digest BYTES;

-- When the organization was deleted: the row stays as a tombstone, with no name (its index
-- cleared, so the name is free) and nothing in it, keeping the head of its chain, whose last
-- event (the `org.delete` event, the only one kept) `audit verify` checks.
ALTER TABLE orgs ADD COLUMN deleted_at BIGINT;
-- 1 once every backup key set notes the deletion (a restore of an earlier backup deletes the
-- organization again).
ALTER TABLE orgs ADD COLUMN deletion_backups_done BIGINT NOT NULL DEFAULT 0;
