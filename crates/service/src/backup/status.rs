//! What the latest backup, verification and restore were, for `storage status` and owners.

use serde::Serialize;
use strongroom_store::BackupRun;

use super::Backups;
use crate::Result;

/// The latest backup, verification and restore, for `storage status` and the owner's view.
#[derive(Debug, Clone, Serialize)]
pub struct BackupStatus {
    /// The configured destinations.
    pub destinations: Vec<String>,
    /// The scheduled interval in hours, when backups are scheduled.
    pub interval_hours: Option<u64>,
    /// The latest `backup create`.
    pub last_backup: Option<RunView>,
    /// The latest `backup verify`.
    pub last_verify: Option<RunView>,
    /// The latest restore that produced this database.
    pub last_restore: Option<RunView>,
    /// Purged blobs whose data keys the shred pass has not yet removed from every backup.
    pub shreds_pending: u64,
}

/// One recorded run.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// The backup it made, checked or restored.
    pub backup_id: String,
    /// Where.
    pub destination: String,
    /// When it ended (RFC 3339).
    pub finished_at: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Its counts, and what failed.
    pub detail: serde_json::Value,
}

impl From<BackupRun> for RunView {
    fn from(r: BackupRun) -> Self {
        RunView {
            backup_id: r.backup_id,
            destination: r.destination,
            finished_at: r.finished_at.rfc3339(),
            ok: r.ok,
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// What an organization's owner sees of the instance's backups (`GET /api/v1/orgs/{org}`).
#[derive(Debug, Clone, Serialize)]
pub struct OwnerBackupView {
    /// The latest `backup create`.
    pub last_backup: Option<RunBrief>,
    /// The latest `backup verify`.
    pub last_verified: Option<RunBrief>,
    /// The latest restore that produced this database.
    pub last_restore: Option<RunBrief>,
}

/// When a run ended and whether it succeeded.
#[derive(Debug, Clone, Serialize)]
pub struct RunBrief {
    /// The backup.
    pub backup_id: String,
    /// When (RFC 3339).
    pub finished_at: String,
    /// Whether it succeeded.
    pub ok: bool,
}

impl OwnerBackupView {
    pub(crate) async fn read(store: &strongroom_store::Store) -> Result<OwnerBackupView> {
        let brief = |r: Option<BackupRun>| {
            r.map(|r| RunBrief {
                backup_id: r.backup_id,
                finished_at: r.finished_at.rfc3339(),
                ok: r.ok,
            })
        };
        Ok(OwnerBackupView {
            last_backup: brief(store.last_backup_run("create").await?),
            last_verified: brief(store.last_backup_run("verify").await?),
            last_restore: brief(store.last_backup_run("restore").await?),
        })
    }
}

impl Backups {
    /// Records a run (`create`, `verify`, `restore`) for [`Backups::status`].
    pub async fn record(
        &self,
        kind: &str,
        backup_id: &str,
        destination: &str,
        ok: bool,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.ctx
            .store
            .record_backup_run(&BackupRun {
                id: strongroom_crypto::token::random_token(12),
                kind: kind.into(),
                backup_id: backup_id.into(),
                destination: destination.into(),
                finished_at: self.ctx.clock.now(),
                ok,
                detail: detail.to_string(),
            })
            .await?;
        Ok(())
    }

    /// The latest backup, verification and restore.
    pub async fn status(&self) -> Result<BackupStatus> {
        let store = &self.ctx.store;
        Ok(BackupStatus {
            destinations: self.destinations().iter().map(|d| d.url.clone()).collect(),
            interval_hours: self.ctx.config.backup.interval.map(|d| d.as_secs() / 3600),
            last_backup: store.last_backup_run("create").await?.map(RunView::from),
            last_verify: store.last_backup_run("verify").await?.map(RunView::from),
            last_restore: store.last_backup_run("restore").await?.map(RunView::from),
            shreds_pending: store.pending_shreds().await?.len() as u64,
        })
    }
}
