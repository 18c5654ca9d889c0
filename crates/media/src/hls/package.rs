//! Running one packaging job: probe, transcode, encrypt each segment as it arrives, then write
//! the final playlists.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use strongroom_crypto::hls::{HlsIv, HlsKey, encrypt_segment};
use tokio::time::Instant;

use super::args::{HlsTarget, hls_ffmpeg_args, rung_size};
use super::playlist::{self, FinalSegment, Variant};
use super::{
    HlsPackage, KEY_URI, MASTER_PLAYLIST, PLAYLIST_CONTENT_TYPE, PackagedRung, PackagedSegment,
    Rung, SEGMENT_CONTENT_TYPE, VARIANT_PLAYLIST,
};
use crate::config::MediaConfig;
use crate::error::MediaError;
use crate::io::{MediaSink, OutputFile};
use crate::loopback::{JobServer, Upload};
use crate::probe::{self, MediaKind};
use crate::process::{Process, Tool};

/// After ffmpeg exits, how long the job waits for the next of its last uploads (there may be
/// hundreds, each arriving as soon as the previous one is stored).
const DRAIN: Duration = Duration::from_secs(15);
/// Segments shorter than this are left out of the peak bandwidth: a final 0.1 s sliver that
/// holds a keyframe would otherwise claim an absurd bit rate.
const PEAK_MIN_SECONDS: f64 = 1.0;

/// Probes, transcodes and packages; see [`Media::package_hls`](crate::Media::package_hls).
pub(crate) async fn package(
    config: &MediaConfig,
    mut server: JobServer,
    ladder: &[Rung],
    key: &HlsKey,
    sink: &mut dyn MediaSink,
) -> Result<HlsPackage, MediaError> {
    let info = match probe::run(config, &server).await {
        Ok(info) => info,
        Err(e) => return server.check_failure(Err(e)),
    };
    if info.kind != MediaKind::Video {
        return Err(MediaError::Unsuitable(
            "this file has no video to package".to_owned(),
        ));
    }
    config
        .limits
        .check_duration(info.duration_seconds, server.source_size())?;
    let args = hls_ffmpeg_args(
        config,
        &info,
        ladder,
        &server.input_url(),
        HlsTarget::Loopback(&server.output_url("")),
    )?;
    let (sw, sh) = (info.width.unwrap_or(2), info.height.unwrap_or(2));
    let mut collector = Collector::new(ladder, key, sw, sh);

    let mut process = Process::spawn(
        config,
        Tool::Ffmpeg,
        &args,
        config.limits.transcode_timeout,
        None,
    )?;
    let deadline = Deadline {
        at: process.deadline(),
        seconds: config.limits.transcode_timeout.as_secs(),
    };
    let failures = server.watch();
    let status = loop {
        tokio::select! {
            exit = process.wait() => break exit?,
            Some(upload) = server.next_upload() => {
                if let Err(e) = collector.accept(upload, sink, deadline).await {
                    process.kill().await;
                    return Err(e);
                }
            }
            () = failures.failed() => {
                process.kill().await;
                return Err(failures.take().unwrap_or_else(|| {
                    MediaError::Internal("loopback server failed without a reason".to_owned())
                }));
            }
        }
    };

    if !status.success() {
        // What the server saw (a source that failed) explains ffmpeg's failure best.
        let failed = process.conclude(status, |s| server.redact(s)).await;
        return match (failures.take(), failed) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(_)) => Err(MediaError::Internal("ffmpeg failed silently".to_owned())),
        };
    }

    // ffmpeg is gone; its last uploads may still be on their way.
    server.stop();
    loop {
        let drain_until = (Instant::now() + DRAIN).min(deadline.at);
        match tokio::time::timeout_at(drain_until, server.next_upload()).await {
            Ok(Some(upload)) => collector.accept(upload, sink, deadline).await?,
            Ok(None) => break,
            Err(_) => {
                return Err(MediaError::Internal(
                    "ffmpeg's last uploads did not arrive".to_owned(),
                ));
            }
        }
    }
    if let Some(e) = failures.take() {
        return Err(e);
    }
    collector.finish(info, sink, deadline).await
}

/// The job's wall-clock limit, which also bounds the time the sink may take.
#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    seconds: u64,
}

/// What arrived for one rung.
struct RungOutputs<'a> {
    rung: &'a Rung,
    width: u32,
    height: u32,
    playlist: Option<String>,
    segments: HashMap<String, (HlsIv, u64)>,
}

/// Takes ffmpeg's uploads: encrypts and forwards segments, keeps playlists for the end.
struct Collector<'a> {
    key: &'a HlsKey,
    rungs: Vec<RungOutputs<'a>>,
    master: Option<String>,
}

impl<'a> Collector<'a> {
    fn new(ladder: &'a [Rung], key: &'a HlsKey, sw: u32, sh: u32) -> Collector<'a> {
        let rungs = ladder
            .iter()
            .map(|rung| {
                let (width, height) = rung_size(sw, sh, rung.height);
                RungOutputs {
                    rung,
                    width,
                    height,
                    playlist: None,
                    segments: HashMap::new(),
                }
            })
            .collect();
        Collector {
            key,
            rungs,
            master: None,
        }
    }

    /// Handles one upload. Its pending slot is freed when it is dropped, at the end of this call.
    async fn accept(
        &mut self,
        mut upload: Upload,
        sink: &mut dyn MediaSink,
        deadline: Deadline,
    ) -> Result<(), MediaError> {
        let name = std::mem::take(&mut upload.name);
        let bytes = std::mem::take(&mut upload.bytes);
        if name == MASTER_PLAYLIST {
            self.master = Some(String::from_utf8_lossy(&bytes).into_owned());
            return Ok(());
        }
        // The loopback policy only lets `{rung}/{playlist or segment}` through.
        let Some((rung_name, file)) = name.split_once('/') else {
            return Err(MediaError::Internal(format!("unexpected output {name:?}")));
        };
        let Some(rung) = self.rungs.iter_mut().find(|r| r.rung.name == rung_name) else {
            return Err(MediaError::Internal(format!("unexpected output {name:?}")));
        };
        if file == VARIANT_PLAYLIST {
            rung.playlist = Some(String::from_utf8_lossy(&bytes).into_owned());
            return Ok(());
        }
        let iv = HlsIv::random();
        let encrypted = encrypt_segment(self.key, &iv, bytes);
        rung.segments
            .insert(file.to_owned(), (iv, encrypted.len() as u64));
        let file = OutputFile {
            name,
            content_type: SEGMENT_CONTENT_TYPE,
            bytes: Bytes::from(encrypted),
        };
        put(sink, file, deadline).await
    }

    /// Writes the final playlists (variants first, the master last) and describes the package.
    async fn finish(
        self,
        source: crate::probe::MediaInfo,
        sink: &mut dyn MediaSink,
        deadline: Deadline,
    ) -> Result<HlsPackage, MediaError> {
        let mut rungs = Vec::with_capacity(self.rungs.len());
        let mut playlists = Vec::with_capacity(self.rungs.len());
        for outputs in &self.rungs {
            let (rung, text) = finish_rung(outputs, self.master.as_deref())?;
            rungs.push(rung);
            playlists.push(text);
        }
        for (rung, text) in rungs.iter().zip(playlists) {
            put(sink, playlist_file(rung.playlist.clone(), text), deadline).await?;
        }
        let variants: Vec<Variant<'_>> = rungs
            .iter()
            .map(|r| Variant {
                uri: &r.playlist,
                bandwidth: r.bandwidth,
                average_bandwidth: r.average_bandwidth,
                width: r.width,
                height: r.height,
                codecs: r.codecs.as_deref(),
            })
            .collect();
        let master = playlist::write_master(&variants);
        put(
            sink,
            playlist_file(MASTER_PLAYLIST.to_owned(), master),
            deadline,
        )
        .await?;
        let duration_seconds = rungs
            .iter()
            .map(|r| r.segments.iter().map(|s| s.duration_seconds).sum::<f64>())
            .fold(0.0, f64::max);
        Ok(HlsPackage {
            source,
            duration_seconds,
            rungs,
            master_playlist: MASTER_PLAYLIST.to_owned(),
        })
    }
}

/// One rung's description and final playlist, checked against what was actually received.
fn finish_rung(
    outputs: &RungOutputs<'_>,
    master: Option<&str>,
) -> Result<(PackagedRung, String), MediaError> {
    let name = &outputs.rung.name;
    let text = outputs
        .playlist
        .as_deref()
        .ok_or_else(|| MediaError::Internal(format!("ffmpeg wrote no playlist for rung {name}")))?;
    let entries = playlist::parse_media(text)
        .map_err(|e| MediaError::Internal(format!("ffmpeg's playlist for {name}: {e}")))?;
    let mut segments = Vec::with_capacity(entries.len());
    for entry in &entries {
        let Some((iv, bytes)) = outputs.segments.get(&entry.uri) else {
            return Err(MediaError::Internal(format!(
                "ffmpeg listed segment {name}/{} but never uploaded it",
                entry.uri
            )));
        };
        segments.push(PackagedSegment {
            name: format!("{name}/{}", entry.uri),
            duration_seconds: entry.duration,
            bytes: *bytes,
            iv: *iv,
        });
    }
    let finals: Vec<FinalSegment<'_>> = entries
        .iter()
        .zip(&segments)
        .map(|(e, s)| FinalSegment {
            duration: e.duration,
            uri: &e.uri,
            iv: s.iv,
        })
        .collect();
    let text = playlist::write_media(&finals, KEY_URI);
    let playlist = format!("{name}/{VARIANT_PLAYLIST}");
    let (bandwidth, average_bandwidth) = bandwidths(&segments);
    let rung = PackagedRung {
        name: name.clone(),
        width: outputs.width,
        height: outputs.height,
        bandwidth,
        average_bandwidth,
        codecs: master.and_then(|m| playlist::master_codecs(m, &playlist)),
        playlist,
        segments,
    };
    Ok((rung, text))
}

/// Peak and average bit rates of the encrypted segments, in bit/s.
fn bandwidths(segments: &[PackagedSegment]) -> (u64, u64) {
    let rate = |bytes: u64, seconds: f64| {
        if seconds > 0.0 {
            (bytes as f64 * 8.0 / seconds).ceil() as u64
        } else {
            0
        }
    };
    let total_bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let total_seconds: f64 = segments.iter().map(|s| s.duration_seconds).sum();
    let average = rate(total_bytes, total_seconds);
    let long_enough = segments
        .iter()
        .filter(|s| s.duration_seconds >= PEAK_MIN_SECONDS)
        .map(|s| rate(s.bytes, s.duration_seconds))
        .max();
    let peak = long_enough
        .unwrap_or_else(|| {
            segments
                .iter()
                .map(|s| rate(s.bytes, s.duration_seconds))
                .max()
                .unwrap_or(0)
        })
        .max(average);
    (peak, average)
}

fn playlist_file(name: String, text: String) -> OutputFile {
    OutputFile {
        name,
        content_type: PLAYLIST_CONTENT_TYPE,
        bytes: Bytes::from(text),
    }
}

/// Hands one file to the sink, within the job's deadline.
async fn put(
    sink: &mut dyn MediaSink,
    file: OutputFile,
    deadline: Deadline,
) -> Result<(), MediaError> {
    match tokio::time::timeout_at(deadline.at, sink.put(file)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(MediaError::Sink(e)),
        Err(_) => Err(MediaError::Timeout {
            seconds: deadline.seconds,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(bytes: u64, duration_seconds: f64) -> PackagedSegment {
        PackagedSegment {
            name: String::new(),
            duration_seconds,
            bytes,
            iv: HlsIv::from_sequence(0),
        }
    }

    #[test]
    fn bandwidth_ignores_a_final_sliver() {
        let (peak, avg) = bandwidths(&[seg(1_000_000, 4.0), seg(500_000, 4.0), seg(50_000, 0.1)]);
        assert_eq!(peak, 2_000_000);
        assert_eq!(avg, ((1_550_000.0 * 8.0) / 8.1f64).ceil() as u64);
        let (peak, _) = bandwidths(&[seg(50_000, 0.5)]);
        assert_eq!(peak, 800_000, "all short: the short ones count");
    }
}
