//! Health, readiness, security.txt, the OpenAPI document, whoami, the audit trail and its export.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use strongroom_domain::OrgId;
use strongroom_service::{Actor, perm};

use super::{Credential, Route};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiQuery, Auth, PageParams};

pub const HEALTHZ: Route = Route {
    method: "GET",
    path: "/healthz",
    summary: "The process is up",
    auth: Credential::None,
    success: 200,
    errors: &[],
    query: &[],
    body: None,
    response: None,
    handler: || get(healthz),
};
pub const READYZ: Route = Route {
    method: "GET",
    path: "/readyz",
    summary: "Database and storage answer",
    auth: Credential::None,
    success: 200,
    errors: &[503],
    query: &[],
    body: None,
    response: None,
    handler: || get(readyz),
};
pub const SECURITY_TXT: Route = Route {
    method: "GET",
    path: "/.well-known/security.txt",
    summary: "RFC 9116 security contact",
    auth: Credential::None,
    success: 200,
    errors: &[],
    query: &[],
    body: None,
    response: None,
    handler: || get(security_txt),
};
pub const OPENAPI: Route = Route {
    method: "GET",
    path: "/api/openapi.json",
    summary: "This document",
    auth: Credential::None,
    success: 200,
    errors: &[],
    query: &[],
    body: None,
    response: None,
    handler: || get(openapi),
};
pub const ME: Route = Route {
    method: "GET",
    path: "/api/v1/me",
    summary: "Who the caller is",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401],
    query: &[],
    body: None,
    response: Some("Me"),
    handler: || get(me),
};
pub const AUDIT: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/audit",
    summary: "The organization's audit trail, oldest first",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404],
    query: &["limit", "audit_cursor"],
    body: None,
    response: Some("AuditList"),
    handler: || get(audit),
};
pub const AUDIT_EXPORT: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/audit/export",
    summary: "The whole audit chain with its signed checkpoints, as NDJSON, for offline verification",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[400, 401, 403, 404],
    query: &[],
    body: None,
    // Streamed (a page of events at a time), so exempt from the request deadline.
    response: Some("ndjson"),
    handler: || get(audit_export),
};

pub const AUDIT_VERIFY: Route = Route {
    method: "GET",
    path: "/api/v1/orgs/{org_id}/audit/verify",
    summary: "Verify the organization's audit chain and its signed checkpoints now (as `strongroom audit verify`)",
    auth: Credential::KeyOrSession,
    success: 200,
    errors: &[401, 403, 404],
    query: &[],
    body: None,
    response: Some("ChainReport"),
    handler: || get(audit_verify),
};

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.service.ready().await {
        Ok(down) if down.is_empty() => Json(serde_json::json!({"status": "ready"})).into_response(),
        // Still serving, with enough copies: a load balancer keeps the node, an operator sees
        // which backend to look at.
        Ok(down) => {
            Json(serde_json::json!({"status": "degraded", "backends_down": down})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database or the storage does not answer",
            )
            .into_response()
        }
    }
}

async fn security_txt(State(state): State<AppState>) -> Response {
    let c = &state.config;
    let body = format!(
        "Contact: {}\nExpires: {}\nPreferred-Languages: en\nPolicy: {}\n",
        c.security_contact, c.security_txt_expires, c.security_policy_url
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    let limits = super::openapi::Limits {
        max_expires_in: state.service.config().max_link_lifetime.as_secs(),
    };
    Json(super::openapi_document(limits))
}

async fn me(Auth(p): Auth) -> Json<serde_json::Value> {
    let names = |set: strongroom_domain::PermissionSet| -> Vec<&'static str> {
        set.iter().map(|perm| perm.as_str()).collect()
    };
    let spaces: serde_json::Map<String, serde_json::Value> = p
        .granted_spaces()
        .into_iter()
        .map(|(space, set)| (space.to_string(), serde_json::json!(names(set))))
        .collect();
    let mut v = serde_json::json!({
        "org_id": p.org_id,
        "role": p.role,
        "permissions": names(p.permissions()),
        "space_permissions": spaces,
        "space_limited": p.is_space_limited(),
        "mfa_enrolment_required": p.mfa_enrolment_required,
    });
    match &p.actor {
        Actor::ApiKey { key_id, user_id } => {
            v["key_id"] = serde_json::json!(key_id);
            if let Some(u) = user_id {
                v["user_id"] = serde_json::json!(u);
            }
        }
        Actor::Session {
            session_id,
            user_id,
        } => {
            v["user_id"] = serde_json::json!(user_id);
            v["session_id"] = serde_json::json!(session_id);
        }
        Actor::Cli => {}
    }
    Json(v)
}

async fn audit(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org_id): Path<String>,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let org_id = OrgId::parse(&org_id).map_err(|_| ApiError::not_found("organization"))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let after = match q.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<i64>()
            .map_err(|_| ApiError::invalid("cursor is not valid"))?,
    };
    let authz = state
        .service
        .authz
        .authorize_org::<perm::AuditRead>(&p, &org_id)?;
    let (items, next) = state.service.audit.list_audit(&authz, after, limit).await?;
    Ok(Json(
        serde_json::json!({"items": items, "next_cursor": next.map(|n| n.to_string())}),
    ))
}

async fn audit_verify(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org_id): Path<String>,
) -> Result<Json<strongroom_service::ChainReport>, ApiError> {
    let org_id = OrgId::parse(&org_id).map_err(|_| ApiError::not_found("organization"))?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::AuditRead>(&p, &org_id)?;
    Ok(Json(state.service.audit.verify_org_audit(&authz).await?))
}

async fn audit_export(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(org_id): Path<String>,
) -> Result<Response, ApiError> {
    let org_id = OrgId::parse(&org_id).map_err(|_| ApiError::not_found("organization"))?;
    let authz = state
        .service
        .authz
        .authorize_org::<perm::AuditRead>(&p, &org_id)?;
    let lines = state.service.audit.export_audit(&authz).await?;
    let disposition = format!("attachment; filename=\"audit-{org_id}.ndjson\"");
    // The status line is gone once lines flow: a failure midway is logged and cuts the
    // connection, and the missing end line tells the verifier the export is incomplete.
    let body = Body::from_stream(lines.map(move |item| {
        item.map_err(|e| {
            tracing::error!(org = %org_id, error = %e, "audit export failed midway; connection cut");
            std::io::Error::other("audit export failed")
        })
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
