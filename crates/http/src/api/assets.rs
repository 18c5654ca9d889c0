//! Assets: streaming upload (raw body or multipart), metadata, content with Range and ETag,
//! delete.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use futures_util::StreamExt;
use strongroom_domain::{AssetId, Filename, SpaceId};
use strongroom_service::{Asset, ListQuery, NewUpload};

use super::Route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiQuery, Auth, PageParams};
use crate::range::{self, RangeRequest};

pub const UPLOAD: Route = Route {
    method: "POST",
    path: "/api/v1/spaces/{space_id}/assets",
    summary: "Upload an asset: raw body with ?filename=, or multipart/form-data field \"file\"",
    auth: true,
    success: 201,
    body: Some("bytes"),
    response: Some("Asset"),
    handler: || post(upload).layer(DefaultBodyLimit::disable()),
};
pub const LIST: Route = Route {
    method: "GET",
    path: "/api/v1/spaces/{space_id}/assets",
    summary: "List a space's assets",
    auth: true,
    success: 200,
    body: None,
    response: Some("AssetList"),
    handler: || get(list),
};
pub const GET: Route = Route {
    method: "GET",
    path: "/api/v1/assets/{asset_id}",
    summary: "An asset's metadata",
    auth: true,
    success: 200,
    body: None,
    response: Some("Asset"),
    handler: || get(metadata),
};
pub const CONTENT: Route = Route {
    method: "GET",
    path: "/api/v1/assets/{asset_id}/content",
    summary: "An asset's bytes; Range -> 206, If-None-Match -> 304",
    auth: true,
    success: 200,
    body: None,
    response: Some("bytes"),
    handler: || get(content),
};
pub const DELETE: Route = Route {
    method: "DELETE",
    path: "/api/v1/assets/{asset_id}",
    summary: "Delete an asset (its data key is destroyed)",
    auth: true,
    success: 204,
    body: None,
    response: None,
    handler: || delete(remove),
};

fn space_id(raw: &str) -> Result<SpaceId, ApiError> {
    SpaceId::parse(raw).map_err(|_| ApiError::not_found("space"))
}

fn asset_id(raw: &str) -> Result<AssetId, ApiError> {
    AssetId::parse(raw).map_err(|_| ApiError::not_found("asset"))
}

fn unprocessable(detail: impl Into<String>) -> ApiError {
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

/// RFC 8187 `attr-char`: everything else in a UTF-8 file name is percent-encoded.
const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

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
) -> Result<(StatusCode, Json<Asset>), ApiError> {
    let space_id = space_id(&space)?;
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
                space_id,
                filename,
                content_type,
            };
            break state.service.upload(&p, upload, Box::pin(stream)).await?;
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
            .upload(
                &p,
                NewUpload {
                    space_id,
                    filename,
                    content_type,
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
    let page = state
        .service
        .list_assets(&p, &space_id, ListQuery { after, limit })
        .await?;
    Ok(super::page_json(page))
}

async fn metadata(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Json<Asset>, ApiError> {
    let id = asset_id(&id)?;
    Ok(Json(state.service.get_asset(&p, &id).await?))
}

fn etag_of(asset: &Asset) -> String {
    format!("\"{}\"", asset.sha256)
}

fn etag_matches(header: Option<&HeaderValue>, etag: &str) -> bool {
    let Some(value) = header.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    value
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

/// `Content-Disposition: attachment` with an ASCII fallback and the RFC 8187 UTF-8 name.
fn disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(filename, ATTR_CHAR);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn content(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = asset_id(&id)?;
    let asset = state.service.get_asset(&p, &id).await?;
    let etag = etag_of(&asset);
    let mut out = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Only ever a download, never a page of ours: even text/html uploads cannot run script.
    out.insert(
        header::CONTENT_DISPOSITION,
        disposition(asset.filename.as_str()),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'"),
    );
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if etag_matches(headers.get(header::IF_NONE_MATCH), &etag) {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // If-Range with a different validator: the client's copy changed, send it all.
    let range_header = match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(tag) if tag.trim() != etag => None,
        _ => range_header,
    };
    let (status, range) = match range::parse(range_header, asset.size) {
        RangeRequest::Full => (StatusCode::OK, None),
        RangeRequest::Partial(s, e) => (StatusCode::PARTIAL_CONTENT, Some((s, e))),
        RangeRequest::Unsatisfiable => {
            let mut err = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the asset has {} bytes", asset.size),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", asset.size)) {
                err.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(err);
        }
    };
    let (start, end) = range.unwrap_or((0, asset.size));
    if let Ok(v) = HeaderValue::from_str(&asset.content_type) {
        out.insert(header::CONTENT_TYPE, v);
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {start}-{}/{}",
            end.saturating_sub(1),
            asset.size
        ))
    {
        out.insert(header::CONTENT_RANGE, v);
    }
    if method == Method::HEAD {
        // Headers only: no byte is decrypted or sent, so no read is recorded.
        return Ok((status, out).into_response());
    }
    let content = state.service.read_content(&p, &id, range).await?;
    let asset_id = id.to_string();
    let body = content.body.map(move |item| {
        item.map_err(|e| {
            // The status line is gone already: log, and let the error cut the connection so the
            // client sees a truncated transfer rather than wrong bytes.
            tracing::error!(asset = %asset_id, error = %e, "integrity failure while streaming; connection cut");
            std::io::Error::other("integrity failure")
        })
    });
    Ok((status, out, Body::from_stream(body)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = asset_id(&id)?;
    state.service.delete_asset(&p, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
