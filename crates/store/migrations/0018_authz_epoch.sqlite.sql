-- Triggers of migration 18 (see 0018_authz_epoch.sql) on SQLite: every change to what an API key's
-- permissions are read from moves authz_epoch.n, in the changing transaction.

CREATE TRIGGER authz_epoch_api_keys_update AFTER UPDATE OF org_id, user_id, role, secret_hash, previous_secret_hash, previous_valid_until, expires_at, revoked_at, spaces ON api_keys
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_api_keys_delete AFTER DELETE ON api_keys
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_memberships_insert AFTER INSERT ON memberships
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_memberships_update AFTER UPDATE OF org_id, user_id, role ON memberships
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_memberships_delete AFTER DELETE ON memberships
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_roles_insert AFTER INSERT ON roles
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_roles_update AFTER UPDATE OF org_id, name, permissions ON roles
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_roles_delete AFTER DELETE ON roles
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_space_grants_insert AFTER INSERT ON space_grants
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_space_grants_update AFTER UPDATE OF org_id, space_id, user_id, role ON space_grants
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_space_grants_delete AFTER DELETE ON space_grants
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_orgs_update AFTER UPDATE OF require_mfa ON orgs
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_orgs_delete AFTER DELETE ON orgs
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_user_totp_insert AFTER INSERT ON user_totp
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_user_totp_update AFTER UPDATE OF user_id, active ON user_totp
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_user_totp_delete AFTER DELETE ON user_totp
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;

CREATE TRIGGER authz_epoch_users_delete AFTER DELETE ON users
BEGIN
    UPDATE authz_epoch SET n = n + 1 WHERE id = 1;
END;
