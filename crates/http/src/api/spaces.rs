//! Spaces of an organization, and a space's settings.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use strongroom_domain::{Name, OrgId, SpaceId};
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

pub const SETTINGS: Route = Route {
    method: "PATCH",
    path: "/api/v1/spaces/{space_id}",
    summary: "Change a space's settings: retention_days (assets go to the trash that many days after upload; null: kept)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404, 413, 415, 422],
    query: &[],
    body: Some("json:SpaceSettings"),
    response: Some("Space"),
    handler: || patch(settings),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceSettings {
    /// Absent: unchanged; null: no rule; else whole days.
    #[serde(default, deserialize_with = "present")]
    retention_days: Option<Option<u64>>,
}

/// Tells an absent member (`None`, by `default`) from an explicit null (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    crate::extract::whole_number_opt(d).map(Some)
}

async fn settings(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(space): Path<String>,
    ApiJson(body): ApiJson<SpaceSettings>,
) -> Result<Json<Space>, ApiError> {
    let space_id = SpaceId::parse(&space).map_err(|_| ApiError::not_found("space"))?;
    let authz = state
        .service
        .authz
        .authorize_space::<perm::SpaceManage>(&p, &space_id)
        .await?;
    match body.retention_days {
        // Nothing to change: the space as it is.
        None => Ok(Json(authz.space().clone().into())),
        // Past u32, the maximum: the service's range check names the bounds.
        Some(days) => {
            let days = days.map(|d| u32::try_from(d).unwrap_or(u32::MAX));
            Ok(Json(
                state.service.content.set_retention(&authz, days).await?,
            ))
        }
    }
}

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
