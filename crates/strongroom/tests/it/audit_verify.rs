//! `audit verify` against a running instance, on both backends: live traffic does not fool it,
//! and edited, deleted, swapped or truncated events are caught and named, per organization.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_backends;
use crate::process::one_sentence_error;
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
