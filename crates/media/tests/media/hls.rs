//! HLS packaging end to end: the package plays once decrypted with the key, and not without.

use std::io;

use strongroom_crypto::hls::{HlsIv, HlsKey, decrypt_segment};
use strongroom_media::{
    BoxFuture, HlsPackage, MediaError, MediaSink, MemorySink, OutputFile, Rung,
};

use crate::support::{self, media, media_with, probe_bytes, source, stream};

/// The non-comment lines of a playlist: its URIs.
fn uris(playlist: &str) -> Vec<&str> {
    playlist
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Pairs each segment URI of a variant playlist with the IV its `EXT-X-KEY` line states.
fn segments_with_ivs(playlist: &str) -> Vec<(String, HlsIv)> {
    let mut out = Vec::new();
    let mut iv = None;
    for line in playlist.lines().map(str::trim) {
        if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
            assert!(attrs.starts_with("METHOD=AES-128,"), "{attrs}");
            assert!(
                attrs.contains("URI=\"../key\""),
                "key URI is relative: {attrs}"
            );
            let hex = attrs.split("IV=").nth(1).unwrap();
            iv = Some(HlsIv::parse_hex(hex).unwrap());
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push((
                line.to_owned(),
                iv.take().expect("every segment has its own key line"),
            ));
        }
    }
    out
}

async fn package_test_video() -> (HlsPackage, MemorySink, HlsKey) {
    let key = HlsKey::generate();
    let mut sink = MemorySink::default();
    let package = media()
        .package_hls(
            source(support::video_mp4()),
            &Rung::default_ladder(),
            &key,
            &mut sink,
        )
        .await
        .unwrap();
    (package, sink, key)
}

fn text(sink: &MemorySink, name: &str) -> String {
    let file = sink.get(name).unwrap_or_else(|| panic!("no output {name}"));
    assert_eq!(file.content_type, "application/vnd.apple.mpegurl");
    String::from_utf8(file.bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn packages_an_encrypted_ladder_that_plays_with_the_key_only() {
    let (package, sink, key) = package_test_video().await;

    // The ladder: two rungs at the requested sizes, durations that add up.
    assert_eq!(package.rungs.len(), 2);
    let sizes: Vec<_> = package
        .rungs
        .iter()
        .map(|r| (r.name.as_str(), r.width, r.height))
        .collect();
    assert_eq!(sizes, [("360p", 640, 360), ("720p", 1280, 720)]);
    assert!(
        (package.duration_seconds - support::VIDEO_SECONDS).abs() <= 0.2,
        "duration {}",
        package.duration_seconds
    );
    for rung in &package.rungs {
        assert!(rung.segments.len() >= 2, "2 s segments of a 4 s clip");
        assert!(rung.bandwidth >= rung.average_bandwidth && rung.average_bandwidth > 0);
        assert_eq!(
            rung.codecs.as_deref().map(|c| c.contains("mp4a.40.2")),
            Some(true)
        );
    }
    assert!(package.rungs[1].average_bandwidth > package.rungs[0].average_bandwidth);

    // Sink order: every segment as it was made, then the variant playlists, the master last.
    let names: Vec<&str> = sink.files.iter().map(|f| f.name.as_str()).collect();
    let first_playlist = names.iter().position(|n| n.ends_with(".m3u8")).unwrap();
    assert!(names[..first_playlist].iter().all(|n| n.ends_with(".ts")));
    assert!(names[first_playlist..].iter().all(|n| n.ends_with(".m3u8")));
    assert_eq!(names.last(), Some(&"master.m3u8"));

    // Master: relative variant URIs, no token, no host.
    let master = text(&sink, "master.m3u8");
    assert_eq!(uris(&master), ["360p/index.m3u8", "720p/index.m3u8"]);
    assert!(master.contains("RESOLUTION=640x360") && master.contains("RESOLUTION=1280x720"));
    assert!(!master.contains("://") && !master.contains("127.0.0.1"));

    for rung in &package.rungs {
        let playlist = text(&sink, &rung.playlist);
        assert!(
            !playlist.contains("://") && !playlist.contains("127.0.0.1"),
            "{playlist}"
        );
        assert!(
            playlist.contains("#EXT-X-PLAYLIST-TYPE:VOD") && playlist.contains("#EXT-X-ENDLIST")
        );
        let listed = segments_with_ivs(&playlist);
        assert_eq!(listed.len(), rung.segments.len());

        // Decrypt every segment with the key and the IV the playlist states; concatenated, they
        // are the whole rendition.
        let mut stream_bytes = Vec::new();
        for ((uri, iv), described) in listed.iter().zip(&rung.segments) {
            assert!(
                uri.starts_with("seg") && uri.ends_with(".ts") && !uri.contains('/'),
                "relative segment URI {uri}"
            );
            assert_eq!(described.name, format!("{}/{uri}", rung.name));
            assert_eq!(&described.iv, iv);
            let file = sink.get(&described.name).unwrap();
            assert_eq!(file.content_type, "video/mp2t");
            assert_eq!(file.bytes.len() as u64, described.bytes);
            // Plain MPEG-TS has its sync byte (0x47) at every 188-byte packet; a ciphertext
            // byte is 0x47 by chance one time in 256, so look at every packet, not the first.
            assert!(
                !file.bytes.chunks(188).all(|packet| packet[0] == 0x47),
                "not plain TS packets"
            );
            stream_bytes.extend(decrypt_segment(&key, iv, &file.bytes).unwrap());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{}.ts", rung.name));
        std::fs::write(&path, &stream_bytes).unwrap();
        let json = support::probe_file_counting_frames(&path);
        let video = stream(&json, "video").unwrap();
        assert_eq!(video["codec_name"], "h264");
        assert_eq!(video["width"].as_u64(), Some(u64::from(rung.width)));
        assert_eq!(video["height"].as_u64(), Some(u64::from(rung.height)));
        let frames: u64 = video["nb_read_frames"].as_str().unwrap().parse().unwrap();
        assert_eq!(frames, support::VIDEO_FRAMES, "{} frames", rung.name);
        assert_eq!(stream(&json, "audio").unwrap()["codec_name"], "aac");
        let duration: f64 = json["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (duration - support::VIDEO_SECONDS).abs() <= 0.2,
            "{} plays {duration} s",
            rung.name
        );

        // A segment fetched alone, without the key, is noise to a decoder.
        let raw = &sink.get(&rung.segments[0].name).unwrap().bytes;
        match probe_bytes(raw, &["-count_frames"]) {
            Err(_) => {}
            Ok(json) => assert!(
                stream(&json, "video").is_none(),
                "an encrypted segment decoded: {json}"
            ),
        }
        // And the wrong key does not open it either.
        let wrong = HlsKey::generate();
        let garbled = decrypt_segment(&wrong, &listed[0].1, raw);
        assert_ne!(
            garbled.as_deref(),
            decrypt_segment(&key, &listed[0].1, raw).as_deref()
        );
    }
}

#[tokio::test]
async fn ffmpeg_as_an_hls_client_plays_the_package() {
    let (package, sink, key) = package_test_video().await;
    // Laid out as the playback endpoint serves it: the key beside master.m3u8 (test data in a
    // temp dir; the service never writes these).
    let dir = tempfile::tempdir().unwrap();
    for file in &sink.files {
        let path = dir.path().join(&file.name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &file.bytes).unwrap();
    }
    std::fs::write(dir.path().join("key"), key.expose_bytes()).unwrap();
    for rung in &package.rungs {
        // ffmpeg's HLS demuxer follows `../key` and each segment's IV itself. `key` has no
        // media extension, hence `allowed_extensions`.
        let json = support::probe_file_counting_frames_with(
            &dir.path().join(&rung.playlist),
            &[
                "-allowed_extensions",
                "ALL",
                "-protocol_whitelist",
                "file,crypto",
            ],
        );
        let video = stream(&json, "video").unwrap();
        let frames: u64 = video["nb_read_frames"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            frames,
            support::VIDEO_FRAMES,
            "{} played by ffmpeg",
            rung.name
        );
        assert_eq!(video["height"].as_u64(), Some(u64::from(rung.height)));
    }
    // With another key in its place, the same playlist does not play.
    std::fs::write(dir.path().join("key"), HlsKey::generate().expose_bytes()).unwrap();
    let out = std::process::Command::new("/usr/bin/ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-count_frames",
            "-show_streams",
        ])
        .args([
            "-allowed_extensions",
            "ALL",
            "-protocol_whitelist",
            "file,crypto",
        ])
        .arg(dir.path().join(&package.rungs[0].playlist))
        .output()
        .unwrap();
    if out.status.success() {
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let frames = stream(&json, "video")
            .and_then(|v| v["nb_read_frames"].as_str())
            .map_or(0, |n| n.parse::<u64>().unwrap());
        assert_eq!(frames, 0, "played with the wrong key: {json}");
    }
}

#[tokio::test]
async fn never_upscales_but_keeps_every_requested_rung() {
    let small = support::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25:duration=1",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "matroska",
        "pipe:1",
    ]);
    let key = HlsKey::generate();
    let mut sink = MemorySink::default();
    let package = media()
        .package_hls(source(small), &Rung::default_ladder(), &key, &mut sink)
        .await
        .unwrap();
    let sizes: Vec<_> = package.rungs.iter().map(|r| (r.width, r.height)).collect();
    assert_eq!(
        sizes,
        [(320, 240), (320, 240)],
        "both rungs, neither above the source"
    );
    assert!(!package.source.has_audio);
    assert!(
        package.rungs[0]
            .codecs
            .as_deref()
            .is_none_or(|c| !c.contains("mp4a"))
    );
}

#[tokio::test]
async fn output_size_is_capped() {
    let key = HlsKey::generate();
    let mut sink = MemorySink::default();
    let err = media_with(|c| c.limits.max_output_file_bytes = 20_000)
        .package_hls(
            source(support::video_mp4()),
            &Rung::default_ladder(),
            &key,
            &mut sink,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MediaError::OutputTooLarge { limit: 20_000 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "output exceeds the maximum size of 20000 bytes"
    );
}

/// A sink whose storage is down.
struct BrokenSink;

impl MediaSink for BrokenSink {
    fn put(&mut self, _file: OutputFile) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async { Err(io::Error::other("blob store unavailable")) })
    }
}

#[tokio::test]
async fn a_failing_sink_fails_the_job() {
    let key = HlsKey::generate();
    let err = media()
        .package_hls(
            source(support::video_mp4()),
            &Rung::default_ladder(),
            &key,
            &mut BrokenSink,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::Sink(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn refuses_what_it_cannot_package() {
    let key = HlsKey::generate();
    let err = media()
        .package_hls(
            source(support::png_image()),
            &Rung::default_ladder(),
            &key,
            &mut MemorySink::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::Unsuitable(_)), "{err:?}");
    let err = media()
        .package_hls(
            source(support::video_mp4()),
            &[],
            &key,
            &mut MemorySink::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::InvalidRequest(_)), "{err:?}");
}

/// A sink slower than ffmpeg: every put takes a while.
struct SlowSink(MemorySink, std::time::Duration);

impl MediaSink for SlowSink {
    fn put(&mut self, file: OutputFile) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(self.1).await;
            self.0.put(file).await
        })
    }
}

#[tokio::test]
async fn a_slow_sink_slows_the_job_down_without_losing_anything() {
    let key = HlsKey::generate();
    let mut sink = SlowSink(MemorySink::default(), std::time::Duration::from_millis(250));
    let package = media()
        .package_hls(
            source(support::video_mp4()),
            &Rung::default_ladder(),
            &key,
            &mut sink,
        )
        .await
        .unwrap();
    let segments: usize = package.rungs.iter().map(|r| r.segments.len()).sum();
    // Every segment and the three playlists arrived, each exactly once.
    assert_eq!(sink.0.files.len(), segments + 3);
    for segment in package.rungs.iter().flat_map(|r| &r.segments) {
        let file = sink.0.get(&segment.name).unwrap();
        assert!(decrypt_segment(&key, &segment.iv, &file.bytes).is_some());
    }
}

/// Ten minutes at 1 fps: hundreds of tiny segments that ffmpeg uploads in a burst, one
/// connection each, far faster than the sink stores them. Connections past the loopback
/// server's limit wait their turn (they were once dropped, losing their segments).
#[tokio::test]
async fn a_long_low_frame_rate_video_loses_no_segment() {
    let key = HlsKey::generate();
    let seconds = 600;
    let video = support::low_frame_rate_mp4(seconds);
    let mut sink = SlowSink(MemorySink::default(), std::time::Duration::from_millis(5));
    let package = media()
        .package_hls(source(video), &Rung::default_ladder(), &key, &mut sink)
        .await
        .unwrap();
    // 2 s segments (the test pipeline's): every one of every rung, listed and received once.
    for rung in &package.rungs {
        assert_eq!(rung.segments.len(), 300, "{}", rung.name);
        let played: f64 = rung.segments.iter().map(|s| s.duration_seconds).sum();
        assert!(
            (played - f64::from(seconds)).abs() < 0.5,
            "{}: {played} s",
            rung.name
        );
        for segment in &rung.segments {
            let file = sink.0.get(&segment.name).unwrap();
            assert!(decrypt_segment(&key, &segment.iv, &file.bytes).is_some());
        }
    }
    assert_eq!(sink.0.files.len(), 600 + 3);
}
