//! HLS packaging: a ladder of H.264/AAC renditions in MPEG-TS segments, each segment encrypted
//! with AES-128 (RFC 8216 §5.2) under the asset's content key.
//!
//! Why this crate encrypts and not ffmpeg: ffmpeg's own encryption needs the key handed to it
//! (a key file, or a key URL it fetches), the `crypto:` protocol whitelisted, and re-reads its
//! key-info file at every segment. Encrypting here keeps the key inside this process, keeps
//! ffmpeg's protocol whitelist at `http,tcp`, and lets every segment get a fresh random IV
//! (stated in the playlist) instead of the media sequence number, which repeats across rungs
//! under the one per-asset key. It costs one AES-128-CBC pass over the output, a few
//! milliseconds per segment, measured in `bench/hls_packaging.sh`.
//!
//! Layout, relative to the package root (the playback endpoint serves it under
//! `/hls/{token}/`): `master.m3u8`, `{rung}/index.m3u8`, `{rung}/segNNNNN.ts`, and the key at
//! `key`, which variant playlists reference as `../key`. No playlist contains an absolute URI or
//! a token.

mod args;
mod package;
mod playlist;

pub use args::{HlsTarget, hls_ffmpeg_args};
pub(crate) use package::package;

use strongroom_crypto::hls::HlsIv;

use crate::error::MediaError;
use crate::loopback::OutputPolicy;
use crate::probe::MediaInfo;

/// Name of the master playlist, at the package root.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// Name of each rendition's media playlist, in the rendition's directory.
pub const VARIANT_PLAYLIST: &str = "index.m3u8";
/// The key URI written into variant playlists: the key sits at the package root.
pub const KEY_URI: &str = "../key";
/// Media type of playlists.
pub const PLAYLIST_CONTENT_TYPE: &str = "application/vnd.apple.mpegurl";
/// Media type of segments.
pub const SEGMENT_CONTENT_TYPE: &str = "video/mp2t";
/// ffmpeg's segment file name pattern (`seg00000.ts`, `seg00001.ts`, ...).
pub(crate) const SEGMENT_PATTERN: &str = "seg%05d.ts";
/// Most rungs one ladder may have.
const MAX_RUNGS: usize = 8;

/// One rendition of the ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rung {
    /// Its name and directory, `[a-z0-9_-]{1,64}`, e.g. `720p`.
    pub name: String,
    /// Its shorter side in pixels (the height of landscape video). A source smaller than that
    /// is not upscaled: the rung gets the source's size (the rung is still produced).
    pub height: u32,
    /// Video bitrate in kbit/s (peak allowed: +10%).
    pub video_kbps: u32,
    /// Audio bitrate in kbit/s (AAC stereo), if the source has sound.
    pub audio_kbps: u32,
}

impl Rung {
    /// A rung with these settings.
    pub fn new(name: &str, height: u32, video_kbps: u32, audio_kbps: u32) -> Rung {
        Rung {
            name: name.to_owned(),
            height,
            video_kbps,
            audio_kbps,
        }
    }

    /// The default ladder: 360p at 800 kbit/s and 720p at 2800 kbit/s, AAC 96 and 128 kbit/s.
    pub fn default_ladder() -> Vec<Rung> {
        vec![
            Rung::new("360p", 360, 800, 96),
            Rung::new("720p", 720, 2800, 128),
        ]
    }
}

/// A packaged HLS stream: what the caller records about the outputs it stored.
#[derive(Clone, Debug)]
pub struct HlsPackage {
    /// What the source was.
    pub source: MediaInfo,
    /// Playing time in seconds (the longest rendition's sum of segment durations).
    pub duration_seconds: f64,
    /// The renditions, in ladder order.
    pub rungs: Vec<PackagedRung>,
    /// Name of the master playlist output ([`MASTER_PLAYLIST`]).
    pub master_playlist: String,
}

/// One packaged rendition.
#[derive(Clone, Debug)]
pub struct PackagedRung {
    /// The rung's name (its directory).
    pub name: String,
    /// Picture width in pixels.
    pub width: u32,
    /// Picture height in pixels.
    pub height: u32,
    /// Peak segment bit rate in bit/s, encrypted bytes (the master's `BANDWIDTH`).
    pub bandwidth: u64,
    /// Average bit rate in bit/s (the master's `AVERAGE-BANDWIDTH`).
    pub average_bandwidth: u64,
    /// RFC 6381 codecs, e.g. `avc1.4d401f,mp4a.40.2`, when ffmpeg could tell.
    pub codecs: Option<String>,
    /// Name of its media playlist output, e.g. `720p/index.m3u8`.
    pub playlist: String,
    /// Its segments in playing order.
    pub segments: Vec<PackagedSegment>,
}

/// One encrypted segment.
#[derive(Clone, Debug)]
pub struct PackagedSegment {
    /// Output name, e.g. `720p/seg00000.ts`.
    pub name: String,
    /// Duration in seconds.
    pub duration_seconds: f64,
    /// Size of the encrypted segment in bytes.
    pub bytes: u64,
    /// The AES-128-CBC IV it was encrypted with (also stated in the playlist).
    pub iv: HlsIv,
}

/// `[a-z0-9_-]{1,64}`: safe as a directory name, a URL path segment and a blob-id part.
pub(crate) fn is_plain_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `seg` + digits + `.ts`: the names ffmpeg gives segments with [`SEGMENT_PATTERN`].
pub(crate) fn is_segment_name(name: &str) -> bool {
    name.strip_prefix("seg")
        .and_then(|n| n.strip_suffix(".ts"))
        .is_some_and(|digits| {
            (5..=9).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Checks a ladder before anything runs.
pub(crate) fn validate_ladder(ladder: &[Rung]) -> Result<(), MediaError> {
    if ladder.is_empty() || ladder.len() > MAX_RUNGS {
        return Err(MediaError::InvalidRequest(format!(
            "a ladder has 1 to {MAX_RUNGS} rungs, got {}",
            ladder.len()
        )));
    }
    for (i, rung) in ladder.iter().enumerate() {
        if !is_plain_name(&rung.name) {
            return Err(MediaError::InvalidRequest(format!(
                "rung name {:?} must be 1-64 of [a-z0-9_-]",
                rung.name
            )));
        }
        if ladder[..i].iter().any(|r| r.name == rung.name) {
            return Err(MediaError::InvalidRequest(format!(
                "rung name {:?} is used twice",
                rung.name
            )));
        }
        if !(16..=4320).contains(&rung.height)
            || !(50..=100_000).contains(&rung.video_kbps)
            || !(16..=512).contains(&rung.audio_kbps)
        {
            return Err(MediaError::InvalidRequest(format!(
                "rung {:?}: height 16-4320 px, video 50-100000 kbit/s, audio 16-512 kbit/s",
                rung.name
            )));
        }
    }
    Ok(())
}

/// The uploads ffmpeg may make for this ladder: the master playlist, and per rung its playlist
/// and its segments. Anything else is refused.
pub(crate) fn output_policy(ladder: &[Rung]) -> OutputPolicy {
    let names: Vec<String> = ladder.iter().map(|r| r.name.clone()).collect();
    Box::new(move |path: &str| {
        if path == MASTER_PLAYLIST {
            return true;
        }
        let Some((rung, file)) = path.split_once('/') else {
            return false;
        };
        names.iter().any(|n| n == rung) && (file == VARIANT_PLAYLIST || is_segment_name(file))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_and_names_are_checked() {
        assert!(validate_ladder(&Rung::default_ladder()).is_ok());
        assert!(validate_ladder(&[]).is_err());
        let dup = [Rung::new("a", 360, 800, 96), Rung::new("a", 720, 800, 96)];
        assert!(validate_ladder(&dup).is_err());
        assert!(validate_ladder(&[Rung::new("../x", 360, 800, 96)]).is_err());
        assert!(validate_ladder(&[Rung::new("x", 360, 0, 96)]).is_err());

        let allow = output_policy(&Rung::default_ladder());
        assert!(allow("master.m3u8"));
        assert!(allow("360p/index.m3u8"));
        assert!(allow("720p/seg00012.ts"));
        assert!(!allow("1080p/seg00012.ts"));
        assert!(!allow("720p/../../etc.ts"));
        assert!(!allow("720p/seg1.ts"));
        assert!(!allow("720p/key"));
        assert!(!allow("index.m3u8"));
    }
}
