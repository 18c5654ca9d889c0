//! Middleware every response passes through: request id, access log, security headers, and
//! turning any bare error (from axum itself or a layer) into a problem body.

use std::time::Instant;

use tracing::Instrument;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{PROBLEM_JSON, code_for, problem};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers set on every response unless the handler set a stricter one.
const DEFAULT_HEADERS: &[(&str, &str)] = &[
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    (
        "permissions-policy",
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), microphone=(), payment=(), usb=()",
    ),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-store"),
];

fn request_id() -> String {
    strongroom_crypto::token::random_token(12)
}

/// Request id, access log line, security headers, problem bodies for bare errors.
pub async fn edge(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id();
    let method = req.method().clone();
    // The path only: query strings may carry tokens and never reach the log; neither do the
    // tokens some paths carry.
    let path = loggable_path(req.uri().path());
    let span = tracing::info_span!("request", request_id = %id);
    // Instrumented, not entered: the span must follow the future across await points so every
    // log line of the request (an internal error's cause included) carries its id.
    let mut res = next.run(req).instrument(span).await;
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        res = bare_error_to_problem(res);
    }
    let headers = res.headers_mut();
    for (name, value) in DEFAULT_HEADERS {
        if !headers.contains_key(*name) {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID.clone(), v);
    }
    tracing::info!(
        target: "access",
        request_id = %id,
        method = %method,
        path = %path,
        status = status.as_u16(),
        micros = started.elapsed().as_micros() as u64,
    );
    res
}

/// Path prefixes whose next segment is a bearer token (a link, a playback): logged as `<token>`.
const TOKEN_PATHS: &[&str] = &["/d/", "/hls/"];

/// The path as the access log may show it.
fn loggable_path(path: &str) -> String {
    for prefix in TOKEN_PATHS {
        if let Some(rest) = path.strip_prefix(prefix) {
            let tail = rest.find('/').map_or("", |i| &rest[i..]);
            return format!("{prefix}<token>{tail}");
        }
    }
    path.to_owned()
}

fn bare_error_to_problem(res: Response<Body>) -> Response {
    let status = res.status();
    let code = code_for(status);
    let detail = match code {
        "not_found" => "no such route",
        "method_not_allowed" => "this method is not allowed on this route",
        "payload_too_large" => "the request body is too large",
        "unsupported_media_type" => "unsupported content type",
        "request_timeout" => "the request took too long",
        "range_not_satisfiable" => "the requested range is outside the content",
        "internal_error" => "the server could not complete the request",
        _ => "the request was not valid",
    };
    let mut out = problem(status, code, detail);
    // Keep headers the error carried (Allow on 405, Content-Range on 416).
    for name in [header::ALLOW, header::CONTENT_RANGE, header::RETRY_AFTER] {
        if let Some(v) = res.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn tokens_in_paths_never_reach_the_log() {
        assert_eq!(loggable_path("/d/abcDEF_-123"), "/d/<token>");
        assert_eq!(loggable_path("/d/abc/extra"), "/d/<token>/extra");
        assert_eq!(loggable_path("/d/"), "/d/<token>");
        assert_eq!(
            loggable_path("/hls/tok123/720p/seg00001.ts"),
            "/hls/<token>/720p/seg00001.ts"
        );
        assert_eq!(loggable_path("/api/v1/me"), "/api/v1/me");
        assert_eq!(loggable_path("/download"), "/download");
    }
}
