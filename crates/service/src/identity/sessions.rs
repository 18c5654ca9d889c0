//! Passwords and browser sessions: login, the session behind a cookie (with its CSRF token and
//! timeouts), listing and revoking sessions, logout, password change.
//!
//! Password hashing is deliberately slow, so it runs on its own lowest-priority threads behind one
//! turn per core less one (`hashing`): a flood of logins queues there and gets only CPU time no
//! other request wants. An unknown email still costs one hash, so response time does not reveal
//! which addresses exist.

use std::sync::OnceLock;

use strongroom_crypto::{password, token};
use strongroom_domain::{Email, OrgId, SessionId, Timestamp, UserId};
use strongroom_store::SessionRow;
use zeroize::Zeroizing;

use super::throttle::{Factor, Scopes};
use super::{Identity, Passwords};
use crate::audit::Record;
use crate::authz::SelfAuthz;
use crate::notify::{Notice, NoticeContext};
use crate::{Actor, Principal, RequestMeta, Result, ServiceError};

/// How long after entering the password a session may do sensitive things (enrol a second
/// factor, create admin-level keys).
pub const REAUTH_WINDOW_SECS: i64 = 10 * 60;

/// What a login asks for.
pub struct LoginRequest {
    /// The account.
    pub email: Email,
    /// The password.
    pub password: Zeroizing<String>,
    /// The organization to act in (default: the one the user joined first).
    pub org_id: Option<OrgId>,
    /// The client address.
    pub meta: RequestMeta,
    /// The client's User-Agent, for the session list.
    pub user_agent: String,
    /// A solved captcha (`<challenge>:<nonce>`), when the previous answer asked for one.
    pub captcha: Option<String>,
    /// The authenticator app's current code, for accounts with two-factor authentication.
    pub totp: Option<Zeroizing<String>>,
    /// A recovery code, instead of `totp`.
    pub recovery_code: Option<Zeroizing<String>>,
    /// The browser's device cookie, if it has one.
    pub device: Option<String>,
}

/// A new session: the cookie secret and CSRF token are shown once.
pub struct LoggedIn {
    /// The user.
    pub user_id: UserId,
    /// The organization the session acts in.
    pub org_id: OrgId,
    /// The session's public id.
    pub session_id: SessionId,
    /// The cookie value.
    pub cookie_secret: Zeroizing<String>,
    /// The token to send in `X-CSRF-Token` with every unsafe request.
    pub csrf_token: Zeroizing<String>,
    /// The cookie's lifetime (the organization's absolute session lifetime), seconds.
    pub max_age_secs: i64,
    /// A new device cookie to set, when the browser had none.
    pub device_cookie: Option<Zeroizing<String>>,
}

/// The signed-in user's address and organizations.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MyAccount {
    /// The account's email address.
    pub email: Option<String>,
    /// Whether the account has an active second factor (TOTP).
    pub mfa_enabled: bool,
    /// Every organization the user belongs to.
    pub orgs: Vec<MyOrg>,
}

/// One organization the user belongs to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MyOrg {
    /// Its id.
    pub org_id: OrgId,
    /// Its name.
    pub name: String,
    /// The user's role there (a custom role by its name).
    pub role: String,
    /// Whether the calling session acts in it.
    pub current: bool,
}

/// A session as the session list shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    /// Its id.
    pub id: SessionId,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it was last used.
    pub last_seen_at: Timestamp,
    /// The address it was opened from.
    pub ip: String,
    /// The browser.
    pub user_agent: String,
    /// Whether it is the session making this request.
    pub current: bool,
}

/// The cookie secret and the CSRF token presented with a request.
pub struct SessionCredentials<'a> {
    /// The cookie value.
    pub secret: &'a str,
    /// `X-CSRF-Token`, if sent.
    pub csrf: Option<&'a str>,
    /// Whether the method changes state (POST, PUT, PATCH, DELETE): then the CSRF token is required.
    pub unsafe_method: bool,
}

/// A hash no password matches, verified against for unknown emails so they take as long as
/// known ones.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| password::hash(&token::random_token(24)).unwrap_or_default())
}

impl Passwords {
    /// A turn on the password-hashing pool (one per core, less one: other requests always keep a
    /// core however many sign-ins arrive, and the hashing threads run at the lowest priority).
    pub(crate) async fn hash_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.hashing.turn().await
    }

    /// Verifies a password; the caller holds a [`Passwords::hash_slot`].
    pub(crate) async fn verify_in_slot(
        &self,
        pw: &Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<bool> {
        let pw = pw.clone();
        self.hashing
            .run(move || match stored {
                Some(h) => password::verify(&pw, &h),
                None => {
                    let _ = password::verify(&pw, decoy_hash());
                    false
                }
            })
            .await
    }

    /// Hashes a password on the hashing pool, in a turn of its own.
    pub(crate) async fn hash_password_bounded(&self, pw: Zeroizing<String>) -> Result<String> {
        let _turn = self.hash_slot().await?;
        self.hashing
            .run(move || password::hash(&pw))
            .await?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    /// Checks a signed-in user's own password (re-authentication, a password change, turning
    /// off the second factor) under the sign-in limits: the same counters, captcha and delays
    /// as the login form, so a stolen session is no password oracle.
    pub(crate) async fn check_own_password(
        &self,
        uid: &UserId,
        ip: &str,
        password: &Zeroizing<String>,
        captcha: Option<&str>,
    ) -> Result<()> {
        let email = self
            .ctx
            .store
            .user_email(uid)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        self.check_password_throttled(uid, &email, ip, password, captcha)
            .await
    }

    /// Checks a known user's password under the sign-in limits for (email, address).
    pub(crate) async fn check_password_throttled(
        &self,
        uid: &UserId,
        email: &strongroom_domain::Email,
        ip: &str,
        password: &Zeroizing<String>,
        captcha: Option<&str>,
    ) -> Result<()> {
        let scopes = Scopes::new(email, ip);
        let slot = self.hash_slot().await?;
        self.login_gate(&scopes, ip, Some(uid), captcha, Factor::Password)
            .await?;
        let stored = self.ctx.store.password_hash(uid).await?;
        if !self.verify_in_slot(password, stored).await? {
            let pair_failures = self.login_failed(&scopes, Factor::Password).await?;
            drop(slot);
            self.failure_delay(pair_failures).await;
            return Err(ServiceError::InvalidCredentials);
        }
        Ok(())
    }
}

impl Identity {
    /// Checks email and password and opens a session in one of the user's organizations.
    /// Every failure is the same `InvalidCredentials`, whatever was wrong.
    pub async fn login(&self, req: LoginRequest) -> Result<LoggedIn> {
        let user = self.ctx.store.user_by_email(&req.email).await?;
        let scopes = Scopes::new(&req.email, &req.meta.ip);
        // The limits are checked, the password verified and a failure recorded while holding a
        // hashing turn: concurrent guesses cannot all pass the check before any failure counts.
        let slot = self.passwords.hash_slot().await?;
        self.passwords
            .login_gate(
                &scopes,
                &req.meta.ip,
                user.as_ref().map(|u| &u.id),
                req.captcha.as_deref(),
                Factor::Password,
            )
            .await?;
        let stored = match &user {
            Some(u) => self.ctx.store.password_hash(&u.id).await?,
            None => None,
        };
        let ok = self
            .passwords
            .verify_in_slot(&req.password, stored.clone())
            .await?;
        let user = match (user, ok) {
            (Some(user), true) => user,
            (user, _) => {
                let pair_failures = self
                    .passwords
                    .login_failed(&scopes, Factor::Password)
                    .await?;
                drop(slot);
                if let Some(u) = &user {
                    self.audit_login_failure(&u.id, &scopes, &req.meta.ip)
                        .await?;
                }
                self.passwords.failure_delay(pair_failures).await;
                return Err(ServiceError::InvalidCredentials);
            }
        };
        drop(slot);
        self.check_second_factor(
            &user.id,
            &scopes,
            req.totp.as_deref().map(String::as_str),
            req.recovery_code.as_deref().map(String::as_str),
        )
        .await?;
        let org_id =
            match req.org_id {
                Some(o) => o,
                None => self.ctx.store.first_membership(&user.id).await?.ok_or(
                    ServiceError::Forbidden("signing in without an organization"),
                )?,
            };
        if self
            .ctx
            .store
            .membership(&org_id, &user.id)
            .await?
            .is_none()
        {
            return Err(ServiceError::InvalidCredentials);
        }
        let org = self
            .ctx
            .store
            .org(&org_id)
            .await?
            .ok_or(ServiceError::InvalidCredentials)?;
        // Migrated (bcrypt) and outdated hashes are replaced now that the password is known.
        let rehash = match &stored {
            Some(h) if password::needs_rehash(h) => Some(
                self.passwords
                    .hash_password_bounded(req.password.clone())
                    .await?,
            ),
            _ => None,
        };
        let now = self.ctx.clock.now();
        let absolute = self.ctx.store.session_policy(&org.id).await?.1;
        let cookie_secret = Zeroizing::new(token::random_token(32));
        let csrf_token = Zeroizing::new(token::random_token(32));
        let row = SessionRow {
            id: SessionId::generate(),
            user_id: user.id.clone(),
            org_id: org.id.clone(),
            created_at: now,
            last_seen_at: now,
            reauth_at: now,
            ip: req.meta.ip.clone(),
            user_agent: req.user_agent.chars().take(300).collect(),
            revoked_at: None,
        };
        // Outside the transaction: SQLite has one writer, and this write uses its own connection.
        let (device_cookie, new_device) = self
            .recognise_device(&user.id, req.device.as_deref())
            .await?;
        let mut tx = self.ctx.store.begin().await?;
        if let Some(h) = &rehash {
            tx.set_password_hash(&user.id, h).await?;
        }
        tx.insert_session(
            &row,
            &self.session_hasher.mac(cookie_secret.as_bytes()),
            &self.csrf_hasher.mac(csrf_token.as_bytes()),
        )
        .await?;
        let p = Principal {
            org_id: org.id.clone(),
            role: String::new(),
            access: crate::authz::principal::Access::default(),
            actor: Actor::Session {
                session_id: row.id.clone(),
                user_id: user.id.clone(),
            },
            meta: req.meta,
            mfa_enrolment_required: false,
            space_limit: None,
        };
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(&p, "auth.login", &user.id).detail(serde_json::json!({
                    "session_id": row.id, "rehashed": rehash.is_some(), "new_device": new_device,
                })),
            )
            .await?;
        if new_device {
            let ctx = NoticeContext {
                ip: &p.meta.ip,
                user_agent: Some(&row.user_agent),
            };
            self.notify
                .queue_notice(&mut tx, Some(&org.id), &user.id, Notice::NewDevice, ctx)
                .await?;
        }
        tx.commit().await?;
        self.passwords
            .login_succeeded(&scopes, &user.id, &p.meta.ip)
            .await?;
        Ok(LoggedIn {
            user_id: user.id,
            org_id: org.id,
            session_id: row.id,
            cookie_secret,
            csrf_token,
            max_age_secs: absolute,
            device_cookie,
        })
    }

    /// Remembers the browser a user signs in from. Returns a device cookie to set (when the
    /// browser sent none) and whether this is a new device for a user who has signed in
    /// before: their very first sign-in is not news to them.
    async fn recognise_device(
        &self,
        user: &UserId,
        presented: Option<&str>,
    ) -> Result<(Option<Zeroizing<String>>, bool)> {
        let presented = presented.filter(|d| !d.is_empty() && d.len() <= 100);
        let (secret, fresh) = match presented {
            Some(d) => (Zeroizing::new(d.to_owned()), None),
            None => {
                let d = Zeroizing::new(token::random_token(32));
                (d.clone(), Some(d))
            }
        };
        let hash = self.device_hasher.mac(secret.as_bytes());
        let (known, any) = self.ctx.store.device_seen(user, &hash).await?;
        self.ctx
            .store
            .remember_device(user, &hash, self.ctx.clock.now())
            .await?;
        Ok((fresh, any && !known))
    }

    /// Audits a failed password check in the user's first organization, and once more when the
    /// failure brings the account to its hourly limit.
    async fn audit_login_failure(&self, user_id: &UserId, scopes: &Scopes, ip: &str) -> Result<()> {
        let Some(org_id) = self.ctx.store.first_membership(user_id).await? else {
            return Ok(());
        };
        let locked = self
            .passwords
            .account_just_locked(scopes, Factor::Password)
            .await?;
        let mut tx = self.ctx.store.begin().await?;
        let record = |action| Record {
            org_id: &org_id,
            actor: "anonymous".to_owned(),
            subject: Some(user_id.clone()),
            action,
            target: user_id.to_string(),
            ip: ip.to_owned(),
            detail: serde_json::json!({"factor": "password"}),
        };
        self.ctx
            .audit
            .append(&mut tx, record("auth.login_failed"))
            .await?;
        if locked {
            self.ctx
                .audit
                .append(&mut tx, record("auth.login_throttled"))
                .await?;
            let ctx = NoticeContext {
                ip,
                user_agent: None,
            };
            self.notify
                .queue_notice(
                    &mut tx,
                    Some(&org_id),
                    user_id,
                    Notice::AccountThrottled,
                    ctx,
                )
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Confirms the password in the current session (for sensitive actions), under the same
    /// brute-force limits as signing in.
    pub async fn reauthenticate(
        &self,
        authz: &SelfAuthz<'_>,
        password: Zeroizing<String>,
        captcha: Option<&str>,
    ) -> Result<()> {
        let (p, sid, uid) = (authz.principal(), authz.session_id(), authz.user_id());
        self.passwords
            .check_own_password(uid, &p.meta.ip, &password, captcha)
            .await?;
        self.ctx
            .store
            .set_session_reauth(sid, self.ctx.clock.now())
            .await?;
        Ok(())
    }

    /// Ends the caller's session.
    pub async fn logout(&self, authz: &SelfAuthz<'_>) -> Result<()> {
        let (p, sid, uid) = (authz.principal(), authz.session_id(), authz.user_id());
        let mut tx = self.ctx.store.begin().await?;
        tx.revoke_session(uid, sid, self.ctx.clock.now()).await?;
        self.ctx
            .audit
            .append(&mut tx, Record::by(p, "auth.logout", sid))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The caller's live sessions.
    pub async fn list_sessions(&self, authz: &SelfAuthz<'_>) -> Result<Vec<SessionInfo>> {
        let (p, sid, uid) = (authz.principal(), authz.session_id(), authz.user_id());
        let now = self.ctx.clock.now();
        let (idle, absolute) = self.ctx.store.session_policy(&p.org_id).await?;
        Ok(self
            .ctx
            .store
            .sessions_of(uid)
            .await?
            .into_iter()
            .filter(|s| {
                now < s.last_seen_at.plus_secs(idle) && now < s.created_at.plus_secs(absolute)
            })
            .map(|s| SessionInfo {
                current: &s.id == sid,
                id: s.id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect())
    }

    /// The organizations the signed-in user belongs to, for an organization switcher: a
    /// session acts in one of them, and signing in again with another's id opens one there.
    pub async fn my_orgs(&self, authz: &SelfAuthz<'_>) -> Result<MyAccount> {
        let uid = authz.user_id();
        let email = self.ctx.store.user_email(uid).await?;
        let mfa_enabled = self.ctx.store.totp(uid).await?.is_some_and(|t| t.active);
        let orgs = self
            .ctx
            .store
            .memberships_of(uid)
            .await?
            .into_iter()
            .map(|(org_id, name, role)| MyOrg {
                current: org_id == authz.principal().org_id,
                org_id,
                name,
                role,
            })
            .collect();
        Ok(MyAccount {
            email: email.map(|e| e.as_str().to_owned()),
            mfa_enabled,
            orgs,
        })
    }

    /// Revokes one of the caller's sessions (another user's id is not found).
    pub async fn revoke_session(&self, authz: &SelfAuthz<'_>, id: &SessionId) -> Result<()> {
        let (p, uid) = (authz.principal(), authz.user_id());
        let mut tx = self.ctx.store.begin().await?;
        if !tx.revoke_session(uid, id, self.ctx.clock.now()).await? {
            return Err(ServiceError::NotFound("session"));
        }
        self.ctx
            .audit
            .append(&mut tx, Record::by(p, "auth.session_revoke", id))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes the caller's password (the current one proves it is them) and signs out every
    /// other session.
    pub async fn change_password(
        &self,
        authz: &SelfAuthz<'_>,
        current: Zeroizing<String>,
        new: Zeroizing<String>,
        captcha: Option<&str>,
    ) -> Result<()> {
        let (p, sid, uid) = (authz.principal(), authz.session_id(), authz.user_id());
        self.passwords
            .check_own_password(uid, &p.meta.ip, &current, captcha)
            .await?;
        let email = self
            .ctx
            .store
            .user_email(uid)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        crate::keys::check_password(&new, &email)?;
        let hash = self.passwords.hash_password_bounded(new).await?;
        let mut tx = self.ctx.store.begin().await?;
        tx.set_password_hash(uid, &hash).await?;
        let revoked = tx
            .revoke_other_sessions(uid, Some(sid), self.ctx.clock.now())
            .await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "user.password_change", uid)
                    .detail(serde_json::json!({"other_sessions_revoked": revoked})),
            )
            .await?;
        self.notify
            .queue_notice(
                &mut tx,
                Some(&p.org_id),
                uid,
                Notice::PasswordChanged,
                p.notice_context(),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
