//! Second factors: each user's TOTP secret (encrypted by the caller), its replay guard, recovery
//! code hashes, and the organization policy that requires them.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{Email, OrgId, Timestamp, UserId};

use crate::seal::{ROLE_NAME, Seal, USER_EMAIL};
use crate::{Result, Store, Tx, parsed};

/// A user's TOTP enrolment.
#[derive(Clone)]
pub struct TotpRow {
    /// The secret, encrypted with the field key and bound to the user id.
    pub secret_enc: Vec<u8>,
    /// Whether enrolment was confirmed with a valid code.
    pub active: bool,
    /// The last accepted time step (codes at or before it are refused).
    pub last_step: Option<u64>,
}

/// A member as the member list shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemberRow {
    /// The user.
    pub user_id: UserId,
    /// Their email.
    pub email: Email,
    /// Their role in the organization: a built-in name or a custom role's name.
    pub role: String,
    /// Whether they have an active second factor.
    pub mfa_enabled: bool,
}

impl Store {
    /// The user's TOTP enrolment, if any.
    pub async fn totp(&self, user_id: &UserId) -> Result<Option<TotpRow>> {
        let row =
            sqlx::query("SELECT secret_enc, active, last_step FROM user_totp WHERE user_id = $1")
                .bind(user_id.as_str())
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            let active: i64 = r.try_get("active")?;
            let step: Option<i64> = r.try_get("last_step")?;
            Ok(TotpRow {
                secret_enc: r.try_get("secret_enc")?,
                active: active != 0,
                last_step: step.and_then(|s| u64::try_from(s).ok()),
            })
        })
        .transpose()
    }

    /// Whether the organization requires a second factor.
    pub async fn requires_mfa(&self, org_id: &OrgId) -> Result<bool> {
        let v: Option<i64> = sqlx::query_scalar("SELECT require_mfa FROM orgs WHERE id = $1")
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(v.unwrap_or(0) != 0)
    }

    /// The organization's members with their second-factor status, by email.
    pub async fn members(&self, org_id: &OrgId) -> Result<Vec<MemberRow>> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, m.role, r.name AS role_name, \
             COALESCE(t.active, 0) AS mfa FROM memberships m \
             JOIN users u ON u.id = m.user_id LEFT JOIN user_totp t ON t.user_id = u.id \
             LEFT JOIN roles r ON r.id = m.role AND r.org_id = m.org_id \
             WHERE m.org_id = $1",
        )
        .bind(org_id.as_str())
        .fetch_all(self.pool())
        .await?;
        let seal = self.seal();
        let mut members = rows
            .iter()
            .map(|r| {
                let mfa: i64 = r.try_get("mfa")?;
                let user_id = parsed(r, "users", "id", UserId::parse)?;
                Ok(MemberRow {
                    email: seal.parsed(r, USER_EMAIL, user_id.as_str(), Email::parse)?,
                    user_id,
                    role: role_name(seal, r, "role", "role_name")?,
                    mfa_enabled: mfa != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // Emails are sealed: sorted here, after opening.
        members.sort_by(|a, b| a.email.as_str().cmp(b.email.as_str()));
        Ok(members)
    }
}

/// A member's role as listings show it: a custom role's name (opened, bound to its id, which
/// the `role` column holds), or the built-in role's stored name.
pub(crate) fn role_name(seal: &Seal, row: &AnyRow, role: &str, name: &str) -> Result<String> {
    let stored: String = row.try_get(role)?;
    let sealed: Option<String> = row.try_get(name)?;
    match sealed {
        Some(n) => seal.open(ROLE_NAME, &stored, &n),
        None => Ok(stored),
    }
}

impl Tx {
    /// Starts (or restarts) an enrolment that is not active yet.
    pub async fn set_pending_totp(
        &mut self,
        user_id: &UserId,
        secret_enc: &[u8],
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_totp (user_id, secret_enc, active, last_step, created_at) VALUES ($1, $2, 0, NULL, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret_enc = excluded.secret_enc, active = 0, last_step = NULL, created_at = excluded.created_at",
        )
        .bind(user_id.as_str())
        .bind(secret_enc)
        .bind(at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Accepts time step `step` if it is later than every accepted one (and activates the
    /// enrolment); `false` means the code was already used.
    pub async fn accept_totp_step(&mut self, user_id: &UserId, step: u64) -> Result<bool> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "UPDATE user_totp SET last_step = $1, active = 1 \
             WHERE user_id = $2 AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user_id.as_str())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes the second factor and its recovery codes.
    pub async fn delete_totp(&mut self, user_id: &UserId) -> Result<()> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id.as_str())
            .execute(self.conn())
            .await?;
        sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
            .bind(user_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Replaces the user's recovery codes.
    pub async fn replace_recovery_codes(
        &mut self,
        user_id: &UserId,
        hashes: &[[u8; 32]],
    ) -> Result<()> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id.as_str())
            .execute(self.conn())
            .await?;
        for h in hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id.as_str())
                .bind(h.as_slice())
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }

    /// Uses a recovery code once; `false` if unknown or already used.
    pub async fn use_recovery_code(
        &mut self,
        user_id: &UserId,
        hash: &[u8],
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(at.millis())
        .bind(user_id.as_str())
        .bind(hash)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets whether the organization requires a second factor.
    pub async fn set_require_mfa(&mut self, org_id: &OrgId, required: bool) -> Result<()> {
        sqlx::query("UPDATE orgs SET require_mfa = $1 WHERE id = $2")
            .bind(i64::from(required))
            .bind(org_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Sets how long the organization's sessions live: idle and absolute, in seconds.
    pub async fn set_session_policy(
        &mut self,
        org_id: &OrgId,
        idle: i64,
        absolute: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE orgs SET session_idle_secs = $1, session_absolute_secs = $2 WHERE id = $3",
        )
        .bind(idle)
        .bind(absolute)
        .bind(org_id.as_str())
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
