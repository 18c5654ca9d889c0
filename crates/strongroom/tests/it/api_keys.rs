//! The API key lifecycle through the API, on both backends: keys limited to some spaces see
//! nothing else; rotation hands out a new secret while the old one works for a grace period;
//! revocation and expiry are effective at once (on the node they were made through; see
//! `key_cache` for other processes); the key list shows the last use and never a
//! secret; another organization's key ids are not found; every step is in the audit trail.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use strongroom_domain::{Clock, SystemClock};

use crate::both_backends;
use crate::support::*;

/// `POST /orgs/{org}/api-keys` with `body`, as `key`.
async fn create_key(srv: &TestServer, key: &str, org: &str, body: Value) -> reqwest::Response {
    srv.req(
        Method::POST,
        &format!("/api/v1/orgs/{org}/api-keys"),
        Some(key),
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

/// Creates a key that must succeed; returns (id, secret).
pub(crate) async fn new_key(
    srv: &TestServer,
    key: &str,
    org: &str,
    body: Value,
) -> (String, String) {
    let v = expect_json(create_key(srv, key, org, body).await, StatusCode::CREATED).await;
    (
        v["id"].as_str().unwrap().to_owned(),
        v["api_key"].as_str().unwrap().to_owned(),
    )
}

/// The status `GET /api/v1/me` answers with this secret.
async fn me_status(srv: &TestServer, secret: &str) -> StatusCode {
    srv.req(Method::GET, "/api/v1/me", Some(secret))
        .send()
        .await
        .unwrap()
        .status()
}

/// Waits (at most 10 s) until `secret` is refused.
async fn until_refused(srv: &TestServer, secret: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while me_status(srv, secret).await != StatusCode::UNAUTHORIZED {
        assert!(Instant::now() < deadline, "{what} never stopped working");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /api-keys/{id}/rotate` with an optional JSON body, as `key`.
async fn rotate(srv: &TestServer, key: &str, id: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = srv.req(
        Method::POST,
        &format!("/api/v1/api-keys/{id}/rotate"),
        Some(key),
    );
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// Every key of the organization, as `key` lists them.
async fn list_keys(srv: &TestServer, key: &str, org: &str) -> Vec<Value> {
    let v = get_json(srv.req(
        Method::GET,
        &format!("/api/v1/orgs/{org}/api-keys?limit=1000"),
        Some(key),
    ))
    .await;
    v["items"].as_array().unwrap().clone()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The audit trail's (action, target) pairs.
async fn audit(srv: &TestServer, key: &str, org: &str) -> Vec<(String, String)> {
    let v = get_json(srv.req(
        Method::GET,
        &format!("/api/v1/orgs/{org}/audit?limit=1000"),
        Some(key),
    ))
    .await;
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn status(srv: &TestServer, method: Method, path: &str, key: &str) -> StatusCode {
    srv.req(method, path, Some(key))
        .send()
        .await
        .unwrap()
        .status()
}

both_backends! {
    async fn a_space_limited_key_sees_only_its_spaces(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.clone();
        let s1 = srv.create_space(&boot.api_key, &org, "one").await;
        let s2 = srv.create_space(&boot.api_key, &org, "two").await;
        let s3 = srv.create_space(&boot.api_key, &org, "three").await;
        let a1 = srv.upload(&boot.api_key, &s1, "a1", vec![1; 10]).await["id"].as_str().unwrap().to_owned();
        let a2 = srv.upload(&boot.api_key, &s2, "a2", vec![2; 10]).await["id"].as_str().unwrap().to_owned();

        let (_, limited) = new_key(&srv, &boot.api_key, &org, json!({"name": "one only", "role": "editor", "spaces": [s1]})).await;
        // The space list shows only its space.
        let listed = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/spaces"), Some(&limited))).await;
        assert_eq!(ids(listed["items"].as_array().unwrap()), [s1.as_str()]);
        // Its own space works in full.
        let assets = get_json(srv.req(Method::GET, &format!("/api/v1/spaces/{s1}/assets"), Some(&limited))).await;
        assert_eq!(ids(assets["items"].as_array().unwrap()), [a1.as_str()]);
        assert_eq!(download(&srv, &limited, &a1).await, vec![1; 10]);
        let up = srv.upload(&limited, &s1, "mine", vec![3; 5]).await;
        assert_eq!(up["space_id"], s1.as_str());
        // Everything elsewhere is invisible: not found, never forbidden.
        for (method, path) in [
            (Method::GET, format!("/api/v1/spaces/{s2}/assets")),
            (Method::GET, format!("/api/v1/assets/{a2}")),
            (Method::GET, format!("/api/v1/assets/{a2}/content")),
            (Method::DELETE, format!("/api/v1/assets/{a2}")),
        ] {
            let res = srv.req(method.clone(), &path, Some(&limited)).send().await.unwrap();
            expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        }
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{s2}/assets?filename=x"), Some(&limited))
            .body(vec![0u8; 4]).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        // The refused delete changed nothing.
        assert_eq!(download(&srv, &boot.api_key, &a2).await, vec![2; 10]);
        let others = get_json(srv.req(Method::GET, &format!("/api/v1/spaces/{s2}/assets"), Some(&boot.api_key))).await;
        assert_eq!(ids(others["items"].as_array().unwrap()), [a2.as_str()]);
        // A new space would be beyond its reach: creating one is forbidden.
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/spaces"), Some(&limited))
            .json(&json!({"name": "escape"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // Deleting inside its space works.
        assert_eq!(status(&srv, Method::DELETE, &format!("/api/v1/assets/{a1}"), &limited).await, StatusCode::NO_CONTENT);

        // A limited manager only makes keys within its own spaces, and only sees and manages those.
        let (lim_admin_id, lim_admin) = new_key(&srv, &boot.api_key, &org, json!({"name": "one and two", "role": "admin", "spaces": [s1, s2]})).await;
        let (sub_id, sub) = new_key(&srv, &lim_admin, &org, json!({"name": "sub", "role": "viewer", "spaces": [s2]})).await;
        let listed = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/spaces"), Some(&sub))).await;
        assert_eq!(ids(listed["items"].as_array().unwrap()), [s2.as_str()]);
        let res = create_key(&srv, &lim_admin, &org, json!({"name": "wide", "role": "viewer"})).await;
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let res = create_key(&srv, &lim_admin, &org, json!({"name": "beyond", "role": "viewer", "spaces": [s1, s3]})).await;
        let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        assert!(p["detail"].as_str().unwrap().contains("unknown space"), "{p}");
        let seen = ids(&list_keys(&srv, &lim_admin, &org).await);
        assert!(seen.contains(&lim_admin_id) && seen.contains(&sub_id), "{seen:?}");
        assert_eq!(seen.len(), 3, "a limited admin sees only keys within its spaces: {seen:?}");
        // The audit trail spans every space (file names included): not for a space-limited key.
        let res = srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit"), Some(&lim_admin)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let me = get_json(srv.req(Method::GET, "/api/v1/me", Some(&boot.api_key))).await;
        let boot_key_id = me["key_id"].as_str().unwrap();
        let res = rotate(&srv, &lim_admin, boot_key_id, None).await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = srv.req(Method::DELETE, &format!("/api/v1/api-keys/{boot_key_id}"), Some(&lim_admin)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        assert_eq!(me_status(&srv, &boot.api_key).await, StatusCode::OK);
        // Its own sub-key it can revoke.
        assert_eq!(status(&srv, Method::DELETE, &format!("/api/v1/api-keys/{sub_id}"), &lim_admin).await, StatusCode::NO_CONTENT);
        assert_eq!(me_status(&srv, &sub).await, StatusCode::UNAUTHORIZED);
    }

    async fn a_space_of_another_org_or_none_at_all_creates_nothing(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let rival = srv.bootstrap("rival@example.com", "rival");
        let org = boot.org_id.clone();
        let mine = srv.create_space(&boot.api_key, &org, "mine").await;
        let theirs = srv.create_space(&rival.api_key, &rival.org_id, "theirs").await;
        let keys_before = list_keys(&srv, &boot.api_key, &org).await.len();
        let audit_before = audit(&srv, &boot.api_key, &org).await.len();
        let missing = "spc_00000000000000000000000000000000".to_owned();
        for spaces in [json!([theirs]), json!([mine, theirs]), json!([missing]), json!(["not-an-id"])] {
            let res = create_key(&srv, &boot.api_key, &org, json!({"name": "x", "role": "viewer", "spaces": spaces})).await;
            let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
            // The same answer whether the space is another organization's or does not exist.
            assert!(p["detail"].as_str().unwrap().contains("unknown space"), "{p}");
        }
        let res = create_key(&srv, &boot.api_key, &org, json!({"name": "x", "role": "viewer", "spaces": []})).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        assert_eq!(list_keys(&srv, &boot.api_key, &org).await.len(), keys_before, "a refused key was stored");
        assert_eq!(audit(&srv, &boot.api_key, &org).await.len(), audit_before, "a refused key was audited");
        // The rival org's space is untouched and still invisible to this org.
        let res = srv.req(Method::GET, &format!("/api/v1/spaces/{theirs}/assets"), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;

        // Another organization's key ids are not found, to every key endpoint.
        let (rival_key_id, rival_key) = new_key(&srv, &rival.api_key, &rival.org_id, json!({"name": "theirs", "role": "viewer"})).await;
        let res = rotate(&srv, &boot.api_key, &rival_key_id, Some(json!({"grace_secs": 0}))).await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = srv.req(Method::DELETE, &format!("/api/v1/api-keys/{rival_key_id}"), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = srv.req(Method::GET, &format!("/api/v1/orgs/{}/api-keys", rival.org_id), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        for bad in ["not-an-id", "key_00000000000000000000000000000000"] {
            let res = rotate(&srv, &boot.api_key, bad, None).await;
            expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        }
        assert_eq!(me_status(&srv, &rival_key).await, StatusCode::OK, "another org revoked or rotated the key");
        assert!(!audit(&srv, &rival.api_key, &rival.org_id).await.iter().any(|(a, _)| a == "apikey.rotate" || a == "apikey.revoke"));
    }

    async fn rotation_keeps_the_old_secret_for_its_grace_period(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.clone();
        let (id, first) = new_key(&srv, &boot.api_key, &org, json!({"name": "ci", "role": "editor"})).await;

        // Default grace: 24 hours. No body at all is fine.
        let before = SystemClock.now();
        let v = expect_json(rotate(&srv, &boot.api_key, &id, None).await, StatusCode::OK).await;
        let second = v["api_key"].as_str().unwrap().to_owned();
        assert!(second.starts_with("srk_") && second != first);
        let until = v["previous_valid_until"].as_str().unwrap();
        let lo = before.plus_secs(24 * 3600).rfc3339();
        let hi = SystemClock.now().plus_secs(24 * 3600 + 1).rfc3339();
        assert!(lo.as_str() <= until && until <= hi.as_str(), "{until} not 24 h ahead ({lo}..{hi})");
        // Same key: same id and role, both secrets work.
        for s in [&first, &second] {
            let me = get_json(srv.req(Method::GET, "/api/v1/me", Some(s))).await;
            assert_eq!((me["key_id"].as_str().unwrap(), me["role"].as_str().unwrap()), (id.as_str(), "editor"));
        }

        // A one-second grace: the previous secret works, then stops; only one previous secret
        // is ever kept, so the first one stops at once.
        let v = expect_json(rotate(&srv, &boot.api_key, &id, Some(json!({"grace_secs": 1}))).await, StatusCode::OK).await;
        let third = v["api_key"].as_str().unwrap().to_owned();
        assert_eq!(me_status(&srv, &first).await, StatusCode::UNAUTHORIZED);
        assert_eq!(me_status(&srv, &third).await, StatusCode::OK);
        until_refused(&srv, &second, "the rotated-out secret").await;
        assert_eq!(me_status(&srv, &third).await, StatusCode::OK);

        // No grace: the old secret stops at once.
        let v = expect_json(rotate(&srv, &boot.api_key, &id, Some(json!({"grace_secs": 0}))).await, StatusCode::OK).await;
        let fourth = v["api_key"].as_str().unwrap().to_owned();
        assert_eq!(me_status(&srv, &third).await, StatusCode::UNAUTHORIZED);
        assert_eq!(me_status(&srv, &fourth).await, StatusCode::OK);

        // Bad grace periods and bodies are refused and change nothing.
        let res = rotate(&srv, &boot.api_key, &id, Some(json!({"grace_secs": 7 * 86400 + 1}))).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        let res = rotate(&srv, &boot.api_key, &id, Some(json!({"grace": 5}))).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        let res = srv.req(Method::POST, &format!("/api/v1/api-keys/{id}/rotate"), Some(&boot.api_key)).body("{").send().await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        assert_eq!(me_status(&srv, &fourth).await, StatusCode::OK);

        // Rotation never reaches a key above the caller's role.
        let (_, admin) = new_key(&srv, &boot.api_key, &org, json!({"name": "adm", "role": "admin"})).await;
        let me = get_json(srv.req(Method::GET, "/api/v1/me", Some(&boot.api_key))).await;
        let res = rotate(&srv, &admin, me["key_id"].as_str().unwrap(), None).await;
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        assert_eq!(me_status(&srv, &boot.api_key).await, StatusCode::OK);

        // Revocation stops the current and the previous secret together.
        let v = expect_json(rotate(&srv, &boot.api_key, &id, None).await, StatusCode::OK).await;
        let fifth = v["api_key"].as_str().unwrap().to_owned();
        assert_eq!(me_status(&srv, &fourth).await, StatusCode::OK, "the previous secret is in its grace period");
        assert_eq!(status(&srv, Method::DELETE, &format!("/api/v1/api-keys/{id}"), &boot.api_key).await, StatusCode::NO_CONTENT);
        assert_eq!(me_status(&srv, &fourth).await, StatusCode::UNAUTHORIZED);
        assert_eq!(me_status(&srv, &fifth).await, StatusCode::UNAUTHORIZED);
        // A revoked key cannot be brought back by rotating it.
        let res = rotate(&srv, &boot.api_key, &id, None).await;
        expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        let res = srv.req(Method::DELETE, &format!("/api/v1/api-keys/{id}"), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;

        // Every step is audited against the key.
        let events: Vec<String> = audit(&srv, &boot.api_key, &org).await.into_iter()
            .filter(|(_, t)| *t == id).map(|(a, _)| a).collect();
        assert_eq!(events, ["apikey.create", "apikey.rotate", "apikey.rotate", "apikey.rotate", "apikey.rotate", "apikey.revoke"]);
    }

    async fn the_key_list_shows_last_use_and_expiry_never_a_secret(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.clone();
        let space = srv.create_space(&boot.api_key, &org, "site").await;
        let (id, secret) = new_key(&srv, &boot.api_key, &org, json!({"name": "laptop", "role": "viewer", "spaces": [space]})).await;
        let (short_id, short) = new_key(&srv, &boot.api_key, &org, json!({"name": "short", "role": "viewer", "expires_in": 1})).await;
        let (_, unused) = new_key(&srv, &boot.api_key, &org, json!({"name": "unused", "role": "viewer"})).await;
        let before = list_keys(&srv, &boot.api_key, &org).await;
        let item = before.iter().find(|k| k["id"] == id.as_str()).unwrap();
        assert_eq!(item["last_used_at"], Value::Null);
        assert_eq!(me_status(&srv, &secret).await, StatusCode::OK);

        let items = list_keys(&srv, &boot.api_key, &org).await;
        let item = items.iter().find(|k| k["id"] == id.as_str()).unwrap();
        for field in ["id", "name", "role", "spaces", "created_at", "expires_at", "revoked_at", "last_used_at", "last_used_ip"] {
            assert!(item.get(field).is_some(), "no {field} in {item}");
        }
        assert_eq!(item["name"], "laptop");
        assert_eq!(item["role"], "viewer");
        assert_eq!(item["spaces"], json!([space]));
        assert!(item["last_used_at"].is_string(), "{item}");
        assert_eq!(item["last_used_ip"], "127.0.0.1");
        assert_eq!(item["revoked_at"], Value::Null);
        assert_eq!(item["expires_at"], Value::Null);
        let short_item = items.iter().find(|k| k["id"] == short_id.as_str()).unwrap();
        assert!(short_item["expires_at"].is_string(), "{short_item}");
        assert_eq!(short_item["spaces"], Value::Null);
        // No secret and no hash, anywhere in the list.
        let text = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/api-keys"), Some(&boot.api_key))).await.to_string();
        for s in [&boot.api_key, &secret, &short, &unused] {
            assert!(!text.contains(s.as_str()), "a secret is listed");
        }
        assert!(!text.contains("srk_") && !text.contains("hash") && !text.contains("api_key\""), "{text}");
        // Pages: one at a time, all of them, in creation order.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/orgs/{org}/api-keys?limit=1&cursor={c}"),
                None => format!("/api/v1/orgs/{org}/api-keys?limit=1"),
            };
            let page = get_json(srv.req(Method::GET, &path, Some(&boot.api_key))).await;
            seen.extend(ids(page["items"].as_array().unwrap()));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, ids(&items));

        // Expiry: the one-second key stops working, and cannot be rotated back to life.
        until_refused(&srv, &short, "the expiring key").await;
        let res = rotate(&srv, &boot.api_key, &short_id, None).await;
        expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        // Revocation shows in the list.
        assert_eq!(status(&srv, Method::DELETE, &format!("/api/v1/api-keys/{id}"), &boot.api_key).await, StatusCode::NO_CONTENT);
        let items = list_keys(&srv, &boot.api_key, &org).await;
        let item = items.iter().find(|k| k["id"] == id.as_str()).unwrap();
        assert!(item["revoked_at"].is_string(), "{item}");
    }
}
