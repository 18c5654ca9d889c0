//! `keys status` / `keys rotate` against a running instance, on both backends: rotation rewraps
//! every data key without re-encrypting objects, the running server follows, and an upload in
//! flight across a rotation stays readable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::process::poll;
use crate::support::*;

/// (kek_version, wrapped_dek) per blob id.
async fn wrapped_keys(srv: &TestServer) -> BTreeMap<String, (i64, Vec<u8>)> {
    let mut conn = srv.db_conn().await;
    let rows: Vec<(String, i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, kek_version, wrapped_dek FROM blobs")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|(id, v, w)| (id, (v, w))).collect()
}

/// Every object file's bytes.
fn snapshot_objects(srv: &TestServer) -> BTreeMap<PathBuf, Vec<u8>> {
    srv.object_files()
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// The KEK versions stored (wrapped by the root key).
async fn kek_versions(srv: &TestServer) -> Vec<i64> {
    let mut conn = srv.db_conn().await;
    sqlx::query_scalar("SELECT version FROM keks ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// Asserts that every data key is now under KEK `version` and that its wrapped bytes changed.
fn assert_all_rewrapped(
    before: &BTreeMap<String, (i64, Vec<u8>)>,
    after: &BTreeMap<String, (i64, Vec<u8>)>,
    version: i64,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "rotation added or removed data keys"
    );
    for (id, (v, w)) in after {
        let (old_v, old_w) = &before[id];
        assert_eq!(*v, version, "blob {id} is under KEK {v}, not {version}");
        assert_ne!(v, old_v, "blob {id}'s KEK version did not change");
        assert_ne!(w, old_w, "blob {id}'s data key was not rewrapped");
        assert_eq!(
            w.len(),
            60,
            "blob {id}: a wrapped key is nonce || key || tag"
        );
    }
}

fn status_of(v: &Value) -> (u64, BTreeMap<String, u64>) {
    let active = v["active_version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no active_version: {v}"));
    let keys = v["data_keys"]
        .as_object()
        .unwrap_or_else(|| panic!("no data_keys object: {v}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect();
    (active, keys)
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

both_backends! {
    async fn keys_rotate_rewraps_without_reencrypting(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let mut assets = Vec::new();
        for (i, len) in [10usize, 65_536 + 17, 300_000].into_iter().enumerate() {
            let data = pattern(len, i as u64 + 11);
            let a = srv.upload(&boot.api_key, &space, &format!("f{i}.bin"), data.clone()).await;
            assets.push((a["id"].as_str().unwrap().to_owned(), data));
        }

        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (1, counts(&[("1", 3)])));
        let objects = snapshot_objects(&srv);
        assert_eq!(objects.len(), 3, "expected one object file per asset");
        let wrapped_before = wrapped_keys(&srv).await;
        assert!(wrapped_before.values().all(|(v, _)| *v == 1), "{wrapped_before:?}");
        assert_eq!(kek_versions(&srv).await, vec![1]);

        let report = srv.run_json(&["keys", "rotate", "--json"]);
        assert_eq!(report["active_version"], 2, "{report}");
        assert_eq!(report["rewrapped"], 3, "{report}");
        assert_eq!(report["retired_versions"], json!([1]), "{report}");
        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (2, counts(&[("2", 3)])));
        // What is stored says the same: every data key rewrapped under KEK 2, KEK 1 gone, and
        // every object file byte for byte what it was.
        let wrapped_after = wrapped_keys(&srv).await;
        assert_all_rewrapped(&wrapped_before, &wrapped_after, 2);
        assert_eq!(kek_versions(&srv).await, vec![2], "the retired KEK is still stored");
        assert_eq!(snapshot_objects(&srv), objects, "rotation rewrote stored objects");

        // The running server picks up the new KEK, for reads and new writes.
        for (id, data) in &assets {
            assert_eq!(&download(&srv, &boot.api_key, id).await, data, "asset {id} unreadable after rotation");
        }
        let data = pattern(5000, 77);
        let a = srv.upload(&boot.api_key, &space, "after.bin", data.clone()).await;
        assets.push((a["id"].as_str().unwrap().to_owned(), data));
        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (2, counts(&[("2", 4)])), "the new upload is not under the new KEK");
        let objects = snapshot_objects(&srv);
        assert_eq!(objects.len(), 4);
        let wrapped_before = wrapped_keys(&srv).await;
        assert!(wrapped_before.values().all(|(v, _)| *v == 2), "{wrapped_before:?}");

        let report = srv.run_json(&["keys", "rotate", "--json"]);
        assert_eq!(report["active_version"], 3, "{report}");
        assert_eq!(report["rewrapped"], 4, "{report}");
        assert_eq!(report["retired_versions"], json!([2]), "{report}");
        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (3, counts(&[("3", 4)])));
        assert_all_rewrapped(&wrapped_before, &wrapped_keys(&srv).await, 3);
        assert_eq!(kek_versions(&srv).await, vec![3], "the retired KEK is still stored");
        assert_eq!(snapshot_objects(&srv), objects, "the second rotation rewrote stored objects");
        for (id, data) in &assets {
            assert_eq!(&download(&srv, &boot.api_key, id).await, data, "asset {id} unreadable after the second rotation");
        }

        // The human output states the same facts.
        let out = srv.run(&["keys", "status"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, vec!["active KEK version: 3", "  version 3: 4 data keys"], "{text}");
    }

    async fn keys_rotate_during_an_in_flight_upload(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let before = pattern(1000, 1);
        let old = srv.upload(&boot.api_key, &space, "old.bin", before.clone()).await;

        // An upload that has its data key (wrapped under KEK 1) and is still receiving bytes...
        let data = pattern(3 << 20, 8);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let req = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=slow.bin"), Some(&boot.api_key))
            .header("content-type", "application/octet-stream")
            .body(body);
        let upload = tokio::spawn(async move { req.send().await });
        let half = 2 << 20;
        for chunk in data[..half].chunks(64 * 1024) {
            tx.send(Ok(bytes::Bytes::copy_from_slice(chunk))).await.unwrap();
        }
        let seen = poll(Duration::from_secs(10), || {
            srv.temp_files().iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= 1 << 20)).then_some(())
        })
        .await;
        assert!(seen.is_some(), "the server never started writing the upload");

        // ...while the operator rotates.
        let report = tokio::task::block_in_place(|| srv.run_json(&["keys", "rotate", "--json"]));
        assert_eq!(report["active_version"], 2, "{report}");

        for chunk in data[half..].chunks(64 * 1024) {
            tx.send(Ok(bytes::Bytes::copy_from_slice(chunk))).await.unwrap();
        }
        drop(tx);
        let res = upload.await.unwrap().unwrap();
        let asset = expect_json(res, StatusCode::CREATED).await;
        let id = asset["id"].as_str().unwrap();
        assert_eq!(download(&srv, &boot.api_key, id).await, data);
        assert_eq!(download(&srv, &boot.api_key, old["id"].as_str().unwrap()).await, before);

        // Every data key is under a KEK that still exists; another rotation moves them all.
        let report = srv.run_json(&["keys", "rotate", "--json"]);
        assert_eq!(report["active_version"], 3, "{report}");
        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (3, counts(&[("3", 2)])));
        assert_eq!(download(&srv, &boot.api_key, id).await, data);
    }
}
