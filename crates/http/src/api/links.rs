//! Download links: create (the URL is shown once), list, revoke, and `GET /d/{token}`, which
//! serves the asset's bytes to whoever holds the URL, through the same download path as the API.

use std::net::IpAddr;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{delete, get, post};
use strongroom_domain::LinkId;
use strongroom_service::{LinkGrant, ListQuery, NewLink, perm};

use super::assets::{asset_id, unprocessable};
use super::{Credential, Route};
use crate::AppState;
use crate::download::{self, Delivery};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Auth, ClientInfo, PageParams};

pub const CREATE: Route = Route {
    method: "POST",
    path: "/api/v1/assets/{asset_id}/links",
    summary: "Create a download link (expiring; optionally single-use or bound to one client \
              address); its URL is shown once",
    auth: Credential::KeyOrSession,
    success: 201,
    errors: &[400, 401, 403, 404, 413, 415, 422],
    query: &[],
    body: Some("json:NewLink"),
    response: Some("CreatedLink"),
    handler: || post(create),
};
pub const LIST: Route = Route {
    method: "GET",
    path: "/api/v1/assets/{asset_id}/links",
    summary: "List an asset's links with their use (never a token)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404],
    query: &["limit", "cursor"],
    body: None,
    response: Some("LinkList"),
    handler: || get(list),
};
pub const REVOKE: Route = Route {
    method: "DELETE",
    path: "/api/v1/links/{link_id}",
    summary: "Revoke a link, effective at once",
    auth: Credential::KeyOrSession,
    success: 204,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: None,
    handler: || delete(revoke),
};
pub const DOWNLOAD: Route = Route {
    method: "GET",
    path: "/d/{token}",
    summary: "The linked asset's bytes, with no other credential; Range -> 206, \
              If-None-Match -> 304; any link that cannot be used is 404",
    auth: Credential::None,
    success: 200,
    errors: &[206, 304, 404, 416],
    query: &[],
    body: None,
    response: Some("bytes"),
    handler: || get(download),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLinkBody {
    #[serde(deserialize_with = "crate::extract::whole_number")]
    expires_in: u64,
    #[serde(default)]
    single_use: bool,
    ip: Option<String>,
    /// An image rendition to serve instead of the original.
    rendition: Option<String>,
}

fn link_id(raw: &str) -> Result<LinkId, ApiError> {
    LinkId::parse(raw).map_err(|_| ApiError::not_found("link"))
}

/// The origin clients reach us at: `public_url` when configured (behind a proxy or CDN), else
/// the origin this request was sent to.
pub(crate) fn client_origin(state: &AppState, uri: &Uri, headers: &HeaderMap) -> String {
    state
        .config
        .public_url
        .clone()
        .or_else(|| request_origin(uri, headers))
        .unwrap_or_default()
}

/// The origin the request was sent to (`https://host:port`), if it names a plausible host.
fn request_origin(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let authority = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })?;
    let plausible = !authority.is_empty()
        && authority.len() <= 255
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    plausible.then(|| format!("https://{authority}"))
}

async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(asset): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewLinkBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let asset = asset_id(&asset)?;
    let ip = body
        .ip
        .map(|raw| {
            raw.trim()
                .parse::<IpAddr>()
                .map_err(|_| unprocessable("ip must be an IPv4 or IPv6 address"))
        })
        .transpose()?;
    let new = NewLink {
        expires_in: body.expires_in,
        single_use: body.single_use,
        ip,
        rendition: body.rendition,
    };
    let authz = state
        .service
        .authz
        .authorize_asset::<perm::LinkCreate>(&p, &asset)
        .await?;
    let created = state.service.content.create_link(&authz, new).await?;
    // The creator reached us at this origin, so the holder of the link can too; behind a proxy
    // or CDN, `public_url` names the origin clients use.
    let origin = client_origin(&state, &uri, &headers);
    let link = created.link;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "id": link.id,
            "url": format!("{origin}/d/{}", created.token.as_str()),
            "expires_at": link.expires_at,
            "asset_id": link.asset_id,
            "single_use": link.single_use,
            "ip": link.ip,
            "rendition": link.rendition,
        })),
    ))
}

async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(asset): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let asset = asset_id(&asset)?;
    let (limit, after) = q.parse()?;
    let q = ListQuery { after, limit };
    // Who makes links or revokes them may list them.
    let page = match state
        .service
        .authz
        .authorize_asset::<perm::LinkCreate>(&p, &asset)
        .await
    {
        Ok(authz) => state.service.content.list_links(&authz, q).await?,
        Err(strongroom_service::ServiceError::Forbidden(_)) => {
            let authz = state
                .service
                .authz
                .authorize_asset::<perm::LinkDelete>(&p, &asset)
                .await?;
            state.service.content.list_links(&authz, q).await?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(super::page_json(page))
}

async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = link_id(&id)?;
    let authz = state.service.authz.authorize_link_revoke(&p, &id).await?;
    state.service.content.revoke_link(&authz).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long, and by whom, a link's response may be kept: never past the link's expiry; a
/// single-use link's not at all; a link bound to one address only by that client, never by a
/// shared cache that would serve it to others.
fn cache_control(grant: &LinkGrant) -> HeaderValue {
    if grant.single_use() {
        return HeaderValue::from_static("no-store");
    }
    let scope = if grant.bound_to_address() {
        "private"
    } else {
        "public"
    };
    HeaderValue::from_str(&format!(
        "{scope}, max-age={}, must-revalidate",
        grant.remaining_secs()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

async fn download(
    State(state): State<AppState>,
    token: Result<Path<String>, PathRejection>,
    client: ClientInfo,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A path that does not even decode is answered like any other unusable link.
    let Ok(Path(token)) = token else {
        return Err(ApiError::not_found("link"));
    };
    let grant = state.service.content.open_link(&token, client.meta).await?;
    let asset = grant.asset().clone();
    let delivery = Delivery {
        cache_control: cache_control(&grant),
        // Whoever holds the URL may embed what it serves, from any site.
        extra: vec![(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        )],
    };
    download::respond(&asset, &method, &headers, delivery, |range| {
        state.service.content.read_link(grant, range)
    })
    .await
}
