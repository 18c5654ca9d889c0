//! The HTTP edge: security headers on every response, problem documents for every error,
//! security.txt, OpenAPI, TLS versions, slow clients, graceful shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::support::*;

fn assert_security_headers(h: &reqwest::header::HeaderMap, what: &str) {
    assert!(
        h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age="),
        "{what}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"),
        "{what}"
    );
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert!(h.contains_key("permissions-policy"), "{what}");
    assert!(h.contains_key("x-request-id"), "{what}");
}

async fn raw_tls(srv: &TestServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&srv.cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = srv.base.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

/// Reads until the peer closes (Ok(bytes)) or `limit` passes (Err).
async fn read_until_closed(
    s: &mut (impl AsyncReadExt + Unpin),
    limit: Duration,
) -> Result<Vec<u8>, ()> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now()).ok_or(())?;
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return Err(()),
        }
    }
}

both_backends! {
    async fn security_headers_and_problems_everywhere(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let res = srv.client.get(srv.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_security_headers(res.headers(), "healthz");
        let res = srv.client.get(srv.url("/readyz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_security_headers(res.headers(), "readyz");

        let res = srv.client.get(srv.url("/no/such/route")).send().await.unwrap();
        assert_security_headers(res.headers(), "404");
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = srv.req(Method::PUT, "/api/v1/me", Some(&boot.api_key)).send().await.unwrap();
        assert_security_headers(res.headers(), "405");
        expect_problem(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
        let res = srv.client.get(srv.url("/api/v1/me")).send().await.unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;

        let spaces = format!("/api/v1/orgs/{}/spaces", boot.org_id);
        let res = srv.req(Method::POST, &spaces, Some(&boot.api_key)).header("content-type", "application/json").body("{not json").send().await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        let res = srv.req(Method::POST, &spaces, Some(&boot.api_key)).body("{\"name\":\"x\"}").send().await.unwrap();
        expect_problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
        let res = srv.req(Method::POST, &spaces, Some(&boot.api_key)).json(&serde_json::json!({"name": "x", "extra": 1})).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 422);
        let res = srv.req(Method::POST, &spaces, Some(&boot.api_key)).json(&serde_json::json!({"name": "  "})).send().await.unwrap();
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        let huge = format!("{{\"name\":\"{}\"}}", "x".repeat(200_000));
        let res = srv.req(Method::POST, &spaces, Some(&boot.api_key)).header("content-type", "application/json").body(huge).send().await.unwrap();
        expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
        // None of the refused requests created anything.
        let list = expect_json(srv.req(Method::GET, &spaces, Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0);
    }

    async fn security_txt_and_openapi(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let res = srv.client.get(srv.url("/.well-known/security.txt")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = res.text().await.unwrap();
        assert!(text.contains("Contact: mailto:security@example.com\n"), "{text}");
        let expires = text.lines().find_map(|l| l.strip_prefix("Expires: ")).expect("Expires is required by RFC 9116");
        assert!(expires > "2026-01-01" && expires.ends_with('Z'), "{expires}");

        let doc = expect_json(srv.client.get(srv.url("/api/openapi.json")).send().await.unwrap(), StatusCode::OK).await;
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/v1/me", "get"),
            ("/api/v1/orgs/{org_id}/spaces", "post"),
            ("/api/v1/orgs/{org_id}/spaces", "get"),
            ("/api/v1/spaces/{space_id}/assets", "post"),
            ("/api/v1/assets/{asset_id}/content", "get"),
            ("/api/v1/assets/{asset_id}", "delete"),
            ("/api/v1/orgs/{org_id}/audit", "get"),
        ] {
            assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing from OpenAPI");
        }
        assert!(doc["components"]["schemas"]["Problem"].is_object());
    }

    async fn audit_records_writes_and_reads_in_a_chain(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "s").await;
        let asset = srv.upload(&boot.api_key, &space, "a", vec![1, 2, 3]).await;
        let id = asset["id"].as_str().unwrap();
        srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).send().await.unwrap().bytes().await.unwrap();
        srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).header("range", "bytes=0-0").send().await.unwrap().bytes().await.unwrap();
        // HEAD sends headers only: no byte is read, so no read is recorded.
        let head = srv.req(Method::HEAD, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()["content-length"], "3");
        assert!(head.headers().contains_key("etag"));
        assert_eq!(srv.req(Method::DELETE, &format!("/api/v1/assets/{id}"), Some(&boot.api_key)).send().await.unwrap().status(), StatusCode::NO_CONTENT);
        // A refused request records nothing.
        srv.req(Method::DELETE, &format!("/api/v1/assets/{id}"), Some(&boot.api_key)).send().await.unwrap();
        let log = expect_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit", boot.org_id), Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        let items = log["items"].as_array().unwrap();
        let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["org.create", "member.set_role", "apikey.create", "space.create", "asset.create", "asset.read", "asset.read", "asset.delete"]);
        for pair in items.windows(2) {
            assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "the chain links");
            assert_eq!(pair[1]["seq"].as_i64().unwrap(), pair[0]["seq"].as_i64().unwrap() + 1);
        }
        let read = &items[5];
        assert_eq!(read["target"], id);
        assert_eq!(read["ip"], "127.0.0.1");
        assert!(read["actor"].as_str().unwrap().starts_with("key:"));
        for field in ["seq", "at", "actor", "action", "target", "ip", "hash", "prev_hash"] {
            assert!(!read[field].is_null(), "{field}");
        }
        let page = expect_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=3", boot.org_id), Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 3);
        let next = page["next_cursor"].as_str().unwrap();
        let page2 = expect_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=3&cursor={next}", boot.org_id), Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(page2["items"][0]["seq"], 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_only_by_default_and_tls12_when_configured() {
    let srv = TestServer::start(Backend::Sqlite).await.unwrap();
    let v12 = strongroom_testkit::https_client_builder(&srv.cert)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(
        v12.get(srv.url("/healthz")).send().await.is_err(),
        "a TLS 1.2 client must be refused by default"
    );
    let res = srv.client.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let srv12 = TestServer::start_with(Backend::Sqlite, |s| s.allow_tls12 = true)
        .await
        .unwrap();
    let v12 = strongroom_testkit::https_client_builder(&srv12.cert)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert_eq!(
        v12.get(srv12.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off() {
    // The fixture's header-read timeout is 2 s.
    let srv = TestServer::start(Backend::Sqlite).await.unwrap();
    let mut tls = raw_tls(&srv).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut cut = false;
    // Trickle a header byte every 200 ms for up to 8 s: each byte is progress, so only the
    // header deadline can end this.
    for _ in 0..40 {
        if tls.write_all(b"X").await.is_err() || tls.flush().await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(_)) => {
                // The server may answer 408 before closing; the connection must still end.
            }
            Err(_) => {}
        }
    }
    assert!(cut, "a client trickling headers was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "cut off only after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let srv = TestServer::start_with(Backend::Sqlite, |s| {
        s.timeouts.idle = Duration::from_secs(1)
    })
    .await
    .unwrap();
    let mut tls = raw_tls(&srv).await;
    // A complete keep-alive request, then silence.
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let got = read_until_closed(&mut tls, Duration::from_secs(8))
        .await
        .expect("an idle connection must be closed");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests() {
    let srv = TestServer::start(Backend::Sqlite).await.unwrap();
    let boot = srv.bootstrap("owner@example.com", "acme");
    let space = srv.create_space(&boot.api_key, &boot.org_id, "s").await;
    // An upload whose body arrives slowly, still in flight when shutdown starts.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let req = srv
        .req(
            Method::POST,
            &format!("/api/v1/spaces/{space}/assets?filename=slow"),
            Some(&boot.api_key),
        )
        .body(body)
        .send();
    let upload = tokio::spawn(req);
    tx.send(Ok(vec![1u8; 1000])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = srv.base.clone();
    let client = srv.client.clone();
    let stopping = tokio::spawn(srv.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused while the in-flight upload finishes.
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "still accepting during the drain"
    );
    tx.send(Ok(vec![2u8; 1000])).await.unwrap();
    drop(tx);
    let res = upload.await.unwrap().unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "the in-flight upload completes during the drain"
    );
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let srv = TestServer::start(Backend::Sqlite).await.unwrap();
    // Past the 64 KiB header buffer: refused (431) or the connection is dropped, never served.
    let res = srv
        .client
        .get(srv.url("/healthz"))
        .header("x-filler", "a".repeat(100 * 1024))
        .send()
        .await;
    match res {
        Ok(r) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    // The server is unaffected.
    assert_eq!(
        srv.client
            .get(srv.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
