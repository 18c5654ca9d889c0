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
//! Listing and reading the renditions is `content::renditions`; playing the video is
//! `content::playback`.

use std::sync::Arc;

use bytes::Bytes;
use strongroom_blob::{BlobReader, EncryptedWriter};
use strongroom_crypto::hls::HlsKey;
use strongroom_crypto::keys::DataKey;
use strongroom_domain::{AssetId, BlobId, OrgId};
use strongroom_media::{
    ImageFormat, ImageSpec, MediaError, MediaKind, MediaSink, MediaSource, OutputFile, Rung,
};
use strongroom_store::{AssetRow, BlobRow, MediaState, RenditionRow};

use strongroom_crypto::keys::{FieldKey, RootKey};

use crate::audit::Record;
use crate::ctx::Ctx;
use crate::jobs::queue::{JobCtx, JobFailure};
use crate::keys::keyring::Keyring;
use crate::{Result, ServiceError};

/// Processes media jobs: decrypts the source, runs the pipeline, stores and commits renditions.
pub(crate) struct MediaWorker {
    ctx: Arc<Ctx>,
    /// Seals each HLS package's content key (opened again by playback).
    hls_key_seal: FieldKey,
    keyring: Arc<Keyring>,
    /// The media pipeline; `None`: processing is off on this node.
    media: Option<strongroom_media::Media>,
}

/// The keys a media worker derives from the root key.
pub(crate) struct MediaKeys {
    hls_key_seal: FieldKey,
}

impl MediaWorker {
    /// Whether this node processes media (ffmpeg was found).
    pub(crate) fn enabled(&self) -> bool {
        self.media.is_some()
    }

    pub(crate) fn keys(root: &RootKey) -> MediaKeys {
        MediaKeys {
            hls_key_seal: root.field_key("hls-key"),
        }
    }

    pub(crate) fn new(
        ctx: Arc<Ctx>,
        keys: MediaKeys,
        keyring: Arc<Keyring>,
        media: Option<strongroom_media::Media>,
    ) -> MediaWorker {
        MediaWorker {
            ctx,
            hls_key_seal: keys.hls_key_seal,
            keyring,
            media,
        }
    }
}

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
    worker: &'a MediaWorker,
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
                .worker
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

impl MediaWorker {
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
            .ctx
            .store
            .lease_output(&ctx.id, &ctx.worker, &blob_id, self.ctx.clock.now())
            .await?;
        if !leased {
            return Err(ServiceError::Conflict(
                "the job was taken over by another worker".into(),
            ));
        }
        let dek = DataKey::generate();
        let (region, blobs) = self.ctx.org_blobs(&asset.org_id).await?;
        let mut w = EncryptedWriter::create(blobs.as_ref(), blob_id.as_str(), &dek, None).await?;
        w.push(bytes).await?;
        let written = w.finish().await?;
        let (wrapped_dek, kek_version) = self.keyring.wrap(&self.ctx.store, &blob_id, &dek).await?;
        let now = self.ctx.clock.now();
        Ok(Stored {
            blob: BlobRow {
                id: blob_id.clone(),
                org_id: asset.org_id.clone(),
                kek_version,
                wrapped_dek,
                size: written.size,
                stored_size: written.stored_size,
                created_at: now,
                region,
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
            .ctx
            .store
            // An asset in the trash is processed all the same: it may be restored.
            .asset_in_any_state(&org_id, asset_id)
            .await
            .map_err(|e| internal(e.into()))?
        else {
            // Purged since: nothing to do.
            return Ok(());
        };
        // A retry starts clean: what an earlier attempt committed is replaced.
        self.discard_renditions(&asset.id).await.map_err(internal)?;
        let blob = self
            .ctx
            .store
            .blob(&asset.blob_id)
            .await
            .map_err(|e| internal(e.into()))?
            .ok_or_else(|| JobFailure::Permanent("the asset has no stored content".into()))?;
        let dek = self
            .keyring
            .data_key(&self.ctx.store, &blob)
            .await
            .map_err(internal)?;
        let blobs = self
            .ctx
            .region_blobs(&blob.region)
            .map_err(|e| JobFailure::Retry(e.to_string()))?;
        let reader = BlobReader::open(blobs, blob.id.to_string(), &dek, blob.size)
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
            worker: self,
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
        let mut tx = self.ctx.store.begin().await?;
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
        self.ctx
            .audit
            .append(
                &mut tx,
                Record {
                    org_id: &asset.org_id,
                    actor: "system".into(),
                    subject: None,
                    action: "asset.processed",
                    target: asset.id.to_string(),
                    ip: String::new(),
                    detail: serde_json::json!({"renditions": stored.len(), "media": info}),
                },
            )
            .await?;
        // The outputs' leases end as their blob rows appear: always one or the other.
        if !tx
            .complete_job(&ctx.id, &ctx.worker, self.ctx.clock.now())
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
        let mut tx = self.ctx.store.begin().await?;
        tx.set_media_state(
            &asset.id,
            &MediaState {
                status: Some("failed".into()),
                error: Some(reason.to_owned()),
                info: None,
            },
        )
        .await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record {
                    org_id: &asset.org_id,
                    actor: "system".into(),
                    subject: None,
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
        let recorded = match self.ctx.store.asset(org_id, asset_id).await {
            Ok(Some(asset)) => self.fail_media(&asset, reason).await,
            // Deleted since: nothing to mark.
            Ok(None) => Ok(()),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = recorded {
            tracing::warn!(asset = %asset_id, error = %e, "could not record a media failure");
        }
    }

    /// Deletes an asset's renditions (rows, data keys, then stored objects).
    pub(crate) async fn discard_renditions(&self, asset_id: &AssetId) -> Result<()> {
        let mut tx = self.ctx.store.begin().await?;
        let blobs = tx.delete_renditions(asset_id).await?;
        tx.commit().await?;
        self.ctx.remove_objects(&blobs).await;
        Ok(())
    }
}
