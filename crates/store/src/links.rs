//! Download links: a keyed hash of each token, the asset it opens, and its limits (expiry,
//! single use, a client address, revocation).
//!
//! Whether a download may go ahead is decided by one conditional `UPDATE` ([`Tx::use_link`]):
//! on SQLite writers are serialized by `BEGIN IMMEDIATE`, on PostgreSQL the second of two
//! concurrent updates of a row waits for the first and re-checks the `WHERE` clause, so of any
//! number of concurrent uses of a single-use link exactly one changes the row.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{AssetId, LinkId, OrgId, Timestamp};

use crate::seal::{LINK_IP, Seal};
use crate::{Page, Result, Store, Tx, conflict, parsed};

/// A link as stored (never its token: only the token's keyed hash is kept).
#[derive(Debug, Clone)]
pub struct LinkRow {
    /// Its id.
    pub id: LinkId,
    /// The organization of its asset.
    pub org_id: OrgId,
    /// The asset it downloads.
    pub asset_id: AssetId,
    /// Who made it, as the audit trail names actors.
    pub created_by: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Whether the first download consumes it.
    pub single_use: bool,
    /// The only client address it answers (canonical form), if bound to one.
    pub ip: Option<String>,
    /// The image rendition it serves instead of the original, if any.
    pub rendition: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When a single-use link was consumed.
    pub used_at: Option<Timestamp>,
    /// How many downloads it has served.
    pub use_count: u64,
    /// When it last served a download.
    pub last_used_at: Option<Timestamp>,
}

const COLUMNS: &str = "id, org_id, asset_id, created_by, created_at, expires_at, single_use, ip, \
                       revoked_at, used_at, use_count, last_used_at, rendition";

fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(row
        .try_get::<Option<i64>, _>(col)?
        .map(Timestamp::from_millis))
}

fn link(s: &Seal, row: &AnyRow) -> Result<LinkRow> {
    let single_use: i64 = row.try_get("single_use")?;
    let id = parsed(row, "links", "id", LinkId::parse)?;
    Ok(LinkRow {
        ip: s.column_opt(row, LINK_IP, id.as_str())?,
        id,
        org_id: parsed(row, "links", "org_id", OrgId::parse)?,
        asset_id: parsed(row, "links", "asset_id", AssetId::parse)?,
        created_by: row.try_get("created_by")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        single_use: single_use != 0,
        rendition: row.try_get("rendition")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        used_at: opt_ts(row, "used_at")?,
        use_count: crate::size(row.try_get("use_count")?, "links")?,
        last_used_at: opt_ts(row, "last_used_at")?,
    })
}

impl Store {
    /// Resolves a link by the keyed hash of its token, with the stored hash for the
    /// constant-time comparison. Revoked, expired and used-up links are returned too: the
    /// caller decides.
    pub async fn link_by_token_hash(&self, hash: &[u8]) -> Result<Option<(LinkRow, Vec<u8>)>> {
        let sql = format!("SELECT {COLUMNS}, token_hash FROM links WHERE token_hash = $1");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((link(self.seal(), &row)?, row.try_get("token_hash")?)))
    }

    /// The link with this id, only if it belongs to `org_id`.
    pub async fn link(&self, org_id: &OrgId, id: &LinkId) -> Result<Option<LinkRow>> {
        let sql = format!("SELECT {COLUMNS} FROM links WHERE id = $1 AND org_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| link(self.seal(), &r)).transpose()
    }

    /// An asset's links of `org_id`, in creation order, after the id `after`.
    pub async fn links_of_asset(
        &self,
        org_id: &OrgId,
        asset_id: &AssetId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<LinkRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM links WHERE asset_id = $1 AND org_id = $2 AND id > $3 \
             ORDER BY id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(asset_id.as_str())
            .bind(org_id.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(self.pool())
            .await?;
        let items = rows
            .iter()
            .map(|r| link(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |l| l.id.to_string()))
    }
}

impl Tx {
    /// Stores a new link (its asset must exist).
    pub async fn insert_link(&mut self, row: &LinkRow, token_hash: &[u8]) -> Result<()> {
        let sql = format!(
            "INSERT INTO links ({COLUMNS}, token_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        );
        let ip = self
            .seal()
            .seal_opt(LINK_IP, row.id.as_str(), row.ip.as_deref());
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(row.id.as_str())
            .bind(row.org_id.as_str())
            .bind(row.asset_id.as_str())
            .bind(row.created_by.as_str())
            .bind(row.created_at.millis())
            .bind(row.expires_at.millis())
            .bind(i64::from(row.single_use))
            .bind(ip)
            .bind(row.revoked_at.map(Timestamp::millis))
            .bind(row.used_at.map(Timestamp::millis))
            .bind(i64::try_from(row.use_count).unwrap_or(i64::MAX))
            .bind(row.last_used_at.map(Timestamp::millis))
            .bind(row.rendition.as_deref())
            .bind(token_hash)
            .execute(self.conn())
            .await
            .map_err(conflict("a link with this token"))?;
        Ok(())
    }

    /// Records one download through a link, only if the link may still serve one at `at`: not
    /// revoked, not expired, and, if single-use, not used yet (a single-use link is consumed
    /// here). Returns whether it may; the row count decides, so concurrent uses cannot both
    /// consume a single-use link.
    pub async fn use_link(&mut self, id: &LinkId, at: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE links SET use_count = use_count + 1, last_used_at = $1, \
             used_at = CASE WHEN single_use = 1 THEN $1 ELSE used_at END \
             WHERE id = $2 AND revoked_at IS NULL AND expires_at > $1 \
             AND (single_use = 0 OR used_at IS NULL)",
        )
        .bind(at.millis())
        .bind(id.as_str())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes a link of `org_id`; returns whether a link not yet revoked was.
    pub async fn revoke_link(
        &mut self,
        org_id: &OrgId,
        id: &LinkId,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE links SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(id.as_str())
        .bind(org_id.as_str())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
