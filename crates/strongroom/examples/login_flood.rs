//! Load generator for `bench/login_flood.sh`: how much a flood of wrong-password logins moves the
//! latency of an ordinary API call (DESIGN.md: "a login flood must not move other endpoints' p99
//! more than 2x").
//!
//! ```text
//! login_flood --url https://127.0.0.1:PORT --ca CERT.pem --key API_KEY --email EMAIL \
//!     --seconds 15 --concurrency 200 [--server-pid PID]
//! ```
//!
//! Three phases of `--seconds` each, measured by one prober: a single keep-alive connection from
//! 127.0.0.1 sending `GET /api/v1/me` with the API key, one request in flight, each latency taken
//! from sending until the whole body is read.
//!
//! 1. **baseline**: the prober alone.
//! 2. **distinct_emails** (the headline): `--concurrency` tasks send wrong-password logins, each
//!    for a fresh non-existent email (`flood-N@example.com`). No per-pair or per-account limit
//!    ever triggers, and an unknown email is checked against a decoy hash, so every attempt that
//!    passes the per-address limit costs one full Argon2id verification.
//! 3. **same_email**: the same flood against `--email` alone. After a few failures the account
//!    needs a captcha, so most answers are cheap 428s: the flood of refusals.
//!
//! Each flood task has its own client bound to one of 127.0.0.2..=127.0.0.254 (Linux routes all
//! of 127.0.0.0/8 to `lo`), so the per-address limit (50 failures in 15 min, then 429) is spread
//! over 253 addresses instead of turning the flood into cheap 429s within a second. The answers
//! are counted by status: 401 (the password was actually checked), 428 (captcha required, no
//! hashing), 429 (rate limited, no hashing).
//!
//! The prober runs on its own single-threaded runtime on the main thread, the flood on a separate
//! multi-threaded runtime, so flood bookkeeping in this process never queues ahead of a probe
//! (both still share the machine's cores with the server). Each flood runs `--ramp-seconds` before
//! its measurement starts, so the window sees the steady state rather than 200 TLS handshakes.
//!
//! Prints one JSON object on stdout; progress goes to stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

/// A password that is never the account's (and is long enough for any length check).
const WRONG_PASSWORD: &str = "definitely-not-the-password-0";

#[derive(Parser, Debug)]
#[command(about = "Latency of an API-key GET while wrong-password logins flood the server")]
struct Args {
    /// Base URL of the server, e.g. https://127.0.0.1:28443
    #[arg(long)]
    url: String,
    /// PEM certificate to trust (the server's self-signed one)
    #[arg(long)]
    ca: PathBuf,
    /// API key for the measured GET /api/v1/me
    #[arg(long)]
    key: String,
    /// Email of a real account, target of the same-email flood
    #[arg(long)]
    email: String,
    /// Measured seconds per phase
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Concurrent login tasks in a flood
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Seconds each flood runs before its measurement window opens
    #[arg(long, default_value_t = 1.0)]
    ramp_seconds: f64,
    /// Server process to sample CPU time from (/proc/PID/stat), optional
    #[arg(long)]
    server_pid: Option<u32>,
    /// Kernel clock ticks per second for /proc (getconf CLK_TCK)
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
}

/// Latencies of one measurement window.
struct Probe {
    latencies: Vec<Duration>,
    errors: u64,
    seconds: f64,
    cpu: Option<CpuSample>,
}

/// CPU use across a window: the server's and this generator's (in cores), and the whole
/// machine's busy share (which includes anything else running on it).
struct CpuSample {
    server_cores: Option<f64>,
    client_cores: Option<f64>,
    machine_busy: f64,
}

/// Cumulative counters read at the edges of a window.
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
        server_ticks: server_pid.and_then(|pid| process_ticks(&format!("/proc/{pid}/stat"))),
        client_ticks: process_ticks("/proc/self/stat"),
        machine_busy: total - idle,
        machine_total: total,
    })
}

/// utime + stime of a process (all its threads), in clock ticks.
fn process_ticks(stat_path: &str) -> Option<u64> {
    let s = std::fs::read_to_string(stat_path).ok()?;
    // Field 2 (comm) may hold spaces: split after the last ')'. Then field 3 is index 0; utime
    // and stime (fields 14 and 15) are indexes 11 and 12.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn cpu_between(
    a: Option<CpuMark>,
    b: Option<CpuMark>,
    secs: f64,
    clk_tck: u64,
) -> Option<CpuSample> {
    let (a, b) = (a?, b?);
    let cores = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x) as f64 / clk_tck as f64 / secs),
        _ => None,
    };
    let total = (b.machine_total - a.machine_total).max(1) as f64;
    Some(CpuSample {
        server_cores: cores(a.server_ticks, b.server_ticks),
        client_cores: cores(a.client_ticks, b.client_ticks),
        machine_busy: (b.machine_busy - a.machine_busy) as f64 / total,
    })
}

/// Sends GET /api/v1/me back to back for `secs`, one in flight.
async fn probe(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    secs: u64,
    server_pid: Option<u32>,
    clk_tck: u64,
) -> Probe {
    let me = format!("{url}/api/v1/me");
    let started = Instant::now();
    let end = started + Duration::from_secs(secs);
    let before = cpu_mark(server_pid);
    let mut latencies = Vec::with_capacity(16_384);
    let mut errors = 0;
    while Instant::now() < end {
        let t = Instant::now();
        match client.get(&me).bearer_auth(key).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => match r.bytes().await {
                Ok(_) => latencies.push(t.elapsed()),
                Err(_) => errors += 1,
            },
            Ok(r) => {
                errors += 1;
                let _ = r.bytes().await;
            }
            Err(_) => {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = cpu_mark(server_pid);
    Probe {
        latencies,
        errors,
        seconds,
        cpu: cpu_between(before, after, seconds, clk_tck),
    }
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

/// The JSON of a probe window; also returns its p99 in ms.
fn probe_json(p: &mut Probe) -> (Value, f64) {
    p.latencies.sort_unstable();
    let p99 = ms(percentile(&p.latencies, 99.0));
    let mut v = json!({
        "requests": p.latencies.len(),
        "errors": p.errors,
        "seconds": round3(p.seconds),
        "req_per_s": round3(p.latencies.len() as f64 / p.seconds),
        "p50_ms": ms(percentile(&p.latencies, 50.0)),
        "p90_ms": ms(percentile(&p.latencies, 90.0)),
        "p99_ms": p99,
        "max_ms": ms(p.latencies.last().copied().unwrap_or_default()),
    });
    if let Some(cpu) = &p.cpu {
        v["machine_cpu_busy"] = json!(round3(cpu.machine_busy));
        if let Some(c) = cpu.server_cores {
            v["server_cpu_cores"] = json!(round3(c));
        }
        if let Some(c) = cpu.client_cores {
            v["generator_cpu_cores"] = json!(round3(c));
        }
    }
    (v, p99)
}

#[derive(Clone)]
enum Emails {
    /// Every attempt for this one (real) account.
    Same(String),
    /// A fresh non-existent email per attempt.
    Distinct(Arc<AtomicU64>),
}

impl Emails {
    fn next(&self) -> String {
        match self {
            Emails::Same(e) => e.clone(),
            Emails::Distinct(n) => {
                format!("flood-{}@example.com", n.fetch_add(1, Ordering::Relaxed))
            }
        }
    }
}

/// What one flood task saw: answers by status, transport errors, login latencies.
#[derive(Default)]
struct FloodTally {
    status: BTreeMap<u16, u64>,
    errors: u64,
    latencies: Vec<Duration>,
}

async fn flood_task(
    client: reqwest::Client,
    login: String,
    emails: Emails,
    stop: Arc<AtomicBool>,
) -> FloodTally {
    let mut tally = FloodTally::default();
    while !stop.load(Ordering::Relaxed) {
        let body = json!({"email": emails.next(), "password": WRONG_PASSWORD});
        let t = Instant::now();
        match client.post(&login).json(&body).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                tally.latencies.push(t.elapsed());
                *tally.status.entry(status).or_default() += 1;
            }
            Err(_) => {
                tally.errors += 1;
                // A refused or reset connection must not become a hot loop.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tally
}

/// Loopback source address of flood task `i`: 127.0.0.2..=127.0.0.254, round robin.
fn source_address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 253) as u8))
}

/// Runs one flood phase: starts the tasks on `flood_rt`, waits the ramp, probes on the current
/// thread (`probe_rt`), stops the flood and drains its in-flight attempts.
fn flood_phase(
    args: &Args,
    name: &str,
    emails: Emails,
    prober: &reqwest::Client,
    probe_rt: &tokio::runtime::Runtime,
    flood_rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(Value, f64)> {
    eprintln!(
        "login_flood: {name}: {} tasks, ramp {:.1} s, then {} s measured",
        args.concurrency, args.ramp_seconds, args.seconds
    );
    let login = format!("{}/api/v1/auth/login", args.url);
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::with_capacity(args.concurrency);
    for i in 0..args.concurrency {
        let client = {
            let _guard = flood_rt.enter();
            strongroom_testkit::https_client_builder(&args.ca)
                .local_address(source_address(i))
                .timeout(Duration::from_secs(60))
                .build()
                .context("build a flood client")?
        };
        clients.push(client);
    }
    let flood_started = Instant::now();
    let handles: Vec<_> = clients
        .into_iter()
        .map(|c| flood_rt.spawn(flood_task(c, login.clone(), emails.clone(), stop.clone())))
        .collect();
    std::thread::sleep(Duration::from_secs_f64(args.ramp_seconds));
    let mut p = probe_rt.block_on(probe(
        prober,
        &args.url,
        &args.key,
        args.seconds,
        args.server_pid,
        args.clk_tck,
    ));
    stop.store(true, Ordering::Relaxed);
    let flood_seconds = flood_started.elapsed().as_secs_f64();
    eprintln!("login_flood: {name}: measured, draining in-flight logins");
    let tallies = flood_rt.block_on(async {
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            let abort = h.abort_handle();
            match tokio::time::timeout(Duration::from_secs(60), h).await {
                Ok(Ok(t)) => out.push(t),
                Ok(Err(_)) => {}
                Err(_) => abort.abort(),
            }
        }
        out
    });
    let drain_seconds = flood_started.elapsed().as_secs_f64() - flood_seconds;

    let mut status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors = 0;
    let mut login_lat = Vec::new();
    for t in tallies {
        for (s, n) in t.status {
            *status.entry(s).or_default() += n;
        }
        errors += t.errors;
        login_lat.extend(t.latencies);
    }
    login_lat.sort_unstable();
    let answers: u64 = status.values().sum();
    let checked = status.get(&401).copied().unwrap_or(0);
    let (get, p99) = probe_json(&mut p);
    let status_json: serde_json::Map<String, Value> = status
        .iter()
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    let v = json!({
        "get": get,
        "flood": {
            "tasks": args.concurrency,
            "source_addresses": args.concurrency.min(253),
            "emails": match emails { Emails::Same(e) => e, Emails::Distinct(_) => "flood-N@example.com, one per attempt".into() },
            "seconds": round3(flood_seconds),
            "drain_seconds": round3(drain_seconds),
            "answers": answers,
            "transport_errors": errors,
            "status": status_json,
            "password_checks_per_s": round3(checked as f64 / flood_seconds),
            "answers_per_s": round3(answers as f64 / flood_seconds),
            "login_p50_ms": ms(percentile(&login_lat, 50.0)),
            "login_p99_ms": ms(percentile(&login_lat, 99.0)),
        },
    });
    Ok((v, p99))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let args = Args {
        url: args.url.trim_end_matches('/').to_owned(),
        ..args
    };
    if args.concurrency == 0 || args.seconds == 0 {
        bail!("--concurrency and --seconds must be positive");
    }
    let probe_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let flood_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let prober = {
        let _guard = probe_rt.enter();
        strongroom_testkit::https_client_builder(&args.ca)
            .timeout(Duration::from_secs(60))
            .build()
            .context("build the probing client")?
    };
    // Warm-up: the TLS handshake and first-request costs stay out of every window; and the key
    // must work, or every window would measure 401s.
    let version = probe_rt.block_on(async {
        let me = format!("{}/api/v1/me", args.url);
        let mut version = String::new();
        for _ in 0..50 {
            let r = prober.get(&me).bearer_auth(&args.key).send().await?;
            if r.status() != reqwest::StatusCode::OK {
                bail!("GET /api/v1/me answered {} with the API key", r.status());
            }
            version = format!("{:?}", r.version());
            r.bytes().await?;
        }
        Ok(version)
    })?;

    eprintln!("login_flood: baseline: {} s measured", args.seconds);
    let mut base = probe_rt.block_on(probe(
        &prober,
        &args.url,
        &args.key,
        args.seconds,
        args.server_pid,
        args.clk_tck,
    ));
    let (baseline, base_p99) = probe_json(&mut base);
    if base_p99 <= 0.0 {
        bail!("the baseline completed no request");
    }

    let mut floods = serde_json::Map::new();
    let phases = [
        (
            "distinct_emails",
            Emails::Distinct(Arc::new(AtomicU64::new(0))),
        ),
        ("same_email", Emails::Same(args.email.clone())),
    ];
    for (name, emails) in phases {
        let (mut v, p99) = flood_phase(&args, name, emails, &prober, &probe_rt, &flood_rt)?;
        v["p99_ratio"] = json!(round3(p99 / base_p99));
        floods.insert(name.to_owned(), v);
        // Let delayed answers and the hashing queue settle before the next window.
        std::thread::sleep(Duration::from_secs(2));
    }

    let out = json!({
        "url": args.url,
        "seconds_per_phase": args.seconds,
        "ramp_seconds": args.ramp_seconds,
        "concurrency": args.concurrency,
        "probe": "GET /api/v1/me, API key, one keep-alive connection from 127.0.0.1, one request in flight",
        "probe_http_version": version,
        "headline": "distinct_emails",
        "baseline": baseline,
        "floods": floods,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    flood_rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
