//! Organizations, users and API keys: the operator's bootstrap commands and key management.

use strongroom_crypto::{password, token};
use strongroom_domain::{ApiKeyId, Email, Name, OrgId, Permission, Role, Timestamp, UserId};
use strongroom_store::{ApiKeyRow, OrgRow, Tx, UserRow};
use zeroize::Zeroizing;

use crate::audit::Record;
use crate::principal::API_KEY_PREFIX;
use crate::{Actor, Principal, RequestMeta, Result, Service, ServiceError};

/// Shortest password accepted (NIST 800-63B recommends at least 8; ASVS level 2 asks for 12).
pub const MIN_PASSWORD_LEN: usize = strongroom_identity::password_policy::MIN_CHARS;

/// What `admin bootstrap` created or reused.
pub struct Bootstrapped {
    /// The user (created or reused).
    pub user_id: UserId,
    /// The organization (created or reused).
    pub org_id: OrgId,
    /// A new owner API key: shown once.
    pub api_key: Zeroizing<String>,
    /// The generated password, when the user was created without one.
    pub password: Option<Zeroizing<String>>,
    /// A password was given but the user already existed, so it was not used.
    pub password_ignored: bool,
}

/// A newly created API key: the secret is shown once and never stored.
pub struct CreatedKey {
    /// The key's id.
    pub id: ApiKeyId,
    /// The secret to give to the client.
    pub api_key: Zeroizing<String>,
    /// When it expires, if it does.
    pub expires_at: Option<Timestamp>,
}

/// The password policy (length, common/breached list, personal data, strength); the reason for
/// a refusal is safe to show.
pub(crate) fn check_password(pw: &str, email: &Email) -> Result<()> {
    strongroom_identity::password_policy::check(pw, email.as_str(), None)
        .map_err(|weak| ServiceError::WeakPassword(weak.reason))
}

fn cli_record<'a>(org_id: &'a OrgId, action: &'static str, target: impl ToString) -> Record<'a> {
    Record {
        org_id,
        actor: Actor::Cli.audit_name(),
        action,
        target: target.to_string(),
        ip: String::new(),
        detail: serde_json::json!({}),
    }
}

impl Service {
    fn new_secret(&self) -> (Zeroizing<String>, [u8; 32]) {
        let secret = Zeroizing::new(format!("{API_KEY_PREFIX}{}", token::random_token(32)));
        let hash = self.api_key_hasher.mac(secret.as_bytes());
        (secret, hash)
    }

    async fn hash_password(pw: Zeroizing<String>) -> Result<String> {
        tokio::task::spawn_blocking(move || password::hash(&pw))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(|e| ServiceError::Internal(e.to_string()))
    }

    async fn insert_key(&self, tx: &mut Tx, row: &ApiKeyRow) -> Result<Zeroizing<String>> {
        let (secret, hash) = self.new_secret();
        tx.insert_api_key(row, &hash).await?;
        Ok(secret)
    }

    /// `strongroom admin bootstrap`: the user, the organization with that user as owner, and a
    /// new owner API key. Idempotent for the user and the organization.
    pub async fn bootstrap(
        &self,
        email: Email,
        org_name: Name,
        pw: Option<Zeroizing<String>>,
    ) -> Result<Bootstrapped> {
        let now = self.clock.now();
        let existing_user = self.store.user_by_email(&email).await?;
        let password_ignored = existing_user.is_some() && pw.is_some();
        let mut generated = None;
        let new_hash = match (&existing_user, pw) {
            (None, Some(pw)) => {
                check_password(&pw, &email)?;
                Some(Self::hash_password(pw).await?)
            }
            (None, None) => {
                let pw = Zeroizing::new(token::random_token(18));
                let h = Self::hash_password(pw.clone()).await?;
                generated = Some(pw);
                Some(h)
            }
            (Some(_), _) => None,
        };
        let existing_org = self.store.org_by_name(&org_name).await?;
        let mut tx = self.store.begin().await?;
        let user = match existing_user {
            Some(u) => u,
            None => {
                let u = UserRow {
                    id: UserId::generate(),
                    email: email.clone(),
                    created_at: now,
                };
                tx.insert_user(&u, new_hash.as_deref()).await?;
                u
            }
        };
        let org = match existing_org {
            Some(o) => o,
            None => {
                let o = OrgRow {
                    id: OrgId::generate(),
                    name: org_name,
                    created_at: now,
                };
                let (g, mac) = self.audit_genesis(&o.id);
                tx.insert_org(&o, &g, &mac).await?;
                self.audit(
                    &mut tx,
                    cli_record(&o.id, "org.create", &o.id)
                        .detail(serde_json::json!({"name": o.name})),
                )
                .await?;
                o
            }
        };
        tx.upsert_membership(&org.id, &user.id, Role::Owner, now)
            .await?;
        self.audit(
            &mut tx,
            cli_record(&org.id, "member.set_role", &user.id)
                .detail(serde_json::json!({"role": "owner"})),
        )
        .await?;
        let key = ApiKeyRow {
            id: ApiKeyId::generate(),
            org_id: org.id.clone(),
            user_id: Some(user.id.clone()),
            name: Name::parse("bootstrap").map_err(|e| ServiceError::Internal(e.to_string()))?,
            role: Role::Owner,
            created_at: now,
            expires_at: None,
            revoked_at: None,
        };
        let api_key = self.insert_key(&mut tx, &key).await?;
        self.audit(
            &mut tx,
            cli_record(&org.id, "apikey.create", &key.id)
                .detail(serde_json::json!({"role": "owner", "user_id": user.id})),
        )
        .await?;
        tx.commit().await?;
        Ok(Bootstrapped {
            user_id: user.id,
            org_id: org.id,
            api_key,
            password: generated,
            password_ignored,
        })
    }

    /// `strongroom admin create-user`: adds a member (creating the user if new).
    pub async fn create_user(
        &self,
        org_id: &OrgId,
        email: Email,
        role: Role,
        pw: Option<Zeroizing<String>>,
    ) -> Result<UserId> {
        self.store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let existing = self.store.user_by_email(&email).await?;
        let hash = match (&existing, pw) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::Conflict(format!(
                    "{} already has an account; leave out the password to add them to this organization",
                    email.as_str()
                )));
            }
            (None, Some(pw)) => {
                check_password(&pw, &email)?;
                Some(Self::hash_password(pw).await?)
            }
            _ => None,
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let user_id = match existing {
            Some(u) => u.id,
            None => {
                let u = UserRow {
                    id: UserId::generate(),
                    email,
                    created_at: now,
                };
                tx.insert_user(&u, hash.as_deref()).await?;
                u.id
            }
        };
        tx.upsert_membership(org_id, &user_id, role, now).await?;
        self.audit(
            &mut tx,
            cli_record(org_id, "member.set_role", &user_id)
                .detail(serde_json::json!({"role": role})),
        )
        .await?;
        tx.commit().await?;
        Ok(user_id)
    }

    /// `strongroom admin create-api-key`: a service key (no user) with a role.
    pub async fn create_service_key(
        &self,
        org_id: &OrgId,
        role: Role,
        name: Name,
    ) -> Result<CreatedKey> {
        self.store
            .org(org_id)
            .await?
            .ok_or(ServiceError::NotFound("organization"))?;
        let row = ApiKeyRow {
            id: ApiKeyId::generate(),
            org_id: org_id.clone(),
            user_id: None,
            name,
            role,
            created_at: self.clock.now(),
            expires_at: None,
            revoked_at: None,
        };
        let mut tx = self.store.begin().await?;
        let api_key = self.insert_key(&mut tx, &row).await?;
        self.audit(
            &mut tx,
            cli_record(org_id, "apikey.create", &row.id)
                .detail(serde_json::json!({"role": role, "name": row.name})),
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedKey {
            id: row.id,
            api_key,
            expires_at: None,
        })
    }

    /// Creates an API key through the API: never more powerful than its creator.
    pub async fn create_api_key(
        &self,
        p: &Principal,
        org_id: &OrgId,
        name: Name,
        role: Role,
        expires_in: Option<u64>,
    ) -> Result<CreatedKey> {
        p.require_org(org_id)?;
        p.require(Permission::ApiKeyManage)?;
        if role.rank() > p.role.rank() {
            return Err(ServiceError::Forbidden(
                "creating a key with a role above your own",
            ));
        }
        let now = self.clock.now();
        let expires_at = match expires_in {
            Some(0) => {
                return Err(ServiceError::Invalid(
                    "expires_in must be at least 1 second".into(),
                ));
            }
            Some(s) => Some(now.plus_secs(i64::try_from(s).unwrap_or(i64::MAX))),
            None => None,
        };
        let user_id = match &p.actor {
            Actor::ApiKey { user_id, .. } => user_id.clone(),
            Actor::Session { user_id, .. } => Some(user_id.clone()),
            Actor::Cli => None,
        };
        let row = ApiKeyRow {
            id: ApiKeyId::generate(),
            org_id: org_id.clone(),
            user_id,
            name,
            role,
            created_at: now,
            expires_at,
            revoked_at: None,
        };
        let mut tx = self.store.begin().await?;
        let api_key = self.insert_key(&mut tx, &row).await?;
        self.audit(
            &mut tx,
            Record::by(p, "apikey.create", &row.id)
                .detail(serde_json::json!({"role": role, "name": row.name})),
        )
        .await?;
        tx.commit().await?;
        Ok(CreatedKey {
            id: row.id,
            api_key,
            expires_at,
        })
    }

    /// Revokes an API key of the caller's organization, effective immediately.
    pub async fn revoke_api_key(&self, p: &Principal, id: &ApiKeyId) -> Result<()> {
        p.require(Permission::ApiKeyManage)?;
        let mut tx = self.store.begin().await?;
        if !tx.revoke_api_key(&p.org_id, id, self.clock.now()).await? {
            return Err(ServiceError::NotFound("API key"));
        }
        self.audit(&mut tx, Record::by(p, "apikey.revoke", id))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The request metadata for actions the CLI takes.
    pub fn cli_meta() -> RequestMeta {
        RequestMeta::default()
    }
}
