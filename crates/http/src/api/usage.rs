//! An organization's storage usage and quota.

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::get;
use strongroom_service::{UsageInfo, perm};

use super::spaces::org_id;
use super::{Credential, Route};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Auth;

pub const USAGE: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/usage",
    summary: "Bytes and assets the organization stores, and its quota (null: no limit)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404],
    query: &[],
    body: None,
    response: Some("Usage"),
    handler: || get(usage),
};

async fn usage(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
) -> Result<Json<UsageInfo>, ApiError> {
    let org = org_id(&org)?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::OrgRead>(&p, &org)?;
    Ok(Json(state.service.tenancy.usage(&authz).await?))
}
