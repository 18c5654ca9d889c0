//! The storage scrub and status, through the CLI against a running server: every copy checked by
//! its tags, what cannot be repaired named (exit status 1) and recorded in the audit trail.

use reqwest::Method;

use crate::both_backends;
use crate::support::*;

both_backends! {
    async fn a_scrub_checks_every_copy_and_names_what_it_cannot_repair(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let mut files = Vec::new();
        for i in 0..3u64 {
            srv.upload(&boot.api_key, &space, &format!("f{i}.bin"), pattern(200_000 + i as usize, i)).await;
            // The new object is this asset's blob (media processing is off: no renditions).
            let new = srv.object_files().into_iter().find(|p| !files.contains(p)).unwrap();
            files.push(new);
        }

        // An intact store: everything checks, nothing to repair, exit status 0.
        let clean = srv.run_json(&["storage", "scrub", "--json"]);
        assert_eq!(clean["checked"], 3, "{clean}");
        assert_eq!(clean["repaired"], 0);
        assert_eq!(clean["unrecoverable"], 0);
        assert_eq!(clean["backends"][0]["objects"], 3);
        assert_eq!(clean["backends"][0]["corrupt"], 0);

        // One byte flipped in one blob, another blob's only copy gone.
        let mut bytes = std::fs::read(&files[0]).unwrap();
        bytes[150_000] ^= 0x10;
        std::fs::write(&files[0], bytes).unwrap();
        std::fs::remove_file(&files[1]).unwrap();
        let out = srv.run(&["storage", "scrub", "--json"]);
        assert_eq!(out.status.code(), Some(1), "a blob without a good copy fails the scrub");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["checked"], 3);
        assert_eq!(report["unrecoverable"], 2, "{report}");
        assert_eq!(report["backends"][0]["corrupt"], 1);
        assert_eq!(report["backends"][0]["missing"], 1);
        assert_eq!(report["backends"][0]["objects"], 1);
        let named: Vec<String> = report["unrecoverable_blobs"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
        for f in &files[..2] {
            let id = f.file_name().unwrap().to_string_lossy().into_owned();
            assert!(named.contains(&id), "{id} not named in {named:?}");
        }
        let human = srv.run(&["storage", "scrub"]);
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(text.contains("restore it from a backup"), "{text}");

        // The findings are in the organization's trail, and in `storage status`.
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=1000", boot.org_id), Some(&boot.api_key))).await;
        let lost = audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "storage.unrecoverable").count();
        assert!(lost >= 2, "{audit}");
        let status = srv.run_json(&["storage", "status", "--json"]);
        assert_eq!(status["backends"][0]["up"], true, "{status}");
        assert_eq!(status["backends"][0]["corrupt"], 1);
        assert_eq!(status["last_scrub"]["unrecoverable"], 2);
        assert_eq!(status["copies_required"], 1);
    }

    async fn two_copies_serve_every_byte_through_damage_and_the_scrub_repairs_them(b: Backend) {
        let disks = tempfile::tempdir().unwrap();
        let (a_dir, b_dir) = (disks.path().join("a"), disks.path().join("b"));
        let toml = format!(
            "[storage]\ncopies = 2\n\
             [[storage.backends]]\nname = \"disk-a\"\nurl = \"fs://{}\"\n\
             [[storage.backends]]\nname = \"disk-b\"\nurl = \"fs://{}\"\n",
            a_dir.display(),
            b_dir.display()
        );
        let Some(srv) = TestServer::start_with_config(b, &toml).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let objects = |dir: &std::path::Path| {
            let mut files: Vec<_> = walkdir(dir.join("objects"));
            files.sort();
            files
        };
        let mut assets = Vec::new();
        for i in 0..2u64 {
            let body = pattern(300_000, i);
            let a = srv.upload(&boot.api_key, &space, &format!("f{i}.bin"), body.clone()).await;
            assets.push((a["id"].as_str().unwrap().to_owned(), body));
        }
        let (in_a, in_b) = (objects(&a_dir), objects(&b_dir));
        assert_eq!(in_a.len(), 2, "every backend holds every blob");
        assert_eq!(in_b.len(), 2);
        for (x, y) in in_a.iter().zip(&in_b) {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap(), "identical copies");
        }

        // Copy a of the first blob damaged, copy b of the second gone: the client notices nothing.
        let mut bytes = std::fs::read(&in_a[0]).unwrap();
        bytes[200_000] ^= 0x01;
        std::fs::write(&in_a[0], bytes).unwrap();
        std::fs::remove_file(&in_b[1]).unwrap();
        for (id, body) in &assets {
            let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).send().await.unwrap();
            assert_eq!(res.status(), 200);
            assert_eq!(res.bytes().await.unwrap().as_ref(), body.as_slice(), "byte-identical");
            let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).header("Range", "bytes=199000-201999").send().await.unwrap();
            assert_eq!(res.status(), 206);
            assert_eq!(res.bytes().await.unwrap().as_ref(), &body[199_000..202_000]);
        }

        // The scrub rewrites both bad copies from the good ones, and says so in the trail.
        let report = srv.run_json(&["storage", "scrub", "--json"]);
        assert_eq!(report["checked"], 2, "{report}");
        assert_eq!(report["repaired"], 2, "{report}");
        assert_eq!(report["unrecoverable"], 0);
        assert_eq!(report["backends"][0]["corrupt"], 1);
        assert_eq!(report["backends"][1]["missing"], 1);
        let (in_a, in_b) = (objects(&a_dir), objects(&b_dir));
        assert_eq!(in_b.len(), 2);
        for (x, y) in in_a.iter().zip(&in_b) {
            assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap(), "repaired copies match");
        }
        let again = srv.run_json(&["storage", "scrub", "--json"]);
        assert_eq!((again["repaired"].as_u64(), again["backends"][0]["objects"].as_u64(), again["backends"][1]["objects"].as_u64()), (Some(0), Some(2), Some(2)), "{again}");
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=1000", boot.org_id), Some(&boot.api_key))).await;
        let repairs = audit["items"].as_array().unwrap().iter().filter(|e| e["action"] == "storage.repaired").count();
        assert_eq!(repairs, 2, "{audit}");

        // Backend b fails (its folder gone): uploads, which need both copies, are refused with a
        // clear 503 naming it; downloads go on from a; readiness says so.
        std::fs::rename(&b_dir, disks.path().join("b-gone")).unwrap();
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=late.bin"), Some(&boot.api_key)).body(pattern(1000, 9)).send().await.unwrap();
        assert_eq!(res.status(), 503);
        let problem: serde_json::Value = res.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains("disk-b"), "{problem}");
        let listed = get_json(srv.req(Method::GET, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key))).await;
        assert_eq!(listed["items"].as_array().unwrap().len(), 2, "the refused upload left no asset");
        for (id, body) in &assets {
            let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&boot.api_key)).send().await.unwrap();
            assert_eq!(res.bytes().await.unwrap().as_ref(), body.as_slice());
        }
        let ready = srv.req(Method::GET, "/readyz", None).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        // (The running server's view: a new CLI process would open, and so recreate, the folder.)
        let status = srv.service.ops.storage_status().await.unwrap();
        assert!(status.backends[0].up, "{status:?}");
        assert!(!status.backends[1].up, "{status:?}");
        assert!(status.backends[1].error.as_deref().is_some_and(|e| !e.is_empty()));

        // Back again: uploads work.
        std::fs::rename(disks.path().join("b-gone"), &b_dir).unwrap();
        let res = srv.req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=late.bin"), Some(&boot.api_key)).body(pattern(1000, 9)).send().await.unwrap();
        assert_eq!(res.status(), 201);
    }

    async fn a_scheduled_scrub_runs_when_due_on_one_node_at_a_time_and_repairs(b: Backend) {
        let disks = tempfile::tempdir().unwrap();
        let (a_dir, b_dir) = (disks.path().join("a"), disks.path().join("b"));
        let toml = format!(
            "[storage]\ncopies = 1\nscrub_interval_hours = 1\n\
             [[storage.backends]]\nname = \"disk-a\"\nurl = \"fs://{}\"\n\
             [[storage.backends]]\nname = \"disk-b\"\nurl = \"fs://{}\"\n",
            a_dir.display(),
            b_dir.display()
        );
        let Some(srv) = TestServer::start_with_config(b, &toml).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        srv.upload(&boot.api_key, &space, "f.bin", pattern(5000, 3)).await;
        let lost = walkdir(b_dir.join("objects"));
        assert_eq!(lost.len(), 1);
        std::fs::remove_file(&lost[0]).unwrap();
        let hour = std::time::Duration::from_secs(3600);

        // Another node holds the scrub lease: the schedule leaves the scrub to it, and the CLI
        // says who to wait for.
        let mut conn = srv.db_conn().await;
        let far = i64::MAX / 2;
        sqlx::query("UPDATE storage_scrub_lease SET holder = 'scrub-othernode', lease_until = $1").bind(far).execute(&mut conn).await.unwrap();
        assert!(srv.service.ops.scrub_if_due(hour).await.unwrap().is_none(), "another node scrubs");
        let out = srv.run(&["storage", "scrub"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("another scrub is running (scrub-othernode"), "{err}");
        assert!(walkdir(b_dir.join("objects")).is_empty(), "nothing repaired meanwhile");
        // Its lease runs out (the node died): the next due check takes over.
        sqlx::query("UPDATE storage_scrub_lease SET lease_until = 0").execute(&mut conn).await.unwrap();

        let first = srv.service.ops.scrub_if_due(hour).await.unwrap().expect("no scrub ran yet: due");
        assert_eq!((first.checked, first.repaired), (1, 1));
        assert!(lost[0].exists(), "the missing copy is written back");
        assert!(srv.service.ops.scrub_if_due(hour).await.unwrap().is_none(), "not due again within the hour");
    }

    async fn a_backend_down_with_enough_copies_left_is_degraded_not_down_and_filled_in_when_back(b: Backend) {
        let disks = tempfile::tempdir().unwrap();
        let (a_dir, b_dir) = (disks.path().join("a"), disks.path().join("b"));
        let toml = format!(
            "[storage]\ncopies = 1\n\
             [[storage.backends]]\nname = \"disk-a\"\nurl = \"fs://{}\"\nregion = \"eu\"\n\
             [[storage.backends]]\nname = \"disk-b\"\nurl = \"fs://{}\"\nregion = \"eu\"\n",
            a_dir.display(),
            b_dir.display()
        );
        let Some(srv) = TestServer::start_with_config(b, &toml).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let ready: serde_json::Value = srv.req(Method::GET, "/readyz", None).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ready");
        std::fs::rename(&b_dir, disks.path().join("b-gone")).unwrap();
        let res = srv.req(Method::GET, "/readyz", None).send().await.unwrap();
        assert_eq!(res.status(), 200, "one copy is all an upload needs: still serving");
        let ready: serde_json::Value = res.json().await.unwrap();
        assert_eq!(ready["status"], "degraded");
        assert_eq!(ready["backends_down"], serde_json::json!(["disk-b"]));
        let up = srv.upload(&boot.api_key, &space, "f.bin", pattern(4000, 1)).await;
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{}/content", up["id"].as_str().unwrap()), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.bytes().await.unwrap().as_ref(), pattern(4000, 1).as_slice());
        assert_eq!(walkdir(a_dir.join("objects")).len(), 1);
        let status = srv.service.ops.storage_status().await.unwrap();
        assert_eq!((status.backends[0].region.as_str(), status.backends[0].up), ("eu", true));
        assert!(!status.backends[1].up);

        // The backend comes back: ready again, and the scrub writes the copy it missed.
        std::fs::rename(disks.path().join("b-gone"), &b_dir).unwrap();
        let ready: serde_json::Value = srv.req(Method::GET, "/readyz", None).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ready", "{ready}");
        assert!(walkdir(b_dir.join("objects")).is_empty());
        let report = srv.run_json(&["storage", "scrub", "--json"]);
        assert_eq!((report["repaired"].as_u64(), report["backends"][1]["missing"].as_u64()), (Some(1), Some(1)), "{report}");
        assert_eq!(walkdir(b_dir.join("objects")).len(), 1);
        std::fs::rename(&a_dir, disks.path().join("a-gone")).unwrap();
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{}/content", up["id"].as_str().unwrap()), Some(&boot.api_key)).send().await.unwrap();
        assert_eq!(res.bytes().await.unwrap().as_ref(), pattern(4000, 1).as_slice(), "read from the repaired copy alone");
    }
}

/// Every file under `dir`, recursively.
pub(crate) fn walkdir(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
