//! Settings: defaults, then the TOML file, then `STRONGROOM_*` environment variables, then flags.
//!
//! clap resolves flags and environment variables together (a flag wins over its variable); the
//! file fills whatever neither gave. Every setting is listed in `docs/configuration.md`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use strongroom_blob::BackendSpec;

mod backup;
pub use backup::{BackupFile, Schedule};

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
    /// Load balancers and reverse proxies in front of this node (addresses or CIDR ranges):
    /// their `X-Forwarded-For` names the client.
    pub trusted_proxies: Option<Vec<String>>,
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
    /// Where blobs are stored.
    #[serde(default)]
    pub storage: StorageFile,
    /// The Prometheus metrics listener.
    #[serde(default)]
    pub metrics: MetricsFile,
    /// Retention and the trash.
    #[serde(default)]
    pub lifecycle: LifecycleFile,
    /// Backups.
    #[serde(default)]
    pub backup: BackupFile,
}

/// `[lifecycle]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleFile {
    /// Seconds between passes of the lifecycle job (default 3600): spaces' retention rules
    /// move old assets to the trash, and assets past the grace period in the trash are purged.
    pub interval_secs: Option<u64>,
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

/// `[storage]`: the blob backends (`../shared/API.md`, `docs/configuration.md`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// How many backends hold a blob before its upload is acknowledged (default 1).
    pub copies: Option<u32>,
    /// `[[storage.backends]]`; none means one fs backend `disk` at `<data>/blobs`.
    #[serde(default)]
    pub backends: Vec<BackendFile>,
    /// How often the server scrubs every copy (hours, default 24; 0: never, run
    /// `strongroom storage scrub` yourself).
    pub scrub_interval_hours: Option<u64>,
}

impl StorageFile {
    /// The interval of the scheduled scrub; `None`: off.
    pub fn scrub_interval(&self) -> Option<Duration> {
        match self.scrub_interval_hours.unwrap_or(24) {
            0 => None,
            h => Some(Duration::from_secs(h.saturating_mul(3600))),
        }
    }
}

/// One `[[storage.backends]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendFile {
    /// Unique, `[a-z0-9-]`: shown in logs, errors and `storage status`.
    pub name: String,
    /// `fs:///absolute/path` or `s3://bucket[/prefix]?endpoint=URL&region=NAME`.
    pub url: String,
    /// The data-residency region the backend belongs to (default `default`); not the S3
    /// signing region, which is the URL's `region=`.
    pub region: Option<String>,
    /// S3: the access key id, with `secret_access_key_file` (else `AWS_*` from the environment).
    pub access_key_id: Option<String>,
    /// S3: a file (mode 0600) holding the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for BackendFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of debug output, the key id included.
        f.debug_struct("BackendFile")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("region", &self.region)
            .field(
                "access_key_id",
                &self.access_key_id.as_ref().map(|_| "<redacted>"),
            )
            .field("secret_access_key_file", &self.secret_access_key_file)
            .finish()
    }
}

/// `[storage]`, checked: names, regions and URLs valid, copies possible.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Backends that must hold each blob.
    pub copies: u32,
    /// The backends, in configuration order.
    pub backends: Vec<StorageBackend>,
}

/// One checked backend.
#[derive(Debug, Clone)]
pub struct StorageBackend {
    /// Its data-residency region.
    pub region: String,
    /// What opens it.
    pub spec: BackendSpec,
}

/// The default backend's name, and region of any backend that names none.
const DEFAULT_BACKEND: &str = "disk";
use strongroom_blob::DEFAULT_REGION;

impl StorageFile {
    /// Checks `[storage]` and fills in the default (one fs backend `disk` at `<data>/blobs`).
    pub fn resolve(&self, data_dir: &Path) -> anyhow::Result<Storage> {
        let copies = self.copies.unwrap_or(1);
        if copies == 0 {
            bail!("storage.copies must be at least 1");
        }
        if self.backends.is_empty() {
            if copies != 1 {
                bail!(
                    "storage.copies = {copies} needs as many [[storage.backends]] entries, and none is configured"
                );
            }
            let root = std::path::absolute(data_dir.join("blobs"))
                .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
            return Ok(Storage {
                copies,
                backends: vec![StorageBackend {
                    region: DEFAULT_REGION.into(),
                    spec: BackendSpec {
                        name: DEFAULT_BACKEND.into(),
                        url: format!("fs://{}", root.display()),
                        access_key_id: None,
                        secret_access_key_file: None,
                    },
                }],
            });
        }
        let mut names = HashSet::new();
        let mut backends = Vec::with_capacity(self.backends.len());
        for b in &self.backends {
            if !is_label(&b.name) {
                bail!(
                    "storage backend name {:?} is not valid: use 1 to 63 lowercase letters, digits and '-'",
                    b.name
                );
            }
            if !names.insert(b.name.as_str()) {
                bail!(
                    "two [[storage.backends]] entries are named '{}': names must be unique",
                    b.name
                );
            }
            let region = b.region.clone().unwrap_or_else(|| DEFAULT_REGION.into());
            if !is_label(&region) {
                bail!(
                    "the region {region:?} of storage backend '{}' is not valid: use 1 to 63 lowercase letters, digits and '-'",
                    b.name
                );
            }
            let spec = BackendSpec {
                name: b.name.clone(),
                url: b.url.clone(),
                access_key_id: b.access_key_id.clone(),
                secret_access_key_file: b.secret_access_key_file.clone(),
            };
            spec.validate()?;
            backends.push(StorageBackend { region, spec });
        }
        if copies as usize > backends.len() {
            bail!(
                "storage.copies = {copies} but only {} [[storage.backends]] are configured",
                backends.len()
            );
        }
        Ok(Storage { copies, backends })
    }
}

/// `[a-z0-9-]{1,63}`: backend names and regions.
fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
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
    /// Workers of the storage lane (region moves) on this node (default 1).
    pub storage_workers: Option<u32>,
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
    /// Serving on as a node on its way out (`/readyz` 503, no keep-alive) before the drain.
    pub drain_delay: Option<u64>,
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
    fn storage_defaults_to_one_disk_backend_in_the_data_dir() {
        let storage = StorageFile::default()
            .resolve(Path::new("/srv/sr"))
            .unwrap();
        assert_eq!(storage.copies, 1);
        assert_eq!(storage.backends.len(), 1);
        let disk = &storage.backends[0];
        assert_eq!(
            (
                disk.spec.name.as_str(),
                disk.spec.url.as_str(),
                disk.region.as_str()
            ),
            ("disk", "fs:///srv/sr/blobs", "default")
        );
        // A relative data dir becomes absolute.
        let rel = StorageFile::default()
            .resolve(Path::new("strongroom-data"))
            .unwrap();
        assert!(rel.backends[0].spec.url.starts_with("fs:///"));
        assert!(rel.backends[0].spec.url.ends_with("/strongroom-data/blobs"));
    }

    #[test]
    fn storage_section_is_parsed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("storage.toml");
        std::fs::write(
            &path,
            r#"
[storage]
copies = 2
[[storage.backends]]
name = "disk"
url = "fs:///var/lib/strongroom/blobs"
region = "eu"
[[storage.backends]]
name = "s3-eu"
url = "s3://bucket/prefix?endpoint=http://127.0.0.1:3900&region=garage"
region = "eu"
access_key_id = "GK0123456789"
secret_access_key_file = "/etc/strongroom/s3.secret"
"#,
        )
        .unwrap();
        let file = FileConfig::load(&path).unwrap();
        assert!(
            !format!("{file:?}").contains("GK0123456789"),
            "key id in Debug"
        );
        let storage = file.storage.resolve(Path::new("/srv")).unwrap();
        assert_eq!(storage.copies, 2);
        let names: Vec<_> = storage
            .backends
            .iter()
            .map(|b| b.spec.name.as_str())
            .collect();
        assert_eq!(names, ["disk", "s3-eu"]);
        assert_eq!(storage.backends[1].region, "eu");
        assert_eq!(
            storage.backends[1].spec.access_key_id.as_deref(),
            Some("GK0123456789")
        );

        let backend = |name: &str, url: &str, extra: &str| {
            format!("[[storage.backends]]\nname = \"{name}\"\nurl = \"{url}\"\n{extra}\n")
        };
        let fs = "fs:///srv/blobs";
        for (bad, says) in [
            ("[storage]\ncopies = 0\n".to_string(), "at least 1"),
            ("[storage]\ncopies = 2\n".to_string(), "none is configured"),
            (
                format!("[storage]\ncopies = 2\n{}", backend("a", fs, "")),
                "only 1",
            ),
            (backend("S3_EU", fs, ""), "name \"S3_EU\" is not valid"),
            (backend("", fs, ""), "name \"\" is not valid"),
            (
                format!(
                    "{}{}",
                    backend("a", fs, ""),
                    backend("a", "fs:///srv/other", "")
                ),
                "named 'a'",
            ),
            (
                backend("a", fs, "region = \"EU West\""),
                "region \"EU West\" of storage backend 'a'",
            ),
            (
                backend("a", "gs://bucket", ""),
                "storage backend 'a' is misconfigured: unsupported",
            ),
            (
                backend("a", "s3://bucket?endpoint=http://10.1.2.3:9000", ""),
                "storage backend 'a' is misconfigured: plain http://",
            ),
            (
                backend("a", "s3://bucket", "access_key_id = \"GK1\""),
                "set both access_key_id and secret_access_key_file",
            ),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let err = FileConfig::load(&path)
                .and_then(|f| f.storage.resolve(Path::new("/srv")))
                .unwrap_err();
            assert!(format!("{err:#}").contains(says), "{bad}\n-> {err:#}");
        }
        // Unknown keys are refused like everywhere else.
        std::fs::write(&path, backend("a", fs, "secret_access_key = \"x\"")).unwrap();
        assert!(FileConfig::load(&path).is_err());
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
