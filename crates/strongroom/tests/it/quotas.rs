//! Storage quotas: an organization cannot store more bytes or assets than the operator allows,
//! however many uploads race, and its members can see where they stand.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::*;

async fn put(
    srv: &TestServer,
    key: &str,
    space: &str,
    name: &str,
    len: usize,
) -> reqwest::Response {
    srv.req(
        Method::POST,
        &format!("/api/v1/spaces/{space}/assets?filename={name}"),
        Some(key),
    )
    .body(vec![b'q'; len])
    .send()
    .await
    .unwrap()
}

fn set_quota(srv: &TestServer, org: &str, bytes: &str, assets: &str) -> serde_json::Value {
    srv.run_json(&[
        "admin",
        "set-quota",
        "--org",
        org,
        "--max-bytes",
        bytes,
        "--max-assets",
        assets,
        "--json",
    ])
}

both_backends! {
    async fn uploads_stop_at_the_quota_and_usage_shows_it(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(key, org, "site").await;
        let set = set_quota(&srv, org, "100", "2");
        assert_eq!(set["quota"], json!({"max_bytes": 100, "max_assets": 2}));
        assert_eq!(put(&srv, key, &space, "a", 60).await.status(), StatusCode::CREATED);
        // 60 + 50 would pass 100 bytes: refused with a clear problem, nothing stored.
        let problem = expect_problem(put(&srv, key, &space, "b", 50).await, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded").await;
        assert!(problem["detail"].as_str().unwrap().contains("100 bytes"), "{problem}");
        assert_eq!(put(&srv, key, &space, "c", 40).await.status(), StatusCode::CREATED);
        // Two assets: a third is refused however small.
        let problem = expect_problem(put(&srv, key, &space, "d", 0).await, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded").await;
        assert!(problem["detail"].as_str().unwrap().contains("2 assets"), "{problem}");
        let usage = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/usage"), Some(key))).await;
        assert_eq!(usage, json!({"bytes": 100, "assets": 2, "max_bytes": 100, "max_assets": 2}));
        let assets = get_json(srv.req(Method::GET, &format!("/api/v1/spaces/{space}/assets"), Some(key))).await;
        assert_eq!(assets["items"].as_array().unwrap().len(), 2);
        // An asset in the trash still holds its bytes, so it still counts; purging makes room.
        let first = assets["items"][0]["id"].as_str().unwrap().to_owned();
        assert_eq!(status(srv.req(Method::DELETE, &format!("/api/v1/assets/{first}"), Some(key))).await, StatusCode::NO_CONTENT);
        let problem = expect_problem(put(&srv, key, &space, "e", 10).await, StatusCode::INSUFFICIENT_STORAGE, "quota_exceeded").await;
        assert!(problem["detail"].as_str().unwrap().contains("trash"), "{problem}");
        assert_eq!(status(srv.req(Method::DELETE, &format!("/api/v1/assets/{first}?purge=true"), Some(key))).await, StatusCode::NO_CONTENT);
        assert_eq!(put(&srv, key, &space, "e", 10).await.status(), StatusCode::CREATED);
        set_quota(&srv, org, "none", "none");
        assert_eq!(put(&srv, key, &space, "f", 500).await.status(), StatusCode::CREATED);
        let usage = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/usage"), Some(key))).await;
        assert_eq!(usage["max_bytes"], json!(null));
        // Another organization's usage is not found; a bad quota value is one clear sentence.
        let other = srv.bootstrap("rival@example.com", "rival");
        assert_eq!(status(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/usage"), Some(&other.api_key))).await, StatusCode::NOT_FOUND);
        let out = srv.run(&["admin", "set-quota", "--org", org, "--max-bytes", "lots", "--max-assets", "none"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--max-bytes takes a whole number"));
    }

    async fn racing_uploads_never_pass_the_quota_together(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(key, org, "site").await;
        set_quota(&srv, org, "100", "none");
        // Ten uploads of 30 bytes at once: each alone fits, at most three together do.
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
        let mut tasks = Vec::new();
        for i in 0..10 {
            let (srv_url, client, key, space, barrier) = (srv.base.clone(), srv.client.clone(), key.to_owned(), space.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                client.post(format!("{srv_url}/api/v1/spaces/{space}/assets?filename=r{i}"))
                    .bearer_auth(key).body(vec![b'r'; 30]).send().await.unwrap().status()
            }));
        }
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::CREATED => created += 1,
                StatusCode::INSUFFICIENT_STORAGE => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert!((1..=3).contains(&created), "{created} uploads were accepted");
        let usage = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/usage"), Some(key))).await;
        assert_eq!(usage["assets"], json!(created));
        assert!(usage["bytes"].as_u64().unwrap() <= 100, "{usage}");
    }
}
