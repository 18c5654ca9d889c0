-- Sealed metadata (issue 11): names, filenames, emails and addresses are stored sealed under a
-- root-derived field key, bound to their row (see src/seal.rs). The rows written before this
-- version are sealed by the same migration, in Rust, right after this script. Exact lookups go
-- through blind indexes (keyed hashes): uniqueness moves from the values to them.
ALTER TABLE orgs ADD COLUMN name_index TEXT;
DROP INDEX orgs_name;
CREATE UNIQUE INDEX orgs_name_index ON orgs (name_index);

ALTER TABLE users ADD COLUMN email_index TEXT;
CREATE UNIQUE INDEX users_email_index ON users (email_index);

ALTER TABLE roles ADD COLUMN name_index TEXT;
DROP INDEX roles_org_name;
CREATE UNIQUE INDEX roles_org_name_index ON roles (org_id, name_index);
