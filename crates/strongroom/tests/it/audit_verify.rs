//! `audit verify` against a running instance, on both backends: live traffic does not fool it,
//! and edited, deleted, swapped or truncated events are caught and named, per organization.
//! Signed checkpoints outside the database catch what the chain alone cannot: a rollback to an
//! earlier genuine state (newest events deleted with an earlier head restored, or an older copy
//! of the whole database put back: `audit_rollback`), and the export lets anyone verify the
//! chain offline (`audit_export`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::audit_export::{export, offline_refuses, offline_verify, offline_verify_with, parsed};
use crate::both_backends;
use crate::process::{one_sentence_error, poll};
use crate::support::*;

/// The first event number named in `text` ("... event 5 ..."), skipping the org id.
pub(crate) fn first_event_named(text: &str) -> Option<u64> {
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
pub(crate) async fn org_with_activity(srv: &TestServer, email: &str, org: &str) -> Boot {
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
pub(crate) fn verify_org(srv: &TestServer, org: &str) -> (bool, String, String) {
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
pub(crate) fn assert_broken_at(srv: &TestServer, org: &str, seq: u64) -> String {
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

/// The checkpoints stored for `org` in the data dir's blob store, by seq (JSON, or `Null` when
/// a file is not JSON).
pub(crate) fn checkpoint_files(data_dir: &Path, org: &str) -> BTreeMap<u64, Value> {
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

pub(crate) fn checkpoint_path(data_dir: &Path, org: &str, seq: u64) -> PathBuf {
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
pub(crate) async fn head_triple(
    conn: &mut sqlx::AnyConnection,
    org: &str,
) -> (i64, Vec<u8>, Vec<u8>) {
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
pub(crate) fn verify_json(
    mut cmd: std::process::Command,
    org: &str,
) -> (bool, Value, Option<String>) {
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
pub(crate) async fn uploads(
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

/// A server whose checkpoint writer runs every `every`.
pub(crate) async fn start_checkpointing(b: Backend, every: Duration) -> Option<TestServer> {
    TestServer::start_with(b, |s| s.instance.service.audit_checkpoint_interval = every).await
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
}
