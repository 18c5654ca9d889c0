//! Privacy requests: what a person's data export reads (their keys across organizations, and
//! the audit events about them), their erasure, and the deletion of a whole organization.

use sqlx::Row;
use strongroom_domain::{BlobId, OrgId, Timestamp, UserId};

use crate::audit::{EVENT_COLUMNS, EVENT_JOIN, event};
use crate::keys::{KEY_COLUMNS, api_key};
use crate::seal::{FAILURE_SCOPE, INVITATION_EMAIL, KEY_NAME, ORG_NAME, USER_EMAIL};
use crate::{ApiKeyRow, AuditEventRow, Result, Store, StoreError, Tx};

impl Store {
    /// The API keys a user owns, in every organization, in creation order.
    pub async fn api_keys_of_user(&self, user_id: &UserId) -> Result<Vec<ApiKeyRow>> {
        let sql =
            format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.user_id = $1 ORDER BY k.id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| api_key(self.seal(), r)).collect()
    }

    /// An organization's events done by one of `actors` or aimed at `target`, in chain order,
    /// at most `limit` of them after `after`.
    pub async fn audit_events_about(
        &self,
        org_id: &OrgId,
        actors: &[String],
        target: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditEventRow>> {
        // Only numbered placeholders are spliced into the statement, never a value.
        let placeholders = (5..5 + actors.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let by = if actors.is_empty() {
            String::new()
        } else {
            format!(" OR e.actor IN ({placeholders})")
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events e {EVENT_JOIN} \
             WHERE e.org_id = $1 AND e.seq > $2 AND (e.target = $3{by}) \
             ORDER BY e.seq LIMIT $4"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .bind(after)
            .bind(target)
            .bind(i64::from(limit));
        for a in actors {
            query = query.bind(a.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(|r| event(self.seal(), r)).collect()
    }
}

/// The email address an erased user's row holds instead of theirs: unique, and unroutable
/// (`.invalid` is reserved, RFC 2606).
pub fn erased_email(user_id: &UserId) -> String {
    format!(
        "erased-{}@erased.invalid",
        user_id.as_str().replace('_', "-")
    )
}

/// The name an erased user's API keys are left with.
const ERASED_KEY_NAME: &str = "erased";

impl Tx {
    /// Erases a user (a person): the row stays, so ids in the audit trail and elsewhere still
    /// name one, but it holds nothing about them: a placeholder address (no blind index, so
    /// their address is free again), no password, and no person key, so the personal part of
    /// every event they did can no longer be opened. Their sessions, memberships, grants,
    /// second factor, recovery codes, known devices and sign-in addresses are deleted; their
    /// API keys are revoked and renamed; invitations they sent and have not been accepted are
    /// withdrawn; invitations addressed to `email` are deleted; the sign-in failures counted
    /// under `failure_scopes` are deleted.
    ///
    /// `false` when there is no such user, or they were erased already (nothing changes).
    pub async fn erase_user(
        &mut self,
        user_id: &UserId,
        email: &str,
        failure_scopes: &[String],
        at: Timestamp,
    ) -> Result<bool> {
        let placeholder = self
            .seal()
            .seal(USER_EMAIL, user_id.as_str(), &erased_email(user_id));
        let done = sqlx::query(
            "UPDATE users SET email = $1, email_index = NULL, password_hash = NULL, \
             person_key = NULL, erased_at = $2 WHERE id = $3 AND erased_at IS NULL",
        )
        .bind(placeholder)
        .bind(at.millis())
        .bind(user_id.as_str())
        .execute(self.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        for sql in [
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM memberships WHERE user_id = $1",
            "DELETE FROM space_grants WHERE user_id = $1",
            "DELETE FROM user_totp WHERE user_id = $1",
            "DELETE FROM recovery_codes WHERE user_id = $1",
            "DELETE FROM user_devices WHERE user_id = $1",
            "DELETE FROM login_successes WHERE user_id = $1",
        ] {
            sqlx::query(sql)
                .bind(user_id.as_str())
                .execute(self.conn())
                .await?;
        }
        sqlx::query(
            "UPDATE invitations SET revoked_at = $2 WHERE inviter_id = $1 \
             AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(user_id.as_str())
        .bind(at.millis())
        .execute(self.conn())
        .await?;

        let keys: Vec<String> = sqlx::query_scalar("SELECT id FROM api_keys WHERE user_id = $1")
            .bind(user_id.as_str())
            .fetch_all(self.conn())
            .await?;
        for id in keys {
            let name = self.seal().seal(KEY_NAME, &id, ERASED_KEY_NAME);
            sqlx::query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1), name = $2, \
                 last_used_ip = NULL, previous_secret_hash = NULL, previous_valid_until = NULL \
                 WHERE id = $3",
            )
            .bind(at.millis())
            .bind(name)
            .bind(&id)
            .execute(self.conn())
            .await?;
        }

        // Invitations hold the address sealed, without an index: open each one that could be
        // theirs (few: open or accepted by them).
        let rows = sqlx::query(
            "SELECT id, email, accepted_by FROM invitations \
             WHERE accepted_by = $1 OR accepted_at IS NULL",
        )
        .bind(user_id.as_str())
        .fetch_all(self.conn())
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let theirs = match self.seal().column(&row, INVITATION_EMAIL, &id) {
                Ok(e) => e == email,
                Err(StoreError::Corrupt { .. }) => false,
                Err(e) => return Err(e),
            };
            let accepted_by: Option<String> = row.try_get("accepted_by")?;
            let accepted_by_them = accepted_by.as_deref() == Some(user_id.as_str());
            if theirs || accepted_by_them {
                sqlx::query("DELETE FROM invitations WHERE id = $1")
                    .bind(&id)
                    .execute(self.conn())
                    .await?;
            }
        }

        for scope in failure_scopes {
            sqlx::query("DELETE FROM login_failures WHERE scope = $1")
                .bind(self.seal().index(FAILURE_SCOPE, "", scope))
                .execute(self.conn())
                .await?;
        }
        Ok(true)
    }
}

impl Store {
    /// Every erased user's id (for backups: their person keys are left out of every key set).
    pub async fn erased_users(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM users WHERE erased_at IS NOT NULL ORDER BY id")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Whether a user was erased (`None`: no such user).
    pub async fn user_erased(&self, user_id: &UserId) -> Result<Option<bool>> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT erased_at FROM users WHERE id = $1")
                .bind(user_id.as_str())
                .fetch_optional(self.pool())
                .await?;
        Ok(at.map(|a| a.is_some()))
    }
}

/// What a deleted organization left behind: the blobs whose rows (and keys) went with it, for
/// their objects to be removed, and the people who belonged to it alone.
#[derive(Debug, Default)]
pub struct DeletedOrg {
    /// Every blob the organization held: originals and renditions.
    pub blobs: Vec<BlobId>,
    /// Assets that went with it.
    pub assets: u64,
}

impl Tx {
    /// The members of `org_id` who belong to no other organization.
    pub async fn members_of_org_alone(&mut self, org_id: &OrgId) -> Result<Vec<UserId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT m.user_id FROM memberships m WHERE m.org_id = $1 AND NOT EXISTS \
             (SELECT 1 FROM memberships o WHERE o.user_id = m.user_id AND o.org_id <> $1) \
             ORDER BY m.user_id",
        )
        .bind(org_id.as_str())
        .fetch_all(self.conn())
        .await?;
        ids.iter()
            .map(|id| {
                UserId::parse(id).map_err(|e| StoreError::Corrupt {
                    table: "memberships",
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// Deletes everything an organization holds, in this transaction: its assets (with their
    /// renditions, package keys, links and playbacks) and every blob row, each recorded as
    /// shredded (the data keys go with the rows, so every stored copy is unreadable from the
    /// commit on, and backups' key sets lose them at the next shred pass); its spaces, grants,
    /// roles, invitations, API keys, sessions, memberships and jobs; and every audit event but
    /// the last, which must be the deletion's own (`org.delete`, appended before this call).
    /// The row stays as a tombstone holding the chain's head. `None`: no such live
    /// organization.
    pub async fn delete_org(
        &mut self,
        org_id: &OrgId,
        at: Timestamp,
    ) -> Result<Option<DeletedOrg>> {
        let placeholder = self
            .seal()
            .seal(ORG_NAME, org_id.as_str(), DELETED_ORG_NAME);
        let done = sqlx::query(
            "UPDATE orgs SET name = $1, name_index = NULL, deleted_at = $2 \
             WHERE id = $3 AND deleted_at IS NULL",
        )
        .bind(placeholder)
        .bind(at.millis())
        .bind(org_id.as_str())
        .execute(self.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let org = org_id.as_str();
        let assets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assets WHERE org_id = $1")
            .bind(org)
            .fetch_one(self.conn())
            .await?;
        let blobs: Vec<String> =
            sqlx::query_scalar("SELECT id FROM blobs WHERE org_id = $1 ORDER BY id")
                .bind(org)
                .fetch_all(self.conn())
                .await?;
        sqlx::query(
            "INSERT INTO shredded_blobs (blob_id, shredded_at) \
             SELECT id, $2 FROM blobs WHERE org_id = $1 ON CONFLICT (blob_id) DO NOTHING",
        )
        .bind(org)
        .bind(at.millis())
        .execute(self.conn())
        .await?;
        // Children before parents; each statement is one pass over the organization's rows.
        for sql in [
            "DELETE FROM links WHERE org_id = $1",
            "DELETE FROM playbacks WHERE org_id = $1",
            "DELETE FROM hls_keys WHERE asset_id IN (SELECT id FROM assets WHERE org_id = $1)",
            "DELETE FROM renditions WHERE org_id = $1",
            "DELETE FROM assets WHERE org_id = $1",
            "DELETE FROM job_outputs WHERE job_id IN (SELECT id FROM jobs WHERE org_id = $1)",
            "DELETE FROM jobs WHERE org_id = $1",
            "DELETE FROM blobs WHERE org_id = $1",
            "DELETE FROM space_grants WHERE org_id = $1",
            "DELETE FROM spaces WHERE org_id = $1",
            "DELETE FROM invitations WHERE org_id = $1",
            "DELETE FROM api_keys WHERE org_id = $1",
            "DELETE FROM sessions WHERE org_id = $1",
            "DELETE FROM memberships WHERE org_id = $1",
            "DELETE FROM roles WHERE org_id = $1",
            "DELETE FROM audit_events WHERE org_id = $1 \
             AND seq < (SELECT audit_seq FROM orgs WHERE id = $1)",
        ] {
            sqlx::query(sql).bind(org).execute(self.conn()).await?;
        }
        let blobs = blobs
            .iter()
            .map(|id| {
                BlobId::parse(id).map_err(|e| StoreError::Corrupt {
                    table: "blobs",
                    detail: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(DeletedOrg {
            blobs,
            assets: u64::try_from(assets).unwrap_or(0),
        }))
    }
}

/// The name a deleted organization's row is left with.
const DELETED_ORG_NAME: &str = "deleted organization";

impl Store {
    /// Every deleted organization's id (for backups: a restore of an earlier one deletes them
    /// again).
    pub async fn deleted_orgs(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM orgs WHERE deleted_at IS NOT NULL ORDER BY id")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Whether an organization was deleted (`None`: no such organization).
    pub async fn org_deleted(&self, org_id: &OrgId) -> Result<Option<bool>> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT deleted_at FROM orgs WHERE id = $1")
                .bind(org_id.as_str())
                .fetch_optional(self.pool())
                .await?;
        Ok(at.map(|a| a.is_some()))
    }
}
