//! Image renditions: thumbnails and resized variants, one ffmpeg run each, read from stdout.

use bytes::Bytes;

use crate::config::MediaConfig;
use crate::error::MediaError;
use crate::loopback::JobServer;
use crate::probe::{self, MediaKind};
use crate::process::{Process, Tool, common_args};

/// Largest edge a rendition may ask for.
const MAX_EDGE: u32 = 16384;
/// For a video, the frame is taken this far into it (as a fraction of its duration)...
const VIDEO_FRAME_AT: f64 = 0.1;
/// ...but no later than this many seconds.
const VIDEO_FRAME_MAX_SECONDS: f64 = 10.0;

/// Output encoding of an image rendition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// Baseline JPEG (ffmpeg's `mjpeg`, quality 3 of 2-31). Transparency is lost.
    Jpeg,
    /// Lossy WebP through libwebp (quality 80), alpha kept.
    Webp,
}

impl ImageFormat {
    /// The media type of the encoded bytes.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Webp => "image/webp",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Webp => "webp",
        }
    }

    fn encoder_args(self) -> &'static [&'static str] {
        match self {
            ImageFormat::Jpeg => &[
                "-c:v",
                "mjpeg",
                "-q:v",
                "3",
                "-pix_fmt",
                "yuvj420p",
                "-f",
                "image2pipe",
            ],
            ImageFormat::Webp => &["-c:v", "libwebp", "-quality", "80", "-f", "webp"],
        }
    }
}

/// One rendition to make: the picture scaled to fit `max_width` x `max_height`, aspect ratio
/// kept, never enlarged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    /// Its name, `[a-z0-9_-]{1,64}`, unique in one request (e.g. `thumb`, `w1280`).
    pub name: String,
    /// Widest it may be, in pixels.
    pub max_width: u32,
    /// Tallest it may be, in pixels.
    pub max_height: u32,
    /// How to encode it.
    pub format: ImageFormat,
}

/// A finished image rendition.
#[derive(Clone, Debug)]
pub struct ImageRendition {
    /// The spec's name.
    pub name: String,
    /// Its encoding.
    pub format: ImageFormat,
    /// Media type of `bytes`.
    pub content_type: &'static str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoded image.
    pub bytes: Bytes,
}

/// Checks names and sizes before any process starts.
pub(crate) fn validate_specs(specs: &[ImageSpec]) -> Result<(), MediaError> {
    for (i, spec) in specs.iter().enumerate() {
        if !crate::hls::is_plain_name(&spec.name) {
            return Err(MediaError::InvalidRequest(format!(
                "rendition name {:?} must be 1-64 of [a-z0-9_-]",
                spec.name
            )));
        }
        if specs[..i].iter().any(|s| s.name == spec.name) {
            return Err(MediaError::InvalidRequest(format!(
                "rendition name {:?} is used twice",
                spec.name
            )));
        }
        let edge_ok = |e: u32| (1..=MAX_EDGE).contains(&e);
        if !edge_ok(spec.max_width) || !edge_ok(spec.max_height) {
            return Err(MediaError::InvalidRequest(format!(
                "rendition {:?} must fit in 1..={MAX_EDGE} pixels each way",
                spec.name
            )));
        }
    }
    Ok(())
}

/// The largest size within `max_w` x `max_h` with the aspect ratio of `w` x `h`, never larger
/// than `w` x `h` and never smaller than one pixel.
pub(crate) fn fit(w: u32, h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    let scale = (f64::from(max_w) / f64::from(w))
        .min(f64::from(max_h) / f64::from(h))
        .min(1.0);
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    (side(w).min(max_w), side(h).min(max_h))
}

/// Probes the input, then renders each spec.
pub(crate) async fn run(
    config: &MediaConfig,
    server: &JobServer,
    specs: &[ImageSpec],
) -> Result<Vec<ImageRendition>, MediaError> {
    let info = probe::run(config, server).await?;
    let (Some(stream), Some(w), Some(h)) = (info.video_stream, info.width, info.height) else {
        return Err(MediaError::Unsuitable(
            "this file has no picture to make an image from".to_owned(),
        ));
    };
    let seek = match (info.kind, info.duration_seconds) {
        (MediaKind::Video, Some(d)) => Some((d * VIDEO_FRAME_AT).min(VIDEO_FRAME_MAX_SECONDS)),
        _ => None,
    };
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let (width, height) = fit(w, h, spec.max_width, spec.max_height);
        let mut args = common_args(config, Tool::Ffmpeg);
        if let Some(t) = seek {
            args.push("-ss".to_owned());
            args.push(format!("{t:.3}"));
        }
        args.push("-i".to_owned());
        args.push(server.input_url());
        args.extend([
            "-map".to_owned(),
            format!("0:{stream}"),
            "-frames:v".to_owned(),
            "1".to_owned(),
            "-map_metadata".to_owned(),
            "-1".to_owned(),
            "-vf".to_owned(),
            format!("scale={width}:{height}:flags=lanczos,setsar=1"),
        ]);
        args.extend(spec.format.encoder_args().iter().map(|s| (*s).to_owned()));
        args.extend(["-protocol_whitelist", "pipe", "pipe:1"].map(str::to_owned));
        let process = Process::spawn(
            config,
            Tool::Ffmpeg,
            &args,
            config.limits.image_timeout,
            Some(config.limits.max_output_file_bytes),
        )?;
        let bytes = process.finish(|s| server.redact(s)).await?.stdout;
        if bytes.is_empty() {
            return Err(MediaError::NotMedia {
                detail: "ffmpeg decoded no picture".to_owned(),
            });
        }
        out.push(ImageRendition {
            name: spec.name.clone(),
            format: spec.format,
            content_type: spec.format.content_type(),
            width,
            height,
            bytes: Bytes::from(bytes),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_without_upscaling() {
        assert_eq!(fit(1280, 720, 320, 320), (320, 180));
        assert_eq!(fit(720, 1280, 320, 320), (180, 320));
        assert_eq!(fit(100, 50, 320, 320), (100, 50), "never enlarged");
        assert_eq!(fit(4000, 10, 100, 100), (100, 1), "at least one pixel");
        assert_eq!(fit(1920, 1080, 1280, 10000), (1280, 720));
    }

    #[test]
    fn specs_are_checked() {
        let spec = |name: &str, w| ImageSpec {
            name: name.to_owned(),
            max_width: w,
            max_height: 100,
            format: ImageFormat::Jpeg,
        };
        assert!(validate_specs(&[spec("thumb", 100), spec("w1280", 1280)]).is_ok());
        assert!(validate_specs(&[spec("thumb", 100), spec("thumb", 200)]).is_err());
        assert!(validate_specs(&[spec("../x", 100)]).is_err());
        assert!(validate_specs(&[spec("big", 0)]).is_err());
    }
}
