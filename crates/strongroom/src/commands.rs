//! The commands that act on a data directory: admin, keys, audit. Each prints a human summary,
//! or JSON with `--json`.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, bail};
use strongroom_domain::{Email, Name, OrgId};
use strongroom_service::{ServiceConfig, parse_role};
use zeroize::Zeroizing;

use crate::boot::{self, Create, Instance};
use crate::cli::{
    AdminCommand, AuditCommand, InstanceArgs, JobsCommand, KeysCommand, StorageCommand,
};
use crate::serve::{file_config, instance_settings};

/// The settings of the instance `args` name, as every data-dir command resolves them.
pub(crate) fn settings(args: &InstanceArgs) -> anyhow::Result<boot::InstanceSettings> {
    let file = file_config(args)?;
    let mut service = ServiceConfig::default();
    if let Some(n) = file.limits.max_upload_bytes {
        service.max_upload_bytes = n;
    }
    service.default_quota = strongroom_service::Quota {
        max_bytes: file.limits.org_max_bytes,
        max_assets: file.limits.org_max_assets,
    };
    service.backup = file.backup.resolve(&file.storage)?;
    Ok(instance_settings(args, &file, service))
}

pub(crate) async fn open(args: &InstanceArgs, create: Create) -> anyhow::Result<Instance> {
    boot::open(&settings(args)?, create).await
}

/// A quota limit from the command line: a whole number, or "none" for no limit of its own.
fn limit_arg(flag: &str, v: &str) -> anyhow::Result<Option<u64>> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    v.parse::<u64>()
        .map(Some)
        .map_err(|_| anyhow::anyhow!("{flag} takes a whole number or \"none\", not {v:?}"))
}

fn read_password_stdin() -> anyhow::Result<Zeroizing<String>> {
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut buf)
        .context("cannot read the password from standard input")?;
    let pw = Zeroizing::new(buf.trim_end_matches(['\r', '\n']).to_owned());
    if pw.is_empty() {
        bail!("no password on standard input");
    }
    Ok(pw)
}

pub(crate) fn print_json(v: serde_json::Value) {
    println!("{v}");
}

fn org_id(raw: &str) -> anyhow::Result<OrgId> {
    OrgId::parse(raw).map_err(|_| anyhow::anyhow!("{raw:?} is not an organization id (org_...)"))
}

/// `strongroom admin ...`.
pub async fn admin(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Bootstrap {
            instance,
            email,
            org,
            password_stdin,
            region,
            json,
        } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!(e.0))?;
            let org = Name::parse(&org).map_err(|e| anyhow::anyhow!("organization {}", e.0))?;
            let pw = if password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let inst = open(&instance, Create::IfMissing).await?;
            let sign_in_as = email.as_str().to_owned();
            let out = inst
                .service
                .ops
                .bootstrap(email, org, pw, region.as_deref())
                .await?;
            if out.password_ignored {
                eprintln!(
                    "note: the user already exists, so the password on standard input was not used \
                     (passwords are changed by the user, not by bootstrap)"
                );
            }
            let dashboard = format!(
                "{}/",
                inst.service.config().public_url.trim_end_matches('/')
            );
            if json {
                let mut v = serde_json::json!({"user_id": out.user_id, "org_id": out.org_id, "region": out.region, "api_key": out.api_key.as_str(), "dashboard_url": dashboard});
                if let Some(pw) = &out.password {
                    v["password"] = serde_json::json!(pw.as_str());
                }
                print_json(v);
            } else {
                println!("user:         {}", out.user_id);
                println!("organization: {}", out.org_id);
                println!("region:       {}", out.region);
                println!(
                    "API key:      {}   (shown once: store it now)",
                    out.api_key.as_str()
                );
                if let Some(pw) = &out.password {
                    println!(
                        "password:     {}   (generated: change it after the first login)",
                        pw.as_str()
                    );
                }
                println!("dashboard:    {dashboard}   (sign in as {sign_in_as})");
            }
        }
        AdminCommand::CreateApiKey {
            instance,
            org,
            role,
            name,
            json,
        } => {
            let org = org_id(&org)?;
            let role = parse_role(&role)?;
            let name = Name::parse(&name).map_err(|e| anyhow::anyhow!("key name {}", e.0))?;
            let inst = open(&instance, Create::Never).await?;
            let key = inst
                .service
                .ops
                .create_service_key(&org, role, name)
                .await?;
            if json {
                print_json(serde_json::json!({"id": key.id, "api_key": key.api_key.as_str()}));
            } else {
                println!("key id:  {}", key.id);
                println!(
                    "API key: {}   (shown once: store it now)",
                    key.api_key.as_str()
                );
            }
        }
        AdminCommand::Lifecycle { instance, json } => {
            let inst = open(&instance, Create::Never).await?;
            let done = inst.service.content.enforce_lifecycle().await?;
            if json {
                print_json(serde_json::json!(done));
            } else {
                println!(
                    "lifecycle: {} asset(s) moved to the trash by retention rules, {} purged from the trash",
                    done.trashed, done.purged
                );
            }
        }
        AdminCommand::SetQuota {
            instance,
            org,
            max_bytes,
            max_assets,
            json,
        } => {
            let org = org_id(&org)?;
            let quota = strongroom_service::Quota {
                max_bytes: limit_arg("--max-bytes", &max_bytes)?,
                max_assets: limit_arg("--max-assets", &max_assets)?,
            };
            let inst = open(&instance, Create::Never).await?;
            let set = inst.service.ops.set_quota(&org, quota).await?;
            if json {
                print_json(serde_json::json!({"org_id": org, "quota": set}));
            } else {
                let show = |v: Option<u64>| v.map_or("no limit".to_owned(), |n| n.to_string());
                println!(
                    "quota of {org}: {} bytes, {} assets",
                    show(set.max_bytes),
                    show(set.max_assets)
                );
            }
        }
        AdminCommand::EraseUser {
            instance,
            email,
            json,
        } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!(e.0))?;
            let inst = open(&instance, Create::Never).await?;
            let user = inst.service.identity.erase_by_operator(&email).await?;
            if json {
                print_json(serde_json::json!({"user_id": user, "erased": true}));
            } else {
                println!("erased the account {user} (its address is no longer kept)");
            }
        }
        AdminCommand::DeleteOrg {
            instance,
            org,
            confirm,
            json,
        } => {
            let org = org_id(&org)?;
            let inst = open(&instance, Create::Never).await?;
            let done = inst
                .service
                .tenancy
                .delete_org_by_operator(&org, &confirm)
                .await?;
            // Its objects are unreadable now (their keys are gone); the running server's orphan
            // sweep removes them from storage.
            if json {
                let mut out = serde_json::json!(done);
                out["org_id"] = serde_json::json!(org);
                print_json(out);
            } else {
                println!(
                    "deleted the organization {org}: {} asset(s) and {} stored object(s) destroyed, {} member(s) of it alone erased",
                    done.assets, done.blobs, done.members_erased
                );
            }
        }
        AdminCommand::CreateUser {
            instance,
            email,
            org,
            role,
            password_stdin,
            json,
        } => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!(e.0))?;
            let org = org_id(&org)?;
            let role = parse_role(&role)?;
            let pw = if password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let inst = open(&instance, Create::Never).await?;
            let user_id = inst.service.ops.create_user(&org, email, role, pw).await?;
            if json {
                print_json(serde_json::json!({"user_id": user_id}));
            } else {
                println!("user: {user_id}");
            }
        }
    }
    Ok(())
}

/// `strongroom keys ...`.
pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Status { instance, json } => {
            let inst = open(&instance, Create::Never).await?;
            let status = inst.service.ops.key_status().await?;
            if json {
                print_json(serde_json::to_value(&status)?);
            } else {
                println!("active KEK version: {}", status.active_version);
                for (v, n) in &status.data_keys {
                    println!("  version {v}: {n} data keys");
                }
            }
        }
        KeysCommand::Rotate { instance, json } => {
            let inst = open(&instance, Create::Never).await?;
            let tty = std::io::stderr().is_terminal();
            let report = inst
                .service
                .ops
                .rotate_keys(|done, total| {
                    let mut err = std::io::stderr();
                    if tty {
                        let _ = write!(err, "\rrewrapping data keys: {done}/{total}");
                    } else {
                        let _ = writeln!(err, "rewrapping data keys: {done}/{total}");
                    }
                })
                .await?;
            if tty {
                eprintln!();
            }
            if json {
                print_json(serde_json::to_value(&report)?);
            } else {
                println!(
                    "KEK version {} is active; {} data keys rewrapped; retired versions: {:?}",
                    report.active_version, report.rewrapped, report.retired_versions
                );
            }
        }
    }
    Ok(())
}

/// `strongroom audit verify`: exit status 1 when any chain is broken, rolled back behind its
/// latest checkpoint, or has a checkpoint that does not verify.
pub async fn audit(cmd: AuditCommand) -> anyhow::Result<bool> {
    let AuditCommand::Verify {
        instance,
        org,
        json,
    } = cmd;
    let org = org.as_deref().map(org_id).transpose()?;
    let inst = open(&instance, Create::Never).await?;
    let reports = inst.service.audit.verify_audit(org.as_ref()).await?;
    let intact = reports.iter().all(|r| r.intact);
    if json {
        print_json(serde_json::json!({"intact": intact, "orgs": reports}));
    } else {
        for r in &reports {
            match (&r.first_broken_seq, &r.problem) {
                (Some(seq), Some(why)) => println!("{}: BROKEN at event {seq}: {why}", r.org_id),
                _ if r.deleted => println!(
                    "{}: deleted, intact (its last event, the deletion, is the head it recorded)",
                    r.org_id
                ),
                _ => match &r.latest_checkpoint {
                    Some(cp) => println!(
                        "{}: intact ({} events; {} checkpoints, the latest at seq {} written {})",
                        r.org_id,
                        r.events,
                        r.checkpoints,
                        cp.seq,
                        cp.at.rfc3339()
                    ),
                    None => println!(
                        "{}: intact ({} events; no checkpoint yet: a running server writes one within its checkpoint interval of a change)",
                        r.org_id, r.events
                    ),
                },
            }
        }
    }
    if let Some(r) = reports.iter().find(|r| !r.intact) {
        eprintln!(
            "error: the audit trail of {} is broken at event {}: {}",
            r.org_id,
            r.first_broken_seq.unwrap_or_default(),
            r.problem.as_deref().unwrap_or("unknown")
        );
    }
    Ok(intact)
}

/// `strongroom jobs status`.
pub async fn jobs(cmd: JobsCommand) -> anyhow::Result<()> {
    let JobsCommand::Status { instance, json } = cmd;
    let inst = open(&instance, Create::Never).await?;
    let report = inst.service.jobs.job_report().await?;
    if json {
        print_json(serde_json::to_value(&report)?);
        return Ok(());
    }
    for (status, n) in &report.counts {
        println!("{status:<8} {n}");
    }
    if report.counts.is_empty() {
        println!("no jobs");
    }
    for f in &report.recent_failures {
        println!(
            "failed {} {} after {} attempt(s) at {}: {}",
            f.id,
            f.kind,
            f.attempts,
            f.updated_at.rfc3339(),
            f.error
        );
    }
    Ok(())
}

/// `strongroom storage ...`: `Ok(false)` (exit status 1) when the scrub left a blob with no good
/// copy.
pub async fn storage(cmd: StorageCommand) -> anyhow::Result<bool> {
    match cmd {
        StorageCommand::Status { instance, json } => {
            let inst = open(&instance, Create::Never).await?;
            let status = inst.service.ops.storage_status().await?;
            let backups = inst.service.backups.status().await?;
            if json {
                let mut out = serde_json::to_value(&status)?;
                out["backups"] = serde_json::to_value(&backups)?;
                print_json(out);
                return Ok(true);
            }
            println!(
                "an upload is acknowledged once {} backend(s) hold it",
                status.copies_required
            );
            for b in &status.backends {
                let state = match &b.error {
                    None => "up".to_owned(),
                    Some(e) => format!("DOWN ({e})"),
                };
                println!(
                    "{:<16} {state}; last scrub: {} objects, {} bytes, {} missing, {} corrupt",
                    b.name, b.objects, b.bytes, b.missing, b.corrupt
                );
            }
            match &status.last_scrub {
                Some(r) => println!(
                    "last scrub {}: {} blobs checked, {} copies repaired, {} unrecoverable",
                    r.finished_at.as_deref().unwrap_or("?"),
                    r.checked,
                    r.repaired,
                    r.unrecoverable
                ),
                None => println!("no scrub has run yet (strongroom storage scrub)"),
            }
            for (what, run) in [
                ("backup", &backups.last_backup),
                ("verified backup", &backups.last_verify),
                ("restore", &backups.last_restore),
            ] {
                match run {
                    Some(r) => println!(
                        "last {what} {}: {} at {} ({})",
                        r.finished_at,
                        r.backup_id,
                        r.destination,
                        if r.ok { "ok" } else { "FAILED" }
                    ),
                    None => println!("no {what} yet"),
                }
            }
            if backups.shreds_pending > 0 {
                println!(
                    "{} purged blob(s) not yet removed from every backup's key set",
                    backups.shreds_pending
                );
            }
            Ok(true)
        }
        StorageCommand::Scrub { instance, json } => {
            let inst = open(&instance, Create::Never).await?;
            let tty = std::io::stderr().is_terminal();
            let mut last_line = 0u64;
            let report = inst
                .service
                .ops
                .scrub(|done, total| {
                    let mut err = std::io::stderr();
                    if tty {
                        let _ = write!(err, "\rchecking blobs: {done}/{total}");
                    } else if done == total || done >= last_line + 1000 {
                        last_line = done;
                        let _ = writeln!(err, "checking blobs: {done}/{total}");
                    }
                })
                .await?;
            if tty {
                eprintln!();
            }
            if json {
                print_json(serde_json::json!({
                    "checked": report.checked,
                    "repaired": report.repaired,
                    "unrecoverable": report.unrecoverable,
                    "unrecoverable_blobs": report.unrecoverable_blobs,
                    "backends": report.backends,
                }));
            } else {
                println!(
                    "{} blobs checked, {} copies repaired, {} unrecoverable",
                    report.checked, report.repaired, report.unrecoverable
                );
                for id in &report.unrecoverable_blobs {
                    println!("no good copy left of blob {id}: restore it from a backup");
                }
            }
            Ok(report.unrecoverable == 0)
        }
        StorageCommand::Move {
            instance,
            org,
            region,
            detach,
            json,
        } => {
            let org = org_id(&org)?;
            let inst = open(&instance, Create::Never).await?;
            let started = inst.service.ops.start_region_move(&org, &region).await?;
            if detach {
                print_move(&started, json);
                return Ok(true);
            }
            let done = follow_move(&inst, &org).await?;
            print_move(&done, json);
            Ok(done.status == "done")
        }
        StorageCommand::MoveStatus {
            instance,
            org,
            json,
        } => {
            let org = org_id(&org)?;
            let inst = open(&instance, Create::Never).await?;
            match inst.service.ops.region_move(&org).await? {
                Some(m) => print_move(&m, json),
                None if json => print_json(serde_json::json!({"move": null})),
                None => println!("this organization was never moved to another region"),
            }
            Ok(true)
        }
    }
}

fn print_move(m: &strongroom_service::RegionMove, json: bool) {
    if json {
        print_json(serde_json::to_value(m).unwrap_or_default());
        return;
    }
    println!(
        "move to region '{}' (job {}): {}; {} blob(s) in the region, {} elsewhere",
        m.to, m.job_id, m.status, m.blobs_in_region, m.blobs_elsewhere
    );
    if let Some(e) = &m.error {
        println!("last error: {e}");
    }
}

/// Follows an organization's move until its job ends, with progress on standard error. The
/// job runs here too if no server has claimed it (a worker of the storage lane in this process).
async fn follow_move(
    inst: &crate::boot::Instance,
    org: &strongroom_domain::OrgId,
) -> anyhow::Result<strongroom_service::RegionMove> {
    let jobs = std::sync::Arc::clone(&inst.service.jobs);
    let worker = tokio::spawn(async move {
        let name = format!("cli-storage-{}", std::process::id());
        // Runs due storage jobs until none is left (the move, unless a server took it).
        while let Ok(true) = jobs.run_one(strongroom_service::Lane::Storage, &name).await {}
    });
    let tty = std::io::stderr().is_terminal();
    let mut last = (u64::MAX, u64::MAX);
    let outcome = loop {
        let Some(m) = inst.service.ops.region_move(org).await? else {
            anyhow::bail!("the move job disappeared");
        };
        if m.finished() {
            break m;
        }
        if (m.blobs_in_region, m.blobs_elsewhere) != last {
            last = (m.blobs_in_region, m.blobs_elsewhere);
            let total = m.blobs_in_region + m.blobs_elsewhere;
            let mut err = std::io::stderr();
            if tty {
                let _ = write!(err, "\rmoving blobs: {}/{total}", m.blobs_in_region);
            } else {
                let _ = writeln!(err, "moving blobs: {}/{total}", m.blobs_in_region);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    if tty {
        eprintln!();
    }
    worker.abort();
    Ok(outcome)
}
