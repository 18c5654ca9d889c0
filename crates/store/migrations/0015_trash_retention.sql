-- Trash and retention (issue 11, F19). Deleting an asset moves it to its space's trash: the row
-- stays, with when and by whom it was deleted, and every read, link and stream treats it as
-- gone. A purge (from the trash after the organization's grace period, or at once with
-- asset:purge) deletes the row and its data key, as deleting did before. A space may keep its
-- assets for a number of days: older ones go to the trash.
ALTER TABLE assets ADD COLUMN deleted_at BIGINT;
ALTER TABLE assets ADD COLUMN deleted_by TEXT;
CREATE INDEX assets_trash ON assets (deleted_at);
ALTER TABLE spaces ADD COLUMN retention_days INTEGER;
ALTER TABLE orgs ADD COLUMN trash_days INTEGER NOT NULL DEFAULT 30;
