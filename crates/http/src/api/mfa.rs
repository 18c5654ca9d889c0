//! Two-factor authentication, the member list, and the organization policy that requires it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use zeroize::Zeroizing;

use strongroom_service::perm;

use super::spaces::org_id;
use super::{Credential, Route};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Auth};

pub const ENROL: Route = Route {
    method: "POST",
    path: "/api/v1/me/mfa/totp",
    summary: "Start TOTP enrolment: the secret, an otpauth:// URI and a QR code (not active until confirmed)",
    auth: Credential::Session,
    success: 200,
    errors: &[401, 403, 409],
    query: &[],
    body: None,
    response: Some("TotpEnrolment"),
    handler: || post(enrol),
};
pub const CONFIRM: Route = Route {
    method: "POST",
    path: "/api/v1/me/mfa/totp/confirm",
    summary: "Activate TOTP with a code from the app; returns 10 single-use recovery codes (shown once)",
    auth: Credential::Session,
    success: 200,
    errors: &[400, 401, 403, 409, 413, 415, 422],
    query: &[],
    body: Some("json:TotpConfirm"),
    response: Some("RecoveryCodes"),
    handler: || post(confirm),
};
pub const DISABLE: Route = Route {
    method: "POST",
    path: "/api/v1/me/mfa/totp/disable",
    summary: "Turn TOTP off (needs the password)",
    auth: Credential::Session,
    success: 204,
    errors: &[400, 401, 403, 413, 415, 422, 428, 429],
    query: &[],
    body: Some("json:PasswordConfirm"),
    response: None,
    handler: || post(disable),
};
pub const MEMBERS: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/members",
    summary: "Members with their role and whether two-factor authentication is on",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: Some("MemberList"),
    handler: || get(members),
};
pub const ORG: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}",
    summary: "The organization: name, data-residency region, security policy, any move to another region",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: Some("Org"),
    handler: || get(org),
};
pub const POLICY: Route = Route {
    method: "PATCH",
    path: "/api/v1/orgs/{org_id}",
    summary: "Organization security policy (require_mfa, session timeouts)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404, 413, 415, 422],
    query: &[],
    body: Some("json:OrgPolicy"),
    response: Some("OrgPolicyResult"),
    handler: || patch(policy),
};

async fn enrol(
    State(state): State<AppState>,
    Auth(p): Auth,
) -> Result<Json<serde_json::Value>, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    let e = state.service.identity.enrol_totp(&authz).await?;
    Ok(Json(serde_json::json!({
        "secret": e.secret.as_str(),
        "otpauth_uri": e.otpauth_uri.as_str(),
        "qr_svg": e.qr_svg.as_str(),
    })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Confirm {
    code: Zeroizing<String>,
}

async fn confirm(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Confirm>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    let codes = state
        .service
        .identity
        .confirm_totp(&authz, &body.code)
        .await?;
    let codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    Ok(Json(serde_json::json!({"recovery_codes": codes})))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordConfirm {
    password: Zeroizing<String>,
    /// A solved proof-of-work challenge, when an earlier attempt answered 428.
    captcha: Option<String>,
}

async fn disable(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<PasswordConfirm>,
) -> Result<StatusCode, ApiError> {
    let authz = state.service.authz.authorize_self(&p)?;
    state
        .service
        .identity
        .disable_totp(&authz, body.password, body.captcha.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let org = org_id(&org)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::MemberManage>(&p, &org)?;
    let items = state.service.tenancy.list_members(&authz).await?;
    Ok(Json(
        serde_json::json!({"items": items, "next_cursor": null}),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    require_mfa: Option<bool>,
    #[serde(default, deserialize_with = "crate::extract::whole_number_opt")]
    session_idle_secs: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::whole_number_opt")]
    session_absolute_secs: Option<u64>,
    #[serde(default, deserialize_with = "crate::extract::whole_number_opt")]
    trash_days: Option<u64>,
}

async fn org(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
) -> Result<Json<strongroom_service::OrgDetail>, ApiError> {
    let org = org_id(&org)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::OrgRead>(&p, &org)?;
    Ok(Json(state.service.tenancy.org_detail(&authz).await?))
}

async fn policy(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<Policy>,
) -> Result<Json<strongroom_service::OrgPolicy>, ApiError> {
    let org = org_id(&org)?;
    // Past any bound, so the service refuses it with the range.
    let secs = |v: Option<u64>| v.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
    let authz = state
        .service
        .authz
        .authorize_org::<perm::OrgManage>(&p, &org)?;
    let change = strongroom_service::PolicyChange {
        require_mfa: body.require_mfa,
        session_idle_secs: secs(body.session_idle_secs),
        session_absolute_secs: secs(body.session_absolute_secs),
        trash_days: secs(body.trash_days),
    };
    Ok(Json(
        state.service.tenancy.set_policy(&authz, change).await?,
    ))
}
