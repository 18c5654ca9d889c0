//! Serving an asset's bytes, whoever authorized the download (an API caller or a link): ETag and
//! `If-None-Match`, `Range` and `If-Range`, HEAD, the headers that keep user content from running
//! as a page of ours, and the body stream that cuts the connection on an integrity failure.

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use strongroom_service::{Asset, Content, ServiceError};

use crate::error::ApiError;
use crate::range::{self, RangeRequest};

/// RFC 8187 `attr-char`: everything else in a UTF-8 file name is percent-encoded.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// How one download is answered beyond the content itself.
pub struct Delivery {
    /// `Cache-Control` for the content and for a 304.
    pub cache_control: HeaderValue,
    /// Extra headers (e.g. a `Cross-Origin-Resource-Policy` other than the default).
    pub extra: Vec<(HeaderName, HeaderValue)>,
}

fn etag_of(asset: &Asset) -> String {
    format!("\"{}\"", asset.sha256)
}

fn etag_matches(header: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = header.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// `Content-Disposition: attachment` with an ASCII fallback and the RFC 8187 UTF-8 name.
fn disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(filename, ATTR_CHAR);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Answers a download of `asset` whose metadata the caller was already allowed to see. `open`
/// is called (with `[start, end)`, or `None` for everything) only when bytes are to be sent: not
/// for HEAD, a 304 or a 416, so those neither read nor record anything.
pub async fn respond<F, Fut>(
    asset: &Asset,
    method: &Method,
    headers: &HeaderMap,
    delivery: Delivery,
    open: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<(u64, u64)>) -> Fut,
    Fut: Future<Output = Result<Content, ServiceError>>,
{
    let etag = etag_of(asset);
    let mut out = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Only ever a download, never a page of ours: even text/html uploads cannot run script.
    out.insert(
        header::CONTENT_DISPOSITION,
        disposition(asset.filename.as_str()),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'"),
    );
    out.insert(header::CACHE_CONTROL, delivery.cache_control);
    for (name, value) in delivery.extra {
        out.insert(name, value);
    }
    if etag_matches(headers.get(header::IF_NONE_MATCH), &etag) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // If-Range with a different validator: the client's copy changed, send it all.
    let range_header = match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(tag) if tag.trim() != etag => None,
        _ => range_header,
    };
    let (status, range) = match range::parse(range_header, asset.size) {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(s, e) => (StatusCode::PARTIAL_CONTENT, Some((s, e))),
        RangeRequest::Unsatisfiable => {
            let mut err = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the asset has {} bytes", asset.size),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", asset.size)) {
                err.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(err);
        }
    };
    let (start, end) = range.unwrap_or((0, asset.size));
    if let Ok(v) = HeaderValue::from_str(&asset.content_type) {
        out.insert(header::CONTENT_TYPE, v);
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {start}-{}/{}",
            end.saturating_sub(1),
            asset.size
        ))
    {
        out.insert(header::CONTENT_RANGE, v);
    }
    if method == Method::HEAD {
        // Headers only: no byte is decrypted or sent, so no read is recorded.
        return Ok((status, out).into_response());
    }
    let content = open(range).await?;
    Ok((status, out, streamed(content.body, asset.id.to_string())).into_response())
}

/// A response body of decrypted bytes. An integrity failure midway cannot change the status line
/// any more: it is logged and cuts the connection, so the client sees a truncated transfer
/// rather than wrong bytes.
pub fn streamed(body: strongroom_service::ByteStream, asset_id: String) -> Body {
    Body::from_stream(body.map(move |item| {
        item.map_err(|e| {
            tracing::error!(asset = %asset_id, error = %e, "integrity failure while streaming; connection cut");
            std::io::Error::other("integrity failure")
        })
    }))
}
