//! Opaque, prefixed identifiers.
//!
//! An id is `<prefix>_<32 lowercase hex>` where the hex is a UUIDv7: ids of one kind sort by
//! creation time, which gives cursor pagination a stable order for free. The prefix makes a
//! pasted id self-describing and lets `parse` refuse an asset id where a space id is expected.

use std::fmt;

/// An id string that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id")]
pub struct IdError {
    /// The kind of id that was expected (`org`, `space`, ...).
    pub kind: &'static str,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Parses an id received from outside.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let ok = s
                    .strip_prefix($prefix)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|hex| {
                        hex.len() == 32
                            && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    });
                if ok { Ok(Self(s.to_owned())) } else { Err(IdError { kind: $kind }) }
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// An organization (tenant).
    OrgId, "org", "organization"
);
id_type!(
    /// A user: a global identity that holds memberships.
    UserId, "usr", "user"
);
id_type!(
    /// A space: a container of assets inside one organization.
    SpaceId, "spc", "space"
);
id_type!(
    /// An asset: stored bytes plus metadata.
    AssetId, "ast", "asset"
);
id_type!(
    /// An API key (the public half: the secret is never an id).
    ApiKeyId, "key", "API key"
);
id_type!(
    /// A browser session (the public id, for listing and revoking; never the cookie secret).
    SessionId, "ses", "session"
);
id_type!(
    /// A stored, encrypted blob with its own data key.
    BlobId, "blb", "blob"
);
id_type!(
    /// A custom role of one organization.
    RoleId, "rol", "role"
);
id_type!(
    /// An invitation to join an organization.
    InvitationId, "inv", "invitation"
);
id_type!(
    /// A playback: one view's token for an asset's HLS stream (the public id, never the token).
    PlaybackId, "pbk", "playback"
);
id_type!(
    /// A background job in the durable queue.
    JobId, "job", "job"
);
id_type!(
    /// A backup: one snapshot of the database with the blobs it names, at a destination.
    BackupId, "bkp", "backup"
);
id_type!(
    /// A download link (the public id, for listing and revoking; never the token in its URL).
    LinkId, "lnk", "link"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_and_sort_by_time() {
        let a = AssetId::generate();
        let b = AssetId::generate();
        assert_eq!(AssetId::parse(a.as_str()), Ok(a.clone()));
        assert!(a < b, "UUIDv7 ids must sort by creation");
    }

    #[test]
    fn wrong_kind_or_shape_is_refused() {
        let space = SpaceId::generate();
        assert!(AssetId::parse(space.as_str()).is_err());
        assert!(AssetId::parse("ast_").is_err());
        assert!(AssetId::parse("ast_../../etc/passwd0000000000000000").is_err());
        assert!(AssetId::parse("ast_0123456789ABCDEF0123456789abcdef").is_err());
        assert!(AssetId::parse("ast_0123456789abcdef0123456789abcdef").is_ok());
    }
}
