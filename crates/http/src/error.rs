//! `application/problem+json` (RFC 9457) for every error the server sends.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use strongroom_service::ServiceError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error response: status, stable `code`, and a detail safe to show.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code clients can match on.
    pub code: &'static str,
    /// Human explanation; never internal details or secrets.
    pub detail: String,
    /// Seconds after which to retry (sent as `Retry-After`).
    pub retry_after: Option<u64>,
    /// A proof-of-work challenge to solve (member `challenge` of the problem).
    pub challenge: Option<String>,
}

impl ApiError {
    /// A problem with this status, code and detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 404 `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

/// The stable code for a status produced by the framework rather than by a use case.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::RANGE_NOT_SATISFIABLE => "range_not_satisfiable",
        s if s.is_server_error() => "internal_error",
        _ => "invalid_request",
    }
}

/// Renders a problem body; used by `ApiError` and by the middleware that rewrites bare errors.
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    problem_with(status, code, detail, None)
}

/// A problem body with extension members (RFC 9457 §3.2), e.g. a captcha `challenge`.
fn problem_with(status: StatusCode, code: &str, detail: &str, challenge: Option<&str>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut body = serde_json::json!({
        "type": format!("urn:strongroom:problem:{code}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    if let Some(c) = challenge {
        body["challenge"] = serde_json::json!(c);
    }
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = problem_with(
            self.status,
            self.code,
            &self.detail,
            self.challenge.as_deref(),
        );
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The generic 500 for a failure whose cause is for the log only: logged once here, with every
/// cause in the chain, inside the request's span (which carries the request id).
fn internal(cause: &dyn std::error::Error) -> ApiError {
    let mut chain = cause.to_string();
    let mut source = cause.source();
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    tracing::error!(error = %chain, "internal error");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the server could not complete the request",
    )
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthenticated => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            ServiceError::Forbidden(_) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", e.to_string())
            }
            ServiceError::ReauthRequired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "reauthentication_required",
                e.to_string(),
            ),
            ServiceError::MfaRequired => {
                ApiError::new(StatusCode::UNAUTHORIZED, "mfa_required", e.to_string())
            }
            ServiceError::MfaEnrolmentRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_enrolment_required",
                e.to_string(),
            ),
            ServiceError::RateLimited { retry_after_secs } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string())
            },
            ServiceError::CaptchaRequired { ref challenge } => ApiError {
                challenge: Some(challenge.clone()),
                ..ApiError::new(
                    StatusCode::PRECONDITION_REQUIRED,
                    "captcha_required",
                    e.to_string(),
                )
            },
            ServiceError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                e.to_string(),
            ),
            ServiceError::CsrfRejected => {
                ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", e.to_string())
            }
            ServiceError::WeakPassword(reason) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "weak_password", reason)
            }
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Invalid(msg) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", msg)
            }
            ServiceError::QuotaExceeded(msg) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded", msg)
            }
            ServiceError::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            ServiceError::Conflict(msg) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            ServiceError::Unavailable(msg) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", msg)
            }
            ServiceError::Integrity(ref cause) => {
                tracing::error!(error = %cause, "integrity failure on stored data");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "integrity_error",
                    "stored data failed its integrity check; the operator has been alerted in the server log",
                )
            }
            ServiceError::Busy(ref cause) => {
                tracing::warn!(error = %cause, "database busy; answered 503");
                ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        "the server is busy; try again in a second",
                    )
                }
            }
            ServiceError::Store(ref cause) => internal(cause),
            ServiceError::Blob(ref cause) => internal(cause),
            ServiceError::Internal(cause) => {
                // Logged once here, with the request id from the surrounding span.
                tracing::error!(error = %cause, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the server could not complete the request",
                )
            }
        }
    }
}
