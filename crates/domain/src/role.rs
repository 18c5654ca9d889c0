//! Roles and the permissions they grant.
//!
//! A permission is `action:resource`. The table below is the single place that says what each
//! built-in role may do. An organization may also define custom roles, each a [`PermissionSet`];
//! a membership, a space grant or an API key names its role with a [`RoleRef`]. Every request is
//! checked against the resolved set.

use std::fmt;
use std::str::FromStr;

/// Something a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// See the organization (its role list); `/me` needs no permission.
    OrgRead,
    /// Change organization settings.
    OrgManage,
    /// List and read spaces.
    SpaceRead,
    /// Create spaces.
    SpaceCreate,
    /// Change a space's settings (its retention rule).
    SpaceManage,
    /// List assets and read their metadata and content.
    AssetRead,
    /// Upload assets.
    AssetCreate,
    /// Delete assets to the trash, list the trash and restore from it.
    AssetDelete,
    /// Purge assets: crypto-shred them now, from the trash or without passing through it.
    AssetPurge,
    /// Create sharing links.
    LinkCreate,
    /// Revoke sharing links.
    LinkDelete,
    /// Read the audit trail.
    AuditRead,
    /// Create and revoke API keys.
    ApiKeyManage,
    /// Change and remove members, and grant them spaces.
    MemberManage,
    /// Invite people to the organization.
    MemberInvite,
    /// Define, change and delete custom roles.
    RoleManage,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 16] = [
        Permission::OrgRead,
        Permission::OrgManage,
        Permission::SpaceRead,
        Permission::SpaceCreate,
        Permission::SpaceManage,
        Permission::AssetRead,
        Permission::AssetCreate,
        Permission::AssetDelete,
        Permission::AssetPurge,
        Permission::LinkCreate,
        Permission::LinkDelete,
        Permission::AuditRead,
        Permission::ApiKeyManage,
        Permission::MemberManage,
        Permission::MemberInvite,
        Permission::RoleManage,
    ];

    /// The `action:resource` spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::OrgRead => "org:read",
            Permission::OrgManage => "org:manage",
            Permission::SpaceRead => "space:read",
            Permission::SpaceCreate => "space:create",
            Permission::SpaceManage => "space:manage",
            Permission::AssetRead => "asset:read",
            Permission::AssetCreate => "asset:create",
            Permission::AssetDelete => "asset:delete",
            Permission::AssetPurge => "asset:purge",
            Permission::LinkCreate => "link:create",
            Permission::LinkDelete => "link:delete",
            Permission::AuditRead => "audit:read",
            Permission::ApiKeyManage => "apikey:manage",
            Permission::MemberManage => "member:manage",
            Permission::MemberInvite => "member:invite",
            Permission::RoleManage => "role:manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown permission {s:?}"))
    }
}

/// A built-in role of an organization, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including organization settings.
    Owner,
    /// Everything except organization settings.
    Admin,
    /// Manages content: create, delete, share.
    Editor,
    /// Adds content and reads it.
    Contributor,
    /// Reads content.
    Viewer,
    /// Nothing organization-wide: sees only the spaces granted to them.
    Collaborator,
}

impl Role {
    /// Every built-in role.
    pub const ALL: [Role; 6] = [
        Role::Owner,
        Role::Admin,
        Role::Editor,
        Role::Contributor,
        Role::Viewer,
        Role::Collaborator,
    ];

    /// The permissions this role grants.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        const COLLABORATOR: &[Permission] = &[OrgRead];
        const VIEWER: &[Permission] = &[OrgRead, SpaceRead, AssetRead];
        const CONTRIBUTOR: &[Permission] = &[OrgRead, SpaceRead, AssetRead, AssetCreate];
        const EDITOR: &[Permission] = &[
            OrgRead,
            SpaceRead,
            AssetRead,
            AssetCreate,
            AssetDelete,
            LinkCreate,
            LinkDelete,
        ];
        const ADMIN: &[Permission] = &[
            OrgRead,
            SpaceRead,
            SpaceCreate,
            SpaceManage,
            AssetRead,
            AssetCreate,
            AssetDelete,
            AssetPurge,
            LinkCreate,
            LinkDelete,
            AuditRead,
            ApiKeyManage,
            MemberManage,
            MemberInvite,
            RoleManage,
        ];
        match self {
            Role::Owner => &Permission::ALL,
            Role::Admin => ADMIN,
            Role::Editor => EDITOR,
            Role::Contributor => CONTRIBUTOR,
            Role::Viewer => VIEWER,
            Role::Collaborator => COLLABORATOR,
        }
    }

    /// Whether this role grants `p`.
    pub fn allows(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }

    /// The lower-case name used in the API and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Contributor => "contributor",
            Role::Viewer => "viewer",
            Role::Collaborator => "collaborator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?}: expected one of owner, admin, editor, contributor, viewer, collaborator, or a custom role of the organization"
                )
            })
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A set of permissions: what a role grants, or what a caller may do after every cap applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u32);

impl PermissionSet {
    /// No permission at all.
    pub const EMPTY: PermissionSet = PermissionSet(0);

    fn bit(p: Permission) -> u32 {
        let index = Permission::ALL.iter().position(|q| *q == p).unwrap_or(0);
        1 << index
    }

    /// Every permission there is.
    pub fn all() -> PermissionSet {
        Self::of(&Permission::ALL)
    }

    /// The set of these permissions.
    pub fn of(ps: &[Permission]) -> PermissionSet {
        PermissionSet(ps.iter().fold(0, |acc, p| acc | Self::bit(*p)))
    }

    /// Whether `p` is in the set.
    pub fn contains(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    /// Both sets' permissions.
    pub fn union(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 | other.0)
    }

    /// Only the permissions in both sets.
    pub fn intersection(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 & other.0)
    }

    /// Whether every permission of `self` is also in `other`.
    pub fn is_subset(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The permissions, in the stable order of [`Permission::ALL`].
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// Parses `action:resource` names; an unknown name is refused with a message naming it.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<PermissionSet, String> {
        names.iter().try_fold(PermissionSet::EMPTY, |acc, n| {
            Ok(acc.union(PermissionSet::of(&[n.as_ref().parse()?])))
        })
    }

    /// The stored form: names separated by spaces.
    pub fn to_stored(self) -> String {
        self.iter()
            .map(Permission::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads the stored form.
    pub fn from_stored(s: &str) -> Result<PermissionSet, String> {
        PermissionSet::parse(&s.split_whitespace().collect::<Vec<_>>())
    }
}

impl serde::Serialize for PermissionSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Permission::as_str))
    }
}

/// Which role a membership, space grant, invitation or API key holds: a built-in one, or a
/// custom role of the organization (by id, so renaming or editing the role reaches every
/// holder at once).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoleRef {
    /// A built-in role.
    Builtin(Role),
    /// A custom role of the organization.
    Custom(crate::RoleId),
}

impl RoleRef {
    /// The stored form: the built-in name or the custom role's id.
    pub fn to_stored(&self) -> String {
        match self {
            RoleRef::Builtin(r) => r.as_str().to_owned(),
            RoleRef::Custom(id) => id.to_string(),
        }
    }

    /// Reads the stored form.
    pub fn from_stored(s: &str) -> Result<RoleRef, String> {
        if s.starts_with("rol_") {
            crate::RoleId::parse(s)
                .map(RoleRef::Custom)
                .map_err(|e| e.to_string())
        } else {
            s.parse().map(RoleRef::Builtin)
        }
    }

    /// Whether this is the built-in owner role.
    pub fn is_owner(&self) -> bool {
        matches!(self, RoleRef::Builtin(Role::Owner))
    }
}

impl From<Role> for RoleRef {
    fn from(r: Role) -> Self {
        RoleRef::Builtin(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        // Each role holds every permission of the roles below it.
        for pair in Role::ALL.windows(2) {
            for p in pair[1].permissions() {
                assert!(
                    pair[0].allows(*p),
                    "{} lacks {} that {} has",
                    pair[0],
                    p,
                    pair[1]
                );
            }
        }
        assert!(!Role::Viewer.allows(Permission::AssetCreate));
        assert!(!Role::Contributor.allows(Permission::AssetDelete));
        assert!(!Role::Editor.allows(Permission::AuditRead));
        // Deleting reaches the trash; only admins and owners destroy content for good.
        assert!(Role::Editor.allows(Permission::AssetDelete));
        assert!(!Role::Editor.allows(Permission::AssetPurge));
        assert!(Role::Admin.allows(Permission::AssetPurge));
        assert!(!Role::Admin.allows(Permission::OrgManage));
        assert!(!Role::Collaborator.allows(Permission::SpaceRead));
    }

    #[test]
    fn permission_sets_compare_and_round_trip() {
        let editor = PermissionSet::of(Role::Editor.permissions());
        let viewer = PermissionSet::of(Role::Viewer.permissions());
        assert!(viewer.is_subset(editor));
        assert!(!editor.is_subset(viewer));
        assert_eq!(editor.intersection(viewer), viewer);
        assert_eq!(PermissionSet::from_stored(&editor.to_stored()), Ok(editor));
        assert_eq!(PermissionSet::from_stored(""), Ok(PermissionSet::EMPTY));
        assert!(PermissionSet::parse(&["asset:read", "asset:fly"]).is_err());
        assert!(PermissionSet::all().is_subset(PermissionSet::of(Role::Owner.permissions())));
    }

    #[test]
    fn role_refs_round_trip() {
        let custom = RoleRef::Custom(crate::RoleId::generate());
        assert_eq!(RoleRef::from_stored(&custom.to_stored()), Ok(custom));
        assert_eq!(
            RoleRef::from_stored("editor"),
            Ok(RoleRef::Builtin(Role::Editor))
        );
        assert!(RoleRef::from_stored("rol_nope").is_err());
        assert!(RoleRef::from_stored("superuser").is_err());
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
