//! Strongroom's media pipeline: probing, image renditions and AES-128 encrypted HLS packaging,
//! done by the real `ffmpeg`/`ffprobe` as external processes.
//!
//! # No plaintext on disk
//! User content is stored encrypted and must never touch disk in the clear, not even in a temp
//! file. So ffmpeg never gets a path: for the duration of one job this crate starts a small HTTP
//! server on `127.0.0.1:0` whose every URL sits under an unguessable 128-bit random prefix
//! (another local user can reach the port, but not guess the path). ffmpeg reads the source from
//! it with `Range` requests, which the server answers from the caller's [`MediaSource`] (in
//! production: ranged reads that decrypt the stored blob), and writes its outputs back to it by
//! HTTP `PUT` (HLS) or on stdout (single images). HLS segments are encrypted in this process
//! (through `strongroom_crypto::hls`) and handed to the caller's [`MediaSink`] as each one
//! completes; when the sink falls behind, the server stops reading ffmpeg's next upload, so
//! memory stays bounded by a few segments whatever the video's length. Playlists are written by
//! this crate at the end. ffmpeg additionally runs with `RLIMIT_FSIZE = 0`, so a write to any
//! local file kills it.
//!
//! # Hostile input
//! Every file is assumed hostile. Each ffmpeg/ffprobe process:
//! - runs under util-linux `prlimit` (address space, CPU seconds, open files, no core dumps,
//!   no file writes) with a cleared environment (no `http_proxy`), `-nostdin` and bounded threads;
//! - has a wall-clock timeout after which it is killed (and it is killed if the job's future is
//!   dropped);
//! - may only use the `http` and `tcp` protocols (never `file:`) and only the container formats of
//!   [`ALLOWED_FORMATS`], so an HLS playlist, a concat script or an SVG cannot make it open another
//!   URL;
//! - has its outputs capped in size by the loopback server, and its stderr kept to a bounded tail.
//!
//! # Limits of this crate
//! It does not store anything or talk to the database: the caller persists what the sink
//! receives, stores the [`HlsKey`] sealed, and serves the key and playlists behind its own
//! authorization. Outputs handed to the sink before a job fails are not a package: the caller
//! must discard them. JPEG EXIF orientation is not applied to image renditions (ffmpeg 5.1
//! ignores it); video rotation metadata is. Animated WebP cannot be read (ffmpeg 5.1). The memory
//! limit is on address space, which x264's threads reserve generously (a 720p ladder needs about
//! 1 GiB of it); when the limit bites, the error says "memory" only if the library that failed
//! said so.
//!
//! What this crate must never do: write user content or keys to disk, hand ffmpeg a key, or name
//! a cryptography crate (all cryptography goes through `strongroom-crypto`).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod error;
mod hls;
mod image;
mod io;
mod loopback;
mod probe;
mod process;

use std::sync::Arc;

pub use config::{ALLOWED_FORMATS, HlsSettings, Limits, MediaConfig};
pub use error::MediaError;
pub use hls::{
    HlsPackage, HlsTarget, KEY_URI, MASTER_PLAYLIST, PLAYLIST_CONTENT_TYPE, PackagedRung,
    PackagedSegment, Rung, SEGMENT_CONTENT_TYPE, VARIANT_PLAYLIST, hls_ffmpeg_args,
};
pub use image::{ImageFormat, ImageRendition, ImageSpec};
pub use io::{BoxFuture, MediaSink, MediaSource, MemorySink, MemorySource, OutputFile};
pub use probe::{MediaInfo, MediaKind};

use strongroom_crypto::hls::HlsKey;

/// The media pipeline: cheap to clone, holds only configuration. Each call is one job with its own
/// loopback server and ffmpeg processes; calls may run concurrently.
#[derive(Clone, Debug)]
pub struct Media {
    config: Arc<MediaConfig>,
}

impl Media {
    /// A pipeline with this configuration (tool paths, limits, HLS settings).
    pub fn new(config: MediaConfig) -> Media {
        Media {
            config: Arc::new(config),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &MediaConfig {
        &self.config
    }

    /// Probes the source with ffprobe: kind, duration, display size, codecs.
    ///
    /// Fails with [`MediaError::NotMedia`] when ffprobe cannot read it, [`MediaError::Refused`]
    /// for containers that could reference other files (playlists, concat scripts).
    pub async fn probe(&self, source: Arc<dyn MediaSource>) -> Result<MediaInfo, MediaError> {
        let server = loopback::JobServer::start(source, None, &self.config.limits).await?;
        let result = probe::run(&self.config, &server).await;
        server.check_failure(result)
    }

    /// Renders the image renditions described by `specs` (thumbnails, resized variants) from an
    /// image, or from a frame early in a video. Aspect ratio is kept and nothing is upscaled.
    pub async fn image_renditions(
        &self,
        source: Arc<dyn MediaSource>,
        specs: &[ImageSpec],
    ) -> Result<Vec<ImageRendition>, MediaError> {
        image::validate_specs(specs)?;
        let server = loopback::JobServer::start(source, None, &self.config.limits).await?;
        let result = image::run(&self.config, &server, specs).await;
        server.check_failure(result)
    }

    /// Transcodes a video into the HLS `ladder` (one ffmpeg run), encrypts every segment with
    /// AES-128 under `key` as it completes and hands it to `sink`, then hands over the variant
    /// playlists and finally `master.m3u8`. Returns the package description.
    ///
    /// Output names, relative to the package root: `master.m3u8`, `{rung}/index.m3u8`,
    /// `{rung}/segNNNNN.ts`. Playlists use relative URIs only; variant playlists name the key
    /// `../key`, so the playback endpoint serves it at `{root}/key`.
    pub async fn package_hls(
        &self,
        source: Arc<dyn MediaSource>,
        ladder: &[Rung],
        key: &HlsKey,
        sink: &mut dyn MediaSink,
    ) -> Result<HlsPackage, MediaError> {
        hls::validate_ladder(ladder)?;
        let policy = hls::output_policy(ladder);
        let server = loopback::JobServer::start(source, Some(policy), &self.config.limits).await?;
        hls::package(&self.config, server, ladder, key, sink).await
    }
}
