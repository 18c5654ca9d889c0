//! The one permission check. Every use case that reads or changes tenant data takes a proof
//! value built here, and nowhere else: the proof types' fields are private to this module, so a
//! use case whose caller forgot to authorize does not compile.
//!
//! A proof says who acts, on what, with which permission (a type from [`perm`]), e.g.
//! `AssetAuthz<'_, perm::AssetRead>` for reading one asset or `OrgAuthz<'_, perm::MemberManage>`
//! for changing one organization's members. The checks, in one place:
//!
//! - the organization: the caller's own, or "not found" (another tenant's ids are not revealed);
//! - the caller's permissions: the membership role (built-in or custom, read on every request),
//!   capped by the credential's own role, plus roles granted in single spaces;
//! - reach: a space outside the caller's reach (a collaborator's ungranted space, a space-limited
//!   key's other spaces) is "not found", and so is everything in it;
//! - space-limited credentials never act on the organization: members, roles, invitations,
//!   grants, policy, new spaces and the org-wide audit trail are refused to them;
//! - a member who must first enrol a second factor gets no proof but the enrolment's;
//! - ownership of credentials: only a key's owner may rotate it (the new secret acts as them).
//!
//! Refusals are [`ServiceError::NotFound`] for what the caller cannot see and
//! [`ServiceError::Forbidden`] for what it sees but may not do.
//!
//! What the types rule out, checked by the compiler in these doc tests. A use case runs with the
//! proof for its permission:
//!
//! ```no_run
//! # use strongroom_service::{Service, authz::AssetAuthz, perm};
//! # async fn f(svc: &Service, proof: &AssetAuthz<'_, perm::AssetDelete>) {
//! let _ = svc.content.delete_asset(proof).await;
//! # }
//! ```
//!
//! but not with a proof for another permission:
//!
//! ```compile_fail
//! # use strongroom_service::{Service, authz::AssetAuthz, perm};
//! # async fn f(svc: &Service, proof: &AssetAuthz<'_, perm::AssetRead>) {
//! let _ = svc.content.delete_asset(proof).await; // a proof for reading does not delete
//! # }
//! ```
//!
//! nor with a principal that skipped the check:
//!
//! ```compile_fail
//! # use strongroom_service::{Principal, Service};
//! # async fn f(svc: &Service, p: &Principal) {
//! let _ = svc.content.delete_asset(p).await;
//! # }
//! ```
//!
//! and nothing outside this module can make a proof:
//!
//! ```compile_fail
//! # use strongroom_service::{Principal, authz::OrgAuthz, perm};
//! # fn f(p: &Principal) {
//! let forged: OrgAuthz<'_, perm::MemberManage> =
//!     OrgAuthz { principal: p, _perm: std::marker::PhantomData };
//! # }
//! ```

use std::marker::PhantomData;

use strongroom_domain::{
    ApiKeyId, AssetId, InvitationId, LinkId, OrgId, Permission, PlaybackId, SessionId, SpaceId,
    UserId,
};
use strongroom_store::{AssetRow, BlobRow, LinkRow, PlaybackRow, SpaceRow};

use std::sync::Arc;

use strongroom_crypto::keys::{MacKey, RootKey};

use crate::ctx::Ctx;
use crate::identity::sessions::REAUTH_WINDOW_SECS;
use crate::{Actor, Principal, Result, ServiceError};
use principal::SpaceScope;

pub use owner::OwnerAuthz;

mod asset_cache;
mod epoch_cache;
mod key_cache;
mod owner;
pub(crate) mod principal;

/// Permissions as types, so a proof's permission is checked by the compiler at every use.
pub mod perm {
    use strongroom_domain::Permission;

    mod sealed {
        pub trait Sealed {}
    }

    /// A permission a proof can carry. Sealed: the list below is the whole list.
    pub trait Perm: sealed::Sealed {
        /// The permission this type stands for.
        const PERMISSION: Permission;
        /// Whether a space-limited credential may hold it organization-wide. Everything that
        /// acts on the organization as a whole (members, roles, policy, new spaces, the audit
        /// trail) is refused to a credential limited to some spaces.
        const SPACE_LIMITED_MAY_HOLD: bool;
    }

    /// Either link permission: who makes links or revokes them may list them.
    pub trait LinkManage: Perm {}

    macro_rules! perms {
        ($($(#[$doc:meta])* $name:ident: $limited:literal),* $(,)?) => {$(
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name;
            impl sealed::Sealed for $name {}
            impl Perm for $name {
                const PERMISSION: Permission = Permission::$name;
                const SPACE_LIMITED_MAY_HOLD: bool = $limited;
            }
        )*};
    }

    perms! {
        /// `org:read`: the organization's role list.
        OrgRead: true,
        /// `org:manage`: organization settings (the MFA requirement).
        OrgManage: false,
        /// `space:read`.
        SpaceRead: true,
        /// `space:create`: a new space would be outside a space-limited key's reach at once.
        SpaceCreate: false,
        /// `asset:read`.
        AssetRead: true,
        /// `asset:create`.
        AssetCreate: true,
        /// `space:manage`: a space's own settings (its retention rule).
        SpaceManage: true,
        /// `asset:delete`: to the trash, and back from it.
        AssetDelete: true,
        /// `asset:purge`: crypto-shredding, now.
        AssetPurge: true,
        /// `link:create`.
        LinkCreate: true,
        /// `link:delete`.
        LinkDelete: true,
        /// `audit:read`: the organization-wide trail.
        AuditRead: false,
        /// `apikey:manage`: within the caller's own reach (a limited key manages only keys
        /// limited to its spaces).
        ApiKeyManage: true,
        /// `member:manage`: members and space grants.
        MemberManage: false,
        /// `member:invite`.
        MemberInvite: false,
        /// `role:manage`.
        RoleManage: false,
    }
}

use perm::Perm;

impl perm::LinkManage for perm::LinkCreate {}
impl perm::LinkManage for perm::LinkDelete {}

/// Proof that the caller may do `P` across one organization.
#[derive(Debug)]
pub struct OrgAuthz<'a, P: Perm> {
    principal: &'a Principal,
    _perm: PhantomData<P>,
}

/// Proof that the caller is a member of one organization (no permission beyond that): for what
/// shows the caller only what its own permissions reach, like the list of its spaces.
#[derive(Debug)]
pub struct MemberAuthz<'a> {
    principal: &'a Principal,
}

/// Proof that the caller may do `P` in one space it can see.
#[derive(Debug)]
pub struct SpaceAuthz<'a, P: Perm> {
    principal: &'a Principal,
    space: SpaceRow,
    _perm: PhantomData<P>,
}

/// Proof that the caller may do `P` to one asset it can see.
pub struct AssetAuthz<'a, P: Perm> {
    principal: &'a Principal,
    asset: AssetRow,
    /// The asset's blob row, when it was read with the asset (a live asset's check).
    blob: Option<BlobRow>,
    _perm: PhantomData<P>,
}

/// Proof that the caller may do `P` to one asset in the trash of a space it can see. Apart
/// from [`AssetAuthz`], so no read or share can be done with a deleted asset.
#[derive(Debug)]
pub struct TrashedAssetAuthz<'a, P: Perm> {
    principal: &'a Principal,
    asset: AssetRow,
    _perm: PhantomData<P>,
}

/// Proof that the caller may revoke one link (`link:delete` on its asset).
#[derive(Debug)]
pub struct LinkAuthz<'a> {
    principal: &'a Principal,
    link: LinkRow,
}

/// Proof that the caller may end one playback: its maker, or `link:delete` on its asset.
#[derive(Debug)]
pub struct PlaybackAuthz<'a> {
    principal: &'a Principal,
    playback: PlaybackRow,
}

/// Proof that the caller may withdraw one of its organization's invitations.
#[derive(Debug)]
pub struct InvitationAuthz<'a> {
    principal: &'a Principal,
    id: InvitationId,
}

/// Proof that the caller may see and revoke (not rotate) one API key: its owner, or a manager
/// of keys whose reach covers the key's.
#[derive(Debug)]
pub struct KeyManageAuthz<'a> {
    principal: &'a Principal,
    key_id: ApiKeyId,
}

/// Proof that the caller owns one API key: the only one who may rotate it and receive its new
/// secret, which acts as them.
#[derive(Debug)]
pub struct KeyOwnerAuthz<'a> {
    principal: &'a Principal,
    key_id: ApiKeyId,
}

/// Proof that a signed-in user (a browser session, not an API key) acts on their own account:
/// password, second factor, sessions. Not refused to a member who must still enrol a second
/// factor: enrolment is what this opens.
#[derive(Debug)]
pub struct SelfAuthz<'a> {
    principal: &'a Principal,
    session_id: SessionId,
    user_id: UserId,
}

macro_rules! accessors {
    ($($ty:ident$(<$p:ident>)?),* $(,)?) => {$(
        impl<$($p: Perm)?> $ty<'_$(, $p)?> {
            /// Who acts.
            pub fn principal(&self) -> &Principal {
                self.principal
            }
            /// The organization the proof is for (always the caller's own).
            pub fn org_id(&self) -> &OrgId {
                &self.principal.org_id
            }
        }
    )*};
}

accessors!(
    OrgAuthz<P>,
    MemberAuthz,
    SpaceAuthz<P>,
    AssetAuthz<P>,
    TrashedAssetAuthz<P>,
    LinkAuthz,
    PlaybackAuthz,
    InvitationAuthz,
    KeyManageAuthz,
    KeyOwnerAuthz,
    SelfAuthz,
    OwnerAuthz,
);

impl<P: Perm> SpaceAuthz<'_, P> {
    /// The space.
    pub fn space(&self) -> &SpaceRow {
        &self.space
    }
}

impl<P: Perm> std::fmt::Debug for AssetAuthz<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The blob row holds a wrapped data key: only its id is shown.
        f.debug_struct("AssetAuthz")
            .field("principal", &self.principal)
            .field("asset", &self.asset)
            .field("blob", &self.blob.as_ref().map(|b| &b.id))
            .finish()
    }
}

impl<P: Perm> AssetAuthz<'_, P> {
    /// The asset, as it was when the check ran.
    pub fn asset(&self) -> &AssetRow {
        &self.asset
    }

    /// The asset's blob row, if it was read with the asset.
    pub(crate) fn blob(&self) -> Option<&BlobRow> {
        self.blob.as_ref()
    }
}

impl<P: Perm> TrashedAssetAuthz<'_, P> {
    /// The asset in the trash, as it was when the check ran.
    pub fn asset(&self) -> &AssetRow {
        &self.asset
    }
}

impl LinkAuthz<'_> {
    /// The link.
    pub fn link(&self) -> &LinkRow {
        &self.link
    }
}

impl PlaybackAuthz<'_> {
    /// The playback.
    pub fn playback(&self) -> &PlaybackRow {
        &self.playback
    }
}

impl InvitationAuthz<'_> {
    /// The invitation.
    pub fn id(&self) -> &InvitationId {
        &self.id
    }
}

impl KeyManageAuthz<'_> {
    /// The key.
    pub fn key_id(&self) -> &ApiKeyId {
        &self.key_id
    }
}

impl KeyOwnerAuthz<'_> {
    /// The key.
    pub fn key_id(&self) -> &ApiKeyId {
        &self.key_id
    }
}

impl SelfAuthz<'_> {
    /// The session the user acts through.
    pub fn session_id(&self) -> &SessionId {
        &self.session_id
    }
    /// The user.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }
}

/// The answer for a credential limited to some spaces asking to act on the organization.
fn space_limited(p: Permission) -> ServiceError {
    ServiceError::Forbidden(match p {
        Permission::SpaceCreate => "creating spaces with a space-limited key",
        Permission::AuditRead => "reading the organization's audit trail with a space-limited key",
        _ => "administering the organization with a space-limited key",
    })
}

impl Principal {
    /// The spaces the principal may reach: every space for a member whose organization role reads
    /// spaces, only the granted ones for a collaborator; a space-limited key narrows either.
    pub(crate) fn space_scope(&self) -> SpaceScope {
        use strongroom_domain::Permission as Pm;
        let reach = if self.access.org.contains(Pm::SpaceRead) {
            SpaceScope::All
        } else {
            SpaceScope::Only(
                self.access
                    .spaces
                    .iter()
                    .filter(|(_, set)| set.contains(Pm::SpaceRead))
                    .map(|(id, _)| id.clone())
                    .collect(),
            )
        };
        let limit = match &self.space_limit {
            None => SpaceScope::All,
            Some(ids) => SpaceScope::Only(ids.clone()),
        };
        reach.intersect(limit)
    }

    /// Refuses a member who must enrol a second factor before anything else.
    fn require_enrolled(&self) -> Result<()> {
        if self.mfa_enrolment_required {
            Err(ServiceError::MfaEnrolmentRequired)
        } else {
            Ok(())
        }
    }

    /// Refuses unless `P` is held organization-wide, and a space-limited credential may hold
    /// it.
    fn require_org_wide<P: Perm>(&self) -> Result<()> {
        self.require_enrolled()?;
        if !P::SPACE_LIMITED_MAY_HOLD && self.space_limit.is_some() {
            return Err(space_limited(P::PERMISSION));
        }
        if self.access.org.contains(P::PERMISSION) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(P::PERMISSION.as_str()))
        }
    }

    /// Refuses unless `P` is held in `space` (organization-wide or by a grant there).
    fn require_in_space<P: Perm>(&self, space: &SpaceId) -> Result<()> {
        self.require_enrolled()?;
        if self.permissions_in(space).contains(P::PERMISSION) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(P::PERMISSION.as_str()))
        }
    }

    /// The user a credential acts for (an API key's owner, a session's user).
    pub(crate) fn user_id(&self) -> Option<&UserId> {
        match &self.actor {
            Actor::ApiKey { user_id, .. } => user_id.as_ref(),
            Actor::Session { user_id, .. } => Some(user_id),
            Actor::Cli => None,
        }
    }
}

/// Authenticates credentials and issues the proofs: the one permission check.
pub struct Authz {
    ctx: Arc<Ctx>,
    api_key_hasher: MacKey,
    session_hasher: MacKey,
    csrf_hasher: MacKey,
    key_touches: principal::TouchThrottle,
    /// API keys resolved recently (see `key_cache`).
    key_cache: key_cache::KeyCache,
    /// Assets (with their blob rows) read recently for reads, by organization and id (see
    /// `epoch_cache`).
    asset_cache: asset_cache::AssetCache,
}

impl Authz {
    pub(crate) fn new(ctx: Arc<Ctx>, root: &RootKey) -> Authz {
        Authz {
            ctx,
            api_key_hasher: root.derive("api-key"),
            session_hasher: root.derive("session"),
            csrf_hasher: root.derive("csrf"),
            key_touches: principal::TouchThrottle::default(),
            key_cache: key_cache::KeyCache::default(),
            asset_cache: asset_cache::AssetCache::default(),
        }
    }

    /// Authorizes `P` across organization `org_id`.
    pub fn authorize_org<'a, P: Perm>(
        &self,
        p: &'a Principal,
        org_id: &OrgId,
    ) -> Result<OrgAuthz<'a, P>> {
        p.require_org(org_id)?;
        p.require_org_wide::<P>()?;
        Ok(OrgAuthz {
            principal: p,
            _perm: PhantomData,
        })
    }

    /// Authorizes membership of `org_id` alone.
    pub fn authorize_member<'a>(
        &self,
        p: &'a Principal,
        org_id: &OrgId,
    ) -> Result<MemberAuthz<'a>> {
        p.require_org(org_id)?;
        p.require_enrolled()?;
        Ok(MemberAuthz { principal: p })
    }

    /// The space `id` of the caller's organization, if it is within the caller's reach.
    async fn visible_space(&self, p: &Principal, space_id: &SpaceId) -> Result<SpaceRow> {
        p.space_scope().require(space_id)?;
        self.ctx
            .store
            .space(&p.org_id, space_id)
            .await?
            .ok_or(ServiceError::NotFound("space"))
    }

    /// Authorizes `P` in a space: the space must be within the caller's reach (else it is not
    /// found), and `P` held there.
    pub async fn authorize_space<'a, P: Perm>(
        &self,
        p: &'a Principal,
        space_id: &SpaceId,
    ) -> Result<SpaceAuthz<'a, P>> {
        let space = self.visible_space(p, space_id).await?;
        p.require_in_space::<P>(&space.id)?;
        Ok(SpaceAuthz {
            principal: p,
            space,
            _perm: PhantomData,
        })
    }

    /// Authorizes `P` in a space for an action on the space's people (grants): `P` must be held
    /// organization-wide, by a credential that may act on the organization.
    pub async fn authorize_space_admin<'a, P: Perm>(
        &self,
        p: &'a Principal,
        space_id: &SpaceId,
    ) -> Result<SpaceAuthz<'a, P>> {
        let space = self.visible_space(p, space_id).await?;
        p.require_org_wide::<P>()?;
        Ok(SpaceAuthz {
            principal: p,
            space,
            _perm: PhantomData,
        })
    }

    /// The live asset `id` of the caller's organization, if it is within the caller's reach.
    async fn visible_asset(&self, p: &Principal, id: &AssetId) -> Result<AssetRow> {
        let row = self.ctx.store.asset(&p.org_id, id).await?;
        Self::within_reach(p, row)
    }

    /// An asset found in the caller's organization, if its space is within the caller's reach.
    fn within_reach(p: &Principal, row: Option<AssetRow>) -> Result<AssetRow> {
        match row {
            Some(row) if p.space_scope().allows(&row.space_id) => Ok(row),
            _ => Err(ServiceError::NotFound("asset")),
        }
    }

    /// Authorizes `P` on an asset in the trash (a live one is not found here).
    pub async fn authorize_trashed_asset<'a, P: Perm>(
        &self,
        p: &'a Principal,
        asset_id: &AssetId,
    ) -> Result<TrashedAssetAuthz<'a, P>> {
        let row = self.ctx.store.trashed_asset(&p.org_id, asset_id).await?;
        let asset = Self::within_reach(p, row)?;
        p.require_in_space::<P>(&asset.space_id)?;
        Ok(TrashedAssetAuthz {
            principal: p,
            asset,
            _perm: PhantomData,
        })
    }

    /// Authorizes a purge of an asset, live or in the trash.
    pub async fn authorize_purge<'a>(
        &self,
        p: &'a Principal,
        asset_id: &AssetId,
    ) -> Result<AssetAuthz<'a, perm::AssetPurge>> {
        let row = self
            .ctx
            .store
            .asset_in_any_state(&p.org_id, asset_id)
            .await?;
        let asset = Self::within_reach(p, row)?;
        p.require_in_space::<perm::AssetPurge>(&asset.space_id)?;
        Ok(AssetAuthz {
            principal: p,
            asset,
            blob: None,
            _perm: PhantomData,
        })
    }

    /// The asset something (a link, a playback) belongs to, if within reach; else that thing
    /// is not found, as if it did not exist.
    async fn visible_asset_of(
        &self,
        p: &Principal,
        asset_id: &AssetId,
        what: &'static str,
    ) -> Result<AssetRow> {
        self.visible_asset(p, asset_id).await.map_err(|e| match e {
            ServiceError::NotFound(_) => ServiceError::NotFound(what),
            other => other,
        })
    }

    /// Authorizes `P` on an asset. Visibility is checked first, so a caller learns "forbidden"
    /// only about assets it can see.
    pub async fn authorize_asset<'a, P: Perm>(
        &self,
        p: &'a Principal,
        asset_id: &AssetId,
    ) -> Result<AssetAuthz<'a, P>> {
        let (asset, blob) = self.asset_with_blob::<P>(&p.org_id, asset_id).await?;
        let asset = Self::within_reach(p, Some(asset))?;
        p.require_in_space::<P>(&asset.space_id)?;
        Ok(AssetAuthz {
            principal: p,
            asset,
            blob: Some(blob),
            _perm: PhantomData,
        })
    }

    /// Authorizes revoking a link: `link:delete` on its asset. A link of another organization or
    /// of an asset beyond reach is not found.
    pub async fn authorize_link_revoke<'a>(
        &self,
        p: &'a Principal,
        id: &LinkId,
    ) -> Result<LinkAuthz<'a>> {
        let link = self
            .ctx
            .store
            .link(&p.org_id, id)
            .await?
            .ok_or(ServiceError::NotFound("link"))?;
        let asset = self.visible_asset_of(p, &link.asset_id, "link").await?;
        p.require_in_space::<perm::LinkDelete>(&asset.space_id)?;
        Ok(LinkAuthz { principal: p, link })
    }

    /// Authorizes ending a playback: whoever made it, or `link:delete` on its asset.
    pub async fn authorize_playback_revoke<'a>(
        &self,
        p: &'a Principal,
        id: &PlaybackId,
    ) -> Result<PlaybackAuthz<'a>> {
        let playback = self
            .ctx
            .store
            .playback(&p.org_id, id)
            .await?
            .ok_or(ServiceError::NotFound("playback"))?;
        let asset = self
            .visible_asset_of(p, &playback.asset_id, "playback")
            .await?;
        if playback.created_by == p.actor.audit_name() {
            p.require_enrolled()?;
        } else {
            p.require_in_space::<perm::LinkDelete>(&asset.space_id)?;
        }
        Ok(PlaybackAuthz {
            principal: p,
            playback,
        })
    }

    /// Authorizes withdrawing an invitation (`member:invite`, not space-limited). Another
    /// organization's invitation is not found when it is withdrawn.
    pub fn authorize_invitation_revoke<'a>(
        &self,
        p: &'a Principal,
        id: &InvitationId,
    ) -> Result<InvitationAuthz<'a>> {
        p.require_org_wide::<perm::MemberInvite>()?;
        Ok(InvitationAuthz {
            principal: p,
            id: id.clone(),
        })
    }

    /// A key of the caller's organization that a holder of `apikey:manage` may see: one whose
    /// reach is within the caller's (anything else is not found).
    async fn managed_key(
        &self,
        p: &Principal,
        id: &ApiKeyId,
    ) -> Result<strongroom_store::ApiKeyDetails> {
        p.require_org_wide::<perm::ApiKeyManage>()?;
        let d = self
            .ctx
            .store
            .api_key_details(&p.org_id, id)
            .await?
            .ok_or(ServiceError::NotFound("API key"))?;
        if !p.space_scope().covers(d.spaces.as_deref()) {
            return Err(ServiceError::NotFound("API key"));
        }
        Ok(d)
    }

    /// Authorizes seeing or revoking a key: `apikey:manage`, and the key's reach within the
    /// caller's (anything else is not found, like another organization's key). Taking power
    /// away is always allowed: an admin can revoke a leaked owner key.
    pub async fn authorize_key_manage<'a>(
        &self,
        p: &'a Principal,
        id: &ApiKeyId,
    ) -> Result<KeyManageAuthz<'a>> {
        self.managed_key(p, id).await?;
        Ok(KeyManageAuthz {
            principal: p,
            key_id: id.clone(),
        })
    }

    /// Authorizes rotating a key: only its owner, because the new secret acts as them, and only
    /// through a credential that holds `apikey:manage` and at least the key's role and reach. A
    /// manager who may see the key but does not own it is refused; one who may not see it
    /// learns nothing ("not found"). Rotating an admin-level key from a session needs a recent
    /// sign-in, as making one does.
    pub async fn authorize_key_owner<'a>(
        &self,
        p: &'a Principal,
        id: &ApiKeyId,
    ) -> Result<KeyOwnerAuthz<'a>> {
        let d = self.managed_key(p, id).await?;
        let owner = d.key.user_id.as_ref();
        if owner.is_none() || owner != p.user_id() {
            return Err(ServiceError::Forbidden(
                "rotating a key that is not your own (revoke it instead)",
            ));
        }
        let (_, perms) = self.ctx.resolve_role(&p.org_id, &d.key.role).await?;
        if !perms.is_subset(p.access.org) {
            // Another key of the same owner, above the one asking: its secret is not for it.
            return Err(ServiceError::Forbidden(
                "rotating a key with a role above your own",
            ));
        }
        if crate::keys::is_admin_level(perms) {
            self.ctx.require_recent_auth(p).await?;
        }
        Ok(KeyOwnerAuthz {
            principal: p,
            key_id: id.clone(),
        })
    }

    /// Authorizes a signed-in user's action on their own account. API keys are refused: a
    /// leaked key must never change its owner's password or second factor.
    pub fn authorize_self<'a>(&self, p: &'a Principal) -> Result<SelfAuthz<'a>> {
        match &p.actor {
            Actor::Session {
                session_id,
                user_id,
            } => Ok(SelfAuthz {
                principal: p,
                session_id: session_id.clone(),
                user_id: user_id.clone(),
            }),
            _ => Err(ServiceError::Forbidden("this without a signed-in session")),
        }
    }
}

impl Ctx {
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
}
