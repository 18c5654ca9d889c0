//! API keys through the API: create (the secret is shown once), list, rotate, revoke.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use strongroom_domain::{ApiKeyId, Name, SpaceId};
use strongroom_service::{ListQuery, perm};

use super::openapi::MAX_KEY_EXPIRES_IN;
use super::spaces::org_id;
use super::{Credential, Route};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Auth, PageParams};

pub const CREATE: Route = Route {
    method: "POST",
    path: "/api/v1/orgs/{org_id}/api-keys",
    summary: "Create an API key (never above your own role or spaces); the secret is shown once",
    auth: Credential::KeyOrSession,
    success: 201,
    errors: &[400, 401, 403, 404, 413, 415, 422],
    query: &[],
    body: Some("json:NewApiKey"),
    response: Some("CreatedApiKey"),
    handler: || post(create),
};
pub const LIST: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/api-keys",
    summary: "List API keys with their last use (never a secret)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404],
    query: &["limit", "cursor"],
    body: None,
    response: Some("ApiKeyList"),
    handler: || get(list),
};
pub const ROTATE: Route = Route {
    method: "POST",
    path: "/api/v1/api-keys/{key_id}/rotate",
    summary: "Issue a new secret for a key; the old one works until previous_valid_until \
              (optional body {\"grace_secs\"}, default 86400)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404, 409, 413, 422],
    query: &[],
    body: Some("json?:RotateApiKey"),
    response: Some("RotatedApiKey"),
    handler: || post(rotate),
};
pub const REVOKE: Route = Route {
    method: "DELETE",
    path: "/api/v1/api-keys/{key_id}",
    summary: "Revoke an API key (current and previous secret), effective at once",
    auth: Credential::KeyOrSession,
    success: 204,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: None,
    handler: || delete(revoke),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    role: String,
    #[serde(default, deserialize_with = "crate::extract::whole_number_opt")]
    expires_in: Option<u64>,
    spaces: Option<Vec<String>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default, deserialize_with = "crate::extract::whole_number_opt")]
    grace_secs: Option<u64>,
}

fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
}

fn key_id(raw: &str) -> Result<ApiKeyId, ApiError> {
    ApiKeyId::parse(raw).map_err(|_| ApiError::not_found("API key"))
}

async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let org = org_id(&org)?;
    let name = Name::parse(&body.name).map_err(|e| unprocessable(e.0))?;
    if body.expires_in.is_some_and(|s| s > MAX_KEY_EXPIRES_IN) {
        return Err(unprocessable(format!(
            "expires_in must be at most {MAX_KEY_EXPIRES_IN} seconds; omit it for a key that does not expire"
        )));
    }
    // A malformed id is answered like one of another organization: "unknown space".
    let spaces = body
        .spaces
        .map(|ids| {
            ids.iter()
                .map(|id| SpaceId::parse(id).map_err(|_| unprocessable("unknown space")))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let key = state
        .service
        .keys
        .create_api_key(
            &state
                .service
                .authz
                .authorize_org::<perm::ApiKeyManage>(&p, &org)?,
            name,
            &body.role,
            spaces,
            body.expires_in,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({"id": key.id, "api_key": key.api_key.as_str(), "expires_at": key.expires_at}),
        ),
    ))
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
        .keys
        .list_api_keys(
            &state
                .service
                .authz
                .authorize_org::<perm::ApiKeyManage>(&p, &org)?,
            ListQuery { after, limit },
        )
        .await?;
    Ok(super::page_json(page))
}

async fn rotate(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = key_id(&id)?;
    // The body is optional: none at all means the default grace period.
    let body: Rotate = if body.iter().all(u8::is_ascii_whitespace) {
        Rotate::default()
    } else {
        crate::extract::json_object(&body)?
    };
    let authz = state.service.authz.authorize_key_owner(&p, &id).await?;
    let rotated = state
        .service
        .keys
        .rotate_api_key(&authz, body.grace_secs)
        .await?;
    Ok(Json(serde_json::json!({
        "id": rotated.id,
        "api_key": rotated.api_key.as_str(),
        "previous_valid_until": rotated.previous_valid_until,
    })))
}

async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = key_id(&id)?;
    let authz = state.service.authz.authorize_key_manage(&p, &id).await?;
    state.service.keys.revoke_api_key(&authz).await?;
    Ok(StatusCode::NO_CONTENT)
}
