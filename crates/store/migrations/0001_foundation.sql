-- Strongroom schema v1. Times are milliseconds since the Unix epoch (UTC). Ids are prefixed
-- UUIDv7 strings, so ordering by id is ordering by creation. BYTES becomes BLOB or BYTEA.

CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Head of the audit hash chain: last sequence number, its hash, and a MAC of both under a
    -- key derived from the root key, so a chain rewritten by someone with database access but
    -- without the root key is detected, including deleted trailing events.
    audit_seq BIGINT NOT NULL DEFAULT 0,
    audit_head BYTES NOT NULL,
    audit_head_mac BYTES NOT NULL
);
CREATE UNIQUE INDEX orgs_name ON orgs (name);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    user_id TEXT REFERENCES users (id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    -- HMAC-SHA256 of the secret under a key derived from the root key; the secret itself is
    -- never stored.
    secret_hash BYTES NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    last_used_ip TEXT
);
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE TABLE spaces (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX spaces_org ON spaces (org_id, id);

-- Key-encryption keys, wrapped by the root key. The highest version is the active one.
CREATE TABLE keks (
    version BIGINT PRIMARY KEY,
    wrapped BYTES NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per stored blob: its data key, wrapped by a KEK. Deleting the row shreds the blob.
CREATE TABLE blobs (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    kek_version BIGINT NOT NULL REFERENCES keks (version),
    wrapped_dek BYTES NOT NULL,
    size BIGINT NOT NULL,
    stored_size BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX blobs_kek ON blobs (kek_version, id);

CREATE TABLE assets (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    space_id TEXT NOT NULL REFERENCES spaces (id),
    blob_id TEXT NOT NULL REFERENCES blobs (id),
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX assets_space ON assets (space_id, id);

CREATE TABLE audit_events (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    ip TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BYTES NOT NULL,
    hash BYTES NOT NULL,
    PRIMARY KEY (org_id, seq)
);
