//! Parsed human-facing values: names, file names, email addresses.

use std::fmt;

/// Why a value was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

/// Whether `s` holds a character that makes a name display as something it is not: control
/// characters, bidirectional controls (U+202E turns `invoice\u{202e}txt.exe` into what looks
/// like `invoiceexe.txt`), and invisible format characters (zero-width space, word joiners,
/// byte order mark, soft hyphen, tag characters, line and paragraph separators). Zero-width
/// joiner and non-joiner (U+200C, U+200D) stay allowed: Persian and Indic scripts need them to
/// spell words, and emoji sequences use them; they cannot reorder or hide text.
fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() || is_invisible_format(c))
}

fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                 // soft hyphen
        | '\u{061C}'               // Arabic letter mark
        | '\u{180E}'               // Mongolian vowel separator
        | '\u{200B}'               // zero-width space
        | '\u{200E}' | '\u{200F}'   // left-to-right and right-to-left marks
        | '\u{2028}' | '\u{2029}'   // line and paragraph separators
        | '\u{202A}'..='\u{202E}'  // bidirectional embeddings and overrides
        | '\u{2060}'..='\u{2064}'  // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'  // bidirectional isolates
        | '\u{206A}'..='\u{206F}'  // deprecated format characters
        | '\u{FEFF}'               // byte order mark
        | '\u{FFF9}'..='\u{FFFB}'  // interlinear annotation
        | '\u{E0000}'..='\u{E007F}' // tag characters
    )
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
            return Err(NameError(
                "name must not contain control, bidirectional or invisible format characters"
                    .into(),
            ));
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
                "filename must not contain slashes, control, bidirectional or invisible format characters".into(),
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
    fn bidi_and_invisible_characters_are_refused_in_every_name() {
        for bad in [
            "invoice\u{202E}txt.exe",
            "a\u{2066}b",
            "zero\u{200B}width",
            "\u{FEFF}bom",
            "soft\u{00AD}hyphen",
            "tag\u{E0041}",
            "rlm\u{200F}",
            "line\u{2028}break",
        ] {
            assert!(Filename::parse(bad).is_err(), "{bad:?}");
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
        // Joiners spell words in some scripts: they stay.
        assert!(
            Name::parse("\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}").is_ok()
        );
        assert!(Filename::parse("family\u{1F468}\u{200D}\u{1F467}.png").is_ok());
        assert!(Filename::parse("r\u{00E9}sum\u{00E9}.pdf").is_ok());
    }

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
