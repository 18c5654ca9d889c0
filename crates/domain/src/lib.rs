//! Strongroom's vocabulary: identifiers, parsed value types, roles and permissions, the clock.
//!
//! Everything here is pure: no I/O, no crypto, no database. Values are parsed once at the edge
//! (`OrgId::parse`, `Role::from_str`, `Filename::parse`...) and carried as types afterwards, so a
//! `&str` that means an organization id never travels through the service layer.

pub mod clock;
pub mod ids;
pub mod names;
pub mod role;

pub use clock::{Clock, SystemClock, Timestamp};
pub use ids::{
    ApiKeyId, AssetId, BackupId, BlobId, IdError, InvitationId, JobId, LinkId, OrgId, PlaybackId,
    RoleId, SessionId, SpaceId, UserId,
};
pub use names::{Email, Filename, Name, NameError};
pub use role::{Permission, PermissionSet, Role, RoleRef};
