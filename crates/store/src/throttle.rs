//! Brute-force counters: failed login checks by scope, addresses users signed in from, and
//! spent captcha challenges. Policy (thresholds, windows) lives in the service.
//!
//! Scopes and addresses name people (`acct:<email>`, `ip:<addr>`): only their blind indexes are
//! stored. Nothing reads them back; they are only counted and matched.

use strongroom_domain::{Timestamp, UserId};

use crate::seal::{FAILURE_SCOPE, SUCCESS_IP};
use crate::{Result, Store};

impl Store {
    /// Failed checks of `kind` in `scope` since `since`.
    pub async fn failures_since(&self, scope: &str, kind: &str, since: Timestamp) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_failures WHERE scope = $1 AND kind = $2 AND at > $3",
        )
        .bind(self.seal().index(FAILURE_SCOPE, "", scope))
        .bind(kind)
        .bind(since.millis())
        .fetch_one(self.pool())
        .await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Records one failed check in each scope.
    pub async fn record_failure(&self, scopes: &[String], kind: &str, at: Timestamp) -> Result<()> {
        let mut tx = self.begin().await?;
        for scope in scopes {
            sqlx::query("INSERT INTO login_failures (scope, kind, at) VALUES ($1, $2, $3)")
                .bind(self.seal().index(FAILURE_SCOPE, "", scope))
                .bind(kind)
                .bind(at.millis())
                .execute(tx.conn())
                .await?;
        }
        tx.commit().await
    }

    /// Forgets the failures of a scope (after a success from the same account and address).
    pub async fn clear_failures(&self, scope: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE scope = $1")
            .bind(self.seal().index(FAILURE_SCOPE, "", scope))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records a successful sign-in from an address.
    pub async fn record_login_success(
        &self,
        user_id: &UserId,
        ip: &str,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO login_successes (user_id, ip, at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, ip) DO UPDATE SET at = excluded.at",
        )
        .bind(user_id.as_str())
        .bind(self.seal().index(SUCCESS_IP, user_id.as_str(), ip))
        .bind(at.millis())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether the user signed in from this address since `since`.
    pub async fn known_address(
        &self,
        user_id: &UserId,
        ip: &str,
        since: Timestamp,
    ) -> Result<bool> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT at FROM login_successes WHERE user_id = $1 AND ip = $2")
                .bind(user_id.as_str())
                .bind(self.seal().index(SUCCESS_IP, user_id.as_str(), ip))
                .fetch_optional(self.pool())
                .await?;
        Ok(at.is_some_and(|t| t > since.millis()))
    }

    /// Marks a captcha challenge as used; `false` if it already was (a replay).
    pub async fn spend_challenge(&self, id: &str, expires_at: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO spent_challenges (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(expires_at.millis())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes failure records older than `before` and challenges that have expired.
    pub async fn prune_login_records(&self, before: Timestamp, now: Timestamp) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(before.millis())
            .execute(self.pool())
            .await?;
        sqlx::query("DELETE FROM spent_challenges WHERE expires_at < $1")
            .bind(now.millis())
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
