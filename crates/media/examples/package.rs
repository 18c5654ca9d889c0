//! Packages a video file as encrypted HLS through `strongroom-media`, or prints the equivalent
//! plain `ffmpeg -f hls` command line; `bench/hls_packaging.sh` times one against the other.
//!
//! ```text
//! package crate INPUT [OUTDIR]   encrypted HLS through the crate (probe, transcode, AES-128);
//!                                prints one JSON line; with OUTDIR, also writes the package there
//! package args INPUT OUTDIR      prints, NUL-separated, the ffmpeg arguments that produce the same
//!                                ladder with the same settings as plain files under OUTDIR
//! ```
//!
//! The input is read into memory and served from there (a [`MemorySource`]); it is benchmark
//! data, not user content. Settings come from [`MediaConfig::default`] and the default ladder;
//! `SEGMENT_SECONDS` and `THREADS` override those two.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use strongroom_crypto::hls::HlsKey;
use strongroom_media::{
    BoxFuture, HlsTarget, Media, MediaConfig, MediaSink, MemorySource, OutputFile, Rung,
    hls_ffmpeg_args,
};

/// Counts what it receives; writes it under a directory if given one.
struct BenchSink {
    dir: Option<PathBuf>,
    files: usize,
    bytes: u64,
}

impl MediaSink for BenchSink {
    fn put(&mut self, file: OutputFile) -> BoxFuture<'_, std::io::Result<()>> {
        Box::pin(async move {
            self.files += 1;
            self.bytes += file.bytes.len() as u64;
            if let Some(dir) = &self.dir {
                let path = dir.join(&file.name);
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                tokio::fs::write(path, &file.bytes).await?;
            }
            Ok(())
        })
    }
}

/// CPU time of this process (the loopback server, AES, the sink) and of its reaped children
/// (ffprobe, ffmpeg), in clock ticks, from `/proc/self/stat` (fields 14-17); zeros elsewhere.
fn cpu_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0, 0);
    };
    // Field 2 (the command name) may contain spaces: count from after its closing parenthesis.
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // `fields[0]` is field 3 (state): utime, stime, cutime, cstime are fields 14 to 17.
    let get = |field: usize| fields.get(field - 3).copied().unwrap_or(0);
    (get(14) + get(15), get(16) + get(17))
}

fn config() -> Result<MediaConfig, String> {
    let mut config = MediaConfig::default();
    if let Ok(s) = std::env::var("SEGMENT_SECONDS") {
        config.hls.segment_seconds = s.parse().map_err(|e| format!("SEGMENT_SECONDS: {e}"))?;
    }
    if let Ok(s) = std::env::var("THREADS") {
        config.limits.threads = s.parse().map_err(|e| format!("THREADS: {e}"))?;
    }
    Ok(config)
}

async fn run(args: &[String]) -> Result<(), String> {
    let (mode, input) = match args {
        [mode, input, ..] => (mode.as_str(), Path::new(input)),
        _ => return Err("usage: package crate INPUT [OUTDIR] | package args INPUT OUTDIR".into()),
    };
    let outdir = args.get(2).map(PathBuf::from);
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let media = Media::new(config()?);
    let ladder = Rung::default_ladder();
    match mode {
        "crate" => {
            let key = HlsKey::generate();
            let mut sink = BenchSink {
                dir: outdir,
                files: 0,
                bytes: 0,
            };
            let started = Instant::now();
            let package = media
                .package_hls(Arc::new(MemorySource::new(bytes)), &ladder, &key, &mut sink)
                .await
                .map_err(|e| format!("{e} ({})", e.detail().unwrap_or("")))?;
            let seconds = started.elapsed().as_secs_f64();
            let segments: usize = package.rungs.iter().map(|r| r.segments.len()).sum();
            let (own, children) = cpu_ticks();
            println!(
                "{{\"mode\":\"crate\",\"seconds\":{seconds:.3},\"duration\":{:.3},\"rungs\":{},\
                 \"segments\":{segments},\"files\":{},\"bytes\":{},\
                 \"own_cpu_ticks\":{own},\"children_cpu_ticks\":{children}}}",
                package.duration_seconds,
                package.rungs.len(),
                sink.files,
                sink.bytes
            );
        }
        "args" => {
            let outdir = outdir.ok_or("args needs an OUTDIR")?;
            let info = media
                .probe(Arc::new(MemorySource::new(bytes)))
                .await
                .map_err(|e| e.to_string())?;
            let input = input.to_str().ok_or("input path is not UTF-8")?;
            let args = hls_ffmpeg_args(
                media.config(),
                &info,
                &ladder,
                input,
                HlsTarget::Directory(&outdir),
            )
            .map_err(|e| e.to_string())?;
            let mut out = std::io::stdout().lock();
            for arg in args {
                out.write_all(arg.as_bytes())
                    .and_then(|()| out.write_all(b"\0"))
                    .map_err(|e| e.to_string())?;
            }
        }
        other => return Err(format!("unknown mode {other:?}")),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("package: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
