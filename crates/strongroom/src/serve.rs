//! `strongroom serve`: resolve settings, open the instance, bind, print where everything is,
//! serve until SIGTERM/SIGINT, drain.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use strongroom_http::tls::CertStore;
use strongroom_http::{AppState, DEFAULT_MIN_BODY_RATE, HttpConfig, MinBodyRate};
pub use strongroom_http::{Limits, Timeouts};
use strongroom_service::ServiceConfig;
use tokio::net::TcpListener;

use crate::boot::{self, Create, InstanceSettings};
use crate::cli::{InstanceArgs, ServeArgs};
use crate::config::FileConfig;

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// The instance.
    pub instance: InstanceSettings,
    /// Listen address.
    pub listen: SocketAddr,
    /// TLS certificate, if configured.
    pub tls_cert: Option<PathBuf>,
    /// TLS key, if configured.
    pub tls_key: Option<PathBuf>,
    /// Accept TLS 1.2 too.
    pub allow_tls12: bool,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Connection caps and the minimum body rate.
    pub limits: Limits,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Where `/metrics` is served (plain HTTP); `None`: not at all.
    pub metrics_listen: Option<SocketAddr>,
}

/// Reads the config file named by the arguments, if any.
pub fn file_config(args: &InstanceArgs) -> anyhow::Result<FileConfig> {
    match &args.config {
        Some(path) => FileConfig::load(path),
        None => Ok(FileConfig::default()),
    }
}

/// Resolves instance settings: flag/env, then file, then default.
pub fn instance_settings(
    args: &InstanceArgs,
    file: &FileConfig,
    service: ServiceConfig,
) -> InstanceSettings {
    InstanceSettings {
        data_dir: args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("strongroom-data")),
        database_url: args
            .database_url
            .clone()
            .or_else(|| file.database_url.clone()),
        master_key_file: args
            .master_key_file
            .clone()
            .or_else(|| file.master_key_file.clone()),
        master_key_hex: std::env::var("STRONGROOM_MASTER_KEY")
            .ok()
            .map(zeroize::Zeroizing::new),
        storage: file.storage.clone(),
        service,
    }
}

impl ServeSettings {
    /// Resolves `serve` settings.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<ServeSettings> {
        let file = file_config(&args.instance)?;
        let mut service = ServiceConfig::default();
        if let Some(n) = args.max_upload_bytes.or(file.limits.max_upload_bytes) {
            service.max_upload_bytes = n;
        }
        service.default_quota = strongroom_service::Quota {
            max_bytes: file.limits.org_max_bytes,
            max_assets: file.limits.org_max_assets,
        };
        if let Some(secs) = args.link_max_expires_in.or(file.links.max_expires_in) {
            if secs == 0 {
                anyhow::bail!("the longest link lifetime must be at least 1 second");
            }
            service.max_link_lifetime = Duration::from_secs(secs);
        }
        let public_url = args
            .public_url
            .clone()
            .or_else(|| file.public_url.clone())
            .map(|u| public_url(&u))
            .transpose()?;
        if let Some(secs) = file.audit.checkpoint_interval_secs {
            if secs == 0 {
                anyhow::bail!("audit.checkpoint_interval_secs must be at least 1");
            }
            service.audit_checkpoint_interval = Duration::from_secs(secs);
        }
        if let Some(secs) = file.lifecycle.interval_secs {
            if secs == 0 {
                anyhow::bail!("lifecycle.interval_secs must be at least 1");
            }
            service.lifecycle_interval = Duration::from_secs(secs);
        }
        service.backup = file.backup.resolve(&file.storage)?;
        configure_mail(&mut service, &file)?;
        configure_media(&mut service, &file)?;
        configure_jobs(&mut service, &file)?;
        let defaults = Timeouts::default();
        let secs = |v: Option<u64>, d: Duration| v.map(Duration::from_secs).unwrap_or(d);
        let timeouts = Timeouts {
            handshake: secs(file.timeouts.handshake, defaults.handshake),
            header_read: secs(file.timeouts.header_read, defaults.header_read),
            idle: secs(file.timeouts.idle, defaults.idle),
            drain: secs(file.timeouts.drain, defaults.drain),
            drain_delay: secs(file.timeouts.drain_delay, defaults.drain_delay),
        };
        let limits = edge_limits(&args.edge, &file)?;
        let request_deadline = match file.timeouts.request {
            Some(0) => anyhow::bail!("timeouts.request must be at least 1 second"),
            Some(secs) => Duration::from_secs(secs),
            None => DEFAULT_REQUEST_DEADLINE,
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443)));
        service.public_url = public_url
            .clone()
            .unwrap_or_else(|| format!("https://{listen}"));
        let metrics_listen = metrics_listen(&file, listen)?;
        let contact = args
            .security_contact
            .clone()
            .or_else(|| file.security_txt.contact.clone())
            .unwrap_or_else(|| "mailto:security@localhost".into());
        Ok(ServeSettings {
            instance: instance_settings(&args.instance, &file, service),
            listen,
            tls_cert: args.tls_cert.clone().or_else(|| file.tls.cert.clone()),
            tls_key: args.tls_key.clone().or_else(|| file.tls.key.clone()),
            allow_tls12: args.allow_tls12 || file.tls.allow_tls12.unwrap_or(false),
            timeouts,
            limits,
            http: HttpConfig {
                security_contact: contact,
                security_policy_url: file
                    .security_txt
                    .policy
                    .clone()
                    .unwrap_or_else(|| format!("https://{listen}/.well-known/security-policy")),
                security_txt_expires: one_year_from_now(),
                public_url,
                request_deadline,
            },
            metrics_listen,
        })
    }
}

/// How long a non-streaming request may take by default.
const DEFAULT_REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// The metrics port's default.
const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

/// Where `/metrics` is served: `STRONGROOM_METRICS_LISTEN`, then `[metrics] listen`, then
/// 127.0.0.1:9464; `None` with `[metrics] enabled = false`. A server on an ephemeral public port
/// (`--listen ...:0`, as tests and throwaway instances run) gets an ephemeral metrics port too,
/// so several on one machine never contend for 9464.
///
/// The metrics are plain HTTP without authentication, and they tell whoever reads them about
/// traffic per route, failed and throttled sign-ins and the job backlog: an address that is not
/// loopback is refused unless `[metrics] allow_public = true` says a firewall or a private
/// network keeps everyone but the scraper out.
fn metrics_listen(file: &FileConfig, public: SocketAddr) -> anyhow::Result<Option<SocketAddr>> {
    if file.metrics.enabled == Some(false) {
        return Ok(None);
    }
    let from_env = match std::env::var("STRONGROOM_METRICS_LISTEN") {
        Ok(v) => Some(v.trim().parse::<SocketAddr>().with_context(|| {
            format!("STRONGROOM_METRICS_LISTEN={v:?} is not an address like 127.0.0.1:9464")
        })?),
        Err(_) => None,
    };
    let addr = from_env
        .or(file.metrics.listen)
        .unwrap_or(if public.port() == 0 {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            DEFAULT_METRICS_LISTEN
        });
    if !addr.ip().to_canonical().is_loopback() && !file.metrics.allow_public.unwrap_or(false) {
        anyhow::bail!(
            "the metrics address {addr} is not a loopback address: /metrics is plain HTTP with no \
             authentication and shows traffic, failed sign-ins and the job backlog to anyone who \
             reaches it; listen on 127.0.0.1, or set [metrics] allow_public = true if a firewall \
             or a private network lets only the scraper reach that port"
        );
    }
    Ok(Some(addr))
}

/// Connection caps and the minimum body rate: flag/env, then `[limits]` / `[timeouts]`, then the
/// defaults of [`Limits`].
fn edge_limits(args: &crate::cli::EdgeArgs, file: &FileConfig) -> anyhow::Result<Limits> {
    let defaults = Limits::default();
    let at_least_one = |v: Option<usize>, name: &str, d: usize| match v {
        Some(0) => anyhow::bail!("{name} must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(d),
    };
    let max_connections = at_least_one(
        args.max_connections.or(file.limits.max_connections),
        "limits.max_connections",
        defaults.max_connections,
    )?;
    let max_connections_per_ip = at_least_one(
        args.max_connections_per_ip
            .or(file.limits.max_connections_per_ip),
        "limits.max_connections_per_ip",
        defaults.max_connections_per_ip,
    )?;
    let window = match file.timeouts.body_rate_window {
        Some(0) => anyhow::bail!("timeouts.body_rate_window must be at least 1 second"),
        Some(secs) => Duration::from_secs(secs),
        None => DEFAULT_MIN_BODY_RATE.window,
    };
    let min_body_rate = match args.min_body_rate.or(file.limits.min_body_rate) {
        Some(0) => None,
        Some(bytes_per_sec) => Some(MinBodyRate {
            bytes_per_sec,
            window,
        }),
        None => Some(MinBodyRate {
            window,
            ..DEFAULT_MIN_BODY_RATE
        }),
    };
    let mut trusted_proxies = Vec::new();
    for raw in file.trusted_proxies.iter().flatten() {
        let net = raw
            .parse::<ipnet::IpNet>()
            .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                anyhow::anyhow!(
                    "trusted_proxies: {raw:?} is not an IP address or a CIDR range (such as 10.0.0.0/8)"
                )
            })?;
        trusted_proxies.push(net);
    }
    Ok(Limits {
        max_connections,
        max_connections_per_ip,
        min_body_rate,
        trusted_proxies: std::sync::Arc::new(trusted_proxies),
    })
}

/// Media settings: on when the tools are there, unless `[media] enabled = false`.
fn configure_media(service: &mut ServiceConfig, file: &FileConfig) -> anyhow::Result<()> {
    let mut media = strongroom_media::MediaConfig::default();
    if let Some(p) = &file.media.ffmpeg {
        media.ffmpeg = p.clone();
    }
    if let Some(p) = &file.media.ffprobe {
        media.ffprobe = p.clone();
    }
    if let Some(secs) = file.media.transcode_timeout_secs {
        if secs == 0 {
            anyhow::bail!("media.transcode_timeout_secs must be at least 1");
        }
        media.limits.transcode_timeout = Duration::from_secs(secs);
    }
    let tools = [&media.ffmpeg, &media.ffprobe, &media.prlimit];
    let found = tools.iter().all(|t| t.is_file());
    match file.media.enabled {
        Some(false) => {}
        Some(true) if !found => anyhow::bail!(
            "media.enabled is true but {} not found: install ffmpeg (and util-linux), or set [media] ffmpeg/ffprobe",
            tools
                .iter()
                .filter(|t| !t.is_file())
                .map(|t| t.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ if found => service.media = Some(media),
        _ => {}
    }
    Ok(())
}

/// Worker counts per lane and the media lane's share per organization: `[jobs]`.
fn configure_jobs(service: &mut ServiceConfig, file: &FileConfig) -> anyhow::Result<()> {
    let jobs = &mut service.jobs;
    for (value, slot, name) in [
        (
            file.jobs.mail_workers,
            &mut jobs.mail_workers,
            "mail_workers",
        ),
        (
            file.jobs.media_workers,
            &mut jobs.media_workers,
            "media_workers",
        ),
        (
            file.jobs.storage_workers,
            &mut jobs.storage_workers,
            "storage_workers",
        ),
    ] {
        if let Some(n) = value {
            if n > 64 {
                anyhow::bail!("jobs.{name} must be at most 64");
            }
            *slot = n;
        }
    }
    if let Some(n) = file.jobs.media_jobs_per_org {
        if n == 0 {
            anyhow::bail!("jobs.media_jobs_per_org must be at least 1");
        }
        jobs.media_jobs_per_org = n;
    }
    Ok(())
}

/// Mail settings: `STRONGROOM_SMTP_URL` / `STRONGROOM_MAIL_FROM`, then `[mail]`.
fn configure_mail(service: &mut ServiceConfig, file: &FileConfig) -> anyhow::Result<()> {
    if let Some(hours) = file.mail.invitation_ttl_hours {
        if hours == 0 || hours > 24 * 30 {
            anyhow::bail!("mail.invitation_ttl_hours must be between 1 and 720");
        }
        service.invitation_ttl = Duration::from_secs(hours * 3600);
    }
    let url = std::env::var("STRONGROOM_SMTP_URL")
        .ok()
        .or_else(|| file.mail.smtp_url.clone());
    let Some(url) = url else {
        return Ok(());
    };
    let from = std::env::var("STRONGROOM_MAIL_FROM")
        .ok()
        .or_else(|| file.mail.from.clone())
        .unwrap_or_else(|| "Strongroom <strongroom@localhost>".into());
    service.mailer = Some(Arc::new(crate::mail::SmtpMailer::new(&url, &from)?));
    Ok(())
}

/// Checks a public URL (`https://host[:port][/prefix]`) and drops a trailing slash, since link
/// URLs append `/d/<token>` to it.
fn public_url(raw: &str) -> anyhow::Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    let valid = rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]/_~%".contains(&b))
    });
    if !valid {
        anyhow::bail!(
            "the public URL {raw:?} is not valid: give the origin clients use, like https://files.example.com"
        );
    }
    Ok(trimmed.to_owned())
}

fn one_year_from_now() -> String {
    let now = strongroom_domain::Clock::now(&strongroom_domain::SystemClock);
    now.plus_secs(365 * 24 * 3600).rfc3339()
}

/// A server that has bound its port and is serving.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// The TLS certificate in use (tests trust it).
    pub cert_path: PathBuf,
    /// Resolves when the server has drained and stopped.
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The use cases behind the server (operator tasks such as the orphan sweep).
    pub service: Arc<strongroom_service::Service>,
    /// Where `/metrics` is served, if it is.
    pub metrics_addr: Option<SocketAddr>,
}

/// Opens the instance, binds, and starts serving until `shutdown` resolves.
pub async fn start(
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let inst = boot::open(&settings.instance, Create::IfMissing).await?;
    let (cert_path, key_path, generated) = boot::tls_files(
        &settings.instance.data_dir,
        settings.tls_cert.clone(),
        settings.tls_key.clone(),
    )?;
    let certs = CertStore::open(&cert_path, &key_path)?;
    let tls = strongroom_http::tls::server_config(certs.clone(), settings.allow_tls12)?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let metrics = match settings.metrics_listen {
        Some(at) => {
            // Installed before anything records, so the first requests are counted too.
            let handle = strongroom_http::metrics::recorder().map_err(anyhow::Error::msg)?;
            let listener = TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} for the metrics"))?;
            Some((listener.local_addr()?, listener, handle))
        }
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|(a, _, _)| *a);

    let data = settings
        .instance
        .data_dir
        .canonicalize()
        .unwrap_or(settings.instance.data_dir.clone());
    tracing::info!(data_dir = %data.display(), database = %inst.database, "data");
    match &inst.master_key_path {
        Some(p) => tracing::info!(
            path = %p.display(),
            fingerprint = %inst.master_key_fingerprint,
            created = inst.master_key_created,
            "root key: back this file up separately from the data directory; without it nothing can be decrypted"
        ),
        None => {
            tracing::info!(fingerprint = %inst.master_key_fingerprint, "root key from STRONGROOM_MASTER_KEY")
        }
    }
    tracing::info!(
        cert = %cert_path.display(),
        self_signed = generated,
        tls12 = settings.allow_tls12,
        "TLS certificate"
    );
    let limits = &settings.limits;
    tracing::info!(
        max_connections = limits.max_connections,
        max_connections_per_ip = limits.max_connections_per_ip,
        min_body_bytes_per_sec = limits.min_body_rate.map_or(0, |r| r.bytes_per_sec),
        body_rate_window_secs = limits.min_body_rate.map_or(0, |r| r.window.as_secs()),
        request_deadline_secs = settings.http.request_deadline.as_secs_f64(),
        "edge limits"
    );

    let service = inst.service.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(e) = service.ops.sweep_orphans().await {
                tracing::warn!(error = %e, "orphan sweep failed");
            }
            if let Err(e) = service.identity.prune_login_records().await {
                tracing::warn!(error = %e, "pruning old sign-in records failed");
            }
            if let Err(e) = service.jobs.prune_jobs().await {
                tracing::warn!(error = %e, "pruning finished jobs failed");
            }
        }
    });
    let service = inst.service.clone();
    let lifecycle_every = settings.instance.service.lifecycle_interval;
    let lifecycle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(lifecycle_every);
        loop {
            tick.tick().await;
            if let Err(e) = service.content.enforce_lifecycle().await {
                tracing::warn!(error = %e, "the lifecycle job (retention, trash) failed");
            }
        }
    });
    // Scheduled backups, and purges carried into earlier backups, once a minute.
    let backups = tokio::spawn(inst.service.backups.clone().run_schedule());
    let scrubber = settings.instance.storage.scrub_interval().map(|interval| {
        let service = inst.service.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            // The first check ten minutes after the start, then every ten minutes.
            tick.tick().await;
            loop {
                tick.tick().await;
                match service.ops.scrub_if_due(interval).await {
                    Ok(Some(r)) if r.unrecoverable > 0 => tracing::error!(
                        checked = r.checked,
                        repaired = r.repaired,
                        unrecoverable = r.unrecoverable,
                        "scheduled scrub: blobs with no good copy left; restore them from a backup"
                    ),
                    Ok(Some(r)) => tracing::info!(
                        checked = r.checked,
                        repaired = r.repaired,
                        "scheduled scrub finished"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "scheduled scrub failed"),
                }
            }
        })
    });
    match &settings.instance.service.mailer {
        Some(m) => tracing::info!(mailer = ?m, "mail: invitations and security notices are sent"),
        None => tracing::info!(
            "mail is off ([mail] smtp_url unset): security notices are not sent and invitations are refused"
        ),
    }
    match &settings.instance.service.media {
        Some(m) => {
            tracing::info!(ffmpeg = %m.ffmpeg.display(), "media: images and videos get renditions and HLS")
        }
        None => {
            tracing::info!("media processing is off (ffmpeg not found or [media] enabled = false)")
        }
    }
    let metrics_server = match metrics {
        Some((at, listener, handle)) => {
            tracing::info!(url = %strongroom_http::metrics::url(at), "metrics: Prometheus text format, plain HTTP, off the public port");
            let service = inst.service.clone();
            Some(tokio::spawn(async move {
                if let Err(e) = strongroom_http::metrics::serve(listener, handle, service).await {
                    tracing::error!(error = %e, "the metrics listener stopped");
                }
            }))
        }
        None => {
            tracing::info!("metrics are off ([metrics] enabled = false)");
            None
        }
    };
    let worker = tokio::spawn(inst.service.jobs.clone().run_worker());
    // The start-up round completes before the first request is served, so it checkpoints
    // exactly the heads the database was started with.
    if let Err(e) = inst.service.audit.write_audit_checkpoints().await {
        tracing::warn!(error = %e, "writing audit checkpoints at start-up failed");
    }
    let checkpointer = tokio::spawn(inst.service.audit.clone().run_audit_checkpoints());
    let state = AppState {
        service: inst.service.clone(),
        config: Arc::new(settings.http.clone()),
    };
    let app = strongroom_http::router(state);
    let service = inst.service.clone();
    let (timeouts, limits) = (settings.timeouts, settings.limits);
    let done = tokio::spawn(async move {
        let result =
            strongroom_http::serve(listener, tls, certs, app, timeouts, limits, shutdown).await;
        sweeper.abort();
        lifecycle.abort();
        backups.abort();
        if let Some(s) = &scrubber {
            s.abort();
        }
        worker.abort();
        let _ = worker.await;
        service.jobs.release_held().await;
        // Scrapes went on while the server drained; now they stop too.
        if let Some(m) = &metrics_server {
            m.abort();
        }
        checkpointer.abort();
        let _ = checkpointer.await;
        // The drained server's last heads, outside the database: a later restore of an older
        // database shows up as a checkpoint newer than its chain.
        if let Err(e) = service.audit.write_audit_checkpoints().await {
            tracing::warn!(error = %e, "writing audit checkpoints at shutdown failed");
        }
        service.close().await;
        tracing::info!("stopped");
        result.map_err(anyhow::Error::from)
    });
    Ok(Running {
        addr,
        cert_path,
        done,
        service: inst.service,
        metrics_addr,
    })
}

/// Installs SIGTERM and SIGINT handlers now and returns a future that resolves on either.
///
/// The handlers must be in place before the server reports that it is serving: a signal that
/// arrives between the two would otherwise take the default action and kill the process without
/// a drain.
pub fn signals() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            // No signal support: serve until killed.
            _ => std::future::pending::<()>().await,
        }
    }
}
