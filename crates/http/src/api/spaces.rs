//! Spaces of an organization.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use strongroom_domain::{Name, OrgId};
use strongroom_service::{ListQuery, Space, perm};

use super::{Credential, Route};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Auth, PageParams};

pub const CREATE: Route = Route {
    method: "POST",
    path: "/api/v1/orgs/{org_id}/spaces",
    summary: "Create a space",
    auth: Credential::KeyOrSession,
    success: 201,
    errors: &[400, 401, 403, 404, 413, 415, 422],
    query: &[],
    body: Some("json:NewSpace"),
    response: Some("Space"),
    handler: || post(create),
};
pub const LIST: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/spaces",
    summary: "List spaces",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404],
    query: &["limit", "cursor"],
    body: None,
    response: Some("SpaceList"),
    handler: || get(list),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSpace {
    name: String,
}

pub(crate) fn org_id(raw: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(raw).map_err(|_| ApiError::not_found("organization"))
}

async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<NewSpace>,
) -> Result<(StatusCode, Json<Space>), ApiError> {
    let org = org_id(&org)?;
    let name = Name::parse(&body.name)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", e.0))?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::SpaceCreate>(&p, &org)?;
    let space = state.service.content.create_space(&authz, name).await?;
    Ok((StatusCode::CREATED, Json(space)))
}

async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let org = org_id(&org)?;
    let (limit, after) = q.parse()?;
    let page = state
        .service
        .content
        .list_spaces(
            &state.service.authz.authorize_member(&p, &org)?,
            ListQuery { after, limit },
        )
        .await?;
    Ok(super::page_json(page))
}
