-- API key lifecycle (issue 6): rotation with a grace period, and keys limited to some spaces.

-- Rotation moves the current secret's hash here; it keeps working until `previous_valid_until`
-- (epoch ms). Revocation clears it. Like `secret_hash`, an HMAC under a root-derived key.
ALTER TABLE api_keys ADD COLUMN previous_secret_hash BYTES;
ALTER TABLE api_keys ADD COLUMN previous_valid_until BIGINT;
-- NULLs are distinct in a unique index on both engines: only set hashes must be unique.
CREATE UNIQUE INDEX api_keys_previous_secret ON api_keys (previous_secret_hash);

-- The spaces a key may reach: NULL means every space of its organization, otherwise the space
-- ids separated by single spaces (ids never contain one), validated when the key is made. A
-- column rather than a join table so the restriction fails closed: an id that stops existing
-- narrows the key, it can never widen it to "every space".
ALTER TABLE api_keys ADD COLUMN spaces TEXT;
