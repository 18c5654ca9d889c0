//! `[backup]`: where backups go, the schedule and what prune keeps (`docs/backups.md`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

use super::StorageFile;

/// `[backup]` (`docs/backups.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    /// Where backups go: `fs:///absolute/path` or `s3://bucket/prefix?endpoint=...`.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// `"daily"`, `"weekly"`, or a number of hours between scheduled backups; unset: backups
    /// are taken by hand only.
    pub schedule: Option<Schedule>,
    /// Prune keeps the newest backup of each of this many recent days (default 7)...
    pub keep_daily: Option<u32>,
    /// ...and of this many recent weeks (default 4).
    pub keep_weekly: Option<u32>,
    /// S3 destinations: the access key id, with `secret_access_key_file`, instead of
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the environment.
    pub access_key_id: Option<String>,
    /// S3 destinations: a file holding the secret access key (mode 0600 or stricter).
    pub secret_access_key_file: Option<PathBuf>,
}

/// `[backup] schedule`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Schedule {
    /// `"daily"` or `"weekly"`.
    Named(String),
    /// Hours between backups.
    Hours(u64),
}

impl BackupFile {
    /// The service's backup settings: each destination opened (not yet contacted).
    pub fn resolve(
        &self,
        storage: &StorageFile,
    ) -> anyhow::Result<strongroom_service::backup::BackupConfig> {
        let mut config = strongroom_service::backup::BackupConfig::default();
        for url in &self.destinations {
            if storage
                .backends
                .iter()
                .any(|b| b.url.trim_end_matches('/') == url.trim_end_matches('/'))
            {
                bail!(
                    "backup destination {url} is also a storage backend: backups must go somewhere else"
                );
            }
            let dest = strongroom_service::backup::Destination::open(
                url,
                self.access_key_id.clone(),
                self.secret_access_key_file.clone(),
            )
            .map_err(|e| anyhow::anyhow!("[backup] destinations: {e}"))?;
            config.destinations.push(dest);
        }
        config.interval = match &self.schedule {
            None => None,
            Some(Schedule::Named(n)) if n == "daily" => Some(Duration::from_secs(24 * 3600)),
            Some(Schedule::Named(n)) if n == "weekly" => Some(Duration::from_secs(7 * 24 * 3600)),
            Some(Schedule::Hours(h)) if (1..=24 * 366).contains(h) => {
                Some(Duration::from_secs(h * 3600))
            }
            Some(other) => bail!(
                "[backup] schedule must be \"daily\", \"weekly\" or a number of hours (1 or more), not {other:?}"
            ),
        };
        if config.interval.is_some() && config.destinations.is_empty() {
            bail!("[backup] schedule is set but there are no destinations");
        }
        if let Some(n) = self.keep_daily {
            config.keep_daily = n;
        }
        if let Some(n) = self.keep_weekly {
            config.keep_weekly = n;
        }
        Ok(config)
    }
}
