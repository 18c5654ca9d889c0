-- The authorization epoch (issue 8, small requests). A node keeps the credentials it resolved
-- in memory; this counter tells it when to forget them. The triggers of this migration (one
-- script per engine, beside this one) move it in the same transaction as every change to what
-- an API key's permissions are read from: the key itself, its owner's membership, custom roles,
-- space grants, the organization's MFA policy and the owner's second factor. Written by the
-- database itself, so no process (a node, the command line, a restore) can forget it.
CREATE TABLE authz_epoch (
    id BIGINT PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO authz_epoch (id, n) VALUES (1, 0);
