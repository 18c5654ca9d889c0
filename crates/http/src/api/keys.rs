//! API keys created and revoked through the API.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use strongroom_domain::{ApiKeyId, Name, Role};

use super::Route;
use super::spaces::org_id;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Auth};

pub const CREATE: Route = Route {
    method: "POST",
    path: "/api/v1/orgs/{org_id}/api-keys",
    summary: "Create an API key (never above your own role); the secret is shown once",
    auth: true,
    success: 201,
    body: Some("json:NewApiKey"),
    response: Some("CreatedApiKey"),
    handler: || post(create),
};
pub const REVOKE: Route = Route {
    method: "DELETE",
    path: "/api/v1/api-keys/{key_id}",
    summary: "Revoke an API key, effective at once",
    auth: true,
    success: 204,
    body: None,
    response: None,
    handler: || delete(revoke),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    role: String,
    expires_in: Option<u64>,
    spaces: Option<Vec<String>>,
}

fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
}

async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org): Path<String>,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let org = org_id(&org)?;
    let name = Name::parse(&body.name).map_err(|e| unprocessable(e.0))?;
    let role: Role = body.role.parse().map_err(unprocessable)?;
    if body.spaces.is_some() {
        // Refuse rather than silently create a broader key than asked for.
        return Err(unprocessable(
            "space-limited keys are not available yet; omit \"spaces\"",
        ));
    }
    let key = state
        .service
        .create_api_key(&p, &org, name, role, body.expires_in)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({"id": key.id, "api_key": key.api_key.as_str(), "expires_at": key.expires_at}),
        ),
    ))
}

async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = ApiKeyId::parse(&id).map_err(|_| ApiError::not_found("API key"))?;
    state.service.revoke_api_key(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
