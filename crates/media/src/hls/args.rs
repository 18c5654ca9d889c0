//! The one ffmpeg command line that transcodes a video into every rung of the ladder and
//! segments it as HLS.

use std::path::Path;

use crate::config::MediaConfig;
use crate::error::MediaError;
use crate::hls::{Rung, SEGMENT_PATTERN};
use crate::probe::MediaInfo;
use crate::process::{Tool, common_args};

/// Where the HLS muxer writes.
#[derive(Clone, Copy, Debug)]
pub enum HlsTarget<'a> {
    /// HTTP `PUT` to this URL prefix (the job's loopback server): what
    /// [`Media::package_hls`](crate::Media::package_hls) uses.
    Loopback(&'a str),
    /// Plain files under this directory, input from a local file, no whitelists: plain
    /// `ffmpeg -f hls`, for comparison runs (the benchmark) only.
    Directory(&'a Path),
}

/// Picture size of a rung for a source of display size `sw` x `sh`: the rung's `height` is the
/// shorter side (so portrait video gets portrait rungs), capped at the source's shorter side
/// (never upscaled), both sides even as 4:2:0 H.264 needs.
pub(crate) fn rung_size(sw: u32, sh: u32, short_side: u32) -> (u32, u32) {
    let src_short = sw.min(sh).max(1);
    let scale = f64::from(short_side.min(src_short)) / f64::from(src_short);
    let even = |v: u32| {
        let scaled = (f64::from(v) * scale / 2.0).round() as u32 * 2;
        // Rounding up to even must not enlarge either: never past the source's even floor.
        scaled.min(v & !1).max(2)
    };
    (even(sw), even(sh))
}

/// The ffmpeg arguments (after the program name) that [`Media::package_hls`](crate::Media::package_hls)
/// runs for this source and ladder: one decode, a `split` into one scaler and one x264 encoder
/// per rung, AAC audio per rung if the source has sound, keyframes forced on the segment grid,
/// MPEG-TS segments of `segment_seconds`, VOD playlists. Public so the benchmark can run the very
/// same encode as plain `ffmpeg -f hls`; the service never needs it.
pub fn hls_ffmpeg_args(
    config: &MediaConfig,
    info: &MediaInfo,
    ladder: &[Rung],
    input: &str,
    target: HlsTarget<'_>,
) -> Result<Vec<String>, MediaError> {
    let (Some(video), Some(sw), Some(sh)) = (info.video_stream, info.width, info.height) else {
        return Err(MediaError::Unsuitable(
            "this file has no video to package".to_owned(),
        ));
    };
    let settings = &config.hls;
    let threads = config.limits.threads.max(1).to_string();
    let mut args = match target {
        HlsTarget::Loopback(_) => common_args(config, Tool::Ffmpeg),
        HlsTarget::Directory(_) => ["-hide_banner", "-nostdin", "-loglevel", "error", "-threads"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([threads.clone()])
            .collect(),
    };
    args.extend(["-i".to_owned(), input.to_owned()]);

    // One decode, split into a scaler per rung. A frame-rate cap first, if the source needs it.
    let mut graph = format!("[0:{video}]");
    if info
        .frame_rate
        .is_some_and(|r| r > f64::from(settings.max_frame_rate) + 0.5)
    {
        graph.push_str(&format!("fps={},", settings.max_frame_rate));
    }
    graph.push_str(&format!("split={}", ladder.len()));
    for i in 0..ladder.len() {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, rung) in ladder.iter().enumerate() {
        let (w, h) = rung_size(sw, sh, rung.height);
        graph.push_str(&format!(
            ";[s{i}]scale={w}:{h}:flags=bicubic,setsar=1,format=yuv420p[v{i}]"
        ));
    }
    args.extend([
        "-filter_complex_threads".to_owned(),
        threads.clone(),
        "-filter_complex".to_owned(),
        graph,
    ]);

    let audio = info.audio_stream;
    let mut stream_map = Vec::with_capacity(ladder.len());
    for (i, rung) in ladder.iter().enumerate() {
        args.extend(["-map".to_owned(), format!("[v{i}]")]);
        if let Some(a) = audio {
            args.extend(["-map".to_owned(), format!("0:{a}")]);
            stream_map.push(format!("v:{i},a:{i},name:{}", rung.name));
        } else {
            stream_map.push(format!("v:{i},name:{}", rung.name));
        }
        let kbps = rung.video_kbps;
        args.extend([
            format!("-b:v:{i}"),
            format!("{kbps}k"),
            format!("-maxrate:v:{i}"),
            format!("{}k", kbps + kbps / 10),
            format!("-bufsize:v:{i}"),
            format!("{}k", kbps * 2),
        ]);
        if audio.is_some() {
            args.extend([format!("-b:a:{i}"), format!("{}k", rung.audio_kbps)]);
        }
    }
    let seg = settings.segment_seconds.max(1);
    for s in [
        "-c:v",
        "libx264",
        "-preset",
        &settings.x264_preset,
        "-profile:v",
        "main",
        "-threads",
        &threads,
        // Every rung gets an IDR frame at each multiple of the segment length, so all rungs cut
        // at the same instants and a player can switch between them at any segment boundary.
        "-force_key_frames",
        &format!("expr:gte(t,n_forced*{seg})"),
        "-forced-idr",
        "1",
    ] {
        args.push(s.to_owned());
    }
    if audio.is_some() {
        args.extend(["-c:a", "aac", "-ac", "2"].map(str::to_owned));
    }
    // No subtitles or data streams, and none of the uploader's metadata (phone videos carry GPS
    // positions) in what viewers download.
    for s in [
        "-sn",
        "-dn",
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-f",
        "hls",
        "-hls_time",
        &seg.to_string(),
        "-hls_playlist_type",
        "vod",
        "-hls_list_size",
        "0",
        "-hls_segment_type",
        "mpegts",
        "-master_pl_name",
        super::MASTER_PLAYLIST,
        "-var_stream_map",
        &stream_map.join(" "),
    ] {
        args.push(s.to_owned());
    }
    let base = match target {
        HlsTarget::Loopback(base) => {
            args.extend(["-method", "PUT", "-protocol_whitelist", "http,tcp"].map(str::to_owned));
            base.trim_end_matches('/').to_owned()
        }
        HlsTarget::Directory(dir) => dir.display().to_string(),
    };
    args.extend([
        "-hls_segment_filename".to_owned(),
        format!("{base}/%v/{SEGMENT_PATTERN}"),
        format!("{base}/%v/{}", super::VARIANT_PLAYLIST),
    ]);
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rung_sizes_keep_aspect_and_never_upscale() {
        assert_eq!(rung_size(1280, 720, 360), (640, 360));
        assert_eq!(rung_size(1280, 720, 720), (1280, 720));
        assert_eq!(
            rung_size(1280, 720, 1080),
            (1280, 720),
            "capped at the source"
        );
        assert_eq!(
            rung_size(720, 1280, 360),
            (360, 640),
            "portrait stays portrait"
        );
        assert_eq!(rung_size(640, 480, 720), (640, 480));
        assert_eq!(rung_size(853, 480, 360), (640, 360));
        assert_eq!(
            rung_size(3, 3, 360),
            (2, 2),
            "odd sizes become even, not larger"
        );
    }
}
