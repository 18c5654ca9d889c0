//! Brute-force protection for sign-in, built so that a stranger cannot lock a user out.
//!
//! Failed checks are counted in the database, so every node enforces the same limits. Each
//! failure is recorded under three scopes: the client address, the account (by email, whether
//! or not it exists, so answers reveal nothing), and the (account, address) pair. Passwords and
//! second factors are counted separately (`kind`).
//!
//! | condition | effect |
//! |---|---|
//! | 3 failures of a pair in 15 min, or 10 of an account in 1 h | every attempt needs a solved proof-of-work captcha (428) |
//! | 20 failures of a pair, or 50 of an address, in 15 min | that pair or address is refused (429) |
//! | 100 failures of an account in 1 h (ASVS 2.2.1) | refused (429), except from addresses the user signed in from in the last 30 days |
//!
//! A refused or captcha-less attempt never reaches the password hash, so it costs the server
//! almost nothing. Each failure is also answered after a delay that grows with the pair's recent
//! failures.

use std::time::Duration;

use base64::Engine as _;
use strongroom_crypto::{pow, token};
use strongroom_domain::{Email, Timestamp, UserId};

use super::Passwords;
use crate::{Result, ServiceError};

const SHORT_WINDOW_SECS: i64 = 15 * 60;
const LONG_WINDOW_SECS: i64 = 60 * 60;
const PAIR_CAPTCHA: u64 = 3;
const ACCOUNT_CAPTCHA: u64 = 10;
const PAIR_BLOCK: u64 = 20;
const ADDRESS_BLOCK: u64 = 50;
/// ASVS 2.2.1: no more than 100 failed attempts per hour on one account.
const ACCOUNT_BLOCK: u64 = 100;
const KNOWN_ADDRESS_SECS: i64 = 30 * 24 * 3600;
const CHALLENGE_TTL_SECS: i64 = 5 * 60;

/// Which factor a failure was for.
#[derive(Clone, Copy)]
pub(crate) enum Factor {
    Password,
    Otp,
}

impl Factor {
    fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::Otp => "otp",
        }
    }
}

pub(crate) struct Scopes {
    /// The client address itself, for notices.
    pub(crate) addr: String,
    ip: String,
    account: String,
    pair: String,
}

/// The sign-in failure counter of one account (by its address).
pub(crate) fn account_scope(email: &Email) -> String {
    format!("acct:{}", email.as_str())
}

impl Scopes {
    pub(crate) fn new(email: &Email, ip: &str) -> Scopes {
        Scopes {
            addr: ip.to_owned(),
            ip: format!("ip:{ip}"),
            account: account_scope(email),
            pair: format!("pair:{}|{ip}", email.as_str()),
        }
    }
}

impl Passwords {
    /// Decides whether a sign-in attempt may check its password at all.
    pub(crate) async fn login_gate(
        &self,
        scopes: &Scopes,
        ip: &str,
        user: Option<&UserId>,
        captcha: Option<&str>,
        factor: Factor,
    ) -> Result<()> {
        let now = self.ctx.clock.now();
        let short = now.plus_secs(-SHORT_WINDOW_SECS);
        let long = now.plus_secs(-LONG_WINDOW_SECS);
        let kind = factor.as_str();
        let address = self
            .ctx
            .store
            .failures_since(&scopes.ip, kind, short)
            .await?;
        let pair = self
            .ctx
            .store
            .failures_since(&scopes.pair, kind, short)
            .await?;
        if address >= ADDRESS_BLOCK || pair >= PAIR_BLOCK {
            metrics::counter!("strongroom_login_throttled_total", "scope" => if address >= ADDRESS_BLOCK { "address" } else { "pair" }).increment(1);
            return Err(ServiceError::RateLimited {
                retry_after_secs: SHORT_WINDOW_SECS as u64,
            });
        }
        let account = self
            .ctx
            .store
            .failures_since(&scopes.account, kind, long)
            .await?;
        if account >= ACCOUNT_BLOCK {
            let known = match user {
                Some(u) => {
                    self.ctx
                        .store
                        .known_address(u, ip, now.plus_secs(-KNOWN_ADDRESS_SECS))
                        .await?
                }
                None => false,
            };
            if !known {
                metrics::counter!("strongroom_login_throttled_total", "scope" => "account")
                    .increment(1);
                return Err(ServiceError::RateLimited {
                    retry_after_secs: LONG_WINDOW_SECS as u64,
                });
            }
        }
        if pair >= PAIR_CAPTCHA || account >= ACCOUNT_CAPTCHA {
            self.redeem_captcha(captcha).await?;
        }
        Ok(())
    }

    /// Records a failed check; returns the pair's failures so far, for the delay.
    pub(crate) async fn login_failed(&self, scopes: &Scopes, factor: Factor) -> Result<u64> {
        let now = self.ctx.clock.now();
        let scopes_list = [
            scopes.ip.clone(),
            scopes.account.clone(),
            scopes.pair.clone(),
        ];
        self.ctx
            .store
            .record_failure(&scopes_list, factor.as_str(), now)
            .await?;
        metrics::counter!("strongroom_login_failures_total", "factor" => factor.as_str())
            .increment(1);
        let pair = self
            .ctx
            .store
            .failures_since(
                &scopes.pair,
                factor.as_str(),
                now.plus_secs(-SHORT_WINDOW_SECS),
            )
            .await?;
        Ok(pair)
    }

    /// Whether this failure made the account reach its hourly limit (worth one audit event).
    pub(crate) async fn account_just_locked(
        &self,
        scopes: &Scopes,
        factor: Factor,
    ) -> Result<bool> {
        let now = self.ctx.clock.now();
        let n = self
            .ctx
            .store
            .failures_since(
                &scopes.account,
                factor.as_str(),
                now.plus_secs(-LONG_WINDOW_SECS),
            )
            .await?;
        Ok(n == ACCOUNT_BLOCK)
    }

    /// Waits longer after each recent failure of the same pair (capped).
    pub(crate) async fn failure_delay(&self, pair_failures: u64) {
        let base = self.ctx.config.failure_delay;
        let factor = 1u32 << pair_failures.min(4);
        tokio::time::sleep((base * factor).min(Duration::from_secs(2))).await;
    }

    /// After a success: the address is known, and the pair starts afresh.
    pub(crate) async fn login_succeeded(
        &self,
        scopes: &Scopes,
        user: &UserId,
        ip: &str,
    ) -> Result<()> {
        self.ctx
            .store
            .record_login_success(user, ip, self.ctx.clock.now())
            .await?;
        self.ctx.store.clear_failures(&scopes.pair).await?;
        Ok(())
    }

    /// A new signed challenge: `v1.<expires ms>.<salt>.<bits>.<mac>`.
    fn new_challenge(&self) -> String {
        let expires = self.ctx.clock.now().plus_secs(CHALLENGE_TTL_SECS).millis();
        let salt = token::random_token(16);
        let body = format!("v1.{expires}.{salt}.{}", self.ctx.config.captcha_bits);
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.captcha_key.mac(body.as_bytes()));
        format!("{body}.{mac}")
    }

    /// Accepts `<challenge>:<nonce>` once; anything else (missing, forged, expired, unsolved,
    /// replayed) answers with a fresh challenge.
    async fn redeem_captcha(&self, solution: Option<&str>) -> Result<()> {
        let fresh = || ServiceError::CaptchaRequired {
            challenge: self.new_challenge(),
        };
        let Some((challenge, nonce)) = solution.and_then(|s| s.rsplit_once(':')) else {
            return Err(fresh());
        };
        let parts: Vec<&str> = challenge.split('.').collect();
        let [version, expires, salt, bits, mac] = parts.as_slice() else {
            return Err(fresh());
        };
        let body = format!("{version}.{expires}.{salt}.{bits}");
        let Ok(mac) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(mac) else {
            return Err(fresh());
        };
        let (Ok(expires), Ok(bits)) = (expires.parse::<i64>(), bits.parse::<u32>()) else {
            return Err(fresh());
        };
        let valid = *version == "v1"
            && self.captcha_key.verify(body.as_bytes(), &mac)
            && expires > self.ctx.clock.now().millis()
            && bits >= self.ctx.config.captcha_bits
            && pow::check(challenge, nonce, bits);
        if !valid
            || !self
                .ctx
                .store
                .spend_challenge(salt, Timestamp::from_millis(expires))
                .await?
        {
            return Err(fresh());
        }
        Ok(())
    }

    /// Whether second-factor failures reached their limit (5 per pair in 15 min, 20 per account
    /// in an hour): codes are six digits, so they get far fewer tries than passwords.
    pub(crate) async fn otp_failures(&self, scopes: &Scopes) -> Result<bool> {
        let now = self.ctx.clock.now();
        let kind = Factor::Otp.as_str();
        let pair = self
            .ctx
            .store
            .failures_since(&scopes.pair, kind, now.plus_secs(-SHORT_WINDOW_SECS))
            .await?;
        let account = self
            .ctx
            .store
            .failures_since(&scopes.account, kind, now.plus_secs(-LONG_WINDOW_SECS))
            .await?;
        let (pair_limited, account_limited) = (
            pair >= super::mfa::OTP_PAIR_LIMIT,
            account >= super::mfa::OTP_ACCOUNT_LIMIT,
        );
        if pair_limited || account_limited {
            metrics::counter!("strongroom_login_throttled_total", "scope" => if pair_limited { "pair" } else { "account" }).increment(1);
        }
        Ok(pair_limited || account_limited)
    }

    /// Records a failed second-factor check.
    pub(crate) async fn record_otp_failure(&self, scopes: &Scopes) -> Result<()> {
        self.login_failed(scopes, Factor::Otp).await.map(|_| ())
    }

    /// Deletes failure records past the longest window and expired challenges.
    pub async fn prune_login_records(&self) -> Result<()> {
        let now = self.ctx.clock.now();
        self.ctx
            .store
            .prune_login_records(now.plus_secs(-LONG_WINDOW_SECS), now)
            .await?;
        Ok(())
    }
}
