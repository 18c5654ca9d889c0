//! Key material the database holds: API key hashes, wrapped KEKs, and each blob's wrapped data key.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{ApiKeyId, BlobId, Name, OrgId, Role, Timestamp, UserId};

use crate::{Page, Result, Store, StoreError, Tx, conflict, parsed};

/// An API key's stored half.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    /// Its id.
    pub id: ApiKeyId,
    /// The organization it acts in.
    pub org_id: OrgId,
    /// The user it acts for, if any (bootstrap and CLI keys belong to a user).
    pub user_id: Option<UserId>,
    /// A label.
    pub name: Name,
    /// The role it was created with; the owner's current role caps it.
    pub role: Role,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// What an API key resolves to: the key and, if it belongs to a user, that user's current role.
#[derive(Debug, Clone)]
pub struct PrincipalRow {
    /// The key.
    pub key: ApiKeyRow,
    /// The owning user's current role in the key's organization (`None`: no longer a member).
    pub member_role: Option<Role>,
    /// The stored keyed hash of the secret, for the constant-time comparison.
    pub secret_hash: Vec<u8>,
}

/// A key-encryption key, wrapped by the root key.
#[derive(Clone)]
pub struct KekRow {
    /// Its version; the highest is active.
    pub version: u32,
    /// The wrapped key.
    pub wrapped: Vec<u8>,
}

/// A blob's stored key and sizes.
#[derive(Clone)]
pub struct BlobRow {
    /// Its id (also the object id bound into its encryption).
    pub id: BlobId,
    /// The organization owning it.
    pub org_id: OrgId,
    /// The KEK version that wraps its data key.
    pub kek_version: u32,
    /// Its data key, wrapped.
    pub wrapped_dek: Vec<u8>,
    /// Plaintext size.
    pub size: u64,
    /// Size of the stored (encrypted) object.
    pub stored_size: u64,
    /// When it was created.
    pub created_at: Timestamp,
}

fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(row
        .try_get::<Option<i64>, _>(col)?
        .map(Timestamp::from_millis))
}

fn role(raw: &str, table: &'static str) -> Result<Role> {
    raw.parse()
        .map_err(|detail| StoreError::Corrupt { table, detail })
}

fn api_key(row: &AnyRow) -> Result<ApiKeyRow> {
    let user: Option<String> = row.try_get("user_id")?;
    Ok(ApiKeyRow {
        id: parsed(row, "api_keys", "id", ApiKeyId::parse)?,
        org_id: parsed(row, "api_keys", "org_id", OrgId::parse)?,
        user_id: user
            .map(|u| UserId::parse(&u))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                table: "api_keys",
                detail: e.to_string(),
            })?,
        name: parsed(row, "api_keys", "name", Name::parse)?,
        role: role(&row.try_get::<String, _>("role")?, "api_keys")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

fn version(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt {
        table: "keks",
        detail: format!("version {v}"),
    })
}

fn blob(row: &AnyRow) -> Result<BlobRow> {
    let size: i64 = row.try_get("size")?;
    let stored: i64 = row.try_get("stored_size")?;
    Ok(BlobRow {
        id: parsed(row, "blobs", "id", BlobId::parse)?,
        org_id: parsed(row, "blobs", "org_id", OrgId::parse)?,
        kek_version: version(row.try_get("kek_version")?)?,
        wrapped_dek: row.try_get("wrapped_dek")?,
        size: crate::size(size, "blobs")?,
        stored_size: crate::size(stored, "blobs")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

const KEY_COLUMNS: &str = "k.id, k.org_id, k.user_id, k.name, k.role, k.created_at, \
                           k.expires_at, k.revoked_at";
const BLOB_COLUMNS: &str = "id, org_id, kek_version, wrapped_dek, size, stored_size, created_at";

impl Store {
    /// Resolves an API key by the keyed hash of its secret.
    pub async fn principal_by_key_hash(&self, hash: &[u8]) -> Result<Option<PrincipalRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, k.secret_hash, m.role AS member_role FROM api_keys k \
             LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.user_id \
             WHERE k.secret_hash = $1"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let member_role: Option<String> = row.try_get("member_role")?;
        Ok(Some(PrincipalRow {
            key: api_key(&row)?,
            member_role: member_role.map(|r| role(&r, "memberships")).transpose()?,
            secret_hash: row.try_get("secret_hash")?,
        }))
    }

    /// The organization's API keys, in creation order.
    pub async fn api_keys(
        &self,
        org_id: &OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApiKeyRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.org_id = $1 AND k.id > $2 \
             ORDER BY k.id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(self.pool())
            .await?;
        let items = rows.iter().map(api_key).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |k| k.id.to_string()))
    }

    /// Records when and from where a key was last used. Best effort, outside any transaction.
    pub async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp, ip: &str) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1, last_used_ip = $2 WHERE id = $3")
            .bind(at.millis())
            .bind(ip)
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every KEK, oldest first.
    pub async fn keks(&self) -> Result<Vec<KekRow>> {
        let rows = sqlx::query("SELECT version, wrapped FROM keks ORDER BY version")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(KekRow {
                    version: version(r.try_get("version")?)?,
                    wrapped: r.try_get("wrapped")?,
                })
            })
            .collect()
    }

    /// How many blobs each KEK version wraps.
    pub async fn blob_counts_by_kek(&self) -> Result<Vec<(u32, u64)>> {
        let rows = sqlx::query(
            "SELECT kek_version, COUNT(*) AS n FROM blobs GROUP BY kek_version ORDER BY kek_version",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("n")?;
                Ok((
                    version(r.try_get("kek_version")?)?,
                    u64::try_from(n).unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// The blob with this id.
    pub async fn blob(&self, id: &BlobId) -> Result<Option<BlobRow>> {
        let sql = format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(blob).transpose()
    }

    /// Whether a blob row exists (the orphan sweep asks this of every stored object).
    pub async fn blob_exists(&self, id: &str) -> Result<bool> {
        let n: Option<String> = sqlx::query_scalar("SELECT id FROM blobs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(n.is_some())
    }

    /// Up to `limit` blobs whose data key is wrapped by a KEK older than `active`, by id.
    pub async fn blobs_not_under(&self, active: u32, limit: u32) -> Result<Vec<BlobRow>> {
        let sql =
            format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE kek_version < $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(active))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(blob).collect()
    }
}

impl Tx {
    /// Stores a new API key.
    pub async fn insert_api_key(&mut self, row: &ApiKeyRow, secret_hash: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, user_id, name, role, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(row.id.as_str())
        .bind(row.org_id.as_str())
        .bind(row.user_id.as_ref().map(|u| u.as_str()))
        .bind(row.name.as_str())
        .bind(row.role.as_str())
        .bind(secret_hash)
        .bind(row.created_at.millis())
        .bind(row.expires_at.map(Timestamp::millis))
        .execute(self.conn())
        .await
        .map_err(conflict("an API key with this secret"))?;
        Ok(())
    }

    /// Revokes a key of `org_id`; returns whether a live key was revoked.
    pub async fn revoke_api_key(
        &mut self,
        org_id: &OrgId,
        id: &ApiKeyId,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
        )
        .bind(at.millis())
        .bind(id.as_str())
        .bind(org_id.as_str())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a new KEK version.
    pub async fn insert_kek(&mut self, row: &KekRow, at: Timestamp) -> Result<()> {
        sqlx::query("INSERT INTO keks (version, wrapped, created_at) VALUES ($1, $2, $3)")
            .bind(i64::from(row.version))
            .bind(row.wrapped.as_slice())
            .bind(at.millis())
            .execute(self.conn())
            .await
            .map_err(conflict("this KEK version"))?;
        Ok(())
    }

    /// Deletes KEK versions older than `active` that no blob uses any more; returns them.
    pub async fn retire_unused_keks(&mut self, active: u32) -> Result<Vec<u32>> {
        let rows = sqlx::query(
            "DELETE FROM keks WHERE version < $1 \
             AND NOT EXISTS (SELECT 1 FROM blobs WHERE blobs.kek_version = keks.version) \
             RETURNING version",
        )
        .bind(i64::from(active))
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| version(r.try_get("version")?))
            .collect()
    }

    /// Records a blob that is already durable in storage.
    pub async fn insert_blob(&mut self, row: &BlobRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO blobs (id, org_id, kek_version, wrapped_dek, size, stored_size, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(row.id.as_str())
        .bind(row.org_id.as_str())
        .bind(i64::from(row.kek_version))
        .bind(row.wrapped_dek.as_slice())
        .bind(i64::try_from(row.size).unwrap_or(i64::MAX))
        .bind(i64::try_from(row.stored_size).unwrap_or(i64::MAX))
        .bind(row.created_at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Replaces a blob's wrapped data key, only if it is still wrapped by `from_version`
    /// (so a concurrent rotation never loses a write). Returns whether it changed.
    pub async fn rewrap_blob(
        &mut self,
        id: &BlobId,
        from_version: u32,
        to_version: u32,
        wrapped: &[u8],
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE blobs SET kek_version = $1, wrapped_dek = $2 WHERE id = $3 AND kek_version = $4",
        )
        .bind(i64::from(to_version))
        .bind(wrapped)
        .bind(id.as_str())
        .bind(i64::from(from_version))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a blob row: its data key is gone, every copy of the blob is unreadable.
    pub async fn delete_blob(&mut self, id: &BlobId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM blobs WHERE id = $1")
            .bind(id.as_str())
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
