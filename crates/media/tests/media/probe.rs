//! ffprobe through the loopback server.

use strongroom_media::MediaKind;

use crate::support::{self, media, source};

#[tokio::test]
async fn probes_a_video_whose_index_is_at_the_end() {
    let info = media().probe(source(support::video_mp4())).await.unwrap();
    assert_eq!(info.kind, MediaKind::Video);
    assert!(info.container.contains("mp4"), "{}", info.container);
    let duration = info.duration_seconds.unwrap();
    assert!(
        (duration - support::VIDEO_SECONDS).abs() < 0.1,
        "duration {duration}"
    );
    assert_eq!((info.width, info.height), (Some(1280), Some(720)));
    assert_eq!(info.video_codec.as_deref(), Some("h264"));
    assert_eq!(info.audio_codec.as_deref(), Some("aac"));
    assert!(info.has_audio);
    let fps = info.frame_rate.unwrap();
    assert!(
        (fps - f64::from(support::VIDEO_FPS)).abs() < 0.01,
        "fps {fps}"
    );
}

#[tokio::test]
async fn probes_images() {
    let info = media().probe(source(support::png_image())).await.unwrap();
    assert_eq!(info.kind, MediaKind::Image);
    assert_eq!((info.width, info.height), (Some(640), Some(480)));
    assert_eq!(info.video_codec.as_deref(), Some("png"));
    assert!(!info.has_audio);

    let info = media().probe(source(support::jpeg_image())).await.unwrap();
    assert_eq!(info.kind, MediaKind::Image);
    assert_eq!((info.width, info.height), (Some(1000), Some(750)));
    assert_eq!(info.video_codec.as_deref(), Some("mjpeg"));
}

#[tokio::test]
async fn probes_audio() {
    let wav = support::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-f",
        "wav",
        "pipe:1",
    ]);
    let info = media().probe(source(wav)).await.unwrap();
    assert_eq!(info.kind, MediaKind::Audio);
    assert!(info.has_audio);
    assert_eq!(info.width, None);
    assert_eq!(info.audio_codec.as_deref(), Some("pcm_s16le"));
}
