-- Download links (issue 4): a token in a URL that fetches one asset with no other credential.
-- (Version 6 is reserved for a change on another branch; the runner applies versions in order and
-- records each one, so a gap is harmless.)

CREATE TABLE links (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    -- A link dies with its asset: deleting the asset deletes its links in the same statement.
    asset_id TEXT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    -- HMAC-SHA256 of the token under a key derived from the root key; the token itself is never
    -- stored, so a copy of the database opens no link.
    token_hash BYTES NOT NULL UNIQUE,
    -- Who made it, as the audit trail names actors (`key:...`, `user:...`).
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- 1: the first download consumes it (used_at is set by one conditional UPDATE).
    single_use BIGINT NOT NULL,
    -- The only client address it answers, in canonical form; NULL: any address.
    ip TEXT,
    revoked_at BIGINT,
    used_at BIGINT,
    use_count BIGINT NOT NULL DEFAULT 0,
    last_used_at BIGINT
);
CREATE INDEX links_asset ON links (asset_id, id);
