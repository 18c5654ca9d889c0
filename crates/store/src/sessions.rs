//! Browser sessions and the password hashes they are opened with.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{OrgId, RoleRef, SessionId, Timestamp, UserId};

use crate::seal::{ORG_NAME, SESSION_AGENT, SESSION_IP, Seal, USER_EMAIL};
use crate::{Result, Store, StoreError, Tx, parsed};

/// A session as stored.
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Its public id.
    pub id: SessionId,
    /// The user it belongs to.
    pub user_id: UserId,
    /// The organization it acts in.
    pub org_id: OrgId,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it was last used.
    pub last_seen_at: Timestamp,
    /// When a password was last entered in it.
    pub reauth_at: Timestamp,
    /// The address it was opened from.
    pub ip: String,
    /// The browser that opened it.
    pub user_agent: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// What a session cookie resolves to.
#[derive(Debug, Clone)]
pub struct SessionLookup {
    /// The session.
    pub session: SessionRow,
    /// The stored HMAC of its CSRF token.
    pub csrf_hash: Vec<u8>,
    /// The stored HMAC of its cookie secret, for the constant-time comparison.
    pub secret_hash: Vec<u8>,
    /// The user's current role in the session's organization (`None`: no longer a member).
    pub role: Option<RoleRef>,
    /// The organization's idle timeout, seconds.
    pub idle_secs: i64,
    /// The organization's absolute lifetime, seconds.
    pub absolute_secs: i64,
}

const COLUMNS: &str = "s.id, s.user_id, s.org_id, s.created_at, s.last_seen_at, s.reauth_at, \
                       s.ip, s.user_agent, s.revoked_at";

fn session(s: &Seal, row: &AnyRow) -> Result<SessionRow> {
    let id = parsed(row, "sessions", "id", SessionId::parse)?;
    Ok(SessionRow {
        ip: s.column(row, SESSION_IP, id.as_str())?,
        user_agent: s.column(row, SESSION_AGENT, id.as_str())?,
        id,
        user_id: parsed(row, "sessions", "user_id", UserId::parse)?,
        org_id: parsed(row, "sessions", "org_id", OrgId::parse)?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        last_seen_at: Timestamp::from_millis(row.try_get("last_seen_at")?),
        reauth_at: Timestamp::from_millis(row.try_get("reauth_at")?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(Timestamp::from_millis),
    })
}

impl Store {
    /// Resolves a session by the keyed hash of its cookie secret.
    pub async fn session_by_hash(&self, hash: &[u8]) -> Result<Option<SessionLookup>> {
        let sql = format!(
            "SELECT {COLUMNS}, s.secret_hash, s.csrf_hash, m.role AS member_role, \
             o.session_idle_secs, o.session_absolute_secs FROM sessions s \
             JOIN orgs o ON o.id = s.org_id \
             LEFT JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id \
             WHERE s.secret_hash = $1"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let role: Option<String> = row.try_get("member_role")?;
        Ok(Some(SessionLookup {
            session: session(self.seal(), &row)?,
            csrf_hash: row.try_get("csrf_hash")?,
            secret_hash: row.try_get("secret_hash")?,
            role: role
                .map(|r| crate::role_ref(&r, "memberships"))
                .transpose()?,
            idle_secs: row.try_get("session_idle_secs")?,
            absolute_secs: row.try_get("session_absolute_secs")?,
        }))
    }

    /// A user's sessions that are not revoked, newest last.
    pub async fn sessions_of(&self, user_id: &UserId) -> Result<Vec<SessionRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions s WHERE s.user_id = $1 AND s.revoked_at IS NULL ORDER BY s.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| session(self.seal(), r)).collect()
    }

    /// Records that a session was used now.
    pub async fn touch_session(&self, id: &SessionId, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
            .bind(at.millis())
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// When a password was last entered in this session.
    pub async fn session_reauth_at(&self, id: &SessionId) -> Result<Option<Timestamp>> {
        let at: Option<i64> = sqlx::query_scalar("SELECT reauth_at FROM sessions WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(at.map(Timestamp::from_millis))
    }

    /// Records that the password was just entered again in this session.
    pub async fn set_session_reauth(&self, id: &SessionId, at: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sessions SET reauth_at = $1 WHERE id = $2")
            .bind(at.millis())
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The stored password hash (PHC string) of a user, if they have one.
    pub async fn password_hash(&self, user_id: &UserId) -> Result<Option<String>> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user_id.as_str())
                .fetch_optional(self.pool())
                .await?;
        Ok(hash.flatten())
    }

    /// The organization's session timeouts in seconds: (idle, absolute).
    pub async fn session_policy(&self, org_id: &OrgId) -> Result<(i64, i64)> {
        let row =
            sqlx::query("SELECT session_idle_secs, session_absolute_secs FROM orgs WHERE id = $1")
                .bind(org_id.as_str())
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| StoreError::Corrupt {
                    table: "orgs",
                    detail: format!("no organization {org_id}"),
                })?;
        Ok((
            row.try_get("session_idle_secs")?,
            row.try_get("session_absolute_secs")?,
        ))
    }

    /// A user's email address.
    pub async fn user_email(&self, user_id: &UserId) -> Result<Option<strongroom_domain::Email>> {
        let email: Option<String> = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
            .bind(user_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        email
            .map(|e| {
                let e = self.seal().open(USER_EMAIL, user_id.as_str(), &e)?;
                strongroom_domain::Email::parse(&e).map_err(|e| StoreError::Corrupt {
                    table: "users",
                    detail: e.0,
                })
            })
            .transpose()
    }

    /// Every organization a user belongs to, by name: `(org id, org name, role name)`, with a
    /// custom role's name in place of its id.
    pub async fn memberships_of(&self, user_id: &UserId) -> Result<Vec<(OrgId, String, String)>> {
        let rows = sqlx::query(
            "SELECT m.org_id, o.name, m.role, r.name AS role_name FROM memberships m \
             JOIN orgs o ON o.id = m.org_id \
             LEFT JOIN roles r ON r.id = m.role AND r.org_id = m.org_id \
             WHERE m.user_id = $1 ORDER BY m.org_id",
        )
        .bind(user_id.as_str())
        .fetch_all(self.pool())
        .await?;
        let seal = self.seal();
        let mut orgs = rows
            .iter()
            .map(|row| {
                let org_id = parsed(row, "memberships", "org_id", OrgId::parse)?;
                Ok((
                    seal.column(row, ORG_NAME, org_id.as_str())?,
                    org_id,
                    crate::mfa::role_name(seal, row, "role", "role_name")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // Names are sealed: sorted here, after opening (then by id, as before).
        orgs.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        Ok(orgs
            .into_iter()
            .map(|(name, id, role)| (id, name, role))
            .collect())
    }

    /// The organization a user joined first, if any (a session's default organization).
    pub async fn first_membership(&self, user_id: &UserId) -> Result<Option<OrgId>> {
        let org: Option<String> = sqlx::query_scalar(
            "SELECT org_id FROM memberships WHERE user_id = $1 ORDER BY created_at, org_id LIMIT 1",
        )
        .bind(user_id.as_str())
        .fetch_optional(self.pool())
        .await?;
        org.map(|o| {
            OrgId::parse(&o).map_err(|e| StoreError::Corrupt {
                table: "memberships",
                detail: e.to_string(),
            })
        })
        .transpose()
    }
}

impl Tx {
    /// Opens a session.
    pub async fn insert_session(
        &mut self,
        row: &SessionRow,
        secret_hash: &[u8],
        csrf_hash: &[u8],
    ) -> Result<()> {
        let ip = self.seal().seal(SESSION_IP, row.id.as_str(), &row.ip);
        let agent = self
            .seal()
            .seal(SESSION_AGENT, row.id.as_str(), &row.user_agent);
        sqlx::query(
            "INSERT INTO sessions (id, secret_hash, csrf_hash, user_id, org_id, created_at, \
             last_seen_at, reauth_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(row.id.as_str())
        .bind(secret_hash)
        .bind(csrf_hash)
        .bind(row.user_id.as_str())
        .bind(row.org_id.as_str())
        .bind(row.created_at.millis())
        .bind(row.last_seen_at.millis())
        .bind(row.reauth_at.millis())
        .bind(ip)
        .bind(agent)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Revokes one of a user's sessions; returns whether a live one was revoked.
    pub async fn revoke_session(
        &mut self,
        user_id: &UserId,
        id: &SessionId,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(id.as_str())
        .bind(user_id.as_str())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes every live session of a user except `keep`; returns how many.
    pub async fn revoke_other_sessions(
        &mut self,
        user_id: &UserId,
        keep: Option<&SessionId>,
        at: Timestamp,
    ) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3",
        )
        .bind(at.millis())
        .bind(user_id.as_str())
        .bind(keep.map(|k| k.as_str()).unwrap_or(""))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected())
    }

    /// Replaces a user's password hash.
    pub async fn set_password_hash(&mut self, user_id: &UserId, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
