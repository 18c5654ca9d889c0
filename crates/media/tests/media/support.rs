//! Fixtures: inputs generated once per test run, and ffprobe checks of outputs.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use strongroom_media::{Media, MediaConfig, MediaSource, MemorySource};

/// Seconds, frame rate and size of the test video.
pub const VIDEO_SECONDS: f64 = 4.0;
pub const VIDEO_FPS: u32 = 25;
pub const VIDEO_FRAMES: u64 = 100;

/// Runs ffmpeg (quietly) and returns its stdout; panics with its stderr on failure.
pub fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("/usr/bin/ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A 4 s 1280x720 25 fps H.264/AAC MP4 (testsrc and a 440 Hz sine), with its index (moov) at the
/// END, as phones write it: reading it needs ranged seeks. Generated once.
pub fn video_mp4() -> Bytes {
    static VIDEO: OnceLock<Bytes> = OnceLock::new();
    VIDEO
        .get_or_init(|| {
            // The mp4 muxer must seek back to finish the file, so this synthetic test input is
            // written to a temp dir and read back (it is generated test data, not user content).
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("in.mp4");
            let duration = format!("duration={VIDEO_SECONDS}");
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc=size=1280x720:rate={VIDEO_FPS}:{duration}"),
                "-f",
                "lavfi",
                "-i",
                &format!("sine=frequency=440:sample_rate=48000:{duration}"),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-shortest",
                path.to_str().unwrap(),
            ]);
            Bytes::from(std::fs::read(&path).unwrap())
        })
        .clone()
}

/// A long video of tiny, cheap frames: `seconds` of 64x64 testsrc at 1 fps, H.264 in MP4 (via a
/// temp file: generated test data). ffmpeg finishes its segments far faster than any real sink
/// stores them.
pub fn low_frame_rate_mp4(seconds: u32) -> Bytes {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("low.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size=64x64:rate=1:duration={seconds}"),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        path.to_str().unwrap(),
    ]);
    Bytes::from(std::fs::read(&path).unwrap())
}

/// Three 320x240 pictures an hour apart in Matroska, a stream that says 25 fps: about 15 KiB
/// whose timestamps span two hours. A transcode at the stated rate would repeat its three
/// pictures 180 000 times. Written to a file, the container states the duration; piped, it
/// states none.
pub fn sparse_mkv(states_duration: bool) -> Bytes {
    let args = [
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-frames:v",
        "3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "1",
        // Timestamps in the muxer's milliseconds: one picture per hour.
        "-bsf:v",
        "setts=ts=N*3600000",
        "-f",
        "matroska",
    ];
    if !states_duration {
        return Bytes::from(ffmpeg(&[&args[..], &["pipe:1"]].concat()));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.mkv");
    ffmpeg(&[&args[..], &[path.to_str().unwrap()]].concat());
    Bytes::from(std::fs::read(&path).unwrap())
}

/// A 640x480 PNG, straight from ffmpeg's stdout.
pub fn png_image() -> Bytes {
    static PNG: OnceLock<Bytes> = OnceLock::new();
    PNG.get_or_init(|| {
        Bytes::from(ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x480:rate=1",
            "-frames:v",
            "1",
            "-c:v",
            "png",
            "-f",
            "image2pipe",
            "pipe:1",
        ]))
    })
    .clone()
}

/// A 1000x750 JPEG, straight from ffmpeg's stdout.
pub fn jpeg_image() -> Bytes {
    static JPEG: OnceLock<Bytes> = OnceLock::new();
    JPEG.get_or_init(|| {
        Bytes::from(ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1000x750:rate=1",
            "-frames:v",
            "1",
            "-c:v",
            "mjpeg",
            "-pix_fmt",
            "yuvj420p",
            "-f",
            "image2pipe",
            "pipe:1",
        ]))
    })
    .clone()
}

/// An in-memory source.
pub fn source(bytes: impl Into<Bytes>) -> Arc<dyn MediaSource> {
    Arc::new(MemorySource::new(bytes))
}

/// The pipeline with default settings but 2 s segments (so a 4 s clip has several).
pub fn media() -> Media {
    media_with(|_| {})
}

/// The pipeline with a tweaked configuration.
pub fn media_with(tweak: impl FnOnce(&mut MediaConfig)) -> Media {
    let mut config = MediaConfig::default();
    config.hls.segment_seconds = 2;
    tweak(&mut config);
    Media::new(config)
}

/// ffprobe's JSON about bytes given on stdin (no file involved).
pub fn probe_bytes(bytes: &[u8], extra: &[&str]) -> Result<serde_json::Value, String> {
    let mut child = Command::new("/usr/bin/ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .args(extra)
        .arg("-i")
        .arg("pipe:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    // A writer thread: ffprobe may stop reading early, and must not deadlock us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// ffprobe's JSON about a file, with frames counted.
pub fn probe_file_counting_frames(path: &Path) -> serde_json::Value {
    probe_file_counting_frames_with(path, &[])
}

/// Same, with extra input options.
pub fn probe_file_counting_frames_with(path: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("/usr/bin/ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-count_frames",
            "-show_format",
            "-show_streams",
        ])
        .args(extra)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first stream of `codec_type` in ffprobe JSON.
pub fn stream<'a>(json: &'a serde_json::Value, codec_type: &str) -> Option<&'a serde_json::Value> {
    json["streams"]
        .as_array()?
        .iter()
        .find(|s| s["codec_type"] == codec_type)
}
