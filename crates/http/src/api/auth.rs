//! Signing in and out, sessions, password change.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use strongroom_domain::{Email, OrgId, SessionId};
use strongroom_service::LoginRequest;
use zeroize::Zeroizing;

use super::{Credential, Route};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Auth, ClientInfo, DEVICE_COOKIE, SESSION_COOKIE, named_cookie};

pub const LOGIN: Route = Route {
    method: "POST",
    path: "/api/v1/auth/login",
    summary: "Sign in with email and password: sets the session cookie and returns the CSRF token",
    auth: Credential::None,
    success: 200,
    errors: &[400, 401, 403, 413, 415, 422, 428, 429],
    query: &[],
    body: Some("json:Login"),
    response: Some("LoggedIn"),
    handler: || post(login),
};
pub const LOGOUT: Route = Route {
    method: "POST",
    path: "/api/v1/auth/logout",
    summary: "End this session",
    auth: Credential::Session,
    success: 204,
    errors: &[401, 403],
    query: &[],
    body: None,
    response: None,
    handler: || post(logout),
};
pub const SESSIONS: Route = Route {
    method: "GET",
    path: "/api/v1/auth/sessions",
    summary: "Your signed-in sessions",
    auth: Credential::Session,
    success: 200,
    errors: &[401, 403],
    query: &[],
    body: None,
    response: Some("SessionList"),
    handler: || get(sessions),
};
pub const MY_ORGS: Route = Route {
    method: "GET",
    path: "/api/v1/me/orgs",
    summary: "Your email address and the organizations you belong to (sign in again with one's org_id to act there)",
    auth: Credential::Session,
    success: 200,
    errors: &[401, 403],
    query: &[],
    body: None,
    response: Some("MyAccount"),
    handler: || get(my_orgs),
};
pub const MY_EXPORT: Route = Route {
    method: "GET",
    path: "/api/v1/me/export",
    summary: "A zip of your personal data: account, memberships, sessions, API keys' metadata, the audit events by or about you, your uploads' metadata",
    auth: Credential::Session,
    success: 200,
    errors: &[401, 403],
    query: &[],
    body: None,
    response: Some("zip"),
    handler: || get(my_export),
};
pub const ERASE_ME: Route = Route {
    method: "DELETE",
    path: "/api/v1/me",
    summary: "Erase your account: your personal data goes, your organizations keep their content, and your past audit events keep only who, what and when (needs a recent re-authentication; refused while you are an organization's only owner)",
    auth: Credential::Session,
    success: 204,
    errors: &[401, 403, 409],
    query: &[],
    body: None,
    response: None,
    handler: || delete(erase_me),
};
pub const ERASE_MEMBER: Route = Route {
    method: "POST",
    path: "/api/v1/orgs/{org_id}/members/{user_id}/erase",
    summary: "Erase a member's account, as an owner (signed in, re-authenticated): only someone who belongs to this organization alone",
    auth: Credential::Session,
    success: 204,
    errors: &[401, 403, 404, 409, 422],
    query: &[],
    body: None,
    response: None,
    handler: || post(erase_member),
};
pub const REVOKE_SESSION: Route = Route {
    method: "DELETE",
    path: "/api/v1/auth/sessions/{session_id}",
    summary: "Sign out one of your sessions",
    auth: Credential::Session,
    success: 204,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: None,
    handler: || delete(revoke_session),
};
pub const REAUTH: Route = Route {
    method: "POST",
    path: "/api/v1/auth/reauth",
    summary: "Confirm your password in this session (sensitive actions need it within 10 minutes)",
    auth: Credential::Session,
    success: 204,
    errors: &[400, 401, 403, 413, 415, 422, 428, 429],
    query: &[],
    body: Some("json:Reauth"),
    response: None,
    handler: || post(reauth),
};
pub const PASSWORD: Route = Route {
    method: "POST",
    path: "/api/v1/me/password",
    summary: "Change your password (signs out your other sessions)",
    auth: Credential::Session,
    success: 204,
    errors: &[400, 401, 403, 413, 415, 422, 428, 429],
    query: &[],
    body: Some("json:PasswordChange"),
    response: None,
    handler: || post(change_password),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: Zeroizing<String>,
    org_id: Option<String>,
    totp: Option<Zeroizing<String>>,
    recovery_code: Option<Zeroizing<String>>,
    captcha: Option<String>,
}

fn cookie(value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .ok()
}

/// The device cookie: long-lived, so a sign-in from a browser never seen before can be told to
/// the user. It identifies a browser, not a person, and grants nothing.
fn device_cookie(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{DEVICE_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=31536000"
    ))
    .ok()
}

async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    client: ClientInfo,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    // A malformed email cannot match an account: the same answer as a wrong password.
    let email = Email::parse(&body.email)
        .map_err(|_| ApiError::from(strongroom_service::ServiceError::InvalidCredentials))?;
    let org_id = body
        .org_id
        .as_deref()
        .map(OrgId::parse)
        .transpose()
        .map_err(|_| ApiError::from(strongroom_service::ServiceError::InvalidCredentials))?;
    let req = LoginRequest {
        email,
        password: body.password,
        org_id,
        meta: client.meta,
        user_agent: client.user_agent,
        captcha: body.captcha,
        totp: body.totp,
        recovery_code: body.recovery_code,
        device: named_cookie(&headers, DEVICE_COOKIE),
    };
    let done = state.service.identity.login(req).await?;
    let mut res = Json(serde_json::json!({
        "user_id": done.user_id,
        "org_id": done.org_id,
        "session_id": done.session_id,
        "csrf_token": done.csrf_token.as_str(),
    }))
    .into_response();
    if let Some(c) = cookie(&done.cookie_secret, done.max_age_secs) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    if let Some(c) = done.device_cookie.as_deref().and_then(|d| device_cookie(d)) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(res)
}

async fn logout(State(state): State<AppState>, Auth(p): Auth) -> Result<Response, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    state.service.identity.logout(&authz).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Some(c) = cookie("", 0) {
        res.headers_mut().insert(header::SET_COOKIE, c);
    }
    Ok(res)
}

async fn sessions(
    State(state): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<serde_json::Value>, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    let items = state.service.identity.list_sessions(&authz).await?;
    Ok(Json(
        serde_json::json!({"items": items, "next_cursor": null}),
    ))
}

async fn my_orgs(
    State(state): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<strongroom_service::MyAccount>, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    Ok(Json(state.service.identity.my_orgs(&authz).await?))
}

async fn my_export(State(state): State<AppState>, Auth(p): Auth) -> Result<Response, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    let export = state.service.identity.export_my_data(&authz).await?;
    let disposition = format!("attachment; filename=\"{}\"", export.filename);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/zip"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        export.zip,
    )
        .into_response())
}

async fn erase_me(State(state): State<AppState>, Auth(p): Auth) -> Result<Response, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    state.service.identity.erase_me(&authz).await?;
    // The session is gone with the account: the browser forgets its cookie too.
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = cookie("", 0) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

async fn erase_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((org, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = super::spaces::org_id(&org)?;
    let user = super::access::user_id(&user)?;
    let authz = state.service.authz.authorize_owner(&p, &org).await?;
    state.service.identity.erase_member(&authz, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_session(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = SessionId::parse(&id).map_err(|_| ApiError::not_found("session"))?;
    let authz = state.service.authz.authorize_self(&p)?;
    state.service.identity.revoke_session(&authz, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Reauth {
    password: Zeroizing<String>,
    captcha: Option<String>,
}

async fn reauth(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Reauth>,
) -> Result<StatusCode, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    state
        .service
        .identity
        .reauthenticate(&authz, body.password, body.captcha.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: Zeroizing<String>,
    new_password: Zeroizing<String>,
    /// A solved proof-of-work challenge, when an earlier attempt answered 428.
    captcha: Option<String>,
}

async fn change_password(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    state
        .service
        .identity
        .change_password(
            &authz,
            body.current_password,
            body.new_password,
            body.captcha.as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
