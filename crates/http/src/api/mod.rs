//! The route table: every route the server answers, with the facts the OpenAPI document is built
//! from. The router and `/api/openapi.json` both come from [`ROUTES`], so they cannot drift apart.

mod access;
mod assets;
mod auth;
mod keys;
mod links;
mod media;
mod meta;
mod mfa;
pub(crate) mod openapi;
mod spaces;
pub mod ui;
mod usage;

use axum::Router;
use axum::routing::MethodRouter;

use crate::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// Anyone: no credential is needed (the route may have its own, like a link's token).
    None,
    /// An API key (`Authorization: Bearer`) or a session cookie.
    KeyOrSession,
    /// A signed-in session only: API keys are refused (403), so a leaked key never acts on its
    /// owner's account.
    Session,
}

/// One route: how to serve it and how to document it.
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path with `{param}` segments.
    pub path: &'static str,
    /// One line for the OpenAPI summary.
    pub summary: &'static str,
    /// The credential it needs.
    pub auth: Credential,
    /// The success status.
    pub success: u16,
    /// Every other status the route can answer with: from its extractors (401 for a
    /// credential, 400/413/415/422 for a JSON body, 400 for its query, 404 for an id in the
    /// path), its authorization, its use case, and conditional requests (304, 206, 416).
    /// Each but 206 and 304 is a problem document.
    pub errors: &'static [u16],
    /// Its query parameters, by name; `openapi.rs` defines each name's schema.
    pub query: &'static [&'static str],
    /// Request body kind: `None`, `Some("json:<Schema>")`, `Some("json?:<Schema>")` (optional),
    /// `Some("bytes")`.
    pub body: Option<&'static str>,
    /// Response schema name in `components.schemas`, if JSON; `"bytes"` for content, `"ndjson"`
    /// for a stream of JSON lines, `"zip"` for an archive.
    pub response: Option<&'static str>,
    /// Builds the handler.
    pub handler: fn() -> MethodRouter<AppState>,
}

/// Every route of the server.
pub static ROUTES: &[Route] = &[
    ui::INDEX,
    ui::INVITE,
    ui::FILE,
    meta::HEALTHZ,
    meta::READYZ,
    meta::SECURITY_TXT,
    meta::OPENAPI,
    meta::ME,
    spaces::CREATE,
    spaces::LIST,
    spaces::SETTINGS,
    assets::UPLOAD,
    assets::LIST,
    assets::GET,
    assets::CONTENT,
    assets::DELETE,
    assets::TRASH,
    assets::RESTORE,
    keys::CREATE,
    keys::LIST,
    keys::ROTATE,
    keys::REVOKE,
    links::CREATE,
    links::LIST,
    links::REVOKE,
    links::DOWNLOAD,
    auth::LOGIN,
    auth::LOGOUT,
    auth::SESSIONS,
    auth::REVOKE_SESSION,
    auth::MY_ORGS,
    auth::MY_EXPORT,
    auth::ERASE_ME,
    auth::ERASE_MEMBER,
    auth::REAUTH,
    auth::PASSWORD,
    mfa::ENROL,
    mfa::CONFIRM,
    mfa::DISABLE,
    mfa::MEMBERS,
    mfa::ORG,
    mfa::POLICY,
    access::SET_MEMBER_ROLE,
    access::REMOVE_MEMBER,
    access::DELETE_ORG,
    access::INVITE,
    access::INVITATIONS,
    access::REVOKE_INVITATION,
    access::ACCEPT_INVITATION,
    access::ROLES,
    access::CREATE_ROLE,
    access::UPDATE_ROLE,
    access::DELETE_ROLE,
    access::GRANT,
    access::GRANTS,
    access::REVOKE_GRANT,
    meta::AUDIT,
    meta::AUDIT_EXPORT,
    meta::AUDIT_VERIFY,
    media::RENDITION,
    media::PLAYBACK,
    media::REVOKE_PLAYBACK,
    media::HLS,
    usage::USAGE,
];

/// A page of a list as every list endpoint renders it: `{"items", "next_cursor"}`.
fn page_json<T: serde::Serialize>(
    page: strongroom_service::Page<T>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "items": page.items,
        "next_cursor": page.next.as_deref().map(crate::cursor::encode),
    }))
}

/// A router with every route of [`ROUTES`].
pub fn routes() -> Router<AppState> {
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for r in ROUTES {
        match by_path.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, mr)) => *mr = std::mem::take(mr).merge((r.handler)()),
            None => by_path.push((r.path, (r.handler)())),
        }
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, mr)| router.route(path, mr))
}

pub use openapi::document as openapi_document;
