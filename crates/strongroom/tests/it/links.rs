//! Download links over HTTPS, on both backends: the bytes with no other credential, Range and
//! ETag, cache headers bounded by the expiry, single use under concurrency, expiry, revocation,
//! address binding, one identical 404 for every unusable token, tenancy, roles and space limits,
//! the configured lifetime limit, the list, the audit trail, and tokens kept out of the log.

use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

/// An organization with a space holding one asset; returns (boot, space, asset id, its bytes).
async fn setup(srv: &TestServer) -> (Boot, String, String, Vec<u8>) {
    let boot = srv.bootstrap("owner@example.com", "acme");
    let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
    // Several 64 KiB chunks, ending mid-chunk.
    let data = pattern(3 * 65536 + 777, 42);
    let asset = srv
        .upload(&boot.api_key, &space, "report.pdf", data.clone())
        .await;
    (boot, space, asset["id"].as_str().unwrap().to_owned(), data)
}

/// `POST /assets/{asset}/links` with `body`, as `key`.
async fn create(srv: &TestServer, key: &str, asset: &str, body: Value) -> Response {
    srv.req(
        Method::POST,
        &format!("/api/v1/assets/{asset}/links"),
        Some(key),
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

/// Creates a link that must succeed; returns the creation response.
async fn new_link(srv: &TestServer, key: &str, asset: &str, body: Value) -> Value {
    expect_json(create(srv, key, asset, body).await, StatusCode::CREATED).await
}

/// A GET of a link's URL with no credential at all.
async fn fetch(srv: &TestServer, url: &str) -> Response {
    srv.client.get(url).send().await.unwrap()
}

fn url_of(link: &Value) -> String {
    link["url"].as_str().unwrap().to_owned()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// The 404 a token that never existed gets: every unusable link must get exactly this.
async fn unknown_body(srv: &TestServer) -> Vec<u8> {
    let res = fetch(
        srv,
        &srv.url("/d/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    refused_body(res, "a token that never existed").await
}

/// Asserts the uniform refusal (404 problem, not cacheable) and returns its body.
async fn refused_body(res: Response, what: &str) -> Vec<u8> {
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "{what}");
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "{what}"
    );
    assert_eq!(res.headers()["cache-control"], "no-store", "{what}");
    let body = res.bytes().await.unwrap().to_vec();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "not_found", "{what}");
    body
}

/// The organization's audit events (owner key).
async fn audit(srv: &TestServer, boot: &Boot) -> Vec<Value> {
    let v = get_json(srv.req(
        Method::GET,
        &format!("/api/v1/orgs/{}/audit?limit=1000", boot.org_id),
        Some(&boot.api_key),
    ))
    .await;
    v["items"].as_array().unwrap().clone()
}

fn events<'a>(all: &'a [Value], action: &str) -> Vec<&'a Value> {
    all.iter().filter(|e| e["action"] == action).collect()
}

/// `max-age` of a Cache-Control value.
fn max_age(cache_control: &str) -> u64 {
    cache_control
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .unwrap_or_else(|| panic!("no max-age in {cache_control:?}"))
        .parse()
        .unwrap()
}

/// Overwrites a link's expiry in the database (a link that expired long ago).
async fn expire_in_db(srv: &TestServer, link_id: &str) {
    let mut conn = srv.db_conn().await;
    let done = sqlx::query("UPDATE links SET expires_at = $1 WHERE id = $2")
        .bind(1_i64)
        .bind(link_id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

both_backends! {
    async fn a_link_serves_the_asset_to_anyone_holding_it(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, asset, data) = setup(&srv).await;
        let link = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600, "single_use": false})).await;
        let url = url_of(&link);
        // The URL is this server's, and its token has at least 128 bits.
        let token = url.strip_prefix(&format!("{}/d/", srv.base)).unwrap_or_else(|| panic!("unexpected URL {url}"));
        assert!(token.len() >= 22, "{token}");
        assert!(token.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{token}");
        assert!(id_of(&link).starts_with("lnk_"));
        assert_eq!(link["asset_id"], asset.as_str());
        assert_eq!(link["single_use"], false);
        assert!(link["ip"].is_null());
        let expires = link["expires_at"].as_str().unwrap();
        assert!(expires.ends_with('Z'), "{expires}");
        // Two links to the same asset never share a token.
        let other = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600})).await;
        assert_ne!(url_of(&other), url);

        // No Authorization header, no cookie: the token alone opens it, as often as needed.
        for _ in 0..2 {
            let res = fetch(&srv, &url).await;
            assert_eq!(res.status(), StatusCode::OK);
            let h = res.headers().clone();
            assert_eq!(h["content-type"], "application/octet-stream");
            assert_eq!(h["content-length"], data.len().to_string().as_str());
            assert_eq!(h["accept-ranges"], "bytes");
            assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"report.pdf\""));
            assert!(h["content-security-policy"].to_str().unwrap().contains("sandbox"));
            assert_eq!(h["x-content-type-options"], "nosniff");
            assert_eq!(h["referrer-policy"], "no-referrer");
            assert_eq!(h["cross-origin-resource-policy"], "cross-origin");
            assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
        }

        // Creation and every use are in the trail, with who, what and from where; the token never is.
        let trail = audit(&srv, &boot).await;
        let created = events(&trail, "link.create");
        assert_eq!(created.len(), 2);
        assert_eq!(created[0]["target"], id_of(&link).as_str());
        assert_eq!(created[0]["detail"]["asset_id"], asset.as_str());
        assert_eq!(created[0]["detail"]["single_use"], false);
        assert!(created[0]["actor"].as_str().unwrap().starts_with("key:"));
        let uses = events(&trail, "link.use");
        assert_eq!(uses.len(), 2, "{uses:?}");
        for u in uses {
            assert_eq!(u["actor"], format!("link:{}", id_of(&link)).as_str());
            assert_eq!(u["target"], asset.as_str());
            assert_eq!(u["ip"], "127.0.0.1");
        }
        let text = serde_json::to_string(&trail).unwrap();
        assert!(!text.contains(token), "the token is in the audit trail");
        let out = srv.run(&["audit", "verify", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    async fn ranges_and_validators_work_on_links(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, asset, data) = setup(&srv).await;
        let link = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 600})).await;
        let url = url_of(&link);
        let size = data.len();
        // Across the first chunk boundary.
        let res = srv.client.get(&url).header("range", "bytes=65530-65545").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(res.headers()["content-range"], format!("bytes 65530-65545/{size}").as_str());
        assert_eq!(res.headers()["content-length"], "16");
        assert!(res.headers()["cache-control"].to_str().unwrap().starts_with("public, max-age="));
        assert_eq!(res.bytes().await.unwrap().as_ref(), &data[65530..65546]);
        // Suffix range.
        let res = srv.client.get(&url).header("range", "bytes=-10").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(res.bytes().await.unwrap().as_ref(), &data[size - 10..]);
        // Beyond the end.
        let res = srv.client.get(&url).header("range", format!("bytes={size}-")).send().await.unwrap();
        assert_eq!(res.headers()["content-range"], format!("bytes */{size}").as_str());
        expect_problem(res, StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable").await;

        // The ETag is the content's, the same as through the API; a match is a bodiless 304.
        let res = fetch(&srv, &url).await;
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        let api = srv.req(Method::GET, &format!("/api/v1/assets/{asset}/content"), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(api.headers()["etag"], etag.as_str());
        let res = srv.client.get(&url).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert!(res.headers()["cache-control"].to_str().unwrap().starts_with("public, max-age="));
        assert!(res.bytes().await.unwrap().is_empty());
        let res = srv.client.get(&url).header("if-none-match", "\"something else\"").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.bytes().await.unwrap().len(), size);
        // If-Range with a stale validator: everything.
        let res = srv.client.get(&url).header("range", "bytes=0-9").header("if-range", "\"stale\"").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.bytes().await.unwrap().len(), size);

        // Each read that sent bytes was recorded (with its range); the 304 and the 416 sent none.
        let trail = audit(&srv, &boot).await;
        let uses = events(&trail, "link.use");
        assert_eq!(uses.len(), 5, "{uses:?}");
        assert_eq!(uses[0]["detail"]["range"], json!([65530, 65546]));
        let listed = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{asset}/links"), Some(&boot.api_key))).await;
        assert_eq!(listed["items"][0]["use_count"], 5);
    }

    async fn cache_headers_never_outlive_the_link(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, asset, _) = setup(&srv).await;
        // Reusable: a shared cache (a CDN) may keep it, at most until the link expires.
        let link = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 100})).await;
        let res = fetch(&srv, &url_of(&link)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let cc = res.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(cc.starts_with("public, "), "{cc}");
        assert!(cc.contains("must-revalidate"), "{cc}");
        let age = max_age(&cc);
        assert!((80..=100).contains(&age), "max-age {age} for a link with 100 s left");
        // A week-long link: never more than a week.
        let long = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 604_800})).await;
        let res = fetch(&srv, &url_of(&long)).await;
        let age = max_age(res.headers()["cache-control"].to_str().unwrap());
        assert!((604_700..=604_800).contains(&age), "{age}");
        // Bound to one address: only that client may keep it, never a shared cache.
        let bound = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 100, "ip": "127.0.0.1"})).await;
        let res = fetch(&srv, &url_of(&bound)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let cc = res.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(cc.starts_with("private, "), "{cc}");
        assert!(max_age(&cc) <= 100);
        // Single use: nobody keeps it.
        let once = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 100, "single_use": true})).await;
        let res = fetch(&srv, &url_of(&once)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "no-store");
    }

    async fn a_single_use_link_serves_exactly_one_of_many_concurrent_requests(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, asset, data) = setup(&srv).await;
        let unknown = unknown_body(&srv).await;
        let link = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 600, "single_use": true})).await;
        assert_eq!(link["single_use"], true);
        let url = url_of(&link);
        // Neither a HEAD nor a 304 reads the content, so neither uses the link up.
        let res = srv.client.head(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-length"], data.len().to_string().as_str());
        assert_eq!(res.headers()["cache-control"], "no-store");
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        let res = srv.client.get(&url).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

        // 20 requests at once, each on its own connection: exactly one gets the bytes.
        let attempts = (0..20).map(|_| {
            let client = strongroom_testkit::https_client(&srv.cert);
            let url = url.clone();
            tokio::spawn(async move {
                let res = client.get(&url).send().await.unwrap();
                let status = res.status();
                (status, res.bytes().await.unwrap().to_vec())
            })
        }).collect::<Vec<_>>();
        let mut winners = 0;
        for a in attempts {
            let (status, body) = a.await.unwrap();
            match status {
                StatusCode::OK => {
                    winners += 1;
                    assert_eq!(body, data);
                }
                StatusCode::NOT_FOUND => assert_eq!(body, unknown, "a refused use must look like an unknown token"),
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(winners, 1, "a single-use link served {winners} downloads");
        // And it stays used up.
        let res = fetch(&srv, &url).await;
        assert_eq!(refused_body(res, "a used-up link").await, unknown);
        let res = srv.client.head(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let trail = audit(&srv, &boot).await;
        assert_eq!(events(&trail, "link.use").len(), 1);
        let listed = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{asset}/links"), Some(&boot.api_key))).await;
        let item = &listed["items"][0];
        assert_eq!(item["use_count"], 1);
        assert!(item["used_at"].is_string());
    }

    async fn an_expired_link_stops_working(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, asset, _) = setup(&srv).await;
        let unknown = unknown_body(&srv).await;
        // A one-second link stops on its own (bounded wait: no fixed sleep).
        let short = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 1})).await;
        let url = url_of(&short);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let res = fetch(&srv, &url).await;
            if res.status() == StatusCode::NOT_FOUND {
                assert_eq!(refused_body(res, "an expired link").await, unknown);
                break;
            }
            assert_eq!(res.status(), StatusCode::OK);
            let age = max_age(res.headers()["cache-control"].to_str().unwrap());
            assert!(age <= 1, "max-age {age} beyond a one-second link");
            assert!(Instant::now() < deadline, "the one-second link never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Past its expiry, a HEAD and a conditional request are refused too.
        let res = srv.client.head(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = srv.client.get(&url).header("if-none-match", "*").send().await.unwrap();
        assert_eq!(refused_body(res, "a conditional request on an expired link").await, unknown);
        // An hour-long link whose expiry has passed (as the database says) is refused at once.
        let long = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600})).await;
        assert_eq!(fetch(&srv, &url_of(&long)).await.status(), StatusCode::OK);
        expire_in_db(&srv, &id_of(&long)).await;
        let res = fetch(&srv, &url_of(&long)).await;
        assert_eq!(refused_body(res, "a link past its expiry").await, unknown);
    }

    async fn revocation_is_immediate(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, asset, data) = setup(&srv).await;
        let unknown = unknown_body(&srv).await;
        let link = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600})).await;
        let url = url_of(&link);
        let id = id_of(&link);
        assert_eq!(fetch(&srv, &url).await.bytes().await.unwrap().as_ref(), data.as_slice());
        // Revoked: the very next request is refused, with no wait and no cache in between.
        let res = srv.req(Method::DELETE, &format!("/api/v1/links/{id}"), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = fetch(&srv, &url).await;
        assert_eq!(refused_body(res, "a revoked link").await, unknown);
        let res = srv.client.get(&url).header("range", "bytes=0-0").send().await.unwrap();
        assert_eq!(refused_body(res, "a range of a revoked link").await, unknown);
        // Revoking again: not found (nothing left to revoke).
        let res = srv.req(Method::DELETE, &format!("/api/v1/links/{id}"), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let listed = get_json(srv.req(Method::GET, &format!("/api/v1/assets/{asset}/links"), Some(&boot.api_key))).await;
        assert!(listed["items"][0]["revoked_at"].is_string());
        let trail = audit(&srv, &boot).await;
        let revoked = events(&trail, "link.revoke");
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0]["target"], id.as_str());
        assert_eq!(revoked[0]["detail"]["asset_id"], asset.as_str());
        // Other links of the asset keep working.
        let other = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600})).await;
        assert_eq!(fetch(&srv, &url_of(&other)).await.status(), StatusCode::OK);
    }

    async fn a_bound_link_answers_only_its_address(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, asset, data) = setup(&srv).await;
        let unknown = unknown_body(&srv).await;
        let elsewhere = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 600, "ip": "203.0.113.9"})).await;
        assert_eq!(elsewhere["ip"], "203.0.113.9");
        let url = url_of(&elsewhere);
        let res = fetch(&srv, &url).await;
        assert_eq!(refused_body(res, "a link bound to another address").await, unknown);
        // Forwarding headers are not trusted: the address is the connection's.
        for (name, value) in [("x-forwarded-for", "203.0.113.9"), ("x-real-ip", "203.0.113.9"), ("forwarded", "for=203.0.113.9")] {
            let res = srv.client.get(&url).header(name, value).send().await.unwrap();
            assert_eq!(refused_body(res, name).await, unknown, "{name}");
        }
        // The refusals are in the trail: someone holds the link somewhere else.
        let trail = audit(&srv, &boot).await;
        let refused = events(&trail, "link.refused");
        assert_eq!(refused.len(), 4);
        assert_eq!(refused[0]["detail"]["reason"], "address");
        assert_eq!(refused[0]["ip"], "127.0.0.1");
        assert_eq!(refused[0]["target"], asset.as_str());
        assert!(events(&trail, "link.use").is_empty());

        // Bound to this client's address (written plainly or IPv4-mapped): it works.
        for ip in ["127.0.0.1", "::ffff:127.0.0.1"] {
            let here = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 600, "ip": ip})).await;
            assert_eq!(here["ip"], "127.0.0.1");
            let res = fetch(&srv, &url_of(&here)).await;
            assert_eq!(res.status(), StatusCode::OK, "{ip}");
            assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
        }
        for bad in [json!("not an address"), json!("127.0.0.1/8"), json!(""), json!(7)] {
            let res = create(&srv, &boot.api_key, &asset, json!({"expires_in": 600, "ip": bad})).await;
            expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        }
    }

    async fn every_unusable_link_gets_the_same_404(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, space, asset, _) = setup(&srv).await;
        let unknown = unknown_body(&srv).await;
        let live = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600})).await;
        let live_url = url_of(&live);
        let token = live_url.rsplit('/').next().unwrap().to_owned();
        let flip = |i: usize| {
            let mut t = token.clone().into_bytes();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            String::from_utf8(t).unwrap()
        };
        let mut urls: Vec<(String, String)> = vec![
            ("first character flipped".into(), srv.url(&format!("/d/{}", flip(0)))),
            ("last character flipped".into(), srv.url(&format!("/d/{}", flip(token.len() - 1)))),
            ("truncated".into(), srv.url(&format!("/d/{}", &token[..token.len() - 1]))),
            ("extended".into(), srv.url(&format!("/d/{token}A"))),
            ("a prefix".into(), srv.url(&format!("/d/{}", &token[..8]))),
            ("very long".into(), srv.url(&format!("/d/{}", "A".repeat(4000)))),
            ("not UTF-8".into(), srv.url("/d/%ff%fe%00")),
            ("an id, not a token".into(), srv.url(&format!("/d/{}", id_of(&live)))),
        ];
        // Expired.
        let expired = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600})).await;
        expire_in_db(&srv, &id_of(&expired)).await;
        urls.push(("expired".into(), url_of(&expired)));
        // Revoked.
        let revoked = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600})).await;
        let res = srv.req(Method::DELETE, &format!("/api/v1/links/{}", id_of(&revoked)), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        urls.push(("revoked".into(), url_of(&revoked)));
        // Used up.
        let used = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600, "single_use": true})).await;
        assert_eq!(fetch(&srv, &url_of(&used)).await.status(), StatusCode::OK);
        urls.push(("used up".into(), url_of(&used)));
        // Bound elsewhere.
        let bound = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600, "ip": "198.51.100.1"})).await;
        urls.push(("another address".into(), url_of(&bound)));
        // Its asset deleted.
        let doomed = srv.upload(&boot.api_key, &space, "doomed.txt", b"short-lived".to_vec()).await;
        let orphan = new_link(&srv, &boot.api_key, &id_of(&doomed), json!({"expires_in": 3600})).await;
        assert_eq!(fetch(&srv, &url_of(&orphan)).await.status(), StatusCode::OK);
        let res = srv.req(Method::DELETE, &format!("/api/v1/assets/{}", id_of(&doomed)), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        urls.push(("asset deleted".into(), url_of(&orphan)));

        for (what, url) in &urls {
            let body = refused_body(fetch(&srv, url).await, what).await;
            assert_eq!(body, unknown, "{what}: the refusal differs from an unknown token's");
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains(&token[..8]), "{what}: the body echoes the token");
        }
        // The link itself was never affected by the tampered copies.
        assert_eq!(fetch(&srv, &live_url).await.status(), StatusCode::OK);
        // The deleted asset's links are gone with it.
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{}/links", id_of(&doomed)), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = srv.req(Method::DELETE, &format!("/api/v1/links/{}", id_of(&orphan)), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }

    async fn links_respect_tenancy_roles_and_space_limits(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, s1, asset, _) = setup(&srv).await;
        let org = boot.org_id.clone();
        let rival = srv.bootstrap("rival@example.com", "rival");
        let link = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 3600})).await;
        let link_id = id_of(&link);
        let status = |method: Method, path: String, key: String, body: Option<Value>| {
            let mut req = srv.req(method, &path, Some(&key));
            if let Some(b) = body {
                req = req.json(&b);
            }
            async move {
                let res = req.send().await.unwrap();
                let status = res.status();
                if status.is_client_error() {
                    assert_eq!(res.headers()["content-type"], "application/problem+json", "{path}");
                }
                status
            }
        };
        let create_path = format!("/api/v1/assets/{asset}/links");
        let body = Some(json!({"expires_in": 60}));

        // Another organization: the asset and the link do not exist for it.
        assert_eq!(status(Method::POST, create_path.clone(), rival.api_key.clone(), body.clone()).await, StatusCode::NOT_FOUND);
        assert_eq!(status(Method::GET, create_path.clone(), rival.api_key.clone(), None).await, StatusCode::NOT_FOUND);
        assert_eq!(status(Method::DELETE, format!("/api/v1/links/{link_id}"), rival.api_key.clone(), None).await, StatusCode::NOT_FOUND);
        assert_eq!(fetch(&srv, &url_of(&link)).await.status(), StatusCode::OK, "the other org's attempt revoked the link");

        // Roles: viewers and contributors read but do not share; editors and up do.
        for role in ["viewer", "contributor"] {
            let (_, key) = srv.create_key(&org, role);
            assert_eq!(status(Method::POST, create_path.clone(), key.clone(), body.clone()).await, StatusCode::FORBIDDEN, "{role}");
            assert_eq!(status(Method::GET, create_path.clone(), key.clone(), None).await, StatusCode::FORBIDDEN, "{role}");
            assert_eq!(status(Method::DELETE, format!("/api/v1/links/{link_id}"), key.clone(), None).await, StatusCode::FORBIDDEN, "{role}");
            // ...though they still read the asset itself.
            assert_eq!(status(Method::GET, format!("/api/v1/assets/{asset}/content"), key, None).await, StatusCode::OK, "{role}");
        }
        assert_eq!(fetch(&srv, &url_of(&link)).await.status(), StatusCode::OK, "a refused revocation revoked the link");
        let (_, editor) = srv.create_key(&org, "editor");
        let made = expect_json(create(&srv, &editor, &asset, json!({"expires_in": 60})).await, StatusCode::CREATED).await;
        assert_eq!(status(Method::GET, create_path.clone(), editor.clone(), None).await, StatusCode::OK);
        assert_eq!(status(Method::DELETE, format!("/api/v1/links/{}", id_of(&made)), editor.clone(), None).await, StatusCode::NO_CONTENT);

        // A key limited to another space cannot see the asset, so cannot share it, list its
        // links or revoke them; one limited to the asset's space can.
        let s2 = srv.create_space(&boot.api_key, &org, "elsewhere").await;
        let limited = |spaces: Vec<String>| {
            let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/api-keys"), Some(&boot.api_key))
                .json(&json!({"name": "limited", "role": "editor", "spaces": spaces})).send();
            async move { expect_json(res.await.unwrap(), StatusCode::CREATED).await["api_key"].as_str().unwrap().to_owned() }
        };
        let outside = limited(vec![s2.clone()]).await;
        assert_eq!(status(Method::POST, create_path.clone(), outside.clone(), body.clone()).await, StatusCode::NOT_FOUND);
        assert_eq!(status(Method::GET, create_path.clone(), outside.clone(), None).await, StatusCode::NOT_FOUND);
        assert_eq!(status(Method::DELETE, format!("/api/v1/links/{link_id}"), outside.clone(), None).await, StatusCode::NOT_FOUND);
        let inside = limited(vec![s1.clone()]).await;
        assert_eq!(status(Method::POST, create_path.clone(), inside.clone(), body.clone()).await, StatusCode::CREATED);

        // Ids that do not parse are not found either.
        assert_eq!(status(Method::POST, "/api/v1/assets/not-an-id/links".into(), boot.api_key.clone(), body.clone()).await, StatusCode::NOT_FOUND);
        assert_eq!(status(Method::DELETE, "/api/v1/links/not-an-id".into(), boot.api_key.clone(), None).await, StatusCode::NOT_FOUND);
        assert_eq!(status(Method::DELETE, format!("/api/v1/links/{asset}"), boot.api_key.clone(), None).await, StatusCode::NOT_FOUND);
        // Without a credential: 401, as everywhere in the API.
        let res = srv.req(Method::POST, &create_path, None).json(&json!({"expires_in": 60})).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;

        // Bad bodies are refused and make nothing.
        let before = get_json(srv.req(Method::GET, &format!("{create_path}?limit=1000"), Some(&boot.api_key))).await["items"].as_array().unwrap().len();
        for bad in [
            json!({"expires_in": 0}),
            json!({"expires_in": 604_801}),
            json!({"expires_in": -5}),
            json!({"expires_in": "60"}),
            json!({"single_use": true}),
            json!({"expires_in": 60, "single_use": "yes"}),
            json!({"expires_in": 60, "bind_ip": true}),
        ] {
            let res = create(&srv, &boot.api_key, &asset, bad.clone()).await;
            let got = res.status();
            let text = res.text().await.unwrap();
            assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {text}");
        }
        let res = srv.req(Method::POST, &create_path, Some(&boot.api_key)).header("content-type", "application/json").body("{").send().await.unwrap();
        expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        let after = get_json(srv.req(Method::GET, &format!("{create_path}?limit=1000"), Some(&boot.api_key))).await["items"].as_array().unwrap().len();
        assert_eq!(before, after);
    }

    async fn the_lifetime_limit_and_public_url_are_configurable(b: Backend) {
        let Some(srv) = TestServer::start_with(b, |s| {
            s.instance.service.max_link_lifetime = Duration::from_secs(60);
            s.http.public_url = Some("https://files.example.org".into());
        }).await else { return };
        let (boot, _, asset, _) = setup(&srv).await;
        let res = create(&srv, &boot.api_key, &asset, json!({"expires_in": 61})).await;
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        assert!(problem["detail"].as_str().unwrap().contains("60"), "{problem}");
        let link = new_link(&srv, &boot.api_key, &asset, json!({"expires_in": 60})).await;
        let url = url_of(&link);
        let token = url.strip_prefix("https://files.example.org/d/").unwrap_or_else(|| panic!("{url}"));
        // The same token works at this server's own address.
        let res = fetch(&srv, &srv.url(&format!("/d/{token}"))).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(max_age(res.headers()["cache-control"].to_str().unwrap()) <= 60);
    }

    async fn links_are_listed_without_their_tokens(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let (boot, _, asset, _) = setup(&srv).await;
        let mut made = Vec::new();
        for body in [json!({"expires_in": 60}), json!({"expires_in": 120, "single_use": true}), json!({"expires_in": 180, "ip": "192.0.2.4"})] {
            made.push(new_link(&srv, &boot.api_key, &asset, body).await);
        }
        assert_eq!(fetch(&srv, &url_of(&made[0])).await.status(), StatusCode::OK);
        let path = format!("/api/v1/assets/{asset}/links");
        let first = get_json(srv.req(Method::GET, &format!("{path}?limit=2"), Some(&boot.api_key))).await;
        let cursor = first["next_cursor"].as_str().unwrap();
        let second = get_json(srv.req(Method::GET, &format!("{path}?limit=2&cursor={cursor}"), Some(&boot.api_key))).await;
        assert!(second["next_cursor"].is_null());
        let items: Vec<Value> = first["items"].as_array().unwrap().iter().chain(second["items"].as_array().unwrap()).cloned().collect();
        let ids: Vec<String> = items.iter().map(id_of).collect();
        assert_eq!(ids, made.iter().map(id_of).collect::<Vec<_>>(), "every link once, in creation order");
        for field in ["id", "asset_id", "created_by", "created_at", "expires_at", "single_use", "ip", "revoked_at", "used_at", "use_count", "last_used_at"] {
            assert!(items[0].get(field).is_some(), "no {field} in {}", items[0]);
        }
        assert_eq!(items[0]["use_count"], 1);
        assert!(items[0]["last_used_at"].is_string());
        assert_eq!(items[1]["single_use"], true);
        assert_eq!(items[2]["ip"], "192.0.2.4");
        assert!(items[0]["created_by"].as_str().unwrap().starts_with("key:"));
        let text = serde_json::to_string(&items).unwrap();
        for link in &made {
            let token = url_of(link).rsplit('/').next().unwrap().to_owned();
            assert!(!text.contains(&token), "a token is listed");
        }
        for field in ["url", "token", "token_hash"] {
            assert!(items[0].get(field).is_none(), "{field} is listed");
        }
        for bad in ["?limit=0", "?cursor=%%%"] {
            let res = srv.req(Method::GET, &format!("{path}{bad}"), Some(&boot.api_key)).send().await.unwrap();
            expect_problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
        // The OpenAPI document describes the new endpoints.
        let doc = get_json(srv.req(Method::GET, "/api/openapi.json", None)).await;
        assert!(doc["paths"]["/api/v1/assets/{asset_id}/links"]["post"].is_object());
        assert!(doc["paths"]["/api/v1/assets/{asset_id}/links"]["get"].is_object());
        assert!(doc["paths"]["/api/v1/links/{link_id}"]["delete"].is_object());
        assert!(doc["components"]["schemas"]["NewLink"].is_object());
    }
}

/// The access log records paths, and a link's path holds its token: the log must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_tokens_never_reach_the_log() {
    use crate::process::{bootstrap_with_space, spawn_serve_with};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv =
        tokio::task::block_in_place(|| spawn_serve_with(&data, &[("STRONGROOM_LOG", "info")]))
            .serving();
    let (key, _, space) = bootstrap_with_space(&srv, &data, "owner@example.com", "site").await;
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/spaces/{space}/assets?filename=a.txt"),
            Some(&key),
        )
        .body("logged?")
        .send()
        .await
        .unwrap();
    let asset = expect_json(res, StatusCode::CREATED).await;
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/assets/{}/links", id_of(&asset)),
            Some(&key),
        )
        .json(&json!({"expires_in": 60}))
        .send()
        .await
        .unwrap();
    let link = expect_json(res, StatusCode::CREATED).await;
    let url = url_of(&link);
    let token = url.rsplit('/').next().unwrap().to_owned();
    let res = srv.client.get(&url).send().await.unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"logged?");
    let res = srv.client.get(format!("{url}x")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // The access lines are written as the responses go out: wait for them, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    // (Field names may be wrapped in colour codes: match the value alone.)
    while srv.stderr().matches("/d/").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "no access log line for the link: {}",
            srv.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = srv.stderr();
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert_eq!(log.matches("/d/<token>").count(), 2, "{log}");
    assert!(
        !log.contains(&token[..12]),
        "part of the token is in the log"
    );
}
