//! Media: processing uploads into renditions (thumbnails, resized images, an AES-128 encrypted
//! HLS ladder for video) on the job queue, and serving image renditions.
//!
//! An image or video upload is queued for processing in the upload's own transaction. The worker
//! feeds the decrypted bytes to ffmpeg over loopback (never through a file: see
//! `strongroom-media`), stores each output as its own encrypted blob as it arrives, leased to the
//! job from before it is written (so the orphan sweep never takes it), and commits every
//! rendition row, the package's sealed content key, the status `ready` and the job's completion
//! in one transaction. A file ffmpeg cannot read, or one that breaks a limit, ends as `failed`
//! with the reason and its stored outputs removed; a crash or a lost lease leaves outputs that
//! the next attempt (or the sweep) removes, and a job another worker retries.
//!
//! Playing the result is `playback`.

use std::sync::Arc;

use bytes::Bytes;
use strongroom_blob::{BlobReader, EncryptedWriter, read_range};
use strongroom_crypto::hls::HlsKey;
use strongroom_crypto::keys::DataKey;
use strongroom_domain::{AssetId, BlobId, OrgId};
use strongroom_media::{
    ImageFormat, ImageSpec, MediaError, MediaKind, MediaSink, MediaSource, OutputFile, Rung,
};
use strongroom_store::{AssetRow, BlobRow, MediaState, RenditionRow, Tx};

use crate::audit::Record;
use crate::authz::{AssetAuthz, perm};
use crate::jobs::{Job, JobCtx, JobFailure};
use crate::{Result, Service, ServiceError};

/// Attempts before processing is given up (failures of ffmpeg itself are final at once).
pub(crate) const MEDIA_ATTEMPTS: u32 = 3;

/// The payload of a media job: the asset to process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct MediaJob {
    /// The asset (in the job's organization).
    pub(crate) asset_id: AssetId,
}

/// The video ladder: two H.264/AAC renditions.
fn ladder() -> Vec<Rung> {
    vec![
        Rung {
            name: "360p".into(),
            height: 360,
            video_kbps: 800,
            audio_kbps: 96,
        },
        Rung {
            name: "720p".into(),
            height: 720,
            video_kbps: 2800,
            audio_kbps: 128,
        },
    ]
}

/// Still images made from every image, and from a frame of every video.
fn image_specs() -> Vec<ImageSpec> {
    vec![
        ImageSpec {
            name: "thumbnail".into(),
            max_width: 320,
            max_height: 320,
            format: ImageFormat::Jpeg,
        },
        ImageSpec {
            name: "preview".into(),
            max_width: 1280,
            max_height: 1280,
            format: ImageFormat::Jpeg,
        },
    ]
}

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

/// Reads a stored blob for ffmpeg, decrypting only the chunks each read touches.
struct BlobSource(BlobReader);

impl MediaSource for BlobSource {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read_at(
        &self,
        offset: u64,
        len: usize,
    ) -> strongroom_media::BoxFuture<'_, std::io::Result<Bytes>> {
        Box::pin(async move {
            self.0
                .read_at(offset, len)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
    }
}

/// One output stored as an encrypted blob, waiting for the commit that makes it visible.
struct Stored {
    blob: BlobRow,
    rendition: RenditionRow,
}

/// Stores each HLS output as it arrives.
struct PackageSink<'a> {
    svc: &'a Service,
    asset: &'a AssetRow,
    stored: Vec<Stored>,
    ctx: &'a JobCtx,
    /// Segments expected in all (for progress), and seen so far.
    expected_segments: u64,
    segments: u64,
}

impl MediaSink for PackageSink<'_> {
    fn put(&mut self, file: OutputFile) -> strongroom_media::BoxFuture<'_, std::io::Result<()>> {
        Box::pin(async move {
            let name = format!("hls/{}", file.name);
            let stored = self
                .svc
                .store_output(
                    self.ctx,
                    self.asset,
                    &name,
                    "hls",
                    file.content_type,
                    &file.bytes,
                )
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.stored.push(stored);
            if file.name.ends_with(".ts") {
                self.segments += 1;
                let done = (self.segments * 85 / self.expected_segments.max(1)).min(85);
                self.ctx.set_progress(10 + u8::try_from(done).unwrap_or(85));
            }
            Ok(())
        })
    }
}

/// Whether a failure of the media pipeline is the file's fault (final) or could pass.
fn classify(e: MediaError) -> JobFailure {
    match e {
        MediaError::Source(_) | MediaError::Sink(_) | MediaError::Spawn { .. } => {
            JobFailure::Retry(e.to_string())
        }
        other => JobFailure::Permanent(other.to_string()),
    }
}

impl Service {
    /// Queues processing of a new upload, in the upload's transaction, when it is an image or
    /// a video and media processing is on.
    pub(crate) async fn queue_media(&self, tx: &mut Tx, asset: &AssetRow) -> Result<()> {
        if self.media.is_none() || !is_media(&asset.content_type) {
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
        self.enqueue(
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
        let state = self.store.media_state(asset_id).await?;
        let mut renditions: Vec<RenditionInfo> = self
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
        for r in self.store.renditions(asset_id, "hls").await? {
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
                self.store
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

    /// Writes one output as a new encrypted blob under its own data key, leased to the job's
    /// attempt before the object exists (so the orphan sweep never takes it); nothing is
    /// visible until the job commits the rows. Fails once the job is no longer this attempt's.
    async fn store_output(
        &self,
        ctx: &JobCtx,
        asset: &AssetRow,
        name: &str,
        kind: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Stored> {
        let blob_id = BlobId::generate();
        let leased = self
            .store
            .lease_output(&ctx.id, &ctx.worker, &blob_id, self.clock.now())
            .await?;
        if !leased {
            return Err(ServiceError::Conflict(
                "the job was taken over by another worker".into(),
            ));
        }
        let dek = DataKey::generate();
        let mut w =
            EncryptedWriter::create(self.blobs.as_ref(), blob_id.as_str(), &dek, None).await?;
        w.push(bytes).await?;
        let written = w.finish().await?;
        let (wrapped_dek, kek_version) = self.keyring.wrap(&self.store, &blob_id, &dek).await?;
        let now = self.clock.now();
        Ok(Stored {
            blob: BlobRow {
                id: blob_id.clone(),
                org_id: asset.org_id.clone(),
                kek_version,
                wrapped_dek,
                size: written.size,
                stored_size: written.stored_size,
                created_at: now,
            },
            rendition: RenditionRow {
                asset_id: asset.id.clone(),
                name: name.to_owned(),
                kind: kind.to_owned(),
                org_id: asset.org_id.clone(),
                blob_id,
                content_type: content_type.to_owned(),
                size: written.size,
                sha256: hex::encode(written.sha256),
                width: None,
                height: None,
                bandwidth: None,
                created_at: now,
            },
        })
    }

    /// The media job: probe, render, package, store, commit. A failure's stored outputs are
    /// the worker's to remove (`jobs`), as is marking the asset `failed` when it gives up.
    pub(crate) async fn process_media(
        &self,
        job: &MediaJob,
        ctx: &JobCtx,
    ) -> std::result::Result<(), JobFailure> {
        let internal = |e: ServiceError| JobFailure::Retry(e.to_string());
        let Some(media) = &self.media else {
            return Err(JobFailure::Retry(
                "media processing is off on this node (ffmpeg not found)".into(),
            ));
        };
        let asset_id = &job.asset_id;
        let Some(org_id) = ctx.org_id.clone() else {
            return Err(JobFailure::Permanent(
                "the job names no organization".into(),
            ));
        };
        let Some(asset) = self
            .store
            .asset(&org_id, asset_id)
            .await
            .map_err(|e| internal(e.into()))?
        else {
            // Deleted since: nothing to do.
            return Ok(());
        };
        // A retry starts clean: what an earlier attempt committed is replaced.
        self.discard_renditions(&asset.id).await.map_err(internal)?;
        let blob = self
            .store
            .blob(&asset.blob_id)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| JobFailure::Permanent("the asset has no stored content".into()))?;
        let dek = self
            .keyring
            .data_key(&self.store, &blob)
            .await
            .map_err(internal)?;
        let reader = BlobReader::open(self.blobs.clone(), blob.id.to_string(), &dek, blob.size)
            .await
            .map_err(|e| JobFailure::Retry(e.to_string()))?;
        let source: Arc<dyn MediaSource> = Arc::new(BlobSource(reader));
        let (info, stored, key) = self.render(media, &asset, source, ctx).await?;
        self.commit_renditions(ctx, &asset, info, stored, key)
            .await
            .map_err(internal)
    }

    /// Runs the pipeline for one asset: what it is, its stills, and for a video its HLS
    /// package under a new content key.
    async fn render(
        &self,
        media: &strongroom_media::Media,
        asset: &AssetRow,
        source: Arc<dyn MediaSource>,
        ctx: &JobCtx,
    ) -> std::result::Result<(serde_json::Value, Vec<Stored>, Option<HlsKey>), JobFailure> {
        let info = media.probe(source.clone()).await.map_err(classify)?;
        ctx.set_progress(5);
        let info_json = serde_json::json!({
            "kind": format!("{:?}", info.kind).to_ascii_lowercase(),
            "duration_seconds": info.duration_seconds,
            "width": info.width,
            "height": info.height,
            "video_codec": info.video_codec,
            "audio_codec": info.audio_codec,
        });
        let retry = |e: ServiceError| JobFailure::Retry(e.to_string());
        let mut stored = Vec::new();
        match info.kind {
            MediaKind::Image | MediaKind::Video => {}
            other => {
                return Err(JobFailure::Permanent(format!(
                    "not an image or a video (found {other:?})"
                )));
            }
        }
        let stills = media
            .image_renditions(source.clone(), &image_specs())
            .await
            .map_err(classify)?;
        for still in stills {
            let mut s = self
                .store_output(
                    ctx,
                    asset,
                    &still.name,
                    "image",
                    still.content_type,
                    &still.bytes,
                )
                .await
                .map_err(retry)?;
            s.rendition.width = Some(still.width);
            s.rendition.height = Some(still.height);
            stored.push(s);
        }
        ctx.set_progress(10);
        if info.kind != MediaKind::Video {
            return Ok((info_json, stored, None));
        }
        let key = HlsKey::generate();
        let ladder = ladder();
        let segment = f64::from(media.config().hls.segment_seconds.max(1));
        let per_rung = (info.duration_seconds.unwrap_or(0.0) / segment).ceil();
        let mut sink = PackageSink {
            svc: self,
            asset,
            stored,
            ctx,
            // Bounded by the transcode limits; a float this size converts exactly enough.
            expected_segments: (per_rung.max(1.0) as u64).saturating_mul(ladder.len() as u64),
            segments: 0,
        };
        let package = media
            .package_hls(source, &ladder, &key, &mut sink)
            .await
            .map_err(classify)?;
        let mut stored = sink.stored;
        for rung in &package.rungs {
            let playlist = format!("hls/{}", rung.playlist);
            if let Some(s) = stored.iter_mut().find(|s| s.rendition.name == playlist) {
                s.rendition.width = Some(rung.width);
                s.rendition.height = Some(rung.height);
                s.rendition.bandwidth = Some(rung.bandwidth);
            }
        }
        let mut info_json = info_json;
        info_json["duration_seconds"] = serde_json::json!(package.duration_seconds);
        Ok((info_json, stored, Some(key)))
    }

    /// Makes the renditions visible, with the sealed content key, the status `ready` and the
    /// job's completion, in one transaction; refused when the job is no longer this attempt's.
    async fn commit_renditions(
        &self,
        ctx: &JobCtx,
        asset: &AssetRow,
        info: serde_json::Value,
        stored: Vec<Stored>,
        key: Option<HlsKey>,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        for s in &stored {
            tx.insert_blob(&s.blob).await?;
            tx.insert_rendition(&s.rendition).await?;
        }
        if let Some(key) = &key {
            let sealed = self
                .hls_key_seal
                .seal(asset.id.as_str().as_bytes(), key.expose_bytes());
            tx.set_hls_key(&asset.id, &sealed).await?;
        }
        tx.set_media_state(
            &asset.id,
            &MediaState {
                status: Some("ready".into()),
                error: None,
                info: Some(info.to_string()),
            },
        )
        .await?;
        self.audit(
            &mut tx,
            Record {
                org_id: &asset.org_id,
                actor: "system".into(),
                action: "asset.processed",
                target: asset.id.to_string(),
                ip: String::new(),
                detail: serde_json::json!({"renditions": stored.len(), "media": info}),
            },
        )
        .await?;
        // The outputs' leases end as their blob rows appear: always one or the other.
        if !tx
            .complete_job(&ctx.id, &ctx.worker, self.clock.now())
            .await?
        {
            return Err(ServiceError::Conflict(
                "the job was taken over by another worker".into(),
            ));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that processing failed for good, with the reason.
    pub(crate) async fn fail_media(&self, asset: &AssetRow, reason: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        tx.set_media_state(
            &asset.id,
            &MediaState {
                status: Some("failed".into()),
                error: Some(reason.to_owned()),
                info: None,
            },
        )
        .await?;
        self.audit(
            &mut tx,
            Record {
                org_id: &asset.org_id,
                actor: "system".into(),
                action: "asset.processing_failed",
                target: asset.id.to_string(),
                ip: String::new(),
                detail: serde_json::json!({"reason": reason}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Called when a media job fails for good: the asset says `failed`, with the reason.
    pub(crate) async fn media_gave_up(&self, org_id: &OrgId, asset_id: &AssetId, reason: &str) {
        if let Ok(Some(asset)) = self.store.asset(org_id, asset_id).await
            && let Err(e) = self.fail_media(&asset, reason).await
        {
            tracing::warn!(asset = %asset_id, error = %e, "could not record a media failure");
        }
    }

    /// Deletes an asset's renditions (rows, data keys, then stored objects).
    pub(crate) async fn discard_renditions(&self, asset_id: &AssetId) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let blobs = tx.delete_renditions(asset_id).await?;
        tx.commit().await?;
        self.remove_objects(&blobs).await;
        Ok(())
    }

    /// Removes stored objects whose rows are gone; a failure leaves them to the sweep.
    pub(crate) async fn remove_objects(&self, blobs: &[BlobId]) {
        for id in blobs {
            if let Err(e) = self.blobs.delete(id.as_str()).await {
                tracing::warn!(blob = %id, error = %e, "could not remove a shredded blob");
            }
        }
    }

    /// The asset as one of its image renditions: the same asset, but the rendition's blob, size,
    /// digest, media type and a derived file name. `None` when it has no such rendition.
    pub(crate) async fn rendition_asset(
        &self,
        asset: AssetRow,
        name: &str,
    ) -> Result<Option<AssetRow>> {
        let Some(r) = self
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
        let read = self.prepare_read(row, range).await?;
        let detail = read.audit_detail(serde_json::json!({"rendition": name}));
        self.audit_read(Record::by(p, "asset.read", &read.asset.id).detail(detail))
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
            .store
            .blob(&r.blob_id)
            .await?
            .ok_or(ServiceError::NotFound("rendition"))?;
        let dek = self.keyring.data_key(&self.store, &blob).await?;
        let body = read_range(
            self.blobs.clone(),
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
