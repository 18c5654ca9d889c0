//! The authorization matrix: every endpoint x every kind of caller, with the status each must
//! get. Another organization's resources answer 404, never 403: their existence is not revealed.

use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

/// The callers, in the column order of the table below.
const CALLERS: [&str; 11] = [
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
];

/// The custom role of the `custom` caller's key: it may upload and share, but not read the
/// organization (no `org:read`) nor delete anything.
const UPLOADER: [&str; 4] = ["space:read", "asset:read", "asset:create", "link:create"];

/// How a caller authenticates.
enum Cred {
    None,
    /// `Authorization: Bearer`.
    Key(String),
    /// The session cookie, and the CSRF token on state-changing requests.
    Session(Browser),
}

struct Ctx {
    org: String,
    space: String,
    asset: String,
    owner: String,
    /// A viewer who receives (and loses) space grants.
    grantee: String,
    /// A custom role the callers edit (to the permissions it already has).
    role: String,
}

/// Endpoint label, and the expected status per caller (same order as `CALLERS`).
fn table() -> Vec<(&'static str, [u16; 11])> {
    vec![
        (
            "GET /api/v1/me",
            [401, 200, 200, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            "POST /api/v1/orgs/A/spaces",
            [401, 403, 403, 403, 201, 201, 403, 403, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/spaces",
            [401, 200, 200, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "POST /api/v1/spaces/S/assets",
            [401, 403, 201, 201, 201, 201, 201, 201, 404, 401, 401],
        ),
        (
            "GET /api/v1/spaces/S/assets",
            [401, 200, 200, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "GET /api/v1/assets/X",
            [401, 200, 200, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "GET /api/v1/assets/X/content",
            [401, 200, 200, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/assets/NEW",
            [401, 403, 403, 204, 204, 204, 403, 204, 404, 401, 401],
        ),
        (
            "POST /api/v1/assets/X/links",
            [401, 403, 403, 201, 201, 201, 201, 201, 404, 401, 401],
        ),
        (
            "GET /api/v1/assets/X/links",
            [401, 403, 403, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/links/NEW",
            [401, 403, 403, 204, 204, 204, 403, 204, 404, 401, 401],
        ),
        (
            "POST /api/v1/orgs/A/api-keys",
            [401, 403, 403, 403, 201, 201, 403, 403, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/api-keys",
            [401, 403, 403, 403, 200, 200, 403, 403, 404, 401, 401],
        ),
        (
            "POST /api/v1/api-keys/NEW/rotate",
            [401, 403, 403, 403, 200, 200, 403, 403, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/api-keys/NEW",
            [401, 403, 403, 403, 204, 204, 403, 403, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/audit",
            [401, 403, 403, 403, 200, 200, 403, 403, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/members",
            [401, 403, 403, 403, 200, 200, 403, 403, 404, 401, 401],
        ),
        (
            "PATCH /api/v1/orgs/A/members/VICTIM",
            [401, 403, 403, 403, 200, 200, 403, 403, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/orgs/A/members/VICTIM",
            [401, 403, 403, 403, 204, 204, 403, 403, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/roles",
            [401, 200, 200, 200, 200, 200, 403, 200, 404, 401, 401],
        ),
        (
            "POST /api/v1/orgs/A/roles",
            [401, 403, 403, 403, 201, 201, 403, 403, 404, 401, 401],
        ),
        (
            "PATCH /api/v1/orgs/A/roles/R",
            [401, 403, 403, 403, 200, 200, 403, 403, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/orgs/A/roles/NEW",
            [401, 403, 403, 403, 204, 204, 403, 403, 404, 401, 401],
        ),
        (
            "POST /api/v1/spaces/S/grants",
            [401, 403, 403, 403, 201, 201, 403, 403, 404, 401, 401],
        ),
        (
            "GET /api/v1/spaces/S/grants",
            [401, 403, 403, 403, 200, 200, 403, 403, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/spaces/S/grants/NEW",
            [401, 403, 403, 403, 204, 204, 403, 403, 404, 401, 401],
        ),
        (
            "POST /api/v1/orgs/A/invitations",
            [401, 403, 403, 403, 201, 201, 403, 403, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/invitations",
            [401, 403, 403, 403, 200, 200, 403, 403, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/invitations/NEW",
            [401, 403, 403, 403, 204, 204, 403, 403, 404, 401, 401],
        ),
    ]
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

async fn call(srv: &TestServer, ctx: &Ctx, endpoint: &str, cred: &Cred) -> StatusCode {
    let (method, template) = endpoint.split_once(' ').unwrap();
    let method: Method = method.parse().unwrap();
    let mut path = template
        .replace("/A/", &format!("/{}/", ctx.org))
        .replace("/S/", &format!("/{}/", ctx.space));
    if path.ends_with("/X") || path.contains("/X/") {
        path = path.replace("/X", &format!("/{}", ctx.asset));
    }
    if path.ends_with("roles/R") {
        path = path.replace("roles/R", &format!("roles/{}", ctx.role));
    }
    if path.ends_with("assets/NEW") {
        // A fresh asset per call: deleting consumes it.
        let a = srv
            .upload(&ctx.owner, &ctx.space, "victim", vec![1, 2, 3])
            .await;
        path = path.replace("NEW", a["id"].as_str().unwrap());
    }
    if path.ends_with("links/NEW") {
        // A fresh link per call: revoking consumes it.
        let l = made_by_owner(
            srv,
            &ctx.owner,
            &format!("/api/v1/assets/{}/links", ctx.asset),
            json!({"expires_in": 600}),
        )
        .await;
        path = path.replace("NEW", l["id"].as_str().unwrap());
    }
    if path.contains("api-keys/NEW") {
        // A fresh viewer key per call: revoking or rotating changes it.
        let k = made_by_owner(
            srv,
            &ctx.owner,
            &format!("/api/v1/orgs/{}/api-keys", ctx.org),
            json!({"name": "victim", "role": "viewer"}),
        )
        .await;
        path = path.replace("NEW", k["id"].as_str().unwrap());
    }
    if path.ends_with("members/VICTIM") {
        // A fresh viewer per call: removing consumes them, a role change changes them.
        let victim = add_member(srv, &ctx.org, &unique_email("victim"), "viewer", None);
        path = path.replace("VICTIM", &victim);
    }
    if path.ends_with("roles/NEW") {
        // A fresh role nobody holds per call: deleting consumes it.
        let r = made_by_owner(
            srv,
            &ctx.owner,
            &format!("/api/v1/orgs/{}/roles", ctx.org),
            json!({"name": unique_name("doomed"), "permissions": ["asset:read"]}),
        )
        .await;
        path = path.replace("NEW", r["id"].as_str().unwrap());
    }
    if path.ends_with("grants/NEW") {
        // A fresh grant per call: taking it back consumes it.
        made_by_owner(
            srv,
            &ctx.owner,
            &format!("/api/v1/spaces/{}/grants", ctx.space),
            json!({"user_id": ctx.grantee, "role": "viewer"}),
        )
        .await;
        path = path.replace("NEW", &ctx.grantee);
    }
    if path.ends_with("invitations/NEW") {
        // A fresh invitation per call: withdrawing consumes it.
        let i = made_by_owner(
            srv,
            &ctx.owner,
            &format!("/api/v1/orgs/{}/invitations", ctx.org),
            json!({"email": unique_email("withdrawn"), "role": "viewer"}),
        )
        .await;
        path = path.replace("NEW", i["id"].as_str().unwrap());
    }
    if path.ends_with("/assets") && method == Method::POST {
        path.push_str("?filename=new.bin");
    }
    let mut req = match cred {
        Cred::None => srv.req(method.clone(), &path, None),
        Cred::Key(key) => srv.req(method.clone(), &path, Some(key)),
        Cred::Session(web) if method == Method::GET => web.req(srv, method.clone(), &path),
        Cred::Session(web) => web.send(srv, method.clone(), &path),
    };
    if path.ends_with("/spaces") && method == Method::POST {
        req = req.json(&json!({"name": "new space"}));
    } else if path.ends_with("/links") && method == Method::POST {
        req = req.json(&json!({"expires_in": 600}));
    } else if path.ends_with("/api-keys") && method == Method::POST {
        req = req.json(&json!({"name": "made", "role": "viewer"}));
    } else if path.ends_with("?filename=new.bin") {
        req = req.body(vec![7u8; 10]);
    } else if path.contains("/members/") && method == Method::PATCH {
        req = req.json(&json!({"role": "viewer"}));
    } else if path.ends_with("/roles") && method == Method::POST {
        req = req.json(&json!({"name": unique_name("made"), "permissions": ["asset:read"]}));
    } else if path.contains("/roles/") && method == Method::PATCH {
        req = req.json(&json!({"permissions": ["asset:read"]}));
    } else if path.ends_with("/grants") && method == Method::POST {
        req = req.json(&json!({"user_id": ctx.grantee, "role": "viewer"}));
    } else if path.ends_with("/invitations") && method == Method::POST {
        req = req.json(&json!({"email": unique_email("invited"), "role": "viewer"}));
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    if status.is_client_error() {
        // Every refusal is a problem document.
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{endpoint}"
        );
    }
    status
}

both_backends! {
    async fn every_endpoint_by_every_caller(b: Backend) {
        // With mail, so that invitations can be made.
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let other = srv.bootstrap("rival@example.com", "rival");
        let org = boot.org_id.as_str();
        let space = srv.create_space(&boot.api_key, org, "site").await;
        let asset = srv.upload(&boot.api_key, &space, "doc", vec![9u8; 100]).await["id"].as_str().unwrap().to_owned();
        let key = |role: &str| srv.create_key(org, role).1;
        let (revoked_id, revoked) = srv.create_key(org, "admin");
        let res = srv.req(Method::DELETE, &format!("/api/v1/api-keys/{revoked_id}"), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let expired = made_by_owner(&srv, &boot.api_key, &format!("/api/v1/orgs/{org}/api-keys"),
            json!({"name": "short", "role": "admin", "expires_in": 1})).await["api_key"].as_str().unwrap().to_owned();
        // A key holding a custom role.
        made_by_owner(&srv, &boot.api_key, &format!("/api/v1/orgs/{org}/roles"), json!({"name": "uploader", "permissions": UPLOADER})).await;
        let custom = made_by_owner(&srv, &boot.api_key, &format!("/api/v1/orgs/{org}/api-keys"),
            json!({"name": "custom", "role": "uploader"})).await["api_key"].as_str().unwrap().to_owned();
        // A collaborator granted editor in the space, signed in (collaborators make no keys).
        let collaborator_email = unique_email("collaborator");
        let collaborator = add_member(&srv, org, &collaborator_email, "collaborator", Some(PASSWORD));
        made_by_owner(&srv, &boot.api_key, &format!("/api/v1/spaces/{space}/grants"), json!({"user_id": collaborator, "role": "editor"})).await;
        let web = sign_in(&srv, &collaborator_email, PASSWORD).await;
        let creds = vec![
            Cred::None,
            Cred::Key(key("viewer")),
            Cred::Key(key("contributor")),
            Cred::Key(key("editor")),
            Cred::Key(key("admin")),
            Cred::Key(boot.api_key.clone()),
            Cred::Key(custom),
            Cred::Session(web),
            Cred::Key(other.api_key.clone()),
            Cred::Key(revoked),
            Cred::Key(expired.clone()),
        ];
        // Wait (bounded) until the one-second key has expired.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while srv.req(Method::GET, "/api/v1/me", Some(&expired)).send().await.unwrap().status() != StatusCode::UNAUTHORIZED {
            assert!(std::time::Instant::now() < deadline, "the expiring key never expired");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let grantee = add_member(&srv, org, &unique_email("grantee"), "viewer", None);
        let role = made_by_owner(&srv, &boot.api_key, &format!("/api/v1/orgs/{org}/roles"),
            json!({"name": "edited", "permissions": ["asset:read"]})).await["id"].as_str().unwrap().to_owned();
        let ctx = Ctx { org: boot.org_id.clone(), space, asset, owner: boot.api_key.clone(), grantee, role };
        let mut failures = Vec::new();
        for (endpoint, expected) in table() {
            for (i, cred) in creds.iter().enumerate() {
                let got = call(&srv, &ctx, endpoint, cred).await;
                if got.as_u16() != expected[i] {
                    failures.push(format!("{endpoint} as {}: expected {}, got {}", CALLERS[i], expected[i], got.as_u16()));
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
