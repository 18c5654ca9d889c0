-- TOTP second factor (issue 3). The secret is encrypted with a root-derived field key, bound to
-- the user id; recovery codes are stored as HMACs. last_step makes every code single-use.

CREATE TABLE user_totp (
    user_id TEXT PRIMARY KEY REFERENCES users (id),
    secret_enc BYTES NOT NULL,
    active BIGINT NOT NULL DEFAULT 0,
    last_step BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users (id),
    code_hash BYTES NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

ALTER TABLE orgs ADD COLUMN require_mfa BIGINT NOT NULL DEFAULT 0;
