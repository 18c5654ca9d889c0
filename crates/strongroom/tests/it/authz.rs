//! The authorization matrix: every endpoint x every kind of caller, with the status each must
//! get. Another organization's resources answer 404, never 403: their existence is not revealed.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::*;

/// The callers, in the column order of the table below.
const CALLERS: [&str; 9] = [
    "none",
    "viewer",
    "contributor",
    "editor",
    "admin",
    "owner",
    "other-org owner",
    "revoked",
    "expired",
];

struct Ctx {
    org: String,
    space: String,
    asset: String,
    owner: String,
}

/// Endpoint label, and the expected status per caller (same order as `CALLERS`).
fn table() -> Vec<(&'static str, [u16; 9])> {
    vec![
        (
            "GET /api/v1/me",
            [401, 200, 200, 200, 200, 200, 200, 401, 401],
        ),
        (
            "POST /api/v1/orgs/A/spaces",
            [401, 403, 403, 403, 201, 201, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/spaces",
            [401, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "POST /api/v1/spaces/S/assets",
            [401, 403, 201, 201, 201, 201, 404, 401, 401],
        ),
        (
            "GET /api/v1/spaces/S/assets",
            [401, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "GET /api/v1/assets/X",
            [401, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "GET /api/v1/assets/X/content",
            [401, 200, 200, 200, 200, 200, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/assets/NEW",
            [401, 403, 403, 204, 204, 204, 404, 401, 401],
        ),
        (
            "POST /api/v1/assets/X/links",
            [401, 403, 403, 201, 201, 201, 404, 401, 401],
        ),
        (
            "GET /api/v1/assets/X/links",
            [401, 403, 403, 200, 200, 200, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/links/NEW",
            [401, 403, 403, 204, 204, 204, 404, 401, 401],
        ),
        (
            "POST /api/v1/orgs/A/api-keys",
            [401, 403, 403, 403, 201, 201, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/api-keys",
            [401, 403, 403, 403, 200, 200, 404, 401, 401],
        ),
        (
            "POST /api/v1/api-keys/NEW/rotate",
            [401, 403, 403, 403, 200, 200, 404, 401, 401],
        ),
        (
            "DELETE /api/v1/api-keys/NEW",
            [401, 403, 403, 403, 204, 204, 404, 401, 401],
        ),
        (
            "GET /api/v1/orgs/A/audit",
            [401, 403, 403, 403, 200, 200, 404, 401, 401],
        ),
    ]
}

async fn call(srv: &TestServer, ctx: &Ctx, endpoint: &str, key: Option<&str>) -> StatusCode {
    let (method, template) = endpoint.split_once(' ').unwrap();
    let method: Method = method.parse().unwrap();
    let mut path = template
        .replace("/A/", &format!("/{}/", ctx.org))
        .replace("/S/", &format!("/{}/", ctx.space));
    if path.ends_with("/X") || path.contains("/X/") {
        path = path.replace("/X", &format!("/{}", ctx.asset));
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
        let res = srv
            .req(
                Method::POST,
                &format!("/api/v1/assets/{}/links", ctx.asset),
                Some(&ctx.owner),
            )
            .json(&json!({"expires_in": 600}))
            .send()
            .await
            .unwrap();
        let l = expect_json(res, StatusCode::CREATED).await;
        path = path.replace("NEW", l["id"].as_str().unwrap());
    }
    if path.contains("api-keys/NEW") {
        // A fresh viewer key per call: revoking or rotating changes it.
        let res = srv
            .req(
                Method::POST,
                &format!("/api/v1/orgs/{}/api-keys", ctx.org),
                Some(&ctx.owner),
            )
            .json(&json!({"name": "victim", "role": "viewer"}))
            .send()
            .await
            .unwrap();
        let k = expect_json(res, StatusCode::CREATED).await;
        path = path.replace("NEW", k["id"].as_str().unwrap());
    }
    if path.ends_with("/assets") && method == Method::POST {
        path.push_str("?filename=new.bin");
    }
    let mut req = srv.req(method.clone(), &path, key);
    if path.ends_with("/spaces") && method == Method::POST {
        req = req.json(&json!({"name": "new space"}));
    } else if path.ends_with("/links") && method == Method::POST {
        req = req.json(&json!({"expires_in": 600}));
    } else if path.ends_with("/api-keys") && method == Method::POST {
        req = req.json(&json!({"name": "made", "role": "viewer"}));
    } else if path.ends_with("?filename=new.bin") {
        req = req.body(vec![7u8; 10]);
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
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let other = srv.bootstrap("rival@example.com", "rival");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let asset = srv.upload(&boot.api_key, &space, "doc", vec![9u8; 100]).await["id"].as_str().unwrap().to_owned();
        let key = |role: &str| srv.create_key(&boot.org_id, role).1;
        let (revoked_id, revoked) = srv.create_key(&boot.org_id, "admin");
        let res = srv.req(Method::DELETE, &format!("/api/v1/api-keys/{revoked_id}"), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let expired = expect_json(
            srv.req(Method::POST, &format!("/api/v1/orgs/{}/api-keys", boot.org_id), Some(&boot.api_key))
                .json(&json!({"name": "short", "role": "admin", "expires_in": 1})).send().await.unwrap(),
            StatusCode::CREATED,
        ).await["api_key"].as_str().unwrap().to_owned();
        let keys: Vec<Option<String>> = vec![
            None,
            Some(key("viewer")),
            Some(key("contributor")),
            Some(key("editor")),
            Some(key("admin")),
            Some(boot.api_key.clone()),
            Some(other.api_key.clone()),
            Some(revoked),
            Some(expired.clone()),
        ];
        // Wait (bounded) until the one-second key has expired.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while srv.req(Method::GET, "/api/v1/me", Some(&expired)).send().await.unwrap().status() != StatusCode::UNAUTHORIZED {
            assert!(std::time::Instant::now() < deadline, "the expiring key never expired");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let ctx = Ctx { org: boot.org_id.clone(), space, asset, owner: boot.api_key.clone() };
        let mut failures = Vec::new();
        for (endpoint, expected) in table() {
            for (i, key) in keys.iter().enumerate() {
                let got = call(&srv, &ctx, endpoint, key.as_deref()).await;
                if got.as_u16() != expected[i] {
                    failures.push(format!("{endpoint} as {}: expected {}, got {}", CALLERS[i], expected[i], got.as_u16()));
                }
            }
        }
        assert!(failures.is_empty(), "authorization matrix mismatches:\n{}", failures.join("\n"));
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
