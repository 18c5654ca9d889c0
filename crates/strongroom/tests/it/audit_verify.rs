//! `audit verify` against a running instance, on both backends: live traffic does not fool it,
//! and edited, deleted, swapped or truncated events are caught and named, per organization.
//! Signed checkpoints outside the database catch what the chain alone cannot: a rollback to an
//! earlier genuine state (newest events deleted with an earlier head restored, or an older copy
//! of the whole database put back), and the export lets anyone verify the chain offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_backends;
use crate::process::{one_sentence_error, poll};
use crate::support::*;

/// The first event number named in `text` ("... event 5 ..."), skipping the org id.
fn first_event_named(text: &str) -> Option<u64> {
    let mut rest = text;
    while let Some(i) = rest.find("event ") {
        let after = &rest[i + "event ".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

/// One organization with a known trail: bootstrap (3 events), a space, two uploads, a
/// download and a delete — 8 events.
async fn org_with_activity(srv: &TestServer, email: &str, org: &str) -> Boot {
    let boot = srv.bootstrap(email, org);
    let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
    let a = srv
        .upload(&boot.api_key, &space, "a.bin", pattern(70_000, 1))
        .await;
    let b = srv
        .upload(&boot.api_key, &space, "b.bin", pattern(1000, 2))
        .await;
    let a_id = a["id"].as_str().unwrap();
    assert_eq!(download(srv, &boot.api_key, a_id).await, pattern(70_000, 1));
    let b_id = b["id"].as_str().unwrap();
    let res = srv
        .req(
            Method::DELETE,
            &format!("/api/v1/assets/{b_id}"),
            Some(&boot.api_key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    boot
}

/// `audit verify` restricted to one org; returns (success, stdout + stderr).
fn verify_org(srv: &TestServer, org: &str) -> (bool, String, String) {
    let out = srv.run(&["audit", "verify", "--org", org]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "{stderr}"
    );
    (out.status.success(), stdout, stderr)
}

/// Asserts `audit verify --org` fails and names `seq` as the first broken event (in the error
/// line on stderr and on stdout).
fn assert_broken_at(srv: &TestServer, org: &str, seq: u64) -> String {
    let (ok, stdout, stderr) = verify_org(srv, org);
    assert!(
        !ok,
        "audit verify passed a tampered trail; stdout: {stdout}"
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        line.contains(org),
        "the error does not name the organization: {line}"
    );
    assert_eq!(
        first_event_named(line),
        Some(seq),
        "the error names the wrong event: {line}"
    );
    assert_eq!(
        first_event_named(&stdout),
        Some(seq),
        "stdout names the wrong event: {stdout}"
    );
    line.to_owned()
}

both_backends! {
    async fn audit_verify_is_not_fooled_by_live_traffic(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let srv = Arc::new(srv);
        let boot = org_with_activity(&srv, "o@example.com", "acme").await;
        let space = srv.create_space(&boot.api_key, &boot.org_id, "busy").await;
        let id = srv.upload(&boot.api_key, &space, "hot.bin", pattern(100, 4)).await["id"].as_str().unwrap().to_owned();

        // Readers keep appending asset.read events while the operator verifies the trail.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..2 {
            let (srv, stop, key, id) = (srv.clone(), stop.clone(), boot.api_key.clone(), id.clone());
            readers.push(tokio::spawn(async move {
                let mut n = 0_u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&key)).send().await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    res.bytes().await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut failures = Vec::new();
        for _ in 0..6 {
            let out = tokio::task::block_in_place(|| srv.run(&["audit", "verify", "--org", &boot.org_id]));
            if !out.status.success() {
                failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut reads = 0;
        for r in readers {
            reads += r.await.unwrap();
        }
        assert!(reads > 0);
        assert!(failures.is_empty(), "audit verify reported an untouched trail as broken while the server was writing to it: {failures:?}");
        let out = srv.run(&["audit", "verify"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    async fn audit_verify_detects_tampering(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let a = org_with_activity(&srv, "a@example.com", "org-a").await;

        let v = srv.run_json(&["audit", "verify", "--json"]);
        assert_eq!(v["intact"], true, "{v}");

        // The chain as the API shows it.
        let page = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=1000", a.org_id), Some(&a.api_key))).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() >= 8, "{page}");
        for (i, ev) in items.iter().enumerate() {
            assert_eq!(ev["seq"], i as u64 + 1, "{page}");
            for f in ["at", "actor", "action", "target", "ip", "hash", "prev_hash"] {
                assert!(!ev[f].is_null(), "event without {f}: {ev}");
            }
            if i > 0 {
                assert_eq!(ev["prev_hash"], items[i - 1]["hash"], "event {} does not link to its predecessor", i + 1);
            }
        }
        let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for want in ["asset.create", "asset.read", "asset.delete"] {
            assert!(actions.contains(&want), "no {want} in {actions:?}");
        }
        let events = items.len() as i64;

        let b_ = org_with_activity(&srv, "b@example.com", "org-b").await;
        let c = org_with_activity(&srv, "c@example.com", "org-c").await;
        let d = org_with_activity(&srv, "d@example.com", "org-d").await;
        let e = org_with_activity(&srv, "e@example.com", "org-e").await;
        for boot in [&a, &b_, &c, &d, &e] {
            let (ok, stdout, stderr) = verify_org(&srv, &boot.org_id);
            assert!(ok, "fresh trail does not verify: {stdout} {stderr}");
        }
        let mut conn = srv.db_conn().await;

        // (a) an edited event.
        let target: String = sqlx::query_scalar("SELECT target FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(a.org_id.clone()).bind(3_i64).fetch_one(&mut conn).await.unwrap();
        sqlx::query("UPDATE audit_events SET target = $1 WHERE org_id = $2 AND seq = $3")
            .bind("key:someone-else".to_owned()).bind(a.org_id.clone()).bind(3_i64).execute(&mut conn).await.unwrap();
        assert_broken_at(&srv, &a.org_id, 3);
        // --org restricts the check: the other organizations still verify on their own.
        assert!(verify_org(&srv, &b_.org_id).0, "--org {} was affected by another org's tampering", b_.org_id);
        let out = srv.run(&["audit", "verify"]);
        assert!(!out.status.success(), "a full verify passed with a tampered org");
        sqlx::query("UPDATE audit_events SET target = $1 WHERE org_id = $2 AND seq = $3")
            .bind(target).bind(a.org_id.clone()).bind(3_i64).execute(&mut conn).await.unwrap();
        let v = srv.run_json(&["audit", "verify", "--json"]);
        assert_eq!(v["intact"], true, "restored trail does not verify: {v}");

        // (b) a deleted event in the middle.
        sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(b_.org_id.clone()).bind(4_i64).execute(&mut conn).await.unwrap();
        assert_broken_at(&srv, &b_.org_id, 4);

        // (c) two events swapped.
        for (from, to) in [(5_i64, -1_i64), (6, 5), (-1, 6)] {
            sqlx::query("UPDATE audit_events SET seq = $1 WHERE org_id = $2 AND seq = $3")
                .bind(to).bind(c.org_id.clone()).bind(from).execute(&mut conn).await.unwrap();
        }
        assert_broken_at(&srv, &c.org_id, 5);

        // (d) the last event deleted: the head still records it.
        sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(d.org_id.clone()).bind(events).execute(&mut conn).await.unwrap();
        let line = assert_broken_at(&srv, &d.org_id, events as u64);
        let lower = line.to_lowercase();
        assert!(lower.contains("delet") || lower.contains("missing") || lower.contains("truncat"), "{line}");

        // (e) the last event deleted and the head rewound to match: without the root key the
        // head cannot be re-signed, so this is caught too.
        let prev: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(e.org_id.clone()).bind(events - 1).fetch_one(&mut conn).await.unwrap();
        sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(e.org_id.clone()).bind(events).execute(&mut conn).await.unwrap();
        sqlx::query("UPDATE orgs SET audit_seq = $1, audit_head = $2 WHERE id = $3")
            .bind(events - 1).bind(prev).bind(e.org_id.clone()).execute(&mut conn).await.unwrap();
        let (ok, stdout, stderr) = verify_org(&srv, &e.org_id);
        assert!(!ok, "a truncated trail with a rewound head verified: {stdout}");
        assert!(stderr.lines().any(|l| l.starts_with("error:") && l.contains(&e.org_id)), "{stderr}");

        // Only the untouched organization is intact; the JSON says which are not.
        let out = srv.run(&["audit", "verify", "--json"]);
        assert!(!out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["intact"], false, "{v}");
        let by_org: BTreeMap<String, bool> = v["orgs"].as_array().unwrap().iter()
            .map(|r| (r["org_id"].as_str().unwrap().to_owned(), r["intact"].as_bool().unwrap()))
            .collect();
        assert_eq!(by_org.len(), 5, "{v}");
        assert!(by_org[&a.org_id]);
        for boot in [&b_, &c, &d, &e] {
            assert!(!by_org[&boot.org_id], "{} reported intact: {v}", boot.org_id);
        }

        // An unknown or malformed organization is an error, not "intact".
        let unknown = format!("org_{}", "0".repeat(32));
        let line = one_sentence_error(&srv.run(&["audit", "verify", "--org", &unknown]));
        assert!(line.to_lowercase().contains("organization"), "{line}");
        let line = one_sentence_error(&srv.run(&["audit", "verify", "--org", "acme"]));
        assert!(line.to_lowercase().contains("organization"), "{line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Signed checkpoints: rollbacks of the database, the checkpoint writer, forged checkpoints, the
// export and its offline verifier.

/// The offline verifier shipped in the repository.
const VERIFY_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/verify-audit-export.py"
);

/// The checkpoints stored for `org` in the data dir's blob store, by seq (JSON, or `Null` when
/// a file is not JSON).
fn checkpoint_files(data_dir: &Path, org: &str) -> BTreeMap<u64, Value> {
    let dir = data_dir.join("blobs").join("checkpoints").join(org);
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(seq) = name
            .strip_suffix(".json")
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let v = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        out.insert(seq, v);
    }
    out
}

fn checkpoint_path(data_dir: &Path, org: &str, seq: u64) -> PathBuf {
    data_dir
        .join("blobs")
        .join("checkpoints")
        .join(org)
        .join(format!("{seq:020}.json"))
}

/// Waits (up to 10 s) for a checkpoint of `org` at exactly `seq`, and returns it.
pub(crate) async fn wait_for_checkpoint(data_dir: &Path, org: &str, seq: u64) -> Value {
    let found = poll(Duration::from_secs(10), || {
        checkpoint_files(data_dir, org).remove(&seq)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "no checkpoint at seq {seq} within 10 s; have {:?}",
            checkpoint_files(data_dir, org).keys()
        )
    })
}

/// The organization row's (seq, head, MAC).
async fn head_triple(conn: &mut sqlx::AnyConnection, org: &str) -> (i64, Vec<u8>, Vec<u8>) {
    use sqlx::Row;
    let row = sqlx::query("SELECT audit_seq, audit_head, audit_head_mac FROM orgs WHERE id = $1")
        .bind(org.to_owned())
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// `audit verify --org --json` through `cmd` (the binary with the instance's settings): (exit
/// success, this org's report, the `error:` line on stderr if any).
fn verify_json(mut cmd: std::process::Command, org: &str) -> (bool, Value, Option<String>) {
    let out = cmd
        .args(["audit", "verify", "--org", org, "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON: {}; {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(v["intact"].as_bool(), Some(out.status.success()), "{v}");
    let report = v["orgs"][0].clone();
    assert_eq!(report["org_id"], org, "{v}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .map(str::to_owned);
    (out.status.success(), report, line)
}

/// Uploads `n` small files; each appends one event.
async fn uploads(
    base: &str,
    client: &reqwest::Client,
    key: &str,
    space: &str,
    n: usize,
    seed: u64,
) {
    for i in 0..n {
        let res = client
            .post(format!(
                "{base}/api/v1/spaces/{space}/assets?filename=f{seed}-{i}.bin"
            ))
            .bearer_auth(key)
            .header("content-type", "application/octet-stream")
            .body(pattern(500, seed + i as u64))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
}

/// Downloads the export of `org`; returns its lines.
pub(crate) async fn export(srv: &TestServer, key: &str, org: &str) -> Vec<String> {
    let res = srv
        .req(
            Method::GET,
            &format!("/api/v1/orgs/{org}/audit/export"),
            Some(key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    assert!(text.ends_with('\n'), "{text}");
    text.lines().map(str::to_owned).collect()
}

/// Runs the offline verifier on `lines`: (exit success, stdout, stderr).
pub(crate) fn offline_verify(lines: &[String]) -> (bool, String, String) {
    offline_verify_with(lines, &[])
}

/// Runs the offline verifier on `lines` with extra arguments.
fn offline_verify_with(lines: &[String], args: &[&str]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.ndjson");
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let out = std::process::Command::new("python3")
        .arg(VERIFY_SCRIPT)
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("Traceback"),
        "the verifier crashed: {stderr}"
    );
    (out.status.success(), stdout, stderr)
}

/// Asserts the offline verifier refuses `lines` with a message containing `want`.
fn offline_refuses(lines: &[String], want: &str) {
    let (ok, stdout, stderr) = offline_verify(lines);
    assert!(!ok, "the verifier accepted a tampered export: {stdout}");
    assert!(stderr.contains(want), "expected {want:?} in: {stderr}");
}

/// The lines of an export parsed as JSON.
fn parsed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A server whose checkpoint writer runs every `every`.
async fn start_checkpointing(b: Backend, every: Duration) -> Option<TestServer> {
    TestServer::start_with(b, |s| s.instance.service.audit_checkpoint_interval = every).await
}

/// An instance whose data dir and database outlive its server, so a test can stop the server,
/// put an older copy of the whole database back, and start it again.
struct Durable {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    db: strongroom_testkit::TestDb,
    /// A PostgreSQL copy made by `snapshot`, dropped with the instance.
    pg_copy: Option<String>,
}

/// A running server of a [`Durable`] instance.
struct Up {
    base: String,
    client: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Up {
    /// Graceful stop (the shutdown path of SIGTERM), waiting for the drain.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.done.await.unwrap().unwrap();
    }
}

impl Durable {
    async fn new(b: Backend) -> Option<Durable> {
        let db = strongroom_testkit::TestDb::new(b).await?;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        Some(Durable {
            _dir: dir,
            data_dir,
            db,
            pg_copy: None,
        })
    }

    /// Starts the server with the default settings (a 60 s checkpoint interval).
    async fn start(&self) -> Up {
        let s = settings(&self.data_dir, &self.db);
        assert_eq!(
            s.instance.service.audit_checkpoint_interval,
            Duration::from_secs(60),
            "the default interval"
        );
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let running = strongroom::serve::start(s, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        Up {
            base: format!("https://{}", running.addr),
            client: strongroom_testkit::https_client(&running.cert_path),
            stop,
            done: running.done,
        }
    }

    fn cli(&self) -> std::process::Command {
        let mut c = crate::process::bin();
        c.env("STRONGROOM_DATA_DIR", &self.data_dir);
        if let Some(url) = &self.db.url {
            c.env("STRONGROOM_DATABASE_URL", url);
        }
        c
    }

    fn bootstrap(&self, email: &str, org: &str) -> Boot {
        let out = self
            .cli()
            .args([
                "admin",
                "bootstrap",
                "--email",
                email,
                "--org",
                org,
                "--json",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Boot {
            user_id: v["user_id"].as_str().unwrap().into(),
            org_id: v["org_id"].as_str().unwrap().into(),
            api_key: v["api_key"].as_str().unwrap().into(),
        }
    }

    fn sqlite_files(&self) -> Vec<PathBuf> {
        ["", "-wal", "-shm"]
            .iter()
            .map(|s| self.data_dir.join(format!("strongroom.db{s}")))
            .collect()
    }

    fn pg_admin_and_name(&self) -> (String, String) {
        let url = self.db.url.as_deref().unwrap();
        let name = url
            .split('?')
            .next()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        (std::env::var("STRONGROOM_TEST_DATABASE_URL").unwrap(), name)
    }

    /// A copy of the whole database, taken while the server is stopped.
    async fn snapshot(&mut self, to: &Path) {
        if self.db.url.is_none() {
            std::fs::create_dir_all(to).unwrap();
            for f in self.sqlite_files() {
                if f.exists() {
                    std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
                }
            }
            return;
        }
        use sqlx::Connection;
        let (admin, name) = self.pg_admin_and_name();
        let copy = format!("{name}_copy");
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {copy} TEMPLATE {name}"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        self.pg_copy = Some(copy);
    }

    /// Puts the copy back in place of the database, while the server is stopped.
    async fn restore(&self, from: &Path) {
        if self.db.url.is_none() {
            for f in self.sqlite_files() {
                let _ = std::fs::remove_file(&f);
                let saved = from.join(f.file_name().unwrap());
                if saved.exists() {
                    std::fs::copy(&saved, &f).unwrap();
                }
            }
            return;
        }
        use sqlx::Connection;
        let (admin, name) = self.pg_admin_and_name();
        let copy = self.pg_copy.as_deref().unwrap();
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} TEMPLATE {copy}"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        let Some(copy) = self.pg_copy.take() else {
            return;
        };
        let (admin, _) = self.pg_admin_and_name();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {copy} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()
            })
        })
        .join();
    }
}

both_backends! {
    async fn deleting_the_newest_events_and_restoring_an_earlier_head_is_named_as_a_rollback(b: Backend) {
        let Some(srv) = start_checkpointing(b, Duration::from_secs(1)).await else { return };
        let boot = org_with_activity(&srv, "o@example.com", "acme").await;
        let mut conn = srv.db_conn().await;
        // The (seq, head, MAC) triple of an earlier moment: all three genuine, signed by the server.
        let (early_seq, early_head, early_mac) = head_triple(&mut conn, &boot.org_id).await;
        assert_eq!(early_seq, 8);
        let space = srv.create_space(&boot.api_key, &boot.org_id, "more").await;
        uploads(&srv.base, &srv.client, &boot.api_key, &space, 4, 10).await;
        let (seq, head, _) = head_triple(&mut conn, &boot.org_id).await;
        assert_eq!(seq, 13);
        let cp = wait_for_checkpoint(&srv.data_dir, &boot.org_id, 13).await;
        assert_eq!(cp["head"], crate::process::hex(&head), "{cp}");
        let (ok, report, _) = verify_json(srv.cli(), &boot.org_id);
        assert!(ok, "{report}");
        assert_eq!(report["latest_checkpoint"]["seq"], 13, "{report}");
        // An auditor keeps the latest checkpoint of an export taken now.
        let kept = parsed(&export(&srv, &boot.api_key, &boot.org_id).await).into_iter()
            .rfind(|l| l["type"] == "checkpoint").unwrap();
        assert_eq!(kept["seq"], 13);
        let expect = format!("13:{}", kept["head"].as_str().unwrap());

        // Roll back: the newest events go and the earlier head comes back with its own MAC.
        sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq > $2")
            .bind(boot.org_id.clone()).bind(early_seq).execute(&mut conn).await.unwrap();
        sqlx::query("UPDATE orgs SET audit_seq = $1, audit_head = $2, audit_head_mac = $3 WHERE id = $4")
            .bind(early_seq).bind(early_head).bind(early_mac).bind(boot.org_id.clone()).execute(&mut conn).await.unwrap();

        let (ok, report, line) = verify_json(srv.cli(), &boot.org_id);
        assert!(!ok, "a rolled-back trail verified: {report}");
        assert_eq!(report["problem_kind"], "rolled_back", "{report}");
        assert_eq!(report["first_broken_seq"], 9, "{report}");
        assert_eq!(report["missing"], serde_json::json!({"from": 9, "to": 13}), "{report}");
        let line = line.unwrap();
        for want in ["holds events up to seq 8", "checkpoint at seq 13", "events 9..13 are missing", "rolled back", &boot.org_id] {
            assert!(line.contains(want), "{want:?} not in: {line}");
        }
        // The human report says the same on stdout.
        let (_, stdout, _) = verify_org(&srv, &boot.org_id);
        assert!(stdout.contains("events 9..13 are missing"), "{stdout}");

        // The running server does not sign the rolled-back head (that would bless the rollback).
        let before = checkpoint_files(&srv.data_dir, &boot.org_id);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(checkpoint_files(&srv.data_dir, &boot.org_id), before, "a checkpoint was written for the rolled-back head");

        // The export shows it to an offline verifier too.
        let lines = export(&srv, &boot.api_key, &boot.org_id).await;
        offline_refuses(&lines, "events 9..13 are missing");
        // An export with its checkpoints stripped (and its end line fixed to match) passes on
        // its own, but not against the checkpoint the auditor kept.
        let is_cp = |l: &String| l.contains("\"type\":\"checkpoint\"");
        let n = lines.iter().filter(|l| is_cp(l)).count();
        let stripped: Vec<String> = lines.iter().filter(|l| !is_cp(l))
            .map(|l| l.replace(&format!("\"checkpoints\":{n}"), "\"checkpoints\":0"))
            .collect();
        let (ok, _, stderr) = offline_verify(&stripped);
        assert!(ok, "{stderr}");
        let (ok, _, stderr) = offline_verify_with(&stripped, &["--expect", &expect]);
        assert!(!ok && stderr.contains("events 9..13 are missing"), "{stderr}");
    }

    async fn restoring_an_older_copy_of_the_whole_database_is_named(b: Backend) {
        let Some(mut inst) = Durable::new(b).await else { return };
        let up = inst.start().await;
        let boot = inst.bootstrap("o@example.com", "acme");
        let res = up.client.post(format!("{}/api/v1/orgs/{}/spaces", up.base, boot.org_id)).bearer_auth(&boot.api_key)
            .json(&serde_json::json!({"name": "site"})).send().await.unwrap();
        let space = expect_json(res, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
        uploads(&up.base, &up.client, &boot.api_key, &space, 1, 1).await;
        // 5 events. With the default interval the only round so far ran at start-up, before the
        // organization existed: the checkpoint of seq 5 comes from the shutdown.
        assert!(checkpoint_files(&inst.data_dir, &boot.org_id).is_empty());
        up.stop().await;
        assert_eq!(checkpoint_files(&inst.data_dir, &boot.org_id).keys().copied().collect::<Vec<_>>(), vec![5], "the shutdown checkpoint");
        let (ok, report, _) = verify_json(inst.cli(), &boot.org_id);
        assert!(ok, "{report}");

        // The operator's copy of the database, then more activity.
        let saved = inst._dir.path().join("saved-db");
        inst.snapshot(&saved).await;
        let up = inst.start().await;
        uploads(&up.base, &up.client, &boot.api_key, &space, 3, 2).await;
        up.stop().await;
        assert_eq!(checkpoint_files(&inst.data_dir, &boot.org_id).keys().copied().collect::<Vec<_>>(), vec![5, 8]);

        // Restore the older copy: its chain and head are genuine, but checkpoint 8 is newer.
        inst.restore(&saved).await;
        let (ok, report, line) = verify_json(inst.cli(), &boot.org_id);
        assert!(!ok, "a restored older database verified: {report}");
        assert_eq!(report["problem_kind"], "rolled_back", "{report}");
        assert_eq!(report["missing"], serde_json::json!({"from": 6, "to": 8}), "{report}");
        let line = line.unwrap();
        assert!(line.contains("events 6..8 are missing") && line.contains("rolled back"), "{line}");

        // Serving on from the restored copy does not hide it: new events 6..9 differ from the
        // checkpointed ones, and the server refuses to sign a head that does not extend checkpoint 8.
        let up = inst.start().await;
        uploads(&up.base, &up.client, &boot.api_key, &space, 4, 3).await;
        up.stop().await;
        assert_eq!(checkpoint_files(&inst.data_dir, &boot.org_id).keys().copied().collect::<Vec<_>>(), vec![5, 8], "a checkpoint was signed over the rewritten chain");
        let (ok, report, line) = verify_json(inst.cli(), &boot.org_id);
        assert!(!ok, "a chain rewritten past a checkpoint verified: {report}");
        assert_eq!(report["problem_kind"], "rewritten", "{report}");
        assert_eq!(report["first_broken_seq"], 8, "{report}");
        let line = line.unwrap();
        assert!(line.contains("event 8 does not match the checkpoint at seq 8"), "{line}");

        // The operator accepts the restore (docs/operations.md): checkpoints moved aside while
        // stopped; the next server checkpoints the restored chain afresh and verify passes.
        let checkpoints = inst.data_dir.join("blobs").join("checkpoints");
        std::fs::rename(&checkpoints, inst.data_dir.join("blobs").join("checkpoints-before-restore")).unwrap();
        let up = inst.start().await;
        wait_for_checkpoint(&inst.data_dir, &boot.org_id, 9).await;
        up.stop().await;
        let (ok, report, _) = verify_json(inst.cli(), &boot.org_id);
        assert!(ok, "{report}");
        assert_eq!(report["latest_checkpoint"]["seq"], 9, "{report}");
    }

    async fn checkpoints_are_written_at_the_configured_interval_only_for_heads_that_moved(b: Backend) {
        // The interval comes from the config file, as an operator sets it.
        let conf = tempfile::tempdir().unwrap();
        let path = conf.path().join("strongroom.toml");
        std::fs::write(&path, "[audit]\ncheckpoint_interval_secs = 1\n").unwrap();
        let args = match <strongroom::cli::Cli as clap::Parser>::try_parse_from(["strongroom", "serve", "--config", path.to_str().unwrap()]).unwrap().command {
            strongroom::cli::Command::Serve(a) => a,
            _ => unreachable!(),
        };
        let every = strongroom::serve::ServeSettings::resolve(&args).unwrap().instance.service.audit_checkpoint_interval;
        assert_eq!(every, Duration::from_secs(1));
        std::fs::write(&path, "[audit]\ncheckpoint_interval_secs = 0\n").unwrap();
        let err = strongroom::serve::ServeSettings::resolve(&args).unwrap_err();
        assert!(format!("{err:#}").contains("checkpoint_interval_secs"), "{err:#}");
        let Some(srv) = start_checkpointing(b, every).await else { return };
        let busy = org_with_activity(&srv, "busy@example.com", "busy").await;
        let idle = srv.bootstrap("idle@example.com", "idle");
        let mut conn = srv.db_conn().await;

        // Within about a second the latest head of each organization is checkpointed, while the
        // server keeps running.
        let cp = wait_for_checkpoint(&srv.data_dir, &busy.org_id, 8).await;
        let page = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=1000", busy.org_id), Some(&busy.api_key))).await;
        let last = page["items"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["seq"], 8);
        assert_eq!(cp["format"], "strongroom-audit-checkpoint", "{cp}");
        assert_eq!(cp["version"], 1, "{cp}");
        assert_eq!(cp["org_id"], busy.org_id, "{cp}");
        assert_eq!(cp["seq"], 8, "{cp}");
        assert_eq!(cp["head"], last["hash"], "the checkpoint does not name the chain's head: {cp}");
        assert_eq!(cp["mac"].as_str().unwrap().len(), 64, "{cp}");
        let now_ms = strongroom_domain::Clock::now(&strongroom_domain::SystemClock).millis();
        assert!((now_ms - cp["at_ms"].as_i64().unwrap()).abs() < 60_000, "{cp}");
        wait_for_checkpoint(&srv.data_dir, &idle.org_id, 3).await;

        // Nothing moves: no new checkpoint, and the existing ones are not rewritten.
        let mtime = |org: &str, seq: u64| std::fs::metadata(checkpoint_path(&srv.data_dir, org, seq)).unwrap().modified().unwrap();
        let (busy_before, idle_before) = (checkpoint_files(&srv.data_dir, &busy.org_id), checkpoint_files(&srv.data_dir, &idle.org_id));
        let (busy_mtime, idle_mtime) = (mtime(&busy.org_id, 8), mtime(&idle.org_id, 3));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(checkpoint_files(&srv.data_dir, &busy.org_id), busy_before);
        assert_eq!(checkpoint_files(&srv.data_dir, &idle.org_id), idle_before);
        assert_eq!(mtime(&busy.org_id, 8), busy_mtime, "an unchanged head was checkpointed again");
        assert_eq!(mtime(&idle.org_id, 3), idle_mtime);

        // One organization moves: it alone gets a new checkpoint, at its new head.
        let space = srv.create_space(&busy.api_key, &busy.org_id, "later").await;
        let (seq, head, _) = head_triple(&mut conn, &busy.org_id).await;
        assert_eq!(seq, 9);
        let cp = wait_for_checkpoint(&srv.data_dir, &busy.org_id, 9).await;
        assert_eq!(cp["head"], crate::process::hex(&head));
        assert_eq!(checkpoint_files(&srv.data_dir, &idle.org_id), idle_before);
        assert_eq!(mtime(&idle.org_id, 3), idle_mtime);
        // The orphan sweep keeps them (it only ever looks at blob objects).
        assert_eq!(srv.service.ops.sweep_orphans().await.unwrap(), 0);
        assert!(checkpoint_files(&srv.data_dir, &busy.org_id).contains_key(&9));
        let _ = space;
    }

    async fn a_forged_or_altered_checkpoint_is_reported(b: Backend) {
        let Some(srv) = start_checkpointing(b, Duration::from_secs(1)).await else { return };
        let boot = org_with_activity(&srv, "o@example.com", "acme").await;
        let real = wait_for_checkpoint(&srv.data_dir, &boot.org_id, 8).await;
        let path = checkpoint_path(&srv.data_dir, &boot.org_id, 8);
        let original = std::fs::read(&path).unwrap();
        let (ok, report, _) = verify_json(srv.cli(), &boot.org_id);
        assert!(ok, "{report}");

        // (a) The head of a real checkpoint changed, its MAC kept.
        let mut altered = real.clone();
        altered["head"] = Value::String("00".repeat(32));
        std::fs::write(&path, altered.to_string()).unwrap();
        let (ok, report, line) = verify_json(srv.cli(), &boot.org_id);
        assert!(!ok, "an altered checkpoint verified: {report}");
        assert_eq!(report["problem_kind"], "invalid_checkpoint", "{report}");
        let line = line.unwrap();
        assert!(line.contains("checkpoint at seq 8 is not authentic") && line.contains("signature is invalid"), "{line}");
        let lines = export(&srv, &boot.api_key, &boot.org_id).await;
        let cp = parsed(&lines).into_iter().find(|l| l["type"] == "checkpoint" && l["seq"] == 8).unwrap();
        assert_eq!(cp["authentic"], false, "{cp}");
        offline_refuses(&lines, "checkpoint at seq 8 is not authentic");
        std::fs::write(&path, &original).unwrap();
        assert!(verify_json(srv.cli(), &boot.org_id).0);

        // (b) A made-up checkpoint past the chain's end claiming a rollback: reported as forged,
        // not believed.
        let mut forged = real.clone();
        forged["seq"] = 50.into();
        forged["mac"] = Value::String("ab".repeat(32));
        let planted = checkpoint_path(&srv.data_dir, &boot.org_id, 50);
        std::fs::write(&planted, forged.to_string()).unwrap();
        let (ok, report, line) = verify_json(srv.cli(), &boot.org_id);
        assert!(!ok, "{report}");
        assert_eq!(report["problem_kind"], "invalid_checkpoint", "{report}");
        assert!(report["missing"].is_null(), "a forged checkpoint was taken for a rollback: {report}");
        assert!(line.unwrap().contains("checkpoint at seq 50 is not authentic"));

        // (c) A genuine checkpoint copied under another seq.
        std::fs::write(&planted, &original).unwrap();
        let (ok, report, line) = verify_json(srv.cli(), &boot.org_id);
        assert!(!ok, "{report}");
        assert_eq!(report["problem_kind"], "invalid_checkpoint", "{report}");
        assert!(line.unwrap().contains("names seq 8"));
        std::fs::remove_file(&planted).unwrap();
        let (ok, report, _) = verify_json(srv.cli(), &boot.org_id);
        assert!(ok, "{report}");
    }

    async fn checkpoints_cause_no_false_alarm_under_live_traffic(b: Backend) {
        // A writer racing the verifier as hard as it can: a round every 50 ms.
        let Some(srv) = start_checkpointing(b, Duration::from_millis(50)).await else { return };
        let srv = Arc::new(srv);
        let boot = org_with_activity(&srv, "o@example.com", "acme").await;
        let space = srv.create_space(&boot.api_key, &boot.org_id, "busy").await;
        let id = srv.upload(&boot.api_key, &space, "hot.bin", pattern(100, 4)).await["id"].as_str().unwrap().to_owned();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..2 {
            let (srv, stop, key, id) = (srv.clone(), stop.clone(), boot.api_key.clone(), id.clone());
            readers.push(tokio::spawn(async move {
                let mut n = 0_u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&key)).send().await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    res.bytes().await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut failures = Vec::new();
        let mut checkpointed = Vec::new();
        for _ in 0..5 {
            let (ok, report, line) = tokio::task::block_in_place(|| verify_json(srv.cli(), &boot.org_id));
            if !ok {
                failures.push(line.unwrap_or_default());
            }
            checkpointed.push(report["checkpoints"].as_u64().unwrap_or(0));
            let lines = export(&srv, &boot.api_key, &boot.org_id).await;
            let (ok, _, stderr) = tokio::task::block_in_place(|| offline_verify(&lines));
            if !ok {
                failures.push(stderr);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut reads = 0;
        for r in readers {
            reads += r.await.unwrap();
        }
        assert!(reads > 10, "too little traffic to mean anything: {reads} reads");
        assert!(failures.is_empty(), "false alarms on an untouched trail under live traffic: {failures:?}");
        assert!(checkpointed.windows(2).any(|w| w[1] > w[0]), "no checkpoint was written during the traffic: {checkpointed:?}");
        // Events appended after the last checkpoint are fine.
        let mut conn = srv.db_conn().await;
        let (seq, _, _) = head_triple(&mut conn, &boot.org_id).await;
        let (ok, report, _) = verify_json(srv.cli(), &boot.org_id);
        assert!(ok, "{report}");
        assert!(report["latest_checkpoint"]["seq"].as_i64().unwrap() <= seq);
    }

    async fn the_export_verifies_offline_and_the_verifier_catches_tampering(b: Backend) {
        let Some(srv) = start_checkpointing(b, Duration::from_secs(1)).await else { return };
        let boot = org_with_activity(&srv, "o@example.com", "acme").await;
        // Details with quotes, a backslash and non-ASCII text: the offline hash must match the
        // server's canonical JSON byte for byte.
        let space = srv.create_space(&boot.api_key, &boot.org_id, "Ünïcødé \"quoted\" \\ ☃ 日本").await;
        srv.upload(&boot.api_key, &space, "r%C3%A9sum%C3%A9%20%E2%98%83.txt", b"hello".to_vec()).await;
        wait_for_checkpoint(&srv.data_dir, &boot.org_id, 10).await;

        let lines = export(&srv, &boot.api_key, &boot.org_id).await;
        let items = parsed(&lines);
        assert_eq!(items[0]["type"], "header", "{}", lines[0]);
        assert_eq!(items[0]["format"], "strongroom-audit-export");
        assert_eq!(items[0]["org_id"], boot.org_id);
        let events: Vec<&Value> = items.iter().filter(|l| l["type"] == "event").collect();
        assert_eq!(events.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
        assert!(events.iter().any(|e| e["detail"].as_str().unwrap().contains("☃ 日本")), "{lines:?}");
        // Each checkpoint follows the event of its seq and names that event's hash.
        let mut checkpoints = 0;
        for (i, l) in items.iter().enumerate() {
            if l["type"] == "checkpoint" {
                checkpoints += 1;
                let ev = items[..i].iter().rev().find(|e| e["type"] == "event").unwrap();
                assert_eq!(ev["seq"], l["seq"], "{l}");
                assert_eq!(ev["hash"], l["head"], "{l}");
                assert_eq!(l["authentic"], true, "{l}");
                assert!(l.get("mac").is_none(), "an HMAC nobody outside can check: {l}");
            }
        }
        assert!(checkpoints >= 1);
        let end = items.last().unwrap();
        assert_eq!(end["type"], "end");
        assert_eq!(end["events"], 10);
        assert_eq!(end["checkpoints"], checkpoints);

        let (ok, stdout, stderr) = offline_verify(&lines);
        assert!(ok, "the verifier refused a genuine export: {stderr}");
        assert!(stdout.starts_with("OK:") && stdout.contains("10 events"), "{stdout}");
        let ten = events[9]["hash"].as_str().unwrap();
        let (ok, _, stderr) = offline_verify_with(&lines, &["--expect", &format!("10:{ten}")]);
        assert!(ok, "{stderr}");
        let (ok, _, stderr) = offline_verify_with(&lines, &["--expect", &format!("10:{}", "0".repeat(64))]);
        assert!(!ok && stderr.contains("event 10 does not match the checkpoint given with --expect"), "{stderr}");

        let line_of = |seq: u64| items.iter().position(|l| l["type"] == "event" && l["seq"] == seq).unwrap();
        // An edited event.
        let mut t = lines.clone();
        let mut ev = items[line_of(4)].clone();
        ev["target"] = Value::String("somewhere-else".into());
        t[line_of(4)] = ev.to_string();
        offline_refuses(&t, "event 4 was edited");
        // An edited non-ASCII detail.
        let i = items.iter().position(|l| l["type"] == "event" && l["detail"].as_str().unwrap().contains("☃")).unwrap();
        let mut t = lines.clone();
        t[i] = t[i].replace("☃", "*");
        offline_refuses(&t, "was edited");
        // A removed event.
        let mut t = lines.clone();
        t.remove(line_of(6));
        offline_refuses(&t, "event 6 is missing");
        // A truncated download.
        let mut t = lines.clone();
        t.pop();
        offline_refuses(&t, "truncated");
        // A checkpoint naming another hash.
        let c = items.iter().position(|l| l["type"] == "checkpoint").unwrap();
        let mut cp = items[c].clone();
        cp["head"] = Value::String("11".repeat(32));
        let mut t = lines.clone();
        t[c] = cp.to_string();
        offline_refuses(&t, "does not match the checkpoint");
        // A checkpoint removed: the end line's count gives it away.
        let mut t = lines.clone();
        t.remove(c);
        offline_refuses(&t, "lines were removed");
    }

    async fn the_export_is_authorized_like_the_audit_list(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = org_with_activity(&srv, "o@example.com", "acme").await;
        let other = srv.bootstrap("x@example.com", "other");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "only").await;
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{}/api-keys", boot.org_id), Some(&boot.api_key))
            .json(&serde_json::json!({"name": "limited", "role": "admin", "spaces": [space]})).send().await.unwrap();
        let limited = expect_json(res, StatusCode::CREATED).await["api_key"].as_str().unwrap().to_owned();
        let mut callers: Vec<(&str, Option<String>)> = vec![("none", None), ("owner", Some(boot.api_key.clone())), ("other-org owner", Some(other.api_key.clone())), ("space-limited admin", Some(limited))];
        for role in ["admin", "editor", "contributor", "viewer"] {
            callers.push((role, Some(srv.create_key(&boot.org_id, role).1)));
        }
        let mut allowed = 0;
        for (who, key) in &callers {
            let list = srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit", boot.org_id), key.as_deref()).send().await.unwrap().status();
            let res = srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit/export", boot.org_id), key.as_deref()).send().await.unwrap();
            assert_eq!(res.status(), list, "{who}: the export answers {} where the list answers {list}", res.status());
            if list == StatusCode::OK {
                allowed += 1;
                assert!(res.text().await.unwrap().contains("\"type\":\"end\""));
            } else {
                assert_eq!(res.headers()["content-type"], "application/problem+json", "{who}");
                let text = res.text().await.unwrap();
                assert!(!text.contains("\"type\":\"event\""), "{who} got events: {text}");
            }
        }
        assert_eq!(allowed, 2, "owner and admin read the trail");
        // Another organization's id is "not found", a malformed one too.
        let res = srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit/export", other.org_id), Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = srv.req(Method::GET, "/api/v1/orgs/acme/audit/export", Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
}
