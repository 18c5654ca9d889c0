//! What a person's data export reads: their keys across organizations, and the audit events
//! about them.

use strongroom_domain::{OrgId, UserId};

use crate::audit::event;
use crate::keys::{KEY_COLUMNS, api_key};
use crate::{ApiKeyRow, AuditEventRow, Result, Store};

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
            format!(" OR actor IN ({placeholders})")
        };
        let sql = format!(
            "SELECT org_id, seq, at, actor, action, target, ip, detail, prev_hash, hash \
             FROM audit_events WHERE org_id = $1 AND seq > $2 AND (target = $3{by}) \
             ORDER BY seq LIMIT $4"
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
