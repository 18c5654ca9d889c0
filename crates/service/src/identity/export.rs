//! A person's copy of their data (`GET /api/v1/me/export`): their account, memberships,
//! sessions, API keys' metadata, the audit events they did or that were about them, and the
//! metadata of what they uploaded, in every organization they belong to, as JSON files in a zip.

use std::io::Write as _;

use serde_json::{Value, json};
use strongroom_domain::{AssetId, OrgId};
use strongroom_store::AuditEventRow;
use zip::write::SimpleFileOptions;

use super::Identity;
use crate::audit::Record;
use crate::authz::SelfAuthz;
use crate::{Result, ServiceError};

/// The most audit events one organization contributes; past it, `truncated` says so.
const MAX_EVENTS_PER_ORG: usize = 100_000;
/// Events read at a time.
const PAGE: u32 = 1000;

/// The export: a zip archive's bytes and its file name.
pub struct DataExport {
    /// `strongroom-export-<user id>-<date>.zip`.
    pub filename: String,
    /// The archive.
    pub zip: Vec<u8>,
}

const README: &str = "\
This is your copy of the personal data Strongroom holds about you, as JSON files.

account.json        your account: id, email address, when it was created, whether it has 2FA
memberships.json    the organizations you belong to and your role in each
sessions.json       your signed-in sessions that have not ended (address, browser, times)
api_keys.json       the API keys you own (names, roles, dates; never a secret)
audit_events.json   per organization, the audit events you did (as yourself or with one of
                    your keys) and those about your account, with their addresses and times;
                    \"truncated\": true when an organization had more than 100000
uploads.json        the assets you uploaded: their metadata, and whether each is still stored,
                    in a trash, or purged. The content itself is the organization's: download
                    it from the dashboard or the API while you have access.
";

impl Identity {
    /// Builds the signed-in user's data export, and records that it was made.
    pub async fn export_my_data(&self, authz: &SelfAuthz<'_>) -> Result<DataExport> {
        let (p, uid) = (authz.principal(), authz.user_id());
        let store = &self.ctx.store;
        let email = store.user_email(uid).await?;
        let totp = store.totp(uid).await?.is_some_and(|t| t.active);
        let memberships = store.memberships_of(uid).await?;
        let keys = store.api_keys_of_user(uid).await?;
        let sessions = store.sessions_of(uid).await?;

        let mut actors = vec![format!("user:{uid}")];
        actors.extend(keys.iter().map(|k| format!("key:{}", k.id)));
        let mut events = serde_json::Map::new();
        let mut uploads = Vec::new();
        for (org_id, _, _) in &memberships {
            let (found, truncated) = self.events_about(org_id, &actors, uid.as_str()).await?;
            for e in found.iter().filter(|e| e.event.action == "asset.create") {
                if actors.contains(&e.event.actor) {
                    uploads.push(self.upload_of(org_id, e).await?);
                }
            }
            let list: Vec<Value> = found.iter().map(event_json).collect();
            events.insert(
                org_id.to_string(),
                json!({"events": list, "truncated": truncated}),
            );
        }

        let now = self.ctx.clock.now();
        let files: [(&str, Value); 6] = [
            (
                "account.json",
                json!({"user_id": uid, "email": email.map(|e| e.as_str().to_owned()),
                    "mfa_enabled": totp, "exported_at": now.rfc3339()}),
            ),
            (
                "memberships.json",
                Value::Array(
                    memberships
                        .iter()
                        .map(|(org, name, role)| json!({"org_id": org, "name": name, "role": role}))
                        .collect(),
                ),
            ),
            (
                "sessions.json",
                Value::Array(
                    sessions
                        .iter()
                        .map(|s| {
                            json!({"id": s.id, "org_id": s.org_id, "created_at": s.created_at.rfc3339(),
                                "last_seen_at": s.last_seen_at.rfc3339(), "ip": s.ip, "user_agent": s.user_agent})
                        })
                        .collect(),
                ),
            ),
            (
                "api_keys.json",
                Value::Array(
                    keys.iter()
                        .map(|k| {
                            json!({"id": k.id, "org_id": k.org_id, "name": k.name.as_str(),
                                "role": k.role.to_stored(), "created_at": k.created_at.rfc3339(),
                                "expires_at": k.expires_at.map(|t| t.rfc3339()),
                                "revoked_at": k.revoked_at.map(|t| t.rfc3339())})
                        })
                        .collect(),
                ),
            ),
            ("audit_events.json", Value::Object(events)),
            ("uploads.json", Value::Array(uploads)),
        ];
        let zip = archive(&files)?;

        let mut tx = store.begin().await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "account.export", uid)
                    .detail(json!({"bytes": zip.len(), "orgs": memberships.len()})),
            )
            .await?;
        tx.commit().await?;
        Ok(DataExport {
            filename: format!(
                "strongroom-export-{uid}-{}.zip",
                now.rfc3339().get(..10).unwrap_or("now")
            ),
            zip,
        })
    }

    /// An organization's events by `actors` or about `target`, up to the cap.
    async fn events_about(
        &self,
        org_id: &OrgId,
        actors: &[String],
        target: &str,
    ) -> Result<(Vec<AuditEventRow>, bool)> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .ctx
                .store
                .audit_events_about(org_id, actors, target, after, PAGE)
                .await?;
            let Some(last) = page.last() else {
                return Ok((out, false));
            };
            after = last.seq;
            let full = page.len() == PAGE as usize;
            out.extend(page);
            if out.len() >= MAX_EVENTS_PER_ORG {
                out.truncate(MAX_EVENTS_PER_ORG);
                return Ok((out, true));
            }
            if !full {
                return Ok((out, false));
            }
        }
    }

    /// What became of an asset the user uploaded (the upload's event names it).
    async fn upload_of(&self, org_id: &OrgId, created: &AuditEventRow) -> Result<Value> {
        let detail: Value = serde_json::from_str(&created.event.detail).unwrap_or(Value::Null);
        let state = match AssetId::parse(&created.event.target) {
            Ok(id) => match self.ctx.store.asset_in_any_state(org_id, &id).await? {
                Some(a) if a.deleted_at.is_some() => "trash",
                Some(_) => "stored",
                None => "purged",
            },
            Err(_) => "purged",
        };
        Ok(json!({"id": created.event.target, "org_id": org_id,
            "uploaded_at": created.event.at.rfc3339(), "filename": detail["filename"],
            "size": detail["size"], "sha256": detail["sha256"], "space_id": detail["space_id"],
            "state": state}))
    }
}

fn event_json(e: &AuditEventRow) -> Value {
    let detail: Value = serde_json::from_str(&e.event.detail).unwrap_or(Value::Null);
    json!({"seq": e.seq, "at": e.event.at.rfc3339(), "actor": e.event.actor,
        "action": e.event.action, "target": e.event.target, "ip": e.event.ip, "detail": detail})
}

/// The JSON files, pretty-printed, and the README, in a zip (deflate-free: stored entries).
fn archive(files: &[(&str, Value)]) -> Result<Vec<u8>> {
    let fail =
        |e: &dyn std::fmt::Display| ServiceError::Internal(format!("building the export: {e}"));
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("README.txt", options)
        .map_err(|e| fail(&e))?;
    zip.write_all(README.as_bytes()).map_err(|e| fail(&e))?;
    for (name, value) in files {
        zip.start_file(*name, options).map_err(|e| fail(&e))?;
        let text = serde_json::to_vec_pretty(value).map_err(|e| fail(&e))?;
        zip.write_all(&text).map_err(|e| fail(&e))?;
    }
    Ok(zip.finish().map_err(|e| fail(&e))?.into_inner())
}
