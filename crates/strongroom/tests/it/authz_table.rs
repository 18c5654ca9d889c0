//! The authorization matrix's table: every route of the router, and the status each kind of
//! caller must get (`authz::CALLERS` gives the column order). Walked by `authz`.

/// Route (as in the route table), and the expected status per caller, in `CALLERS` order. The
/// `|` only groups columns for the eye: members with org-wide roles | the other organization |
/// dead credentials | space-limited keys | another admin's session.
pub(crate) fn table() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "GET /",
            "200 | 200 200 200 200 200 200 200 | 200 | 200 200 200 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /invite",
            "200 | 200 200 200 200 200 200 200 | 200 | 200 200 200 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /ui/{*file}",
            "200 | 200 200 200 200 200 200 200 | 200 | 200 200 200 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /healthz",
            "200 | 200 200 200 200 200 200 200 | 200 | 200 200 200 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /readyz",
            "200 | 200 200 200 200 200 200 200 | 200 | 200 200 200 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /.well-known/security.txt",
            "200 | 200 200 200 200 200 200 200 | 200 | 200 200 200 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /api/openapi.json",
            "200 | 200 200 200 200 200 200 200 | 200 | 200 200 200 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /api/v1/me",
            "401 | 200 200 200 200 200 200 200 | 200 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "POST /api/v1/orgs/{org_id}/spaces",
            "401 | 403 403 403 201 201 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 201",
        ),
        (
            "GET /api/v1/orgs/{org_id}/spaces",
            "401 | 200 200 200 200 200 200 200 | 404 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "POST /api/v1/spaces/{space_id}/assets",
            "401 | 403 201 201 201 201 201 201 | 404 | 401 401 401 | 403 201 201 201 201 | 201",
        ),
        (
            "GET /api/v1/spaces/{space_id}/assets",
            "401 | 200 200 200 200 200 200 200 | 404 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /api/v1/assets/{asset_id}",
            "401 | 200 200 200 200 200 200 200 | 404 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /api/v1/assets/{asset_id}/content",
            "401 | 200 200 200 200 200 200 200 | 404 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "DELETE /api/v1/assets/{asset_id}",
            "401 | 403 403 204 204 204 403 204 | 404 | 401 401 401 | 403 403 204 204 204 | 204",
        ),
        (
            "GET /api/v1/spaces/{space_id}/trash",
            "401 | 403 403 200 200 200 403 200 | 404 | 401 401 401 | 403 403 200 200 200 | 200",
        ),
        (
            "POST /api/v1/assets/{asset_id}/restore",
            "401 | 403 403 200 200 200 403 200 | 404 | 401 401 401 | 403 403 200 200 200 | 200",
        ),
        (
            "PATCH /api/v1/spaces/{space_id}",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 200 200 | 200",
        ),
        (
            "POST /api/v1/orgs/{org_id}/api-keys",
            "401 | 403 403 403 201 201 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 201",
        ),
        (
            "GET /api/v1/orgs/{org_id}/api-keys",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 200 200 | 200",
        ),
        // The key is the owner's: only the owner's own credential may take a secret for it.
        (
            "POST /api/v1/api-keys/{key_id}/rotate",
            "401 | 403 403 403 403 200 403 403 | 404 | 401 401 401 | 403 403 403 404 404 | 403",
        ),
        (
            "DELETE /api/v1/api-keys/{key_id}",
            "401 | 403 403 403 204 204 403 403 | 404 | 401 401 401 | 403 403 403 404 404 | 204",
        ),
        (
            "POST /api/v1/assets/{asset_id}/links",
            "401 | 403 403 201 201 201 201 201 | 404 | 401 401 401 | 403 403 201 201 201 | 201",
        ),
        (
            "GET /api/v1/assets/{asset_id}/links",
            "401 | 403 403 200 200 200 200 200 | 404 | 401 401 401 | 403 403 200 200 200 | 200",
        ),
        (
            "DELETE /api/v1/links/{link_id}",
            "401 | 403 403 204 204 204 403 204 | 404 | 401 401 401 | 403 403 204 204 204 | 204",
        ),
        (
            "GET /d/{token}",
            "404 | 404 404 404 404 404 404 404 | 404 | 404 404 404 | 404 404 404 404 404 | 404",
        ),
        (
            "POST /api/v1/auth/login",
            "422 | 422 422 422 422 422 422 422 | 422 | 422 422 422 | 422 422 422 422 422 | 422",
        ),
        (
            "GET /api/v1/auth/sessions",
            "401 | 403 403 403 403 403 403 200 | 403 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "GET /api/v1/me/orgs",
            "401 | 403 403 403 403 403 403 200 | 403 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "GET /api/v1/me/export",
            "401 | 403 403 403 403 403 403 200 | 403 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        // The session is the collaborator's: another member's session is not found.
        (
            "DELETE /api/v1/auth/sessions/{session_id}",
            "401 | 403 403 403 403 403 403 204 | 403 | 401 401 401 | 403 403 403 403 403 | 404",
        ),
        (
            "POST /api/v1/auth/reauth",
            "401 | 403 403 403 403 403 403 204 | 403 | 401 401 401 | 403 403 403 403 403 | 204",
        ),
        (
            "POST /api/v1/me/password",
            "401 | 403 403 403 403 403 403 401 | 403 | 401 401 401 | 403 403 403 403 403 | 401",
        ),
        (
            "POST /api/v1/me/mfa/totp",
            "401 | 403 403 403 403 403 403 200 | 403 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "POST /api/v1/me/mfa/totp/confirm",
            "401 | 403 403 403 403 403 403 422 | 403 | 401 401 401 | 403 403 403 403 403 | 422",
        ),
        (
            "POST /api/v1/me/mfa/totp/disable",
            "401 | 403 403 403 403 403 403 401 | 403 | 401 401 401 | 403 403 403 403 403 | 401",
        ),
        (
            "GET /api/v1/orgs/{org_id}/members",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "GET /api/v1/orgs/{org_id}",
            "401 | 200 200 200 200 200 403 200 | 404 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "PATCH /api/v1/orgs/{org_id}",
            "401 | 403 403 403 403 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 403",
        ),
        (
            "PATCH /api/v1/orgs/{org_id}/members/{user_id}",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "DELETE /api/v1/orgs/{org_id}/members/{user_id}",
            "401 | 403 403 403 204 204 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 204",
        ),
        (
            "POST /api/v1/orgs/{org_id}/invitations",
            "401 | 403 403 403 201 201 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 201",
        ),
        (
            "GET /api/v1/orgs/{org_id}/invitations",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "DELETE /api/v1/invitations/{invitation_id}",
            "401 | 403 403 403 204 204 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 204",
        ),
        (
            "POST /api/v1/invitations/accept",
            "404 | 404 404 404 404 404 404 404 | 404 | 404 404 404 | 404 404 404 404 404 | 404",
        ),
        (
            "GET /api/v1/orgs/{org_id}/roles",
            "401 | 200 200 200 200 200 403 200 | 404 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "POST /api/v1/orgs/{org_id}/roles",
            "401 | 403 403 403 201 201 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 201",
        ),
        (
            "PATCH /api/v1/orgs/{org_id}/roles/{role_id}",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "DELETE /api/v1/orgs/{org_id}/roles/{role_id}",
            "401 | 403 403 403 204 204 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 204",
        ),
        (
            "POST /api/v1/spaces/{space_id}/grants",
            "401 | 403 403 403 201 201 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 201",
        ),
        (
            "GET /api/v1/spaces/{space_id}/grants",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "DELETE /api/v1/spaces/{space_id}/grants/{user_id}",
            "401 | 403 403 403 204 204 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 204",
        ),
        (
            "GET /api/v1/orgs/{org_id}/audit",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "GET /api/v1/orgs/{org_id}/audit/export",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "GET /api/v1/orgs/{org_id}/audit/verify",
            "401 | 403 403 403 200 200 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 200",
        ),
        (
            "GET /api/v1/assets/{asset_id}/renditions/{name}",
            "401 | 200 200 200 200 200 200 200 | 404 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "POST /api/v1/assets/{asset_id}/playback",
            "401 | 201 201 201 201 201 201 201 | 404 | 401 401 401 | 201 201 201 201 201 | 201",
        ),
        // The playback is the owner's: ending another's takes link:delete.
        (
            "DELETE /api/v1/playback/{playback_id}",
            "401 | 403 403 204 204 204 403 204 | 404 | 401 401 401 | 403 403 204 204 204 | 204",
        ),
        (
            "GET /api/v1/orgs/{org_id}/usage",
            "401 | 200 200 200 200 200 403 200 | 404 | 401 401 401 | 200 200 200 200 200 | 200",
        ),
        (
            "GET /hls/{token}/{*path}",
            "404 | 404 404 404 404 404 404 404 | 404 | 404 404 404 | 404 404 404 404 404 | 404",
        ),
        // Only an owner's session deletes the organization (`org_deletion::*` tests it), and
        // only with its name typed; keys of any role never do.
        (
            "DELETE /api/v1/orgs/{org_id}",
            "401 | 403 403 403 403 403 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 403",
        ),
        // Only an owner's session erases a member (there is no owner session among the
        // callers: `erasure::*` tests it); keys of any role never do.
        (
            "POST /api/v1/orgs/{org_id}/members/{user_id}/erase",
            "401 | 403 403 403 403 403 403 403 | 404 | 401 401 401 | 403 403 403 403 403 | 403",
        ),
        // Last but one: it ends the session it is sent with (a fresh one, for session callers).
        (
            "POST /api/v1/auth/logout",
            "401 | 403 403 403 403 403 403 204 | 403 | 401 401 401 | 403 403 403 403 403 | 204",
        ),
        // Last: a session caller erases its own account (signed in afresh, so re-authenticated
        // recently), which no later row could then use.
        (
            "DELETE /api/v1/me",
            "401 | 403 403 403 403 403 403 204 | 403 | 401 401 401 | 403 403 403 403 403 | 204",
        ),
    ]
}
