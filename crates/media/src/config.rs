//! Where the tools are and how far a job may go.

use std::path::PathBuf;
use std::time::Duration;

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
    /// Largest picture a decoder may allocate, in pixels (`-max_pixels`): a 20-byte PNG can claim
    /// to be 100000x100000.
    pub max_pixels: u64,
}

impl Limits {
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
