-- Backups (issue 11). No content and nothing a user typed: ids, counts and times.

-- Every blob row ever deleted (a crypto-shred: its data key is gone). A backup keeps the data
-- keys of its blobs in a small key set apart from its immutable snapshot; the key sets are
-- rewritten without these, so a purge reaches every earlier backup. `backups_done` is set once
-- every configured destination has been rewritten.
CREATE TABLE shredded_blobs (
    blob_id TEXT PRIMARY KEY,
    shredded_at BIGINT NOT NULL,
    backups_done BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX shredded_blobs_pending ON shredded_blobs (backups_done, blob_id);

-- The outcome of each backup, verification and restore: what `storage status` and the owner's
-- organization view show. `detail` is JSON counts (and the first bad object of a failed verify).
CREATE TABLE backup_runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    backup_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    finished_at BIGINT NOT NULL,
    ok BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX backup_runs_kind ON backup_runs (kind, finished_at);

-- One scheduled backup at a time across every node, like the scrub lease.
CREATE TABLE backup_lease (
    id BIGINT PRIMARY KEY,
    holder TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
INSERT INTO backup_lease (id, holder, lease_until) VALUES (1, '', 0);
