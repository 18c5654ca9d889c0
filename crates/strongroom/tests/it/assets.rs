//! Spaces and assets over HTTPS: upload (raw and multipart), download, Range/ETag, pagination,
//! limits, delete, and the encryption-at-rest invariants.

use reqwest::{Method, StatusCode};
use sha2_free::hex_sha256;

use crate::both_backends;
use crate::support::*;

/// SHA-256 without pulling a hash crate into the tests: the system's `sha256sum`.
mod sha2_free {
    pub fn hex_sha256(data: &[u8]) -> String {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

async fn setup(srv: &TestServer) -> (Boot, String) {
    let boot = srv.bootstrap("owner@example.com", "acme");
    let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
    (boot, space)
}

both_backends! {
    async fn raw_upload_round_trips(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        // Crosses several 64 KiB chunks and ends mid-chunk.
        let data = pattern(3 * 65536 + 1234, 7);
        let asset = srv.upload(&boot.api_key, &space, "report.bin", data.clone()).await;
        assert_eq!(asset["size"], data.len() as u64);
        assert_eq!(asset["sha256"], hex_sha256(&data));
        assert_eq!(asset["filename"], "report.bin");
        assert_eq!(asset["space_id"], space.as_str());
        assert!(asset["created_at"].as_str().unwrap().ends_with('Z'));
        let id = asset["id"].as_str().unwrap();

        let meta = expect_json(srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(meta, asset);

        let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/octet-stream");
        assert!(res.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
        assert!(res.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
        let body = res.bytes().await.unwrap();
        assert_eq!(body.as_ref(), data.as_slice());
    }

    async fn empty_and_exact_chunk_uploads(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        // Around the 64 KiB chunk and the 1 MiB batch (16 chunks) the writer hashes and writes in.
        for len in [0usize, 1, 65536, 131072, 16 * 65536, 17 * 65536 + 1, 3_000_001] {
            let data = pattern(len, len as u64 + 1);
            let asset = srv.upload(&boot.api_key, &space, "x", data.clone()).await;
            assert_eq!(asset["sha256"], hex_sha256(&data), "length {len}");
            let id = asset["id"].as_str().unwrap();
            let body = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).send().await.unwrap().bytes().await.unwrap();
            assert_eq!(body.len(), len);
            assert_eq!(body.as_ref(), data.as_slice(), "length {len}");
        }
    }

    async fn multipart_upload_keeps_name_and_type(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        let data = pattern(200_000, 3);
        let part = reqwest::multipart::Part::bytes(data.clone()).file_name("page.html").mime_str("text/html").unwrap();
        let form = reqwest::multipart::Form::new().text("note", "ignored").part("file", part);
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key)).multipart(form).send().await.unwrap();
        let asset = expect_json(res, StatusCode::CREATED).await;
        assert_eq!(asset["filename"], "page.html");
        assert_eq!(asset["content_type"], "text/html");
        assert_eq!(asset["sha256"], hex_sha256(&data));
        let id = asset["id"].as_str().unwrap();
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).send().await.unwrap();
        // Served as an attachment in a sandbox: an uploaded page can never run script in our origin.
        assert_eq!(res.headers()["content-type"], "text/html");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert!(res.headers()["content-security-policy"].to_str().unwrap().starts_with("sandbox"));
        assert!(res.headers()["content-disposition"].to_str().unwrap().contains("filename=\"page.html\""));
        assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());

        // A multipart body without the field is refused and stores nothing.
        let form = reqwest::multipart::Form::new().text("other", "x");
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key)).multipart(form).send().await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }

    async fn bad_upload_input_is_refused_and_changes_nothing(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        let path = format!("/api/v1/spaces/{space}/assets");
        // No filename for a raw body.
        let res = srv.req(Method::POST, &path, Some(&boot.api_key)).body("x").send().await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        // A path in the filename.
        let res = srv.req(Method::POST, &format!("{path}?filename=..%2Fetc%2Fpasswd"), Some(&boot.api_key)).body("x").send().await.unwrap();
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        // A content type that is not a media type.
        let res = srv.req(Method::POST, &format!("{path}?filename=a"), Some(&boot.api_key)).header("content-type", "not a type").body("x").send().await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        let list = expect_json(srv.req(Method::GET, &path, Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0);
        assert!(srv.object_files().is_empty());
    }

    async fn range_etag_and_conditional_requests(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        let data = pattern(200_000, 11);
        let asset = srv.upload(&boot.api_key, &space, "v.bin", data.clone()).await;
        let path = format!("/api/v1/assets/{}/content", asset["id"].as_str().unwrap());
        let get = |range: Option<&str>| {
            let mut r = srv.req(Method::GET, &path, Some(&boot.api_key));
            if let Some(range) = range {
                r = r.header("range", range);
            }
            r.send()
        };
        // A range across the first chunk boundary.
        let res = get(Some("bytes=65530-65545")).await.unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(res.headers()["content-range"], "bytes 65530-65545/200000");
        assert_eq!(res.headers()["content-length"], "16");
        assert_eq!(res.bytes().await.unwrap().as_ref(), &data[65530..65546]);
        // Open-ended and suffix ranges.
        let res = get(Some("bytes=199990-")).await.unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(res.bytes().await.unwrap().as_ref(), &data[199_990..]);
        let res = get(Some("bytes=-5")).await.unwrap();
        assert_eq!(res.headers()["content-range"], "bytes 199995-199999/200000");
        assert_eq!(res.bytes().await.unwrap().as_ref(), &data[199_995..]);
        // Beyond the end: 416 with the size.
        let res = get(Some("bytes=200000-")).await.unwrap();
        assert_eq!(res.headers()["content-range"], "bytes */200000");
        expect_problem(res, StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable").await;
        // ETag and If-None-Match.
        let res = get(None).await.unwrap();
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        assert_eq!(etag, format!("\"{}\"", hex_sha256(&data)));
        assert_eq!(res.headers()["accept-ranges"], "bytes");
        let res = srv.req(Method::GET, &path, Some(&boot.api_key)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert!(res.bytes().await.unwrap().is_empty());
        let res = srv.req(Method::GET, &path, Some(&boot.api_key)).header("if-none-match", "\"other\"").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // If-Range with a stale validator: the whole content, not a fragment of a new version.
        let res = srv.req(Method::GET, &path, Some(&boot.api_key)).header("range", "bytes=0-9").header("if-range", "\"stale\"").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.bytes().await.unwrap().len(), data.len());
    }

    async fn lists_paginate_with_cursors(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(srv.upload(&boot.api_key, &space, &format!("f{i}"), vec![i as u8]).await["id"].as_str().unwrap().to_owned());
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut path = format!("/api/v1/spaces/{space}/assets?limit=2");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = expect_json(srv.req(Method::GET, &path, Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
            pages += 1;
            for item in page["items"].as_array().unwrap() {
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ids, "every asset once, in creation order");
        for bad in ["?limit=0", "?limit=1001", "?cursor=%%%", "?limit=abc"] {
            let res = srv.req(Method::GET, &format!("/api/v1/spaces/{space}/assets{bad}"), Some(&boot.api_key)).send().await.unwrap();
            expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
        let spaces = expect_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/spaces", boot.org_id), Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(spaces["items"][0]["id"], space.as_str());
        assert!(spaces["next_cursor"].is_null());
    }

    async fn upload_limit_answers_413_and_keeps_nothing(b: Backend) {
        let Some(srv) = TestServer::start_with(b, |s| s.instance.service.max_upload_bytes = 100_000).await else { return };
        let (boot, space) = setup(&srv).await;
        let path = format!("/api/v1/spaces/{space}/assets?filename=big");
        // Declared length over the limit: refused before reading.
        let res = srv.req(Method::POST, &path, Some(&boot.api_key)).body(pattern(300_000, 1)).send().await.unwrap();
        expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
        // Chunked (no length): refused once the stream passes the limit.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..10).map(|i| Ok(pattern(20_000, i))).collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let res = srv.req(Method::POST, &path, Some(&boot.api_key)).body(body).send().await.unwrap();
        expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
        // At the limit: accepted.
        srv.upload(&boot.api_key, &space, "fits", pattern(100_000, 2)).await;
        let list = expect_json(srv.req(Method::GET, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(srv.object_files().len(), 1, "refused uploads leave no stored object");
        assert!(srv.temp_files().is_empty(), "refused uploads leave no temp file");
    }

    async fn purge_shreds_the_key_and_the_object(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        let keep = srv.upload(&boot.api_key, &space, "keep", pattern(1000, 1)).await;
        let gone = srv.upload(&boot.api_key, &space, "gone", pattern(1000, 2)).await;
        assert_eq!(srv.object_files().len(), 2);
        let id = gone["id"].as_str().unwrap();
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{id}?purge=true"), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        for path in [format!("/api/v1/assets/{id}"), format!("/api/v1/assets/{id}/content")] {
            let res = srv.req(Method::GET, &path, Some(&boot.api_key)).send().await.unwrap();
            expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        }
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{id}"), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        assert_eq!(srv.object_files().len(), 1, "the object is removed");
        // The data key row is gone too: nothing in the database can decrypt the old bytes.
        use sqlx::Row;
        let mut conn = srv.db_conn().await;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM blobs").fetch_one(&mut conn).await.unwrap().try_get("n").unwrap();
        assert_eq!(n, 1);
        let kept = srv.req(Method::GET, &format!("/api/v1/assets/{}/content", keep["id"].as_str().unwrap()), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(kept.bytes().await.unwrap().as_ref(), pattern(1000, 1).as_slice());
    }

    async fn plaintext_never_reaches_the_disk(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        let marker = b"STRONGROOM-PLAINTEXT-MARKER-7f3a9c";
        let mut data = pattern(150_000, 5);
        for at in [0, 70_000, 149_000] {
            data[at..at + marker.len()].copy_from_slice(marker);
        }
        srv.upload(&boot.api_key, &space, "secret.txt", data.clone()).await;
        let part = reqwest::multipart::Part::bytes(data).file_name("secret2.txt");
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key))
            .multipart(reqwest::multipart::Form::new().part("file", part)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let files = srv.files();
        assert!(files.iter().any(|f| f.to_string_lossy().contains("/blobs/objects/")));
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!contains(&bytes, marker), "plaintext marker found in {}", f.display());
        }
    }

    async fn tampered_blobs_fail_loudly(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        let a = srv.upload(&boot.api_key, &space, "a", pattern(300_000, 1)).await;
        let objects_before = srv.object_files();
        let b2 = srv.upload(&boot.api_key, &space, "b", pattern(300_000, 2)).await;
        let a_file = objects_before[0].clone();
        let b_file = srv.object_files().into_iter().find(|f| *f != a_file).unwrap();
        let fetch = |id: String| {
            let req = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key));
            async move {
                let res = req.send().await?;
                res.bytes().await
            }
        };
        let a_id = a["id"].as_str().unwrap().to_owned();
        let b_id = b2["id"].as_str().unwrap().to_owned();
        let a_orig = std::fs::read(&a_file).unwrap();
        // A flipped byte deep in the blob: the transfer breaks instead of delivering wrong bytes.
        let mut flipped = a_orig.clone();
        flipped[200_000] ^= 0x01;
        std::fs::write(&a_file, &flipped).unwrap();
        let got = fetch(a_id.clone()).await;
        assert!(got.is_err() || got.as_ref().unwrap().as_ref() != pattern(300_000, 1).as_slice(), "tampered content served");
        assert!(got.is_err(), "a tampered blob must cut the transfer");
        // Truncated.
        std::fs::write(&a_file, &a_orig[..a_orig.len() - 100]).unwrap();
        assert!(fetch(a_id.clone()).await.is_err());
        // Blob of another asset moved under this one.
        std::fs::write(&a_file, std::fs::read(&b_file).unwrap()).unwrap();
        assert!(fetch(a_id.clone()).await.is_err());
        // Restored: works again, and the other asset was never affected.
        std::fs::write(&a_file, &a_orig).unwrap();
        assert_eq!(fetch(a_id).await.unwrap().as_ref(), pattern(300_000, 1).as_slice());
        assert_eq!(fetch(b_id).await.unwrap().as_ref(), pattern(300_000, 2).as_slice());
    }

    async fn concurrent_uploads_all_land(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space) = setup(&srv).await;
        let uploads = (0..8).map(|i| srv.upload(&boot.api_key, &space, "c", pattern(100_000 + i, i as u64)));
        let assets = futures_util::future::join_all(uploads).await;
        for (i, a) in assets.iter().enumerate() {
            assert_eq!(a["sha256"], hex_sha256(&pattern(100_000 + i, i as u64)));
        }
        let list = expect_json(srv.req(Method::GET, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key)).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 8);
    }

    async fn orphan_objects_are_swept(b: Backend) {
        let Some(srv) = TestServer::start_with(b, |s| s.instance.service.orphan_grace = std::time::Duration::ZERO).await else { return };
        let (boot, space) = setup(&srv).await;
        let kept = srv.upload(&boot.api_key, &space, "kept", pattern(5000, 1)).await;
        // A committed object no row refers to: what a crash between the durable write and the
        // database commit leaves behind.
        let real = srv.object_files().pop().unwrap();
        let orphan_id = "blb_0123456789abcdef0123456789abcdef";
        // The blob store's layout: objects/<first byte of SHA-256(id) in hex>/<id>.
        let fanout = &hex_sha256(orphan_id.as_bytes())[..2];
        let orphan = real.parent().unwrap().parent().unwrap().join(fanout).join(orphan_id);
        std::fs::copy(&real, &orphan).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&orphan).unwrap().set_modified(old).unwrap();
        assert_eq!(srv.object_files().len(), 2);
        assert_eq!(srv.service.ops.sweep_orphans().await.unwrap(), 1);
        assert_eq!(srv.object_files(), vec![real], "only the orphan is removed");
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{}/content", kept["id"].as_str().unwrap()), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.bytes().await.unwrap().as_ref(), pattern(5000, 1).as_slice());
    }

    async fn concurrent_reads_are_each_audited_once_in_an_intact_chain(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.clone(), boot.api_key.clone());
        let space = srv.create_space(&key, &org, "site").await;
        let asset = srv.upload(&key, &space, "hot.bin", pattern(10 * 1024, 3)).await["id"].as_str().unwrap().to_owned();
        // 64 reads at once share group commits; every one is served and audited.
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (client, url, key) = (srv.client.clone(), srv.url(&format!("/api/v1/assets/{asset}/content")), key.clone());
            tasks.push(tokio::spawn(async move {
                let res = client.get(url).bearer_auth(key).send().await.unwrap();
                (res.status(), res.bytes().await.unwrap().len())
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), (StatusCode::OK, 10 * 1024));
        }
        let mut reads = 0;
        let mut after = String::new();
        loop {
            let page = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit?limit=1000{after}"), Some(&key))).await;
            reads += page["items"].as_array().unwrap().iter().filter(|e| e["action"] == "asset.read" && e["target"] == asset.as_str()).count();
            match page["next_cursor"].as_str() {
                Some(c) => after = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(reads, 64);
        let out = srv.run(&["audit", "verify", "--org", &org]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}
