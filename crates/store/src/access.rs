//! Who may do what: custom roles, space grants, member changes, invitations and the devices a
//! user has signed in from.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{
    Email, InvitationId, Name, OrgId, PermissionSet, RoleId, RoleRef, SpaceId, Timestamp, UserId,
};

use crate::seal::{INVITATION_EMAIL, ROLE_NAME, Seal, USER_EMAIL};
use crate::{Result, Store, StoreError, Tx, conflict, parsed, role_ref};

/// A custom role of an organization.
#[derive(Debug, Clone)]
pub struct RoleRow {
    /// Its id (what memberships, grants and keys store).
    pub id: RoleId,
    /// The organization it belongs to.
    pub org_id: OrgId,
    /// Its name, unique in the organization and never a built-in role's name.
    pub name: Name,
    /// What it grants.
    pub permissions: PermissionSet,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A role in one space.
#[derive(Debug, Clone)]
pub struct GrantRow {
    /// The space.
    pub space_id: SpaceId,
    /// The user it is granted to.
    pub user_id: UserId,
    /// Their email, for listings.
    pub email: Email,
    /// The role.
    pub role: RoleRef,
    /// When it was granted (or last changed).
    pub created_at: Timestamp,
}

/// An invitation to join an organization.
#[derive(Debug, Clone)]
pub struct InvitationRow {
    /// Its id.
    pub id: InvitationId,
    /// The organization.
    pub org_id: OrgId,
    /// Who is invited.
    pub email: Email,
    /// The role they get.
    pub role: RoleRef,
    /// Who invited them (an audit actor name).
    pub invited_by: String,
    /// The member who invited them (the user behind the key, for a key); `None` only for
    /// invitations older than this column whose inviter could not be told.
    pub inviter: Option<UserId>,
    /// When it was sent.
    pub created_at: Timestamp,
    /// When the link stops working.
    pub expires_at: Timestamp,
    /// When it was accepted, if it was.
    pub accepted_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

fn custom_role(s: &Seal, row: &AnyRow) -> Result<RoleRow> {
    let permissions: String = row.try_get("permissions")?;
    let id = parsed(row, "roles", "id", RoleId::parse)?;
    Ok(RoleRow {
        name: s.parsed(row, ROLE_NAME, id.as_str(), Name::parse)?,
        id,
        org_id: parsed(row, "roles", "org_id", OrgId::parse)?,
        permissions: PermissionSet::from_stored(&permissions).map_err(|detail| {
            StoreError::Corrupt {
                table: "roles",
                detail,
            }
        })?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn grant(s: &Seal, row: &AnyRow) -> Result<GrantRow> {
    let user_id = parsed(row, "space_grants", "user_id", UserId::parse)?;
    Ok(GrantRow {
        space_id: parsed(row, "space_grants", "space_id", SpaceId::parse)?,
        email: s.parsed(row, USER_EMAIL, user_id.as_str(), Email::parse)?,
        user_id,
        role: role_ref(&row.try_get::<String, _>("role")?, "space_grants")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn invitation(s: &Seal, row: &AnyRow) -> Result<InvitationRow> {
    let ts = |col: &str| -> Result<Option<Timestamp>> {
        Ok(row
            .try_get::<Option<i64>, _>(col)?
            .map(Timestamp::from_millis))
    };
    let id = parsed(row, "invitations", "id", InvitationId::parse)?;
    Ok(InvitationRow {
        email: s.parsed(row, INVITATION_EMAIL, id.as_str(), Email::parse)?,
        id,
        org_id: parsed(row, "invitations", "org_id", OrgId::parse)?,
        role: role_ref(&row.try_get::<String, _>("role")?, "invitations")?,
        invited_by: row.try_get("invited_by")?,
        inviter: row
            .try_get::<Option<String>, _>("inviter_id")?
            .map(|id| {
                UserId::parse(&id).map_err(|e| StoreError::Corrupt {
                    table: "invitations",
                    detail: format!("inviter_id: {e}"),
                })
            })
            .transpose()?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        accepted_at: ts("accepted_at")?,
        revoked_at: ts("revoked_at")?,
    })
}

const ROLE_COLUMNS: &str = "id, org_id, name, permissions, created_at";
const GRANT_COLUMNS: &str = "g.space_id, g.user_id, u.email, g.role, g.created_at";
const INVITATION_COLUMNS: &str = "id, org_id, email, role, invited_by, inviter_id, created_at, \
                                  expires_at, accepted_at, revoked_at";

impl Store {
    /// The organization's custom role with this id.
    pub async fn custom_role(&self, org_id: &OrgId, id: &RoleId) -> Result<Option<RoleRow>> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE id = $1 AND org_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| custom_role(self.seal(), &r)).transpose()
    }

    /// The organization's custom role with this name.
    pub async fn custom_role_by_name(&self, org_id: &OrgId, name: &str) -> Result<Option<RoleRow>> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE org_id = $1 AND name_index = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .bind(self.seal().index(ROLE_NAME, org_id.as_str(), name))
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| custom_role(self.seal(), &r)).transpose()
    }

    /// The organization's custom roles, by name.
    pub async fn custom_roles(&self, org_id: &OrgId) -> Result<Vec<RoleRow>> {
        let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE org_id = $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .fetch_all(self.pool())
            .await?;
        // Names are sealed: sorted here, after opening (an organization has few roles).
        let mut roles = rows
            .iter()
            .map(|r| custom_role(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        roles.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        Ok(roles)
    }

    /// How many members, grants, live API keys and open invitations hold this role.
    pub async fn role_holders(&self, org_id: &OrgId, stored: &str, now: Timestamp) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = $2) \
             + (SELECT COUNT(*) FROM space_grants WHERE org_id = $1 AND role = $2) \
             + (SELECT COUNT(*) FROM api_keys WHERE org_id = $1 AND role = $2 \
                AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $3)) \
             + (SELECT COUNT(*) FROM invitations WHERE org_id = $1 AND role = $2 \
                AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3)",
        )
        .bind(org_id.as_str())
        .bind(stored)
        .bind(now.millis())
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The spaces granted to a user in an organization, with each grant's role.
    pub async fn grants_of(&self, org_id: &OrgId, user_id: &UserId) -> Result<Vec<GrantRow>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM space_grants g JOIN users u ON u.id = g.user_id \
             WHERE g.org_id = $1 AND g.user_id = $2 ORDER BY g.space_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .bind(user_id.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| grant(self.seal(), r)).collect()
    }

    /// Everyone granted a role in a space, by email.
    pub async fn grants_on(&self, space_id: &SpaceId) -> Result<Vec<GrantRow>> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM space_grants g JOIN users u ON u.id = g.user_id \
             WHERE g.space_id = $1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(space_id.as_str())
            .fetch_all(self.pool())
            .await?;
        // Emails are sealed: sorted here, after opening.
        let mut grants = rows
            .iter()
            .map(|r| grant(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        grants.sort_by(|a, b| a.email.as_str().cmp(b.email.as_str()));
        Ok(grants)
    }

    /// The invitation whose link token has this keyed hash.
    pub async fn invitation_by_hash(&self, hash: &[u8]) -> Result<Option<InvitationRow>> {
        let sql = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| invitation(self.seal(), &r)).transpose()
    }

    /// The organization's invitation with this id.
    pub async fn invitation(
        &self,
        org_id: &OrgId,
        id: &InvitationId,
    ) -> Result<Option<InvitationRow>> {
        let sql =
            format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE id = $1 AND org_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| invitation(self.seal(), &r)).transpose()
    }

    /// The organization's invitations, newest first (at most 1000).
    pub async fn invitations(&self, org_id: &OrgId) -> Result<Vec<InvitationRow>> {
        let sql = format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE org_id = $1 \
             ORDER BY id DESC LIMIT 1000"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| invitation(self.seal(), r)).collect()
    }

    /// Whether the user has signed in from the device with this keyed cookie hash before, and
    /// whether they have signed in from any device at all.
    pub async fn device_seen(&self, user_id: &UserId, hash: &[u8]) -> Result<(bool, bool)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS devices, \
             SUM(CASE WHEN device_hash = $2 THEN 1 ELSE 0 END) AS this_one \
             FROM user_devices WHERE user_id = $1",
        )
        .bind(user_id.as_str())
        .bind(hash)
        .fetch_one(self.pool())
        .await?;
        let devices: i64 = row.try_get("devices")?;
        let this_one: Option<i64> = row.try_get("this_one")?;
        Ok((this_one.unwrap_or(0) > 0, devices > 0))
    }

    /// Remembers a device the user signed in from.
    pub async fn remember_device(
        &self,
        user_id: &UserId,
        hash: &[u8],
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_devices (user_id, device_hash, first_seen_at, last_seen_at) \
             VALUES ($1, $2, $3, $3) \
             ON CONFLICT (user_id, device_hash) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        )
        .bind(user_id.as_str())
        .bind(hash)
        .bind(at.millis())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

impl Tx {
    /// Serializes changes to an organization's memberships: until this transaction ends, no
    /// other transaction can pass the same point for the same organization (a row lock on
    /// PostgreSQL; SQLite has one writer anyway). Checks such as "one owner must remain" then
    /// read a count no concurrent change can invalidate.
    pub async fn lock_org(&mut self, org_id: &OrgId) -> Result<()> {
        sqlx::query("UPDATE orgs SET audit_seq = audit_seq WHERE id = $1")
            .bind(org_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// How many owners the organization has (after [`Tx::lock_org`], a stable count).
    pub async fn owner_count(&mut self, org_id: &OrgId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner'",
        )
        .bind(org_id.as_str())
        .fetch_one(self.conn())
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The member's current role, read inside the transaction.
    pub async fn member_role(
        &mut self,
        org_id: &OrgId,
        user_id: &UserId,
    ) -> Result<Option<RoleRef>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
                .bind(org_id.as_str())
                .bind(user_id.as_str())
                .fetch_optional(self.conn())
                .await?;
        role.map(|r| role_ref(&r, "memberships")).transpose()
    }

    /// Changes an existing member's role; false when they are not a member.
    pub async fn set_member_role(
        &mut self,
        org_id: &OrgId,
        user_id: &UserId,
        role: &RoleRef,
    ) -> Result<bool> {
        let done =
            sqlx::query("UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2")
                .bind(org_id.as_str())
                .bind(user_id.as_str())
                .bind(role.to_stored())
                .execute(self.conn())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a member with their space grants, sessions and API keys in the organization;
    /// false when they were not a member.
    pub async fn remove_member(
        &mut self,
        org_id: &OrgId,
        user_id: &UserId,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id.as_str())
            .bind(user_id.as_str())
            .execute(self.conn())
            .await?;
        for sql in [
            "DELETE FROM space_grants WHERE org_id = $1 AND user_id = $2",
            "UPDATE sessions SET revoked_at = $3 WHERE org_id = $1 AND user_id = $2 \
             AND revoked_at IS NULL",
            "UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND user_id = $2 \
             AND revoked_at IS NULL",
        ] {
            sqlx::query(sql)
                .bind(org_id.as_str())
                .bind(user_id.as_str())
                .bind(at.millis())
                .execute(self.conn())
                .await?;
        }
        Ok(done.rows_affected() == 1)
    }

    /// Creates a custom role.
    pub async fn insert_role(&mut self, row: &RoleRow) -> Result<()> {
        let name = self
            .seal()
            .seal(ROLE_NAME, row.id.as_str(), row.name.as_str());
        let index = self
            .seal()
            .index(ROLE_NAME, row.org_id.as_str(), row.name.as_str());
        sqlx::query(
            "INSERT INTO roles (id, org_id, name, name_index, permissions, created_at) \
             VALUES ($1, $2, $3, $6, $4, $5)",
        )
        .bind(row.id.as_str())
        .bind(row.org_id.as_str())
        .bind(name)
        .bind(row.permissions.to_stored())
        .bind(row.created_at.millis())
        .bind(index)
        .execute(self.conn())
        .await
        .map_err(conflict("a role with this name"))?;
        Ok(())
    }

    /// Replaces a custom role's permissions; false when it does not exist.
    pub async fn set_role_permissions(
        &mut self,
        org_id: &OrgId,
        id: &RoleId,
        permissions: PermissionSet,
    ) -> Result<bool> {
        let done = sqlx::query("UPDATE roles SET permissions = $3 WHERE id = $1 AND org_id = $2")
            .bind(id.as_str())
            .bind(org_id.as_str())
            .bind(permissions.to_stored())
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a custom role; false when it does not exist.
    pub async fn delete_role(&mut self, org_id: &OrgId, id: &RoleId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM roles WHERE id = $1 AND org_id = $2")
            .bind(id.as_str())
            .bind(org_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Grants a role in a space (or changes the one granted).
    pub async fn upsert_grant(
        &mut self,
        org_id: &OrgId,
        space_id: &SpaceId,
        user_id: &UserId,
        role: &RoleRef,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO space_grants (org_id, space_id, user_id, role, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (space_id, user_id) DO UPDATE SET role = excluded.role, \
             created_at = excluded.created_at",
        )
        .bind(org_id.as_str())
        .bind(space_id.as_str())
        .bind(user_id.as_str())
        .bind(role.to_stored())
        .bind(at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Removes a space grant; false when there was none.
    pub async fn delete_grant(&mut self, space_id: &SpaceId, user_id: &UserId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM space_grants WHERE space_id = $1 AND user_id = $2")
            .bind(space_id.as_str())
            .bind(user_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records an invitation; only the keyed hash of its link token is stored.
    pub async fn insert_invitation(
        &mut self,
        row: &InvitationRow,
        token_hash: &[u8],
    ) -> Result<()> {
        let email = self
            .seal()
            .seal(INVITATION_EMAIL, row.id.as_str(), row.email.as_str());
        sqlx::query(
            "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
             expires_at, inviter_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(row.id.as_str())
        .bind(row.org_id.as_str())
        .bind(email)
        .bind(row.role.to_stored())
        .bind(token_hash)
        .bind(row.invited_by.as_str())
        .bind(row.created_at.millis())
        .bind(row.expires_at.millis())
        .bind(row.inviter.as_ref().map(UserId::as_str))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Revokes every open invitation `inviter` sent in the organization; returns how many.
    pub async fn revoke_invitations_by(
        &mut self,
        org_id: &OrgId,
        inviter: &UserId,
        at: Timestamp,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE invitations SET revoked_at = $3 WHERE org_id = $1 AND inviter_id = $2 \
             AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(org_id.as_str())
        .bind(inviter.as_str())
        .bind(at.millis())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected())
    }

    /// Marks an invitation accepted, only if it is still open: of concurrent attempts exactly
    /// one gets `true`.
    pub async fn accept_invitation(
        &mut self,
        id: &InvitationId,
        user_id: &UserId,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE invitations SET accepted_at = $2, accepted_by = $3 WHERE id = $1 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(id.as_str())
        .bind(at.millis())
        .bind(user_id.as_str())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes an open invitation; false when it was not open.
    pub async fn revoke_invitation(
        &mut self,
        org_id: &OrgId,
        id: &InvitationId,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE invitations SET revoked_at = $3 WHERE id = $1 AND org_id = $2 \
             AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(org_id.as_str())
        .bind(at.millis())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
