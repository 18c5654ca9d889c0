//! `serve` and SIGTERM, on both backends: a clean stop, also right after the ready line, and
//! in-flight uploads drained and committed before the process exits.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};

use crate::both_backends;
use crate::process::*;
use crate::support::*;

/// SIGTERM, then asserts the server exits 0 within `limit`, without a panic.
async fn term_and_expect_clean_exit(srv: &mut BinServer, limit: Duration) {
    srv.signal("TERM");
    let st = srv.wait_exit(limit).await;
    let st = st.unwrap_or_else(|| {
        panic!(
            "serve still running {limit:?} after SIGTERM; stderr: {}",
            srv.stderr()
        )
    });
    assert_eq!(
        st.code(),
        Some(0),
        "serve exited with {st} on SIGTERM; stderr: {}",
        srv.stderr()
    );
    assert!(!srv.stderr().contains("panicked"), "{}", srv.stderr());
}

both_backends! {
    async fn serve_stops_cleanly_on_sigterm(b: Backend) {
        let Some(inst) = BinInstance::new(b).await else { return };
        let mut srv = tokio::task::block_in_place(|| inst.serve()).serving();
        let res = srv.req(Method::GET, "/readyz", None).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "the database is reachable");
        term_and_expect_clean_exit(&mut srv, Duration::from_secs(10)).await;
    }

    async fn sigterm_right_after_the_ready_line_stops_cleanly(b: Backend) {
        // The ready line is what supervisors and scripts wait for: from then on SIGTERM must be a
        // clean stop, not the default "killed by signal". It is a race, so several quick starts,
        // each killed by a shell that reads the server's stdout directly (no round trip through
        // this process).
        let Some(inst) = BinInstance::new(b).await else { return };
        // A first start and stop makes the instance (key, certificate, schema), so every attempt
        // below is a plain restart.
        let mut first = tokio::task::block_in_place(|| inst.serve()).serving();
        assert_eq!(first.req(Method::GET, "/healthz", None).send().await.unwrap().status(), StatusCode::OK);
        term_and_expect_clean_exit(&mut first, Duration::from_secs(15)).await;
        for attempt in 0..30 {
            let mut child = inst
                .bin()
                .arg("serve")
                .args(["--listen", "127.0.0.1:0"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let killer = Command::new("sh")
                .args(["-c", r#"IFS= read -r line; kill -TERM "$1"; printf '%s\n' "$line""#, "sh"])
                .arg(child.id().to_string())
                .stdin(Stdio::from(stdout))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let said = tokio::task::block_in_place(|| killer.wait_with_output()).unwrap();
            let said = String::from_utf8_lossy(&said.stdout);
            let st = poll(Duration::from_secs(10), || child.try_wait().unwrap()).await;
            let st = st.unwrap_or_else(|| {
                let _ = child.kill();
                panic!("attempt {attempt}: serve still running 10 s after SIGTERM")
            });
            assert!(said.starts_with("Strongroom is serving https://"), "attempt {attempt}: no ready line: {said:?} ({st})");
            assert_eq!(
                st.code(),
                Some(0),
                "attempt {attempt}: serve printed its URL but then died of SIGTERM ({st}) instead of stopping cleanly"
            );
        }
    }

    async fn sigterm_drains_an_in_flight_upload(b: Backend) {
        let Some(inst) = BinInstance::new(b).await else { return };
        let mut srv = tokio::task::block_in_place(|| inst.serve()).serving();
        let (key, _org, space) = inst.bootstrap_with_space(&srv, "o@example.com", "s").await;

        // An upload whose body is still arriving when SIGTERM comes.
        // The blob writer encrypts in batches of about 1 MiB: send 2 MiB so it has written some.
        let data = pattern(4 << 20, 99);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let req = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=late.bin"), Some(&key))
            .header("content-type", "application/octet-stream")
            .body(body);
        let upload = tokio::spawn(async move { req.send().await });
        let half = data.len() / 2;
        tx.send(Ok(bytes::Bytes::copy_from_slice(&data[..half]))).await.unwrap();
        let tmpdir = inst.dir.join("blobs").join("tmp");
        poll(Duration::from_secs(10), || {
            std::fs::read_dir(&tmpdir)
                .ok()?
                .flatten()
                .any(|e| e.metadata().is_ok_and(|m| m.len() >= 1 << 20))
                .then_some(())
        })
        .await
        .expect("the server never started writing the upload");

        srv.signal("TERM");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(srv.child.try_wait().unwrap().is_none(), "serve exited with an upload in flight instead of draining it");
        tx.send(Ok(bytes::Bytes::copy_from_slice(&data[half..]))).await.unwrap();
        drop(tx);
        let res = upload.await.unwrap().expect("the in-flight upload was cut off by SIGTERM");
        let asset = expect_json(res, StatusCode::CREATED).await;
        assert_eq!(asset["size"], data.len() as u64);
        assert_eq!(asset["sha256"], sha256_hex(&data));
        let st = srv.wait_exit(Duration::from_secs(10)).await.expect("serve did not exit after draining");
        assert_eq!(st.code(), Some(0), "stderr: {}", srv.stderr());

        // The drained upload was committed.
        let srv = tokio::task::block_in_place(|| inst.serve()).serving();
        let id = asset["id"].as_str().unwrap();
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
    }
}

/// With `timeouts.drain_delay`, SIGTERM first makes the node one on its way out: it still
/// serves, but `/readyz` answers 503 (so a balancer's health check takes it out) and every
/// HTTP/1 response closes its connection (so no idle keep-alive connection is left to a proxy
/// when the drain closes the idle ones, where a request sent on it would be lost); then it
/// drains and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_drain_delay_answers_not_ready_and_closes_connections_while_still_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("strongroom.toml");
    std::fs::write(&config, "[timeouts]\ndrain_delay = 3\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let mut srv = tokio::task::block_in_place(|| {
        spawn_serve_with(&data, &[("STRONGROOM_CONFIG", config.as_str())])
    })
    .serving();
    let http1 = strongroom_testkit::https_client_builder(&data.join("tls").join("cert.pem"))
        .http1_only()
        .build()
        .unwrap();
    let base = srv.base.clone();
    let get = |path: &str| http1.get(format!("{base}{path}")).send();

    let res = get("/readyz").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().get("connection").is_none(),
        "keep-alive before SIGTERM"
    );

    srv.signal("TERM");
    let signalled = std::time::Instant::now();
    // The signal is handled asynchronously: wait for readiness to flip.
    let mut flipped = None;
    for _ in 0..40 {
        let res = get("/readyz")
            .await
            .expect("still serving during the drain delay");
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            flipped = Some(res);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = flipped.expect("/readyz never answered 503 after SIGTERM");
    assert_eq!(res.headers()["connection"], "close");
    assert!(
        res.headers().contains_key("strict-transport-security"),
        "security headers kept"
    );
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["status"], 503);

    // Other requests are served as usual, each on a connection that is then closed.
    let res = get("/healthz")
        .await
        .expect("still serving during the drain delay");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["connection"], "close");
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "exited during the drain delay"
    );

    let st = srv
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("serve did not exit after the drain delay");
    assert_eq!(st.code(), Some(0), "stderr: {}", srv.stderr());
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "exited {:?} after SIGTERM, before the 3 s drain delay was over",
        signalled.elapsed()
    );
    assert!(
        get("/healthz").await.is_err(),
        "still accepting after the exit"
    );
}
