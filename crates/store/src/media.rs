//! Media: an asset's processing status, its renditions (each its own encrypted blob), the sealed
//! content key of its HLS package, and per-view playback tokens.

use sqlx::Row;
use sqlx::any::AnyRow;
use strongroom_domain::{AssetId, BlobId, OrgId, PlaybackId, Timestamp};

use crate::seal::{MEDIA_ERROR, MEDIA_INFO};
use crate::{Result, Store, StoreError, Tx, parsed};

/// Where an asset's media processing is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaState {
    /// `None`: not media. `processing`, `ready` or `failed`.
    pub status: Option<String>,
    /// Why it failed, safe to show.
    pub error: Option<String>,
    /// What the probe found (JSON).
    pub info: Option<String>,
}

/// A derivative of an asset.
#[derive(Debug, Clone)]
pub struct RenditionRow {
    /// The asset.
    pub asset_id: AssetId,
    /// `thumbnail`, `medium`, or a path in the HLS package (`hls/720p/seg00003.ts`).
    pub name: String,
    /// `image` or `hls`.
    pub kind: String,
    /// The organization.
    pub org_id: OrgId,
    /// The encrypted blob holding it.
    pub blob_id: BlobId,
    /// Its media type.
    pub content_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the plaintext.
    pub sha256: String,
    /// Pixel width, for images and video variants.
    pub width: Option<u32>,
    /// Pixel height, for images and video variants.
    pub height: Option<u32>,
    /// Bits per second, for HLS variants.
    pub bandwidth: Option<u64>,
    /// When it was made.
    pub created_at: Timestamp,
}

/// One view's playback token, as stored (never the token).
#[derive(Debug, Clone)]
pub struct PlaybackRow {
    /// Its id.
    pub id: PlaybackId,
    /// The organization.
    pub org_id: OrgId,
    /// The asset it plays.
    pub asset_id: AssetId,
    /// Who made it (an audit actor name).
    pub created_by: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// The view's first request, if there was one.
    pub viewed_at: Option<Timestamp>,
}

fn opt_u32(row: &AnyRow, col: &str) -> Result<Option<u32>> {
    Ok(row
        .try_get::<Option<i64>, _>(col)?
        .and_then(|v| u32::try_from(v).ok()))
}

fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>> {
    Ok(row
        .try_get::<Option<i64>, _>(col)?
        .map(Timestamp::from_millis))
}

fn rendition(row: &AnyRow) -> Result<RenditionRow> {
    let size: i64 = row.try_get("size")?;
    Ok(RenditionRow {
        asset_id: parsed(row, "renditions", "asset_id", AssetId::parse)?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        org_id: parsed(row, "renditions", "org_id", OrgId::parse)?,
        blob_id: parsed(row, "renditions", "blob_id", BlobId::parse)?,
        content_type: row.try_get("content_type")?,
        size: crate::size(size, "renditions")?,
        sha256: row.try_get("sha256")?,
        width: opt_u32(row, "width")?,
        height: opt_u32(row, "height")?,
        bandwidth: row
            .try_get::<Option<i64>, _>("bandwidth")?
            .and_then(|v| u64::try_from(v).ok()),
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn playback(row: &AnyRow) -> Result<PlaybackRow> {
    Ok(PlaybackRow {
        id: parsed(row, "playbacks", "id", PlaybackId::parse)?,
        org_id: parsed(row, "playbacks", "org_id", OrgId::parse)?,
        asset_id: parsed(row, "playbacks", "asset_id", AssetId::parse)?,
        created_by: row.try_get("created_by")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        revoked_at: opt_ts(row, "revoked_at")?,
        viewed_at: opt_ts(row, "viewed_at")?,
    })
}

const RENDITION_COLUMNS: &str = "asset_id, name, kind, org_id, blob_id, content_type, size, \
                                 sha256, width, height, bandwidth, created_at";
const PLAYBACK_COLUMNS: &str =
    "id, org_id, asset_id, created_by, created_at, expires_at, revoked_at, viewed_at";

impl Store {
    /// An asset's media processing state.
    pub async fn media_state(&self, asset_id: &AssetId) -> Result<MediaState> {
        let row =
            sqlx::query("SELECT media_status, media_error, media_info FROM assets WHERE id = $1")
                .bind(asset_id.as_str())
                .fetch_optional(self.pool())
                .await?;
        let Some(row) = row else {
            return Ok(MediaState::default());
        };
        let seal = self.seal();
        Ok(MediaState {
            status: row.try_get("media_status")?,
            error: seal.column_opt(&row, MEDIA_ERROR, asset_id.as_str())?,
            info: seal.column_opt(&row, MEDIA_INFO, asset_id.as_str())?,
        })
    }

    /// An asset's renditions of one kind (`image`, `hls`), by name.
    pub async fn renditions(&self, asset_id: &AssetId, kind: &str) -> Result<Vec<RenditionRow>> {
        let sql = format!(
            "SELECT {RENDITION_COLUMNS} FROM renditions WHERE asset_id = $1 AND kind = $2 ORDER BY name"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(asset_id.as_str())
            .bind(kind)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(rendition).collect()
    }

    /// One rendition of an asset, by name.
    pub async fn rendition(&self, asset_id: &AssetId, name: &str) -> Result<Option<RenditionRow>> {
        let sql =
            format!("SELECT {RENDITION_COLUMNS} FROM renditions WHERE asset_id = $1 AND name = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(asset_id.as_str())
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rendition).transpose()
    }

    /// The sealed content key of an asset's HLS package.
    pub async fn hls_key(&self, asset_id: &AssetId) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT key_enc FROM hls_keys WHERE asset_id = $1")
                .bind(asset_id.as_str())
                .fetch_optional(self.pool())
                .await?,
        )
    }

    /// The playback whose token has this keyed hash.
    pub async fn playback_by_hash(&self, hash: &[u8]) -> Result<Option<PlaybackRow>> {
        let sql = format!("SELECT {PLAYBACK_COLUMNS} FROM playbacks WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(playback).transpose()
    }

    /// The organization's playback with this id.
    pub async fn playback(&self, org_id: &OrgId, id: &PlaybackId) -> Result<Option<PlaybackRow>> {
        let sql = format!("SELECT {PLAYBACK_COLUMNS} FROM playbacks WHERE id = $1 AND org_id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .bind(org_id.as_str())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(playback).transpose()
    }
}

impl Tx {
    /// Records the first request of a view; true only for the request that set it.
    pub async fn mark_viewed(&mut self, id: &PlaybackId, at: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE playbacks SET viewed_at = $2 WHERE id = $1 AND viewed_at IS NULL")
                .bind(id.as_str())
                .bind(at.millis())
                .execute(self.conn())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets an asset's media processing state.
    pub async fn set_media_state(&mut self, asset_id: &AssetId, state: &MediaState) -> Result<()> {
        sqlx::query(
            "UPDATE assets SET media_status = $2, media_error = $3, media_info = $4 WHERE id = $1",
        )
        .bind(asset_id.as_str())
        .bind(state.status.as_deref())
        .bind(
            self.seal()
                .seal_opt(MEDIA_ERROR, asset_id.as_str(), state.error.as_deref()),
        )
        .bind(
            self.seal()
                .seal_opt(MEDIA_INFO, asset_id.as_str(), state.info.as_deref()),
        )
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Records a rendition (its blob row must exist in this transaction).
    pub async fn insert_rendition(&mut self, r: &RenditionRow) -> Result<()> {
        let sql = format!(
            "INSERT INTO renditions ({RENDITION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let size = i64::try_from(r.size).map_err(|_| StoreError::Corrupt {
            table: "renditions",
            detail: format!("size {}", r.size),
        })?;
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(r.asset_id.as_str())
            .bind(r.name.as_str())
            .bind(r.kind.as_str())
            .bind(r.org_id.as_str())
            .bind(r.blob_id.as_str())
            .bind(r.content_type.as_str())
            .bind(size)
            .bind(r.sha256.as_str())
            .bind(r.width.map(i64::from))
            .bind(r.height.map(i64::from))
            .bind(r.bandwidth.and_then(|b| i64::try_from(b).ok()))
            .bind(r.created_at.millis())
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Removes every rendition of an asset with its blob rows (crypto-shredding them) and the
    /// package key; returns the blob ids, whose stored objects the caller then deletes.
    pub async fn delete_renditions(&mut self, asset_id: &AssetId) -> Result<Vec<BlobId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("DELETE FROM renditions WHERE asset_id = $1 RETURNING blob_id")
                .bind(asset_id.as_str())
                .fetch_all(self.conn())
                .await?;
        let mut blobs = Vec::with_capacity(ids.len());
        for id in ids {
            sqlx::query("DELETE FROM blobs WHERE id = $1")
                .bind(id.as_str())
                .execute(self.conn())
                .await?;
            crate::backup::log_shred(self.conn(), &id).await?;
            blobs.push(BlobId::parse(&id).map_err(|e| StoreError::Corrupt {
                table: "renditions",
                detail: e.to_string(),
            })?);
        }
        sqlx::query("DELETE FROM hls_keys WHERE asset_id = $1")
            .bind(asset_id.as_str())
            .execute(self.conn())
            .await?;
        Ok(blobs)
    }

    /// Stores the sealed content key of an asset's HLS package.
    pub async fn set_hls_key(&mut self, asset_id: &AssetId, key_enc: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO hls_keys (asset_id, key_enc) VALUES ($1, $2) \
             ON CONFLICT (asset_id) DO UPDATE SET key_enc = excluded.key_enc",
        )
        .bind(asset_id.as_str())
        .bind(key_enc)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Records a playback; only the keyed hash of its token is stored.
    pub async fn insert_playback(&mut self, row: &PlaybackRow, token_hash: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO playbacks (id, org_id, asset_id, token_hash, created_by, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(row.id.as_str())
        .bind(row.org_id.as_str())
        .bind(row.asset_id.as_str())
        .bind(token_hash)
        .bind(row.created_by.as_str())
        .bind(row.created_at.millis())
        .bind(row.expires_at.millis())
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Revokes a playback; false when it does not exist or was already revoked.
    pub async fn revoke_playback(
        &mut self,
        org_id: &OrgId,
        id: &PlaybackId,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE playbacks SET revoked_at = $3 WHERE id = $1 AND org_id = $2 AND revoked_at IS NULL",
        )
        .bind(id.as_str())
        .bind(org_id.as_str())
        .bind(at.millis())
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
