-- Per-organization storage quotas, set by the operator (NULL: the server's default applies).
ALTER TABLE orgs ADD COLUMN max_bytes BIGINT;
ALTER TABLE orgs ADD COLUMN max_assets BIGINT;
CREATE INDEX assets_org ON assets (org_id);
