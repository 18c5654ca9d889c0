//! `strongroom backup create|list|verify|restore|prune` (docs/backups.md). Progress goes to
//! standard error on a terminal; `--json` prints one JSON document and nothing else.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use strongroom_blob::Batch;
use strongroom_domain::BackupId;
use strongroom_service::backup::{self, Destination, PRUNE_GRACE, Progress};
use strongroom_store::Store;

use crate::boot::{self, Create, InstanceSettings};
use crate::cli::{BackupCommand, InstanceArgs};
use crate::commands::{open, print_json, settings};
use crate::config::FileConfig;
use crate::serve::file_config;

/// A progress bar on standard error, or nothing when that is not a terminal or JSON is asked.
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(json: bool, what: &str) -> Bar {
        Bar::drawn(json, what, |bar| bar)
    }

    /// A bar drawn with the others of `bars` (one line each), for work that runs side by side.
    fn new_in(bars: &MultiProgress, json: bool, what: &str) -> Bar {
        Bar::drawn(json, what, |bar| bars.add(bar))
    }

    fn drawn(json: bool, what: &str, place: impl FnOnce(ProgressBar) -> ProgressBar) -> Bar {
        if json || !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = place(ProgressBar::new(0));
        if let Ok(style) =
            ProgressStyle::with_template("{msg:24!} [{bar:30}] {pos}/{len} {elapsed_precise}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Bar(Some(bar))
    }

    fn update(&self, p: Progress) {
        if let Some(bar) = &self.0 {
            bar.set_message(p.phase);
            bar.set_length(p.total.max(p.done));
            bar.set_position(p.done);
        }
    }

    fn done(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}

fn backup_id(raw: &str) -> anyhow::Result<BackupId> {
    BackupId::parse(raw).map_err(|_| anyhow::anyhow!("{raw:?} is not a backup id (bkp_...)"))
}

/// The destination a flag names, or the configured ones.
fn destinations(
    flag: Option<&str>,
    configured: &[Destination],
    file: &FileConfig,
) -> anyhow::Result<Vec<Destination>> {
    match flag {
        Some(url) => Ok(vec![open_destination(url, file)?]),
        None if configured.is_empty() => bail!(
            "no backup destination: pass --to/--from fs:///path or s3://bucket/prefix?endpoint=..., or set [backup] destinations"
        ),
        None => Ok(configured.to_vec()),
    }
}

fn open_destination(url: &str, file: &FileConfig) -> anyhow::Result<Destination> {
    Destination::open(
        url,
        file.backup.access_key_id.clone(),
        file.backup.secret_access_key_file.clone(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs one `backup` command; `Ok(false)` (exit status 1) when a verification found a bad object.
pub async fn run(cmd: BackupCommand) -> anyhow::Result<bool> {
    match cmd {
        BackupCommand::Create { instance, to, json } => {
            create(&instance, to.as_deref(), json).await
        }
        BackupCommand::List {
            instance,
            from,
            json,
        } => {
            let inst = open(&instance, Create::Never).await?;
            let file = file_config(&instance)?;
            let mut items = Vec::new();
            for dest in destinations(from.as_deref(), inst.service.backups.destinations(), &file)? {
                items.extend(inst.service.backups.list(&dest).await?);
            }
            if json {
                print_json(serde_json::json!({"items": items}));
            } else if items.is_empty() {
                println!("no backups yet (strongroom backup create)");
            } else {
                for b in items {
                    println!(
                        "{}  {}  {} objects, {} bytes  {}",
                        b.id, b.created_at, b.objects, b.bytes, b.destination
                    );
                }
            }
            Ok(true)
        }
        BackupCommand::Verify {
            instance,
            id,
            from,
            json,
        } => verify(&instance, &id, from.as_deref(), json).await,
        BackupCommand::Restore {
            id,
            from,
            data_dir,
            database_url,
            master_key_file,
            config,
            json,
        } => {
            let args = InstanceArgs {
                config,
                data_dir: Some(data_dir),
                database_url,
                master_key_file,
            };
            restore(&args, &id, &from, json).await?;
            Ok(true)
        }
        BackupCommand::Prune {
            instance,
            from,
            json,
        } => {
            let inst = open(&instance, Create::Never).await?;
            let backups = &inst.service.backups;
            let config = &inst.service.config().backup;
            let file = file_config(&instance)?;
            let mut reports = Vec::new();
            for dest in destinations(from.as_deref(), backups.destinations(), &file)? {
                reports.push(
                    backups
                        .prune(&dest, config.keep_daily, config.keep_weekly, PRUNE_GRACE)
                        .await?,
                );
            }
            let shred = backups.shred_pass().await?;
            if json {
                print_json(serde_json::json!({"destinations": reports, "shred": shred}));
            } else {
                for r in &reports {
                    println!(
                        "{}: kept {} backup(s), removed {}; {} object(s), {} bytes deleted",
                        r.destination,
                        r.kept.len(),
                        r.removed.len(),
                        r.objects_deleted,
                        r.bytes_deleted
                    );
                }
            }
            Ok(true)
        }
    }
}

async fn create(instance: &InstanceArgs, to: Option<&str>, json: bool) -> anyhow::Result<bool> {
    let inst = open(instance, Create::Never).await?;
    let file = file_config(instance)?;
    let backups = &inst.service.backups;
    let mut made = Vec::new();
    for dest in destinations(to, backups.destinations(), &file)? {
        let bar = Bar::new(json, "database");
        let summary = backups
            .create(&dest, &|p| bar.update(p))
            .await
            .with_context(|| format!("the backup to {} failed", dest.url))?;
        bar.done();
        made.push(summary);
    }
    // Purges since earlier backups reach them too (the server does this every minute).
    backups.shred_pass().await?;
    if json {
        // One destination: the backup itself; several: each in `items`.
        match made.as_slice() {
            [one] => print_json(serde_json::to_value(one)?),
            _ => print_json(serde_json::json!({"items": made})),
        }
    } else {
        for s in &made {
            println!(
                "backup {} at {}: {} objects, {} bytes ({} new), {} database rows",
                s.id, s.destination, s.objects, s.bytes, s.new_bytes, s.rows
            );
        }
    }
    Ok(true)
}

async fn verify(
    instance: &InstanceArgs,
    raw: &str,
    from: Option<&str>,
    json: bool,
) -> anyhow::Result<bool> {
    let id = backup_id(raw)?;
    let settings = settings(instance)?;
    let inst = boot::open(&settings, Create::Never).await?;
    let root = boot::root_key(&settings)?;
    let file = file_config(instance)?;
    let backups = &inst.service.backups;
    let mut found = None;
    for dest in destinations(from, backups.destinations(), &file)? {
        let bar = Bar::new(json, "verifying");
        match backup::verify(&root, &dest, &id, &|p| bar.update(p)).await {
            Ok(report) => {
                bar.done();
                found = Some(report);
                break;
            }
            Err(strongroom_service::ServiceError::NotFound(_)) => bar.done(),
            Err(e) => return Err(e.into()),
        }
    }
    let Some(report) = found else {
        bail!("no backup {id} at the destination(s) given");
    };
    let detail = serde_json::json!({"objects": report.objects, "bytes": report.bytes,
        "shredded": report.shredded, "first_bad": report.first_bad});
    backups
        .record(
            "verify",
            id.as_str(),
            &report.destination,
            report.ok,
            detail,
        )
        .await?;
    if json {
        print_json(serde_json::to_value(&report)?);
    } else if let Some(b) = &report.first_bad {
        eprintln!("backup {id} is damaged: {} {}", b.object, b.problem);
    } else {
        println!(
            "backup {id} verified: {} objects, {} bytes read back and authenticated ({} purged blob(s) unreadable by design)",
            report.objects, report.bytes, report.shredded
        );
    }
    Ok(report.ok)
}

/// Whether `dir` is missing, or holds at most the root key file.
fn restorable_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return boot::ensure_private_dir(dir);
    }
    let mut other = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = entry?.file_name();
        if name != "master.key" {
            other.push(name.to_string_lossy().into_owned());
        }
    }
    if !other.is_empty() {
        bail!(
            "{} is not empty (it holds {}): restore onto a new data directory",
            dir.display(),
            other.join(", ")
        );
    }
    Ok(())
}

async fn restore(args: &InstanceArgs, raw: &str, from: &str, json: bool) -> anyhow::Result<()> {
    let id = backup_id(raw)?;
    let settings: InstanceSettings = settings(args)?;
    restorable_dir(&settings.data_dir)?;
    let root = boot::root_key(&settings)?;
    let file = file_config(args)?;
    let dest = open_destination(from, &file)?;
    let checked = backup::check(&root, &dest, &id).await?;
    let (url, database) = boot::database_url(&settings);
    // The snapshot goes into the schema it was taken at; `boot::open` below migrates the rest.
    let sealer = strongroom_service::metadata_sealer(&root);
    let store = Store::connect_at_version(&url, sealer, checked.schema_version)
        .await
        .with_context(|| format!("cannot open the database ({database})"))?;
    // The rows and the blobs are restored side by side: the blobs under temporary names, named
    // only once both halves succeeded (a failure of either removes the copied files).
    let blobs = boot::open_storage(&settings.storage.resolve(&settings.data_dir)?).await?;
    let batch = Batch::default();
    let bars = MultiProgress::new();
    let (db_bar, blob_bar) = (
        Bar::new_in(&bars, json, "database"),
        Bar::new_in(&bars, json, "blobs"),
    );
    let (db_progress, blob_progress) = (|p| db_bar.update(p), |p| blob_bar.update(p));
    let (loaded, (objects, bytes)) = tokio::try_join!(
        backup::restore_database(&store, &root, &dest, &id, &db_progress),
        backup::restore_blobs(&root, &blobs, &dest, &id, &batch, &blob_progress),
    )?;
    backup::publish_restored(&blobs, &batch).await?;
    db_bar.done();
    blob_bar.done();
    store.close().await;
    drop(blobs);

    let inst = boot::open(&settings, Create::Never).await?;
    // What was erased or deleted after the backup was taken is erased or deleted again (the
    // key set no longer holds their keys), before the chains' heads are signed.
    // Organizations first: deleting one erases the people who belonged to it alone.
    let mut deleted_orgs = 0;
    for org in &loaded.deleted_orgs {
        deleted_orgs += u64::from(inst.service.tenancy.delete_org_again(org).await?.is_some());
    }
    let mut erased_people = 0;
    for user in &loaded.erased_people {
        erased_people += u64::from(inst.service.identity.erase_again(user).await?);
    }
    // The restored chain heads, signed: `audit verify` passes on the restored system.
    let round = inst.service.audit.write_audit_checkpoints().await?;
    let detail = serde_json::json!({"rows": loaded.rows, "blobs": objects, "bytes": bytes,
        "shredded_assets": loaded.shredded_assets, "erased_people": erased_people, "deleted_orgs": deleted_orgs, "checkpoints": round.written,
        "backup_created_at": loaded.created_at});
    inst.service
        .backups
        .record("restore", id.as_str(), &dest.url, true, detail.clone())
        .await?;
    inst.service.close().await;
    if json {
        let mut out = detail;
        out["id"] = serde_json::json!(id);
        out["data_dir"] = serde_json::json!(settings.data_dir);
        out["database"] = serde_json::json!(database);
        print_json(out);
    } else {
        println!(
            "restored backup {id} (taken {}) into {}: {} rows, {} blobs ({bytes} bytes), {} purged asset(s) left out, {erased_people} person(s) and {deleted_orgs} organization(s) erased or deleted since done so again; start it with `strongroom serve --data-dir {}`",
            loaded.created_at,
            database,
            loaded.rows,
            objects,
            loaded.shredded_assets,
            settings.data_dir.display()
        );
    }
    Ok(())
}
