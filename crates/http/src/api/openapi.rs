//! `/api/openapi.json`: OpenAPI 3.1 built from the route table.
//!
//! The document is a contract the test script checks against the real server
//! (`scripts/schemathesis.sh`): every status a route lists in [`Route::errors`] is documented,
//! and the request schemas state what the handlers and the domain types accept, no more and no
//! less (ids' shapes, names' lengths and characters, integer ranges, unknown fields refused).

use serde_json::{Map, Value, json};
use strongroom_domain::{Permission, Role};

use super::{Credential, ROUTES, Route};

/// Limits of this server that requests are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest lifetime of a link or a playback, in seconds (`links.max_expires_in`).
    pub max_expires_in: u64,
}

/// The longest lifetime an API key may be given (`expires_in`): a century, beyond which its
/// expiry could not be written as a date.
pub const MAX_KEY_EXPIRES_IN: u64 = 100 * 365 * 24 * 3600;

/// The most seconds a rotated key's previous secret may keep working (the service's
/// `MAX_ROTATION_GRACE_SECS`, which it enforces).
const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;

/// The most spaces a key may be limited to (the service's `MAX_KEY_SPACES`).
const MAX_KEY_SPACES: usize = 100;

/// Characters a name may never hold (`strongroom_domain::names`): control characters, and the
/// bidirectional and invisible format characters. Regex class content, `\u` escapes (read the
/// same by ECMA-262 and Python), the tag characters as literal characters (beyond the BMP).
fn forbidden() -> String {
    concat!(
        r"\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200e\u200f\u2028\u2029",
        r"\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb",
        "\u{E0000}-\u{E007F}",
    )
    .to_owned()
}

/// Whitespace that names may be surrounded by (it is trimmed) and that is not forbidden itself.
const PADDING: &str = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000";

/// A trimmed name of 1 to `max` characters, none of them forbidden, with any padding: the core
/// starts and ends with a character that is not whitespace, so its length is the trimmed one.
fn name(max: usize, description: &str) -> Value {
    let (f, w) = (forbidden(), PADDING);
    let pattern = format!(
        "^[{w}]*[^{w}{f}](?:[^{f}]{{0,{}}}[^{w}{f}])?[{w}]*$",
        max - 2
    );
    json!({"type": "string", "pattern": pattern, "description": description})
}

/// An email address as `Email::parse` takes it: one `@`, a dot in the domain, no whitespace or
/// forbidden characters, at most 254 bytes. The server also trims and lower-cases it.
fn email() -> Value {
    let f = forbidden();
    let part = format!("[^@\\s{PADDING}{f}]");
    json!({"type": "string", "maxLength": 254, "pattern": format!("^{part}+@{part}*\\.{part}*$"),
        "description": "an email address (at most 254 bytes; compared in lower case)"})
}

/// An id of one kind: `<prefix>_` and 32 lowercase hex digits.
fn id(prefix: &str) -> Value {
    json!({"type": "string", "pattern": format!("^{prefix}_[0-9a-f]{{32}}$")})
}

/// A role as requests name it. Custom roles are the organization's own, so no schema can list
/// them; one that does not exist is 422.
fn role() -> Value {
    let builtin: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    json!({"type": "string", "minLength": 1, "examples": builtin,
        "description": format!("a built-in role ({}) or a custom role's name or id", builtin.join(", "))})
}

fn permissions() -> Value {
    let all: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    json!({"type": "array", "minItems": 1, "items": {"type": "string", "enum": all}})
}

/// An integer that JSON may also write with a zero fraction (`60.0`).
fn seconds(min: u64, max: u64, description: &str) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max, "description": description})
}

/// `schema`, or `null`: an optional member that serde reads as absent when it is null.
fn or_null(mut schema: Value) -> Value {
    if let Some(t) = schema.get("type").cloned() {
        schema["type"] = json!([t, "null"]);
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.push(Value::Null);
    }
    if let Some(Value::Array(alternatives)) = schema.get_mut("anyOf") {
        alternatives.push(json!({"type": "null"}));
    }
    schema
}

/// A request body object: only these properties, these required.
fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
}

fn list(item: &str) -> Value {
    json!({"type": "object", "required": ["items", "next_cursor"], "properties": {
        "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
        "next_cursor": {"type": ["string", "null"]}}})
}

/// Request bodies.
fn request_schemas(limits: Limits) -> Value {
    let text = json!({"type": "string"});
    let maybe_text = json!({"type": ["string", "null"]});
    let captcha = json!({"type": ["string", "null"], "description": "a solved challenge, `<challenge>:<nonce>`, after a 428"});
    let expires = seconds(
        1,
        limits.max_expires_in,
        "seconds; at most the server's links.max_expires_in",
    );
    // The service's MAX_ROLE_NAME.
    let mut role_name = name(
        64,
        "a custom role's name: not a built-in role's, not starting with rol_",
    );
    let builtin: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let padded = format!("^[{PADDING}]*({}|rol_.*)[{PADDING}]*$", builtin.join("|"));
    role_name["not"] = json!({"pattern": padded});
    json!({
        "NewSpace": object(&["name"], json!({"name": name(200, "1 to 200 characters once trimmed")})),
        "NewApiKey": object(&["name", "role"], json!({
            "name": name(200, "1 to 200 characters once trimmed"), "role": role(),
            "spaces": or_null(json!({"type": "array", "items": id("spc"), "minItems": 1, "maxItems": MAX_KEY_SPACES,
                "description": "limit the key to these spaces of the organization (422 for one it does not have); omit for every space"})),
            "expires_in": or_null(seconds(1, MAX_KEY_EXPIRES_IN, "seconds until the key stops working; omit for never"))})),
        "RotateApiKey": object(&[], json!({"grace_secs": or_null(json!({"type": "integer", "minimum": 0, "maximum": MAX_GRACE_SECS, "default": 86_400,
            "description": "seconds the previous secret keeps working"}))})),
        "NewLink": object(&["expires_in"], json!({
            "expires_in": expires,
            "single_use": {"type": "boolean", "default": false, "description": "the first download consumes it"},
            "ip": or_null(json!({"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}],
                "description": "answer only requests from this IPv4 or IPv6 address"})),
            "rendition": or_null(json!({"type": "string", "enum": ["thumbnail", "preview"],
                "description": "serve this image rendition instead of the original (422 when the asset has none)"}))})),
        "NewPlayback": object(&["expires_in"], json!({"expires_in": seconds(1, limits.max_expires_in, "seconds; at most the server's links.max_expires_in")})),
        "Login": object(&["email", "password"], json!({"email": text, "password": text, "org_id": maybe_text,
            "totp": maybe_text, "recovery_code": maybe_text, "captcha": captcha})),
        "Reauth": object(&["password"], json!({"password": text, "captcha": captcha})),
        "PasswordChange": object(&["current_password", "new_password"], json!({"current_password": text,
            "new_password": {"type": "string", "description": "checked by the password policy (422 weak_password says why)"},
            "captcha": captcha})),
        "TotpConfirm": object(&["code"], json!({"code": text})),
        "OrgDeletion": object(&["confirm"], json!({"confirm": {"type": "string", "description": "the organization's name, typed exactly"}})),
        "PasswordConfirm": object(&["password"], json!({"password": text, "captcha": captcha})),
        "OrgPolicy": object(&[], json!({"require_mfa": or_null(json!({"type": "boolean"})),
            "session_idle_secs": or_null(seconds(300, 86_400, "sign a session out after this long without a request")),
            "session_absolute_secs": or_null(seconds(900, 2_592_000, "sign a session out this long after sign-in, however active (whichever limit comes first ends it)")),
            "trash_days": or_null(json!({"type": "integer", "minimum": 1, "maximum": 365, "description": "days a deleted asset stays in its space's trash before it is purged (default 30)"}))})),
        "SpaceSettings": object(&[], json!({"retention_days": or_null(json!({"type": "integer", "minimum": 1, "maximum": 36_500,
            "description": "assets go to the trash this many days after their upload; null: kept until deleted"}))})),
        "MemberRole": object(&["role"], json!({"role": role()})),
        "NewInvitation": object(&["email", "role"], json!({"email": email(), "role": role()})),
        "AcceptInvitation": object(&["token", "password"], json!({
            "token": {"type": "string", "description": "from the invitation link, after #"},
            "password": {"type": "string", "description": "a new account's password, or the existing account's"},
            "captcha": captcha})),
        "NewRole": object(&["name", "permissions"], json!({"name": role_name, "permissions": permissions()})),
        "RolePermissions": object(&["permissions"], json!({"permissions": permissions()})),
        "NewGrant": object(&["user_id", "role"], json!({"user_id": id("usr"), "role": role()})),
    })
}

/// Response bodies.
/// An organization's storage usage and quota.
fn usage_schemas() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    let limit = json!({"type": ["integer", "null"], "minimum": 0});
    json!({"Usage": {"type": "object", "required": ["bytes", "assets", "max_bytes", "max_assets"],
        "properties": {"bytes": count, "assets": count, "max_bytes": limit, "max_assets": limit}}})
}

fn response_schemas() -> Value {
    let id = json!({"type": "string"});
    let text = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let maybe_time = json!({"type": ["string", "null"], "format": "date-time"});
    let maybe_text = json!({"type": ["string", "null"]});
    let permissions = json!({"type": "array", "items": {"type": "string"}});
    let mut schemas = json!({
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "code"], "properties": {
            "type": text, "title": text, "status": {"type": "integer"}, "detail": text,
            "code": {"type": "string", "description": "stable, snake_case"},
            "challenge": {"type": "string", "description": "with 428 captcha_required: the proof of work to solve"}}},
        "Me": {"type": "object", "required": ["org_id", "role", "permissions", "space_permissions"], "properties": {"user_id": id, "org_id": id, "role": text, "key_id": id, "session_id": id,
            "permissions": permissions, "space_permissions": {"type": "object", "additionalProperties": permissions, "description": "what the caller may do in each space granted to them"},
            "space_limited": {"type": "boolean"}, "mfa_enrolment_required": {"type": "boolean"}}},
        "Space": {"type": "object", "required": ["id", "name", "org_id"], "properties": {"id": id, "name": text, "org_id": id, "created_at": time,
            "retention_days": {"type": ["integer", "null"]}}},
        "SpaceList": list("Space"),
        "Asset": {"type": "object", "required": ["id", "space_id", "filename", "content_type", "size", "sha256"], "properties": {
            "id": id, "space_id": id, "filename": text, "content_type": text, "size": {"type": "integer"}, "sha256": text, "created_at": time,
            "deleted_at": {"type": "string", "format": "date-time", "description": "only in the trash: when it was deleted"}}},
        "AssetList": list("Asset"),
        "AssetDetail": {"type": "object", "required": ["id", "space_id", "filename", "content_type", "size", "sha256"], "properties": {
            "id": id, "space_id": id, "filename": text, "content_type": text, "size": {"type": "integer"}, "sha256": text, "created_at": time,
            "status": {"type": "string", "enum": ["processing", "ready", "failed"]}, "error": text, "media": {"type": "object"},
            "renditions": {"type": "array", "items": {"type": "object", "properties": {"name": text, "kind": {"type": "string", "enum": ["image", "hls"]},
                "content_type": text, "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]}, "size": {"type": "integer"}, "bandwidth": {"type": "integer"}}}}}},
        "CreatedApiKey": {"type": "object", "required": ["id", "api_key", "expires_at"], "properties": {"id": id, "api_key": {"type": "string", "description": "shown once"}, "expires_at": maybe_time}},
        "ApiKey": {"type": "object", "properties": {"id": id, "name": text, "role": text, "user_id": maybe_text,
            "spaces": {"type": ["array", "null"], "items": id}, "created_at": time, "expires_at": maybe_time,
            "revoked_at": maybe_time, "last_used_at": maybe_time, "last_used_ip": maybe_text, "previous_valid_until": maybe_time}},
        "ApiKeyList": list("ApiKey"),
        "RotatedApiKey": {"type": "object", "required": ["id", "api_key", "previous_valid_until"], "properties": {"id": id, "api_key": {"type": "string", "description": "shown once"}, "previous_valid_until": time}},
        "CreatedLink": {"type": "object", "required": ["id", "url", "expires_at"], "properties": {"id": id, "url": {"type": "string", "description": "shown once: holds the token"},
            "expires_at": time, "asset_id": id, "single_use": {"type": "boolean"}, "ip": maybe_text, "rendition": maybe_text}},
        "Link": {"type": "object", "properties": {"id": id, "asset_id": id, "created_by": text, "created_at": time, "expires_at": time,
            "single_use": {"type": "boolean"}, "ip": maybe_text, "revoked_at": maybe_time, "used_at": maybe_time, "use_count": {"type": "integer"},
            "last_used_at": maybe_time, "rendition": maybe_text}},
        "LinkList": list("Link"),
        "AuditEvent": {"type": "object", "properties": {"seq": {"type": "integer"}, "at": time, "actor": text, "action": text,
            "target": text, "ip": text, "detail": {"type": "object"}, "hash": text, "prev_hash": text}},
        "AuditList": list("AuditEvent"),
        "LoggedIn": {"type": "object", "required": ["user_id", "org_id", "session_id", "csrf_token"], "properties": {"user_id": id, "org_id": id, "session_id": id, "csrf_token": text}},
        "Session": {"type": "object", "properties": {"id": id, "created_at": time, "last_seen_at": time, "ip": text, "user_agent": text, "current": {"type": "boolean"}}},
        "SessionList": list("Session"),
        "TotpEnrolment": {"type": "object", "required": ["secret", "otpauth_uri", "qr_svg"], "properties": {"secret": text, "otpauth_uri": text, "qr_svg": text}},
        "RecoveryCodes": {"type": "object", "required": ["recovery_codes"], "properties": {"recovery_codes": {"type": "array", "items": text}}},
        "Member": {"type": "object", "properties": {"user_id": id, "email": text, "role": text, "mfa_enabled": {"type": "boolean"}}},
        "MemberList": list("Member"),
        "OrgPolicyResult": {"type": "object", "required": ["id", "require_mfa", "session_idle_secs", "session_absolute_secs", "trash_days"], "properties": {"id": id, "require_mfa": {"type": "boolean"},
            "session_idle_secs": {"type": "integer"}, "session_absolute_secs": {"type": "integer"}, "trash_days": {"type": "integer"}}},
        "MemberRoleResult": {"type": "object", "required": ["user_id", "role"], "properties": {"user_id": id, "role": text}},
        "Invitation": {"type": "object", "properties": {"id": id, "email": text, "role": text,
            "status": {"type": "string", "enum": ["pending", "accepted", "revoked", "expired"]}, "created_at": time, "expires_at": time}},
        "InvitationList": list("Invitation"),
        "Accepted": {"type": "object", "properties": {"user_id": id, "org_id": id, "created_account": {"type": "boolean"}}},
        "Role": {"type": "object", "properties": {"id": {"type": ["string", "null"]}, "name": text, "builtin": {"type": "boolean"}, "permissions": permissions}},
        "RoleList": list("Role"),
        "Grant": {"type": "object", "properties": {"space_id": id, "user_id": id, "email": text, "role": text, "created_at": time}},
        "GrantList": list("Grant"),
        "Playback": {"type": "object", "required": ["id", "url", "expires_at"], "properties": {"id": id, "url": {"type": "string", "description": "the HLS master playlist; holds the view's token"}, "expires_at": time}},
    });
    // Apart from the map above: one json! call of everything would pass its recursion limit.
    if let Value::Object(m) = &mut schemas {
        m.insert("Org".into(), org_schema(&id, &text, &time));
        m.insert("OrgDeleted".into(), json!({"type": "object", "required": ["assets", "blobs", "members_erased"], "properties": {
            "assets": {"type": "integer"}, "blobs": {"type": "integer"}, "members_erased": {"type": "integer"}}}));
        m.insert("MyAccount".into(), json!({"type": "object", "required": ["email", "mfa_enabled", "orgs"], "properties": {
            "email": {"type": ["string", "null"]}, "mfa_enabled": {"type": "boolean"},
            "orgs": {"type": "array", "items": {"type": "object", "required": ["org_id", "name", "role", "current"], "properties": {
                "org_id": id, "name": text, "role": text, "current": {"type": "boolean"}}}}}}));
        m.insert("ChainReport".into(), json!({"type": "object", "required": ["org_id", "events", "intact", "checkpoints"], "properties": {
            "org_id": id, "events": {"type": "integer"}, "intact": {"type": "boolean"},
            "first_broken_seq": {"type": ["integer", "null"]}, "problem": {"type": ["string", "null"]},
            "problem_kind": {"type": ["string", "null"], "enum": ["chain", "rolled_back", "rewritten", "invalid_checkpoint", null]},
            "missing": {"type": ["object", "null"]}, "checkpoints": {"type": "integer"}, "latest_checkpoint": {"type": ["object", "null"]},
            "deleted": {"type": "boolean"}}}));
    }
    schemas
}

fn org_schema(id: &Value, text: &Value, time: &Value) -> Value {
    json!({"type": "object", "required": ["id", "name", "region", "require_mfa", "created_at"], "properties": {"id": id, "name": text,
        "region": {"type": "string", "description": "the data-residency region: its content is stored only on that region's backends"},
        "require_mfa": {"type": "boolean"}, "created_at": time,
        "session_idle_secs": {"type": "integer"}, "session_absolute_secs": {"type": "integer"}, "trash_days": {"type": "integer"},
        "region_move": {"type": ["object", "null"], "properties": {"to": text, "status": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "blobs_in_region": {"type": "integer"}, "blobs_elsewhere": {"type": "integer"}}},
        "backups": {"type": "object", "description": "owners only: the instance's latest backup, verified backup and restore",
            "properties": {"last_backup": backup_run(), "last_verified": backup_run(), "last_restore": backup_run()}}}})
}

fn backup_run() -> Value {
    json!({"type": ["object", "null"], "required": ["backup_id", "finished_at", "ok"], "properties": {
        "backup_id": {"type": "string"}, "finished_at": {"type": "string", "format": "date-time"}, "ok": {"type": "boolean"}}})
}

fn merged(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

/// The schema of a path parameter, by name.
fn path_param(name: &str) -> Value {
    let prefix = match name {
        "org_id" => "org",
        "space_id" => "spc",
        "asset_id" => "ast",
        "key_id" => "key",
        "link_id" => "lnk",
        "session_id" => "ses",
        "user_id" => "usr",
        "role_id" => "rol",
        "invitation_id" => "inv",
        "playback_id" => "pbk",
        "name" => {
            return json!({"name": name, "in": "path", "required": true,
                "schema": {"type": "string", "enum": ["thumbnail", "preview"]}, "description": "the rendition"});
        }
        _ => {
            return json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}});
        }
    };
    json!({"name": name, "in": "path", "required": true, "schema": id(prefix),
        "description": "malformed or unknown ids, and those of another organization, are 404"})
}

/// A query parameter, by the name a route lists it under.
fn query_param(name: &str) -> Value {
    match name {
        "limit" => json!({"name": "limit", "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}),
        "cursor" => json!({"name": "cursor", "in": "query", "schema": {"type": "string"},
            "description": "the next_cursor of the previous page; any other value is 400"}),
        "audit_cursor" => json!({"name": "cursor", "in": "query",
            "schema": {"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX},
            "description": "the next_cursor of the previous page: events after this sequence number"}),
        "filename" => {
            let f = forbidden();
            json!({"name": "filename", "in": "query",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": format!("^[^/\\\\{f}]+$"),
                    "not": {"enum": [".", ".."]}},
                "description": "the file name (1 to 255 bytes of UTF-8). Required with a raw body (400 without it); \
                    with a multipart body it defaults to the part's file name, else \"upload\""})
        }
        "purge" => {
            json!({"name": "purge", "in": "query", "schema": {"type": "boolean", "default": false},
            "description": "crypto-shred now instead of moving to the trash (needs asset:purge); also purges an asset already in the trash"})
        }
        other => json!({"name": other, "in": "query", "schema": {"type": "string"}}),
    }
}

/// What each status means, for its description.
fn describe(status: u16) -> &'static str {
    match status {
        206 => "the requested range (Range)",
        304 => "not modified (If-None-Match matches the ETag)",
        400 => "malformed: JSON syntax, query parameters, a multipart body or a media type",
        401 => {
            "missing, unknown, expired or revoked credentials; or a wrong password or code \
                (invalid_credentials, mfa_required, reauthentication_required)"
        }
        403 => {
            "the credential may not do this (forbidden); a session without its X-CSRF-Token \
                (csrf_failed); a member who must enrol a second factor first (mfa_enrolment_required)"
        }
        404 => "not found, or in another organization",
        409 => "conflicts with the current state (conflict)",
        413 => "the body is over the limit (payload_too_large)",
        415 => "the body is not application/json",
        416 => "the range is outside the content",
        422 => "well-formed but refused: the detail says why (invalid_request, weak_password)",
        428 => {
            "solve the proof-of-work challenge in the problem's `challenge` and send it as captcha"
        }
        429 => "too many failed attempts: try again after Retry-After seconds",
        503 => {
            "the database is busy (busy) or the request ran past its deadline \
             (deadline_exceeded): try again after Retry-After; or something the request needs \
             is not set up or not answering (unavailable)"
        }
        _ => "error",
    }
}

fn header(description: &str, schema: Value, required: bool) -> Value {
    json!({"description": description, "required": required, "schema": schema})
}

fn problem_response(status: u16) -> Value {
    let mut r = json!({"description": describe(status),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let headers = match status {
        401 => json!({"WWW-Authenticate": header("Bearer", json!({"type": "string"}), true)}),
        416 => json!({"Content-Range": header("bytes */<size>", json!({"type": "string"}), true)}),
        429 => {
            json!({"Retry-After": header("seconds", json!({"type": "integer", "minimum": 0}), true)})
        }
        503 => json!({"Retry-After": header(
            "seconds (busy, deadline_exceeded)",
            json!({"type": "integer", "minimum": 0}),
            false
        )}),
        _ => return r,
    };
    r["headers"] = headers;
    r
}

/// The responses of a route: its success, each of its errors, and 503 (busy) for every route.
fn responses(r: &Route) -> Value {
    let etag = header(
        "the content's SHA-256, quoted",
        json!({"type": "string"}),
        true,
    );
    let bytes = json!({"*/*": {"schema": {"type": "string", "format": "binary"}}});
    let mut out = Map::new();
    let ok = match r.response {
        Some("bytes") => {
            json!({"description": "the content, with the media type it was uploaded with",
            "headers": {"ETag": etag}, "content": bytes})
        }
        Some("zip") => json!({"description": "a zip archive of JSON files (docs/privacy.md)",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}),
        Some("ndjson") => json!({"description": "newline-delimited JSON, streamed (docs/audit.md)",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}),
        Some(name) => json!({"description": "success",
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}}),
        None => json!({"description": "success"}),
    };
    out.insert(r.success.to_string(), ok);
    for &status in r.errors {
        let v = match status {
            206 => json!({"description": describe(206), "content": bytes, "headers": {"ETag": etag,
                "Content-Range": header("bytes <first>-<last>/<size>", json!({"type": "string"}), true)}}),
            304 => json!({"description": describe(304), "headers": {"ETag": etag}}),
            s => problem_response(s),
        };
        out.insert(status.to_string(), v);
    }
    // Any request can find the database busy (a lock held past the wait, no connection free),
    // and any non-streaming one can run past its deadline.
    out.entry("503").or_insert_with(|| problem_response(503));
    Value::Object(out)
}

fn request_body(spec: &str) -> Value {
    if spec == "bytes" {
        // No body at all is an empty file. Parts other than "file" are ignored.
        return json!({"required": false, "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}}}}}});
    }
    let (required, name) = match spec.strip_prefix("json?:") {
        Some(name) => (false, name),
        None => (true, spec.trim_start_matches("json:")),
    };
    json!({"required": required, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}})
}

fn operation(r: &Route) -> Value {
    let mut op = Map::new();
    op.insert("summary".into(), json!(r.summary));
    let mut params: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(path_param)
        .collect();
    params.extend(r.query.iter().map(|q| query_param(q)));
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if let Some(spec) = r.body {
        op.insert("requestBody".into(), request_body(spec));
    }
    op.insert("responses".into(), responses(r));
    let security = match r.auth {
        Credential::None => json!([]),
        Credential::KeyOrSession => json!([{"bearer": []}, {"session": []}]),
        Credential::Session => json!([{"session": []}]),
    };
    op.insert("security".into(), security);
    Value::Object(op)
}

/// The OpenAPI document of `/api/v1`.
pub fn document(limits: Limits) -> Value {
    let mut paths = Map::new();
    for r in ROUTES.iter().filter(|r| r.path.starts_with("/api/v1/")) {
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(r.method.to_lowercase(), operation(r));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Strongroom API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": merged(merged(request_schemas(limits), response_schemas()), usage_schemas()),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (srk_...)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "__Host-strongroom_session", "description": "From POST /api/v1/auth/login; unsafe methods also need X-CSRF-Token"},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(r: &Route) -> Vec<u16> {
        r.errors.to_vec()
    }

    /// What the extractors alone can answer is listed by every route that uses them.
    #[test]
    fn every_route_lists_what_its_extractors_answer() {
        for r in ROUTES {
            let s = statuses(r);
            let route = format!("{} {}", r.method, r.path);
            if r.auth != Credential::None {
                assert!(
                    s.contains(&401),
                    "{route}: a credential can be refused (401)"
                );
            }
            if r.auth == Credential::Session {
                assert!(s.contains(&403), "{route}: an API key is refused (403)");
            }
            if r.body.is_some_and(|b| b.starts_with("json:")) {
                for status in [400, 413, 415, 422] {
                    assert!(
                        s.contains(&status),
                        "{route}: a JSON body can be answered {status}"
                    );
                }
            }
            if r.path.contains("_id}") {
                assert!(
                    s.contains(&404),
                    "{route}: an id in the path can be unknown (404)"
                );
            }
            if r.query
                .iter()
                .any(|q| *q == "limit" || q.ends_with("cursor"))
            {
                assert!(s.contains(&400), "{route}: a bad limit or cursor is 400");
            }
            let mut sorted = s.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted, s, "{route}: errors are listed once each, in order");
            assert!(
                !s.contains(&r.success),
                "{route}: the success status is no error"
            );
        }
    }

    #[test]
    fn every_documented_status_has_a_described_response() {
        let doc = document(Limits { max_expires_in: 60 });
        let paths = doc["paths"].as_object().unwrap();
        for r in ROUTES.iter().filter(|r| r.path.starts_with("/api/v1/")) {
            let op = &paths[r.path][r.method.to_lowercase()];
            let documented: Vec<u16> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.parse().unwrap())
                .collect();
            let mut expected = statuses(r);
            expected.push(r.success);
            // Busy: every route.
            expected.push(503);
            expected.sort_unstable();
            expected.dedup();
            let mut documented = documented;
            documented.sort_unstable();
            assert_eq!(documented, expected, "{} {}", r.method, r.path);
            for status in r.errors.iter().filter(|s| **s >= 400) {
                let resp = &op["responses"][status.to_string()];
                assert_eq!(
                    resp["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{} {} {status}",
                    r.method,
                    r.path
                );
                assert_ne!(describe(*status), "error", "{status} has no description");
            }
        }
        let too_many = &doc["paths"]["/api/v1/auth/login"]["post"]["responses"]["429"];
        assert_eq!(too_many["headers"]["Retry-After"]["required"], true);
    }

    #[test]
    fn every_schema_reference_resolves() {
        let doc = document(Limits { max_expires_in: 60 });
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referenced but not defined"
            );
        }
    }

    fn regex(schema: &Value) -> regex::Regex {
        regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap()
    }

    /// The name pattern, checked against `Name::parse` on the cases that matter.
    #[test]
    fn the_name_pattern_agrees_with_the_domain() {
        let pattern = regex(&name(200, ""));
        let long = "x".repeat(200);
        for s in [
            "a",
            "  spaced out  ",
            "\u{3000}wide\u{3000}",
            "",
            "   ",
            "tab\there",
            "bidi\u{202e}txt",
            "tag\u{E0041}",
            "soft\u{00AD}hyphen",
            "zwj\u{200d}ok",
            "\u{2028}",
            &long,
            &format!("  {long}  "),
            &format!("{long}x"),
        ] {
            assert_eq!(
                pattern.is_match(s),
                strongroom_domain::Name::parse(s).is_ok(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_email_pattern_accepts_only_what_the_domain_does() {
        let pattern = regex(&email());
        for s in [
            "a@b.c",
            "A.B@Example.COM",
            "x@.",
            "no-at.example",
            "two@@example.com",
            "a@b@c.d",
            "sp ace@example.com",
            "a@nodot",
            "@example.com",
            "tab\t@example.com",
            "bidi\u{202e}@example.com",
        ] {
            if pattern.is_match(s) {
                assert!(strongroom_domain::Email::parse(s).is_ok(), "{s:?}");
            } else {
                assert!(strongroom_domain::Email::parse(s.trim()).is_err(), "{s:?}");
            }
        }
    }
}
