//! Key material the database holds: API key hashes, wrapped KEKs, and each blob's wrapped data key.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{
    ApiKeyId, BlobId, Name, OrgId, PermissionSet, RoleRef, SpaceId, Timestamp, UserId,
};

use crate::seal::{KEY_LAST_IP, KEY_NAME, ROLE_NAME, Seal};
use crate::tenancy::{SPACE_COLUMNS, space};
use crate::{Page, Result, SpaceRow, Store, StoreError, Tx, conflict, parsed};

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
    pub role: RoleRef,
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
    pub member_role: Option<RoleRef>,
    /// The stored keyed hash of the secret, for the constant-time comparison.
    pub secret_hash: Vec<u8>,
    /// The keyed hash of the secret a rotation replaced, if one is still in its grace period
    /// (or was, until `previous_valid_until`).
    pub previous_secret_hash: Option<Vec<u8>>,
    /// Until when the previous secret works.
    pub previous_valid_until: Option<Timestamp>,
}

/// Everything authorizing an API-key request needs but the owner's space grants, read in one
/// statement: the key, its space limit, its owner's membership, the permissions of custom roles
/// either names, the organization's MFA requirement and whether the owner has a second factor.
#[derive(Debug, Clone)]
pub struct KeyPrincipalRow {
    /// The key, with its secret hashes and owner's role, as [`Store::principal_by_key_hash`]
    /// returns it.
    pub found: PrincipalRow,
    /// The spaces the key is limited to (`None`: every space).
    pub spaces: Option<Vec<SpaceId>>,
    /// The key's role, when it is a custom role: its name and permissions (`None` also when
    /// the role was deleted).
    pub key_custom_role: Option<(String, PermissionSet)>,
    /// The owner's membership role, when it is a custom role: its name and permissions.
    pub member_custom_role: Option<(String, PermissionSet)>,
    /// The organization requires a second factor of every member.
    pub org_requires_mfa: bool,
    /// The owner has an active second factor.
    pub owner_has_mfa: bool,
    /// The owner holds at least one space grant (only then are the grants worth reading).
    pub owner_has_grants: bool,
    /// The database's authorization epoch as this row was read (see [`Store::authz_epoch`]).
    pub authz_epoch: i64,
}

/// A space grant with the permissions of its role when that is a custom role.
#[derive(Debug, Clone)]
pub struct GrantAccessRow {
    /// The space.
    pub space_id: SpaceId,
    /// The role granted there.
    pub role: RoleRef,
    /// The custom role's permissions (`None` for a built-in role, or a deleted custom role).
    pub custom_permissions: Option<PermissionSet>,
}

/// The custom role joined as `name`/`perms` whose id is in the column `role` (its name is
/// sealed, bound to that id).
fn custom_role_of(
    seal: &Seal,
    row: &AnyRow,
    role: &str,
    name: &str,
    perms: &str,
) -> Result<Option<(String, PermissionSet)>> {
    let name: Option<String> = row.try_get(name)?;
    let perms: Option<String> = row.try_get(perms)?;
    match (name, perms) {
        (Some(n), Some(p)) => {
            let role: String = row.try_get(role)?;
            let n = seal.open(ROLE_NAME, &role, &n)?;
            let set = PermissionSet::from_stored(&p).map_err(|detail| StoreError::Corrupt {
                table: "roles",
                detail,
            })?;
            Ok(Some((n, set)))
        }
        _ => Ok(None),
    }
}

/// An API key with what its owners may see about it: never its secret or the secret's hash.
#[derive(Debug, Clone)]
pub struct ApiKeyDetails {
    /// The key.
    pub key: ApiKeyRow,
    /// The spaces it is limited to; `None`: every space of its organization.
    pub spaces: Option<Vec<SpaceId>>,
    /// When it was last used (recorded at most about once a minute).
    pub last_used_at: Option<Timestamp>,
    /// The client address of that use.
    pub last_used_ip: Option<String>,
    /// Until when the secret replaced by the last rotation still works, if it does.
    pub previous_valid_until: Option<Timestamp>,
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
    /// The region whose backends hold it.
    pub region: String,
}

fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(row
        .try_get::<Option<i64>, _>(col)?
        .map(Timestamp::from_millis))
}

pub(crate) fn api_key(s: &Seal, row: &AnyRow) -> Result<ApiKeyRow> {
    let user: Option<String> = row.try_get("user_id")?;
    let id = parsed(row, "api_keys", "id", ApiKeyId::parse)?;
    Ok(ApiKeyRow {
        name: s.parsed(row, KEY_NAME, id.as_str(), Name::parse)?,
        id,
        org_id: parsed(row, "api_keys", "org_id", OrgId::parse)?,
        user_id: user
            .map(|u| UserId::parse(&u))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                table: "api_keys",
                detail: e.to_string(),
            })?,
        role: crate::role_ref(&row.try_get::<String, _>("role")?, "api_keys")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

/// Reads the `spaces` column: NULL is every space, otherwise ids separated by single spaces
/// (an empty string, which nothing writes, would be no space at all: never every space).
fn spaces(row: &AnyRow) -> Result<Option<Vec<SpaceId>>> {
    let raw: Option<String> = row.try_get("spaces")?;
    raw.map(|raw| {
        raw.split_whitespace()
            .map(|id| {
                SpaceId::parse(id).map_err(|e| StoreError::Corrupt {
                    table: "api_keys",
                    detail: format!("spaces: {e}"),
                })
            })
            .collect()
    })
    .transpose()
}

fn details(s: &Seal, row: &AnyRow) -> Result<ApiKeyDetails> {
    let key = api_key(s, row)?;
    Ok(ApiKeyDetails {
        last_used_ip: s.column_opt(row, KEY_LAST_IP, key.id.as_str())?,
        key,
        spaces: spaces(row)?,
        last_used_at: opt_ts(row, "last_used_at")?,
        previous_valid_until: opt_ts(row, "previous_valid_until")?,
    })
}

fn version(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt {
        table: "keks",
        detail: format!("version {v}"),
    })
}

pub(crate) fn blob(row: &AnyRow) -> Result<BlobRow> {
    blob_as(row, "")
}

/// A blob row whose columns were selected under names starting with `prefix` (in a join).
pub(crate) fn blob_as(row: &AnyRow, prefix: &str) -> Result<BlobRow> {
    let col = |name: &str| format!("{prefix}{name}");
    let size: i64 = row.try_get(col("size").as_str())?;
    let stored: i64 = row.try_get(col("stored_size").as_str())?;
    Ok(BlobRow {
        id: parsed(row, "blobs", &col("id"), BlobId::parse)?,
        org_id: parsed(row, "blobs", &col("org_id"), OrgId::parse)?,
        kek_version: version(row.try_get(col("kek_version").as_str())?)?,
        wrapped_dek: row.try_get(col("wrapped_dek").as_str())?,
        size: crate::size(size, "blobs")?,
        stored_size: crate::size(stored, "blobs")?,
        created_at: Timestamp::from_millis(row.try_get(col("created_at").as_str())?),
        region: row.try_get(col("region").as_str())?,
    })
}

pub(crate) const KEY_COLUMNS: &str = "k.id, k.org_id, k.user_id, k.name, k.role, k.created_at, \
                           k.expires_at, k.revoked_at";
const DETAIL_COLUMNS: &str = "k.spaces, k.last_used_at, k.last_used_ip, k.previous_valid_until";
pub(crate) const BLOB_COLUMNS: &str =
    "id, org_id, kek_version, wrapped_dek, size, stored_size, created_at, region";

impl Store {
    /// Resolves an API key by the keyed hash of its current secret or of the secret its last
    /// rotation replaced (the caller decides whether that one is still in its grace period).
    pub async fn principal_by_key_hash(&self, hash: &[u8]) -> Result<Option<PrincipalRow>> {
        Ok(self.key_principal(hash).await?.map(|r| r.found))
    }

    /// [`Store::principal_by_key_hash`] and everything else a request needs to authorize an
    /// API key but the owner's grants, in one round trip.
    pub async fn key_principal(&self, hash: &[u8]) -> Result<Option<KeyPrincipalRow>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, k.spaces, k.secret_hash, k.previous_secret_hash, \
             k.previous_valid_until, m.role AS member_role, \
             kr.name AS key_role_name, kr.permissions AS key_role_perms, \
             mr.name AS member_role_name, mr.permissions AS member_role_perms, \
             o.require_mfa AS org_requires_mfa, COALESCE(t.active, 0) AS owner_has_mfa, \
             CASE WHEN EXISTS (SELECT 1 FROM space_grants g \
                 WHERE g.org_id = k.org_id AND g.user_id = k.user_id) THEN 1 ELSE 0 END \
                 AS owner_has_grants, \
             (SELECT n FROM authz_epoch WHERE id = 1) AS authz_epoch \
             FROM api_keys k JOIN orgs o ON o.id = k.org_id \
             LEFT JOIN memberships m ON m.org_id = k.org_id AND m.user_id = k.user_id \
             LEFT JOIN roles kr ON kr.id = k.role AND kr.org_id = k.org_id \
             LEFT JOIN roles mr ON mr.id = m.role AND mr.org_id = k.org_id \
             LEFT JOIN user_totp t ON t.user_id = k.user_id \
             WHERE k.secret_hash = $1 OR k.previous_secret_hash = $1"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let member_role: Option<String> = row.try_get("member_role")?;
        let flag = |col: &str| -> Result<bool> {
            Ok(row.try_get::<Option<i64>, _>(col)?.unwrap_or(0) != 0)
        };
        Ok(Some(KeyPrincipalRow {
            found: PrincipalRow {
                key: api_key(self.seal(), &row)?,
                member_role: member_role
                    .map(|r| crate::role_ref(&r, "memberships"))
                    .transpose()?,
                secret_hash: row.try_get("secret_hash")?,
                previous_secret_hash: row.try_get("previous_secret_hash")?,
                previous_valid_until: opt_ts(&row, "previous_valid_until")?,
            },
            spaces: spaces(&row)?,
            key_custom_role: custom_role_of(
                self.seal(),
                &row,
                "role",
                "key_role_name",
                "key_role_perms",
            )?,
            member_custom_role: custom_role_of(
                self.seal(),
                &row,
                "member_role",
                "member_role_name",
                "member_role_perms",
            )?,
            org_requires_mfa: flag("org_requires_mfa")?,
            owner_has_mfa: flag("owner_has_mfa")?,
            owner_has_grants: flag("owner_has_grants")?,
            authz_epoch: row.try_get("authz_epoch")?,
        }))
    }

    /// A member's space grants with their custom roles' permissions, in one round trip.
    pub async fn grant_access(
        &self,
        org_id: &OrgId,
        user_id: &UserId,
    ) -> Result<Vec<GrantAccessRow>> {
        let rows = sqlx::query(
            "SELECT g.space_id, g.role, r.permissions FROM space_grants g \
             LEFT JOIN roles r ON r.id = g.role AND r.org_id = g.org_id \
             WHERE g.org_id = $1 AND g.user_id = $2 ORDER BY g.space_id",
        )
        .bind(org_id.as_str())
        .bind(user_id.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let perms: Option<String> = row.try_get("permissions")?;
                Ok(GrantAccessRow {
                    space_id: crate::parsed(row, "space_grants", "space_id", SpaceId::parse)?,
                    role: crate::role_ref(&row.try_get::<String, _>("role")?, "space_grants")?,
                    custom_permissions: perms
                        .map(|p| {
                            PermissionSet::from_stored(&p).map_err(|detail| StoreError::Corrupt {
                                table: "roles",
                                detail,
                            })
                        })
                        .transpose()?,
                })
            })
            .collect()
    }

    /// One API key of `org_id`, with its details.
    pub async fn api_key_details(
        &self,
        org_id: &OrgId,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKeyDetails>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, {DETAIL_COLUMNS} FROM api_keys k WHERE k.id = $1 AND k.org_id = $2"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| details(self.seal(), &r)).transpose()
    }

    /// The organization's API keys with their details, in creation order.
    pub async fn api_key_details_page(
        &self,
        org_id: &OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<ApiKeyDetails>> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, {DETAIL_COLUMNS} FROM api_keys k \
             WHERE k.org_id = $1 AND k.id > $2 ORDER BY k.id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(self.pool())
            .await?;
        let items = rows
            .iter()
            .map(|r| details(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |k| k.key.id.to_string()))
    }

    /// The spaces of `org_id` among `ids`, in creation order, after the id `after` (the space
    /// list of a space-limited key; the service keeps such lists short).
    pub async fn spaces_among(
        &self,
        org_id: &OrgId,
        ids: &[SpaceId],
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<SpaceRow>> {
        if ids.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        // Only numbered placeholders are spliced into the statement, never a value.
        let placeholders = (4..4 + ids.len())
            .map(|n| format!("${n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {SPACE_COLUMNS} FROM spaces \
             WHERE org_id = $1 AND id > $2 AND id IN ({placeholders}) ORDER BY id LIMIT $3"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1);
        for id in ids {
            query = query.bind(id.as_str());
        }
        let rows = query.fetch_all(self.pool()).await?;
        let items = rows
            .iter()
            .map(|r| space(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |s| s.id.to_string()))
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
        let items = rows
            .iter()
            .map(|r| api_key(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |k| k.id.to_string()))
    }

    /// Records when and from where a key was last used. Best effort, outside any transaction.
    pub async fn touch_api_key(&self, id: &ApiKeyId, at: Timestamp, ip: &str) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1, last_used_ip = $2 WHERE id = $3")
            .bind(at.millis())
            .bind(self.seal().seal(KEY_LAST_IP, id.as_str(), ip))
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

    /// Up to `limit` blobs with ids after `after` (from the first when `None`), by id: every
    /// stored object with a data key, originals and renditions, for the scrub.
    pub async fn blobs_after(&self, after: Option<&str>, limit: u32) -> Result<Vec<BlobRow>> {
        let sql = format!("SELECT {BLOB_COLUMNS} FROM blobs WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(blob).collect()
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
        let name = self
            .seal()
            .seal(KEY_NAME, row.id.as_str(), row.name.as_str());
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, user_id, name, role, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(row.id.as_str())
        .bind(row.org_id.as_str())
        .bind(row.user_id.as_ref().map(|u| u.as_str()))
        .bind(name)
        .bind(row.role.to_stored())
        .bind(secret_hash)
        .bind(row.created_at.millis())
        .bind(row.expires_at.map(Timestamp::millis))
        .execute(self.conn())
        .await
        .map_err(conflict("an API key with this secret"))?;
        Ok(())
    }

    /// Limits a key to some spaces of its organization (the caller has checked they are). Set
    /// once, in the transaction that creates the key: a limit never changes afterwards.
    pub async fn limit_api_key_spaces(&mut self, id: &ApiKeyId, spaces: &[SpaceId]) -> Result<()> {
        let joined = spaces
            .iter()
            .map(SpaceId::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        sqlx::query("UPDATE api_keys SET spaces = $1 WHERE id = $2 AND spaces IS NULL")
            .bind(joined)
            .bind(id.as_str())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Gives a live key of `org_id` a new secret. The current secret becomes the previous one,
    /// valid until `previous_valid_until` (`None`: it stops at once); a secret replaced by an
    /// earlier rotation stops working now. Returns whether a live key was rotated.
    pub async fn rotate_api_key(
        &mut self,
        org_id: &OrgId,
        id: &ApiKeyId,
        new_hash: &[u8],
        previous_valid_until: Option<Timestamp>,
    ) -> Result<bool> {
        let sql = if previous_valid_until.is_some() {
            "UPDATE api_keys SET previous_secret_hash = secret_hash, secret_hash = $1, \
             previous_valid_until = $2 WHERE id = $3 AND org_id = $4 AND revoked_at IS NULL"
        } else {
            "UPDATE api_keys SET previous_secret_hash = NULL, secret_hash = $1, \
             previous_valid_until = $2 WHERE id = $3 AND org_id = $4 AND revoked_at IS NULL"
        };
        let done = sqlx::query(sql)
            .bind(new_hash)
            .bind(previous_valid_until.map(Timestamp::millis))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .execute(self.conn())
            .await
            .map_err(conflict("an API key with this secret"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes a key of `org_id`, its current and any previous secret alike; returns whether a
    /// live key was revoked.
    pub async fn revoke_api_key(
        &mut self,
        org_id: &OrgId,
        id: &ApiKeyId,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1, previous_secret_hash = NULL, \
             previous_valid_until = NULL WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
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
            "INSERT INTO blobs (id, org_id, kek_version, wrapped_dek, size, stored_size, created_at, \
             region) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(row.id.as_str())
        .bind(row.org_id.as_str())
        .bind(i64::from(row.kek_version))
        .bind(row.wrapped_dek.as_slice())
        .bind(i64::try_from(row.size).unwrap_or(i64::MAX))
        .bind(i64::try_from(row.stored_size).unwrap_or(i64::MAX))
        .bind(row.created_at.millis())
        .bind(row.region.as_str())
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
        if done.rows_affected() == 1 {
            crate::backup::log_shred(self.conn(), id.as_str()).await?;
        }
        Ok(done.rows_affected() == 1)
    }
}
