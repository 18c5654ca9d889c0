//! Durability, on both backends: an acknowledged upload survives `kill -9` of the real binary; a
//! partial upload (server killed mid-body, or client aborting) never becomes visible and leaves
//! no temp file; a media job cut off by `kill -9` while ffmpeg works on it is taken over and
//! finished after the restart.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::process::{BinInstance, BinServer, poll, sha256_hex};
use crate::support::*;

/// A binary server on a new instance with an owner key and a space: (instance, server, api key,
/// org id, space id); `None` when the backend is skipped.
async fn binary_instance(b: Backend) -> Option<(BinInstance, BinServer, String, String, String)> {
    let inst = BinInstance::new(b).await?;
    let srv = tokio::task::block_in_place(|| inst.serve()).serving();
    // Bootstrap through the CLI while the server runs.
    let (key, org, space) = inst
        .bootstrap_with_space(&srv, "owner@example.com", "site")
        .await;
    Some((inst, srv, key, org, space))
}

/// `kill -9`, then a new `serve` on the same instance.
async fn crash_and_restart(inst: &BinInstance, srv: BinServer) -> BinServer {
    srv.kill9().await;
    tokio::task::block_in_place(|| inst.serve()).serving()
}

async fn list_assets(srv: &BinServer, key: &str, space: &str) -> Vec<Value> {
    let res = srv
        .req(
            Method::GET,
            &format!("/api/v1/spaces/{space}/assets"),
            Some(key),
        )
        .send()
        .await
        .unwrap();
    let v = expect_json(res, StatusCode::OK).await;
    v["items"].as_array().unwrap().clone()
}

/// Size of the largest file in the blob store's temp area.
fn largest_temp_file(data_dir: &Path) -> u64 {
    std::fs::read_dir(data_dir.join("blobs").join("tmp"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The pids of the `ffmpeg` processes whose parent is `parent` (the media tools `serve` runs:
/// `prlimit` execs the tool, so the tool is the server's own child).
fn ffmpeg_children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == "ffmpeg" && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

/// The media job of `asset`: (status, attempts, worker).
async fn media_job(conn: &mut sqlx::AnyConnection, asset: &str) -> (String, i64, Option<String>) {
    sqlx::query_as(
        "SELECT status, attempts, worker FROM jobs WHERE kind = 'media' AND subject = $1",
    )
    .bind(asset)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// How many jobs `strongroom jobs status --json` counts as `status`.
fn jobs_counted(report: &Value, status: &str) -> u64 {
    report["counts"]
        .as_array()
        .unwrap_or_else(|| panic!("no counts: {report}"))
        .iter()
        .find(|c| c[0] == status)
        .map_or(0, |c| c[1].as_u64().unwrap())
}

both_backends! {
    async fn acknowledged_upload_survives_kill_9(b: Backend) {
        let Some((inst, srv, key, _org, space)) = binary_instance(b).await else { return };
        let data = pattern(3 << 20, 2024);
        let res = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=big.bin"), Some(&key))
            .header("content-type", "application/octet-stream")
            .body(data.clone())
            .send()
            .await
            .unwrap();
        let asset = expect_json(res, StatusCode::CREATED).await;
        assert_eq!(asset["sha256"], sha256_hex(&data));
        let id = asset["id"].as_str().unwrap().to_owned();

        // Immediately after the 201: no graceful anything.
        let srv = crash_and_restart(&inst, srv).await;
        let meta = expect_json(srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(&key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(meta, asset, "the asset's metadata changed across the crash");
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.bytes().await.unwrap();
        assert_eq!(body.len(), data.len());
        assert!(body.as_ref() == data.as_slice(), "the bytes changed across the crash");
        assert_eq!(sha256_hex(&body), asset["sha256"].as_str().unwrap());
        assert_eq!(list_assets(&srv, &key, &space).await.len(), 1);

        // The key hierarchy and the audit trail came through too.
        let status = inst.json(&["keys", "status", "--json"]);
        assert_eq!(status["data_keys"], json!({"1": 1}), "{status}");
        let verdict = inst.json(&["audit", "verify", "--json"]);
        assert_eq!(verdict["intact"], true, "{verdict}");
    }

    async fn partial_upload_is_never_visible_after_kill_9(b: Backend) {
        let Some((inst, srv, key, org, space)) = binary_instance(b).await else { return };
        // ~2 MiB of body, then the client stalls with the request still open.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let req = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=partial.bin"), Some(&key))
            .header("content-type", "application/octet-stream")
            .body(body);
        let upload = tokio::spawn(async move { req.send().await });
        let data = pattern(2 << 20, 5);
        for chunk in data.chunks(64 * 1024) {
            tx.send(Ok(Bytes::copy_from_slice(chunk))).await.unwrap();
        }
        poll(Duration::from_secs(15), || (largest_temp_file(&inst.dir) >= 1 << 20).then_some(()))
            .await
            .expect("the server never wrote the first MiB of the upload to its temp area");

        srv.kill9().await;
        let outcome = tokio::time::timeout(Duration::from_secs(10), upload)
            .await
            .expect("the client never noticed the crash")
            .unwrap();
        if let Ok(res) = outcome {
            assert_ne!(res.status(), StatusCode::CREATED, "a partial upload was acknowledged");
        }
        drop(tx);

        let srv = tokio::task::block_in_place(|| inst.serve()).serving();
        assert_eq!(list_assets(&srv, &key, &space).await, Vec::<Value>::new(), "a partial upload became visible");
        let status = inst.json(&["keys", "status", "--json"]);
        assert_eq!(status["data_keys"], json!({}), "a partial upload left a data key: {status}");
        let res = srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit?limit=1000"), Some(&key)).send().await.unwrap();
        let trail = expect_json(res, StatusCode::OK).await;
        assert!(
            !trail["items"].as_array().unwrap().iter().any(|e| e["action"] == "asset.create"),
            "the audit trail records an upload that never completed: {trail}"
        );
        assert_eq!(inst.json(&["audit", "verify", "--json"])["intact"], true);

        // The instance works normally afterwards.
        let data = pattern(100_000, 6);
        let res = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=ok.bin"), Some(&key))
            .body(data.clone())
            .send()
            .await
            .unwrap();
        let asset = expect_json(res, StatusCode::CREATED).await;
        assert_eq!(asset["sha256"], sha256_hex(&data));
        let items = list_assets(&srv, &key, &space).await;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], asset["id"]);
    }

    async fn aborted_upload_leaves_nothing_behind(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;

        // 2 MiB, then (once the server has written at least 1 MiB of it: the blob writer
        // encrypts in ~1 MiB batches) the client's body fails.
        let data_dir = srv.data_dir.clone();
        let reached = Arc::new(AtomicBool::new(false));
        let flag = reached.clone();
        let stream = futures_util::stream::unfold(0_u32, move |i| {
            let data_dir = data_dir.clone();
            let flag = flag.clone();
            async move {
                if i < 32 {
                    return Some((Ok(Bytes::from(pattern(64 * 1024, u64::from(i) + 1))), i + 1));
                }
                if i == 32 {
                    let seen = poll(Duration::from_secs(10), || (largest_temp_file(&data_dir) >= 1 << 20).then_some(())).await;
                    flag.store(seen.is_some(), Ordering::SeqCst);
                    return Some((Err(std::io::Error::other("the client gave up")), i + 1));
                }
                None
            }
        });
        let res = srv
            .req(reqwest::Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=aborted.bin"), Some(&boot.api_key))
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        if let Ok(res) = res {
            assert_ne!(res.status(), StatusCode::CREATED, "an aborted upload was acknowledged");
        }
        assert!(reached.load(Ordering::SeqCst), "the server never wrote the first MiB of the upload to its temp area");

        let res = srv.req(reqwest::Method::GET, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key)).send().await.unwrap();
        let list = expect_json(res, StatusCode::OK).await;
        assert_eq!(list["items"], json!([]), "an aborted upload became visible: {list}");

        let leftovers = poll(Duration::from_secs(5), || srv.temp_files().is_empty().then_some(())).await;
        assert!(leftovers.is_some(), "an aborted upload left temp files: {:?}", srv.temp_files());
        assert!(srv.object_files().is_empty(), "an aborted upload left an object: {:?}", srv.object_files());
        let status = srv.run_json(&["keys", "status", "--json"]);
        assert_eq!(status["data_keys"], json!({}), "an aborted upload left a data key: {status}");

        // The same client and space still work.
        let data = pattern(70_000, 3);
        let asset = srv.upload(&boot.api_key, &space, "ok.bin", data.clone()).await;
        assert_eq!(asset["size"], data.len() as u64);
    }

    async fn a_media_job_cut_off_by_kill_9_is_finished_after_the_restart(b: Backend) {
        let Some((inst, srv, key, _org, space)) = binary_instance(b).await else { return };
        let res = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=clip.mp4"), Some(&key))
            .header("content-type", "video/mp4")
            .body(crate::video::test_video())
            .send()
            .await
            .unwrap();
        let asset = expect_json(res, StatusCode::CREATED).await;
        assert_eq!(asset["status"], "processing");
        let id = asset["id"].as_str().unwrap().to_owned();

        // Wait until a worker has claimed the job and ffmpeg is at work on it, then pull the plug.
        let server_pid = srv.child.id();
        let mut conn = inst.db_conn().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let (job, tools) = loop {
            let job = media_job(&mut conn, &id).await;
            let tools = ffmpeg_children(server_pid);
            if job.0 == "running" && !tools.is_empty() {
                break (job, tools);
            }
            assert!(job.0 == "queued" || job.0 == "running", "the job ended before it could be cut off: {job:?}");
            assert!(Instant::now() < deadline, "no worker was transcoding after 60 s: {job:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(job.1, 1, "first attempt: {job:?}");
        let first_worker = job.2.clone().expect("a claimed job names its worker");
        let meta = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(&key))).await;
        assert_eq!(meta["status"], "processing", "{meta}");
        assert!(meta["progress"].as_u64().is_some_and(|p| p < 100), "a processing asset shows its progress: {meta}");
        srv.kill9().await;

        // What the crash left: the job claimed and running, as the operator sees it, its work
        // cut off with no renditions.
        let report = inst.json(&["jobs", "status", "--json"]);
        assert_eq!((jobs_counted(&report, "running"), jobs_counted(&report, "done")), (1, 0), "{report}");
        let after_kill = media_job(&mut conn, &id).await;
        assert_eq!(after_kill, job, "the job changed after ffmpeg ({tools:?}) was seen working on it");

        // After the restart the job is due again once its lease runs out, is taken over by the new
        // worker (a second attempt), and the asset ends ready, with its stream.
        let srv = tokio::task::block_in_place(|| inst.serve()).serving();
        let deadline = Instant::now() + Duration::from_secs(240);
        let meta = loop {
            let meta = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(&key))).await;
            if meta["status"] != "processing" {
                break meta;
            }
            assert!(Instant::now() < deadline, "never finished: {meta}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert_eq!(meta["status"], "ready", "{meta}");
        let (status, attempts, worker) = media_job(&mut conn, &id).await;
        assert_eq!((status.as_str(), attempts), ("done", 2), "the cut-off attempt and the one that finished");
        assert_ne!(worker.as_deref(), Some(first_worker.as_str()), "finished by the new server's worker");
        let names: Vec<&str> = meta["renditions"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        for want in ["thumbnail", "preview", "hls/360p", "hls/720p"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        let res = srv.req(Method::POST, &format!("/api/v1/assets/{id}/playback"), Some(&key)).json(&json!({"expires_in": 60})).send().await.unwrap();
        let pb = expect_json(res, StatusCode::CREATED).await;
        let master = srv.client.get(pb["url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(master.status(), StatusCode::OK);
        assert!(master.text().await.unwrap().contains("720p/index.m3u8"));
    }
}
