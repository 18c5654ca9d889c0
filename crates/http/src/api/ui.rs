//! The dashboard: one HTML shell at `/` (and `/invite`, the invitation page) and its static
//! scripts and styles under `/ui/`, all compiled into the binary from `crates/http/ui/`. The
//! page is a small application in plain JavaScript modules (no build step, no framework) that
//! uses only the public API with the session cookie and `X-CSRF-Token`, so what it can do
//! proves what the API can do, and the server refuses whatever the page hides.
//!
//! Every dashboard response carries a strict Content-Security-Policy: scripts, styles, images,
//! media and fetches from this origin only (images and media also from `blob:` URLs the page
//! makes), no inline script or style, no `eval`, no frames.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Credential, Route};
use crate::error::ApiError;

/// The dashboard's policy: nothing from another origin, nothing inline, nothing evaluated.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; worker-src 'self'; \
     style-src 'self'; img-src 'self' blob:; media-src 'self' blob:; connect-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub const INDEX: Route = Route {
    method: "GET",
    path: "/",
    summary: "The dashboard",
    auth: Credential::None,
    success: 200,
    errors: &[304],
    query: &[],
    body: None,
    response: None,
    handler: || get(index),
};
pub const INVITE: Route = Route {
    method: "GET",
    path: "/invite",
    summary: "The invitation page (the token follows `#`, so it never reaches a server log)",
    auth: Credential::None,
    success: 200,
    errors: &[304],
    query: &[],
    body: None,
    response: None,
    handler: || get(index),
};
pub const FILE: Route = Route {
    method: "GET",
    path: "/ui/{*file}",
    summary: "The dashboard's scripts and styles",
    auth: Credential::None,
    success: 200,
    errors: &[304, 404],
    query: &[],
    body: None,
    response: None,
    handler: || get(file),
};

/// One embedded file: its path under `/ui/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $ty:expr),* $(,)?) => {
        &[$(Asset { path: $path, content_type: $ty, bytes: include_bytes!(concat!("../../ui/", $path)) }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the dashboard is made of. The shell is `index.html`; the rest is served under
/// `/ui/` by exactly this name, so no request path ever reaches the file system.
static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => JS,
    "js/lib.js" => JS,
    "js/auth.js" => JS,
    "js/account.js" => JS,
    "js/content.js" => JS,
    "js/asset.js" => JS,
    "js/people.js" => JS,
    "js/keys.js" => JS,
    "js/audit.js" => JS,
    "js/pow.js" => JS,
    "js/trash.js" => JS,
];

/// The file names with their content types and sizes, for the page-weight benchmark.
pub fn asset_sizes() -> Vec<(&'static str, &'static str, usize)> {
    ASSETS
        .iter()
        .map(|a| (a.path, a.content_type, a.bytes.len()))
        .collect()
}

/// A strong validator per file: the first 16 bytes of its SHA-256, computed once.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let hash = strongroom_crypto::digest::sha256(a.bytes);
                let hex: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    tags.get(index).map(String::as_str).unwrap_or("\"\"")
}

fn serve(index: usize, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.get(index) else {
        return ApiError::not_found("file").into_response();
    };
    let tag = etag(index);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let common = [
        (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
        // Revalidated on every load (a cheap 304), so an upgraded server is never mixed with
        // an old script.
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, tag),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let mut res = (common, asset.bytes).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    res
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.path == file) {
        Some(i) if i > 0 => serve(i, &headers),
        _ => ApiError::not_found("file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: &Asset) -> &str {
        std::str::from_utf8(a.bytes).unwrap()
    }

    /// Every module the scripts import (statically, dynamically or as a worker) is embedded,
    /// so a new file cannot be forgotten in `ASSETS` and 404 in the browser.
    #[test]
    fn every_file_the_pages_load_is_embedded() {
        let served: Vec<String> = ASSETS.iter().map(|a| format!("/ui/{}", a.path)).collect();
        let mut wanted = Vec::new();
        for a in ASSETS {
            let t = text(a);
            for (open, base) in [
                ("from \"./", "/ui/js/"),
                ("import(\"./", "/ui/js/"),
                ("new Worker(\"", ""),
                ("src=\"", ""),
                ("href=\"", ""),
            ] {
                let mut rest = t;
                while let Some(at) = rest.find(open) {
                    rest = &rest[at + open.len()..];
                    let name = &rest[..rest.find('"').unwrap()];
                    if name.starts_with("/ui/") || !base.is_empty() {
                        wanted.push(format!("{base}{name}"));
                    }
                }
            }
        }
        assert!(wanted.len() > 10, "the scan found the imports: {wanted:?}");
        for w in wanted {
            assert!(served.contains(&w), "{w} is loaded but not embedded");
        }
    }

    /// Values reach the page as text only: no HTML parsing of strings, no evaluation.
    #[test]
    fn no_script_builds_html_from_strings_or_evaluates_code() {
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            for never in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "setAttribute(\"style",
            ] {
                assert!(!text(a).contains(never), "{} uses {never}", a.path);
            }
        }
        let shell = text(&ASSETS[0]);
        assert!(
            !shell.contains("<script>") && !shell.contains(" style="),
            "inline script or style in the shell"
        );
    }
}
