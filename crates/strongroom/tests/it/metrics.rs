//! Prometheus metrics and the access log, against the real binary (its own process, so its
//! counters and its log are this test's alone): counters move by exactly what was sent, the
//! job gauges are sampled from the database, no label carries an id or a token, `promtool`
//! accepts the scrape, the public port never serves `/metrics`, and the access log names the
//! request id, the organization and the latency, and never a token.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::process::*;
use crate::support::*;

/// One scrape: each sample's name, its labels, its value.
struct Scrape {
    text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, labels(rest.strip_suffix('}').unwrap())),
                None => (series, BTreeMap::new()),
            };
            samples.push((name.to_owned(), labels, value));
        }
        Scrape { text, samples }
    }

    /// The value of the sample `name` whose labels are exactly `want`; 0 when there is none
    /// (a counter nothing has touched yet).
    fn get(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map_or(0.0, |(_, _, v)| *v)
    }

    fn has(&self, name: &str, want: &[(&str, &str)]) -> bool {
        let want: BTreeMap<String, String> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples.iter().any(|(n, l, _)| n == name && *l == want)
    }
}

/// `k="v",k2="v2"` into a map (our label values hold no quotes or commas).
fn labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let (value, tail) = after.split_once('"').expect("a closed label value");
        out.insert(key.trim_start_matches(',').to_owned(), value.to_owned());
        rest = tail;
    }
    out
}

/// The serving binary and where its metrics are.
struct Metered {
    srv: BinServer,
    metrics_url: String,
    plain: reqwest::Client,
}

impl Metered {
    async fn start(inst: &BinInstance) -> Metered {
        let mut env = vec![
            ("STRONGROOM_LOG", "info"),
            ("STRONGROOM_LOG_FORMAT", "json"),
        ];
        if let Some(url) = &inst.db.url {
            env.push(("STRONGROOM_DATABASE_URL", url.as_str()));
        }
        let srv = tokio::task::block_in_place(|| spawn_serve_with(&inst.dir, &env)).serving();
        // `--listen 127.0.0.1:0` gives the metrics an ephemeral port too; the log names it.
        let url = poll(Duration::from_secs(10), || {
            srv.stderr().lines().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                v["message"]
                    .as_str()?
                    .starts_with("metrics:")
                    .then(|| v["url"].as_str().map(str::to_owned))?
            })
        })
        .await
        .unwrap_or_else(|| panic!("no metrics URL in the log: {}", srv.stderr()));
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Metered {
            srv,
            metrics_url: url,
            plain: reqwest::Client::new(),
        }
    }

    async fn scrape(&self) -> Scrape {
        let res = self.plain.get(&self.metrics_url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        Scrape::parse(res.text().await.unwrap())
    }
}

const REQS: &str = "strongroom_http_requests_total";
const UPLOAD: &str = "/api/v1/spaces/{space_id}/assets";
const CONTENT: &str = "/api/v1/assets/{asset_id}/content";
const ASSET: &str = "/api/v1/assets/{asset_id}";

/// `promtool check metrics` on a scrape; fails the test with one clear sentence without it.
fn promtool_check(scrape: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool is missing ({e}): install Debian's `prometheus` package, which \
             scripts/test.sh installs, to check the metrics' format"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the scrape: {}{}\n{scrape}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every label value is from a closed set: route templates, methods, statuses, kinds, and no
/// id, key or token anywhere in a label.
fn assert_no_ids_or_tokens(scrape: &Scrape, secrets: &[&str]) {
    for (name, labels, _) in &scrape.samples {
        for (k, v) in labels {
            let hexrun = v
                .as_bytes()
                .windows(16)
                .any(|w| w.iter().all(|b| b.is_ascii_hexdigit()));
            assert!(
                !hexrun && !v.contains("srk_"),
                "{name}: label {k}={v:?} looks like an id or a key"
            );
            if k == "route" {
                assert!(
                    *v == "unmatched" || strongroom_http::api::ROUTES.iter().any(|r| r.path == *v),
                    "{name}: route label {v:?} is not a route template"
                );
            }
        }
    }
    for s in secrets {
        assert!(
            !scrape.text.contains(s),
            "the scrape contains {s:?}:\n{}",
            scrape.text
        );
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

both_backends! {
    async fn counters_move_by_exactly_what_was_sent(b: Backend) {
        let Some(inst) = BinInstance::new(b).await else { return };
        let m = Metered::start(&inst).await;
        let srv = &m.srv;
        let (key, org, space) = inst.bootstrap_with_space(srv, "metrics@example.com", "site").await;
        let before = m.scrape().await;

        // An upload streamed in two parts: in flight between them.
        let body = pattern(150_000, 7);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Vec<u8>, std::io::Error>>();
        let rx = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        tx.send(Ok(body[..50_000].to_vec())).unwrap();
        let upload = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=a.bin"), Some(&key))
            .header("content-type", "application/octet-stream")
            .header("content-length", body.len().to_string())
            .body(reqwest::Body::wrap_stream(rx))
            .send();
        let upload = tokio::spawn(upload);
        let mut in_flight = 0.0;
        for _ in 0..100 {
            in_flight = m.scrape().await.get("strongroom_uploads_in_flight", &[]);
            if in_flight == 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(in_flight, 1.0, "an upload being received is in flight");
        tx.send(Ok(body[50_000..].to_vec())).unwrap();
        drop(tx);
        let res = upload.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let created = res.text().await.unwrap();
        let asset: Value = serde_json::from_str(&created).unwrap();
        let id = asset["id"].as_str().unwrap().to_owned();

        // Two downloads, a wrong key, a route that does not exist, /metrics on the public
        // port, and a wrong password.
        for _ in 0..2 {
            let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&key)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.bytes().await.unwrap().len(), body.len());
        }
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}"), Some("srk_not_a_key")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let res = srv.req(Method::GET, "/api/v1/no/such/route", None).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = srv.req(Method::GET, "/metrics", None).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "the public port never serves the metrics");
        let res = srv
            .req(Method::POST, "/api/v1/auth/login", None)
            .json(&json!({"email": "nobody@example.com", "password": "not the password at all"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

        let after = m.scrape().await;
        let delta = |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
        let n = body.len() as f64;
        assert_eq!(delta(REQS, &[("route", UPLOAD), ("method", "POST"), ("status", "201")]), 1.0);
        assert_eq!(delta(REQS, &[("route", CONTENT), ("method", "GET"), ("status", "200")]), 2.0);
        assert_eq!(delta(REQS, &[("route", ASSET), ("method", "GET"), ("status", "401")]), 1.0);
        assert_eq!(delta(REQS, &[("route", "unmatched"), ("method", "GET"), ("status", "404")]), 2.0);
        assert_eq!(delta(REQS, &[("route", "/api/v1/auth/login"), ("method", "POST"), ("status", "401")]), 1.0);
        assert_eq!(delta("strongroom_http_request_bytes_total", &[("route", UPLOAD)]), n, "every upload byte, as it streamed");
        assert_eq!(delta("strongroom_http_response_bytes_total", &[("route", CONTENT)]), 2.0 * n);
        assert_eq!(delta("strongroom_http_response_bytes_total", &[("route", UPLOAD)]), created.len() as f64);
        assert_eq!(delta("strongroom_http_request_duration_seconds_count", &[("route", CONTENT), ("method", "GET")]), 2.0);
        assert!(after.get("strongroom_http_request_duration_seconds_sum", &[("route", CONTENT), ("method", "GET")]) > 0.0);
        assert!(after.has("strongroom_http_request_duration_seconds_bucket", &[("route", CONTENT), ("method", "GET"), ("le", "+Inf")]));
        assert_eq!(delta("strongroom_login_failures_total", &[("factor", "password")]), 1.0);
        // Each download's audit event went through a group commit (one after the other here:
        // two groups of one); the upload's event is in the upload's own transaction.
        assert_eq!(delta("strongroom_audit_group_events_total", &[]), 2.0);
        assert_eq!(delta("strongroom_audit_group_commits_total", &[]), 2.0);
        assert_eq!(delta("strongroom_audit_group_commit_duration_seconds_count", &[]), 2.0);
        assert!(after.has("strongroom_audit_group_commit_duration_seconds_bucket", &[("le", "+Inf")]));
        assert!(after.has("strongroom_uploads_in_flight", &[]));
        assert_eq!(after.get("strongroom_uploads_in_flight", &[]), 0.0, "the upload is over");
        // The backend: the upload's ciphertext written (a little more than the plaintext: the
        // header and a tag per chunk), both downloads read back, no failures.
        let disk = [("backend", "disk")];
        let written = delta("strongroom_storage_written_bytes_total", &disk);
        assert!(written > n && written < n * 1.01, "{written} ciphertext bytes for {n}");
        assert!(delta("strongroom_storage_read_bytes_total", &disk) >= 2.0 * n);
        assert_eq!(delta("strongroom_storage_operation_duration_seconds_count", &[("backend", "disk"), ("op", "commit")]), 1.0);
        assert!(delta("strongroom_storage_operation_duration_seconds_count", &[("backend", "disk"), ("op", "read")]) >= 2.0);
        assert!(!after.has("strongroom_storage_errors_total", &disk), "no backend failure: {}", after.text);
        for described in ["strongroom_storage_written_bytes_total", "strongroom_storage_read_bytes_total", "strongroom_storage_operation_duration_seconds"] {
            assert!(after.text.contains(&format!("# HELP {described} ")), "{described} has no HELP line");
        }
        for kind in ["mail", "media", "region_move"] {
            assert!(after.has("strongroom_jobs_queued", &[("kind", kind)]), "{kind}: {}", after.text);
            assert!(after.has("strongroom_jobs_oldest_age_seconds", &[("kind", kind)]));
        }

        // Brute force from one address: 50 failures, then the address is refused.
        let from = strongroom_testkit::https_client_builder(&inst.dir.join("tls").join("cert.pem"))
            .local_address(IpAddr::from([127, 0, 0, 9]))
            .build()
            .unwrap();
        let login = |i: usize| {
            from.post(srv.url("/api/v1/auth/login"))
                .json(&json!({"email": format!("guess{i}@example.com"), "password": "wrong password guess"}))
                .send()
        };
        for batch in 0..5 {
            let all = futures_util::future::join_all((0..10).map(|i| login(batch * 10 + i))).await;
            for r in all {
                assert_eq!(r.unwrap().status(), StatusCode::UNAUTHORIZED);
            }
        }
        assert_eq!(login(99).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
        let throttled = m.scrape().await;
        let d = |name: &str, labels: &[(&str, &str)]| throttled.get(name, labels) - after.get(name, labels);
        assert_eq!(d("strongroom_login_failures_total", &[("factor", "password")]), 50.0);
        assert_eq!(d("strongroom_login_throttled_total", &[("scope", "address")]), 1.0);
        assert_eq!(d(REQS, &[("route", "/api/v1/auth/login"), ("method", "POST"), ("status", "429")]), 1.0);

        // The job gauges come from the database: a mail job due in an hour, enqueued two
        // minutes ago, waits; one due now with a payload that does not open fails at once.
        let mut conn = inst.db_conn().await;
        let now = now_millis();
        for (run_after, created_at) in [(now + 3_600_000, now - 120_000), (0, now)] {
            sqlx::query(
                "INSERT INTO jobs (id, org_id, kind, subject, payload, status, attempts, max_attempts, \
                 run_after, progress, created_at, updated_at) VALUES ($1, NULL, 'mail', NULL, $2, 'queued', 0, 5, $3, 0, $4, $4)",
            )
            .bind(strongroom_domain::JobId::generate().to_string())
            .bind(vec![1u8, 2, 3])
            .bind(run_after)
            .bind(created_at)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        let failed = |s: &Scrape| s.get("strongroom_jobs_total", &[("kind", "mail"), ("outcome", "failed")]);
        let mut jobs = m.scrape().await;
        for _ in 0..300 {
            if failed(&jobs) == 1.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            jobs = m.scrape().await;
        }
        assert_eq!(failed(&jobs), 1.0, "the broken job failed once: {}", jobs.text);
        assert_eq!(jobs.get("strongroom_jobs_queued", &[("kind", "mail")]), 1.0);
        let age = jobs.get("strongroom_jobs_oldest_age_seconds", &[("kind", "mail")]);
        assert!((120.0..300.0).contains(&age), "oldest mail job age {age}");
        assert_eq!(jobs.get("strongroom_jobs_queued", &[("kind", "media")]), 0.0);

        assert_no_ids_or_tokens(&jobs, &[&key, &org, &space, &id]);
        promtool_check(&jobs.text);
    }

    async fn the_access_log_names_the_request_and_its_organization_and_never_a_token(b: Backend) {
        let Some(inst) = BinInstance::new(b).await else { return };
        let m = Metered::start(&inst).await;
        let srv = &m.srv;
        let (key, org, space) = inst.bootstrap_with_space(srv, "log@example.com", "site").await;
        let asset = {
            let res = srv
                .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=a.txt"), Some(&key))
                .header("content-type", "text/plain")
                .body("hello")
                .send()
                .await
                .unwrap();
            expect_json(res, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned()
        };
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{asset}"), Some(&key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let link = {
            let res = srv
                .req(Method::POST, &format!("/api/v1/assets/{asset}/links"), Some(&key))
                .json(&json!({"expires_in": 3600}))
                .send()
                .await
                .unwrap();
            expect_json(res, StatusCode::CREATED).await["url"].as_str().unwrap().to_owned()
        };
        let token = link.rsplit_once("/d/").unwrap().1.to_owned();
        // The token in the path, and again in a query string.
        let res = srv.req(Method::GET, &format!("/d/{token}?again={token}"), None).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.text().await.unwrap(), "hello");
        let scrape = m.scrape().await;
        assert_eq!(scrape.get(REQS, &[("route", "/d/{token}"), ("method", "GET"), ("status", "200")]), 1.0);

        let log = poll(Duration::from_secs(10), || {
            let log = srv.stderr();
            log.contains("\"route\":\"/d/{token}\"").then_some(log)
        })
        .await
        .expect("the link download reached the access log");
        let access: Vec<Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect();
        let line = access
            .iter()
            .find(|v| v["request_id"] == request_id.as_str())
            .unwrap_or_else(|| panic!("no access line for request {request_id}: {log}"));
        assert_eq!(line["org"], org.as_str(), "{line}");
        assert_eq!(line["route"], ASSET, "{line}");
        assert_eq!(line["path"], format!("/api/v1/assets/{asset}"), "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert!(line["micros"].as_u64().is_some(), "{line}");
        let download = access
            .iter()
            .find(|v| v["route"] == "/d/{token}")
            .unwrap();
        assert_eq!(download["path"], "/d/<token>", "{download}");
        assert!(download.get("org").is_none(), "a link download has no signed-in organization: {download}");
        assert!(download["request_id"].is_string() && download["micros"].is_u64(), "{download}");
        assert!(!log.contains(&token), "the link token reached the log");
        assert!(!log.contains(&key), "the API key reached the log");
        assert!(!log.contains("again="), "a query string reached the log");
    }
}
