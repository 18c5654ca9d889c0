//! Load generator for `bench/hls_serving.sh`: many concurrent HLS viewers fetching the same
//! encrypted segments from Strongroom (`/hls/<token>/...`, token checked and blob decrypted on
//! every request) and from nginx (the same bytes as plain files), with the same client in the
//! same sitting.
//!
//! ```text
//! hls_viewers --segments LIST --strongroom https://127.0.0.1:P --strongroom-ca SR.pem \
//!     --nginx https://127.0.0.1:Q --nginx-ca NGINX.pem [--strongroom-pid PID] [--nginx-pid PID] \
//!     --viewers 1,50,200 --http 1.1,2 --seconds 15
//! ```
//!
//! `LIST` holds one segment a line, `PATH SIZE`, in playback order; both servers serve the same
//! paths. For every HTTP version and viewer count, each server gets one run (the order alternates
//! between pairs). A run gives every viewer its own client and so its own keep-alive TLS
//! connection (as separate players would have), fetches one segment per viewer to open them
//! (not measured), then lets every viewer fetch the segment list in order, back to back, one
//! request in flight, for `--seconds`. Viewer `i` starts at segment `i mod n`, so viewers are
//! spread over the stream as real audiences are. A request counts when it answers 200 with
//! exactly `SIZE` bytes; anything else is an error. Bytes are counted as they arrive, so the
//! transfer rate includes the requests cut off by the end of the window; latency is from sending
//! the request until the last byte (and until the first byte, `ttfb`).
//!
//! Prints one JSON object on stdout; progress goes to stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

#[derive(Parser, Debug)]
#[command(about = "Concurrent HLS viewers against Strongroom and nginx serving the same segments")]
struct Args {
    /// Segment list: `PATH SIZE` per line, in playback order
    #[arg(long)]
    segments: PathBuf,
    /// Strongroom's base URL, e.g. https://127.0.0.1:28443
    #[arg(long)]
    strongroom: String,
    /// PEM certificate Strongroom presents
    #[arg(long)]
    strongroom_ca: PathBuf,
    /// Strongroom's process, for its CPU time (/proc/PID/stat)
    #[arg(long)]
    strongroom_pid: Option<u32>,
    /// nginx's base URL
    #[arg(long)]
    nginx: String,
    /// PEM certificate nginx presents
    #[arg(long)]
    nginx_ca: PathBuf,
    /// nginx's master process; its workers' CPU time is counted too
    #[arg(long)]
    nginx_pid: Option<u32>,
    /// Concurrent viewers, comma-separated: one pair of runs each
    #[arg(long, value_delimiter = ',', default_value = "1,50,200")]
    viewers: Vec<usize>,
    /// HTTP versions, comma-separated: 1.1 and/or 2 (ALPN h2)
    #[arg(long, value_delimiter = ',', default_value = "1.1,2")]
    http: Vec<String>,
    /// Measured seconds per run
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Kernel clock ticks per second for /proc (getconf CLK_TCK)
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
}

struct Segment {
    path: String,
    size: usize,
}

/// One server under test.
struct Target {
    name: &'static str,
    base: String,
    ca: PathBuf,
    pid: Option<u32>,
}

/// What one viewer saw in the window.
#[derive(Default)]
struct Tally {
    ok: u64,
    bytes: u64,
    errors: u64,
    status: BTreeMap<u16, u64>,
    latencies: Vec<Duration>,
    ttfb: Vec<Duration>,
}

fn read_segments(path: &Path) -> anyhow::Result<Vec<Segment>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path:?}"))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((p, size)) = line.split_once(' ') else {
            bail!("segment list line without a size: {line:?}");
        };
        out.push(Segment {
            path: p.to_owned(),
            size: size.trim().parse().context("segment size")?,
        });
    }
    if out.is_empty() {
        bail!("the segment list {path:?} is empty");
    }
    Ok(out)
}

fn client(target: &Target, http: &str) -> anyhow::Result<reqwest::Client> {
    let b = strongroom_testkit::https_client_builder(&target.ca).timeout(Duration::from_secs(60));
    let b = match http {
        "1.1" => b.http1_only(),
        // Over TLS this offers only h2 in ALPN: a server without HTTP/2 fails the handshake
        // instead of quietly measuring HTTP/1.1.
        "2" => b.http2_prior_knowledge(),
        other => bail!("--http takes 1.1 or 2, not {other}"),
    };
    b.build().context("build a viewer client")
}

/// Fetches segments in order from `first` on, back to back, until `deadline`.
async fn viewer(
    client: reqwest::Client,
    base: Arc<str>,
    segments: Arc<Vec<Segment>>,
    first: usize,
    deadline: Instant,
) -> Tally {
    let mut t = Tally::default();
    let mut i = first;
    'requests: while Instant::now() < deadline {
        let seg = &segments[i % segments.len()];
        i += 1;
        let started = Instant::now();
        let mut res =
            match timeout_at(deadline, client.get(format!("{base}{}", seg.path)).send()).await {
                Err(_) => break,
                Ok(Ok(r)) => r,
                Ok(Err(_)) => {
                    t.errors += 1;
                    // A refused or reset connection must not become a hot loop.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
        let ttfb = started.elapsed();
        let status = res.status().as_u16();
        *t.status.entry(status).or_default() += 1;
        let mut got = 0usize;
        loop {
            match timeout_at(deadline, res.chunk()).await {
                Err(_) => {
                    t.bytes += got as u64;
                    break 'requests;
                }
                Ok(Ok(Some(chunk))) => got += chunk.len(),
                Ok(Ok(None)) => break,
                Ok(Err(_)) => {
                    t.errors += 1;
                    t.bytes += got as u64;
                    continue 'requests;
                }
            }
        }
        t.bytes += got as u64;
        if status == 200 && got == seg.size {
            t.ok += 1;
            t.latencies.push(started.elapsed());
            t.ttfb.push(ttfb);
        } else {
            t.errors += 1;
        }
    }
    t
}

/// Cumulative CPU counters read at the edges of a window.
#[derive(Clone, Copy)]
struct CpuMark {
    server_ticks: Option<u64>,
    client_ticks: Option<u64>,
    machine_busy: u64,
    machine_total: u64,
}

fn cpu_mark(server_pid: Option<u32>) -> Option<CpuMark> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some(CpuMark {
        server_ticks: server_pid.map(tree_ticks),
        client_ticks: stat_ticks("/proc/self/stat").map(|(t, _)| t),
        machine_busy: total - idle,
        machine_total: total,
    })
}

/// utime + stime (clock ticks) and the parent pid of a process, from its /proc stat file.
fn stat_ticks(path: &str) -> Option<(u64, u32)> {
    let s = std::fs::read_to_string(path).ok()?;
    // Field 2 (comm) may hold spaces: split after the last ')'. Then field 3 is index 0, the
    // ppid (field 4) index 1, utime and stime (fields 14 and 15) indexes 11 and 12.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ticks, f.get(1)?.parse().ok()?))
}

/// CPU ticks of `pid` and its direct children (nginx: the master and its workers).
fn tree_ticks(pid: u32) -> u64 {
    let mut ticks = stat_ticks(&format!("/proc/{pid}/stat")).map_or(0, |(t, _)| t);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((t, ppid)) = stat_ticks(&format!("/proc/{child}/stat"))
            && ppid == pid
        {
            ticks += t;
        }
    }
    ticks
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// One measured run of `viewers` viewers against `target`; its JSON.
async fn run(
    target: &Target,
    http: &str,
    viewers: usize,
    segments: &Arc<Vec<Segment>>,
    args: &Args,
) -> anyhow::Result<Value> {
    eprintln!(
        "hls_viewers: {} HTTP/{http}, {viewers} viewers, {} s",
        target.name, args.seconds
    );
    let base: Arc<str> = Arc::from(target.base.as_str());
    // Open every viewer's connection (and check the bytes) before the window.
    let mut clients = Vec::with_capacity(viewers);
    let mut version = String::new();
    for i in 0..viewers {
        let c = client(target, http)?;
        let seg = &segments[i % segments.len()];
        let r = c
            .get(format!("{base}{}", seg.path))
            .send()
            .await
            .with_context(|| format!("{}: warm-up request", target.name))?;
        version = format!("{:?}", r.version());
        let status = r.status();
        let body = r.bytes().await?;
        if status != reqwest::StatusCode::OK || body.len() != seg.size {
            bail!(
                "{}: {} answered {status} with {} bytes, expected 200 with {}",
                target.name,
                seg.path,
                body.len(),
                seg.size
            );
        }
        clients.push(c);
    }

    let before = cpu_mark(target.pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(viewer(
                c,
                base.clone(),
                segments.clone(),
                i % segments.len(),
                deadline,
            ))
        })
        .collect();
    let mut all = Tally::default();
    for h in handles {
        let t = h.await?;
        all.ok += t.ok;
        all.bytes += t.bytes;
        all.errors += t.errors;
        for (s, n) in t.status {
            *all.status.entry(s).or_default() += n;
        }
        all.latencies.extend(t.latencies);
        all.ttfb.extend(t.ttfb);
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = cpu_mark(target.pid);
    all.latencies.sort_unstable();
    all.ttfb.sort_unstable();

    let mut v = json!({
        "server": target.name,
        "http": http,
        "negotiated": version,
        "viewers": viewers,
        "seconds": round3(seconds),
        "requests": all.ok,
        "errors": all.errors,
        "status": all.status.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "bytes": all.bytes,
        "requests_per_s": round3(all.ok as f64 / seconds),
        "mb_per_s": round3(all.bytes as f64 / 1e6 / seconds),
        "p50_ms": ms(percentile(&all.latencies, 50.0)),
        "p99_ms": ms(percentile(&all.latencies, 99.0)),
        "max_ms": ms(all.latencies.last().copied().unwrap_or_default()),
        "ttfb_p50_ms": ms(percentile(&all.ttfb, 50.0)),
        "ttfb_p99_ms": ms(percentile(&all.ttfb, 99.0)),
    });
    if let (Some(a), Some(b)) = (before, after) {
        let cores = |x: Option<u64>, y: Option<u64>| {
            x.zip(y)
                .map(|(x, y)| y.saturating_sub(x) as f64 / args.clk_tck as f64 / seconds)
        };
        let total = (b.machine_total - a.machine_total).max(1) as f64;
        let busy = (b.machine_busy - a.machine_busy) as f64 / total;
        v["machine_cpu_busy"] = json!(round3(busy));
        let server = cores(a.server_ticks, b.server_ticks);
        let generator = cores(a.client_ticks, b.client_ticks);
        if let Some(c) = server {
            v["server_cpu_cores"] = json!(round3(c));
            // CPU seconds the server spent per 10^9 bytes delivered.
            if all.bytes > 0 {
                v["server_cpu_s_per_gb"] = json!(round3(c * seconds / (all.bytes as f64 / 1e9)));
            }
        }
        if let Some(c) = generator {
            v["generator_cpu_cores"] = json!(round3(c));
        }
        // Whatever else ran on the machine meanwhile (builds, tests): it skews a run.
        if let (Some(s), Some(g)) = (server, generator) {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            v["other_cpu_cores"] = json!(round3((busy * cpus - s - g).max(0.0)));
        }
    }
    Ok(v)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.seconds == 0 || args.viewers.contains(&0) {
        bail!("--seconds and --viewers must be positive");
    }
    let segments = Arc::new(read_segments(&args.segments)?);
    let targets = [
        Target {
            name: "strongroom",
            base: args.strongroom.trim_end_matches('/').to_owned(),
            ca: args.strongroom_ca.clone(),
            pid: args.strongroom_pid,
        },
        Target {
            name: "nginx",
            base: args.nginx.trim_end_matches('/').to_owned(),
            ca: args.nginx_ca.clone(),
            pid: args.nginx_pid,
        },
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let mut runs = Vec::new();
    let mut ratios = Vec::new();
    let mut pair = 0;
    for http in &args.http {
        for &viewers in &args.viewers {
            // Alternate which server goes first, so neither always gets the fresher machine.
            let order: [&Target; 2] = if pair % 2 == 0 {
                [&targets[0], &targets[1]]
            } else {
                [&targets[1], &targets[0]]
            };
            pair += 1;
            let mut by_name = BTreeMap::new();
            for target in order {
                let v = rt.block_on(run(target, http, viewers, &segments, &args))?;
                by_name.insert(target.name, v.clone());
                runs.push(v);
                // Let closing connections and the page cache settle between runs.
                std::thread::sleep(Duration::from_secs(2));
            }
            let (sr, ng) = (&by_name["strongroom"], &by_name["nginx"]);
            let r = |k: &str| {
                let (a, b) = (sr[k].as_f64().unwrap_or(0.0), ng[k].as_f64().unwrap_or(0.0));
                if b > 0.0 {
                    json!(round3(a / b))
                } else {
                    Value::Null
                }
            };
            ratios.push(json!({
                "http": http,
                "viewers": viewers,
                "requests_per_s": r("requests_per_s"),
                "mb_per_s": r("mb_per_s"),
                "p50_ms": r("p50_ms"),
                "p99_ms": r("p99_ms"),
                "server_cpu_s_per_gb": r("server_cpu_s_per_gb"),
            }));
        }
    }

    let out = json!({
        "segments": segments.len(),
        "segment_bytes": segments.iter().map(|s| s.size).sum::<usize>(),
        "seconds_per_run": args.seconds,
        "client": "reqwest (rustls, aws-lc-rs), one client and one keep-alive TLS 1.3 connection per viewer, one request in flight",
        "runs": runs,
        "ratios_strongroom_over_nginx": ratios,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
