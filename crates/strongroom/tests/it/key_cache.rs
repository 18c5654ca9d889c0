//! A node keeps the API keys it resolved in memory (service::authz::key_cache). These tests
//! hold a key "hot" (used just before, so it is in the cache) and check that no change to what
//! it may do is missed: made through the same node (in force at the next request), by another
//! process (the command line) or by any other writer of the database (in force as soon as the
//! node has read the database's authorization epoch again, which a request for any other key
//! does, and at the latest within the confirmation window of 100 ms), on both backends.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Executor;

use crate::both_backends;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

/// The longest a change made by another process may go unnoticed (`CONFIRM_WINDOW`), with room.
const WINDOW: Duration = Duration::from_millis(250);

async fn send(req: reqwest::RequestBuilder) -> reqwest::Response {
    req.send().await.unwrap()
}

/// Uses `key` a few times, so the node has it resolved in memory; returns the status it got.
async fn heat(srv: &TestServer, key: &str) -> StatusCode {
    let mut last = StatusCode::OK;
    for _ in 0..5 {
        last = status(srv.req(Method::GET, "/api/v1/me", Some(key))).await;
    }
    last
}

/// `POST /orgs/{org}/spaces` as `key`: what an editor may do and a viewer may not.
async fn create_space_status(srv: &TestServer, key: &str, org: &str) -> StatusCode {
    status(
        srv.req(
            Method::POST,
            &format!("/api/v1/orgs/{org}/spaces"),
            Some(key),
        )
        .json(&json!({"name": "x"})),
    )
    .await
}

/// Revokes key `id` with a plain `UPDATE` on a connection of its own, not through Strongroom.
async fn revoke_behind_the_servers_back(srv: &TestServer, id: &str) {
    let mut conn = srv.db_conn().await;
    let sql = format!("UPDATE api_keys SET revoked_at = 1 WHERE id = '{id}'");
    conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
}

/// A member with `role` who made an API key of that role for themselves: (user id, secret).
async fn member_with_key(srv: &TestServer, org: &str, email: &str, role: &str) -> (String, String) {
    let user = add_member(srv, org, email, role, Some(PASSWORD));
    let web = sign_in(srv, email, PASSWORD).await;
    let res = web
        .send(srv, Method::POST, &format!("/api/v1/orgs/{org}/api-keys"))
        .json(&json!({"name": "laptop", "role": role}))
        .send()
        .await
        .unwrap();
    let key = expect_json(res, StatusCode::CREATED).await;
    (user, key["api_key"].as_str().unwrap().to_owned())
}

both_backends! {
    async fn a_hot_key_is_refused_at_the_next_request_after_a_change_through_the_node(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.as_str();

        // Revocation.
        let (id, secret) = srv.create_key(org, "editor");
        assert_eq!(heat(&srv, &secret).await, StatusCode::OK);
        let res = send(srv.req(Method::DELETE, &format!("/api/v1/api-keys/{id}"), Some(&boot.api_key))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = send(srv.req(Method::GET, "/api/v1/me", Some(&secret))).await;
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;

        // Demotion of the key's owner: the key is capped by its owner's role at once.
        let (user, key) = member_with_key(&srv, org, "ad@example.com", "admin").await;
        assert_eq!(heat(&srv, &key).await, StatusCode::OK);
        assert_eq!(create_space_status(&srv, &key, org).await, StatusCode::CREATED);
        let res = send(
            srv.req(Method::PATCH, &format!("/api/v1/orgs/{org}/members/{user}"), Some(&boot.api_key))
                .json(&json!({"role": "viewer"})),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let res = send(srv.req(Method::POST, &format!("/api/v1/orgs/{org}/spaces"), Some(&key)).json(&json!({"name": "y"}))).await;
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;

        // Removal of the key's owner.
        let res = send(srv.req(Method::DELETE, &format!("/api/v1/orgs/{org}/members/{user}"), Some(&boot.api_key))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = send(srv.req(Method::GET, "/api/v1/me", Some(&key))).await;
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }

    async fn a_demotion_by_the_command_line_reaches_a_hot_key(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.as_str();
        add_member(&srv, org, "second@example.com", "owner", None);
        let (_, other) = srv.create_key(org, "viewer");
        assert_eq!(heat(&srv, &boot.api_key).await, StatusCode::OK);
        assert_eq!(create_space_status(&srv, &boot.api_key, org).await, StatusCode::CREATED);

        // Another process demotes the key's owner.
        let out = srv.run(&["admin", "create-user", "--email", "owner@example.com", "--org", org, "--role", "viewer"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Any key the node resolves from the database reads the new epoch with it...
        assert_eq!(heat(&srv, &other).await, StatusCode::OK);
        // ...and then the hot key is resolved again, not served from memory.
        assert_eq!(create_space_status(&srv, &boot.api_key, org).await, StatusCode::FORBIDDEN);
        let me = get_json(srv.req(Method::GET, "/api/v1/me", Some(&boot.api_key))).await;
        assert_eq!(me["role"], "viewer");
    }

    async fn a_revocation_written_to_the_database_by_anyone_reaches_a_hot_key(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.as_str();
        let (id, secret) = srv.create_key(org, "editor");
        let (_, other) = srv.create_key(org, "viewer");
        assert_eq!(heat(&srv, &secret).await, StatusCode::OK);

        // Not through Strongroom at all: a plain UPDATE on another connection.
        revoke_behind_the_servers_back(&srv, &id).await;

        // Resolving another key reads the epoch the trigger moved: the hot key goes at once.
        assert_eq!(heat(&srv, &other).await, StatusCode::OK);
        let res = send(srv.req(Method::GET, "/api/v1/me", Some(&secret))).await;
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }

    async fn with_no_other_request_a_change_elsewhere_is_in_force_within_the_window(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.as_str();
        let (id, secret) = srv.create_key(org, "editor");
        assert_eq!(heat(&srv, &secret).await, StatusCode::OK);
        revoke_behind_the_servers_back(&srv, &id).await;
        tokio::time::sleep(WINDOW).await;
        let res = send(srv.req(Method::GET, "/api/v1/me", Some(&secret))).await;
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
}
