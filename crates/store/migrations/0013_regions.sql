-- Data residency (issue 9): each organization has a region, and each blob row says which region's
-- backends hold it. An organization's new blobs are written to its region; a blob whose region
-- differs from its organization's is being moved (the region-move job copies, verifies, then
-- updates the row and removes the old copies). Rows from before this migration get 'default',
-- which the server relabels at start to its only region when exactly one is configured.
ALTER TABLE orgs ADD COLUMN region TEXT NOT NULL DEFAULT 'default';
ALTER TABLE blobs ADD COLUMN region TEXT NOT NULL DEFAULT 'default';
CREATE INDEX blobs_org_region ON blobs (org_id, region);
