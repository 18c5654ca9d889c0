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

use crate::audit::Record;
use crate::authz::SelfAuthz;
use crate::mail::{Notice, NoticeContext};
use crate::throttle::{Factor, Scopes};
use crate::{Actor, Principal, RequestMeta, Result, Service, ServiceError};

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

impl Service {
    /// A turn on the password-hashing pool (one per core, less one: other requests always keep a
    /// core however many sign-ins arrive, and the hashing threads run at the lowest priority).
    pub(crate) async fn hash_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.hashing.turn().await
    }

    /// Verifies a password; the caller holds a [`Service::hash_slot`].
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

    /// Checks email and password and opens a session in one of the user's organizations.
    /// Every failure is the same `InvalidCredentials`, whatever was wrong.
    pub async fn login(&self, req: LoginRequest) -> Result<LoggedIn> {
        let user = self.store.user_by_email(&req.email).await?;
        let scopes = Scopes::new(&req.email, &req.meta.ip);
        // The limits are checked, the password verified and a failure recorded while holding a
        // hashing turn: concurrent guesses cannot all pass the check before any failure counts.
        let slot = self.hash_slot().await?;
        self.login_gate(
            &scopes,
            &req.meta.ip,
            user.as_ref().map(|u| &u.id),
            req.captcha.as_deref(),
            Factor::Password,
        )
        .await?;
        let stored = match &user {
            Some(u) => self.store.password_hash(&u.id).await?,
            None => None,
        };
        let ok = self.verify_in_slot(&req.password, stored.clone()).await?;
        let user = match (user, ok) {
            (Some(user), true) => user,
            (user, _) => {
                let pair_failures = self.login_failed(&scopes, Factor::Password).await?;
                drop(slot);
                if let Some(u) = &user {
                    self.audit_login_failure(&u.id, &scopes, &req.meta.ip)
                        .await?;
                }
                self.failure_delay(pair_failures).await;
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
        let org_id = match req.org_id {
            Some(o) => o,
            None => self
                .store
                .first_membership(&user.id)
                .await?
                .ok_or(ServiceError::Forbidden(
                    "signing in without an organization",
                ))?,
        };
        if self.store.membership(&org_id, &user.id).await?.is_none() {
            return Err(ServiceError::InvalidCredentials);
        }
        let org = self
            .store
            .org(&org_id)
            .await?
            .ok_or(ServiceError::InvalidCredentials)?;
        // Migrated (bcrypt) and outdated hashes are replaced now that the password is known.
        let rehash = match &stored {
            Some(h) if password::needs_rehash(h) => {
                Some(self.hash_password_bounded(req.password.clone()).await?)
            }
            _ => None,
        };
        let now = self.clock.now();
        let absolute = self.store.session_policy(&org.id).await?.1;
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
        let mut tx = self.store.begin().await?;
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
            access: crate::principal::Access::default(),
            actor: Actor::Session {
                session_id: row.id.clone(),
                user_id: user.id.clone(),
            },
            meta: req.meta,
            mfa_enrolment_required: false,
            space_limit: None,
        };
        self.audit(
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
            self.queue_notice(&mut tx, Some(&org.id), &user.id, Notice::NewDevice, ctx)
                .await?;
        }
        tx.commit().await?;
        self.login_succeeded(&scopes, &user.id, &p.meta.ip).await?;
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
        let (known, any) = self.store.device_seen(user, &hash).await?;
        self.store
            .remember_device(user, &hash, self.clock.now())
            .await?;
        Ok((fresh, any && !known))
    }

    /// Resolves a session cookie into a principal. Unknown, revoked, idle-expired and
    /// absolutely-expired sessions, and users no longer in the organization, are
    /// `Unauthenticated`; a state-changing request without the session's CSRF token is
    /// `CsrfRejected`.
    pub async fn authenticate_session(
        &self,
        creds: SessionCredentials<'_>,
        meta: RequestMeta,
    ) -> Result<Principal> {
        if creds.secret.is_empty() || creds.secret.len() > 100 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = self.session_hasher.mac(creds.secret.as_bytes());
        let Some(found) = self.store.session_by_hash(&hash).await? else {
            return Err(ServiceError::Unauthenticated);
        };
        if !token::ct_eq(&found.secret_hash, &hash) {
            return Err(ServiceError::Unauthenticated);
        }
        let s = &found.session;
        let now = self.clock.now();
        let idle_deadline = s.last_seen_at.plus_secs(found.idle_secs);
        let absolute_deadline = s.created_at.plus_secs(found.absolute_secs);
        if s.revoked_at.is_some() || now >= idle_deadline || now >= absolute_deadline {
            return Err(ServiceError::Unauthenticated);
        }
        let Some(role) = found.role else {
            return Err(ServiceError::Unauthenticated);
        };
        if creds.unsafe_method {
            let presented = creds.csrf.map(|t| self.csrf_hasher.mac(t.as_bytes()));
            if !presented.is_some_and(|h| token::ct_eq(&h, &found.csrf_hash)) {
                return Err(ServiceError::CsrfRejected);
            }
        }
        // Idle time is counted in whole minutes at most: no write on every request.
        if now.millis() - s.last_seen_at.millis() > 30_000
            && let Err(e) = self.store.touch_session(&s.id, now).await
        {
            tracing::warn!(error = %e, "could not record session use");
        }
        let mfa_enrolment_required = self.mfa_enrolment_pending(&s.org_id, &s.user_id).await?;
        let access = self.member_access(&s.org_id, &s.user_id, &role).await?;
        let (role, _) = self.resolve_role(&s.org_id, &role).await?;
        Ok(Principal {
            org_id: s.org_id.clone(),
            role,
            access,
            actor: Actor::Session {
                session_id: s.id.clone(),
                user_id: s.user_id.clone(),
            },
            meta,
            mfa_enrolment_required,
            space_limit: None,
        })
    }

    /// Audits a failed password check in the user's first organization, and once more when the
    /// failure brings the account to its hourly limit.
    async fn audit_login_failure(&self, user_id: &UserId, scopes: &Scopes, ip: &str) -> Result<()> {
        let Some(org_id) = self.store.first_membership(user_id).await? else {
            return Ok(());
        };
        let locked = self.account_just_locked(scopes, Factor::Password).await?;
        let mut tx = self.store.begin().await?;
        let record = |action| Record {
            org_id: &org_id,
            actor: "anonymous".to_owned(),
            action,
            target: user_id.to_string(),
            ip: ip.to_owned(),
            detail: serde_json::json!({"factor": "password"}),
        };
        self.audit(&mut tx, record("auth.login_failed")).await?;
        if locked {
            self.audit(&mut tx, record("auth.login_throttled")).await?;
            let ctx = NoticeContext {
                ip,
                user_agent: None,
            };
            self.queue_notice(
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

    /// Refuses a sensitive action unless the session's password was entered in the last
    /// [`REAUTH_WINDOW_SECS`]. API keys are not sessions: what they may do is fixed by their role.
    pub(crate) async fn require_recent_auth(&self, p: &Principal) -> Result<()> {
        let Actor::Session { session_id, .. } = &p.actor else {
            return Ok(());
        };
        let at = self
            .store
            .session_reauth_at(session_id)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        if self.clock.now() > at.plus_secs(REAUTH_WINDOW_SECS) {
            return Err(ServiceError::ReauthRequired);
        }
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
        self.check_own_password(uid, &p.meta.ip, &password, captcha)
            .await?;
        self.store.set_session_reauth(sid, self.clock.now()).await?;
        Ok(())
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
        let stored = self.store.password_hash(uid).await?;
        if !self.verify_in_slot(password, stored).await? {
            let pair_failures = self.login_failed(&scopes, Factor::Password).await?;
            drop(slot);
            self.failure_delay(pair_failures).await;
            return Err(ServiceError::InvalidCredentials);
        }
        Ok(())
    }

    /// Ends the caller's session.
    pub async fn logout(&self, authz: &SelfAuthz<'_>) -> Result<()> {
        let (p, sid, uid) = (authz.principal(), authz.session_id(), authz.user_id());
        let mut tx = self.store.begin().await?;
        tx.revoke_session(uid, sid, self.clock.now()).await?;
        self.audit(&mut tx, Record::by(p, "auth.logout", sid))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The caller's live sessions.
    pub async fn list_sessions(&self, authz: &SelfAuthz<'_>) -> Result<Vec<SessionInfo>> {
        let (p, sid, uid) = (authz.principal(), authz.session_id(), authz.user_id());
        let now = self.clock.now();
        let (idle, absolute) = self.store.session_policy(&p.org_id).await?;
        Ok(self
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

    /// Revokes one of the caller's sessions (another user's id is not found).
    pub async fn revoke_session(&self, authz: &SelfAuthz<'_>, id: &SessionId) -> Result<()> {
        let (p, uid) = (authz.principal(), authz.user_id());
        let mut tx = self.store.begin().await?;
        if !tx.revoke_session(uid, id, self.clock.now()).await? {
            return Err(ServiceError::NotFound("session"));
        }
        self.audit(&mut tx, Record::by(p, "auth.session_revoke", id))
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
        self.check_own_password(uid, &p.meta.ip, &current, captcha)
            .await?;
        let email = self
            .store
            .user_email(uid)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        crate::admin::check_password(&new, &email)?;
        let hash = self.hash_password_bounded(new).await?;
        let mut tx = self.store.begin().await?;
        tx.set_password_hash(uid, &hash).await?;
        let revoked = tx
            .revoke_other_sessions(uid, Some(sid), self.clock.now())
            .await?;
        self.audit(
            &mut tx,
            Record::by(p, "user.password_change", uid)
                .detail(serde_json::json!({"other_sessions_revoked": revoked})),
        )
        .await?;
        self.queue_notice(
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
