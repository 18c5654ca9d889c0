//! Strongroom's use cases: each one authorizes, runs one store transaction, does its blob I/O
//! through the encryption layer and appends its audit event in that same transaction.
//!
//! This is the only place where policy lives. HTTP handlers and CLI commands parse input into the
//! typed arguments these methods take, call one method, and render the result; they never touch
//! the store, the blob store or keys directly. Nothing here knows about HTTP.
//!
//! The use cases are split by context, each a small service over one shared `Ctx` (the
//! store, the blob store, the clock, the limits, the audit log) holding only the keys it needs:
//!
//! | context | does | keys it holds |
//! |---|---|---|
//! | [`authz`] | authenticates a credential, the one permission check | API-key, session and CSRF hashers |
//! | [`identity`] | sign-in, sessions, passwords, second factors, sign-in limits | session, CSRF, device, TOTP-seal, recovery-code hashers; captcha |
//! | [`tenancy`] | spaces, members, roles, grants, invitations, policy, quotas | invitation hasher |
//! | [`keys`] | API keys: create, list, rotate, revoke | API-key hasher |
//! | [`content`] | uploads, downloads, renditions, links, HLS playback | the keyring (data keys), link and playback hashers, HLS key seal |
//! | [`audit`] | the trail: list, export, verify, checkpoints | checkpoint key (the chain's MAC key is the shared audit log's) |
//! | [`jobs`] | the queue, its workers, media processing | job-payload seal, the keyring, HLS key seal |
//! | [`notify`] | mail: invitations and security notices | none (mail goes through the job queue) |
//! | [`ops`] | the operator's commands: bootstrap, users, quotas, key rotation, sweeps | the keyring |
//!
//! [`Service`] only assembles them: handlers call `service.content.upload(..)`,
//! `service.authz.authorize_asset(..)` and so on.

pub mod audit;
pub mod authz;
pub mod backup;
pub mod content;
mod ctx;
pub mod identity;
pub mod jobs;
pub mod keys;
pub mod notify;
pub mod ops;
mod sealing;
pub mod tenancy;

use std::sync::Arc;

use strongroom_blob::{BlobError, BlobStore as _, Regions};
use strongroom_crypto::keys::RootKey;
use strongroom_domain::{Clock, Role};
use strongroom_store::{Store, StoreError};

pub use audit::checkpoint::CheckpointRound;
pub use audit::{AuditEvent, AuditExport, ChainReport, CheckpointInfo, SeqRange};
pub use authz::perm;
pub use authz::principal::{Actor, Principal, RequestMeta};
pub use content::assets::{Asset, AssetDetail, ByteStream, Content, ListQuery, NewUpload, Space};
pub use content::lifecycle::{LifecycleReport, MAX_RETENTION_DAYS, TRASH_DAYS};
pub use content::links::{
    CreatedLink, DEFAULT_MAX_LINK_LIFETIME_SECS, LINK_TOKEN_BYTES, LinkGrant, LinkInfo, NewLink,
};
pub use content::playback::{CreatedPlayback, HlsFile, PLAYBACK_TOKEN_BYTES};
pub use content::renditions::{MediaView, RenditionInfo};
pub use identity::export::DataExport;
pub use identity::mfa::{RECOVERY_CODES, TotpEnrolment};
pub use identity::sessions::{
    LoggedIn, LoginRequest, MyAccount, MyOrg, REAUTH_WINDOW_SECS, SessionCredentials, SessionInfo,
};
pub use jobs::queue::{FailedJob, JobFailure, JobKind, JobReport, JobsConfig, Lane, QueueDepth};
pub use keys::keyring::{KeyStatus, Keyring, RotationReport};
pub use keys::{ApiKeyInfo, CreatedKey, MIN_PASSWORD_LEN, RotatedKey};
pub use notify::{Mail, MailError, Mailer};
pub use ops::Bootstrapped;
pub use ops::region::RegionMove;
pub use ops::storage::{BackendScrub, BackendStatus, ScrubReport, StorageStatus};
pub use sealing::metadata_sealer;
pub use strongroom_store::MemberRow;
pub use strongroom_store::Page;
pub use tenancy::access::{GrantInfo, RoleInfo};
pub use tenancy::deletion::OrgDeleted;
pub use tenancy::invitations::{Accepted, InvitationInfo};
pub use tenancy::policy::{OrgDetail, OrgPolicy, PolicyChange, RegionMoveSummary};
pub use tenancy::quotas::UsageInfo;

/// Something a use case refused or failed to do. Each variant says what the caller should tell
/// the user; `Internal` carries a cause meant for the log only.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No valid credential was presented (missing, unknown, expired or revoked).
    #[error("a valid API key or session is required")]
    Unauthenticated,
    /// The credential is valid but its role lacks the permission.
    #[error("your role does not allow {0}")]
    Forbidden(&'static str),
    /// Too many failed attempts: try again later.
    #[error("too many failed attempts; try again in {retry_after_secs} seconds")]
    RateLimited {
        /// When to try again.
        retry_after_secs: u64,
    },
    /// The attempt must carry a solved proof-of-work challenge: this one.
    #[error("solve the proof-of-work challenge and send it with the attempt")]
    CaptchaRequired {
        /// The challenge to solve.
        challenge: String,
    },
    /// A sensitive action needs the password entered again (POST /api/v1/auth/reauth).
    #[error(
        "confirm your password first (POST /api/v1/auth/reauth): this action needs a recent sign-in"
    )]
    ReauthRequired,
    /// The account has a second factor: send `totp` or `recovery_code` with the password.
    #[error(
        "this account has two-factor authentication: send the code from your authenticator app (totp) or a recovery code"
    )]
    MfaRequired,
    /// The organization requires a second factor the user has not set up yet.
    #[error(
        "your organization requires two-factor authentication: enrol an authenticator app first (POST /api/v1/me/mfa/totp)"
    )]
    MfaEnrolmentRequired,
    /// The email and password (or other factor) do not match an account.
    #[error("the email address or password is not correct")]
    InvalidCredentials,
    /// A state-changing request authenticated by a session cookie lacked its CSRF token.
    #[error("a valid X-CSRF-Token header is required with a session cookie")]
    CsrfRejected,
    /// A new password was refused by the password policy; the message says why.
    #[error("{0}")]
    WeakPassword(String),
    /// The resource does not exist, or exists in another organization.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input was refused; the message says why and is safe to show.
    #[error("{0}")]
    Invalid(String),
    /// The organization's storage quota does not allow this (bytes or number of assets).
    #[error("{0}")]
    QuotaExceeded(String),
    /// An upload went past the configured size limit.
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// Something the request needs is not set up or not reachable; the message says what.
    #[error("{0}")]
    Unavailable(String),
    /// The request conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// Stored data failed its integrity check (tampered or corrupt).
    #[error("stored data failed its integrity check")]
    Integrity(#[source] BlobError),
    /// The database is busy (no connection free in time, a lock held too long): the request
    /// changed nothing and may be tried again shortly.
    #[error("the database is busy; try again shortly")]
    Busy(#[source] Arc<StoreError>),
    /// The database failed; the cause is logged, never shown.
    #[error("database failure")]
    Store(#[source] StoreError),
    /// The blob store failed (not an integrity failure); the cause is logged, never shown.
    #[error("storage failure")]
    Blob(#[source] BlobError),
    /// An unexpected failure; the cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ServiceError::Conflict(format!("{what} already exists")),
            busy if busy.is_busy() => ServiceError::Busy(Arc::new(busy)),
            other => ServiceError::Store(other),
        }
    }
}

impl From<BlobError> for ServiceError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Crypto(_) => ServiceError::Integrity(e),
            BlobError::Unavailable(why) => ServiceError::Unavailable(why),
            BlobError::WrongLength { .. } => ServiceError::Invalid(e.to_string()),
            other => ServiceError::Blob(other),
        }
    }
}

/// Result alias for use cases.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Limits and settings the use cases enforce.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// How long an unreferenced stored object may exist before the sweep removes it.
    pub orphan_grace: std::time::Duration,
    /// Leading zero bits a login captcha must find (about 2^bits hashes for the client).
    pub captcha_bits: u32,
    /// Delay after a failed sign-in, doubled per recent failure of the same account and address
    /// (capped at 2 s).
    pub failure_delay: std::time::Duration,
    /// Delivers mail (invitations, security notices); `None`: mail is off.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// The address users reach the server at, for links in mail (`https://host:port`).
    pub public_url: String,
    /// How long an invitation link works.
    pub invitation_ttl: std::time::Duration,
    /// The media pipeline (ffmpeg); `None`: uploads are stored but not processed.
    pub media: Option<strongroom_media::MediaConfig>,
    /// The longest lifetime a download link may be given.
    pub max_link_lifetime: std::time::Duration,
    /// Background workers per lane, and the media lane's share per organization.
    pub jobs: JobsConfig,
    /// How often the server writes signed checkpoints of the audit chain heads that moved.
    pub audit_checkpoint_interval: std::time::Duration,
    /// How often the lifecycle job runs (retention rules, trash past its grace period).
    pub lifecycle_interval: std::time::Duration,
    /// `[backup]`: destinations, schedule and what prune keeps.
    pub backup: backup::BackupConfig,
    /// The storage quota of an organization the operator set none for (`None`: no limit).
    pub default_quota: Quota,
}

/// Storage limits of one organization: plaintext bytes and number of original assets
/// (renditions are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Quota {
    /// Most bytes; `None`: no limit.
    pub max_bytes: Option<u64>,
    /// Most assets; `None`: no limit.
    pub max_assets: Option<u64>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 5 * 1024 * 1024 * 1024,
            orphan_grace: std::time::Duration::from_secs(15 * 60),
            captcha_bits: 18,
            failure_delay: std::time::Duration::from_millis(100),
            mailer: None,
            media: None,
            public_url: "https://127.0.0.1:8443".into(),
            invitation_ttl: std::time::Duration::from_secs(72 * 3600),
            max_link_lifetime: std::time::Duration::from_secs(
                content::links::DEFAULT_MAX_LINK_LIFETIME_SECS,
            ),
            default_quota: Quota::default(),
            audit_checkpoint_interval: std::time::Duration::from_secs(60),
            lifecycle_interval: std::time::Duration::from_secs(3600),
            backup: backup::BackupConfig::default(),
            jobs: JobsConfig::default(),
        }
    }
}

/// The application: one small service per context, over one shared context.
pub struct Service {
    /// Authentication and the one permission check.
    pub authz: authz::Authz,
    /// Sign-in, sessions, passwords and second factors.
    pub identity: identity::Identity,
    /// Spaces, members, roles, grants, invitations, policy and usage.
    pub tenancy: tenancy::Tenancy,
    /// API keys.
    pub keys: Arc<keys::Keys>,
    /// Uploads, downloads, renditions, links and playback.
    pub content: content::ContentService,
    /// The audit trail and its checkpoints.
    pub audit: Arc<audit::Audit>,
    /// The job queue and its workers.
    pub jobs: Arc<jobs::Jobs>,
    /// The operator's commands.
    pub ops: ops::Ops,
    /// Backups: create, list, prune, the shred pass and the schedule.
    pub backups: Arc<backup::Backups>,
    ctx: Arc<ctx::Ctx>,
}

impl Service {
    /// Assembles the service; creates the first KEK when the database has none. Each context
    /// derives its own keys from the root key here; the root key itself is kept by the keyring
    /// alone.
    pub async fn new(
        store: Store,
        blobs: Arc<Regions>,
        root: RootKey,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Result<Service> {
        let media = config.media.clone().map(strongroom_media::Media::new);
        let ctx = Arc::new(ctx::Ctx::new(
            store.clone(),
            blobs,
            Arc::clone(&clock),
            config,
            &root,
        ));
        let authz = authz::Authz::new(Arc::clone(&ctx), &root);
        let queue = jobs::queue::JobQueue::new(Arc::clone(&ctx), &root);
        let notify = notify::Notify::new(Arc::clone(&ctx), queue.clone());
        let passwords = Arc::new(identity::Passwords::new(Arc::clone(&ctx), &root)?);
        let identity = identity::Identity::new(
            Arc::clone(&ctx),
            &root,
            Arc::clone(&passwords),
            notify.clone(),
        );
        let tenancy = tenancy::Tenancy::new(
            Arc::clone(&ctx),
            &root,
            Arc::clone(&passwords),
            notify.clone(),
        );
        let keys = Arc::new(keys::Keys::new(Arc::clone(&ctx), &root));
        let audit = Arc::new(audit::Audit::new(Arc::clone(&ctx), &root));
        let backups = Arc::new(backup::Backups::new(Arc::clone(&ctx), &root));
        let seal_jobs = jobs::media::MediaWorker::keys(&root);
        let content_keys = content::ContentService::keys(&root);
        let keyring = Arc::new(Keyring::load(&store, root, clock.now()).await?);
        let content = content::ContentService::new(
            Arc::clone(&ctx),
            content_keys,
            Arc::clone(&keyring),
            queue.clone(),
        );
        let worker =
            jobs::media::MediaWorker::new(Arc::clone(&ctx), seal_jobs, Arc::clone(&keyring), media);
        let mover = jobs::region_move::RegionMover::new(Arc::clone(&ctx), Arc::clone(&keyring));
        let ops = ops::Ops::new(
            Arc::clone(&ctx),
            Arc::clone(&keyring),
            Arc::clone(&keys),
            queue.clone(),
        );
        let jobs = Arc::new(jobs::Jobs::new(
            Arc::clone(&ctx),
            queue,
            worker,
            mover,
            notify,
        ));
        Ok(Service {
            authz,
            identity,
            tenancy,
            keys,
            content,
            audit,
            jobs,
            ops,
            backups,
            ctx,
        })
    }

    /// Closes the database pool, at shutdown. Nothing outside this crate reaches the store
    /// itself: every read and write goes through a use case.
    pub async fn close(&self) {
        self.ctx.store.close().await;
    }

    /// The limits in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.ctx.config
    }

    /// Readiness: the database answers and enough storage backends answer to take uploads.
    /// `Ok` lists the backends that do not answer (the service is degraded but serving).
    /// In every region: each region takes uploads only while `copies` of its backends answer.
    pub async fn ready(&self) -> Result<Vec<String>> {
        self.ctx.store.ping().await?;
        let mut down = Vec::new();
        for (region, blobs) in self.ctx.blobs.each() {
            let mut region_down = Vec::new();
            for copy in 0..blobs.copies() {
                if let Err(e) = blobs.check_copy(copy).await {
                    tracing::warn!(backend = %blobs.copy_name(copy), error = %e, "a storage backend does not answer");
                    region_down.push(blobs.copy_name(copy));
                }
            }
            let up = blobs.copies() - region_down.len();
            if up < blobs.required_copies() {
                return Err(ServiceError::Unavailable(format!(
                    "uploads in region '{region}' need {} storage backend(s) but only {up} answer (down: {})",
                    blobs.required_copies(),
                    region_down.join(", ")
                )));
            }
            down.extend(region_down);
        }
        Ok(down)
    }

    /// The request metadata for actions the CLI takes.
    pub fn cli_meta() -> RequestMeta {
        RequestMeta::default()
    }
}

/// Parses a role name from the outside world.
pub fn parse_role(s: &str) -> Result<Role> {
    s.parse().map_err(ServiceError::Invalid)
}
