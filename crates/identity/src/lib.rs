//! Identity rules for Strongroom: what a password must be ([`password_policy`]), TOTP second
//! factors ([`totp`]) and their recovery codes ([`recovery`]); WebAuthn, OIDC, SAML and SCIM
//! attribute mapping later.
//!
//! This crate owns *decisions* about identities and credentials, not their plumbing. It must
//! never name HTTP types, open a database, or do I/O at run time: everything it needs (such as
//! the common-password list) is compiled in, so a rule gives the same answer on every node and in
//! every test. It takes the time as an argument rather than reading a clock; the one thing it
//! draws from the system is randomness for new secrets and codes (`random`, the operating
//! system's CSPRNG). Hashing and storing a password belong to `strongroom-crypto` and
//! `strongroom-store`; turning a refusal into a response belongs to `strongroom-http`.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod password_policy;
pub mod recovery;
pub mod totp;

mod random;
