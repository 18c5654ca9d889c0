//! Running ffmpeg and ffprobe: confined, timed, and with their failures put into words.
//!
//! Every run is `prlimit --as --cpu --core=0 --fsize=0 --nofile -- TOOL ARGS` with a cleared
//! environment (`http_proxy` and friends would redirect ffmpeg's HTTP), stdin closed, and
//! `kill_on_drop`: if the job's future is dropped, the process dies with it. `prlimit` sets the
//! limits on itself and then execs the tool, so the child's pid is the tool's and killing it on
//! timeout kills the tool. `--fsize=0` means any attempt to write a regular file kills the tool
//! with `SIGXFSZ`: nothing ffmpeg does can leave plaintext on disk.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::MediaConfig;
use crate::error::MediaError;

/// How much of stderr is kept: its last bytes, where ffmpeg puts the reason it stopped.
const STDERR_TAIL: usize = 4096;

/// What ffmpeg says when a picture is larger than `-max_pixels`.
pub(crate) const PICTURE_TOO_LARGE: &str = "exceeds specified max pixel count";

/// Signals the kernel sends for resource limits.
const SIGXCPU: i32 = 24;
const SIGXFSZ: i32 = 25;
const SIGKILL: i32 = 9;

/// Which tool runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tool {
    Ffmpeg,
    Ffprobe,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ffmpeg => "ffmpeg",
            Tool::Ffprobe => "ffprobe",
        }
    }
}

/// The common head of every command line: quiet, no stdin, and only loopback HTTP allowed.
pub(crate) fn common_args(config: &MediaConfig, tool: Tool) -> Vec<String> {
    let threads = config.limits.threads.max(1).to_string();
    // ffprobe never reads stdin (and has no such option); ffmpeg would, for its keyboard commands.
    let stdin: &[&str] = match tool {
        Tool::Ffmpeg => &["-nostdin"],
        Tool::Ffprobe => &[],
    };
    let head = ["-hide_banner"].iter().chain(stdin);
    head.chain(&[
        "-loglevel",
        "error",
        // Only what the loopback exchange needs: no file:, no pipe: for input, no crypto:, ...
        "-protocol_whitelist",
        "http,tcp",
        "-format_whitelist",
        crate::config::ALLOWED_FORMATS,
        // Decoder options: bounded threads and picture size.
        "-threads",
        &threads,
        "-max_pixels",
        &config.limits.max_pixels.to_string(),
    ])
    .map(|s| (*s).to_owned())
    .collect()
}

/// Captured stdout: its bytes, or the limit it exceeded.
type StdoutResult = Result<Vec<u8>, u64>;

/// What a successful run printed.
pub(crate) struct Finished {
    /// Its stdout, if captured.
    pub stdout: Vec<u8>,
    /// The (redacted) tail of its stderr: warnings a successful run may still have printed.
    pub stderr: String,
}

/// A running tool.
pub(crate) struct Process {
    tool: Tool,
    child: Child,
    stderr: JoinHandle<Vec<u8>>,
    stdout: Option<JoinHandle<StdoutResult>>,
    deadline: Instant,
    timeout: Duration,
}

impl Process {
    /// Starts `tool` with `args` under the configured limits. With `stdout_limit`, stdout is
    /// captured up to that many bytes (more fails the run); otherwise it is discarded.
    pub(crate) fn spawn(
        config: &MediaConfig,
        tool: Tool,
        args: &[String],
        timeout: Duration,
        stdout_limit: Option<u64>,
    ) -> Result<Process, MediaError> {
        let program = match tool {
            Tool::Ffmpeg => &config.ffmpeg,
            Tool::Ffprobe => &config.ffprobe,
        };
        // prlimit would report a missing tool as its own failure; say it plainly instead.
        for path in [program, &config.prlimit] {
            if !path.is_file() {
                return Err(MediaError::Spawn {
                    program: path.display().to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                });
            }
        }
        let limits = &config.limits;
        let mut cmd = Command::new(&config.prlimit);
        cmd.arg(format!("--as={}", limits.memory_bytes))
            .arg(format!("--cpu={}", limits.cpu_seconds(timeout)))
            .arg("--core=0")
            .arg("--fsize=0")
            .arg(format!("--nofile={}", limits.open_files))
            .arg("--")
            .arg(program)
            .args(args)
            .env_clear()
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(if stdout_limit.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| MediaError::Spawn {
            program: config.prlimit.display().to_string(),
            source,
        })?;
        // The arguments are not logged: they carry the job's secret URL prefix.
        tracing::debug!(
            tool = tool.name(),
            pid = child.id(),
            timeout_s = timeout.as_secs(),
            "media tool started"
        );
        let stderr = match child.stderr.take() {
            Some(pipe) => tokio::spawn(read_tail(pipe)),
            None => tokio::spawn(async { Vec::new() }),
        };
        let stdout = match (stdout_limit, child.stdout.take()) {
            (Some(limit), Some(pipe)) => Some(tokio::spawn(read_bounded(pipe, limit))),
            _ => None,
        };
        Ok(Process {
            tool,
            child,
            stderr,
            stdout,
            deadline: Instant::now() + timeout,
            timeout,
        })
    }

    /// When the wall-clock limit expires.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Waits for the process to exit; past the deadline, kills it and fails with
    /// [`MediaError::Timeout`]. Cancel-safe (usable in `select!`).
    pub(crate) async fn wait(&mut self) -> Result<ExitStatus, MediaError> {
        match tokio::time::timeout_at(self.deadline, self.child.wait()).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => Err(MediaError::Internal(format!(
                "waiting for {}: {e}",
                self.tool.name()
            ))),
            Err(_) => {
                tracing::warn!(
                    tool = self.tool.name(),
                    timeout_s = self.timeout.as_secs(),
                    "media tool timed out; killed"
                );
                self.kill().await;
                Err(MediaError::Timeout {
                    seconds: self.timeout.as_secs_f64().ceil() as u64,
                })
            }
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub(crate) async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits for the process and interprets its end: stdout on success, otherwise the error its
    /// exit and stderr point to. `redact` cleans stderr of the job's URLs.
    pub(crate) async fn finish(
        mut self,
        redact: impl Fn(&str) -> String,
    ) -> Result<Finished, MediaError> {
        let status = self.wait().await?;
        self.conclude(status, redact).await
    }

    /// Interprets an exit already waited for (see [`Process::finish`]).
    pub(crate) async fn conclude(
        self,
        status: ExitStatus,
        redact: impl Fn(&str) -> String,
    ) -> Result<Finished, MediaError> {
        let stderr = self.stderr.await.unwrap_or_default();
        let detail = redact(String::from_utf8_lossy(&stderr).trim());
        let stdout = match self.stdout {
            Some(task) => task.await.unwrap_or(Ok(Vec::new())),
            None => Ok(Vec::new()),
        };
        let stdout = match stdout {
            Ok(bytes) => bytes,
            Err(limit) => return Err(MediaError::OutputTooLarge { limit }),
        };
        if status.success() {
            return Ok(Finished {
                stdout,
                stderr: detail,
            });
        }
        Err(classify(self.tool, status, detail))
    }
}

/// Reads a pipe to its end, keeping only the last [`STDERR_TAIL`] bytes (the pipe must be
/// drained, or a chatty process would block on it).
async fn read_tail(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut tail = Vec::with_capacity(STDERR_TAIL * 2);
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL * 2 {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
        }
    }
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
    }
    tail
}

/// Reads a pipe up to `limit` bytes; past that, stops and drops it (the writer then fails with
/// EPIPE and exits).
async fn read_bounded(pipe: impl AsyncRead + Unpin, limit: u64) -> StdoutResult {
    let mut out = Vec::new();
    let mut limited = pipe.take(limit.saturating_add(1));
    match limited.read_to_end(&mut out).await {
        Ok(_) if out.len() as u64 > limit => Err(limit),
        Ok(_) => Ok(out),
        // A read error on our own pipe: the tool's exit status will tell what happened.
        Err(_) => Ok(out),
    }
}

/// What a failed run means, from its exit and its last words.
fn classify(tool: Tool, status: ExitStatus, detail: String) -> MediaError {
    let has = |needle: &str| detail.contains(needle);
    // Out of address space shows up as failed allocations in whichever library hit the wall.
    let memory = !has(PICTURE_TOO_LARGE)
        && (has("Cannot allocate memory")
            || has("malloc")
            || has("bad_alloc")
            || has("get_buffer() failed")
            || has("failed to map segment"));
    if let Some(signal) = status.signal() {
        return match signal {
            // The wall-clock kill is reported as a timeout before we get here; a SIGKILL we did
            // not send is the kernel's hard CPU limit (or the OOM killer).
            SIGXCPU | SIGKILL => MediaError::ResourceLimit {
                resource: "CPU time",
                detail,
            },
            SIGXFSZ => MediaError::ResourceLimit {
                resource: "file size",
                detail,
            },
            _ if memory => MediaError::ResourceLimit {
                resource: "memory",
                detail,
            },
            _ => MediaError::ToolFailed {
                tool: tool.name(),
                status: format!("killed by signal {signal}"),
                detail,
            },
        };
    }
    if memory {
        return MediaError::ResourceLimit {
            resource: "memory",
            detail,
        };
    }
    if has(PICTURE_TOO_LARGE) {
        return MediaError::ResourceLimit {
            resource: "picture size",
            detail,
        };
    }
    if has("not on whitelist") {
        let reason = if has("Format not on whitelist") {
            "this kind of file can make the decoder open other files or URLs"
        } else {
            "the file references other files or URLs"
        };
        return MediaError::Refused {
            reason: reason.to_owned(),
            detail,
        };
    }
    const UNREADABLE: [&str; 8] = [
        "Invalid data found when processing input",
        "moov atom not found",
        "ould not find codec parameters",
        "does not contain any stream",
        "End of file",
        "Error opening input",
        "Unknown input format",
        "Stream ends prematurely",
    ];
    if tool == Tool::Ffprobe || UNREADABLE.iter().any(|n| has(n)) {
        return MediaError::NotMedia { detail };
    }
    MediaError::ToolFailed {
        tool: tool.name(),
        status: status
            .code()
            .map_or_else(|| "no exit code".to_owned(), |c| format!("exit status {c}")),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn failures_are_put_into_words() {
        let e = classify(
            Tool::Ffmpeg,
            exit(1),
            "input: Invalid data found when processing input".into(),
        );
        assert!(matches!(e, MediaError::NotMedia { .. }), "{e:?}");
        assert_eq!(e.to_string(), "not a media file ffmpeg can read");
        let e = classify(
            Tool::Ffprobe,
            exit(1),
            "Format not on whitelist 'mov,...'".into(),
        );
        assert!(matches!(e, MediaError::Refused { .. }), "{e:?}");
        let e = classify(Tool::Ffmpeg, ExitStatus::from_raw(SIGXCPU), String::new());
        assert_eq!(e.to_string(), "processing exceeded its CPU time limit");
        let e = classify(Tool::Ffmpeg, exit(1), "Cannot allocate memory".into());
        assert_eq!(e.to_string(), "processing exceeded its memory limit");
        let e = classify(Tool::Ffmpeg, exit(69), "Conversion failed!".into());
        assert_eq!(e.to_string(), "ffmpeg failed (exit status 69)");
        assert_eq!(e.detail(), Some("Conversion failed!"));
    }
}
