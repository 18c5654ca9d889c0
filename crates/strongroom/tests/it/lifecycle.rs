//! Trash, purge and retention (F19): a deleted asset waits in its space's trash, gone for every
//! reader, link and stream, until it is restored or purged; a purge crypto-shreds it; a space's
//! retention rule and the organization's grace period are enforced by the lifecycle job, which
//! the server runs on its own and an operator runs with `strongroom admin lifecycle`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

const DAY_MS: i64 = 86_400_000;

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn listed(srv: &TestServer, key: &str, space: &str, what: &str) -> Vec<String> {
    ids(&get_json(srv.req(
        Method::GET,
        &format!("/api/v1/spaces/{space}/{what}"),
        Some(key),
    ))
    .await)
}

async fn audit(srv: &TestServer, key: &str, org: &str) -> Vec<Value> {
    let page = get_json(srv.req(
        Method::GET,
        &format!("/api/v1/orgs/{org}/audit?limit=1000"),
        Some(key),
    ))
    .await;
    page["items"].as_array().unwrap().clone()
}

/// Events of `action` on `target`, as (actor, detail).
async fn events(
    srv: &TestServer,
    key: &str,
    org: &str,
    action: &str,
    target: &str,
) -> Vec<(String, Value)> {
    audit(srv, key, org)
        .await
        .into_iter()
        .filter(|e| e["action"] == action && e["target"] == target)
        .map(|e| (e["actor"].as_str().unwrap().to_owned(), e["detail"].clone()))
        .collect()
}

async fn shift_back(srv: &TestServer, column: &str, asset: &str, days: i64) {
    let mut conn = srv.db_conn().await;
    let sql = format!("UPDATE assets SET {column} = {column} - $1 WHERE id = $2");
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(days * DAY_MS)
        .bind(asset)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "{asset} has a {column} to move");
}

async fn delete(srv: &TestServer, key: &str, asset: &str, query: &str) -> StatusCode {
    status(srv.req(
        Method::DELETE,
        &format!("/api/v1/assets/{asset}{query}"),
        Some(key),
    ))
    .await
}

fn lifecycle(srv: &TestServer) -> Value {
    srv.run_json(&["admin", "lifecycle", "--json"])
}

both_backends! {
    async fn a_deleted_asset_waits_in_the_trash_gone_for_readers_and_links_until_restored(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let (_, editor) = srv.create_key(org, "editor");
        let space = srv.create_space(key, org, "site").await;
        let bytes = pattern(300_000, 11);
        let id = srv.upload(key, &space, "plan.pdf", bytes.clone()).await["id"].as_str().unwrap().to_owned();
        let link = expect_json(srv.req(Method::POST, &format!("/api/v1/assets/{id}/links"), Some(key))
            .json(&json!({"expires_in": 600})).send().await.unwrap(), StatusCode::CREATED).await;
        let url = link["url"].as_str().unwrap().to_owned();
        assert_eq!(srv.client.get(&url).send().await.unwrap().status(), StatusCode::OK);

        assert_eq!(delete(&srv, &editor, &id, "").await, StatusCode::NO_CONTENT);
        // Gone for every reader: metadata, content, the space's list, its link, a new link.
        for path in [format!("/api/v1/assets/{id}"), format!("/api/v1/assets/{id}/content")] {
            expect_problem(srv.req(Method::GET, &path, Some(key)).send().await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        }
        assert!(listed(&srv, key, &space, "assets").await.is_empty());
        assert_eq!(srv.client.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        let res = srv.req(Method::POST, &format!("/api/v1/assets/{id}/links"), Some(key)).json(&json!({"expires_in": 600})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // A second delete finds nothing to delete; the trash lists it, with when.
        assert_eq!(delete(&srv, &editor, &id, "").await, StatusCode::NOT_FOUND);
        let trash = get_json(srv.req(Method::GET, &format!("/api/v1/spaces/{space}/trash"), Some(&editor))).await;
        assert_eq!(ids(&trash), [id.as_str()]);
        assert_eq!(trash["items"][0]["filename"], "plan.pdf");
        assert!(trash["items"][0]["deleted_at"].is_string(), "{trash}");
        let (actor, detail) = events(&srv, key, org, "asset.delete", &id).await.remove(0);
        assert!(actor.starts_with("key:"), "{actor}");
        assert_eq!(detail["to"], "trash");
        assert!(detail["purge_after"].is_string(), "{detail}");

        // Restored as it was: the same bytes, listed again, its link working again.
        let restored = expect_json(srv.req(Method::POST, &format!("/api/v1/assets/{id}/restore"), Some(&editor)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(restored["id"], id);
        assert!(restored.get("deleted_at").is_none(), "{restored}");
        assert_eq!(download(&srv, key, &id).await, bytes);
        assert_eq!(listed(&srv, key, &space, "assets").await, [id.as_str()]);
        assert!(listed(&srv, key, &space, "trash").await.is_empty());
        assert_eq!(srv.client.get(&url).send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(events(&srv, key, org, "asset.restore", &id).await.len(), 1);
        // Restoring a live asset, or one of another organization, is not found.
        expect_problem(srv.req(Method::POST, &format!("/api/v1/assets/{id}/restore"), Some(key)).send().await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
        let rival = srv.bootstrap("rival@example.com", "rival");
        assert_eq!(delete(&srv, key, &id, "").await, StatusCode::NO_CONTENT);
        assert_eq!(status(srv.req(Method::POST, &format!("/api/v1/assets/{id}/restore"), Some(&rival.api_key))).await, StatusCode::NOT_FOUND);
        assert_eq!(status(srv.req(Method::GET, &format!("/api/v1/spaces/{space}/trash"), Some(&rival.api_key))).await, StatusCode::NOT_FOUND);
        assert_eq!(delete(&srv, &rival.api_key, &id, "?purge=true").await, StatusCode::NOT_FOUND);
        assert_eq!(listed(&srv, key, &space, "trash").await, [id]);
    }

    async fn a_purge_needs_asset_purge_and_shreds_the_asset_from_the_space_or_the_trash(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let (_, editor) = srv.create_key(org, "editor");
        let (_, admin) = srv.create_key(org, "admin");
        let space = srv.create_space(key, org, "site").await;
        let live = srv.upload(key, &space, "live.bin", pattern(200_000, 1)).await["id"].as_str().unwrap().to_owned();
        let binned = srv.upload(key, &space, "binned.bin", pattern(200_000, 2)).await["id"].as_str().unwrap().to_owned();
        let kept = srv.upload(key, &space, "kept.bin", pattern(200_000, 3)).await["id"].as_str().unwrap().to_owned();
        let objects = srv.object_files().len();
        // An editor may delete to the trash but not purge, from the space or the trash.
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{live}?purge=true"), Some(&editor)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        assert_eq!(delete(&srv, &editor, &binned, "").await, StatusCode::NO_CONTENT);
        assert_eq!(delete(&srv, &editor, &binned, "?purge=true").await, StatusCode::FORBIDDEN);
        assert_eq!(download(&srv, key, &live).await, pattern(200_000, 1));
        assert_eq!(srv.object_files().len(), objects, "a refused purge removed nothing");
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{live}?purge=maybe"), Some(&admin)).send().await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;

        // An admin purges a live asset at once, and one from the trash.
        assert_eq!(delete(&srv, &admin, &live, "?purge=true").await, StatusCode::NO_CONTENT);
        assert_eq!(delete(&srv, &admin, &binned, "?purge=true").await, StatusCode::NO_CONTENT);
        assert_eq!(srv.object_files().len(), objects - 2, "both ciphertexts are removed");
        for id in [&live, &binned] {
            assert_eq!(status(srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(key))).await, StatusCode::NOT_FOUND);
            assert_eq!(status(srv.req(Method::POST, &format!("/api/v1/assets/{id}/restore"), Some(key))).await, StatusCode::NOT_FOUND);
            assert_eq!(delete(&srv, &admin, id, "?purge=true").await, StatusCode::NOT_FOUND);
        }
        // Their data keys are gone with their rows: nothing left in the database to decrypt with.
        let mut conn = srv.db_conn().await;
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM assets WHERE id IN ($1, $2)").bind(&live).bind(&binned).fetch_one(&mut conn).await.unwrap();
        assert_eq!(left, 0);
        let blobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs").fetch_one(&mut conn).await.unwrap();
        assert_eq!(blobs, 1, "only the kept asset's blob and data key remain");
        assert_eq!(download(&srv, key, &kept).await, pattern(200_000, 3));
        for (id, from) in [(&live, "space"), (&binned, "trash")] {
            let (_, detail) = events(&srv, key, org, "asset.purge", id).await.remove(0);
            assert_eq!(detail["from"], from, "{detail}");
        }
        assert!(listed(&srv, key, &space, "trash").await.is_empty());
    }

    async fn retention_rules_and_the_grace_period_are_enforced_by_the_lifecycle_job(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let (_, editor) = srv.create_key(org, "editor");
        let space = srv.create_space(key, org, "logs").await;
        let other = srv.create_space(key, org, "forever").await;
        let old = srv.upload(key, &space, "old.log", pattern(1000, 1)).await["id"].as_str().unwrap().to_owned();
        let new = srv.upload(key, &space, "new.log", pattern(1000, 2)).await["id"].as_str().unwrap().to_owned();
        let elsewhere = srv.upload(key, &other, "old-but-kept.log", pattern(1000, 3)).await["id"].as_str().unwrap().to_owned();
        shift_back(&srv, "created_at", &old, 10).await;
        shift_back(&srv, "created_at", &elsewhere, 10).await;

        // The rule is a space setting: admins may set it, editors may not; bad values change nothing.
        let patch = |k: &str, body: Value| srv.req(Method::PATCH, &format!("/api/v1/spaces/{space}"), Some(k)).json(&body);
        expect_problem(patch(&editor, json!({"retention_days": 7})).send().await.unwrap(), StatusCode::FORBIDDEN, "forbidden").await;
        for bad in [json!({"retention_days": 0}), json!({"retention_days": 40_000}), json!({"retention_days": -1}), json!({"retention_days": 1.5}), json!({"retention_days": "7"}), json!({"keep": 7})] {
            let res = patch(key, bad.clone()).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
        assert_eq!(get_json(patch(key, json!({}))).await["retention_days"], Value::Null);
        assert_eq!(lifecycle(&srv), json!({"trashed": 0, "purged": 0}), "no rule: nothing moves");
        let set = get_json(patch(key, json!({"retention_days": 7}))).await;
        assert_eq!(set["retention_days"], 7);
        let spaces = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/spaces"), Some(key))).await;
        assert!(spaces["items"].as_array().unwrap().iter().any(|s| s["id"] == space.as_str() && s["retention_days"] == 7), "{spaces}");

        // Older than seven days: to the trash, as the retention job; the rest stays.
        assert_eq!(lifecycle(&srv), json!({"trashed": 1, "purged": 0}));
        assert_eq!(listed(&srv, key, &space, "trash").await, [old.as_str()]);
        assert_eq!(listed(&srv, key, &space, "assets").await, [new.as_str()]);
        assert_eq!(listed(&srv, key, &other, "assets").await, [elsewhere.as_str()]);
        let (actor, detail) = events(&srv, key, org, "asset.delete", &old).await.remove(0);
        assert_eq!(actor, "system:retention");
        assert_eq!(detail["to"], "trash");
        assert_eq!(lifecycle(&srv), json!({"trashed": 0, "purged": 0}), "a second pass finds nothing");

        // The grace period is the organization's (default 30 days); past it, the purge.
        let org_detail = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}"), Some(key))).await;
        assert_eq!(org_detail["trash_days"], 30);
        shift_back(&srv, "deleted_at", &old, 29).await;
        assert_eq!(lifecycle(&srv), json!({"trashed": 0, "purged": 0}), "29 days in: still restorable");
        let policy = |body: Value| srv.req(Method::PATCH, &format!("/api/v1/orgs/{org}"), Some(key)).json(&body);
        for bad in [json!({"trash_days": 0}), json!({"trash_days": 366})] {
            expect_problem(policy(bad).send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        }
        assert_eq!(get_json(policy(json!({"trash_days": 28}))).await["trash_days"], 28);
        assert_eq!(lifecycle(&srv), json!({"trashed": 0, "purged": 1}));
        assert!(listed(&srv, key, &space, "trash").await.is_empty());
        assert_eq!(status(srv.req(Method::POST, &format!("/api/v1/assets/{old}/restore"), Some(key))).await, StatusCode::NOT_FOUND);
        let (actor, detail) = events(&srv, key, org, "asset.purge", &old).await.remove(0);
        assert_eq!((actor.as_str(), detail["from"].as_str()), ("system:trash", Some("trash")));
        assert_eq!(events(&srv, key, org, "space.retention", &space).await.len(), 1);
        assert_eq!(events(&srv, key, org, "org.policy_change", org).await.last().unwrap().1["trash_days"], 28);

        // Removing the rule keeps everything from then on.
        assert_eq!(get_json(patch(key, json!({"retention_days": null}))).await["retention_days"], Value::Null);
        shift_back(&srv, "created_at", &new, 100).await;
        assert_eq!(lifecycle(&srv), json!({"trashed": 0, "purged": 0}));
        assert_eq!(listed(&srv, key, &space, "assets").await, [new]);
        let out = srv.run(&["admin", "lifecycle", "--json"]);
        assert!(out.status.success());
        let verify = srv.run(&["audit", "verify", "--org", org]);
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    }

    async fn two_lifecycle_passes_at_once_act_on_each_asset_once(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(key, org, "logs").await;
        let mut doomed = Vec::new();
        for n in 0..12 {
            let id = srv.upload(key, &space, &format!("{n}.log"), pattern(500, n)).await["id"].as_str().unwrap().to_owned();
            assert_eq!(delete(&srv, key, &id, "").await, StatusCode::NO_CONTENT);
            shift_back(&srv, "deleted_at", &id, 31).await;
            doomed.push(id);
        }
        // Two operators (or two nodes) at once: each asset is purged exactly once between them.
        let (a, b2) = std::thread::scope(|s| {
            let one = s.spawn(|| lifecycle(&srv));
            let two = s.spawn(|| lifecycle(&srv));
            (one.join().unwrap(), two.join().unwrap())
        });
        assert_eq!(a["purged"].as_u64().unwrap() + b2["purged"].as_u64().unwrap(), 12, "{a} {b2}");
        let trail = audit(&srv, key, org).await;
        for id in &doomed {
            assert_eq!(trail.iter().filter(|e| e["action"] == "asset.purge" && e["target"] == id.as_str()).count(), 1, "{id}");
        }
        assert!(listed(&srv, key, &space, "trash").await.is_empty());
    }

    async fn the_server_runs_the_lifecycle_job_on_its_own(b: Backend) {
        let Some(srv) = TestServer::start_with_config(b, "[lifecycle]\ninterval_secs = 1\n").await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(key, org, "logs").await;
        let id = srv.upload(key, &space, "old.log", pattern(500, 9)).await["id"].as_str().unwrap().to_owned();
        assert_eq!(delete(&srv, key, &id, "").await, StatusCode::NO_CONTENT);
        shift_back(&srv, "deleted_at", &id, 31).await;
        let mut purged = false;
        for _ in 0..100 {
            if !events(&srv, key, org, "asset.purge", &id).await.is_empty() {
                purged = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(purged, "the server purged the expired asset within 10 s");
        assert!(listed(&srv, key, &space, "trash").await.is_empty());
    }
}
