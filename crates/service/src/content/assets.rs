//! Spaces and assets: create, list, upload (streaming, encrypted, durable before visible),
//! download (whole or a range); their end is in `lifecycle`.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use strongroom_blob::{BlobError, BlobStore, EncryptedWriter, read_range};
use strongroom_crypto::keys::DataKey;
use strongroom_domain::{AssetId, BlobId, Filename, Name, OrgId, SpaceId, Timestamp};
use strongroom_store::{AssetRow, BlobRow, Page, SpaceRow};

use super::ContentService;
use super::renditions::MediaView;
use crate::audit::Record;
use crate::authz::principal::SpaceScope;
use crate::authz::{AssetAuthz, MemberAuthz, OrgAuthz, SpaceAuthz, perm};
use crate::{Principal, Result, ServiceError};

/// A space as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Space {
    /// Its id.
    pub id: SpaceId,
    /// Its name.
    pub name: Name,
    /// The organization it belongs to.
    pub org_id: OrgId,
    /// When it was created.
    pub created_at: Timestamp,
    /// Its assets go to the trash this many days after their upload; `None`: kept until
    /// deleted.
    pub retention_days: Option<u32>,
}

impl From<SpaceRow> for Space {
    fn from(r: SpaceRow) -> Self {
        Space {
            id: r.id,
            name: r.name,
            org_id: r.org_id,
            created_at: r.created_at,
            retention_days: r.retention_days,
        }
    }
}

/// An asset's metadata as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Asset {
    /// Its id.
    pub id: AssetId,
    /// The space it belongs to.
    pub space_id: SpaceId,
    /// The file name given at upload.
    pub filename: Filename,
    /// The media type given at upload.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was deleted to the trash (only on assets in the trash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

impl From<AssetRow> for Asset {
    fn from(r: AssetRow) -> Self {
        Asset {
            id: r.id,
            space_id: r.space_id,
            filename: r.filename,
            content_type: r.content_type,
            size: r.size,
            sha256: r.sha256,
            created_at: r.created_at,
            deleted_at: r.deleted_at,
        }
    }
}

/// An asset's metadata, processing status and renditions (`GET /api/v1/assets/{id}`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct AssetDetail {
    /// The metadata.
    #[serde(flatten)]
    pub asset: Asset,
    /// Status and renditions.
    #[serde(flatten)]
    pub media: crate::MediaView,
}

/// Pagination input, already validated.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Continue after this id (from a previous page's cursor).
    pub after: Option<String>,
    /// At most this many items (1..=1000).
    pub limit: u32,
}

/// An upload's metadata; the bytes arrive as a stream.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The file name (the space is the proof's).
    pub filename: Filename,
    /// The media type to serve it with.
    pub content_type: String,
    /// The body's length, when the client declared it (`Content-Length` of a raw body): the
    /// blob store may then stream it in one request. A body of another length is refused.
    pub size: Option<u64>,
}

/// Plaintext as it is decrypted; an `Err` item means an integrity failure.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BlobError>> + Send>>;

/// Plaintext bytes of an asset (or a range of it), decrypted as they stream.
pub struct Content {
    /// The asset.
    pub asset: Asset,
    /// The byte range served, `[start, end)`.
    pub range: (u64, u64),
    /// The bytes; an `Err` item means an integrity failure: stop sending and cut the connection.
    pub body: ByteStream,
}

/// A read that is authorized, range-checked and keyed, but not yet audited: nothing was sent.
pub(crate) struct PreparedRead {
    pub(crate) asset: AssetRow,
    blob: BlobRow,
    /// The store of the blob's region (reads fall back to every other region).
    blobs: Arc<dyn BlobStore>,
    dek: DataKey,
    range: (u64, u64),
    partial: bool,
}

impl PreparedRead {
    /// The facts a read's audit event records: `base`, plus the byte range when only part of
    /// the asset is read.
    pub(crate) fn audit_detail(&self, mut base: serde_json::Value) -> serde_json::Value {
        if self.partial
            && let Some(m) = base.as_object_mut()
        {
            m.insert(
                "range".into(),
                serde_json::json!([self.range.0, self.range.1]),
            );
        }
        base
    }
}

impl ContentService {
    /// Creates a space in the caller's organization.
    pub async fn create_space(
        &self,
        authz: &OrgAuthz<'_, perm::SpaceCreate>,
        name: Name,
    ) -> Result<Space> {
        let (p, org_id) = (authz.principal(), authz.org_id());
        let row = SpaceRow {
            id: SpaceId::generate(),
            org_id: org_id.clone(),
            name,
            created_at: self.ctx.clock.now(),
            retention_days: None,
        };
        let mut tx = self.ctx.store.begin().await?;
        tx.insert_space(&row).await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "space.create", &row.id)
                    .detail(serde_json::json!({"name": row.name})),
            )
            .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Lists the organization's spaces (those within a space-limited key's reach).
    pub async fn list_spaces(&self, authz: &MemberAuthz<'_>, q: ListQuery) -> Result<Page<Space>> {
        // No permission beyond membership: the scope holds exactly the spaces the caller may
        // read (all of them with an organization-wide space:read, else the granted ones), and
        // may be empty.
        let (p, org_id) = (authz.principal(), authz.org_id());
        let page = match p.space_scope() {
            SpaceScope::All => {
                self.ctx
                    .store
                    .spaces(org_id, q.after.as_deref(), q.limit)
                    .await?
            }
            SpaceScope::Only(ids) => {
                self.ctx
                    .store
                    .spaces_among(org_id, &ids, q.after.as_deref(), q.limit)
                    .await?
            }
        };
        Ok(Page {
            items: page.items.into_iter().map(Space::from).collect(),
            next: page.next,
        })
    }

    /// Stores an upload: the bytes are encrypted under a fresh data key and written durably
    /// while the SHA-256 is computed; only then are the blob and asset rows committed, with the
    /// audit event. If the stream fails or exceeds the limit, nothing becomes visible and the
    /// partial object is removed.
    pub async fn upload<S, E>(
        &self,
        authz: &SpaceAuthz<'_, perm::AssetCreate>,
        upload: NewUpload,
        mut body: S,
    ) -> Result<AssetDetail>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        // Authorized, with the space resolved, before a single byte is read.
        let (p, space) = (authz.principal(), authz.space().clone());
        // The quota is checked before the first byte, and the stream cut off at what it leaves.
        let headroom = self.ctx.upload_headroom(&p.org_id).await?;
        let limit = self.ctx.config.max_upload_bytes;
        let quota_binds = headroom.bytes.is_some_and(|left| left < limit);
        let cap = headroom.bytes.map_or(limit, |left| left.min(limit));
        let blob_id = BlobId::generate();
        let dek = DataKey::generate();
        let (region, blobs) = self.ctx.org_blobs(&p.org_id).await?;
        let opened = match upload.size {
            Some(len) => {
                EncryptedWriter::create_sized(
                    blobs.as_ref(),
                    blob_id.as_str(),
                    &dek,
                    Some(cap),
                    len,
                )
                .await
            }
            None => {
                EncryptedWriter::create(blobs.as_ref(), blob_id.as_str(), &dek, Some(cap)).await
            }
        };
        let mut writer = match opened {
            Err(BlobError::TooLarge) if quota_binds => {
                return Err(self.ctx.quota_passed(&p.org_id).await);
            }
            Err(BlobError::TooLarge) => return Err(ServiceError::TooLarge { limit }),
            other => other?,
        };
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| ServiceError::Invalid(format!("the upload was interrupted: {e}")))?;
            if let Err(e) = writer.push(&chunk).await {
                return Err(match e {
                    BlobError::TooLarge if quota_binds => self.ctx.quota_passed(&p.org_id).await,
                    BlobError::TooLarge => ServiceError::TooLarge { limit },
                    other => other.into(),
                });
            }
        }
        let written = writer.finish().await?;
        let now = self.ctx.clock.now();
        let row = AssetRow {
            id: AssetId::generate(),
            org_id: p.org_id.clone(),
            space_id: space.id,
            blob_id: blob_id.clone(),
            filename: upload.filename,
            content_type: upload.content_type,
            size: written.size,
            sha256: hex::encode(written.sha256),
            created_at: now,
            media_status: None,
            deleted_at: None,
        };
        // The data key is wrapped at commit time, under the KEK active then: a long upload that
        // overlaps `keys rotate` must not reference a version the rotation has since retired.
        let mut attempts = 0;
        loop {
            let (wrapped_dek, kek_version) =
                self.keyring.wrap(&self.ctx.store, &blob_id, &dek).await?;
            let blob = BlobRow {
                id: blob_id.clone(),
                org_id: p.org_id.clone(),
                kek_version,
                wrapped_dek,
                size: written.size,
                stored_size: written.stored_size,
                created_at: now,
                region: region.clone(),
            };
            let Err(e) = self.commit_upload(p, &blob, &row).await else {
                break;
            };
            attempts += 1;
            let rotated = self
                .keyring
                .active_version(&self.ctx.store)
                .await
                .is_ok_and(|v| v != kek_version);
            if !(rotated && attempts < 3) {
                // The object is durable but unreferenced: remove it now (the sweep would later).
                let _ = blobs.delete(blob_id.as_str()).await;
                return Err(e);
            }
        }
        let media = self.media_view(&row.id).await?;
        Ok(AssetDetail {
            asset: row.into(),
            media,
        })
    }

    async fn commit_upload(&self, p: &Principal, blob: &BlobRow, row: &AssetRow) -> Result<()> {
        let mut tx = self.ctx.store.begin().await?;
        self.ctx
            .check_quota_in(&mut tx, &row.org_id, row.size)
            .await?;
        tx.insert_blob(blob).await?;
        tx.insert_asset(row).await?;
        self.queue_media(&mut tx, row).await?;
        let detail = serde_json::json!({"space_id": row.space_id, "filename": row.filename, "size": row.size, "sha256": row.sha256});
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "asset.create", &row.id).detail(detail),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lists a space's assets.
    pub async fn list_assets(
        &self,
        authz: &SpaceAuthz<'_, perm::AssetRead>,
        q: ListQuery,
    ) -> Result<Page<Asset>> {
        let page = self
            .ctx
            .store
            .assets(&authz.space().id, q.after.as_deref(), q.limit)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(Asset::from).collect(),
            next: page.next,
        })
    }

    /// An asset's metadata.
    pub fn get_asset(&self, authz: &AssetAuthz<'_, perm::AssetRead>) -> Asset {
        authz.asset().clone().into()
    }

    /// An asset's metadata with its processing status and renditions.
    pub async fn asset_detail(
        &self,
        authz: &AssetAuthz<'_, perm::AssetRead>,
    ) -> Result<AssetDetail> {
        let row = authz.asset();
        // An asset never queued for processing has no renditions: nothing more to read.
        let media = match row.media_status {
            None => MediaView::unprocessed(),
            Some(_) => self.media_view(&row.id).await?,
        };
        Ok(AssetDetail {
            asset: row.clone().into(),
            media,
        })
    }

    /// Opens an asset's content for reading, `range` being `[start, end)` or the whole asset.
    /// The read is audited before any byte is sent.
    pub async fn read_content(
        &self,
        authz: &AssetAuthz<'_, perm::AssetRead>,
        range: Option<(u64, u64)>,
    ) -> Result<Content> {
        let p = authz.principal();
        let read = self
            .prepare_read(authz.asset().clone(), authz.blob().cloned(), range)
            .await?;
        let detail = read.audit_detail(serde_json::json!({}));
        self.ctx
            .audit
            .append_read(Record::by(p, "asset.read", &read.asset.id).detail(detail))
            .await?;
        Ok(self.stream(read))
    }

    /// Checks a range of an asset and unwraps its data key: everything a read needs before it
    /// is audited, and before any byte is sent. Every way of reading content (the API, links)
    /// goes through here and [`ContentService::stream`].
    pub(crate) async fn prepare_read(
        &self,
        asset: AssetRow,
        blob: Option<BlobRow>,
        range: Option<(u64, u64)>,
    ) -> Result<PreparedRead> {
        // The blob row goes only with its asset row (a foreign key keeps it), in the delete's
        // transaction: missing here, the asset was deleted since it was looked up.
        let blob = match blob {
            Some(blob) if blob.id == asset.blob_id => blob,
            _ => self
                .ctx
                .store
                .blob(&asset.blob_id)
                .await?
                .ok_or(ServiceError::NotFound("asset"))?,
        };
        let dek = self.keyring.data_key(&self.ctx.store, &blob).await?;
        let (start, end) = range.unwrap_or((0, asset.size));
        if start > end || end > asset.size {
            return Err(ServiceError::Invalid("range outside the asset".into()));
        }
        let blobs = self.ctx.region_blobs(&blob.region)?;
        Ok(PreparedRead {
            asset,
            blob,
            blobs,
            dek,
            range: (start, end),
            partial: range.is_some(),
        })
    }

    /// Starts decrypting a prepared read; call it only once the read's audit event committed.
    pub(crate) fn stream(&self, read: PreparedRead) -> Content {
        let (start, end) = read.range;
        let body = read_range(
            read.blobs,
            read.blob.id.to_string(),
            read.dek,
            read.blob.size,
            start,
            end,
        );
        Content {
            asset: read.asset.into(),
            range: (start, end),
            body: Box::pin(body),
        }
    }
}
