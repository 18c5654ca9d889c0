//! Renditions and video playback: an image rendition through the API, per-view playback URLs,
//! and the HLS files behind them (`/hls/{token}/...`), gated by the token on every request.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use strongroom_domain::{AssetId, PlaybackId};

use strongroom_service::perm;

use super::links::client_origin;
use super::{Credential, Route};
use crate::AppState;
use crate::download::{self, Delivery};
use crate::error::ApiError;
use crate::extract::{ApiJson, Auth, ClientInfo};

pub const RENDITION: Route = Route {
    method: "GET",
    path: "/api/v1/assets/{asset_id}/renditions/{name}",
    summary: "An image rendition (thumbnail, preview); Range and ETag as for content",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[206, 304, 401, 403, 404, 416],
    query: &[],
    body: None,
    response: Some("bytes"),
    handler: || get(rendition),
};
pub const PLAYBACK: Route = Route {
    method: "POST",
    path: "/api/v1/assets/{asset_id}/playback",
    summary: "A per-view HLS URL: the playlists, segments and AES key all need its token",
    auth: Credential::KeyOrSession,
    success: 201,
    errors: &[400, 401, 403, 404, 409, 413, 415, 422],
    query: &[],
    body: Some("json:NewPlayback"),
    response: Some("Playback"),
    handler: || post(create_playback),
};
pub const REVOKE_PLAYBACK: Route = Route {
    method: "DELETE",
    path: "/api/v1/playback/{playback_id}",
    summary: "End a view: key delivery stops at once",
    auth: Credential::KeyOrSession,
    success: 204,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: None,
    handler: || delete(revoke_playback),
};
pub const HLS: Route = Route {
    method: "GET",
    path: "/hls/{token}/{*path}",
    summary: "HLS master playlist, variant playlists, encrypted segments and the AES-128 key of one view",
    auth: Credential::None,
    success: 200,
    errors: &[404],
    query: &[],
    body: None,
    response: Some("bytes"),
    handler: || get(hls),
};

/// The master playlist's name in a package (what a player opens first).
const MASTER_PLAYLIST: &str = "master.m3u8";

fn asset_id(raw: &str) -> Result<AssetId, ApiError> {
    AssetId::parse(raw).map_err(|_| ApiError::not_found("asset"))
}

async fn rendition(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((asset, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asset = asset_id(&asset)?;
    let authz = state
        .service
        .authz
        .authorize_asset::<perm::AssetRead>(&p, &asset)
        .await?;
    let view = state.service.content.rendition_meta(&authz, &name).await?;
    let delivery = Delivery {
        cache_control: HeaderValue::from_static("private, no-cache"),
        extra: Vec::new(),
    };
    download::respond(&view, &method, &headers, delivery, |range| {
        state.service.content.read_rendition(&authz, &name, range)
    })
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPlayback {
    #[serde(deserialize_with = "crate::extract::whole_number")]
    expires_in: u64,
}

async fn create_playback(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(asset): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewPlayback>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let asset = asset_id(&asset)?;
    let authz = state
        .service
        .authz
        .authorize_asset::<perm::AssetRead>(&p, &asset)
        .await?;
    let created = state
        .service
        .content
        .create_playback(&authz, body.expires_in)
        .await?;
    let origin = client_origin(&state, &uri, &headers);
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "id": created.id,
            "url": format!("{origin}/hls/{}/{MASTER_PLAYLIST}", created.token.as_str()),
            "expires_at": created.expires_at,
        })),
    ))
}

async fn revoke_playback(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = PlaybackId::parse(&id).map_err(|_| ApiError::not_found("playback"))?;
    let authz = state
        .service
        .authz
        .authorize_playback_revoke(&p, &id)
        .await?;
    state.service.content.revoke_playback(&authz).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn hls(
    State(state): State<AppState>,
    Path((token, path)): Path<(String, String)>,
    client: ClientInfo,
) -> Response {
    match state
        .service
        .content
        .open_hls(&token, &path, client.meta)
        .await
    {
        Ok(file) => {
            let cache = if file.max_age == 0 {
                HeaderValue::from_static("no-store")
            } else {
                HeaderValue::from_str(&format!("private, max-age={}", file.max_age))
                    .unwrap_or(HeaderValue::from_static("no-store"))
            };
            let headers = [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(file.content_type),
                ),
                (header::CACHE_CONTROL, cache),
                (header::CONTENT_LENGTH, HeaderValue::from(file.length)),
                // Any page may play the stream (hls.js fetches with CORS): the token in the
                // path is the only credential, and no cookie is ever involved.
                (
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ),
                (
                    HeaderName::from_static("cross-origin-resource-policy"),
                    HeaderValue::from_static("cross-origin"),
                ),
            ];
            (headers, download::streamed(file.body, "hls".into())).into_response()
        }
        Err(e) => {
            // Every refusal looks the same and is never cached.
            let mut res = ApiError::from(e).into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
    }
}
