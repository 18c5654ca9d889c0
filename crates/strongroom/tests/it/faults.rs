//! Faults the caller should be told about honestly: a database too busy to answer in time is a
//! retryable 503 with Retry-After, never a 500 or a "not found", and changes nothing.

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
}
