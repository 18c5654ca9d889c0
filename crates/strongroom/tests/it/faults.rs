//! Faults the caller should be told about honestly: a database too busy to answer in time is a
//! retryable 503 with Retry-After, never a 500 or a "not found", and changes nothing. A read
//! whose audit event cannot be committed is such a 503 too, and sends none of the content.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::support::*;

both_backends! {
    async fn a_write_blocked_by_a_held_lock_is_a_503_with_retry_after(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.as_str();
        // Another client holds the write lock for longer than the server waits (10 s).
        let mut db = srv.db_conn().await;
        let lock = match b {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN; LOCK TABLE spaces IN ACCESS EXCLUSIVE MODE",
        };
        sqlx::raw_sql(lock).execute(&mut db).await.unwrap();
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/spaces"), Some(&boot.api_key))
            .json(&json!({"name": "blocked"})).send().await.unwrap();
        let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        expect_problem(res, StatusCode::SERVICE_UNAVAILABLE, "busy").await;
        assert_eq!(retry_after.as_deref(), Some("1"));
        sqlx::raw_sql("ROLLBACK").execute(&mut db).await.unwrap();
        // Nothing was written, and the same request now succeeds.
        let spaces = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/spaces"), Some(&boot.api_key))).await;
        assert_eq!(spaces["items"], json!([]));
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/spaces"), Some(&boot.api_key))
            .json(&json!({"name": "blocked"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }

    async fn a_read_whose_audit_event_cannot_commit_sends_no_byte(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.as_str();
        let space = srv.create_space(&boot.api_key, org, "site").await;
        // One read within a chunk, one of several.
        let small = pattern(10_000, 1);
        let large = pattern(200_000, 2);
        let small_id = srv.upload(&boot.api_key, &space, "small.bin", small.clone()).await["id"].as_str().unwrap().to_owned();
        let large_id = srv.upload(&boot.api_key, &space, "large.bin", large.clone()).await["id"].as_str().unwrap().to_owned();
        // Both read once, so their rows are in the node's memory and no read needs the database
        // before its audit event.
        assert_eq!(download(&srv, &boot.api_key, &small_id).await, small);
        assert_eq!(download(&srv, &boot.api_key, &large_id).await, large);

        // Another client holds the lock every audit append needs, longer than the server waits.
        let mut db = srv.db_conn().await;
        let lock = match b {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN; LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE",
        };
        sqlx::raw_sql(lock).execute(&mut db).await.unwrap();
        let read = |id: &str| srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).send();
        let (res_small, res_large) = tokio::join!(read(&small_id), read(&large_id));
        for res in [res_small.unwrap(), res_large.unwrap()] {
            let body = expect_problem(res, StatusCode::SERVICE_UNAVAILABLE, "busy").await;
            let text = body.to_string();
            assert!(text.len() < 2_000, "a problem, not content: {} bytes", text.len());
        }
        sqlx::raw_sql("ROLLBACK").execute(&mut db).await.unwrap();

        // The refused reads left no event; the next ones are served and audited.
        assert_eq!(download(&srv, &boot.api_key, &small_id).await, small);
        let log = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit"), Some(&boot.api_key))).await;
        let reads = log["items"].as_array().unwrap().iter().filter(|e| e["action"] == "asset.read").count();
        assert_eq!(reads, 3, "two reads before the lock and one after");
    }
}
