//! Reading ffmpeg's playlists and writing the final ones.
//!
//! ffmpeg's playlists describe plain segments; the final ones add an `EXT-X-KEY` with an
//! explicit IV before every segment, measured bandwidths, and nothing but relative URIs, so the
//! playback endpoint can serve them unchanged under any per-view token.

use std::fmt::Write as _;

use strongroom_crypto::hls::HlsIv;

/// One `#EXTINF` entry of a media playlist.
#[derive(Debug, PartialEq)]
pub(crate) struct Entry {
    /// Its duration in seconds.
    pub duration: f64,
    /// The segment URI as ffmpeg wrote it.
    pub uri: String,
}

/// The segments of a complete VOD media playlist written by ffmpeg.
pub(crate) fn parse_media(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut pending: Option<f64> = None;
    let mut ended = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let value = rest.split(',').next().unwrap_or_default().trim();
            let duration = value
                .parse::<f64>()
                .ok()
                .filter(|d| d.is_finite() && *d >= 0.0)
                .ok_or_else(|| format!("bad segment duration {value:?}"))?;
            pending = Some(duration);
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if !line.starts_with('#') {
            let duration = pending
                .take()
                .ok_or_else(|| format!("segment {line:?} has no duration"))?;
            entries.push(Entry {
                duration,
                uri: line.to_owned(),
            });
        }
    }
    if !ended {
        return Err("the playlist is not finished (no #EXT-X-ENDLIST)".to_owned());
    }
    if entries.is_empty() {
        return Err("the playlist has no segments".to_owned());
    }
    Ok(entries)
}

/// The `CODECS` attribute ffmpeg gave the variant at `uri` in its master playlist, if it gave
/// one made of the characters codec strings use.
pub(crate) fn master_codecs(master: &str, uri: &str) -> Option<String> {
    let mut codecs: Option<String> = None;
    for line in master.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(attrs) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            codecs = attrs
                .split_once("CODECS=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(value, _)| value.to_owned());
        } else if !line.starts_with('#') {
            if line == uri {
                return codecs.filter(|c| {
                    !c.is_empty()
                        && c.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b',')
                });
            }
            codecs = None;
        }
    }
    None
}

/// A segment of a final media playlist.
pub(crate) struct FinalSegment<'a> {
    pub duration: f64,
    pub uri: &'a str,
    pub iv: HlsIv,
}

/// The final media playlist of one rendition: VOD, AES-128 with an explicit IV per segment
/// under `key_uri`, relative segment URIs.
pub(crate) fn write_media(segments: &[FinalSegment<'_>], key_uri: &str) -> String {
    // RFC 8216 §4.3.3.1: every EXTINF, rounded to the nearest integer, is at most this.
    let target = segments
        .iter()
        .map(|s| s.duration.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::with_capacity(128 + segments.len() * 120);
    // Version 3: decimal EXTINF durations (and the IV attribute, which needs 2).
    out.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n");
    for s in segments {
        let _ = writeln!(
            out,
            "#EXT-X-KEY:METHOD=AES-128,URI=\"{key_uri}\",IV={}",
            s.iv.to_playlist_hex()
        );
        let _ = writeln!(out, "#EXTINF:{:.6},\n{}", s.duration, s.uri);
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

/// One variant of the master playlist.
pub(crate) struct Variant<'a> {
    pub uri: &'a str,
    pub bandwidth: u64,
    pub average_bandwidth: u64,
    pub width: u32,
    pub height: u32,
    pub codecs: Option<&'a str>,
}

/// The master playlist: one `EXT-X-STREAM-INF` per rendition, relative URIs.
pub(crate) fn write_master(variants: &[Variant<'_>]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        let _ = write!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{}",
            v.bandwidth, v.average_bandwidth, v.width, v.height
        );
        if let Some(codecs) = v.codecs {
            let _ = write!(out, ",CODECS=\"{codecs}\"");
        }
        let _ = writeln!(out, "\n{}", v.uri);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG_MEDIA: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:2.000000,\nseg00000.ts\n\
        #EXTINF:1.960000,\nseg00001.ts\n#EXT-X-ENDLIST\n";

    const FFMPEG_MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:3\n\
        #EXT-X-STREAM-INF:BANDWIDTH=985600,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\"\n\
        360p/index.m3u8\n\n\
        #EXT-X-STREAM-INF:BANDWIDTH=3185600,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\"\n\
        720p/index.m3u8\n";

    #[test]
    fn reads_ffmpeg_playlists() {
        let entries = parse_media(FFMPEG_MEDIA).unwrap();
        assert_eq!(
            entries,
            vec![
                Entry {
                    duration: 2.0,
                    uri: "seg00000.ts".into()
                },
                Entry {
                    duration: 1.96,
                    uri: "seg00001.ts".into()
                },
            ]
        );
        assert!(parse_media(&FFMPEG_MEDIA.replace("#EXT-X-ENDLIST\n", "")).is_err());
        assert!(parse_media("#EXTM3U\n#EXT-X-ENDLIST\n").is_err());
        assert_eq!(
            master_codecs(FFMPEG_MASTER, "720p/index.m3u8").as_deref(),
            Some("avc1.4d401f,mp4a.40.2")
        );
        assert_eq!(master_codecs(FFMPEG_MASTER, "1080p/index.m3u8"), None);
        assert_eq!(
            master_codecs(
                "#EXT-X-STREAM-INF:CODECS=\"a\\\"b\"\nx/index.m3u8\n",
                "x/index.m3u8"
            ),
            None
        );
    }

    #[test]
    fn writes_encrypted_vod_playlists() {
        let iv = HlsIv::from_sequence(1);
        let text = write_media(
            &[
                FinalSegment {
                    duration: 4.0,
                    uri: "seg00000.ts",
                    iv: HlsIv::from_sequence(0),
                },
                FinalSegment {
                    duration: 2.5,
                    uri: "seg00001.ts",
                    iv,
                },
            ],
            "../key",
        );
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n"));
        assert!(text.contains(&format!(
            "#EXT-X-KEY:METHOD=AES-128,URI=\"../key\",IV={}\n#EXTINF:2.500000,\nseg00001.ts\n",
            iv.to_playlist_hex()
        )));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        let master = write_master(&[Variant {
            uri: "360p/index.m3u8",
            bandwidth: 900_000,
            average_bandwidth: 700_000,
            width: 640,
            height: 360,
            codecs: Some("avc1.4d401e,mp4a.40.2"),
        }]);
        assert!(master.contains(
            "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,RESOLUTION=640x360,\
             CODECS=\"avc1.4d401e,mp4a.40.2\"\n360p/index.m3u8\n"
        ));
    }
}
