//! The audit export (`GET /orgs/{org}/audit/export`) and its offline verifier
//! (`scripts/verify-audit-export.py`): anyone holding an export can check the chain and its
//! checkpoints without the server, and an edited, dropped or reordered line is caught; the
//! export is authorized like the audit list.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::audit_verify::{org_with_activity, start_checkpointing, wait_for_checkpoint};
use crate::both_backends;
use crate::support::*;

/// The offline verifier shipped in the repository.
const VERIFY_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/verify-audit-export.py"
);

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
pub(crate) fn offline_verify_with(lines: &[String], args: &[&str]) -> (bool, String, String) {
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
pub(crate) fn offline_refuses(lines: &[String], want: &str) {
    let (ok, stdout, stderr) = offline_verify(lines);
    assert!(!ok, "the verifier accepted a tampered export: {stdout}");
    assert!(stderr.contains(want), "expected {want:?} in: {stderr}");
}

/// The lines of an export parsed as JSON.
pub(crate) fn parsed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

both_backends! {
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
