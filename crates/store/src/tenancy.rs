//! Organizations, users, memberships, spaces and assets.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{
    AssetId, BlobId, Email, Filename, Name, OrgId, RoleRef, SpaceId, Timestamp, UserId,
};

use crate::seal::{ASSET_FILENAME, ORG_NAME, SPACE_NAME, Seal, USER_EMAIL};
use crate::{BlobRow, Page, Result, Store, Tx, conflict, parsed};

/// An organization.
#[derive(Debug, Clone)]
pub struct OrgRow {
    /// Its id.
    pub id: OrgId,
    /// Its display name (unique).
    pub name: Name,
    /// When it was created.
    pub created_at: Timestamp,
    /// The data-residency region its content is stored in.
    pub region: String,
}

/// A user.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// Its id.
    pub id: UserId,
    /// Its email address (unique).
    pub email: Email,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A space.
#[derive(Debug, Clone)]
pub struct SpaceRow {
    /// Its id.
    pub id: SpaceId,
    /// The organization it belongs to.
    pub org_id: OrgId,
    /// Its display name.
    pub name: Name,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its assets go to the trash this many days after their upload; `None`: kept until
    /// deleted. Set by `Tx::set_space_retention`, never by inserting the row.
    pub retention_days: Option<u32>,
}

/// A live asset with its blob row, as [`Store::asset_with_blob`] reads them.
#[derive(Clone)]
pub struct AssetWithBlob {
    pub asset: AssetRow,
    pub blob: BlobRow,
    /// The asset epoch as these rows were read: moved by triggers (migration 20), in the
    /// changing transaction, by every change to an asset or a blob row, whichever process made
    /// it. A node keeping these rows in memory forgets them once it reads another value.
    pub asset_epoch: i64,
}

/// An asset's metadata.
#[derive(Debug, Clone)]
pub struct AssetRow {
    /// Its id.
    pub id: AssetId,
    /// The organization it belongs to.
    pub org_id: OrgId,
    /// The space it belongs to.
    pub space_id: SpaceId,
    /// The encrypted blob holding its bytes.
    pub blob_id: BlobId,
    /// The file name given at upload.
    pub filename: Filename,
    /// The media type given at upload.
    pub content_type: String,
    /// Size in bytes of the plaintext.
    pub size: u64,
    /// Lower-case hex SHA-256 of the plaintext.
    pub sha256: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Where media processing stands (`processing`, `ready`, `failed`); `None`: the asset was
    /// never queued for processing, so it has no renditions. Read-only: set by
    /// `Tx::set_media_state`, never by inserting the row.
    pub media_status: Option<String>,
    /// When it was moved to the trash; `None`: it is live. Read-only: set by
    /// `Tx::trash_asset`, never by inserting the row.
    pub deleted_at: Option<Timestamp>,
}

fn org(s: &Seal, row: &AnyRow) -> Result<OrgRow> {
    let id = parsed(row, "orgs", "id", OrgId::parse)?;
    Ok(OrgRow {
        name: s.parsed(row, ORG_NAME, id.as_str(), Name::parse)?,
        id,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        region: row.try_get("region")?,
    })
}

fn user(s: &Seal, row: &AnyRow) -> Result<UserRow> {
    let id = parsed(row, "users", "id", UserId::parse)?;
    Ok(UserRow {
        email: s.parsed(row, USER_EMAIL, id.as_str(), Email::parse)?,
        id,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

pub(crate) fn space(s: &Seal, row: &AnyRow) -> Result<SpaceRow> {
    let retention: Option<i64> = row.try_get("retention_days")?;
    let id = parsed(row, "spaces", "id", SpaceId::parse)?;
    Ok(SpaceRow {
        name: s.parsed(row, SPACE_NAME, id.as_str(), Name::parse)?,
        id,
        org_id: parsed(row, "spaces", "org_id", OrgId::parse)?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        retention_days: retention
            .map(|d| {
                u32::try_from(d).map_err(|_| crate::StoreError::Corrupt {
                    table: "spaces",
                    detail: format!("retention_days {d}"),
                })
            })
            .transpose()?,
    })
}

/// The columns `space` reads.
pub(crate) const SPACE_COLUMNS: &str = "id, org_id, name, created_at, retention_days";

pub(crate) fn asset(s: &Seal, row: &AnyRow) -> Result<AssetRow> {
    let size: i64 = row.try_get("size")?;
    let id = parsed(row, "assets", "id", AssetId::parse)?;
    Ok(AssetRow {
        filename: s.parsed(row, ASSET_FILENAME, id.as_str(), Filename::parse)?,
        id,
        org_id: parsed(row, "assets", "org_id", OrgId::parse)?,
        space_id: parsed(row, "assets", "space_id", SpaceId::parse)?,
        blob_id: parsed(row, "assets", "blob_id", BlobId::parse)?,
        content_type: row.try_get("content_type")?,
        size: crate::size(size, "assets")?,
        sha256: row.try_get("sha256")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        media_status: row.try_get("media_status")?,
        deleted_at: row
            .try_get::<Option<i64>, _>("deleted_at")?
            .map(Timestamp::from_millis),
    })
}

/// Which assets a lookup finds: live ones, those in a trash, or both.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AssetState {
    Live,
    Trashed,
    Any,
}

pub(crate) const ASSET_COLUMNS: &str = "id, org_id, space_id, blob_id, filename, content_type, \
     size, sha256, created_at, media_status, deleted_at";

impl Store {
    /// The organization with this id.
    pub async fn org(&self, id: &OrgId) -> Result<Option<OrgRow>> {
        let row = sqlx::query("SELECT id, name, created_at, region FROM orgs WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| org(self.seal(), &r)).transpose()
    }

    /// The organization with this name.
    pub async fn org_by_name(&self, name: &Name) -> Result<Option<OrgRow>> {
        let row =
            sqlx::query("SELECT id, name, created_at, region FROM orgs WHERE name_index = $1")
                .bind(self.seal().index(ORG_NAME, "", name.as_str()))
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| org(self.seal(), &r)).transpose()
    }

    /// Every organization id, for whole-database jobs (audit verification).
    pub async fn org_ids(&self) -> Result<Vec<OrgId>> {
        let rows = sqlx::query("SELECT id FROM orgs ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| parsed(r, "orgs", "id", OrgId::parse))
            .collect()
    }

    /// The user with this email address.
    pub async fn user_by_email(&self, email: &Email) -> Result<Option<UserRow>> {
        let row = sqlx::query("SELECT id, email, created_at FROM users WHERE email_index = $1")
            .bind(self.seal().index(USER_EMAIL, "", email.as_str()))
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| user(self.seal(), &r)).transpose()
    }

    /// The user's role in the organization, if a member.
    pub async fn membership(&self, org_id: &OrgId, user_id: &UserId) -> Result<Option<RoleRef>> {
        let role: Option<String> =
            sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
                .bind(org_id.as_str())
                .bind(user_id.as_str())
                .fetch_optional(self.pool())
                .await?;
        role.map(|r| crate::role_ref(&r, "memberships")).transpose()
    }

    /// The space with this id, only if it belongs to `org_id`.
    pub async fn space(&self, org_id: &OrgId, id: &SpaceId) -> Result<Option<SpaceRow>> {
        let sql = format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE id = $1 AND org_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| space(self.seal(), &r)).transpose()
    }

    /// The organization's spaces, in creation order, after the id `after`.
    pub async fn spaces(
        &self,
        org_id: &OrgId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<SpaceRow>> {
        let sql = format!(
            "SELECT {SPACE_COLUMNS} FROM spaces WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org_id.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(self.pool())
            .await?;
        let items = rows
            .iter()
            .map(|r| space(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |s| s.id.to_string()))
    }

    /// The live asset with this id (not in the trash), only if it belongs to `org_id`.
    pub async fn asset(&self, org_id: &OrgId, id: &AssetId) -> Result<Option<AssetRow>> {
        self.asset_where(org_id, id, AssetState::Live).await
    }

    /// The live asset with this id of `org_id` and its blob row (its data key), read together
    /// with the asset epoch: what a read of its content needs, in one round trip.
    pub async fn asset_with_blob(
        &self,
        org_id: &OrgId,
        id: &AssetId,
    ) -> Result<Option<AssetWithBlob>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let asset: Vec<String> = ASSET_COLUMNS
                .split(", ")
                .map(|c| format!("a.{c}"))
                .collect();
            format!(
                "SELECT {}, b.id AS b_id, b.org_id AS b_org_id, b.kek_version AS b_kek_version, \
                 b.wrapped_dek AS b_wrapped_dek, b.size AS b_size, \
                 b.stored_size AS b_stored_size, b.created_at AS b_created_at, \
                 b.region AS b_region, \
                 (SELECT n FROM authz_epoch WHERE id = 2) AS asset_epoch \
                 FROM assets a JOIN blobs b ON b.id = a.blob_id \
                 WHERE a.id = $1 AND a.org_id = $2 AND a.deleted_at IS NULL",
                asset.join(", ")
            )
        });
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(SQL.as_str()))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(AssetWithBlob {
            asset: asset(self.seal(), &row)?,
            blob: crate::keys::blob_as(&row, "b_")?,
            asset_epoch: row.try_get("asset_epoch")?,
        }))
    }

    /// The asset with this id of `org_id`, if it is in `state`.
    pub(crate) async fn asset_where(
        &self,
        org_id: &OrgId,
        id: &AssetId,
        state: AssetState,
    ) -> Result<Option<AssetRow>> {
        let condition = match state {
            AssetState::Live => " AND deleted_at IS NULL",
            AssetState::Trashed => " AND deleted_at IS NOT NULL",
            AssetState::Any => "",
        };
        let sql = const_format_asset(&format!("WHERE id = $1 AND org_id = $2{condition}"));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| asset(self.seal(), &r)).transpose()
    }

    /// The space's live assets, in creation order, after the id `after`.
    pub async fn assets(
        &self,
        space_id: &SpaceId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<AssetRow>> {
        let sql = const_format_asset(
            "WHERE space_id = $1 AND id > $2 AND deleted_at IS NULL ORDER BY id LIMIT $3",
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(space_id.as_str())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(self.pool())
            .await?;
        let items = rows
            .iter()
            .map(|r| asset(self.seal(), r))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |a| a.id.to_string()))
    }
}

fn const_format_asset(tail: &str) -> String {
    format!("SELECT {ASSET_COLUMNS} FROM assets {tail}")
}

impl Tx {
    /// Creates an organization whose audit chain starts at `genesis` (hash and MAC).
    pub async fn insert_org(
        &mut self,
        row: &OrgRow,
        genesis_hash: &[u8],
        genesis_mac: &[u8],
    ) -> Result<()> {
        let name = self
            .seal()
            .seal(ORG_NAME, row.id.as_str(), row.name.as_str());
        let index = self.seal().index(ORG_NAME, "", row.name.as_str());
        sqlx::query(
            "INSERT INTO orgs (id, name, name_index, created_at, audit_seq, audit_head, \
             audit_head_mac, region) VALUES ($1, $2, $7, $3, 0, $4, $5, $6)",
        )
        .bind(row.id.as_str())
        .bind(name)
        .bind(row.created_at.millis())
        .bind(genesis_hash)
        .bind(genesis_mac)
        .bind(row.region.as_str())
        .bind(index)
        .execute(self.conn())
        .await
        .map_err(conflict("an organization with this name"))?;
        Ok(())
    }

    /// Creates a user, with an optional password hash (PHC string).
    pub async fn insert_user(&mut self, row: &UserRow, password_hash: Option<&str>) -> Result<()> {
        let email = self
            .seal()
            .seal(USER_EMAIL, row.id.as_str(), row.email.as_str());
        let index = self.seal().index(USER_EMAIL, "", row.email.as_str());
        // Made now, so an event never has to make it while holding its chain's lock.
        let (_, person_key) = self.seal().new_person_key(row.id.as_str());
        sqlx::query(
            "INSERT INTO users (id, email, email_index, password_hash, created_at, person_key) \
             VALUES ($1, $2, $5, $3, $4, $6)",
        )
        .bind(row.id.as_str())
        .bind(email)
        .bind(password_hash)
        .bind(row.created_at.millis())
        .bind(index)
        .bind(person_key)
        .execute(self.conn())
        .await
        .map_err(conflict("a user with this email"))?;
        Ok(())
    }

    /// Gives a user a role in an organization (or changes it).
    pub async fn upsert_membership(
        &mut self,
        org_id: &OrgId,
        user_id: &UserId,
        role: &RoleRef,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org_id.as_str())
        .bind(user_id.as_str())
        .bind(role.to_stored())
        .bind(at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Creates a space.
    pub async fn insert_space(&mut self, row: &SpaceRow) -> Result<()> {
        let name = self
            .seal()
            .seal(SPACE_NAME, row.id.as_str(), row.name.as_str());
        sqlx::query("INSERT INTO spaces (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(row.id.as_str())
            .bind(row.org_id.as_str())
            .bind(name)
            .bind(row.created_at.millis())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records an asset whose blob row already exists in this transaction.
    pub async fn insert_asset(&mut self, row: &AssetRow) -> Result<()> {
        let filename = self
            .seal()
            .seal(ASSET_FILENAME, row.id.as_str(), row.filename.as_str());
        sqlx::query(
            "INSERT INTO assets (id, org_id, space_id, blob_id, filename, content_type, size, \
             sha256, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(row.id.as_str())
        .bind(row.org_id.as_str())
        .bind(row.space_id.as_str())
        .bind(row.blob_id.as_str())
        .bind(filename)
        .bind(row.content_type.as_str())
        .bind(i64::try_from(row.size).unwrap_or(i64::MAX))
        .bind(row.sha256.as_str())
        .bind(row.created_at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Deletes an asset row of `org_id`, live or in the trash; returns it if it existed.
    pub async fn delete_asset(&mut self, org_id: &OrgId, id: &AssetId) -> Result<Option<AssetRow>> {
        let sql =
            format!("DELETE FROM assets WHERE id = $1 AND org_id = $2 RETURNING {ASSET_COLUMNS}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| asset(self.seal(), &r)).transpose()
    }
}
