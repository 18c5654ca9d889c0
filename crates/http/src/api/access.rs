//! Members, custom roles, space grants and invitations.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch, post};
use strongroom_domain::{Email, InvitationId, Name, RoleId, SpaceId, UserId};
use zeroize::Zeroizing;

use strongroom_service::perm;

use super::spaces::org_id;
use super::{Credential, Route};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Auth, ClientInfo};

pub const SET_MEMBER_ROLE: Route = Route {
    method: "PATCH",
    path: "/api/v1/orgs/{org_id}/members/{user_id}",
    summary: "Change a member's role (at once, for their sessions and keys; never the last owner's)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404, 409, 413, 415, 422],
    query: &[],
    body: Some("json:MemberRole"),
    response: Some("MemberRoleResult"),
    handler: || patch(set_member_role),
};
pub const REMOVE_MEMBER: Route = Route {
    method: "DELETE",
    path: "/api/v1/orgs/{org_id}/members/{user_id}",
    summary: "Remove a member: their grants, sessions and keys end at once (never the last owner)",
    auth: Credential::KeyOrSession,
    success: 204,
    errors: &[401, 403, 404, 409],
    query: &[],
    body: None,
    response: None,
    handler: || delete(remove_member),
};
pub const DELETE_ORG: Route = Route {
    method: "DELETE",
    path: "/api/v1/orgs/{org_id}",
    summary: "Delete the organization and everything in it, for good: an owner, signed in and re-authenticated, typing its name; members who belong to it alone are erased with it",
    auth: Credential::Session,
    success: 200,
    errors: &[400, 401, 403, 404, 413, 415, 422],
    query: &[],
    body: Some("json:OrgDeletion"),
    response: Some("OrgDeleted"),
    handler: || delete(delete_org),
};
pub const INVITE: Route = Route {
    method: "POST",
    path: "/api/v1/orgs/{org_id}/invitations",
    summary: "Invite someone by email: they get a single-use link that expires",
    auth: Credential::KeyOrSession,
    success: 201,
    errors: &[400, 401, 403, 404, 409, 413, 415, 422, 503],
    query: &[],
    body: Some("json:NewInvitation"),
    response: Some("Invitation"),
    handler: || post(invite),
};
pub const INVITATIONS: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/invitations",
    summary: "Invitations, newest first, with their status",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: Some("InvitationList"),
    handler: || get(invitations),
};
pub const REVOKE_INVITATION: Route = Route {
    method: "DELETE",
    path: "/api/v1/invitations/{invitation_id}",
    summary: "Withdraw an open invitation: its link stops working at once",
    auth: Credential::KeyOrSession,
    success: 204,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: None,
    handler: || delete(revoke_invitation),
};
pub const ACCEPT_INVITATION: Route = Route {
    method: "POST",
    path: "/api/v1/invitations/accept",
    summary: "Accept an invitation with the token from its link (a new account sets its password here)",
    auth: Credential::None,
    success: 200,
    errors: &[400, 401, 404, 409, 413, 415, 422, 428, 429],
    query: &[],
    body: Some("json:AcceptInvitation"),
    response: Some("Accepted"),
    handler: || post(accept_invitation),
};
pub const ROLES: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/roles",
    summary: "Built-in and custom roles with their permissions",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: Some("RoleList"),
    handler: || get(roles),
};
pub const CREATE_ROLE: Route = Route {
    method: "POST",
    path: "/api/v1/orgs/{org_id}/roles",
    summary: "Define a custom role (only with permissions you hold)",
    auth: Credential::KeyOrSession,
    success: 201,
    errors: &[400, 401, 403, 404, 409, 413, 415, 422],
    query: &[],
    body: Some("json:NewRole"),
    response: Some("Role"),
    handler: || post(create_role),
};
pub const UPDATE_ROLE: Route = Route {
    method: "PATCH",
    path: "/api/v1/orgs/{org_id}/roles/{role_id}",
    summary: "Replace a custom role's permissions (every holder has them from their next request)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404, 413, 415, 422],
    query: &[],
    body: Some("json:RolePermissions"),
    response: Some("Role"),
    handler: || patch(update_role),
};
pub const DELETE_ROLE: Route = Route {
    method: "DELETE",
    path: "/api/v1/orgs/{org_id}/roles/{role_id}",
    summary: "Delete a custom role nobody holds",
    auth: Credential::KeyOrSession,
    success: 204,
    errors: &[401, 403, 404, 409],
    query: &[],
    body: None,
    response: None,
    handler: || delete(delete_role),
};
pub const GRANT: Route = Route {
    method: "POST",
    path: "/api/v1/spaces/{space_id}/grants",
    summary: "Give a member (e.g. a collaborator) a role in this space",
    auth: Credential::KeyOrSession,
    success: 201,
    errors: &[400, 401, 403, 404, 413, 415, 422],
    query: &[],
    body: Some("json:NewGrant"),
    response: Some("Grant"),
    handler: || post(grant),
};
pub const GRANTS: Route = Route {
    method: "GET",
    path: "/api/v1/spaces/{space_id}/grants",
    summary: "Who holds a role in this space",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: Some("GrantList"),
    handler: || get(grants),
};
pub const REVOKE_GRANT: Route = Route {
    method: "DELETE",
    path: "/api/v1/spaces/{space_id}/grants/{user_id}",
    summary: "Take back a member's role in this space",
    auth: Credential::KeyOrSession,
    success: 204,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: None,
    handler: || delete(revoke_grant),
};

fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
}

pub(crate) fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::not_found("member"))
}

fn space_id(raw: &str) -> Result<SpaceId, ApiError> {
    SpaceId::parse(raw).map_err(|_| ApiError::not_found("space"))
}

fn role_id(raw: &str) -> Result<RoleId, ApiError> {
    RoleId::parse(raw).map_err(|_| ApiError::not_found("role"))
}

fn list<T: serde::Serialize>(items: Vec<T>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"items": items, "next_cursor": null}))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberRole {
    role: String,
}

async fn set_member_role(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((org, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberRole>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let org = org_id(&org)?;
    let user = user_id(&user)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::MemberManage>(&p, &org)?;
    state
        .service
        .tenancy
        .set_member_role(&authz, &user, &body.role)
        .await?;
    Ok(Json(
        serde_json::json!({"user_id": user, "role": body.role}),
    ))
}

async fn remove_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((org, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = org_id(&org)?;
    let user = user_id(&user)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::MemberManage>(&p, &org)?;
    state.service.tenancy.remove_member(&authz, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgDeletion {
    confirm: String,
}

async fn delete_org(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<OrgDeletion>,
) -> Result<Json<strongroom_service::OrgDeleted>, ApiError> {
    let org = org_id(&org)?;
    let authz = state.service.authz.authorize_owner(&p, &org).await?;
    let done = state
        .service
        .tenancy
        .delete_org(&authz, &body.confirm)
        .await?;
    Ok(Json(done))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitation {
    email: String,
    role: String,
}

async fn invite(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<NewInvitation>,
) -> Result<(StatusCode, Json<strongroom_service::InvitationInfo>), ApiError> {
    let org = org_id(&org)?;
    let email = Email::parse(&body.email).map_err(|e| unprocessable(e.0))?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::MemberInvite>(&p, &org)?;
    let inv = state
        .service
        .tenancy
        .invite(&authz, email, &body.role)
        .await?;
    Ok((StatusCode::CREATED, Json(inv)))
}

async fn invitations(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let org = org_id(&org)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::MemberInvite>(&p, &org)?;
    Ok(list(state.service.tenancy.list_invitations(&authz).await?))
}

async fn revoke_invitation(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = InvitationId::parse(&id).map_err(|_| ApiError::not_found("invitation"))?;
    let authz = state.service.authz.authorize_invitation_revoke(&p, &id)?;
    state.service.tenancy.revoke_invitation(&authz).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptInvitation {
    token: Zeroizing<String>,
    password: Zeroizing<String>,
    /// A solved proof-of-work challenge, when an earlier attempt answered 428.
    captcha: Option<String>,
}

async fn accept_invitation(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<Json<strongroom_service::Accepted>, ApiError> {
    let done = state
        .service
        .tenancy
        .accept_invitation(
            &body.token,
            body.password,
            body.captcha.as_deref(),
            client.meta,
        )
        .await?;
    Ok(Json(done))
}

async fn roles(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let org = org_id(&org)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::OrgRead>(&p, &org)?;
    Ok(list(state.service.tenancy.list_roles(&authz).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    name: String,
    permissions: Vec<String>,
}

async fn create_role(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<NewRole>,
) -> Result<(StatusCode, Json<strongroom_service::RoleInfo>), ApiError> {
    let org = org_id(&org)?;
    let name = Name::parse(&body.name).map_err(|e| unprocessable(e.0))?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::RoleManage>(&p, &org)?;
    let role = state
        .service
        .tenancy
        .create_role(&authz, name, &body.permissions)
        .await?;
    Ok((StatusCode::CREATED, Json(role)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RolePermissions {
    permissions: Vec<String>,
}

async fn update_role(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((org, role)): Path<(String, String)>,
    ApiJson(body): ApiJson<RolePermissions>,
) -> Result<Json<strongroom_service::RoleInfo>, ApiError> {
    let org = org_id(&org)?;
    let role = role_id(&role)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::RoleManage>(&p, &org)?;
    let updated = state
        .service
        .tenancy
        .update_role(&authz, &role, &body.permissions)
        .await?;
    Ok(Json(updated))
}

async fn delete_role(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((org, role)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let org = org_id(&org)?;
    let role = role_id(&role)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::RoleManage>(&p, &org)?;
    state.service.tenancy.delete_role(&authz, &role).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGrant {
    user_id: String,
    role: String,
}

async fn grant(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(space): Path<String>,
    ApiJson(body): ApiJson<NewGrant>,
) -> Result<(StatusCode, Json<strongroom_service::GrantInfo>), ApiError> {
    let space = space_id(&space)?;
    let user = user_id(&body.user_id)?;
    let authz = state
        .service
        .authz
        .authorize_space_admin::<perm::MemberManage>(&p, &space)
        .await?;
    let g = state
        .service
        .tenancy
        .grant_space(&authz, &user, &body.role)
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

async fn grants(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(space): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let space = space_id(&space)?;
    let authz = state
        .service
        .authz
        .authorize_space_admin::<perm::MemberManage>(&p, &space)
        .await?;
    Ok(list(state.service.tenancy.list_grants(&authz).await?))
}

async fn revoke_grant(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((space, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let space = space_id(&space)?;
    let user = user_id(&user)?;
    let authz = state
        .service
        .authz
        .authorize_space_admin::<perm::MemberManage>(&p, &space)
        .await?;
    state.service.tenancy.revoke_grant(&authz, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
