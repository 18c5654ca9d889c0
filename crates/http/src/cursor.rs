//! Opaque list cursors: the last id of a page, base64url-encoded so clients treat it as opaque.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes a position.
pub fn encode(after: &str) -> String {
    URL_SAFE_NO_PAD.encode(after.as_bytes())
}

/// Decodes a cursor made by [`encode`].
pub fn decode(cursor: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let s = String::from_utf8(bytes).ok()?;
    (s.len() <= 100 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')).then_some(s)
}
