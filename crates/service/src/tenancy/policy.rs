//! The organization's policy: whether every member must use a second factor (and who has one),
//! how long sessions live, and how long deleted assets stay in the trash.

use strongroom_store::MemberRow;

use strongroom_domain::OrgId;

use super::Tenancy;
use crate::audit::Record;
use crate::authz::{OrgAuthz, perm};
use crate::content::lifecycle::TRASH_DAYS;
use crate::ops::region::latest_move;
use crate::{Result, ServiceError};

/// An organization as its members see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgDetail {
    /// Its id.
    pub id: OrgId,
    /// Its name.
    pub name: String,
    /// The data-residency region its content is stored in.
    pub region: String,
    /// Whether every member must use a second factor.
    pub require_mfa: bool,
    /// Sessions end after this long without a request, seconds.
    pub session_idle_secs: i64,
    /// Sessions end this long after sign-in, seconds.
    pub session_absolute_secs: i64,
    /// Days a deleted asset stays in its space's trash before it is purged.
    pub trash_days: u32,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Its latest move to another region, if it was ever moved.
    pub region_move: Option<RegionMoveSummary>,
    /// Owners only (not a space-limited key): the instance's latest backup, verified backup
    /// and restore. Backups cover the whole instance, so no destination is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups: Option<crate::backup::OwnerBackupView>,
}

/// The bounds of an organization's idle session timeout, seconds (5 minutes to a day).
pub const SESSION_IDLE_SECS: std::ops::RangeInclusive<i64> = 300..=86_400;
/// The bounds of its absolute session lifetime, seconds (15 minutes to 30 days).
pub const SESSION_ABSOLUTE_SECS: std::ops::RangeInclusive<i64> = 900..=2_592_000;

/// What a policy change sets; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct PolicyChange {
    /// Whether every member must use a second factor.
    pub require_mfa: Option<bool>,
    /// Sign a session out after this long without a request.
    pub session_idle_secs: Option<i64>,
    /// Sign a session out this long after sign-in, however active.
    pub session_absolute_secs: Option<i64>,
    /// Keep deleted assets in the trash this many days.
    pub trash_days: Option<i64>,
}

/// The policy after a change.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OrgPolicy {
    /// The organization.
    pub id: OrgId,
    /// Whether every member must use a second factor.
    pub require_mfa: bool,
    /// The idle timeout, seconds.
    pub session_idle_secs: i64,
    /// The absolute lifetime, seconds.
    pub session_absolute_secs: i64,
    /// The grace period in the trash, days.
    pub trash_days: u32,
}

/// How far a move to another region has come (no job internals).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegionMoveSummary {
    /// Where it goes.
    pub to: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Blobs in the new region.
    pub blobs_in_region: u64,
    /// Blobs still elsewhere.
    pub blobs_elsewhere: u64,
}

impl Tenancy {
    /// The organization: its name, region, policy, and any move to another region.
    pub async fn org_detail(&self, authz: &OrgAuthz<'_, perm::OrgRead>) -> Result<OrgDetail> {
        let org = authz.org_id();
        let row = self
            .ctx
            .store
            .org(org)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let require_mfa = self.ctx.store.requires_mfa(org).await?;
        let (session_idle_secs, session_absolute_secs) = self.ctx.store.session_policy(org).await?;
        let trash_days = self.ctx.store.trash_days(org).await?;
        let region_move = latest_move(&self.ctx, org)
            .await?
            .map(|m| RegionMoveSummary {
                to: m.to,
                status: m.status,
                blobs_in_region: m.blobs_in_region,
                blobs_elsewhere: m.blobs_elsewhere,
            });
        let p = authz.principal();
        let backups = if p.role == "owner" && p.space_limit.is_none() {
            Some(crate::backup::OwnerBackupView::read(&self.ctx.store).await?)
        } else {
            None
        };
        Ok(OrgDetail {
            id: row.id,
            name: row.name.as_str().to_owned(),
            region: row.region,
            require_mfa,
            session_idle_secs,
            session_absolute_secs,
            trash_days,
            created_at: row.created_at.rfc3339(),
            region_move,
            backups,
        })
    }

    /// Changes the organization's security policy: whether members must use a second factor,
    /// and how long sessions live (idle and absolute, seconds). What is not given stays (an
    /// empty change answers the policy as it is); the
    /// new timeouts apply to every session at its next request. A session ends at whichever
    /// limit comes first, so an idle timeout longer than the lifetime is allowed (and moot).
    pub async fn set_policy(
        &self,
        authz: &OrgAuthz<'_, perm::OrgManage>,
        change: PolicyChange,
    ) -> Result<OrgPolicy> {
        let (p, org) = (authz.principal(), authz.org_id());
        let (idle_now, absolute_now) = self.ctx.store.session_policy(org).await?;
        let idle = change.session_idle_secs.unwrap_or(idle_now);
        let absolute = change.session_absolute_secs.unwrap_or(absolute_now);
        if !SESSION_IDLE_SECS.contains(&idle) {
            return Err(ServiceError::Invalid(format!(
                "session_idle_secs must be between {} and {}",
                SESSION_IDLE_SECS.start(),
                SESSION_IDLE_SECS.end()
            )));
        }
        if !SESSION_ABSOLUTE_SECS.contains(&absolute) {
            return Err(ServiceError::Invalid(format!(
                "session_absolute_secs must be between {} and {}",
                SESSION_ABSOLUTE_SECS.start(),
                SESSION_ABSOLUTE_SECS.end()
            )));
        }
        let trash_now = self.ctx.store.trash_days(org).await?;
        let trash_days = match change.trash_days {
            None => trash_now,
            Some(d) => u32::try_from(d)
                .ok()
                .filter(|d| TRASH_DAYS.contains(d))
                .ok_or_else(|| {
                    ServiceError::Invalid(format!(
                        "trash_days must be between {} and {}",
                        TRASH_DAYS.start(),
                        TRASH_DAYS.end()
                    ))
                })?,
        };
        let mut tx = self.ctx.store.begin().await?;
        let mut detail = serde_json::Map::new();
        if let Some(required) = change.require_mfa {
            tx.set_require_mfa(org, required).await?;
            detail.insert("require_mfa".into(), required.into());
        }
        if (idle, absolute) != (idle_now, absolute_now) {
            tx.set_session_policy(org, idle, absolute).await?;
            detail.insert("session_idle_secs".into(), idle.into());
            detail.insert("session_absolute_secs".into(), absolute.into());
        }
        if trash_days != trash_now {
            tx.set_trash_days(org, trash_days).await?;
            detail.insert("trash_days".into(), trash_days.into());
        }
        // Nothing sent, or only what already holds: nothing to record.
        if !detail.is_empty() {
            self.ctx
                .audit
                .append(
                    &mut tx,
                    Record::by(p, "org.policy_change", org)
                        .detail(serde_json::Value::Object(detail)),
                )
                .await?;
        }
        tx.commit().await?;
        Ok(OrgPolicy {
            id: org.clone(),
            require_mfa: self.ctx.store.requires_mfa(org).await?,
            session_idle_secs: idle,
            session_absolute_secs: absolute,
            trash_days,
        })
    }

    /// The organization's members, with whether each has two-factor authentication on.
    pub async fn list_members(
        &self,
        authz: &OrgAuthz<'_, perm::MemberManage>,
    ) -> Result<Vec<MemberRow>> {
        Ok(self.ctx.store.members(authz.org_id()).await?)
    }
}
