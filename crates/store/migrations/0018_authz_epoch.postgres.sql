-- Triggers of migration 18 (see 0018_authz_epoch.sql) on PostgreSQL: every change to what an API key's
-- permissions are read from moves authz_epoch.n, in the changing transaction. Constraint
-- triggers, deferred: the counter's row is locked only as the transaction commits, after every
-- other lock it takes, so two transactions can never wait on each other through it.

CREATE FUNCTION strongroom_authz_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER authz_epoch_api_keys AFTER UPDATE OF org_id, user_id, role, secret_hash, previous_secret_hash, previous_valid_until, expires_at, revoked_at, spaces OR DELETE ON api_keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_authz_changed();

CREATE CONSTRAINT TRIGGER authz_epoch_memberships AFTER INSERT OR UPDATE OF org_id, user_id, role OR DELETE ON memberships
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_authz_changed();

CREATE CONSTRAINT TRIGGER authz_epoch_roles AFTER INSERT OR UPDATE OF org_id, name, permissions OR DELETE ON roles
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_authz_changed();

CREATE CONSTRAINT TRIGGER authz_epoch_space_grants AFTER INSERT OR UPDATE OF org_id, space_id, user_id, role OR DELETE ON space_grants
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_authz_changed();

CREATE CONSTRAINT TRIGGER authz_epoch_orgs AFTER UPDATE OF require_mfa OR DELETE ON orgs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_authz_changed();

CREATE CONSTRAINT TRIGGER authz_epoch_user_totp AFTER INSERT OR UPDATE OF user_id, active OR DELETE ON user_totp
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_authz_changed();

CREATE CONSTRAINT TRIGGER authz_epoch_users AFTER DELETE ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION strongroom_authz_changed();
