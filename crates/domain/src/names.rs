//! Parsed human-facing values: names, file names, email addresses.

use std::fmt;

/// Why a value was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A display name (organization, space, API key): 1 to 200 characters, no control characters,
/// surrounding whitespace trimmed.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(NameError("name must not be empty".into()));
        }
        if s.chars().count() > 200 {
            return Err(NameError("name must be at most 200 characters".into()));
        }
        if has_control(s) {
            return Err(NameError("name must not contain control characters".into()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A file name as uploaded: 1 to 255 bytes, no path separators, no control characters, not `.`
/// or `..`. It is metadata only: blobs are stored under their ids, never under this name.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Filename(String);

impl Filename {
    /// Parses a file name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() || s.len() > 255 {
            return Err(NameError("filename must be 1 to 255 bytes".into()));
        }
        if s.contains(['/', '\\']) || has_control(s) {
            return Err(NameError(
                "filename must not contain slashes or control characters".into(),
            ));
        }
        if s == "." || s == ".." {
            return Err(NameError("filename must not be . or ..".into()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The file name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Filename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// An email address, lower-cased. Deliberately permissive (one `@`, non-empty parts, no spaces or
/// control characters, at most 254 bytes): the proof an address works is mail that arrives.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an email address.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let s = s.trim().to_lowercase();
        let valid = s.len() <= 254
            && !has_control(&s)
            && !s.contains(char::is_whitespace)
            && matches!(s.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@') && domain.contains('.'));
        if valid {
            Ok(Self(s))
        } else {
            Err(NameError(format!("{s:?} is not a valid email address")))
        }
    }

    /// The address as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("  Marketing ").map(|n| n.0),
            Ok("Marketing".into())
        );
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"x".repeat(201)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
    }

    #[test]
    fn filenames_cannot_traverse() {
        assert!(Filename::parse("report.pdf").is_ok());
        assert!(Filename::parse("übersicht 2026.pdf").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "a\nb"] {
            assert!(Filename::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails_are_lowercased() {
        assert_eq!(
            Email::parse("Ada@Example.COM").map(|e| e.0),
            Ok("ada@example.com".into())
        );
        for bad in [
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "a@b@c.com",
            "ada@localhost",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
