//! Settings: defaults, then the TOML file, then `STRONGROOM_*` environment variables, then flags.
//!
//! clap resolves flags and environment variables together (a flag wins over its variable); the
//! file fills whatever neither gave. Every setting is listed in `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The TOML configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Database URL (holds a password: never logged).
    pub database_url: Option<String>,
    /// Root key file.
    pub master_key_file: Option<PathBuf>,
    /// The origin users and clients reach the server at (`https://files.example.com`), for
    /// link URLs and the links in mail.
    pub public_url: Option<String>,
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsFile,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Timeouts in seconds.
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    /// Download links.
    #[serde(default)]
    pub links: LinksFile,
    /// security.txt.
    #[serde(default)]
    pub security_txt: SecurityTxtFile,
    /// Outgoing mail.
    #[serde(default)]
    pub mail: MailFile,
    /// Media processing.
    #[serde(default)]
    pub media: MediaFile,
    /// The audit trail.
    #[serde(default)]
    pub audit: AuditFile,
    /// Background job workers.
    #[serde(default)]
    pub jobs: JobsFile,
    /// The Prometheus metrics listener.
    #[serde(default)]
    pub metrics: MetricsFile,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// Serve `/metrics` (default true).
    pub enabled: Option<bool>,
    /// Where (default `127.0.0.1:9464`; env `STRONGROOM_METRICS_LISTEN`). Plain HTTP, no
    /// authentication: a loopback address unless `allow_public`.
    pub listen: Option<SocketAddr>,
    /// Accept a `listen` address that is not loopback (default false): only behind a firewall
    /// or on a private network the scraper alone can reach.
    pub allow_public: Option<bool>,
}

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// Seconds between signed checkpoints of the audit chain heads that moved (default 60).
    pub checkpoint_interval_secs: Option<u64>,
}

/// `[jobs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsFile {
    /// Workers of the mail lane on this node (default 1).
    pub mail_workers: Option<u32>,
    /// Workers of the media lane on this node (default 2).
    pub media_workers: Option<u32>,
    /// Most media jobs one organization runs at once, across all nodes (default 1).
    pub media_jobs_per_org: Option<u32>,
}

/// `[media]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaFile {
    /// Process images and videos (default: when ffmpeg, ffprobe and prlimit are found).
    pub enabled: Option<bool>,
    /// The ffmpeg binary (default `/usr/bin/ffmpeg`).
    pub ffmpeg: Option<PathBuf>,
    /// The ffprobe binary (default `/usr/bin/ffprobe`).
    pub ffprobe: Option<PathBuf>,
    /// Longest a video transcode may run, in seconds (default 7200).
    pub transcode_timeout_secs: Option<u64>,
}

/// `[mail]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailFile {
    /// `smtps://user:pass@host:465`, `smtp://host:587?tls=required`, or `smtp://127.0.0.1:25`
    /// for a local relay. Holds a password: never logged. Unset: no mail.
    pub smtp_url: Option<String>,
    /// The sender, `Name <address>` or an address.
    pub from: Option<String>,
    /// How long an invitation link works, in hours.
    pub invitation_ttl_hours: Option<u64>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// Certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Private key (PEM).
    pub key: Option<PathBuf>,
    /// Also accept TLS 1.2 (AEAD suites only).
    pub allow_tls12: Option<bool>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Largest upload in bytes.
    pub max_upload_bytes: Option<u64>,
    /// The storage quota in bytes of an organization the operator set none for.
    pub org_max_bytes: Option<u64>,
    /// The most assets an organization may hold when the operator set no quota for it.
    pub org_max_assets: Option<u64>,
    /// Connections open at once, in total.
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address (IPv6: one /64).
    pub max_connections_per_ip: Option<usize>,
    /// Slowest request body, in bytes per second over `timeouts.body_rate_window`; 0: none.
    pub min_body_rate: Option<u64>,
}

/// `[links]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksFile {
    /// Longest lifetime of a link, in seconds.
    pub max_expires_in: Option<u64>,
}

/// `[timeouts]`, in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    /// TLS handshake.
    pub handshake: Option<u64>,
    /// Reading a request's headers.
    pub header_read: Option<u64>,
    /// No bytes moving on a connection.
    pub idle: Option<u64>,
    /// Draining on shutdown.
    pub drain: Option<u64>,
    /// A non-streaming request, start to response.
    pub request: Option<u64>,
    /// The span `limits.min_body_rate` is averaged over.
    pub body_rate_window: Option<u64>,
}

/// `[security_txt]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityTxtFile {
    /// `Contact:` URI.
    pub contact: Option<String>,
    /// `Policy:` URI.
    pub policy: Option<String>,
}

impl FileConfig {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("the config file {} is not valid", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::serve::ServeSettings;

    fn serve_args(args: &[&str]) -> crate::cli::ServeArgs {
        let mut argv = vec!["strongroom", "serve"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn file_fills_what_flags_leave_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strongroom.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/sr\"\nlisten = \"127.0.0.1:9443\"\npublic_url = \"https://files.example.org/\"\n\
             [limits]\nmax_upload_bytes = 1234\nmax_connections = 10\nmax_connections_per_ip = 3\n\
             min_body_rate = 500\n[timeouts]\nidle = 7\nrequest = 12\nbody_rate_window = 9\n\
             [tls]\nallow_tls12 = true\n\
             [security_txt]\ncontact = \"mailto:sec@example.org\"\n[links]\nmax_expires_in = 3600\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = ServeSettings::resolve(&serve_args(&["--config", p])).unwrap();
        assert_eq!(s.instance.data_dir, PathBuf::from("/srv/sr"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:9443");
        assert_eq!(s.instance.service.max_upload_bytes, 1234);
        assert_eq!(s.timeouts.idle.as_secs(), 7);
        assert_eq!(s.http.request_deadline.as_secs(), 12);
        assert_eq!(s.limits.max_connections, 10);
        assert_eq!(s.limits.max_connections_per_ip, 3);
        let rate = s.limits.min_body_rate.unwrap();
        assert_eq!((rate.bytes_per_sec, rate.window.as_secs()), (500, 9));
        assert!(s.allow_tls12);
        assert_eq!(s.http.security_contact, "mailto:sec@example.org");
        // The trailing slash goes: link URLs append "/d/<token>".
        assert_eq!(
            s.http.public_url.as_deref(),
            Some("https://files.example.org")
        );
        assert_eq!(s.instance.service.max_link_lifetime.as_secs(), 3600);
        // A flag wins over the file.
        let s = ServeSettings::resolve(&serve_args(&[
            "--config",
            p,
            "--listen",
            "127.0.0.1:1",
            "--max-upload-bytes",
            "9",
            "--link-max-expires-in",
            "60",
            "--public-url",
            "https://cdn.example.org",
            "--max-connections",
            "20",
            "--max-connections-per-ip",
            "4",
            "--min-body-rate",
            "0",
        ]))
        .unwrap();
        assert_eq!(s.limits.max_connections, 20);
        assert_eq!(s.limits.max_connections_per_ip, 4);
        assert_eq!(s.limits.min_body_rate, None, "0 turns the minimum off");
        assert_eq!(s.listen.to_string(), "127.0.0.1:1");
        assert_eq!(s.instance.service.max_upload_bytes, 9);
        assert_eq!(s.instance.service.max_link_lifetime.as_secs(), 60);
        assert_eq!(
            s.http.public_url.as_deref(),
            Some("https://cdn.example.org")
        );
    }

    #[test]
    fn bad_link_settings_are_refused() {
        for args in [
            &["--public-url", "files.example.org"][..],
            &["--public-url", "https://files.example.org/base?x=1"][..],
            &["--link-max-expires-in", "0"][..],
        ] {
            let err = ServeSettings::resolve(&serve_args(args)).unwrap_err();
            assert!(!format!("{err:#}").is_empty());
        }
        // A path prefix is fine (a proxy that serves Strongroom under one).
        let s =
            ServeSettings::resolve(&serve_args(&["--public-url", "https://example.org/files/"]))
                .unwrap();
        assert_eq!(
            s.http.public_url.as_deref(),
            Some("https://example.org/files")
        );
    }

    #[test]
    fn defaults_without_a_file() {
        let s = ServeSettings::resolve(&serve_args(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8443");
        assert!(!s.allow_tls12);
        assert!(s.instance.data_dir.ends_with("strongroom-data"));
        assert_eq!(
            s.instance.service.max_link_lifetime.as_secs(),
            7 * 24 * 3600
        );
        assert_eq!(s.http.public_url, None);
        assert_eq!(s.http.request_deadline.as_secs(), 30);
        assert_eq!(s.limits.max_connections, 4096);
        assert_eq!(s.limits.max_connections_per_ip, 256);
        let rate = s.limits.min_body_rate.unwrap();
        assert_eq!((rate.bytes_per_sec, rate.window.as_secs()), (1024, 30));
    }

    #[test]
    fn bad_edge_settings_are_refused() {
        for args in [
            &["--max-connections", "0"][..],
            &["--max-connections-per-ip", "0"][..],
        ] {
            let err = ServeSettings::resolve(&serve_args(args)).unwrap_err();
            assert!(format!("{err:#}").contains("at least 1"), "{err:#}");
        }
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "[timeouts]\nrequest = 0\n",
            "[timeouts]\nbody_rate_window = 0\n",
        ] {
            let path = dir.path().join("edge.toml");
            std::fs::write(&path, bad).unwrap();
            let p = path.to_str().unwrap();
            let err = ServeSettings::resolve(&serve_args(&["--config", p])).unwrap_err();
            assert!(format!("{err:#}").contains("at least 1 second"), "{err:#}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "listn = \"127.0.0.1:1\"\n",
            "listen = \"not an address\"\n",
            "[tls]\nallow_tls12 = \"yes\"\n",
        ] {
            let path = dir.path().join("bad.toml");
            std::fs::write(&path, bad).unwrap();
            let err = FileConfig::load(&path).unwrap_err();
            assert!(format!("{err:#}").contains("bad.toml"), "{err:#}");
        }
        assert!(FileConfig::load(&dir.path().join("missing.toml")).is_err());
    }

    #[test]
    fn metrics_stay_on_loopback_unless_allowed_off_it() {
        let s = ServeSettings::resolve(&serve_args(&["--listen", "127.0.0.1:8443"])).unwrap();
        assert_eq!(
            s.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9464")
        );
        // An ephemeral public port (tests, throwaway instances): an ephemeral metrics port.
        let s = ServeSettings::resolve(&serve_args(&["--listen", "127.0.0.1:0"])).unwrap();
        assert_eq!(
            s.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:0")
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.toml");
        let p = path.to_str().unwrap();
        let with = |toml: &str| {
            std::fs::write(&path, toml).unwrap();
            ServeSettings::resolve(&serve_args(&["--config", p]))
        };
        let err = with("[metrics]\nlisten = \"0.0.0.0:9464\"\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("0.0.0.0:9464 is not a loopback address"),
            "{err:#}"
        );
        let s = with("[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_public = true\n").unwrap();
        assert_eq!(
            s.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:9464")
        );
        let s = with("[metrics]\nlisten = \"[::1]:9100\"\n").unwrap();
        assert_eq!(
            s.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("[::1]:9100")
        );
        assert_eq!(
            with("[metrics]\nenabled = false\n").unwrap().metrics_listen,
            None
        );
        assert!(with("[metrics]\nport = 1\n").is_err());
    }

    #[test]
    fn jobs_section_sets_the_workers_per_lane() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.toml");
        let p = path.to_str().unwrap();
        let s = ServeSettings::resolve(&serve_args(&[])).unwrap();
        let jobs = &s.instance.service.jobs;
        assert_eq!(
            (
                jobs.mail_workers,
                jobs.media_workers,
                jobs.media_jobs_per_org
            ),
            (1, 2, 1)
        );
        std::fs::write(
            &path,
            "[jobs]
mail_workers = 2
media_workers = 4
media_jobs_per_org = 3
",
        )
        .unwrap();
        let s = ServeSettings::resolve(&serve_args(&["--config", p])).unwrap();
        let jobs = &s.instance.service.jobs;
        assert_eq!(
            (
                jobs.mail_workers,
                jobs.media_workers,
                jobs.media_jobs_per_org
            ),
            (2, 4, 3)
        );
        for bad in [
            "[jobs]
media_jobs_per_org = 0
",
            "[jobs]
media_workers = 65
",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                ServeSettings::resolve(&serve_args(&["--config", p])).is_err(),
                "{bad}"
            );
        }
    }
}
