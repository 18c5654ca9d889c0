-- Triggers of migration 20 (see 0020_asset_epoch.sql) on PostgreSQL: every change to an asset
-- or a blob row moves the asset epoch (authz_epoch row 2), in the changing transaction.
-- Constraint triggers, deferred, like migration 18's: the counter's row is locked only as the
-- transaction commits, after every other lock it takes.

CREATE FUNCTION strongroom_assets_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 2;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER asset_epoch_assets AFTER UPDATE OR DELETE ON assets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_assets_changed();

CREATE CONSTRAINT TRIGGER asset_epoch_blobs AFTER UPDATE OR DELETE ON blobs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_assets_changed();
