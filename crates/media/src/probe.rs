//! What a file is, according to ffprobe (`-of json -show_format -show_streams`).

use serde::Deserialize;

use crate::config::MediaConfig;
use crate::error::MediaError;
use crate::loopback::JobServer;
use crate::process::{PICTURE_TOO_LARGE, Process, Tool, common_args};

/// The most ffprobe JSON accepted (a file with thousands of streams is not worth parsing).
const MAX_PROBE_JSON: u64 = 4 << 20;

/// What kind of media a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// A still picture (PNG, JPEG, WebP, GIF, BMP, TIFF); for an animation, the first frame
    /// counts.
    Image,
    /// Moving pictures, with or without sound.
    Video,
    /// Sound only (cover art does not make it a video).
    Audio,
    /// A container ffprobe can read that holds neither pictures nor sound.
    Unknown,
}

/// The facts about a file the pipeline and the service need.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaInfo {
    /// Image, video, audio or unknown.
    pub kind: MediaKind,
    /// ffprobe's container name, e.g. `mov,mp4,m4a,3gp,3g2,mj2` or `png_pipe`.
    pub container: String,
    /// Duration in seconds, when the container states one.
    pub duration_seconds: Option<f64>,
    /// Display width of the main picture, after rotation and pixel aspect ratio.
    pub width: Option<u32>,
    /// Display height of the main picture, after rotation and pixel aspect ratio.
    pub height: Option<u32>,
    /// Codec of the main picture stream, e.g. `h264`, `png`.
    pub video_codec: Option<String>,
    /// Codec of the first audio stream, e.g. `aac`.
    pub audio_codec: Option<String>,
    /// Whether there is an audio stream.
    pub has_audio: bool,
    /// Average frame rate of the video, frames per second.
    pub frame_rate: Option<f64>,
    /// ffmpeg's index of the main picture stream (cover art excluded for audio).
    pub video_stream: Option<u32>,
    /// ffmpeg's index of the first audio stream.
    pub audio_stream: Option<u32>,
}

#[derive(Deserialize)]
struct ProbeJson {
    #[serde(default)]
    streams: Vec<StreamJson>,
    format: Option<FormatJson>,
}

#[derive(Deserialize)]
struct FormatJson {
    #[serde(default)]
    format_name: String,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct StreamJson {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    sample_aspect_ratio: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    #[serde(default)]
    disposition: Disposition,
    #[serde(default)]
    side_data_list: Vec<SideData>,
}

#[derive(Deserialize, Default)]
struct Disposition {
    #[serde(default)]
    attached_pic: i64,
}

#[derive(Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

/// Runs ffprobe on the job's input.
pub(crate) async fn run(config: &MediaConfig, server: &JobServer) -> Result<MediaInfo, MediaError> {
    let mut args = common_args(config, Tool::Ffprobe);
    args.extend(
        ["-of", "json", "-show_format", "-show_streams"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    args.push(server.input_url());
    let process = Process::spawn(
        config,
        Tool::Ffprobe,
        &args,
        config.limits.probe_timeout,
        Some(MAX_PROBE_JSON),
    )?;
    let done = process.finish(|s| server.redact(s)).await?;
    // ffprobe still succeeds when the decoder refused a picture as too large, reporting a 0x0
    // picture; say what happened rather than "no picture".
    if done.stderr.contains(PICTURE_TOO_LARGE) {
        return Err(MediaError::ResourceLimit {
            resource: "picture size",
            detail: done.stderr,
        });
    }
    parse(&done.stdout)
}

/// Interprets ffprobe's JSON.
pub(crate) fn parse(json: &[u8]) -> Result<MediaInfo, MediaError> {
    let probe: ProbeJson = serde_json::from_slice(json)
        .map_err(|e| MediaError::Internal(format!("ffprobe printed unexpected JSON: {e}")))?;
    let container = probe
        .format
        .as_ref()
        .map(|f| f.format_name.clone())
        .unwrap_or_default();
    let duration_seconds = probe
        .format
        .as_ref()
        .and_then(|f| f.duration.as_deref())
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0);
    let is_type = |s: &StreamJson, t: &str| s.codec_type.as_deref() == Some(t);
    let picture = probe
        .streams
        .iter()
        .find(|s| is_type(s, "video") && s.disposition.attached_pic == 0 && has_size(s));
    let cover = probe
        .streams
        .iter()
        .find(|s| is_type(s, "video") && has_size(s));
    let audio = probe.streams.iter().find(|s| is_type(s, "audio"));
    let still_container = container.ends_with("_pipe") || container == "gif" || container == "apng";
    let kind = match (picture, audio) {
        (Some(_), _) if still_container => MediaKind::Image,
        (Some(_), _) => MediaKind::Video,
        (None, Some(_)) => MediaKind::Audio,
        (None, None) => MediaKind::Unknown,
    };
    // An audio file's cover art is still a picture to make thumbnails from.
    let shown = picture.or(cover);
    let (width, height) = shown.map_or((None, None), display_size);
    Ok(MediaInfo {
        kind,
        container,
        duration_seconds,
        width,
        height,
        video_codec: shown.and_then(|s| s.codec_name.clone()),
        audio_codec: audio.and_then(|s| s.codec_name.clone()),
        has_audio: audio.is_some(),
        frame_rate: picture.and_then(|s| {
            rational(s.avg_frame_rate.as_deref()).or(rational(s.r_frame_rate.as_deref()))
        }),
        video_stream: shown.map(|s| s.index),
        audio_stream: audio.map(|s| s.index),
    })
}

/// Whether ffprobe could tell the picture's size (it reports 0x0 when it could not decode).
fn has_size(s: &StreamJson) -> bool {
    s.width.is_some_and(|w| w > 0) && s.height.is_some_and(|h| h > 0)
}

/// The size a player shows: coded size stretched by the pixel aspect ratio, then turned by a
/// quarter-turn rotation.
fn display_size(s: &StreamJson) -> (Option<u32>, Option<u32>) {
    let (Some(w), Some(h)) = (s.width, s.height) else {
        return (None, None);
    };
    if w == 0 || h == 0 {
        return (None, None);
    }
    let mut width = f64::from(w);
    if let Some(sar) = rational_colon(s.sample_aspect_ratio.as_deref()) {
        width *= sar;
    }
    let width = (width.round() as u32).max(1);
    let quarter_turn = s
        .side_data_list
        .iter()
        .filter_map(|d| d.rotation)
        .any(|r| (r.abs() - 90.0).abs() < 1.0 || (r.abs() - 270.0).abs() < 1.0);
    if quarter_turn {
        (Some(h), Some(width))
    } else {
        (Some(width), Some(h))
    }
}

/// `"25/1"` -> 25.0; `"0/0"` and nonsense -> `None`.
fn rational(s: Option<&str>) -> Option<f64> {
    let (n, d) = s?.split_once('/')?;
    ratio(n, d)
}

/// `"4:3"` -> 1.333; `"0:1"` (unknown) -> `None`.
fn rational_colon(s: Option<&str>) -> Option<f64> {
    let (n, d) = s?.split_once(':')?;
    ratio(n, d)
}

fn ratio(n: &str, d: &str) -> Option<f64> {
    let (n, d) = (n.trim().parse::<f64>().ok()?, d.trim().parse::<f64>().ok()?);
    let r = n / d;
    (r.is_finite() && r > 0.0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_with_rotation_and_cover_art_rules() {
        let json = br#"{"streams":[
            {"index":0,"codec_type":"video","codec_name":"h264","width":1280,"height":720,
             "sample_aspect_ratio":"1:1","avg_frame_rate":"30000/1001",
             "side_data_list":[{"side_data_type":"Display Matrix","rotation":-90}]},
            {"index":1,"codec_type":"audio","codec_name":"aac"}],
            "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"4.000000"}}"#;
        let info = parse(json).unwrap();
        assert_eq!(info.kind, MediaKind::Video);
        assert_eq!((info.width, info.height), (Some(720), Some(1280)));
        assert!((info.frame_rate.unwrap() - 29.97).abs() < 0.01);
        assert_eq!(info.duration_seconds, Some(4.0));
        assert_eq!(info.audio_stream, Some(1));

        let json = br#"{"streams":[
            {"index":0,"codec_type":"audio","codec_name":"mp3"},
            {"index":1,"codec_type":"video","codec_name":"mjpeg","width":500,"height":500,
             "disposition":{"attached_pic":1}}],
            "format":{"format_name":"mp3","duration":"180.5"}}"#;
        let info = parse(json).unwrap();
        assert_eq!(info.kind, MediaKind::Audio);
        assert_eq!(
            info.video_stream,
            Some(1),
            "cover art can still make a thumbnail"
        );

        let json = br#"{"streams":[{"index":0,"codec_type":"video","codec_name":"png",
            "width":300,"height":200,"sample_aspect_ratio":"2:1"}],
            "format":{"format_name":"png_pipe"}}"#;
        let info = parse(json).unwrap();
        assert_eq!(info.kind, MediaKind::Image);
        assert_eq!((info.width, info.height), (Some(600), Some(200)));
        assert_eq!(info.duration_seconds, None);

        let json =
            br#"{"streams":[{"index":0,"codec_type":"data"}],"format":{"format_name":"mpegts"}}"#;
        assert_eq!(parse(json).unwrap().kind, MediaKind::Unknown);
    }
}
