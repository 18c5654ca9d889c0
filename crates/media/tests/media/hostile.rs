//! Broken and hostile inputs fail cleanly, quickly, and without reaching anything else.

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strongroom_crypto::hls::HlsKey;
use strongroom_media::{
    BoxFuture, ImageFormat, ImageSpec, MediaError, MediaSource, MemorySink, Rung,
};

use crate::support::{self, media, media_with, source};

/// Every failure here must come back well within this.
const QUICKLY: Duration = Duration::from_secs(10);

#[tokio::test]
async fn garbage_is_not_media() {
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let started = Instant::now();
    let err = media().probe(source(garbage.clone())).await.unwrap_err();
    assert!(matches!(err, MediaError::NotMedia { .. }), "{err:?}");
    assert_eq!(err.to_string(), "not a media file ffmpeg can read");
    assert!(!err.is_retryable());
    let err = media()
        .package_hls(
            source(garbage),
            &Rung::default_ladder(),
            &HlsKey::generate(),
            &mut MemorySink::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::NotMedia { .. }), "{err:?}");
    let err = media().probe(source(Bytes::new())).await.unwrap_err();
    assert!(matches!(err, MediaError::NotMedia { .. }), "empty: {err:?}");
    assert!(started.elapsed() < QUICKLY, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_truncated_mp4_is_not_media() {
    let video = support::video_mp4();
    // Its index (moov) is at the end: cut it off.
    let truncated = video.slice(..video.len() * 6 / 10);
    let started = Instant::now();
    let err = media().probe(source(truncated.clone())).await.unwrap_err();
    assert!(matches!(err, MediaError::NotMedia { .. }), "{err:?}");
    let detail = err.detail().unwrap();
    assert!(detail.contains("moov atom not found"), "{detail}");
    assert!(
        !detail.contains("127.0.0.1"),
        "loopback URL redacted: {detail}"
    );
    let err = media()
        .package_hls(
            source(truncated),
            &Rung::default_ladder(),
            &HlsKey::generate(),
            &mut MemorySink::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::NotMedia { .. }), "{err:?}");
    assert!(started.elapsed() < QUICKLY, "took {:?}", started.elapsed());
}

/// ffmpeg processes still alive whose command line contains `needle`.
fn live_ffmpeg_with(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("ffmpeg") && c.contains(needle))
        .count()
}

#[tokio::test]
async fn a_tiny_timeout_kills_a_long_transcode_promptly() {
    // x264's slowest preset takes many seconds for this clip; the limit is one.
    let media = media_with(|c| {
        c.hls.x264_preset = "placebo".to_owned();
        c.limits.transcode_timeout = Duration::from_secs(1);
    });
    // Made before the clock starts: only the job is timed.
    let video = support::video_mp4();
    let started = Instant::now();
    let err = media
        .package_hls(
            source(video),
            &Rung::default_ladder(),
            &HlsKey::generate(),
            &mut MemorySink::default(),
        )
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, MediaError::Timeout { seconds: 1 }), "{err:?}");
    assert_eq!(err.to_string(), "processing timed out after 1 s");
    // Probe (well under a second) + the one-second limit + the kill.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(live_ffmpeg_with("placebo"), 0, "the killed ffmpeg is gone");
}

/// Inputs that try to make ffmpeg read a local file or another URL, and whether ffmpeg must
/// recognise them (and the format whitelist refuse them by name) or may simply not read them.
fn references(port: u16) -> Vec<(&'static str, String, bool)> {
    vec![
        (
            "HLS playlist -> file:",
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
                .to_owned(),
            true,
        ),
        (
            "HLS playlist -> http://127.0.0.1 elsewhere",
            format!(
                "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n\
                 #EXTINF:10.0,\nhttp://127.0.0.1:{port}/steal.ts\n#EXT-X-ENDLIST\n"
            ),
            true,
        ),
        (
            "concat script -> /etc/passwd",
            "ffconcat version 1.0\nfile /etc/passwd\n".to_owned(),
            true,
        ),
        (
            "concat script -> http elsewhere",
            format!("ffconcat version 1.0\nfile http://127.0.0.1:{port}/steal.ts\n"),
            true,
        ),
        (
            "SVG -> file:",
            "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
             width=\"10\" height=\"10\"><image xlink:href=\"file:///etc/passwd\"/></svg>"
                .to_owned(),
            false,
        ),
    ]
}

fn assert_refused(what: &str, err: &MediaError, recognised: bool) {
    match err {
        MediaError::Refused { .. } => assert_eq!(
            err.to_string(),
            "media format not accepted: this kind of file can make the decoder open other files \
             or URLs"
        ),
        MediaError::NotMedia { .. } if !recognised => {}
        other => panic!("{what}: {other:?}"),
    }
    assert!(
        !err.detail().unwrap_or("").contains("root:"),
        "{what}: /etc/passwd leaked"
    );
}

#[tokio::test]
async fn inputs_that_reference_files_or_urls_are_refused() {
    // A bystander server: nothing may connect to it.
    let bystander = TcpListener::bind("127.0.0.1:0").unwrap();
    bystander.set_nonblocking(true).unwrap();
    let port = bystander.local_addr().unwrap().port();
    for (what, text, recognised) in references(port) {
        let started = Instant::now();
        let err = media()
            .probe(source(text.clone().into_bytes()))
            .await
            .unwrap_err();
        assert_refused(what, &err, recognised);
        let err = media()
            .package_hls(
                source(text.clone().into_bytes()),
                &Rung::default_ladder(),
                &HlsKey::generate(),
                &mut MemorySink::default(),
            )
            .await
            .unwrap_err();
        assert_refused(what, &err, recognised);
        let err = media()
            .image_renditions(
                source(text.into_bytes()),
                &[ImageSpec {
                    name: "t".to_owned(),
                    max_width: 100,
                    max_height: 100,
                    format: ImageFormat::Jpeg,
                }],
            )
            .await
            .unwrap_err();
        assert_refused(what, &err, recognised);
        assert!(
            started.elapsed() < QUICKLY,
            "{what} took {:?}",
            started.elapsed()
        );
    }
    assert!(
        bystander.accept().is_err(),
        "a crafted input made ffmpeg connect to another local server"
    );
}

/// A source whose storage fails past its first bytes.
struct FailingSource(Bytes);

impl MediaSource for FailingSource {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> BoxFuture<'_, io::Result<Bytes>> {
        let result = if offset >= 4096 {
            Err(io::Error::other("blob store unavailable"))
        } else {
            let end = (offset as usize + len).min(4096);
            Ok(self.0.slice(offset as usize..end))
        };
        Box::pin(async move { result })
    }
}

#[tokio::test]
async fn a_failing_source_is_reported_as_such() {
    let err = media()
        .probe(Arc::new(FailingSource(support::video_mp4())))
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::Source(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "reading the source failed: blob store unavailable"
    );
}

#[tokio::test]
async fn a_missing_tool_is_an_operator_error() {
    let err = media_with(|c| c.ffprobe = "/nonexistent/ffprobe".into())
        .probe(source(support::png_image()))
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ffprobe"));
}

/// CRC-32 (IEEE) of PNG chunks.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A 70-byte PNG that claims to be 15000 x 15000 pixels (225 MB once decoded; below ffmpeg's
/// own sanity limit, above the configured `max_pixels`).
fn png_bomb() -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&15_000u32.to_be_bytes());
    ihdr.extend_from_slice(&15_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale, no interlace
    // zlib: one stored deflate block holding a single row filter byte.
    let idat = [
        0x78, 0x01, 0x01, 0x01, 0x00, 0xFE, 0xFF, 0x00, 0x00, 0x01, 0x00, 0x01,
    ];
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &idat));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[tokio::test]
async fn a_picture_bomb_is_stopped_before_it_allocates() {
    let started = Instant::now();
    let result = media()
        .image_renditions(
            source(png_bomb()),
            &[ImageSpec {
                name: "t".to_owned(),
                max_width: 100,
                max_height: 100,
                format: ImageFormat::Jpeg,
            }],
        )
        .await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::ResourceLimit {
                resource: "picture size",
                ..
            } | MediaError::NotMedia { .. }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < QUICKLY, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn the_memory_limit_applies_to_every_run() {
    // 120 MiB of address space is less than ffmpeg's shared libraries alone: the tool cannot
    // even start. (A limit that bites mid-transcode, ~300 MiB for this clip, is reported as
    // "memory" only when the library that hit the wall says so: x264 sometimes fails silently
    // when a thread cannot get its stack, and the error is then a plain ToolFailed.)
    let started = Instant::now();
    let err = media_with(|c| c.limits.memory_bytes = 120 << 20)
        .package_hls(
            source(support::video_mp4()),
            &Rung::default_ladder(),
            &HlsKey::generate(),
            &mut MemorySink::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MediaError::ResourceLimit {
                resource: "memory",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "processing exceeded its memory limit");
    assert!(started.elapsed() < QUICKLY, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_tiny_file_claiming_hours_is_refused_before_transcoding() {
    let sparse = support::sparse_mkv(true);
    let info = media().probe(source(sparse.clone())).await.unwrap();
    assert!(info.duration_seconds.unwrap() > 7000.0, "{info:?}");
    let started = Instant::now();
    let mut sink = MemorySink::default();
    let err = media()
        .package_hls(
            source(sparse.clone()),
            &Rung::default_ladder(),
            &HlsKey::generate(),
            &mut sink,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::Implausible(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("the file claims 2 h 0 min of video but holds only "),
        "{message}"
    );
    assert!(message.ends_with("refused as implausible"), "{message}");
    assert!(!err.is_retryable());
    assert!(sink.files.is_empty(), "nothing was produced");
    assert!(started.elapsed() < QUICKLY, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn output_far_beyond_the_source_size_is_stopped() {
    // No stated duration to judge: the output bound stops it as it runs. A 1 MiB allowance
    // (instead of 16) keeps the test short; the proportion is the default's.
    let sparse = support::sparse_mkv(false);
    assert_eq!(
        media()
            .probe(source(sparse.clone()))
            .await
            .unwrap()
            .duration_seconds,
        None
    );
    let media = media_with(|c| c.limits.output_allowance_bytes = 1 << 20);
    let limit = media
        .config()
        .limits
        .proportional_output_bytes(sparse.len() as u64);
    let mut sink = MemorySink::default();
    let started = Instant::now();
    let err = media
        .package_hls(
            source(sparse),
            &Rung::default_ladder(),
            &HlsKey::generate(),
            &mut sink,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::Implausible(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with("processing produced more than 1.5 MiB from a file of ")
            && message.ends_with("refused as implausible"),
        "{message}"
    );
    let produced: u64 = sink.files.iter().map(|f| f.bytes.len() as u64).sum();
    assert!(
        produced <= limit,
        "{produced} bytes handed on, limit {limit}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
