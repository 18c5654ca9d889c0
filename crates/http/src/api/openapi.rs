//! `/api/openapi.json`: OpenAPI 3.1 built from the route table.

use serde_json::{Map, Value, json};

use super::ROUTES;

fn schemas() -> Value {
    let id = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "code"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "code": {"type": "string"}}},
        "Me": {"type": "object", "properties": {"user_id": id, "org_id": id, "role": {"type": "string"}, "key_id": id}},
        "NewSpace": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200}}},
        "Space": {"type": "object", "properties": {"id": id, "name": {"type": "string"}, "org_id": id, "created_at": time}},
        "Usage": {"type": "object", "properties": {"bytes": {"type": "integer"}, "assets": {"type": "integer"}, "max_bytes": {"type": ["integer", "null"]}, "max_assets": {"type": ["integer", "null"]}}},
        "SpaceList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Space"}}, "next_cursor": {"type": ["string", "null"]}}},
        "Asset": {"type": "object", "properties": {"id": id, "space_id": id, "filename": {"type": "string"}, "content_type": {"type": "string"},
            "size": {"type": "integer"}, "sha256": {"type": "string"}, "created_at": time}},
        "AssetList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Asset"}}, "next_cursor": {"type": ["string", "null"]}}},
        "NewApiKey": {"type": "object", "required": ["name", "role"], "properties": {"name": {"type": "string"}, "role": {"type": "string", "description": "a built-in role (owner, admin, editor, contributor, viewer, collaborator) or a custom role's name or id"},
            "spaces": {"type": "array", "items": id, "minItems": 1, "maxItems": 100, "description": "limit the key to these spaces; omit for every space"},
            "expires_in": {"type": "integer", "minimum": 1}}},
        "CreatedApiKey": {"type": "object", "properties": {"id": id, "api_key": {"type": "string", "description": "shown once"}, "expires_at": time}},
        "ApiKey": {"type": "object", "properties": {"id": id, "name": {"type": "string"}, "role": {"type": "string"}, "user_id": {"type": ["string", "null"]},
            "spaces": {"type": ["array", "null"], "items": id}, "created_at": time, "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "revoked_at": {"type": ["string", "null"], "format": "date-time"}, "last_used_at": {"type": ["string", "null"], "format": "date-time"},
            "last_used_ip": {"type": ["string", "null"]}, "previous_valid_until": {"type": ["string", "null"], "format": "date-time"}}},
        "ApiKeyList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/ApiKey"}}, "next_cursor": {"type": ["string", "null"]}}},
        "RotateApiKey": {"type": "object", "properties": {"grace_secs": {"type": "integer", "minimum": 0, "maximum": 604_800, "default": 86_400}}},
        "RotatedApiKey": {"type": "object", "properties": {"id": id, "api_key": {"type": "string", "description": "shown once"}, "previous_valid_until": time}},
        "NewLink": {"type": "object", "required": ["expires_in"], "properties": {
            "expires_in": {"type": "integer", "minimum": 1, "description": "seconds; at most the server's links.max_expires_in (default 604800)"},
            "single_use": {"type": "boolean", "default": false, "description": "the first download consumes it"},
            "ip": {"type": "string", "description": "answer only requests from this IPv4 or IPv6 address"}}},
        "CreatedLink": {"type": "object", "properties": {"id": id, "url": {"type": "string", "description": "shown once: holds the token"},
            "expires_at": time, "asset_id": id, "single_use": {"type": "boolean"}, "ip": {"type": ["string", "null"]}}},
        "Link": {"type": "object", "properties": {"id": id, "asset_id": id, "created_by": {"type": "string"}, "created_at": time, "expires_at": time,
            "single_use": {"type": "boolean"}, "ip": {"type": ["string", "null"]}, "revoked_at": {"type": ["string", "null"], "format": "date-time"},
            "used_at": {"type": ["string", "null"], "format": "date-time"}, "use_count": {"type": "integer"},
            "last_used_at": {"type": ["string", "null"], "format": "date-time"}}},
        "LinkList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Link"}}, "next_cursor": {"type": ["string", "null"]}}},
        "AuditEvent": {"type": "object", "properties": {"seq": {"type": "integer"}, "at": time, "actor": {"type": "string"}, "action": {"type": "string"},
            "target": {"type": "string"}, "ip": {"type": "string"}, "detail": {"type": "object"}, "hash": {"type": "string"}, "prev_hash": {"type": "string"}}},
        "Login": {"type": "object", "required": ["email", "password"], "properties": {"email": {"type": "string"}, "password": {"type": "string"},
            "org_id": id, "totp": {"type": "string"}, "recovery_code": {"type": "string"}, "captcha": {"type": "string"}}},
        "LoggedIn": {"type": "object", "properties": {"user_id": id, "org_id": id, "session_id": id, "csrf_token": {"type": "string"}}},
        "Session": {"type": "object", "properties": {"id": id, "created_at": time, "last_seen_at": time, "ip": {"type": "string"}, "user_agent": {"type": "string"}, "current": {"type": "boolean"}}},
        "SessionList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}, "next_cursor": {"type": ["string", "null"]}}},
        "PasswordChange": {"type": "object", "required": ["current_password", "new_password"], "properties": {"current_password": {"type": "string"}, "new_password": {"type": "string"}}},
        "Reauth": {"type": "object", "required": ["password"], "properties": {"password": {"type": "string"}, "captcha": {"type": "string"}}},
        "TotpEnrolment": {"type": "object", "properties": {"secret": {"type": "string"}, "otpauth_uri": {"type": "string"}, "qr_svg": {"type": "string"}}},
        "TotpConfirm": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}},
        "RecoveryCodes": {"type": "object", "properties": {"recovery_codes": {"type": "array", "items": {"type": "string"}}}},
        "PasswordConfirm": {"type": "object", "required": ["password"], "properties": {"password": {"type": "string"}}},
        "Member": {"type": "object", "properties": {"user_id": id, "email": {"type": "string"}, "role": {"type": "string"}, "mfa_enabled": {"type": "boolean"}}},
        "MemberList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}}, "next_cursor": {"type": ["string", "null"]}}},
        "OrgPolicy": {"type": "object", "properties": {"require_mfa": {"type": "boolean"}}},
        "AuditList": {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}}, "next_cursor": {"type": ["string", "null"]}}},
    })
}

/// Video playback and asset details.
fn media_schemas() -> Value {
    let id = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    json!({
        "NewPlayback": {"type": "object", "required": ["expires_in"], "properties": {"expires_in": {"type": "integer", "minimum": 1}}},
        "Playback": {"type": "object", "properties": {"id": id, "url": {"type": "string", "description": "the HLS master playlist; holds the view's token"}, "expires_at": time}},
        "AssetDetail": {"type": "object", "properties": {"id": id, "space_id": id, "filename": {"type": "string"}, "content_type": {"type": "string"},
            "size": {"type": "integer"}, "sha256": {"type": "string"}, "created_at": time,
            "status": {"type": "string", "enum": ["processing", "ready", "failed"]}, "error": {"type": "string"}, "media": {"type": "object"},
            "renditions": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "kind": {"type": "string", "enum": ["image", "hls"]},
                "content_type": {"type": "string"}, "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]}, "size": {"type": "integer"}, "bandwidth": {"type": "integer"}}}}}},
    })
}

/// Members, roles, grants and invitations.
fn access_schemas() -> Value {
    let id = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let role = json!({"type": "string", "description": "a built-in role (owner, admin, editor, contributor, viewer, collaborator) or a custom role's name or id"});
    let permissions = json!({"type": "array", "items": {"type": "string", "description": "action:resource, e.g. asset:read"}});
    let list = |item: &str| json!({"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}}, "next_cursor": {"type": ["string", "null"]}}});
    json!({
        "MemberRole": {"type": "object", "required": ["role"], "properties": {"user_id": id, "role": role}},
        "NewInvitation": {"type": "object", "required": ["email", "role"], "properties": {"email": {"type": "string"}, "role": role}},
        "Invitation": {"type": "object", "properties": {"id": id, "email": {"type": "string"}, "role": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "accepted", "revoked", "expired"]}, "created_at": time, "expires_at": time}},
        "InvitationList": list("Invitation"),
        "AcceptInvitation": {"type": "object", "required": ["token", "password"], "properties": {"token": {"type": "string", "description": "from the invitation link, after #"},
            "password": {"type": "string", "description": "a new account's password, or the existing account's"}}},
        "Accepted": {"type": "object", "properties": {"user_id": id, "org_id": id, "created_account": {"type": "boolean"}}},
        "NewRole": {"type": "object", "required": ["name", "permissions"], "properties": {"name": {"type": "string"}, "permissions": permissions}},
        "RolePermissions": {"type": "object", "required": ["permissions"], "properties": {"permissions": permissions}},
        "Role": {"type": "object", "properties": {"id": {"type": ["string", "null"]}, "name": {"type": "string"}, "builtin": {"type": "boolean"}, "permissions": permissions}},
        "RoleList": list("Role"),
        "NewGrant": {"type": "object", "required": ["user_id", "role"], "properties": {"user_id": id, "role": role}},
        "Grant": {"type": "object", "properties": {"space_id": id, "user_id": id, "email": {"type": "string"}, "role": {"type": "string"}, "created_at": time}},
        "GrantList": list("Grant"),
    })
}

fn merged(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

fn problem_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        if !r.path.starts_with("/api/v1/") {
            continue;
        }
        let mut op = Map::new();
        op.insert("summary".into(), json!(r.summary));
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        match r.body {
            Some("bytes") => {
                op.insert("requestBody".into(), json!({"required": true, "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}}));
            }
            Some(spec) => {
                let name = spec.trim_start_matches("json:");
                op.insert("requestBody".into(), json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}}));
            }
            None => {}
        }
        let mut responses = Map::new();
        let ok = match r.response {
            Some("bytes") => {
                json!({"description": "the content", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})
            }
            Some(name) => {
                json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}})
            }
            None => json!({"description": "success"}),
        };
        responses.insert(r.success.to_string(), ok);
        responses.insert("400".into(), problem_response("invalid request"));
        if r.auth {
            responses.insert(
                "401".into(),
                problem_response("missing, unknown, expired or revoked API key"),
            );
            responses.insert(
                "403".into(),
                problem_response("the key's role does not allow this"),
            );
            responses.insert(
                "404".into(),
                problem_response("not found, or in another organization"),
            );
        }
        op.insert("responses".into(), Value::Object(responses));
        if r.auth {
            op.insert("security".into(), json!([{"bearer": []}, {"session": []}]));
        }
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(r.method.to_lowercase(), Value::Object(op));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Strongroom API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": merged(merged(schemas(), access_schemas()), media_schemas()),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (srk_...)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-strongroom_session", "description": "From POST /api/v1/auth/login; unsafe methods also need X-CSRF-Token"},
            },
        },
    })
}
