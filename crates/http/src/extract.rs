//! Extractors: the authenticated principal, and JSON/query wrappers whose rejections are problems.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use serde::de::DeserializeOwned;
use strongroom_service::{Principal, RequestMeta, SessionCredentials};

use crate::AppState;
use crate::error::ApiError;

/// The caller, authenticated by `Authorization: Bearer <API key>`. A handler that takes `Auth`
/// cannot run for an unauthenticated request; permission checks happen in the service call.
pub struct Auth(pub Principal);

/// The client address the connection came from.
pub fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

impl<S> FromRequestParts<S> for Auth
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let unauthenticated = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid API key (Authorization: Bearer ...) or session is required",
            )
        };
        let meta = RequestMeta {
            ip: client_ip(parts),
        };
        // An Authorization header decides alone: a request carrying a key is never also judged
        // by a cookie the browser happened to send.
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let value = value.to_str().map_err(|_| unauthenticated())?;
            let secret = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(unauthenticated)?
                .trim();
            let principal = state
                .service
                .authz
                .authenticate_api_key(secret, meta)
                .await?;
            crate::layers::note_org(&parts.extensions, &principal.org_id);
            return Ok(Auth(principal));
        }
        let secret = session_cookie(&parts.headers).ok_or_else(unauthenticated)?;
        let creds = SessionCredentials {
            secret: &secret,
            csrf: parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok()),
            unsafe_method: !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS),
        };
        let principal = state
            .service
            .authz
            .authenticate_session(creds, meta)
            .await?;
        crate::layers::note_org(&parts.extensions, &principal.org_id);
        Ok(Auth(principal))
    }
}

/// The session cookie's name. `__Host-` makes browsers accept it only when Secure, with
/// `Path=/` and no `Domain`, so a sibling subdomain cannot plant or overwrite it.
pub const SESSION_COOKIE: &str = "__Host-strongroom_session";

/// The device cookie's name: it tells a browser the user has signed in from before.
pub const DEVICE_COOKIE: &str = "__Host-strongroom_device";

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    named_cookie(headers, SESSION_COOKIE)
}

/// A cookie's value, if the request carries it.
pub fn named_cookie(headers: &axum::http::HeaderMap, cookie: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == cookie)
        .map(|(_, value)| value.to_owned())
}

/// A JSON object body; a wrong content type (415), malformed JSON (400), or JSON that is not an
/// object of the expected shape (422) is a problem response.
pub struct ApiJson<T>(pub T);

/// Whether a `Content-Type` is JSON: `application/json` or `application/<something>+json`.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(essence) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return false;
    };
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

fn rejected(status: StatusCode, detail: String) -> ApiError {
    ApiError::new(status, crate::error::code_for(status), detail)
}

/// Parses a JSON object into `T`. serde would also build a struct from an array of its
/// members' values (`[60]`); the documented body is an object, so anything else is refused.
pub fn json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Err(rejected(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object".into(),
        ));
    }
    axum::Json::<T>::from_bytes(body)
        .map(|axum::Json(v)| v)
        .map_err(|r| rejected(r.status(), r.body_text()))
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(rejected(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Expected request with `Content-Type: application/json`".into(),
            ));
        }
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| rejected(r.status(), r.body_text()))?;
        json_object(&body).map(ApiJson)
    }
}

/// Query parameters; a malformed query string is a problem response.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
        }
    }
}

/// Pagination parameters shared by every list.
#[derive(Debug, serde::Deserialize)]
pub struct PageParams {
    /// At most this many items (default 100, at most 1000).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    /// Validated limit and the decoded cursor.
    pub fn parse(&self) -> Result<(u32, Option<String>), ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit must be between 1 and 1000"));
        }
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(
                crate::cursor::decode(c).ok_or_else(|| ApiError::invalid("cursor is not valid"))?,
            ),
        };
        Ok((limit, after))
    }
}

/// Where a request comes from, for requests made before anyone is authenticated (login).
pub struct ClientInfo {
    /// The client address.
    pub meta: RequestMeta,
    /// The User-Agent header, as sent (shown in the session list).
    pub user_agent: String,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(ClientInfo {
            meta: RequestMeta {
                ip: client_ip(parts),
            },
            user_agent,
        })
    }
}

/// A JSON number that is a whole number: `60`, or `60.0`, which JSON (and JSON Schema's
/// `integer`) take for the same value. Negative, fractional or too large numbers are refused.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a whole number of at least 0")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // 2^64 is exact in f64; every whole f64 below it converts without loss.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(v as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_any(Whole)
}

/// [`whole_number`] for an optional member (`null` or absent: `None`).
pub fn whole_number_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize as _;
    #[derive(serde::Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "whole_number")] u64);
    Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(v)| v))
}
