//! Renditions as the asset's readers see them: processing status, the list, and image
//! renditions read like the asset. Making them is `jobs::media`.

use strongroom_blob::read_range;
use strongroom_domain::AssetId;
use strongroom_store::{AssetRow, MediaState, RenditionRow, Tx};

use super::ContentService;
use crate::audit::Record;
use crate::authz::{AssetAuthz, perm};
use crate::jobs::media::MediaJob;
use crate::jobs::queue::Job;
use crate::{Result, ServiceError};

/// Whether an upload of this media type is processed.
fn is_media(content_type: &str) -> bool {
    let t = content_type.trim().to_ascii_lowercase();
    t.starts_with("image/") || t.starts_with("video/")
}

/// A rendition as the asset's metadata lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RenditionInfo {
    /// `thumbnail`, `preview`, or `hls/<rung>` for a video variant.
    pub name: String,
    /// `image` or `hls`.
    pub kind: &'static str,
    /// Its media type (for a variant: its playlist's).
    pub content_type: String,
    /// Pixel width.
    pub width: Option<u32>,
    /// Pixel height.
    pub height: Option<u32>,
    /// Size in bytes (images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Peak bits per second (video variants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
}

/// An asset's processing status and renditions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MediaView {
    /// `processing`, `ready` or `failed` (an asset with nothing to process is `ready`).
    pub status: String,
    /// Why processing failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// While processing: percent done (0..=100), as the worker last recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// What the probe found: kind, duration, size, codecs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<serde_json::Value>,
    /// The renditions, images first.
    pub renditions: Vec<RenditionInfo>,
}

impl MediaView {
    /// The view of an asset that was never queued for processing (not an image or a video, or
    /// processing was off when it was uploaded): ready, with no renditions.
    pub(crate) fn unprocessed() -> MediaView {
        MediaView {
            status: "ready".into(),
            error: None,
            progress: None,
            media: None,
            renditions: Vec::new(),
        }
    }
}

impl ContentService {
    /// Queues processing of a new upload, in the upload's transaction, when it is an image or
    /// a video and media processing is on.
    pub(crate) async fn queue_media(&self, tx: &mut Tx, asset: &AssetRow) -> Result<()> {
        if self.ctx.config.media.is_none() || !is_media(&asset.content_type) {
            return Ok(());
        }
        tx.set_media_state(
            &asset.id,
            &MediaState {
                status: Some("processing".into()),
                ..MediaState::default()
            },
        )
        .await?;
        self.queue
            .enqueue(
                tx,
                Some(&asset.org_id),
                Job::Media(MediaJob {
                    asset_id: asset.id.clone(),
                }),
            )
            .await?;
        Ok(())
    }

    /// An asset's processing status and renditions (the caller already may see the asset).
    pub(crate) async fn media_view(&self, asset_id: &AssetId) -> Result<MediaView> {
        let state = self.ctx.store.media_state(asset_id).await?;
        let mut renditions: Vec<RenditionInfo> = self
            .ctx
            .store
            .renditions(asset_id, "image")
            .await?
            .into_iter()
            .map(|r| RenditionInfo {
                name: r.name,
                kind: "image",
                content_type: r.content_type,
                width: r.width,
                height: r.height,
                size: Some(r.size),
                bandwidth: None,
            })
            .collect();
        for r in self.ctx.store.renditions(asset_id, "hls").await? {
            // One entry per variant: its playlist carries the variant's facts.
            let Some(rung) = r
                .name
                .strip_prefix("hls/")
                .and_then(|n| n.strip_suffix("/index.m3u8"))
            else {
                continue;
            };
            renditions.push(RenditionInfo {
                name: format!("hls/{rung}"),
                kind: "hls",
                content_type: r.content_type.clone(),
                width: r.width,
                height: r.height,
                size: None,
                bandwidth: r.bandwidth,
            });
        }
        let progress = match state.status.as_deref() {
            Some("processing") => Some(
                self.ctx
                    .store
                    .jobs_about(asset_id.as_str())
                    .await?
                    .last()
                    .map_or(0, |j| j.progress),
            ),
            _ => None,
        };
        Ok(MediaView {
            progress,
            status: state.status.unwrap_or_else(|| "ready".into()),
            error: state.error,
            media: state.info.and_then(|i| serde_json::from_str(&i).ok()),
            renditions,
        })
    }

    /// The asset as one of its image renditions: the same asset, but the rendition's blob, size,
    /// digest, media type and a derived file name. `None` when it has no such rendition.
    pub(crate) async fn rendition_asset(
        &self,
        asset: AssetRow,
        name: &str,
    ) -> Result<Option<AssetRow>> {
        let Some(r) = self
            .ctx
            .store
            .rendition(&asset.id, name)
            .await?
            .filter(|r| r.kind == "image")
        else {
            return Ok(None);
        };
        let stem = asset
            .filename
            .as_str()
            .rsplit_once('.')
            .map_or(asset.filename.as_str(), |(s, _)| s);
        let ext = if r.content_type == "image/webp" {
            "webp"
        } else {
            "jpg"
        };
        let filename = strongroom_domain::Filename::parse(&format!("{stem}.{name}.{ext}"))
            .unwrap_or_else(|_| asset.filename.clone());
        Ok(Some(AssetRow {
            blob_id: r.blob_id,
            filename,
            content_type: r.content_type,
            size: r.size,
            sha256: r.sha256,
            ..asset
        }))
    }

    /// A rendition of an asset the caller may read, as metadata.
    async fn visible_rendition(
        &self,
        authz: &AssetAuthz<'_, perm::AssetRead>,
        name: &str,
    ) -> Result<AssetRow> {
        self.rendition_asset(authz.asset().clone(), name)
            .await?
            .ok_or(ServiceError::NotFound("rendition"))
    }

    /// An image rendition's metadata (for the download's headers).
    pub async fn rendition_meta(
        &self,
        authz: &AssetAuthz<'_, perm::AssetRead>,
        name: &str,
    ) -> Result<crate::Asset> {
        Ok(self.visible_rendition(authz, name).await?.into())
    }

    /// Opens an image rendition (or `[start, end)` of it) for reading; audited like the asset.
    pub async fn read_rendition(
        &self,
        authz: &AssetAuthz<'_, perm::AssetRead>,
        name: &str,
        range: Option<(u64, u64)>,
    ) -> Result<crate::Content> {
        let p = authz.principal();
        let row = self.visible_rendition(authz, name).await?;
        let read = self.prepare_read(row, None, range).await?;
        let detail = read.audit_detail(serde_json::json!({"rendition": name}));
        self.ctx
            .audit
            .append_read(Record::by(p, "asset.read", &read.asset.id).detail(detail))
            .await?;
        Ok(self.stream(read))
    }

    /// A rendition's plaintext as it is decrypted, chunk by chunk (a segment is never held
    /// whole in memory), with its length.
    pub(crate) async fn rendition_stream(
        &self,
        r: &RenditionRow,
    ) -> Result<(u64, crate::ByteStream)> {
        let blob = self
            .ctx
            .store
            .blob(&r.blob_id)
            .await?
            .ok_or(ServiceError::NotFound("rendition"))?;
        let dek = self.keyring.data_key(&self.ctx.store, &blob).await?;
        let body = read_range(
            self.ctx.region_blobs(&blob.region)?,
            blob.id.to_string(),
            dek,
            blob.size,
            0,
            blob.size,
        );
        Ok((blob.size, Box::pin(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_and_videos_are_processed() {
        assert!(is_media("image/png"));
        assert!(is_media("Video/MP4"));
        assert!(!is_media("application/pdf"));
        assert!(!is_media("text/html"));
    }
}
