//! The `Range` request header (RFC 9110 §14): one byte range, or none.

/// What a `Range` header asks of a representation of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve everything (no header, a unit other than bytes, or several ranges).
    Full,
    /// Serve `[start, end)`.
    Partial(u64, u64),
    /// Nothing of it can be served: answer 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value against a size.
pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        // Multiple ranges would need multipart/byteranges; serving the whole is allowed.
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = if first.is_empty() {
        // Suffix: the last N bytes.
        match last.parse::<u64>() {
            Ok(0) | Err(_) => return RangeRequest::Unsatisfiable,
            Ok(n) => (size.saturating_sub(n), size),
        }
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return RangeRequest::Unsatisfiable;
        };
        let end = if last.is_empty() {
            size
        } else {
            match last.parse::<u64>() {
                Ok(l) if l >= start => l.saturating_add(1).min(size),
                _ => return RangeRequest::Unsatisfiable,
            }
        };
        (start, end)
    };
    if parsed.0 >= size || parsed.0 >= parsed.1 {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Partial(parsed.0, parsed.1)
    }
}

#[cfg(test)]
mod tests {
    use super::{RangeRequest::*, parse};

    #[test]
    fn ranges() {
        assert_eq!(parse(None, 10), Full);
        assert_eq!(parse(Some("bytes=0-0"), 10), Partial(0, 1));
        assert_eq!(parse(Some("bytes=2-5"), 10), Partial(2, 6));
        assert_eq!(parse(Some("bytes=2-"), 10), Partial(2, 10));
        assert_eq!(parse(Some("bytes=5-100"), 10), Partial(5, 10));
        assert_eq!(parse(Some("bytes=-3"), 10), Partial(7, 10));
        assert_eq!(parse(Some("bytes=-30"), 10), Partial(0, 10));
        assert_eq!(parse(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=5-2"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=x-2"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(parse(Some("items=0-1"), 10), Full);
    }
}
