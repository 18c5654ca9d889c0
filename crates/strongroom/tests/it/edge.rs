//! The HTTP edge: security headers on every response, problem documents for every error,
//! security.txt, OpenAPI, TLS versions and suites, slow clients (headers, bodies, idle
//! connections), connection caps, the request deadline, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use strongroom::serve::ServeSettings;
use strongroom_http::MinBodyRate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::support::*;

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

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

fn server_addr(srv: &TestServer) -> SocketAddr {
    srv.base.trim_start_matches("https://").parse().unwrap()
}

/// A TLS connection to the server from the loopback address `local` (any of 127.0.0.0/8 is this
/// machine, so tests can play several clients).
async fn tls_from(srv: &TestServer, local: [u8; 4]) -> std::io::Result<Tls> {
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
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((local, 0)))?;
    let tcp = socket.connect(server_addr(srv)).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

async fn raw_tls(srv: &TestServer) -> Tls {
    tls_from(srv, [127, 0, 0, 1]).await.unwrap()
}

/// An HTTPS client whose connections come from the loopback address `local`.
fn client_from(srv: &TestServer, local: [u8; 4]) -> reqwest::Client {
    strongroom_testkit::https_client_builder(&srv.cert)
        .local_address(std::net::IpAddr::from(local))
        .build()
        .unwrap()
}

/// Sends `GET /healthz` on a raw connection and reads the status line.
async fn healthz_on(tls: &mut Tls) -> String {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("no answer on a held connection")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
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

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// `openssl s_client` (an independent TLS implementation) offering only TLS 1.2 and `ciphers`:
/// whether the handshake succeeded, and what it printed.
async fn openssl_tls12(srv: &TestServer, ciphers: &str) -> (bool, String) {
    let addr = server_addr(srv).to_string();
    let ca = srv.cert.clone();
    let ciphers = ciphers.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-servername", "localhost"])
            .args([
                "-tls1_2",
                "-cipher",
                &ciphers,
                "-verify_return_error",
                "-brief",
            ])
            .arg("-CAfile")
            .arg(&ca)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl must be installed (scripts/test.sh installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

/// ECDHE suites with CBC (MAC-then-encrypt) record protection, for both key types.
const CBC_SUITES: &str = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:\
                          ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:\
                          ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384";
/// ECDHE suites with AEAD record protection.
const AEAD_SUITES: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
                           ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256";

/// A small minimum body rate for tests: 1 KiB/s over 2 s.
fn quick_body_rate(s: &mut ServeSettings) {
    s.limits.min_body_rate = Some(MinBodyRate {
        bytes_per_sec: 1024,
        window: Duration::from_secs(2),
    });
}

/// Asset names in a space.
async fn asset_names(srv: &TestServer, key: &str, space: &str) -> Vec<String> {
    let list = get_json(srv.req(
        Method::GET,
        &format!("/api/v1/spaces/{space}/assets"),
        Some(key),
    ))
    .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["filename"].as_str().unwrap().to_owned())
        .collect()
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

    async fn tls13_only_by_default_and_tls12_when_configured(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let v12 = strongroom_testkit::https_client_builder(&srv.cert)
            .max_tls_version(reqwest::tls::Version::TLS_1_2)
            .build()
            .unwrap();
        assert!(v12.get(srv.url("/healthz")).send().await.is_err(), "a TLS 1.2 client must be refused by default");
        let (ok, out) = openssl_tls12(&srv, AEAD_SUITES).await;
        assert!(!ok, "TLS 1.2 with AEAD suites must be refused by default: {out}");
        assert!(out.contains("alert protocol version"), "refused for another reason: {out}");
        let res = srv.client.get(srv.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);

        let Some(srv12) = TestServer::start_with(b, |s| s.allow_tls12 = true).await else { return };
        let v12 = strongroom_testkit::https_client_builder(&srv12.cert)
            .max_tls_version(reqwest::tls::Version::TLS_1_2)
            .build()
            .unwrap();
        assert_eq!(v12.get(srv12.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
        // TLS 1.2 on, yet only ECDHE with AEAD: a client offering nothing but CBC suites is
        // refused, the same client offering AEAD suites gets one.
        let (ok, out) = openssl_tls12(&srv12, CBC_SUITES).await;
        assert!(!ok, "a TLS 1.2 handshake with only CBC suites offered succeeded: {out}");
        assert!(out.contains("alert handshake failure"), "refused for another reason: {out}");
        let (ok, out) = openssl_tls12(&srv12, AEAD_SUITES).await;
        assert!(ok, "a TLS 1.2 handshake with ECDHE-AEAD suites failed: {out}");
        assert!(out.contains("TLSv1.2"), "{out}");
        let suite = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("Ciphersuite:"))
            .unwrap_or_else(|| panic!("no negotiated suite in: {out}"))
            .trim();
        assert!(AEAD_SUITES.split(':').any(|s| s == suite), "negotiated {suite}");
    }

    async fn slowloris_is_cut_off(b: Backend) {
        // The fixture's header-read timeout is 2 s.
        let Some(srv) = TestServer::start(b).await else { return };
        let mut tls = raw_tls(&srv).await;
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
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
        assert!(started.elapsed() < Duration::from_secs(6), "cut off only after {:?}", started.elapsed());
    }

    async fn a_trickled_upload_is_cut_off_and_never_stored_while_others_are_served(b: Backend) {
        let Some(srv) = TestServer::start_with(b, quick_body_rate).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "s").await;
        let tls = raw_tls(&srv).await;
        let (mut rd, mut wr) = tokio::io::split(tls);
        let head = format!(
            "POST /api/v1/spaces/{space}/assets?filename=trickled HTTP/1.1\r\nHost: localhost\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: 100000\r\n\r\n",
            boot.api_key
        );
        wr.write_all(head.as_bytes()).await.unwrap();
        wr.flush().await.unwrap();
        let started = Instant::now();
        let reader = tokio::spawn(async move {
            let got = read_until_closed(&mut rd, Duration::from_secs(20)).await;
            (got, started.elapsed())
        });
        // 10 bytes every 250 ms: 40 bytes/s, far under 1 KiB/s, yet every byte resets the idle
        // timer. Meanwhile another client is served as usual.
        for i in 0..80 {
            if reader.is_finished() {
                break;
            }
            if wr.write_all(&[b'x'; 10]).await.is_err() || wr.flush().await.is_err() {
                break;
            }
            if i % 3 == 0 {
                let res = srv.client.get(srv.url("/healthz")).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::OK, "another client was not served during the trickle");
                assert_eq!(asset_names(&srv, &boot.api_key, &space).await, Vec::<String>::new());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let (got, cut_after) = reader.await.unwrap();
        let got = got.expect("the trickled upload was never cut off");
        assert!(
            cut_after >= Duration::from_millis(1900) && cut_after < Duration::from_secs(6),
            "cut off after {cut_after:?}, the window being 2 s"
        );
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.to_ascii_lowercase().contains("content-type: application/problem+json"), "{text}");
        assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
        assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
        // Nothing of it is stored or left behind, and the server still works.
        assert_eq!(asset_names(&srv, &boot.api_key, &space).await, Vec::<String>::new());
        assert!(srv.temp_files().is_empty(), "{:?}", srv.temp_files());
        assert!(srv.object_files().is_empty(), "{:?}", srv.object_files());
        srv.upload(&boot.api_key, &space, "after", vec![7u8; 10]).await;
        assert_eq!(asset_names(&srv, &boot.api_key, &space).await, ["after"]);
    }

    async fn uploads_at_or_above_the_minimum_rate_are_stored_however_long_they_take(b: Backend) {
        let Some(srv) = TestServer::start_with(b, quick_body_rate).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "s").await;
        // A fast upload.
        let big = pattern(8 << 20, 3);
        let asset = srv.upload(&boot.api_key, &space, "fast", big.clone()).await;
        assert_eq!(download(&srv, &boot.api_key, asset["id"].as_str().unwrap()).await, big);
        // A paced one: 3 KiB every 500 ms (6 KiB/s) for 5 s, more than two 2-second windows.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        let req = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=paced"), Some(&boot.api_key))
            .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
            .send();
        let upload = tokio::spawn(req);
        let paced = pattern(30 * 1024, 4);
        let started = Instant::now();
        for chunk in paced.chunks(3 * 1024) {
            tx.send(Ok(chunk.to_vec())).await.unwrap();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        drop(tx);
        let asset = expect_json(upload.await.unwrap().unwrap(), StatusCode::CREATED).await;
        assert!(started.elapsed() >= Duration::from_secs(4));
        assert_eq!(asset["size"], paced.len());
        assert_eq!(download(&srv, &boot.api_key, asset["id"].as_str().unwrap()).await, paced);
        let mut names = asset_names(&srv, &boot.api_key, &space).await;
        names.sort();
        assert_eq!(names, ["fast", "paced"]);
    }

    async fn connection_caps_refuse_the_excess_and_serve_everyone_else(b: Backend) {
        let Some(srv) = TestServer::start_with(b, |s| {
            s.limits.max_connections = 3;
            s.limits.max_connections_per_ip = 2;
        })
        .await
        else {
            return;
        };
        // Two connections from 127.0.0.1: its whole share.
        let mut a1 = raw_tls(&srv).await;
        let a2 = raw_tls(&srv).await;
        let started = Instant::now();
        let third = tls_from(&srv, [127, 0, 0, 1]).await;
        assert!(third.is_err(), "a third connection from one address was accepted");
        assert!(started.elapsed() < Duration::from_secs(2), "refused only after {:?}", started.elapsed());
        // Another address is served, and so is the first one on the connections it holds.
        let other = client_from(&srv, [127, 0, 0, 2]);
        assert_eq!(other.get(srv.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(healthz_on(&mut a1).await, "HTTP/1.1 200 OK");
        // Three open now (other's keep-alive connection included): the total is reached too.
        assert!(tls_from(&srv, [127, 0, 0, 3]).await.is_err(), "a connection past the total was accepted");
        assert_eq!(other.get(srv.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
        // A closed connection gives its place back.
        drop(a2);
        let mut again = None;
        for _ in 0..30 {
            if let Ok(c) = tls_from(&srv, [127, 0, 0, 1]).await {
                again = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut again = again.expect("a place freed by a closed connection was never given back");
        assert_eq!(healthz_on(&mut again).await, "HTTP/1.1 200 OK");
    }

    async fn json_requests_past_the_deadline_get_503_and_change_nothing_but_slow_uploads_finish(b: Backend) {
        let Some(srv) = TestServer::start_with(b, |s| s.http.request_deadline = Duration::from_secs(1)).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "s").await;

        // An upload whose body takes 2.5 s, past the 1 s deadline: uploads are exempt.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        let req = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=slow"), Some(&boot.api_key))
            .body(reqwest::Body::wrap_stream(tokio_stream_from(rx)))
            .send();
        let upload = tokio::spawn(req);
        for _ in 0..3 {
            tx.send(Ok(vec![5u8; 64 * 1024])).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1250)).await;
        }
        drop(tx);
        let asset = expect_json(upload.await.unwrap().unwrap(), StatusCode::CREATED).await;
        assert_eq!(asset["size"], 3 * 64 * 1024);

        // A JSON call held up by a busy database: the write lock (SQLite) or the spaces table
        // (PostgreSQL) is held by another connection.
        let mut conn = srv.db_conn().await;
        let lock: &[&str] = match b {
            Backend::Sqlite => &["BEGIN IMMEDIATE"],
            Backend::Postgres => &["BEGIN", "LOCK TABLE spaces IN EXCLUSIVE MODE"],
        };
        for stmt in lock {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*stmt)).execute(&mut conn).await.unwrap();
        }
        let spaces = format!("/api/v1/orgs/{}/spaces", boot.org_id);
        let started = Instant::now();
        let res = srv.req(Method::POST, &spaces, Some(&boot.api_key)).json(&serde_json::json!({"name": "late"})).send().await.unwrap();
        let took = started.elapsed();
        let retry_after: u64 = res.headers().get("retry-after").expect("no Retry-After").to_str().unwrap().parse().unwrap();
        assert!(retry_after >= 1);
        expect_problem(res, StatusCode::SERVICE_UNAVAILABLE, "deadline_exceeded").await;
        assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(4), "answered after {took:?}");
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();

        // The abandoned request created nothing, and the server goes on.
        let list = get_json(srv.req(Method::GET, &spaces, Some(&boot.api_key))).await;
        let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["s"]);
        srv.create_space(&boot.api_key, &boot.org_id, "after").await;
    }

    async fn idle_connections_are_closed(b: Backend) {
        let Some(srv) = TestServer::start_with(b, |s| s.timeouts.idle = Duration::from_secs(1)).await else { return };
        let mut tls = raw_tls(&srv).await;
        // A complete keep-alive request, then silence.
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let started = Instant::now();
        let got = read_until_closed(&mut tls, Duration::from_secs(8)).await.expect("an idle connection must be closed");
        assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    async fn shutdown_drains_in_flight_requests(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "s").await;
        // An upload whose body arrives slowly, still in flight when shutdown starts.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
        let req = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=slow"), Some(&boot.api_key))
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
        assert!(client.get(format!("{base}/healthz")).send().await.is_err(), "still accepting during the drain");
        tx.send(Ok(vec![2u8; 1000])).await.unwrap();
        drop(tx);
        let res = upload.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "the in-flight upload completes during the drain");
        tokio::time::timeout(Duration::from_secs(10), stopping).await.unwrap().unwrap();
    }

    async fn oversized_headers_are_refused(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        // Past the 64 KiB header buffer: refused (431) or the connection is dropped, never served.
        let res = srv.client.get(srv.url("/healthz")).header("x-filler", "a".repeat(100 * 1024)).send().await;
        match res {
            Ok(r) => assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
        }
        // The server is unaffected.
        assert_eq!(srv.client.get(srv.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    }
}

/// A connection accepted before the shutdown, whose request comes after it began, is served
/// (and then closed) rather than dropped unanswered: a proxy that opened it has written its
/// request by then and will not resend a POST elsewhere. One that sends nothing does not hold
/// the drain past the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_accepted_before_the_shutdown_is_served_its_first_request() {
    let Some(srv) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let mut late = raw_tls(&srv).await;
    let _silent = raw_tls(&srv).await;
    let stopped_at = Instant::now();
    let stopping = tokio::spawn(srv.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    late.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let got = read_until_closed(&mut late, Duration::from_secs(5))
        .await
        .expect("the connection must be closed after its answer");
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 200"),
        "the request sent during the drain was not answered: {got:?}"
    );
    // The test server's header timeout is 2 s: the silent connection is closed after it.
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stopped_at.elapsed() < Duration::from_secs(6),
        "the silent connection held the drain for {:?}",
        stopped_at.elapsed()
    );
}
