//! The HTTP edge: the axum router, its middleware and extractors, problem responses, the
//! HTTPS server (rustls, TLS 1.3 by default) with its timeouts and graceful shutdown, and the
//! Prometheus metrics with their own plain-HTTP listener (`metrics`), off the public port.
//!
//! Handlers are thin: parse the request into typed values, make one service call, render. SQL,
//! crypto and policy never appear here; `Auth` in a handler's signature is what makes a route
//! authenticated, and the service checks the permission.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
mod cursor;
mod download;
pub mod error;
mod extract;
mod idle;
mod layers;
pub mod metrics;
mod range;
pub mod server;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use strongroom_service::Service;

pub use idle::MinBodyRate;
pub use server::{DEFAULT_MIN_BODY_RATE, Limits, Timeouts, serve};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `Contact:` of security.txt (a `mailto:` or `https:` URI).
    pub security_contact: String,
    /// `Policy:` of security.txt.
    pub security_policy_url: String,
    /// `Expires:` of security.txt (RFC 3339).
    pub security_txt_expires: String,
    /// The origin clients reach this server at (`https://files.example.com`, no trailing
    /// slash), for the URLs of links. `None`: the origin the creating request was sent to.
    pub public_url: Option<String>,
    /// How long a non-streaming request may take before it is answered 503 (uploads and
    /// content deliveries are exempt: the body rate and idle rules govern them).
    pub request_deadline: std::time::Duration,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub service: Arc<Service>,
    /// HTTP settings.
    pub config: Arc<HttpConfig>,
}

/// The whole application as a router; `main` and the tests serve exactly this.
pub fn router(state: AppState) -> Router {
    let deadline = layers::Deadline::new(state.config.request_deadline, api::ROUTES);
    api::routes()
        // Per matched route, so the layer knows which route it is (streaming ones are exempt).
        .route_layer(axum::middleware::from_fn_with_state(
            deadline,
            layers::deadline,
        ))
        // Notes the matched route for the access log and the metrics' `route` label.
        .route_layer(axum::middleware::from_fn(layers::note_route))
        .fallback(|| async { error::ApiError::not_found("route") })
        .method_not_allowed_fallback(|req: axum::extract::Request| async move {
            // A known path with a method it does not serve: counted under its route.
            layers::note_matched(&req);
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this method is not allowed on this route",
            )
        })
        // JSON bodies are small; uploads stream past this limit on their own terms.
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(layers::edge))
        .with_state(state)
}
