-- Who sent each invitation, as a user id, so acceptance can re-check that the inviter is still a
-- member allowed to grant the role, and removing a member withdraws what they sent.
ALTER TABLE invitations ADD COLUMN inviter_id TEXT;
UPDATE invitations SET inviter_id = substr(invited_by, 6) WHERE invited_by LIKE 'user:%';
UPDATE invitations SET inviter_id =
    (SELECT k.user_id FROM api_keys k WHERE 'key:' || k.id = invitations.invited_by)
    WHERE invited_by LIKE 'key:%';
CREATE INDEX invitations_by_inviter ON invitations (org_id, inviter_id);
