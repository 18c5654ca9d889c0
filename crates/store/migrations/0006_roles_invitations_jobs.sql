-- Custom roles, space grants, invitations, known devices and the durable job queue (issue 3).
--
-- A role is named everywhere by its stored form: a built-in name ("editor") or a custom role's
-- id ("rol_..."), so editing a custom role reaches every membership, grant and key at once.

CREATE TABLE roles (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    -- Permission names separated by spaces ("asset:read asset:create").
    permissions TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX roles_org_name ON roles (org_id, name);

-- A role in one space: what a collaborator may do there, or more than a member's
-- organization role allows in that space.
CREATE TABLE space_grants (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    space_id TEXT NOT NULL REFERENCES spaces (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (space_id, user_id)
);
CREATE INDEX space_grants_user ON space_grants (org_id, user_id);

-- An invitation by email. Only the keyed hash of the link's token is stored; accepting is a
-- conditional update, so a link works once.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash BYTES NOT NULL UNIQUE,
    invited_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    accepted_at BIGINT,
    accepted_by TEXT REFERENCES users (id),
    revoked_at BIGINT
);
CREATE INDEX invitations_org ON invitations (org_id, id);

-- Browsers a user has signed in from (keyed hash of a long-lived device cookie), so a sign-in
-- from a new one can be told to the user.
CREATE TABLE user_devices (
    user_id TEXT NOT NULL REFERENCES users (id),
    device_hash BYTES NOT NULL,
    first_seen_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_hash)
);

-- The durable job queue. A worker claims a due job with one conditional update (safe with
-- several nodes), holds a lease it renews while it works, and a job whose worker died becomes
-- due again when its lease runs out. The payload is sealed with a root-derived field key bound
-- to the job id: it may hold secrets (an invitation link) or personal data (an email address).
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    org_id TEXT REFERENCES orgs (id),
    kind TEXT NOT NULL,
    -- What the job is about (an asset id), for status lookups; never secret.
    subject TEXT,
    payload BYTES NOT NULL,
    -- queued | running | done | failed
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    lease_until BIGINT,
    worker TEXT,
    -- 0..=100
    progress BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_after);
CREATE INDEX jobs_subject ON jobs (subject);
