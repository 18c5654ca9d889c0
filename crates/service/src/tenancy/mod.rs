//! Tenancy: who belongs to an organization and what they may do there. Members, custom roles,
//! space grants, invitations, the organization's security policy, its storage usage, and its
//! deletion.

use std::sync::Arc;

use strongroom_crypto::keys::{MacKey, RootKey};

use crate::ctx::Ctx;
use crate::identity::Passwords;
use crate::notify::Notify;

pub(crate) mod access;
pub(crate) mod deletion;
pub(crate) mod invitations;
pub(crate) mod policy;
pub(crate) mod quotas;

/// Members, roles, grants, invitations, policy and usage of organizations.
pub struct Tenancy {
    ctx: Arc<Ctx>,
    invitation_hasher: MacKey,
    /// Accepting an invitation as an existing account checks its password under the sign-in
    /// limits; a new account's password is hashed on the same threads.
    passwords: Arc<Passwords>,
    notify: Notify,
}

impl Tenancy {
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        root: &RootKey,
        passwords: Arc<Passwords>,
        notify: Notify,
    ) -> Tenancy {
        Tenancy {
            ctx,
            invitation_hasher: root.derive("invitation"),
            passwords,
            notify,
        }
    }
}
