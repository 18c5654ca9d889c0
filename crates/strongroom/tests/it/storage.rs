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
}
