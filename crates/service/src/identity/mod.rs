//! Identity: signing in, sessions, passwords, second factors and the sign-in limits.
//!
//! [`Passwords`] checks and hashes passwords under the sign-in limits (its own hashing threads,
//! the brute-force counters, the proof-of-work captcha); [`Identity`] and the tenancy's
//! invitation acceptance both check passwords through it, so every path that checks a password
//! shares the same limits.

use std::sync::Arc;

use strongroom_crypto::keys::{FieldKey, MacKey, RootKey};

use crate::Result;
use crate::ctx::Ctx;
use crate::notify::Notify;

pub(crate) mod erasure;
pub(crate) mod export;
pub(crate) mod hashing;
pub(crate) mod mfa;
pub(crate) mod sessions;
pub(crate) mod throttle;

/// Sign-in, sessions, password changes and second factors.
pub struct Identity {
    ctx: Arc<Ctx>,
    session_hasher: MacKey,
    csrf_hasher: MacKey,
    device_hasher: MacKey,
    totp_key: FieldKey,
    recovery_hasher: MacKey,
    passwords: Arc<Passwords>,
    notify: Notify,
}

impl Identity {
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        root: &RootKey,
        passwords: Arc<Passwords>,
        notify: Notify,
    ) -> Identity {
        Identity {
            ctx,
            session_hasher: root.derive("session"),
            csrf_hasher: root.derive("csrf"),
            device_hasher: root.derive("device"),
            totp_key: root.field_key("totp"),
            recovery_hasher: root.derive("recovery-code"),
            passwords,
            notify,
        }
    }
}

/// Password checks and hashing under the sign-in limits.
pub struct Passwords {
    ctx: Arc<Ctx>,
    captcha_key: MacKey,
    /// Password-hashing turns and threads: one per core less one (see `hashing`).
    hashing: hashing::HashPool,
}

impl Passwords {
    pub(crate) fn new(ctx: Arc<Ctx>, root: &RootKey) -> Result<Passwords> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        // One core is always left to everything else (at least one permit on one core).
        let hashing = hashing::HashPool::start(cores.saturating_sub(1).max(1))?;
        Ok(Passwords {
            ctx,
            captcha_key: root.derive("captcha"),
            hashing,
        })
    }
}

impl Identity {
    /// Deletes sign-in records too old to count towards any limit.
    pub async fn prune_login_records(&self) -> Result<()> {
        self.passwords.prune_login_records().await
    }
}
