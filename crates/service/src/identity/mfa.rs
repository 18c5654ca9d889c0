//! Two-factor authentication: TOTP enrolment and confirmation, recovery codes, the second step
//! of login, disabling (with the password), and the organization policy that requires it.
//!
//! The TOTP secret is stored encrypted with a root-derived field key, bound to the user id.
//! The last accepted time step is stored and only ever moves forward (a compare-and-set in
//! the database), so a code works once even when two logins race. Recovery codes are stored as
//! HMACs and used up atomically. Second-factor failures have their own counters: a correct
//! password does not open unlimited guessing of six-digit codes.

use strongroom_domain::UserId;
use strongroom_identity::{recovery, totp};
use zeroize::Zeroizing;

use super::Identity;
use super::throttle::Scopes;
use crate::audit::Record;
use crate::authz::SelfAuthz;
use crate::notify::{Notice, NoticeContext};
use crate::{Result, ServiceError};

/// A new TOTP enrolment, shown once.
pub struct TotpEnrolment {
    /// Base32 secret, for typing into an app.
    pub secret: Zeroizing<String>,
    /// `otpauth://` URI, for app links.
    pub otpauth_uri: Zeroizing<String>,
    /// The URI as a QR code (SVG).
    pub qr_svg: Zeroizing<String>,
}

/// How many recovery codes a confirmed enrolment gets.
pub const RECOVERY_CODES: usize = 10;
const ISSUER: &str = "Strongroom";
/// Second-factor failures of one (account, address) pair in 15 minutes before refusal.
pub(crate) const OTP_PAIR_LIMIT: u64 = 5;
/// Second-factor failures of one account in an hour before refusal.
pub(crate) const OTP_ACCOUNT_LIMIT: u64 = 20;

fn aad(user: &UserId) -> Vec<u8> {
    format!("totp:{user}").into_bytes()
}

fn unix_secs(now: strongroom_domain::Timestamp) -> u64 {
    u64::try_from(now.millis() / 1000).unwrap_or_default()
}

impl Identity {
    fn secret_of(&self, user: &UserId, sealed: &[u8]) -> Result<totp::TotpSecret> {
        let plain = self.totp_key.open(&aad(user), sealed).map_err(|_| {
            ServiceError::Internal(format!("the TOTP secret of {user} does not decrypt"))
        })?;
        let text =
            std::str::from_utf8(&plain).map_err(|e| ServiceError::Internal(e.to_string()))?;
        totp::TotpSecret::from_base32(text).map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Starts TOTP enrolment for the signed-in user: not active until confirmed with a code.
    pub async fn enrol_totp(&self, authz: &SelfAuthz<'_>) -> Result<TotpEnrolment> {
        let (p, uid) = (authz.principal(), authz.user_id());
        self.ctx.require_recent_auth(p).await?;
        if self.ctx.store.totp(uid).await?.is_some_and(|t| t.active) {
            return Err(ServiceError::Conflict(
                "two-factor authentication is already on; turn it off first".into(),
            ));
        }
        let email = self
            .ctx
            .store
            .user_email(uid)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        let secret = totp::TotpSecret::generate();
        let enrolment = totp::enrolment(&secret, ISSUER, email.as_str())
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let sealed = self.totp_key.seal(&aad(uid), secret.to_base32().as_bytes());
        let mut tx = self.ctx.store.begin().await?;
        tx.set_pending_totp(uid, &sealed, self.ctx.clock.now())
            .await?;
        self.ctx
            .audit
            .append(&mut tx, Record::by(p, "mfa.enrol_start", uid))
            .await?;
        tx.commit().await?;
        Ok(TotpEnrolment {
            secret: enrolment.secret_base32,
            otpauth_uri: Zeroizing::new(enrolment.otpauth_uri.to_string()),
            qr_svg: Zeroizing::new(enrolment.qr_svg.to_string()),
        })
    }

    /// Activates the pending enrolment with a valid code; returns the recovery codes (shown once).
    pub async fn confirm_totp(
        &self,
        authz: &SelfAuthz<'_>,
        code: &str,
    ) -> Result<Vec<Zeroizing<String>>> {
        let (p, uid) = (authz.principal(), authz.user_id());
        let row = self
            .ctx
            .store
            .totp(uid)
            .await?
            .filter(|t| !t.active)
            .ok_or(ServiceError::Conflict(
                "there is no enrolment to confirm: start one with POST /api/v1/me/mfa/totp".into(),
            ))?;
        let secret = self.secret_of(uid, &row.secret_enc)?;
        let step =
            totp::verify(&secret, code, unix_secs(self.ctx.clock.now()), None).map_err(|_| {
                ServiceError::Invalid(
                    "the code is not valid: check the time on your device and try the next code"
                        .into(),
                )
            })?;
        let codes = recovery::generate(RECOVERY_CODES);
        let hashes: Vec<[u8; 32]> = codes
            .iter()
            .map(|c| self.recovery_hasher.mac(c.as_bytes()))
            .collect();
        let mut tx = self.ctx.store.begin().await?;
        if !tx.accept_totp_step(uid, step).await? {
            return Err(ServiceError::Invalid(
                "that code was already used: wait for the next one".into(),
            ));
        }
        tx.replace_recovery_codes(uid, &hashes).await?;
        self.ctx
            .audit
            .append(&mut tx, Record::by(p, "mfa.enable", uid))
            .await?;
        self.notify
            .queue_notice(
                &mut tx,
                Some(&p.org_id),
                uid,
                Notice::MfaEnabled,
                p.notice_context(),
            )
            .await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Turns the second factor off; the password proves it is the user.
    pub async fn disable_totp(
        &self,
        authz: &SelfAuthz<'_>,
        password: Zeroizing<String>,
        captcha: Option<&str>,
    ) -> Result<()> {
        let (p, uid) = (authz.principal(), authz.user_id());
        self.passwords
            .check_own_password(uid, &p.meta.ip, &password, captcha)
            .await?;
        let mut tx = self.ctx.store.begin().await?;
        tx.delete_totp(uid).await?;
        self.ctx
            .audit
            .append(&mut tx, Record::by(p, "mfa.disable", uid))
            .await?;
        self.notify
            .queue_notice(
                &mut tx,
                Some(&p.org_id),
                uid,
                Notice::MfaDisabled,
                p.notice_context(),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The second step of login, for users with an active second factor.
    pub(crate) async fn check_second_factor(
        &self,
        user: &UserId,
        scopes: &Scopes,
        code: Option<&str>,
        recovery_code: Option<&str>,
    ) -> Result<()> {
        let Some(row) = self.ctx.store.totp(user).await?.filter(|t| t.active) else {
            return Ok(());
        };
        if code.is_none() && recovery_code.is_none() {
            return Err(ServiceError::MfaRequired);
        }
        if self.passwords.otp_failures(scopes).await? {
            return Err(ServiceError::RateLimited {
                retry_after_secs: 15 * 60,
            });
        }
        let now = self.ctx.clock.now();
        let mut tx = self.ctx.store.begin().await?;
        let ok = match (code, recovery_code) {
            (Some(code), _) => {
                let secret = self.secret_of(user, &row.secret_enc)?;
                match totp::verify(&secret, code, unix_secs(now), row.last_step) {
                    Ok(step) => tx.accept_totp_step(user, step).await?,
                    Err(_) => false,
                }
            }
            (None, Some(rc)) => match recovery::normalize(rc) {
                Some(normal) => {
                    let used = tx
                        .use_recovery_code(user, &self.recovery_hasher.mac(normal.as_bytes()), now)
                        .await?;
                    if used {
                        let ctx = NoticeContext {
                            ip: &scopes.addr,
                            user_agent: None,
                        };
                        self.notify
                            .queue_notice(&mut tx, None, user, Notice::RecoveryCodeUsed, ctx)
                            .await?;
                    }
                    used
                }
                None => false,
            },
            (None, None) => false,
        };
        tx.commit().await?;
        if !ok {
            self.passwords.record_otp_failure(scopes).await?;
            return Err(ServiceError::InvalidCredentials);
        }
        Ok(())
    }
}
