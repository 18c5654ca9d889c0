//! The authorization matrix: every route the router serves x every kind of caller, with the
//! status each must get. The table is checked against the route table itself
//! (`strongroom_http::api::ROUTES`, which the router is built from), so a route added without a
//! row fails here. Another organization's resources answer 404, never 403: their existence is not
//! revealed.

use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::authz_table::table;
use crate::both_backends;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

/// The callers, in the column order of the table below.
const CALLERS: [&str; 18] = [
    "none",
    "viewer",
    "contributor",
    "editor",
    "admin",
    "owner",
    "custom",
    "collaborator",
    "other-org owner",
    "revoked",
    "expired",
    "removed member",
    "space-limited viewer",
    "space-limited contributor",
    "space-limited editor",
    "space-limited admin",
    "space-limited owner",
    "another admin's session",
];

/// The custom role of the `custom` caller's key: it may upload and share, but not read the
/// organization (no `org:read`) nor delete anything.
const UPLOADER: [&str; 4] = ["space:read", "asset:read", "asset:create", "link:create"];

/// How a caller authenticates.
enum Cred {
    None,
    /// `Authorization: Bearer`.
    Key(String),
    /// The session cookie, and the CSRF token on state-changing requests; the account's email
    /// and password, for rows that need a session of their own or the password.
    Session {
        web: Browser,
        email: String,
    },
}

struct Ctx {
    org: String,
    space: String,
    /// A processed video (so renditions and playback exist).
    asset: String,
    owner: String,
    /// A viewer who receives (and loses) space grants.
    grantee: String,
    /// A custom role the callers edit (to the permissions it already has).
    role: String,
    /// The collaborator, whose fresh sessions the session rows revoke.
    collaborator_email: String,
}

/// A row's statuses, parsed.
fn expected(row: &str) -> Vec<u16> {
    let v: Vec<u16> = row
        .split_whitespace()
        .filter(|t| *t != "|")
        .map(|t| t.parse().unwrap())
        .collect();
    assert_eq!(v.len(), CALLERS.len(), "{row}");
    v
}

/// A name no earlier call used (role names are unique in an organization).
fn unique_name(label: &str) -> String {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    format!("{label}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Something the owner makes with `body` at `path` (expecting 201), as JSON.
async fn made_by_owner(srv: &TestServer, owner: &str, path: &str, body: Value) -> Value {
    let res = srv
        .req(Method::POST, path, Some(owner))
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::CREATED).await
}

/// A fresh API key made by the owner's own key (so the owner owns it): its secret.
async fn owner_key(
    srv: &TestServer,
    ctx_org: &str,
    owner: &str,
    role: &str,
    spaces: Option<&str>,
) -> String {
    let mut body = json!({"name": unique_name(role), "role": role});
    if let Some(s) = spaces {
        body["spaces"] = json!([s]);
    }
    made_by_owner(
        srv,
        owner,
        &format!("/api/v1/orgs/{ctx_org}/api-keys"),
        body,
    )
    .await["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The id a placeholder of `route` stands for, making a fresh resource where the call consumes
/// it (deleting, revoking, rotating).
async fn resolve(srv: &TestServer, ctx: &Ctx, route: &str, param: &str) -> String {
    let owner = &ctx.owner;
    match param {
        "org_id" => ctx.org.clone(),
        "space_id" => ctx.space.clone(),
        "asset_id" if route == "DELETE /api/v1/assets/{asset_id}" => {
            srv.upload(owner, &ctx.space, "victim", vec![1, 2, 3]).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
        "asset_id" if route == "POST /api/v1/assets/{asset_id}/restore" => {
            let id = srv
                .upload(owner, &ctx.space, "deleted", vec![4, 5, 6])
                .await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let res = srv
                .req(Method::DELETE, &format!("/api/v1/assets/{id}"), Some(owner))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
            id
        }
        "asset_id" => ctx.asset.clone(),
        "link_id" => made_by_owner(
            srv,
            owner,
            &format!("/api/v1/assets/{}/links", ctx.asset),
            json!({"expires_in": 600}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        "key_id" => made_by_owner(
            srv,
            owner,
            &format!("/api/v1/orgs/{}/api-keys", ctx.org),
            json!({"name": "victim", "role": "viewer"}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        "user_id" if route.contains("/grants/") => {
            made_by_owner(
                srv,
                owner,
                &format!("/api/v1/spaces/{}/grants", ctx.space),
                json!({"user_id": ctx.grantee, "role": "viewer"}),
            )
            .await;
            ctx.grantee.clone()
        }
        "user_id" => add_member(srv, &ctx.org, &unique_email("victim"), "viewer", None),
        "role_id" if route.starts_with("DELETE") => made_by_owner(
            srv,
            owner,
            &format!("/api/v1/orgs/{}/roles", ctx.org),
            json!({"name": unique_name("doomed"), "permissions": ["asset:read"]}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        "role_id" => ctx.role.clone(),
        "invitation_id" => made_by_owner(
            srv,
            owner,
            &format!("/api/v1/orgs/{}/invitations", ctx.org),
            json!({"email": unique_email("withdrawn"), "role": "viewer"}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        "playback_id" => made_by_owner(
            srv,
            owner,
            &format!("/api/v1/assets/{}/playback", ctx.asset),
            json!({"expires_in": 600}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        "session_id" => sign_in(srv, &ctx.collaborator_email, PASSWORD).await.login["session_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        "name" => "thumbnail".into(),
        "token" => "Zm9yZ2VkLXRva2VuLXRoYXQtd2FzLW5ldmVyLWlzc3VlZA".into(),
        "*path" => "master.m3u8".into(),
        "*file" => "js/app.js".into(),
        other => panic!("no value for {{{other}}} in {route}: add one to resolve()"),
    }
}

/// The route with every `{param}` replaced.
async fn path_for(srv: &TestServer, ctx: &Ctx, route: &str) -> String {
    let template = route.split_once(' ').unwrap().1;
    let mut path = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        path.push_str(&rest[..open]);
        path.push_str(&resolve(srv, ctx, route, &rest[open + 1..close]).await);
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    path
}

/// The body a row sends; `own_password` is the caller's, for re-authentication.
fn body_for(route: &str, ctx: &Ctx) -> Option<Value> {
    Some(match route {
        "POST /api/v1/orgs/{org_id}/spaces" => json!({"name": "new space"}),
        "POST /api/v1/orgs/{org_id}/api-keys" => json!({"name": "made", "role": "viewer"}),
        "POST /api/v1/assets/{asset_id}/links" | "POST /api/v1/assets/{asset_id}/playback" => {
            json!({"expires_in": 600})
        }
        "POST /api/v1/auth/login" => json!({}),
        "POST /api/v1/auth/reauth" => json!({"password": PASSWORD}),
        "POST /api/v1/me/password" => {
            json!({"current_password": "not the password at all 1", "new_password": "a brand new passphrase 77"})
        }
        "POST /api/v1/me/mfa/totp/confirm" => json!({"code": "000000"}),
        "POST /api/v1/me/mfa/totp/disable" => json!({"password": "not the password at all 2"}),
        "PATCH /api/v1/orgs/{org_id}" => json!({"require_mfa": false}),
        "DELETE /api/v1/orgs/{org_id}" => json!({"confirm": "not its name"}),
        "PATCH /api/v1/spaces/{space_id}" => json!({"retention_days": null}),
        "PATCH /api/v1/orgs/{org_id}/members/{user_id}" => json!({"role": "viewer"}),
        "POST /api/v1/orgs/{org_id}/invitations" => {
            json!({"email": unique_email("invited"), "role": "viewer"})
        }
        "POST /api/v1/invitations/accept" => {
            json!({"token": "never-issued", "password": "whatever it is 12345"})
        }
        "POST /api/v1/orgs/{org_id}/roles" => {
            json!({"name": unique_name("made"), "permissions": ["asset:read"]})
        }
        "PATCH /api/v1/orgs/{org_id}/roles/{role_id}" => json!({"permissions": ["asset:read"]}),
        "POST /api/v1/spaces/{space_id}/grants" => {
            json!({"user_id": ctx.grantee, "role": "viewer"})
        }
        _ => return None,
    })
}

async fn call(srv: &TestServer, ctx: &Ctx, route: &str, cred: &Cred) -> StatusCode {
    let method: Method = route.split_once(' ').unwrap().0.parse().unwrap();
    let mut path = path_for(srv, ctx, route).await;
    if route == "POST /api/v1/spaces/{space_id}/assets" {
        path.push_str("?filename=new.bin");
    }
    // Logging out ends the session it is sent with, and erasure the account: a session caller
    // does either with a fresh session.
    let fresh;
    let cred = match cred {
        Cred::Session { email, .. }
            if (route == "POST /api/v1/auth/logout" || route == "DELETE /api/v1/me")
                && email != "removed" =>
        {
            fresh = Cred::Session {
                web: sign_in(srv, email, PASSWORD).await,
                email: email.clone(),
            };
            &fresh
        }
        other => other,
    };
    let mut req = match cred {
        Cred::None => srv.req(method.clone(), &path, None),
        Cred::Key(key) => srv.req(method.clone(), &path, Some(key)),
        Cred::Session { web, .. } if method == Method::GET => web.req(srv, method.clone(), &path),
        Cred::Session { web, .. } => web.send(srv, method.clone(), &path),
    };
    if let Some(body) = body_for(route, ctx) {
        req = req.json(&body);
    } else if route == "POST /api/v1/spaces/{space_id}/assets" {
        req = req.body(vec![7u8; 10]);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    if status.is_client_error() && !route.starts_with("GET /hls/") {
        // Every refusal is a problem document (HLS refusals are bare 404s for players).
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{route}"
        );
    }
    status
}

/// Every route the router serves, as `METHOD /path/{param}`.
fn served_routes() -> Vec<String> {
    strongroom_http::api::ROUTES
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn every_served_route_has_a_row_in_the_matrix() {
    let rows: Vec<&str> = table().iter().map(|(r, _)| *r).collect();
    let missing: Vec<String> = served_routes()
        .into_iter()
        .filter(|r| !rows.contains(&r.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the authorization matrix: {missing:?}"
    );
    let stale: Vec<&str> = rows
        .iter()
        .copied()
        .filter(|r| !served_routes().iter().any(|s| s == r))
        .collect();
    assert!(
        stale.is_empty(),
        "matrix rows for routes the router does not serve: {stale:?}"
    );
    for (_, row) in table() {
        expected(row);
    }
}

both_backends! {
    async fn every_route_by_every_caller(b: Backend) {
        // With mail, so that invitations can be made.
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let other = srv.bootstrap("rival@example.com", "rival");
        let org = boot.org_id.as_str();
        let owner = boot.api_key.clone();
        let space = srv.create_space(&owner, org, "site").await;
        let video = crate::video::make_video(1, 10);
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=clip.mp4"), Some(&owner))
            .header("content-type", "video/mp4").body(video).send().await.unwrap();
        let asset = expect_json(res, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
        let ready = crate::video::processed(&srv, &owner, &asset).await;
        assert_eq!(ready["status"], "ready", "{ready}");
        let key = |role: &str| srv.create_key(org, role).1;
        let (revoked_id, revoked) = srv.create_key(org, "admin");
        let res = srv.req(Method::DELETE, &format!("/api/v1/api-keys/{revoked_id}"), Some(&owner)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let expired = made_by_owner(&srv, &owner, &format!("/api/v1/orgs/{org}/api-keys"),
            json!({"name": "short", "role": "admin", "expires_in": 1})).await["api_key"].as_str().unwrap().to_owned();
        // A key holding a custom role.
        made_by_owner(&srv, &owner, &format!("/api/v1/orgs/{org}/roles"), json!({"name": "uploader", "permissions": UPLOADER})).await;
        let custom = owner_key(&srv, org, &owner, "uploader", None).await;
        // A collaborator granted editor in the space, signed in (collaborators make no keys).
        let collaborator_email = unique_email("collaborator");
        let collaborator = add_member(&srv, org, &collaborator_email, "collaborator", Some(PASSWORD));
        made_by_owner(&srv, &owner, &format!("/api/v1/spaces/{space}/grants"), json!({"user_id": collaborator, "role": "editor"})).await;
        let collaborator_web = sign_in(&srv, &collaborator_email, PASSWORD).await;
        // A member signed in, then removed: their session must be dead.
        let removed_email = unique_email("removed");
        let removed = add_member(&srv, org, &removed_email, "admin", Some(PASSWORD));
        let removed_web = sign_in(&srv, &removed_email, PASSWORD).await;
        let res = srv.req(Method::DELETE, &format!("/api/v1/orgs/{org}/members/{removed}"), Some(&owner)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        // Another admin, signed in: a member acting on what the owner made.
        let admin_email = unique_email("admin");
        add_member(&srv, org, &admin_email, "admin", Some(PASSWORD));
        let admin_web = sign_in(&srv, &admin_email, PASSWORD).await;
        let mut limited = Vec::new();
        for role in ["viewer", "contributor", "editor", "admin", "owner"] {
            limited.push(Cred::Key(owner_key(&srv, org, &owner, role, Some(&space)).await));
        }
        let mut creds = vec![
            Cred::None,
            Cred::Key(key("viewer")),
            Cred::Key(key("contributor")),
            Cred::Key(key("editor")),
            Cred::Key(key("admin")),
            Cred::Key(owner.clone()),
            Cred::Key(custom),
            Cred::Session { web: collaborator_web, email: collaborator_email.clone() },
            Cred::Key(other.api_key.clone()),
            Cred::Key(revoked),
            Cred::Key(expired.clone()),
            Cred::Session { web: removed_web, email: "removed".into() },
        ];
        creds.extend(limited);
        creds.push(Cred::Session { web: admin_web, email: admin_email });
        assert_eq!(creds.len(), CALLERS.len());
        // Wait (bounded) until the one-second key has expired.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while srv.req(Method::GET, "/api/v1/me", Some(&expired)).send().await.unwrap().status() != StatusCode::UNAUTHORIZED {
            assert!(std::time::Instant::now() < deadline, "the expiring key never expired");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let grantee = add_member(&srv, org, &unique_email("grantee"), "viewer", None);
        let role = made_by_owner(&srv, &owner, &format!("/api/v1/orgs/{org}/roles"),
            json!({"name": "edited", "permissions": ["asset:read"]})).await["id"].as_str().unwrap().to_owned();
        let ctx = Ctx { org: boot.org_id.clone(), space, asset, owner, grantee, role, collaborator_email };
        let mut failures = Vec::new();
        for (route, row) in table() {
            for (i, (cred, want)) in creds.iter().zip(expected(row)).enumerate() {
                let got = call(&srv, &ctx, route, cred).await;
                if got.as_u16() != want {
                    failures.push(format!("{route} as {}: expected {want}, got {}", CALLERS[i], got.as_u16()));
                }
            }
        }
        assert!(failures.is_empty(), "authorization matrix mismatches:\n{}", failures.join("\n"));
    }

    async fn a_space_not_granted_to_a_collaborator_does_not_exist_for_them(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let granted = srv.create_space(key, org, "granted").await;
        let hidden = srv.create_space(key, org, "hidden").await;
        let seen = srv.upload(key, &granted, "seen.txt", b"seen".to_vec()).await["id"].as_str().unwrap().to_owned();
        let unseen = srv.upload(key, &hidden, "unseen.txt", b"unseen".to_vec()).await["id"].as_str().unwrap().to_owned();
        let email = unique_email("collaborator");
        let collaborator = add_member(&srv, org, &email, "collaborator", Some(PASSWORD));
        made_by_owner(&srv, key, &format!("/api/v1/spaces/{granted}/grants"), json!({"user_id": collaborator, "role": "editor"})).await;
        let web = sign_in(&srv, &email, PASSWORD).await;

        // The granted space and its asset are there...
        assert_eq!(status(web.req(&srv, Method::GET, &format!("/api/v1/spaces/{granted}/assets"))).await, StatusCode::OK);
        assert_eq!(status(web.req(&srv, Method::GET, &format!("/api/v1/assets/{seen}"))).await, StatusCode::OK);
        // ...the other space and its asset are not found, not forbidden: the collaborator does
        // not learn they exist, though they plainly do.
        let not_found = [
            web.req(&srv, Method::GET, &format!("/api/v1/spaces/{hidden}/assets")),
            web.req(&srv, Method::GET, &format!("/api/v1/assets/{unseen}")),
            web.req(&srv, Method::GET, &format!("/api/v1/assets/{unseen}/content")),
            web.send(&srv, Method::DELETE, &format!("/api/v1/assets/{unseen}")),
        ];
        for req in not_found {
            expect_problem(req.send().await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        }
        assert_eq!(status(srv.req(Method::GET, &format!("/api/v1/assets/{unseen}"), Some(key))).await, StatusCode::OK);
        // A grant on the other space is what makes it appear, at the next request.
        made_by_owner(&srv, key, &format!("/api/v1/spaces/{hidden}/grants"), json!({"user_id": collaborator, "role": "viewer"})).await;
        assert_eq!(status(web.req(&srv, Method::GET, &format!("/api/v1/spaces/{hidden}/assets"))).await, StatusCode::OK);
        assert_eq!(status(web.req(&srv, Method::GET, &format!("/api/v1/assets/{unseen}"))).await, StatusCode::OK);
    }

    async fn other_org_ids_and_malformed_ids_are_not_found(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let a = srv.bootstrap("a@example.com", "a-corp");
        let bb = srv.bootstrap("b@example.com", "b-corp");
        let b_space = srv.create_space(&bb.api_key, &bb.org_id, "b-space").await;
        let b_asset = srv.upload(&bb.api_key, &b_space, "b", vec![1]).await["id"].as_str().unwrap().to_owned();
        let paths = [
            format!("/api/v1/orgs/{}/spaces", bb.org_id),
            format!("/api/v1/orgs/{}/audit", bb.org_id),
            format!("/api/v1/orgs/{}/api-keys", bb.org_id),
            format!("/api/v1/spaces/{b_space}/assets"),
            format!("/api/v1/assets/{b_asset}"),
            format!("/api/v1/assets/{b_asset}/content"),
            format!("/api/v1/assets/{b_asset}/links"),
            "/api/v1/assets/ast_00000000000000000000000000000000".into(),
            "/api/v1/assets/not-an-id".into(),
            "/api/v1/spaces/../assets".into(),
        ];
        for p in paths {
            let res = srv.req(Method::GET, &p, Some(&a.api_key)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{p}");
        }
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{b_asset}"), Some(&a.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        // B's links are as invisible as B's assets: not made, not revoked.
        let res = srv.req(Method::POST, &format!("/api/v1/assets/{b_asset}/links"), Some(&a.api_key))
            .json(&json!({"expires_in": 60})).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let b_link = expect_json(
            srv.req(Method::POST, &format!("/api/v1/assets/{b_asset}/links"), Some(&bb.api_key))
                .json(&json!({"expires_in": 60})).send().await.unwrap(),
            StatusCode::CREATED,
        ).await;
        let res = srv.req(Method::DELETE, &format!("/api/v1/links/{}", b_link["id"].as_str().unwrap()), Some(&a.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = srv.client.get(b_link["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(res.bytes().await.unwrap().as_ref(), &[1]);
        // B's asset is intact.
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{b_asset}/content"), Some(&bb.api_key)).send().await.unwrap();
        assert_eq!(res.bytes().await.unwrap().as_ref(), &[1]);
    }

    async fn keys_never_exceed_their_owner(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (_, admin) = srv.create_key(&boot.org_id, "admin");
        // An admin cannot mint an owner key.
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{}/api-keys", boot.org_id), Some(&admin))
            .json(&json!({"name": "escalate", "role": "owner"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // Demote the bootstrap user (another owner remains): their owner key shrinks to viewer at once.
        let out = srv.run(&["admin", "create-user", "--email", "second@example.com", "--org", &boot.org_id, "--role", "owner", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = srv.run(&["admin", "create-user", "--email", "owner@example.com", "--org", &boot.org_id, "--role", "viewer", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let me = expect_json(srv.req(Method::GET, "/api/v1/me", Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(me["role"], "viewer");
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{}/spaces", boot.org_id), Some(&boot.api_key))
            .json(&json!({"name": "x"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // Bad key shapes are all plain 401s.
        for bad in ["", "srk_", "srk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "Basic abc", &boot.api_key[..boot.api_key.len() - 1]] {
            let res = srv.client.get(srv.url("/api/v1/me")).header("authorization", format!("Bearer {bad}")).send().await.unwrap();
            expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        }
    }
}
