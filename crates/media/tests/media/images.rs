//! Image renditions: sizes, formats, and that the bytes really are those images.

use strongroom_media::{ImageFormat, ImageSpec, MediaError};

use crate::support::{self, media, probe_bytes, source, stream};

fn spec(name: &str, max_width: u32, max_height: u32, format: ImageFormat) -> ImageSpec {
    ImageSpec {
        name: name.to_owned(),
        max_width,
        max_height,
        format,
    }
}

/// Decodes `bytes` with ffprobe and returns (codec, width, height).
fn decoded(bytes: &[u8]) -> (String, u64, u64) {
    let json = probe_bytes(bytes, &[]).unwrap();
    let v = stream(&json, "video").unwrap();
    (
        v["codec_name"].as_str().unwrap().to_owned(),
        v["width"].as_u64().unwrap(),
        v["height"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn renders_thumbnails_and_variants_of_an_image() {
    let specs = [
        spec("thumb", 160, 160, ImageFormat::Jpeg),
        spec("w320", 320, 1000, ImageFormat::Webp),
        spec("huge", 4000, 4000, ImageFormat::Jpeg),
    ];
    let out = media()
        .image_renditions(source(support::png_image()), &specs)
        .await
        .unwrap();
    assert_eq!(out.len(), 3);

    let thumb = &out[0];
    assert_eq!(thumb.name, "thumb");
    assert_eq!((thumb.width, thumb.height), (160, 120), "aspect ratio kept");
    assert_eq!(thumb.content_type, "image/jpeg");
    assert!(thumb.bytes.starts_with(&[0xFF, 0xD8]), "a JPEG");
    assert_eq!(decoded(&thumb.bytes), ("mjpeg".to_owned(), 160, 120));

    let webp = &out[1];
    assert_eq!((webp.width, webp.height), (320, 240));
    assert_eq!(webp.content_type, "image/webp");
    assert!(webp.bytes.starts_with(b"RIFF") && &webp.bytes[8..12] == b"WEBP");
    assert_eq!(decoded(&webp.bytes), ("webp".to_owned(), 320, 240));

    let huge = &out[2];
    assert_eq!((huge.width, huge.height), (640, 480), "never upscaled");
    assert_eq!(decoded(&huge.bytes), ("mjpeg".to_owned(), 640, 480));
}

#[tokio::test]
async fn renders_a_poster_frame_of_a_video() {
    let out = media()
        .image_renditions(
            source(support::video_mp4()),
            &[spec("poster", 320, 320, ImageFormat::Jpeg)],
        )
        .await
        .unwrap();
    assert_eq!((out[0].width, out[0].height), (320, 180));
    assert_eq!(decoded(&out[0].bytes), ("mjpeg".to_owned(), 320, 180));
}

#[tokio::test]
async fn refuses_sound_and_bad_specs() {
    let wav = support::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=1",
        "-f",
        "wav",
        "pipe:1",
    ]);
    let err = media()
        .image_renditions(source(wav), &[spec("t", 100, 100, ImageFormat::Jpeg)])
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::Unsuitable(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "this file has no picture to make an image from"
    );

    let err = media()
        .image_renditions(
            source(support::png_image()),
            &[spec("../../x", 100, 100, ImageFormat::Jpeg)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MediaError::InvalidRequest(_)), "{err:?}");
}
