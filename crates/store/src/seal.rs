//! Sealed metadata: what a user typed, or what identifies a person, never reaches a row in the
//! clear.
//!
//! The store seals such a value as it binds it and opens it as it reads the row, so no caller
//! can forget to: row types hold plaintext, SQL sees only ciphertext. The crypto itself is not
//! here (this crate does no crypto): [`Store::connect`](crate::Store::connect) is handed a
//! [`FieldSealer`], which the server builds from the root key.
//!
//! A sealed value is stored as text, `sr1:` and the unpadded base64url of the sealer's output;
//! its associated data names the table, the column and the row (its id), so a value copied to
//! another row or column does not open. A value looked up exactly (an email at sign-in, an
//! organization or role name, a throttle scope, a sign-in address) also has a blind index: a
//! keyed hash of the value (and, for a per-organization name, of the organization), 16 bytes,
//! base64url. Equal values have equal indexes, so uniqueness and lookups still work; the index
//! reveals nothing else without the key.

pub(crate) mod existing;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, StoreError};

/// The crypto the store uses for sealed columns. Implemented above the store (by the server,
/// over the root key's field keys).
pub trait FieldSealer: Send + Sync {
    /// Encrypts and authenticates `plaintext`, bound to `aad`.
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8>;
    /// The plaintext of a value made by `seal` with the same `aad`; `None` if it does not open.
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>>;
    /// A keyed hash of `data` (HMAC-SHA256 or equivalent), for blind indexes.
    fn index(&self, data: &[u8]) -> [u8; 32];
    /// A new random 32-byte key for one person (sealed in their row; see `person`).
    fn new_person_key(&self) -> [u8; 32];
    /// Encrypts and authenticates `plaintext` under a person's `key`, bound to `aad`.
    fn seal_with(&self, key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8>;
    /// The plaintext of a value made by `seal_with` under the same key and `aad`.
    fn open_with(&self, key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>>;
}

/// Marks a sealed value. A value without it is refused as corrupt.
const PREFIX: &str = "sr1:";
/// Leads the associated data of every sealed value. Frozen: changing it makes them unreadable.
const AAD_LABEL: &[u8] = b"strongroom sealed field v1";
/// Leads the input of every blind index. Frozen: changing it breaks every lookup.
const INDEX_LABEL: &[u8] = b"strongroom blind index v1";

/// A sealed column, or the subject of a blind index: `table.column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) table: &'static str,
    pub(crate) column: &'static str,
}

const fn field(table: &'static str, column: &'static str) -> Field {
    Field { table, column }
}

pub(crate) const ORG_NAME: Field = field("orgs", "name");
pub(crate) const USER_EMAIL: Field = field("users", "email");
pub(crate) const SPACE_NAME: Field = field("spaces", "name");
pub(crate) const ASSET_FILENAME: Field = field("assets", "filename");
pub(crate) const MEDIA_ERROR: Field = field("assets", "media_error");
pub(crate) const MEDIA_INFO: Field = field("assets", "media_info");
pub(crate) const JOB_ERROR: Field = field("jobs", "last_error");
pub(crate) const ROLE_NAME: Field = field("roles", "name");
pub(crate) const KEY_NAME: Field = field("api_keys", "name");
pub(crate) const KEY_LAST_IP: Field = field("api_keys", "last_used_ip");
pub(crate) const INVITATION_EMAIL: Field = field("invitations", "email");
pub(crate) const SESSION_IP: Field = field("sessions", "ip");
pub(crate) const SESSION_AGENT: Field = field("sessions", "user_agent");
pub(crate) const AUDIT_IP: Field = field("audit_events", "ip");
pub(crate) const AUDIT_DETAIL: Field = field("audit_events", "detail");
pub(crate) const LINK_IP: Field = field("links", "ip");
pub(crate) const FAILURE_SCOPE: Field = field("login_failures", "scope");
pub(crate) const SUCCESS_IP: Field = field("login_successes", "ip");
pub(crate) const PERSON_KEY: Field = field("users", "person_key");
pub(crate) const AUDIT_PERSONAL: Field = field("audit_events", "personal");

/// The store's handle on its sealer.
#[derive(Clone)]
pub(crate) struct Seal {
    sealer: Arc<dyn FieldSealer>,
}

impl Seal {
    pub(crate) fn new(sealer: Arc<dyn FieldSealer>) -> Seal {
        Seal { sealer }
    }

    /// The stored form of `text` in `field` of the row `row_id`.
    pub(crate) fn seal(&self, f: Field, row_id: &str, text: &str) -> String {
        let sealed = self.sealer.seal(&aad(f, row_id), text.as_bytes());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// [`Seal::seal`] of an optional value (NULL stays NULL).
    pub(crate) fn seal_opt(&self, f: Field, row_id: &str, text: Option<&str>) -> Option<String> {
        text.map(|t| self.seal(f, row_id, t))
    }

    /// The plaintext of a stored value of `field` in the row `row_id`.
    pub(crate) fn open(&self, f: Field, row_id: &str, stored: &str) -> Result<String> {
        let corrupt = |what: &str| StoreError::Corrupt {
            table: f.table,
            detail: format!("{}: {what}", f.column),
        };
        let b64 = stored
            .strip_prefix(PREFIX)
            .ok_or_else(|| corrupt("not a sealed value"))?;
        let sealed = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| corrupt("not a sealed value"))?;
        let plain = self
            .sealer
            .open(&aad(f, row_id), &sealed)
            .ok_or_else(|| corrupt("does not open (another root key, or another row's value)"))?;
        String::from_utf8(plain).map_err(|_| corrupt("not UTF-8"))
    }

    /// Reads and opens the column `field.column` of `row`.
    pub(crate) fn column(&self, row: &AnyRow, f: Field, row_id: &str) -> Result<String> {
        self.column_as(row, f.column, f, row_id)
    }

    /// Reads and opens the column `column` of `row` (an alias of `field` in a join).
    pub(crate) fn column_as(
        &self,
        row: &AnyRow,
        column: &str,
        f: Field,
        row_id: &str,
    ) -> Result<String> {
        let stored: String = row.try_get(column)?;
        self.open(f, row_id, &stored)
    }

    /// [`Seal::column`] of a nullable column.
    pub(crate) fn column_opt(
        &self,
        row: &AnyRow,
        f: Field,
        row_id: &str,
    ) -> Result<Option<String>> {
        let stored: Option<String> = row.try_get(f.column)?;
        stored.map(|s| self.open(f, row_id, &s)).transpose()
    }

    /// Reads, opens and parses the column `field.column` of `row`.
    pub(crate) fn parsed<T, E: std::fmt::Display>(
        &self,
        row: &AnyRow,
        f: Field,
        row_id: &str,
        parse: impl FnOnce(&str) -> std::result::Result<T, E>,
    ) -> Result<T> {
        let text = self.column(row, f, row_id)?;
        parse(&text).map_err(|e| StoreError::Corrupt {
            table: f.table,
            detail: format!("{}: {e}", f.column),
        })
    }

    /// A new person's key and its stored form in their `users` row.
    pub(crate) fn new_person_key(&self, user_id: &str) -> ([u8; 32], String) {
        let key = self.sealer.new_person_key();
        let stored = self.seal(PERSON_KEY, user_id, &URL_SAFE_NO_PAD.encode(key));
        (key, stored)
    }

    /// A person's key from its stored form in their row.
    pub(crate) fn open_person_key(&self, user_id: &str, stored: &str) -> Result<[u8; 32]> {
        let b64 = self.open(PERSON_KEY, user_id, stored)?;
        URL_SAFE_NO_PAD
            .decode(b64)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| StoreError::Corrupt {
                table: "users",
                detail: "person_key: not a 32-byte key".into(),
            })
    }

    /// `plaintext` sealed under a person's key, bound to the audit event `row_id`.
    pub(crate) fn seal_personal(&self, key: &[u8; 32], row_id: &str, plaintext: &[u8]) -> Vec<u8> {
        self.sealer
            .seal_with(key, &aad(AUDIT_PERSONAL, row_id), plaintext)
    }

    /// The plaintext of [`Seal::seal_personal`]'s output, if it opens under `key` in this row.
    pub(crate) fn open_personal(
        &self,
        key: &[u8; 32],
        row_id: &str,
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        self.sealer
            .open_with(key, &aad(AUDIT_PERSONAL, row_id), sealed)
    }

    /// The blind index of `value` in `field`, within `scope` (an organization id for names
    /// unique per organization, empty for global ones).
    pub(crate) fn index(&self, f: Field, scope: &str, value: &str) -> String {
        let mut data = Vec::with_capacity(INDEX_LABEL.len() + scope.len() + value.len() + 40);
        data.extend_from_slice(INDEX_LABEL);
        for part in [f.table, f.column, scope, value] {
            data.push(0);
            data.extend_from_slice(&(part.len() as u64).to_be_bytes());
            data.extend_from_slice(part.as_bytes());
        }
        let tag = self.sealer.index(&data);
        URL_SAFE_NO_PAD.encode(&tag[..16])
    }
}

/// The associated data of a value of `field` in the row `row_id`: label, table, column and row,
/// each length-prefixed so no two (field, row) pairs share it.
fn aad(f: Field, row_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(AAD_LABEL.len() + row_id.len() + 48);
    out.extend_from_slice(AAD_LABEL);
    for part in [f.table, f.column, row_id] {
        out.push(0);
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Whether a stored text is in the sealed form.
#[cfg(test)]
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The row id an audit event's sealed fields are bound to.
pub(crate) fn audit_row(org_id: &str, seq: i64) -> String {
    format!("{org_id}/{seq}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// XOR "sealer" for unit tests of the framing only; the real one is AES-256-GCM.
    struct Toy;
    impl FieldSealer for Toy {
        fn seal(&self, aad: &[u8], p: &[u8]) -> Vec<u8> {
            let mut out = vec![aad.len() as u8];
            out.extend(p.iter().map(|b| b ^ 0x5a));
            out
        }
        fn open(&self, aad: &[u8], s: &[u8]) -> Option<Vec<u8>> {
            let (&n, rest) = s.split_first()?;
            (n == aad.len() as u8).then(|| rest.iter().map(|b| b ^ 0x5a).collect())
        }
        fn index(&self, d: &[u8]) -> [u8; 32] {
            let mut out = [0u8; 32];
            for (i, b) in d.iter().enumerate() {
                out[i % 32] ^= b.rotate_left(i as u32 % 8);
            }
            out
        }
        fn new_person_key(&self) -> [u8; 32] {
            [1; 32]
        }
        fn seal_with(&self, _: &[u8; 32], aad: &[u8], p: &[u8]) -> Vec<u8> {
            self.seal(aad, p)
        }
        fn open_with(&self, _: &[u8; 32], aad: &[u8], s: &[u8]) -> Option<Vec<u8>> {
            self.open(aad, s)
        }
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_row_and_field() {
        let s = Seal::new(Arc::new(Toy));
        let v = s.seal(ASSET_FILENAME, "ast_1", "plan.txt");
        assert!(is_sealed(&v) && !v.contains("plan"));
        assert_eq!(s.open(ASSET_FILENAME, "ast_1", &v).unwrap(), "plan.txt");
        assert!(s.open(ASSET_FILENAME, "ast_12", &v).is_err());
        assert!(s.open(SPACE_NAME, "ast_1", &v).is_err());
        assert!(s.open(ASSET_FILENAME, "ast_1", "plan.txt").is_err());
    }

    #[test]
    fn indexes_depend_on_field_scope_and_value() {
        let s = Seal::new(Arc::new(Toy));
        let a = s.index(ROLE_NAME, "org_1", "editor");
        assert_eq!(a, s.index(ROLE_NAME, "org_1", "editor"));
        assert_ne!(a, s.index(ROLE_NAME, "org_2", "editor"));
        assert_ne!(a, s.index(ORG_NAME, "org_1", "editor"));
        assert_ne!(a, s.index(ROLE_NAME, "org_1", "editors"));
    }
}
