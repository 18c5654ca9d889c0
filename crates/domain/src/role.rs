//! Built-in roles and the permissions they grant.
//!
//! A permission is `action:resource`. The table below is the single place that says what each
//! built-in role may do; every request is checked against it through `Role::allows`.

use std::fmt;
use std::str::FromStr;

/// Something a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// See the organization and whoami details.
    OrgRead,
    /// Change organization settings.
    OrgManage,
    /// List and read spaces.
    SpaceRead,
    /// Create spaces.
    SpaceCreate,
    /// List assets and read their metadata and content.
    AssetRead,
    /// Upload assets.
    AssetCreate,
    /// Delete assets (crypto-shredding).
    AssetDelete,
    /// Create sharing links.
    LinkCreate,
    /// Revoke sharing links.
    LinkDelete,
    /// Read the audit trail.
    AuditRead,
    /// Create and revoke API keys.
    ApiKeyManage,
    /// Invite, change and remove members.
    MemberManage,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 12] = [
        Permission::OrgRead,
        Permission::OrgManage,
        Permission::SpaceRead,
        Permission::SpaceCreate,
        Permission::AssetRead,
        Permission::AssetCreate,
        Permission::AssetDelete,
        Permission::LinkCreate,
        Permission::LinkDelete,
        Permission::AuditRead,
        Permission::ApiKeyManage,
        Permission::MemberManage,
    ];

    /// The `action:resource` spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::OrgRead => "org:read",
            Permission::OrgManage => "org:manage",
            Permission::SpaceRead => "space:read",
            Permission::SpaceCreate => "space:create",
            Permission::AssetRead => "asset:read",
            Permission::AssetCreate => "asset:create",
            Permission::AssetDelete => "asset:delete",
            Permission::LinkCreate => "link:create",
            Permission::LinkDelete => "link:delete",
            Permission::AuditRead => "audit:read",
            Permission::ApiKeyManage => "apikey:manage",
            Permission::MemberManage => "member:manage",
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
}

impl Role {
    /// Every built-in role.
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Editor,
        Role::Contributor,
        Role::Viewer,
    ];

    /// The permissions this role grants.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
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
            AssetRead,
            AssetCreate,
            AssetDelete,
            LinkCreate,
            LinkDelete,
            AuditRead,
            ApiKeyManage,
            MemberManage,
        ];
        match self {
            Role::Owner => &Permission::ALL,
            Role::Admin => ADMIN,
            Role::Editor => EDITOR,
            Role::Contributor => CONTRIBUTOR,
            Role::Viewer => VIEWER,
        }
    }

    /// Whether this role grants `p`.
    pub fn allows(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }

    /// Position in the hierarchy: higher is more powerful.
    pub const fn rank(self) -> u8 {
        match self {
            Role::Owner => 4,
            Role::Admin => 3,
            Role::Editor => 2,
            Role::Contributor => 1,
            Role::Viewer => 0,
        }
    }

    /// The less powerful of two roles: a key never does more than the person who made it.
    pub fn min(self, other: Role) -> Role {
        if other.rank() < self.rank() {
            other
        } else {
            self
        }
    }

    /// The lower-case name used in the API and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Contributor => "contributor",
            Role::Viewer => "viewer",
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
                    "unknown role {s:?}: expected one of owner, admin, editor, contributor, viewer"
                )
            })
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
        assert!(!Role::Admin.allows(Permission::OrgManage));
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
