//! Strongroom's use cases: each one authorizes, runs one store transaction, does its blob I/O
//! through the encryption layer and appends its audit event in that same transaction.
//!
//! This is the only place where policy lives. HTTP handlers and CLI commands parse input into the
//! typed arguments these methods take, call one method, and render the result; they never touch
//! the store, the blob store or keys directly. Nothing here knows about HTTP.

mod access;
mod admin;
mod assets;
mod audit;
mod audit_batch;
pub mod authz;
mod checkpoint;
mod hashing;
mod jobs;
mod keyring;
mod links;
mod mail;
mod media;
mod mfa;
mod playback;
mod principal;
mod quotas;
mod sessions;
mod sweep;
mod throttle;

use std::sync::Arc;

use strongroom_blob::{BlobError, BlobStore};
use strongroom_crypto::keys::{MacKey, RootKey};
use strongroom_domain::{Clock, Role};
use strongroom_store::{Store, StoreError};

pub use access::{Accepted, GrantInfo, InvitationInfo, RoleInfo};
pub use admin::{ApiKeyInfo, Bootstrapped, CreatedKey, MIN_PASSWORD_LEN, RotatedKey};
pub use assets::{Asset, AssetDetail, ByteStream, Content, ListQuery, NewUpload, Space};
pub use audit::{AuditEvent, AuditExport, ChainReport, CheckpointInfo, SeqRange};
pub use authz::perm;
pub use checkpoint::CheckpointRound;
pub use jobs::{FailedJob, JobFailure, JobKind, JobReport, JobsConfig, Lane};
pub use keyring::{KeyStatus, Keyring, RotationReport};
pub use links::{
    CreatedLink, DEFAULT_MAX_LINK_LIFETIME_SECS, LINK_TOKEN_BYTES, LinkGrant, LinkInfo, NewLink,
};
pub use mail::{Mail, MailError, Mailer};
pub use media::{MediaView, RenditionInfo};
pub use mfa::{RECOVERY_CODES, TotpEnrolment};
pub use playback::{CreatedPlayback, HlsFile, PLAYBACK_TOKEN_BYTES};
pub use principal::{Actor, Principal, RequestMeta};
pub use quotas::UsageInfo;
pub use sessions::{LoggedIn, LoginRequest, REAUTH_WINDOW_SECS, SessionCredentials, SessionInfo};
pub use strongroom_store::MemberRow;
pub use strongroom_store::Page;

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
    Busy(#[source] StoreError),
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
            busy if busy.is_busy() => ServiceError::Busy(busy),
            other => ServiceError::Store(other),
        }
    }
}

impl From<BlobError> for ServiceError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Crypto(_) => ServiceError::Integrity(e),
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
                links::DEFAULT_MAX_LINK_LIFETIME_SECS,
            ),
            default_quota: Quota::default(),
            audit_checkpoint_interval: std::time::Duration::from_secs(60),
            jobs: JobsConfig::default(),
        }
    }
}

/// The application: every use case is a method.
pub struct Service {
    store: Store,
    blobs: Arc<dyn BlobStore>,
    keyring: Keyring,
    audit_key: MacKey,
    checkpoints: checkpoint::Checkpoints,
    api_key_hasher: MacKey,
    session_hasher: MacKey,
    csrf_hasher: MacKey,
    captcha_key: MacKey,
    totp_key: strongroom_crypto::keys::FieldKey,
    recovery_hasher: MacKey,
    invitation_hasher: MacKey,
    device_hasher: MacKey,
    jobs_key: strongroom_crypto::keys::FieldKey,
    hls_key_seal: strongroom_crypto::keys::FieldKey,
    playback_hasher: MacKey,
    media: Option<strongroom_media::Media>,
    /// Wakes this node's workers of a lane when a job of the lane is enqueued here.
    jobs_ready: jobs::Wakers,
    link_hasher: MacKey,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    key_touches: principal::TouchThrottle,
    /// Audit events of content reads waiting for their group commit.
    read_batch: audit_batch::ReadBatch,
    /// Password-hashing turns and threads: one per core less one (see `hashing`).
    hashing: hashing::HashPool,
}

impl Service {
    /// Assembles the service; creates the first KEK when the database has none.
    pub async fn new(
        store: Store,
        blobs: Arc<dyn BlobStore>,
        root: RootKey,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Result<Service> {
        let audit_key = root.derive("audit-chain");
        let checkpoints = checkpoint::Checkpoints::new(root.derive(checkpoint::KEY_PURPOSE));
        let api_key_hasher = root.derive("api-key");
        let session_hasher = root.derive("session");
        let csrf_hasher = root.derive("csrf");
        let captcha_key = root.derive("captcha");
        let totp_key = root.field_key("totp");
        let recovery_hasher = root.derive("recovery-code");
        let invitation_hasher = root.derive("invitation");
        let device_hasher = root.derive("device");
        let jobs_key = root.field_key("jobs");
        let hls_key_seal = root.field_key("hls-key");
        let playback_hasher = root.derive("playback");
        let media = config.media.clone().map(strongroom_media::Media::new);
        let link_hasher = root.derive("link");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // One core is always left to everything else (at least one permit on one core).
        let hashing = hashing::HashPool::start(cores.saturating_sub(1).max(1))?;
        let keyring = Keyring::load(&store, root, clock.now()).await?;
        Ok(Service {
            store,
            blobs,
            keyring,
            audit_key,
            checkpoints,
            api_key_hasher,
            session_hasher,
            csrf_hasher,
            captcha_key,
            totp_key,
            recovery_hasher,
            invitation_hasher,
            device_hasher,
            jobs_key,
            hls_key_seal,
            playback_hasher,
            media,
            jobs_ready: jobs::Wakers::default(),
            link_hasher,
            clock,
            config,
            key_touches: principal::TouchThrottle::default(),
            read_batch: audit_batch::ReadBatch::default(),
            hashing,
        })
    }

    /// Closes the database pool, at shutdown. Nothing outside this crate reaches the store
    /// itself: every read and write goes through a use case.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// The limits in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Readiness: the database and the blob store both answer.
    pub async fn ready(&self) -> Result<()> {
        self.store.ping().await?;
        self.blobs.check().await?;
        Ok(())
    }
}

/// Parses a role name from the outside world.
pub fn parse_role(s: &str) -> Result<Role> {
    s.parse().map_err(ServiceError::Invalid)
}
