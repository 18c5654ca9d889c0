//! A node keeps the asset rows it read for reads in memory (service::authz, `epoch_cache`).
//! These tests hold an asset "hot" (read just before, so its rows are in memory) and check that
//! the memory never answers for the database: who may read it is decided on every request; a
//! change through the node is in force at the next request; a change by any other writer of the
//! database as soon as the node reads the asset epoch again (reading any asset not in memory
//! does) and at the latest within the confirmation window of 100 ms; on both backends.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Executor;

use crate::api_keys::new_key;
use crate::both_backends;
use crate::support::*;

/// The longest a change made by another process may go unnoticed (`CONFIRM_WINDOW`), with room.
const WINDOW: Duration = Duration::from_millis(250);

/// Reads the asset's metadata and content a few times as `key`, so the node has its rows in
/// memory; returns the content.
async fn heat(srv: &TestServer, key: &str, id: &str) -> Vec<u8> {
    for _ in 0..3 {
        let res = srv
            .req(Method::GET, &format!("/api/v1/assets/{id}"), Some(key))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    download(srv, key, id).await
}

/// The problem `GET /assets/{id}/content` answers as `key`, which must be a 404.
async fn content_not_found(srv: &TestServer, key: &str, id: &str) {
    let res = srv
        .req(
            Method::GET,
            &format!("/api/v1/assets/{id}/content"),
            Some(key),
        )
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
}

/// Moves the asset to the trash with a plain `UPDATE` on a connection of its own, not through
/// Strongroom.
async fn trash_behind_the_servers_back(srv: &TestServer, id: &str) {
    let mut conn = srv.db_conn().await;
    let sql = format!("UPDATE assets SET deleted_at = 1, deleted_by = 'x' WHERE id = '{id}'");
    conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
}

/// An organization with one 100-byte asset its owner has just read (so it is hot): the owner's
/// bootstrap, the asset's space and id.
async fn hot_asset(srv: &TestServer) -> (Boot, String, String) {
    let boot = srv.bootstrap("owner@example.com", "acme");
    let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
    let up = srv
        .upload(&boot.api_key, &space, "a.bin", vec![7; 100])
        .await;
    let id = up["id"].as_str().unwrap().to_owned();
    assert_eq!(heat(srv, &boot.api_key, &id).await, vec![7; 100]);
    (boot, space, id)
}

both_backends! {
    async fn a_hot_asset_is_still_refused_to_whoever_may_not_read_it(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, id) = hot_asset(&srv).await;
        let (org, id) = (boot.org_id.clone(), id.as_str());
        let two = srv.create_space(&boot.api_key, &org, "two").await;

        // A key limited to the other space, and another organization's owner, while the rows
        // are in memory: not found, as if the asset did not exist.
        let (_, limited) = new_key(&srv, &boot.api_key, &org, json!({"name": "two only", "role": "viewer", "spaces": [two]})).await;
        content_not_found(&srv, &limited, id).await;
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(&limited)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let other = srv.bootstrap("other@example.com", "globex");
        content_not_found(&srv, &other.api_key, id).await;
        // And the owner still reads it.
        assert_eq!(download(&srv, &boot.api_key, id).await, vec![7; 100]);
    }

    async fn a_hot_asset_trashed_through_the_node_is_gone_at_the_next_read(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, id) = hot_asset(&srv).await;
        let id = id.as_str();
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{id}"), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        content_not_found(&srv, &boot.api_key, id).await;
    }

    async fn a_hot_asset_trashed_by_another_writer_is_gone_once_any_other_asset_is_read(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space, hot) = hot_asset(&srv).await;
        let hot = hot.as_str();
        let cold = srv.upload(&boot.api_key, &space, "cold.bin", vec![8; 100]).await;
        let cold = cold["id"].as_str().unwrap();
        // Read again after the upload (which moved the node's generation): hot once more.
        heat(&srv, &boot.api_key, hot).await;

        trash_behind_the_servers_back(&srv, hot).await;
        // Reading an asset the node has not kept reads the asset epoch the trigger moved...
        assert_eq!(download(&srv, &boot.api_key, cold).await, vec![8; 100]);
        // ...and then the hot asset is read from the database again.
        content_not_found(&srv, &boot.api_key, hot).await;
    }

    async fn with_no_other_read_a_change_elsewhere_is_in_force_within_the_window(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, id) = hot_asset(&srv).await;
        let id = id.as_str();
        trash_behind_the_servers_back(&srv, id).await;
        tokio::time::sleep(WINDOW).await;
        content_not_found(&srv, &boot.api_key, id).await;
    }
}
