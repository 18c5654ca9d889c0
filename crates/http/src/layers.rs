//! Middleware every response passes through: request id, access log, HTTP metrics, security
//! headers, a 408 for a body cut off as too slow, and turning any bare error (from axum itself or
//! a layer) into a problem body; the deadline of non-streaming requests; and the note of the
//! matched route (and the caller's organization) that the access log and the metrics read.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tracing::Instrument;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::Route;
use crate::error::{PROBLEM_JSON, code_for, problem};
use crate::idle::BodyCut;
use crate::metrics::{self, Counted, Sink};

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

/// What the layers below the edge learn about a request for its access-log line and its
/// metrics: the route it matched (once routing ran) and the caller's organization (once the
/// `Auth` extractor authenticated it). The edge puts one in each request's extensions.
#[derive(Clone, Default)]
pub(crate) struct RequestNote(Arc<NoteInner>);

#[derive(Default)]
struct NoteInner {
    route: OnceLock<&'static str>,
    org: OnceLock<String>,
}

impl RequestNote {
    /// The route template the request matched, if any.
    fn route(&self) -> Option<&'static str> {
        self.0.route.get().copied()
    }

    /// The caller's organization, once authenticated.
    fn org(&self) -> Option<&str> {
        self.0.org.get().map(String::as_str)
    }
}

/// Notes the organization the request's caller acts in (for the access log).
pub(crate) fn note_org(extensions: &axum::http::Extensions, org: &strongroom_domain::OrgId) {
    if let Some(note) = extensions.get::<RequestNote>() {
        let _ = note.0.org.set(org.to_string());
    }
}

/// Notes the route template a request matched, as the `'static` string of the route table (a
/// label value that never holds an id or a token). Returns the matched route.
pub(crate) fn note_matched(req: &Request) -> Option<&'static crate::api::Route> {
    let matched = req.extensions().get::<MatchedPath>()?.as_str();
    let method = if req.method() == Method::HEAD {
        "GET"
    } else {
        req.method().as_str()
    };
    let mut on_path = crate::api::ROUTES.iter().filter(|r| r.path == matched);
    let first = on_path.clone().next()?;
    if let Some(note) = req.extensions().get::<RequestNote>() {
        let _ = note.0.route.set(first.path);
    }
    on_path.find(|r| r.method == method)
}

/// Per matched route: notes the route, and counts an upload in flight while its handler runs.
pub async fn note_route(req: Request, next: Next) -> Response {
    let route = note_matched(&req);
    let _upload = route
        .filter(|r| r.body == Some("bytes"))
        .map(|_| metrics::UploadInFlight::start());
    next.run(req).await
}

/// Request id, access log line, metrics, security headers, problem bodies for bare errors.
pub async fn edge(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id();
    let method = req.method().clone();
    // The path only: query strings may carry tokens and never reach the log; neither do the
    // tokens some paths carry.
    let path = loggable_path(req.uri().path());
    let span = tracing::info_span!("request", request_id = %id);
    let cut = req.extensions().get::<BodyCut>().cloned();
    let version = req.version();
    let note = RequestNote::default();
    let mut req = req;
    req.extensions_mut().insert(note.clone());
    // Request bytes are counted as the handler reads them; by then routing has run and the
    // note says which route's they are.
    let req = {
        let note = note.clone();
        req.map(move |body| {
            let sink = Sink::Later(Box::new(move || {
                metrics::request_bytes(note.route().unwrap_or(metrics::UNMATCHED))
            }));
            Body::new(Counted::new(body, sink))
        })
    };
    // Instrumented, not entered: the span must follow the future across await points so every
    // log line of the request (an internal error's cause included) carries its id.
    let mut res = next.run(req).instrument(span).await;
    if cut.is_some_and(|c| c.is_cut()) && !res.status().is_success() {
        // The handler failed because the body was cut off for being too slow: say so, whatever
        // error the handler made of it, and do not wait for the rest of that body.
        res = problem(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body arrived too slowly and was cut off; nothing was stored",
        );
        if version < Version::HTTP_2 {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
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
    let elapsed = started.elapsed();
    let route = note.route().unwrap_or(metrics::UNMATCHED);
    metrics::record_request(route, &method, status, elapsed);
    tracing::info!(
        target: "access",
        request_id = %id,
        method = %method,
        path = %path,
        route = route,
        org = note.org(),
        status = status.as_u16(),
        micros = elapsed.as_micros() as u64,
    );
    let sink = Sink::Known(metrics::response_bytes(route));
    res.map(|body| Body::new(Counted::new(body, sink)))
}

/// Seconds a client is told to wait (`Retry-After`) after a request passed its deadline.
const DEADLINE_RETRY_AFTER_SECS: u64 = 5;

/// The whole-request deadline, and the routes exempt from it.
#[derive(Debug, Clone)]
pub struct Deadline {
    limit: Duration,
    /// `(method, path)` of the streaming routes: an upload body or a content response.
    streaming: Vec<(&'static str, &'static str)>,
}

impl Deadline {
    /// A deadline of `limit` for every route of `routes` but the streaming ones: those whose
    /// request or response body is raw bytes (uploads, content, renditions, links, HLS, the
    /// audit export).
    pub fn new(limit: Duration, routes: &[Route]) -> Deadline {
        let streaming = routes
            .iter()
            .filter(|r| {
                r.body == Some("bytes") || matches!(r.response, Some("bytes") | Some("ndjson"))
            })
            .map(|r| (r.method, r.path))
            .collect();
        Deadline { limit, streaming }
    }

    fn exempt(&self, method: &Method, path: &str) -> bool {
        // HEAD is served by the GET route.
        let method = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        self.streaming
            .iter()
            .any(|(m, p)| *m == method && *p == path)
    }
}

/// Answers 503 with `Retry-After` when a non-streaming request takes longer than its deadline.
/// The handler is dropped there: its transaction, not committed, rolls back.
pub async fn deadline(State(d): State<Deadline>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    if route.as_deref().is_some_and(|p| d.exempt(req.method(), p)) {
        return next.run(req).await;
    }
    match tokio::time::timeout(d.limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::warn!(
                route = route.as_deref().unwrap_or("?"),
                deadline_secs = d.limit.as_secs_f64(),
                "request passed its deadline: abandoned"
            );
            let mut res = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "deadline_exceeded",
                &format!(
                    "the request took longer than the server's {} s deadline; try again later",
                    d.limit.as_secs_f64()
                ),
            );
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(DEADLINE_RETRY_AFTER_SECS),
            );
            res
        }
    }
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
    use super::*;

    #[test]
    fn exactly_the_streaming_routes_are_exempt_from_the_deadline() {
        let d = Deadline::new(Duration::from_secs(1), crate::api::ROUTES);
        let mut exempt = d.streaming.clone();
        exempt.sort();
        assert_eq!(
            exempt,
            [
                ("GET", "/api/v1/assets/{asset_id}/content"),
                ("GET", "/api/v1/assets/{asset_id}/renditions/{name}"),
                ("GET", "/api/v1/orgs/{org_id}/audit/export"),
                ("GET", "/d/{token}"),
                ("GET", "/hls/{token}/{*path}"),
                ("POST", "/api/v1/spaces/{space_id}/assets"),
            ]
        );
        assert!(d.exempt(&Method::HEAD, "/d/{token}"));
        assert!(!d.exempt(&Method::GET, "/api/v1/spaces/{space_id}/assets"));
        assert!(!d.exempt(&Method::POST, "/api/v1/orgs/{org_id}/spaces"));
    }

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
