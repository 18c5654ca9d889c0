-- Browser sessions (issue 3). The cookie secret and the CSRF token are stored only as HMACs under
-- root-derived keys. A session acts in one organization; its role is read from the membership on
-- every request, so a role change takes effect at once.

ALTER TABLE orgs ADD COLUMN session_idle_secs BIGINT NOT NULL DEFAULT 1800;
ALTER TABLE orgs ADD COLUMN session_absolute_secs BIGINT NOT NULL DEFAULT 43200;

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    secret_hash BYTES NOT NULL UNIQUE,
    csrf_hash BYTES NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    -- When the password (or another factor) was last entered: sensitive actions need it recent.
    reauth_at BIGINT NOT NULL,
    ip TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id, id);
