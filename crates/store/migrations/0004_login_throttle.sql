-- Brute-force protection (issue 3). Counters live in the database so every node sees the same.

-- One row per failed check. scope: 'ip:<addr>', 'acct:<email>' or 'pair:<email>|<addr>';
-- kind: 'password' or 'otp' (counted separately).
CREATE TABLE login_failures (
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX login_failures_scope ON login_failures (scope, kind, at);

-- Addresses a user has signed in from: they stay open when the account is under attack.
CREATE TABLE login_successes (
    user_id TEXT NOT NULL REFERENCES users (id),
    ip TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (user_id, ip)
);

-- Captcha challenges already used: each solves exactly one attempt.
CREATE TABLE spent_challenges (
    id TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
