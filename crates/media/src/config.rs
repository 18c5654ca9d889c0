//! Where the tools are and how far a job may go.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::MediaError;

/// The demuxers ffmpeg/ffprobe may use (`-format_whitelist`): ordinary audio, video and image
/// containers. Deliberately absent: everything that opens further URLs or files on its own (`hls`,
/// `dash`, `concat`, `image2` sequences, `svg_pipe`...), text formats that accept any input
/// (`tty`), raw, professional (MXF) and device formats. `mov` stays: its external data references
/// are off by default (`enable_drefs`), and the protocol whitelist would refuse them anyway. A
/// file ffmpeg recognises as anything else is refused with
/// [`MediaError::Refused`](crate::MediaError::Refused).
pub const ALLOWED_FORMATS: &str = "mov,matroska,webm,avi,flv,mpegts,mpeg,ogg,asf,wav,mp3,aac,flac,ivf,\
m4v,h264,hevc,gif,apng,png_pipe,jpeg_pipe,webp_pipe,bmp_pipe,tiff_pipe";

/// Tool paths, limits and HLS settings.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// The `ffmpeg` binary.
    pub ffmpeg: PathBuf,
    /// The `ffprobe` binary.
    pub ffprobe: PathBuf,
    /// util-linux `prlimit`, which applies the resource limits and then execs the tool.
    pub prlimit: PathBuf,
    /// Resource limits of every job.
    pub limits: Limits,
    /// Segmenting and encoding settings of HLS packaging.
    pub hls: HlsSettings,
}

impl Default for MediaConfig {
    /// The Debian packages' paths (`/usr/bin`), default limits and settings.
    fn default() -> MediaConfig {
        MediaConfig {
            ffmpeg: PathBuf::from("/usr/bin/ffmpeg"),
            ffprobe: PathBuf::from("/usr/bin/ffprobe"),
            prlimit: PathBuf::from("/usr/bin/prlimit"),
            limits: Limits::default(),
            hls: HlsSettings::default(),
        }
    }
}

/// How far one job may go. A process that exceeds its wall-clock timeout is killed; the other
/// limits are enforced by the kernel (`prlimit`) or by the loopback server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Wall-clock limit of one ffprobe run.
    pub probe_timeout: Duration,
    /// Wall-clock limit of rendering one image.
    pub image_timeout: Duration,
    /// Wall-clock limit of the whole HLS transcode.
    pub transcode_timeout: Duration,
    /// Address-space limit of each process (`RLIMIT_AS`), in bytes.
    pub memory_bytes: u64,
    /// Open-file limit of each process (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Decoder, filter and encoder threads of each process (`-threads`).
    pub threads: u32,
    /// Largest single output (one segment, one playlist, one image), in bytes.
    pub max_output_file_bytes: u64,
    /// Largest total of all outputs of one job, in bytes.
    pub max_output_bytes: u64,
    /// Outputs of one job may total at most this many times the source's size, plus
    /// [`Limits::output_allowance_bytes`]: more means the file claims far more media than its
    /// bytes hold (a few pictures whose timestamps span hours), and the job fails.
    pub output_ratio: u64,
    /// What any source may produce beyond [`Limits::output_ratio`] x its size, in bytes.
    pub output_allowance_bytes: u64,
    /// A video may claim to last [`Limits::duration_allowance`] plus one second per this many
    /// bytes of file; a longer claim is refused before transcoding (2 kbit/s: below any real
    /// sound track, and below any moving picture).
    pub min_bytes_per_second: u64,
    /// How long any video may claim to last, whatever its size.
    pub duration_allowance: Duration,
    /// Largest picture a decoder may allocate, in pixels (`-max_pixels`): a 20-byte PNG can claim
    /// to be 100000x100000.
    pub max_pixels: u64,
}

impl Limits {
    /// The most output a job may produce from a source of `source_bytes` before it is judged
    /// implausible ([`Limits::output_ratio`] and [`Limits::output_allowance_bytes`]).
    pub fn proportional_output_bytes(&self, source_bytes: u64) -> u64 {
        source_bytes
            .saturating_mul(self.output_ratio)
            .saturating_add(self.output_allowance_bytes)
    }

    /// The longest duration a file of `source_bytes` may claim ([`Limits::duration_allowance`]
    /// and [`Limits::min_bytes_per_second`]).
    pub fn plausible_seconds(&self, source_bytes: u64) -> f64 {
        self.duration_allowance.as_secs_f64()
            + source_bytes as f64 / self.min_bytes_per_second.max(1) as f64
    }

    /// Refuses a file whose stated duration is absurd for its size (hours of video in a few
    /// kilobytes), before any transcode starts: its few pictures would be repeated for hours.
    pub fn check_duration(
        &self,
        duration_seconds: Option<f64>,
        source_bytes: u64,
    ) -> Result<(), MediaError> {
        let Some(claimed) = duration_seconds else {
            // Not stated: the output limit still applies while it runs.
            return Ok(());
        };
        let most = self.plausible_seconds(source_bytes);
        if claimed > most {
            return Err(MediaError::Implausible(format!(
                "the file claims {} of video but holds only {}: at most {} is plausible for \
                 its size, refused as implausible",
                human_duration(claimed),
                human_bytes(source_bytes),
                human_duration(most),
            )));
        }
        Ok(())
    }

    /// The `RLIMIT_CPU` of a process with this wall-clock timeout: the CPU seconds it could use at
    /// most with its threads (plus one for ffmpeg's own demuxing and muxing) before the timeout
    /// fires. It matters when the timeout cannot fire (the server died), so orphans die too.
    pub fn cpu_seconds(&self, timeout: Duration) -> u64 {
        timeout
            .as_secs()
            .saturating_add(1)
            .saturating_mul(u64::from(self.threads.max(1)) + 1)
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            probe_timeout: Duration::from_secs(30),
            image_timeout: Duration::from_secs(60),
            transcode_timeout: Duration::from_secs(2 * 3600),
            // x264 with a few threads reserves far more address space than it touches; 3 GiB
            // leaves room for 1080p sources and still stops a decoder bomb.
            memory_bytes: 3 << 30,
            open_files: 64,
            threads: 2,
            max_output_file_bytes: 64 << 20,
            max_output_bytes: 16 << 30,
            // A real encode from an efficient codec to this ladder stays well under 32x (an
            // AV1 or HEVC source at 1/10 of the ladder's bit rate gives 10x); 16 MiB covers tiny
            // clips, whose container overhead dominates.
            output_ratio: 32,
            output_allowance_bytes: 16 << 20,
            min_bytes_per_second: 256,
            duration_allowance: Duration::from_secs(600),
            max_pixels: 50_000_000,
        }
    }
}

/// HLS segmenting and encoding settings.
#[derive(Clone, Debug)]
pub struct HlsSettings {
    /// Target segment duration in seconds (`-hls_time`); keyframes are forced on this grid so
    /// every rendition cuts at the same instants.
    pub segment_seconds: u32,
    /// The x264 preset (`-preset`).
    pub x264_preset: String,
    /// Highest output frame rate; faster sources are reduced to it.
    pub max_frame_rate: u32,
}

impl Default for HlsSettings {
    fn default() -> HlsSettings {
        HlsSettings {
            segment_seconds: 4,
            x264_preset: "veryfast".to_owned(),
            max_frame_rate: 60,
        }
    }
}

/// `1536` -> `1.5 KiB`: sizes in messages for people.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `7200.04` -> `2 h 0 min`: durations in messages for people.
pub(crate) fn human_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_must_be_plausible_for_the_size() {
        let limits = Limits::default();
        // Three pictures in 15 KiB claiming two hours: refused, saying why.
        let err = limits.check_duration(Some(7200.04), 15_735).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the file claims 2 h 0 min of video but holds only 15.4 KiB: at most 11 min 1 s is \
             plausible for its size, refused as implausible"
        );
        assert!(!err.is_retryable());
        // Anything may claim ten minutes; longer needs 256 bytes per second of it.
        assert!(limits.check_duration(Some(600.0), 0).is_ok());
        assert!(limits.check_duration(Some(601.0), 0).is_err());
        assert!(limits.check_duration(Some(3600.0), 3000 * 256).is_ok());
        assert!(limits.check_duration(Some(3600.0), 2999 * 256).is_err());
        // A podcast: one picture, an hour of 64 kbit/s sound.
        assert!(limits.check_duration(Some(3600.0), 3600 * 8000).is_ok());
        assert!(limits.check_duration(None, 10).is_ok());
    }

    #[test]
    fn output_is_bounded_by_the_source_size() {
        let limits = Limits::default();
        assert_eq!(limits.proportional_output_bytes(0), 16 << 20);
        assert_eq!(
            limits.proportional_output_bytes(1 << 20),
            (32 << 20) + (16 << 20)
        );
        assert_eq!(limits.proportional_output_bytes(u64::MAX), u64::MAX);
        assert_eq!(human_bytes(1000), "1000 bytes");
        assert_eq!(human_bytes(16 << 20), "16.0 MiB");
        assert_eq!(human_duration(59.6), "1 min 0 s");
    }
}
