-- Triggers of migration 20 (see 0020_asset_epoch.sql) on SQLite: every change to an asset or a
-- blob row moves the asset epoch (authz_epoch row 2), in the changing transaction.

CREATE TRIGGER asset_epoch_assets_update AFTER UPDATE ON assets
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 2;
END;

CREATE TRIGGER asset_epoch_assets_delete AFTER DELETE ON assets
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 2;
END;

CREATE TRIGGER asset_epoch_blobs_update AFTER UPDATE ON blobs
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 2;
END;

CREATE TRIGGER asset_epoch_blobs_delete AFTER DELETE ON blobs
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 2;
END;
