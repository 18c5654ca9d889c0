//! The media layer's errors. Display strings are written for the person who uploaded the file;
//! ffmpeg's own words are kept apart in [`MediaError::detail`], for logs.

/// Everything a media job can fail with.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// ffmpeg cannot read the input: not a media file, truncated, or an unknown codec. The job
    /// should fail for good (retrying cannot help).
    #[error("not a media file ffmpeg can read")]
    NotMedia {
        /// The tail of ffmpeg's error output (for logs).
        detail: String,
    },
    /// The input is of a kind that is refused on purpose: a container that would make ffmpeg open
    /// other files or URLs (HLS or DASH playlist, concat script, SVG...). Permanent.
    #[error("media format not accepted: {reason}")]
    Refused {
        /// What was refused, in words.
        reason: String,
        /// The tail of ffmpeg's error output (for logs).
        detail: String,
    },
    /// The media lacks what the operation needs (no video stream to package, no picture to
    /// render). Permanent.
    #[error("{0}")]
    Unsuitable(String),
    /// The process ran past its wall-clock limit and was killed.
    #[error("processing timed out after {seconds} s")]
    Timeout {
        /// The limit that was exceeded.
        seconds: u64,
    },
    /// The process hit a kernel resource limit (memory, CPU time) and was stopped.
    #[error("processing exceeded its {resource} limit")]
    ResourceLimit {
        /// Which limit: "memory", "CPU time", "file size", "picture size".
        resource: &'static str,
        /// The tail of ffmpeg's error output (for logs).
        detail: String,
    },
    /// An output grew past the configured maximum; the process was killed.
    #[error("output exceeds the maximum size of {limit} bytes")]
    OutputTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The file claims far more media than its bytes can hold (hours of video in a few
    /// kilobytes), or processing produced far more than it: refused, permanently. The message
    /// says what was claimed or produced against what the file holds.
    #[error("{0}")]
    Implausible(String),
    /// ffmpeg or ffprobe failed in another way (for example a decoding error half way). May be
    /// worth one retry; the detail says more.
    #[error("{tool} failed ({status})")]
    ToolFailed {
        /// "ffmpeg" or "ffprobe".
        tool: &'static str,
        /// How it ended ("exit status 1", "killed by signal 11").
        status: String,
        /// The tail of its error output (for logs).
        detail: String,
    },
    /// ffmpeg, ffprobe or prlimit could not be started (not installed, not executable). An
    /// operator problem, not the file's.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program path.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading the caller's source failed (the blob store); retryable.
    #[error("reading the source failed: {0}")]
    Source(std::io::Error),
    /// The caller's sink refused an output (the blob store); retryable.
    #[error("storing an output failed: {0}")]
    Sink(std::io::Error),
    /// The request itself is invalid (an empty ladder, a bad rung or rendition name). A
    /// programming or configuration error of the caller.
    #[error("invalid media request: {0}")]
    InvalidRequest(String),
    /// Something that should not happen did (the loopback server could not bind, ffmpeg produced
    /// an output that does not add up). Log it; retrying may help.
    #[error("internal media pipeline error: {0}")]
    Internal(String),
}

impl MediaError {
    /// ffmpeg's own explanation, if any: the bounded tail of its error output, with the loopback
    /// URLs removed. For logs and operators, not for end users.
    pub fn detail(&self) -> Option<&str> {
        match self {
            MediaError::NotMedia { detail }
            | MediaError::Refused { detail, .. }
            | MediaError::ResourceLimit { detail, .. }
            | MediaError::ToolFailed { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// Whether a retry of the same job could succeed: only failures of storage, the machine or
    /// this pipeline; never a verdict about the file.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MediaError::Source(_)
                | MediaError::Sink(_)
                | MediaError::Spawn { .. }
                | MediaError::Internal(_)
                | MediaError::ToolFailed { .. }
        )
    }
}
