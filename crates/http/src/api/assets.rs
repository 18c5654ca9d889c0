//! Assets: streaming upload (raw body or multipart), metadata, content with Range and ETag,
//! delete to the trash, restore, purge.

use axum::Json;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{delete, get, post};
use strongroom_domain::{AssetId, Filename, SpaceId};
use strongroom_service::{Asset, ListQuery, NewUpload, perm};

use super::{Credential, Route};
use crate::AppState;
use crate::download::{self, Delivery};
use crate::error::ApiError;
use crate::extract::{ApiQuery, Auth, PageParams};

pub const UPLOAD: Route = Route {
    method: "POST",
    path: "/api/v1/spaces/{space_id}/assets",
    summary: "Upload an asset: raw body with ?filename=, or multipart/form-data field \"file\"",
    auth: Credential::KeyOrSession,
    success: 201,
    errors: &[400, 401, 403, 404, 413, 422],
    query: &["filename"],
    body: Some("bytes"),
    response: Some("AssetDetail"),
    handler: || post(upload).layer(DefaultBodyLimit::disable()),
};
pub const LIST: Route = Route {
    method: "GET",
    path: "/api/v1/spaces/{space_id}/assets",
    summary: "List a space's assets",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404],
    query: &["limit", "cursor"],
    body: None,
    response: Some("AssetList"),
    handler: || get(list),
};
pub const GET: Route = Route {
    method: "GET",
    path: "/api/v1/assets/{asset_id}",
    summary: "An asset's metadata, processing status and renditions",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: Some("AssetDetail"),
    handler: || get(metadata),
};
pub const CONTENT: Route = Route {
    method: "GET",
    path: "/api/v1/assets/{asset_id}/content",
    summary: "An asset's bytes; Range -> 206, If-None-Match -> 304",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[206, 304, 401, 403, 404, 416],
    query: &[],
    body: None,
    response: Some("bytes"),
    handler: || get(content),
};
pub const DELETE: Route = Route {
    method: "DELETE",
    path: "/api/v1/assets/{asset_id}",
    summary: "Delete an asset to its space's trash; with ?purge=true (asset:purge), crypto-shred it now, from the space or the trash",
    auth: Credential::KeyOrSession,
    success: 204,
    errors: &[400, 401, 403, 404],
    query: &["purge"],
    body: None,
    response: None,
    handler: || delete(remove),
};
pub const TRASH: Route = Route {
    method: "GET",
    path: "/api/v1/spaces/{space_id}/trash",
    summary: "A space's trash: deleted assets, restorable until the organization's grace period ends",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404],
    query: &["limit", "cursor"],
    body: None,
    response: Some("AssetList"),
    handler: || get(trash),
};
pub const RESTORE: Route = Route {
    method: "POST",
    path: "/api/v1/assets/{asset_id}/restore",
    summary: "Bring an asset back from its space's trash",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: Some("Asset"),
    handler: || post(restore),
};

fn space_id(raw: &str) -> Result<SpaceId, ApiError> {
    SpaceId::parse(raw).map_err(|_| ApiError::not_found("space"))
}

pub(super) fn asset_id(raw: &str) -> Result<AssetId, ApiError> {
    AssetId::parse(raw).map_err(|_| ApiError::not_found("asset"))
}

pub(super) fn unprocessable(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", detail)
}

/// A media type we are willing to store and echo back: `type/subtype` plus parameters, printable
/// ASCII, bounded.
fn content_type(raw: Option<&str>) -> Result<String, ApiError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok("application/octet-stream".into());
    };
    let essence = raw.split(';').next().unwrap_or_default().trim();
    let valid = raw.len() <= 255
        && raw.bytes().all(|b| (0x20..0x7f).contains(&b))
        && matches!(essence.split_once('/'), Some((t, s)) if !t.is_empty() && !s.is_empty()
            && (t.to_owned() + s).bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b)));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::invalid(format!(
            "{raw:?} is not a valid media type"
        )))
    }
}

fn multipart_error(status: StatusCode, detail: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(status, "payload_too_large", detail)
    } else {
        ApiError::invalid(format!("the multipart body is malformed: {detail}"))
    }
}

#[derive(serde::Deserialize)]
struct UploadParams {
    filename: Option<String>,
}

async fn upload(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(space): Path<String>,
    ApiQuery(params): ApiQuery<UploadParams>,
    req: Request,
) -> Result<(StatusCode, Json<strongroom_service::AssetDetail>), ApiError> {
    let space_id = space_id(&space)?;
    // Authorized, and the space resolved, before a single byte of the body is read.
    let authz = state
        .service
        .authz
        .authorize_space::<perm::AssetCreate>(&p, &space_id)
        .await?;
    let limit = state.service.config().max_upload_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(64 * 1024)) {
        // Refuse before reading: the declared size alone is over the limit.
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the upload exceeds the limit of {limit} bytes"),
        ));
    }
    let raw_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_multipart = raw_type.as_deref().is_some_and(|t| {
        t.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    });
    let asset = if is_multipart {
        let mut form = Multipart::from_request(req, &state)
            .await
            .map_err(|e| multipart_error(e.status(), e.body_text()))?;
        loop {
            let field = form
                .next_field()
                .await
                .map_err(|e| multipart_error(e.status(), e.body_text()))?;
            let Some(field) = field else {
                return Err(ApiError::invalid(
                    "the multipart body has no \"file\" field",
                ));
            };
            if field.name() != Some("file") {
                continue;
            }
            let name = params
                .filename
                .clone()
                .or_else(|| field.file_name().map(str::to_owned))
                .unwrap_or_else(|| "upload".into());
            let filename = Filename::parse(&name).map_err(|e| unprocessable(e.0))?;
            let content_type = content_type(field.content_type())?;
            let stream = futures_util::stream::unfold(field, |mut f| async move {
                match f.chunk().await {
                    Ok(Some(c)) => Some((Ok(c), f)),
                    Ok(None) => None,
                    Err(e) => Some((Err(e.body_text()), f)),
                }
            });
            let upload = NewUpload {
                filename,
                content_type,
                size: None,
            };
            break state
                .service
                .content
                .upload(&authz, upload, Box::pin(stream))
                .await?;
        }
    } else {
        let name = params.filename.ok_or_else(|| {
            ApiError::invalid("the filename query parameter is required for a raw upload")
        })?;
        let filename = Filename::parse(&name).map_err(|e| unprocessable(e.0))?;
        let content_type = content_type(raw_type.as_deref())?;
        let stream = req.into_body().into_data_stream();
        state
            .service
            .content
            .upload(
                &authz,
                NewUpload {
                    filename,
                    content_type,
                    size: declared,
                },
                stream,
            )
            .await?
    };
    Ok((StatusCode::CREATED, Json(asset)))
}

async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(space): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let space_id = space_id(&space)?;
    let (limit, after) = q.parse()?;
    let authz = state
        .service
        .authz
        .authorize_space::<perm::AssetRead>(&p, &space_id)
        .await?;
    let page = state
        .service
        .content
        .list_assets(&authz, ListQuery { after, limit })
        .await?;
    Ok(super::page_json(page))
}

async fn metadata(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<strongroom_service::AssetDetail>, ApiError> {
    let id = asset_id(&id)?;
    let authz = state
        .service
        .authz
        .authorize_asset::<perm::AssetRead>(&p, &id)
        .await?;
    Ok(Json(state.service.content.asset_detail(&authz).await?))
}

async fn content(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = asset_id(&id)?;
    let authz = state
        .service
        .authz
        .authorize_asset::<perm::AssetRead>(&p, &id)
        .await?;
    let asset = state.service.content.get_asset(&authz);
    let delivery = Delivery {
        // A signed-in caller's copy: never in a shared cache, revalidated on every use.
        cache_control: HeaderValue::from_static("private, no-cache"),
        extra: Vec::new(),
    };
    download::respond(&asset, &method, &headers, delivery, |range| {
        state.service.content.read_content(&authz, range)
    })
    .await
}

#[derive(serde::Deserialize)]
struct DeleteParams {
    #[serde(default)]
    purge: bool,
}

async fn remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let id = asset_id(&id)?;
    let authz = &state.service.authz;
    if q.purge {
        let proof = authz.authorize_purge(&p, &id).await?;
        state.service.content.purge_asset(&proof).await?;
    } else {
        let proof = authz.authorize_asset::<perm::AssetDelete>(&p, &id).await?;
        state.service.content.delete_asset(&proof).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn trash(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(space): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let space_id = space_id(&space)?;
    let (limit, after) = q.parse()?;
    let authz = state
        .service
        .authz
        .authorize_space::<perm::AssetDelete>(&p, &space_id)
        .await?;
    let page = state
        .service
        .content
        .list_trash(&authz, ListQuery { after, limit })
        .await?;
    Ok(super::page_json(page))
}

async fn restore(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Asset>, ApiError> {
    let id = asset_id(&id)?;
    let authz = state
        .service
        .authz
        .authorize_trashed_asset::<perm::AssetDelete>(&p, &id)
        .await?;
    Ok(Json(state.service.content.restore_asset(&authz).await?))
}
