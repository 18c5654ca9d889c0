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
    /// TLS settings.
    #[serde(default)]
    pub tls: TlsFile,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Timeouts in seconds.
    #[serde(default)]
    pub timeouts: TimeoutsFile,
    /// security.txt.
    #[serde(default)]
    pub security_txt: SecurityTxtFile,
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
