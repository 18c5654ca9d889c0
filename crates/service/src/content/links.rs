//! Download links: a random token in a URL that downloads one asset with no other credential.
//!
//! A link is made by someone who may read the asset and share it (`asset:read` and
//! `link:create`), within their organization and their key's spaces. Only an HMAC of its token
//! is stored, under a key derived from the root key. Every download re-checks the link in the
//! database: one conditional update both records the use and refuses a revoked, expired or
//! already used single-use link, so revocation is immediate and of concurrent uses of a
//! single-use link exactly one succeeds. Every refusal looks the same to the caller ("link not
//! found"): an unknown token, a tampered one, and one that stopped working cannot be told
//! apart.

use std::net::IpAddr;

use strongroom_crypto::token;
use strongroom_domain::{AssetId, LinkId, Permission, Timestamp};
use strongroom_store::{AssetRow, LinkRow, Page};
use zeroize::Zeroizing;

use super::ContentService;
use crate::audit::Record;
use crate::authz::{AssetAuthz, LinkAuthz, perm};
use crate::{Asset, Content, ListQuery, RequestMeta, Result, ServiceError};

/// Random bytes in a link token (256 bits; encoded as 43 base64url characters).
pub const LINK_TOKEN_BYTES: usize = 32;

/// The longest lifetime a link may be given when the operator does not configure another.
pub const DEFAULT_MAX_LINK_LIFETIME_SECS: u64 = 7 * 24 * 60 * 60;

/// Anything longer is not a token this server made; refused before it is hashed.
const MAX_TOKEN_LEN: usize = 100;

/// What a new link should be.
#[derive(Debug, Clone)]
pub struct NewLink {
    /// Seconds until it stops working (1 ..= the configured maximum).
    pub expires_in: u64,
    /// The first download consumes it.
    pub single_use: bool,
    /// It answers only requests from this client address.
    pub ip: Option<IpAddr>,
    /// Serve this image rendition (`thumbnail`, `preview`) instead of the original.
    pub rendition: Option<String>,
}

/// A new link: the token is shown once, in the link's URL, and never stored.
pub struct CreatedLink {
    /// The link as its managers see it.
    pub link: LinkInfo,
    /// The token to put in the URL.
    pub token: Zeroizing<String>,
}

/// A link as the people who manage it see it: never its token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkInfo {
    /// Its id.
    pub id: LinkId,
    /// The asset it downloads.
    pub asset_id: AssetId,
    /// Who made it (`key:...`, `user:...`).
    pub created_by: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Whether the first download consumes it.
    pub single_use: bool,
    /// The only client address it answers, if bound to one.
    pub ip: Option<String>,
    /// The image rendition it serves instead of the original, if any.
    pub rendition: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When a single-use link was consumed.
    pub used_at: Option<Timestamp>,
    /// Downloads served.
    pub use_count: u64,
    /// The last download.
    pub last_used_at: Option<Timestamp>,
}

impl From<LinkRow> for LinkInfo {
    fn from(r: LinkRow) -> Self {
        LinkInfo {
            id: r.id,
            asset_id: r.asset_id,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            single_use: r.single_use,
            ip: r.ip,
            rendition: r.rendition,
            revoked_at: r.revoked_at,
            used_at: r.used_at,
            use_count: r.use_count,
            last_used_at: r.last_used_at,
        }
    }
}

/// A link that was valid when presented, with its asset: what a download through it may show
/// before any content is read. Only [`ContentService::open_link`] makes one, and only
/// [`ContentService::read_link`] turns it into content, re-checking the link as it records the
/// use.
pub struct LinkGrant {
    link: LinkRow,
    asset: AssetRow,
    view: Asset,
    meta: RequestMeta,
    remaining_secs: u64,
}

impl LinkGrant {
    /// The asset the link downloads.
    pub fn asset(&self) -> &Asset {
        &self.view
    }

    /// When the link stops working.
    pub fn expires_at(&self) -> Timestamp {
        self.link.expires_at
    }

    /// Whether the first download consumes it.
    pub fn single_use(&self) -> bool {
        self.link.single_use
    }

    /// Whether it answers only one client address.
    pub fn bound_to_address(&self) -> bool {
        self.link.ip.is_some()
    }

    /// Whole seconds the link had left when it was checked: the longest anyone may keep a
    /// copy of what it served (rounded down, so never past its expiry).
    pub fn remaining_secs(&self) -> u64 {
        self.remaining_secs
    }
}

/// The one answer to every link that cannot be used, whatever the reason.
fn refused() -> ServiceError {
    ServiceError::NotFound("link")
}

/// An address in the form links are bound and compared in (an IPv4 client seen on an IPv6
/// socket, `::ffff:a.b.c.d`, is its IPv4 address).
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl ContentService {
    /// Makes a link to an asset the caller may read and share. Refused as not found when the
    /// asset is in another organization or beyond the caller's spaces.
    pub async fn create_link(
        &self,
        authz: &AssetAuthz<'_, perm::LinkCreate>,
        new: NewLink,
    ) -> Result<CreatedLink> {
        let (p, asset) = (authz.principal(), authz.asset().clone());
        // Sharing what one may not read would be reading it.
        if !p
            .permissions_in(&asset.space_id)
            .contains(Permission::AssetRead)
        {
            return Err(ServiceError::Forbidden(Permission::AssetRead.as_str()));
        }
        if let Some(name) = &new.rendition
            && self.rendition_asset(asset.clone(), name).await?.is_none()
        {
            return Err(ServiceError::Invalid(format!(
                "the asset has no rendition {name:?}: see its \"renditions\""
            )));
        }
        let max = self.ctx.config.max_link_lifetime.as_secs();
        if new.expires_in == 0 || new.expires_in > max {
            return Err(ServiceError::Invalid(format!(
                "expires_in must be between 1 and {max} seconds"
            )));
        }
        let now = self.ctx.clock.now();
        let token = Zeroizing::new(token::random_token(LINK_TOKEN_BYTES));
        let row = LinkRow {
            id: LinkId::generate(),
            org_id: asset.org_id.clone(),
            asset_id: asset.id.clone(),
            created_by: p.actor.audit_name(),
            created_at: now,
            // At most the configured maximum (a week by default): the conversion cannot fail.
            expires_at: now.plus_secs(i64::try_from(new.expires_in).unwrap_or(i64::MAX)),
            single_use: new.single_use,
            ip: new.ip.map(|ip| canonical(ip).to_string()),
            rendition: new.rendition.clone(),
            revoked_at: None,
            used_at: None,
            use_count: 0,
            last_used_at: None,
        };
        let mut tx = self.ctx.store.begin().await?;
        tx.insert_link(&row, &self.link_hasher.mac(token.as_bytes()))
            .await?;
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "link.create", &row.id).detail(serde_json::json!({
                    "asset_id": row.asset_id,
                    "expires_at": row.expires_at,
                    "single_use": row.single_use,
                    "ip": row.ip,
                })),
            )
            .await?;
        tx.commit().await?;
        Ok(CreatedLink {
            link: row.into(),
            token,
        })
    }

    /// An asset's links, for those who make or revoke them.
    pub async fn list_links<P: perm::LinkManage>(
        &self,
        authz: &AssetAuthz<'_, P>,
        q: ListQuery,
    ) -> Result<Page<LinkInfo>> {
        let (p, asset) = (authz.principal(), authz.asset());
        let page = self
            .ctx
            .store
            .links_of_asset(&p.org_id, &asset.id, q.after.as_deref(), q.limit)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(LinkInfo::from).collect(),
            next: page.next,
        })
    }

    /// Revokes a link: the next request through it is refused, on every node. A link of another
    /// organization, or of an asset beyond the caller's spaces, is not found.
    pub async fn revoke_link(&self, authz: &LinkAuthz<'_>) -> Result<()> {
        let (p, link) = (authz.principal(), authz.link());
        let id = &link.id;
        let mut tx = self.ctx.store.begin().await?;
        if !tx.revoke_link(&p.org_id, id, self.ctx.clock.now()).await? {
            return Err(ServiceError::NotFound("link"));
        }
        self.ctx
            .audit
            .append(
                &mut tx,
                Record::by(p, "link.revoke", id)
                    .detail(serde_json::json!({"asset_id": link.asset_id})),
            )
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checks a presented token: it must be one of ours, not revoked, expired or used up, and
    /// presented from the address it is bound to, if any. Every refusal is the same
    /// `NotFound("link")`. Nothing is recorded yet: [`ContentService::read_link`] does that, and a
    /// request that reads nothing (HEAD, a 304) does not use the link up.
    pub async fn open_link(&self, token: &str, meta: RequestMeta) -> Result<LinkGrant> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(refused());
        }
        let hash = self.link_hasher.mac(token.as_bytes());
        let Some((link, stored)) = self.ctx.store.link_by_token_hash(&hash).await? else {
            return Err(refused());
        };
        // The index lookup was by hash; the constant-time comparison is what decides.
        if !token::ct_eq(&stored, &hash) {
            return Err(refused());
        }
        let now = self.ctx.clock.now();
        if link.revoked_at.is_some()
            || now >= link.expires_at
            || (link.single_use && link.used_at.is_some())
        {
            return Err(refused());
        }
        if let Some(bound) = &link.ip {
            let from = meta.ip.parse::<IpAddr>().ok().map(canonical);
            if bound.parse::<IpAddr>().ok().map(canonical) != from || from.is_none() {
                // Someone holds the token but is not where it was meant to be used: worth a
                // line in the trail (the link's owners see it; the caller sees "not found").
                let mut tx = self.ctx.store.begin().await?;
                self.ctx
                    .audit
                    .append(
                        &mut tx,
                        Record {
                            org_id: &link.org_id,
                            actor: format!("link:{}", link.id),
                            subject: None,
                            action: "link.refused",
                            target: link.asset_id.to_string(),
                            ip: meta.ip.clone(),
                            detail: serde_json::json!({"reason": "address", "bound_to": bound}),
                        },
                    )
                    .await?;
                tx.commit().await?;
                return Err(refused());
            }
        }
        let mut asset = self
            .ctx
            .store
            .asset(&link.org_id, &link.asset_id)
            .await?
            .ok_or_else(refused)?;
        if let Some(name) = &link.rendition {
            asset = self
                .rendition_asset(asset, name)
                .await?
                .ok_or_else(refused)?;
        }
        let remaining_ms = link.expires_at.millis().saturating_sub(now.millis());
        Ok(LinkGrant {
            view: asset.clone().into(),
            remaining_secs: u64::try_from(remaining_ms / 1000).unwrap_or(0),
            link,
            asset,
            meta,
        })
    }

    /// Downloads through a link checked by [`ContentService::open_link`]: the whole asset or
    /// `[start, end)`. In one transaction the link is checked again and its use recorded (a
    /// single-use link is consumed) with the audit event, before any byte is sent; a link
    /// revoked, expired or used up since it was opened is refused here.
    pub async fn read_link(&self, grant: LinkGrant, range: Option<(u64, u64)>) -> Result<Content> {
        let LinkGrant {
            link, asset, meta, ..
        } = grant;
        let read = self
            .prepare_read(asset, None, range)
            .await
            .map_err(|e| match e {
                ServiceError::NotFound(_) => refused(),
                other => other,
            })?;
        let mut tx = self.ctx.store.begin().await?;
        if !tx.use_link(&link.id, self.ctx.clock.now()).await? {
            return Err(refused());
        }
        let detail = read.audit_detail(serde_json::json!({"single_use": link.single_use}));
        self.ctx
            .audit
            .append(
                &mut tx,
                Record {
                    org_id: &link.org_id,
                    actor: format!("link:{}", link.id),
                    subject: None,
                    action: "link.use",
                    target: read.asset.id.to_string(),
                    ip: meta.ip,
                    detail,
                },
            )
            .await?;
        tx.commit().await?;
        Ok(self.stream(read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_compare_in_canonical_form() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(canonical(mapped), IpAddr::from([127, 0, 0, 1]));
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(canonical(v6), v6);
    }
}
