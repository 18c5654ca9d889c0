//! Data residency over HTTPS: two regions of two backends each. Every object on every backend is
//! looked up in the database: no organization's blob, rendition or HLS segment is ever stored
//! outside its region. Then an organization moves to the other region (`storage move`): copied,
//! verified, removed, and every byte still reads the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Row;

use crate::both_backends;
use crate::media_jobs::fetch_every_segment;
use crate::storage::walkdir;
use crate::support::*;
use crate::video::{make_video, processed, test_image, upload_as};

/// Four folders: `eu-1`, `eu-2` (region eu), `us-1`, `us-2` (region us); two copies of each blob.
struct Regions {
    _dir: tempfile::TempDir,
    backends: Vec<(String, String, PathBuf)>,
    toml: String,
}

fn regions() -> Regions {
    let dir = tempfile::tempdir().unwrap();
    let mut backends = Vec::new();
    let mut toml = String::from("[storage]\ncopies = 2\n");
    for (name, region) in [
        ("eu-1", "eu"),
        ("eu-2", "eu"),
        ("us-1", "us"),
        ("us-2", "us"),
    ] {
        let path = dir.path().join(name);
        toml.push_str(&format!(
            "[[storage.backends]]\nname = \"{name}\"\nurl = \"fs://{}\"\nregion = \"{region}\"\n",
            path.display()
        ));
        backends.push((name.to_owned(), region.to_owned(), path));
    }
    Regions {
        _dir: dir,
        backends,
        toml,
    }
}

impl Regions {
    /// The blob ids each backend holds (object file names), by backend name.
    fn objects(&self) -> BTreeMap<String, Vec<String>> {
        self.backends
            .iter()
            .map(|(name, _, path)| (name.clone(), object_ids(path)))
            .collect()
    }

    fn region_of(&self, backend: &str) -> &str {
        &self
            .backends
            .iter()
            .find(|(n, _, _)| n == backend)
            .unwrap()
            .1
    }
}

fn object_ids(root: &Path) -> Vec<String> {
    let mut ids: Vec<String> = walkdir(root.join("objects"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    ids
}

/// Every blob row: id -> (organization, region).
async fn blob_rows(srv: &TestServer) -> BTreeMap<String, (String, String)> {
    let mut conn = srv.db_conn().await;
    sqlx::query("SELECT id, org_id, region FROM blobs")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("id"), (r.get("org_id"), r.get("region"))))
        .collect()
}

/// No backend holds an object of an organization of another region, and every blob row has its
/// two copies in its region. Returns the number of blobs checked.
async fn assert_resident(
    srv: &TestServer,
    regions: &Regions,
    org_region: &BTreeMap<String, &str>,
) -> usize {
    let rows = blob_rows(srv).await;
    for (backend, ids) in regions.objects() {
        let region = regions.region_of(&backend);
        for id in ids {
            let (org, _) = rows
                .get(&id)
                .unwrap_or_else(|| panic!("{backend} holds {id}, which no blob row names"));
            assert_eq!(
                org_region[org.as_str()],
                region,
                "{backend} (region {region}) holds blob {id} of an organization in another region"
            );
        }
    }
    let objects = regions.objects();
    for (id, (org, region)) in &rows {
        assert_eq!(
            region,
            org_region[org.as_str()],
            "the row of blob {id} names the wrong region"
        );
        for (name, r, _) in &regions.backends {
            assert_eq!(
                objects[name].contains(id),
                r == region,
                "blob {id} on {name}"
            );
        }
    }
    rows.len()
}

async fn org_json(srv: &TestServer, key: &str, org: &str) -> Value {
    get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}"), Some(key))).await
}

async fn content(srv: &TestServer, key: &str, asset: &str) -> Vec<u8> {
    let res = srv
        .req(
            Method::GET,
            &format!("/api/v1/assets/{asset}/content"),
            Some(key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.bytes().await.unwrap().to_vec()
}

both_backends! {
    async fn no_blob_rendition_or_segment_is_stored_outside_its_organizations_region(b: Backend) {
        let regions = regions();
        let Some(srv) = TestServer::start_with_config(b, &regions.toml).await else { return };

        // Several regions: bootstrap must be told which, and only a configured one.
        let out = srv.run(&["admin", "bootstrap", "--email", "x@example.com", "--org", "nowhere"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("several regions (eu, us)") && err.contains("--region"), "{err}");
        let out = srv.run(&["admin", "bootstrap", "--email", "x@example.com", "--org", "nowhere", "--region", "ap"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no storage backend is in region 'ap'"), "{err}");

        let eu = srv.bootstrap_in("eu@example.com", "eu-org", "eu");
        let us = srv.bootstrap_in("us@example.com", "us-org", "us");
        // Bootstrapping again with another region does not move it.
        let out = srv.run(&["admin", "bootstrap", "--email", "eu@example.com", "--org", "eu-org", "--region", "us"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("storage move"));

        let video = make_video(2, 10);
        let mut assets = Vec::new();
        for (boot, region) in [(&eu, "eu"), (&us, "us")] {
            let org = org_json(&srv, &boot.api_key, &boot.org_id).await;
            assert_eq!(org["region"], region, "{org}");
            assert_eq!(org["region_move"], Value::Null);
            let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
            let file = pattern(150_000, region.len() as u64);
            let a = srv.upload(&boot.api_key, &space, "notes.bin", file.clone()).await;
            assets.push((boot, a["id"].as_str().unwrap().to_owned(), file));
            let img = upload_as(&srv, &boot.api_key, &space, "photo.png", "image/png", test_image()).await;
            let vid = upload_as(&srv, &boot.api_key, &space, "clip.mp4", "video/mp4", video.clone()).await;
            for id in [&img["id"], &vid["id"]] {
                let done = processed(&srv, &boot.api_key, id.as_str().unwrap()).await;
                assert_eq!(done["status"], "ready", "{done}");
            }
            let rungs = fetch_every_segment(&srv, &boot.api_key, vid["id"].as_str().unwrap()).await;
            assert!(!rungs.is_empty() && rungs.iter().all(|(_, n)| *n > 0), "{rungs:?}");
        }
        // Another organization's region is not readable to a key of the first.
        let res = srv.req(Method::GET, &format!("/api/v1/orgs/{}", us.org_id), Some(&eu.api_key)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        let org_region = BTreeMap::from([(eu.org_id.as_str().to_owned(), "eu"), (us.org_id.as_str().to_owned(), "us")]);
        let org_region: BTreeMap<String, &str> = org_region.into_iter().collect();
        let checked = assert_resident(&srv, &regions, &org_region).await;
        // Per organization: the file, the image and its renditions, the video and its ladder.
        assert!(checked >= 2 * 6, "only {checked} blobs");
        for (boot, id, body) in &assets {
            assert_eq!(&content(&srv, &boot.api_key, id).await, body);
        }
        // The scrub checks each blob's copies in its own region only.
        let report = srv.run_json(&["storage", "scrub", "--json"]);
        assert_eq!(report["checked"].as_u64(), Some(checked as u64), "{report}");
        assert_eq!((report["repaired"].as_u64(), report["unrecoverable"].as_u64()), (Some(0), Some(0)), "{report}");
        let status = srv.run_json(&["storage", "status", "--json"]);
        let regions_shown: Vec<&str> = status["backends"].as_array().unwrap().iter().map(|b| b["region"].as_str().unwrap()).collect();
        assert_eq!(regions_shown, ["eu", "eu", "us", "us"], "{status}");
    }

    async fn an_organization_moves_to_another_region_and_reads_the_same(b: Backend) {
        let regions = regions();
        let Some(srv) = TestServer::start_with_config(b, &regions.toml).await else { return };
        let eu = srv.bootstrap_in("eu@example.com", "eu-org", "eu");
        let stay = srv.bootstrap_in("stay@example.com", "stay-org", "eu");
        let space = srv.create_space(&eu.api_key, &eu.org_id, "site").await;
        let mut files = Vec::new();
        for i in 0..4u64 {
            let body = pattern(120_000 + i as usize * 70_000, i);
            let a = srv.upload(&eu.api_key, &space, &format!("f{i}.bin"), body.clone()).await;
            files.push((a["id"].as_str().unwrap().to_owned(), body));
        }
        let other_space = srv.create_space(&stay.api_key, &stay.org_id, "site").await;
        let kept = pattern(90_000, 9);
        let kept_id = srv.upload(&stay.api_key, &other_space, "kept.bin", kept.clone()).await["id"].as_str().unwrap().to_owned();

        // One eu copy of one blob damaged: the move copies the good one and verifies the new copies.
        let rows = blob_rows(&srv).await;
        let damaged = rows.iter().find(|(_, (org, _))| *org == eu.org_id).unwrap().0.clone();
        let victim = walkdir(regions.backends[0].2.join("objects")).into_iter().find(|p| p.file_name().unwrap() == damaged.as_str()).unwrap();
        let mut bytes = std::fs::read(&victim).unwrap();
        bytes[100_000] ^= 0x40;
        std::fs::write(&victim, bytes).unwrap();

        // Refusals change nothing: an unknown region, an unknown organization.
        let out = srv.run(&["storage", "move", &eu.org_id, "--region", "ap"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no storage backend is in region 'ap'"));
        let out = srv.run(&["storage", "move", "org_00000000000000000000000000", "--region", "us"]);
        assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
        assert_eq!(org_json(&srv, &eu.api_key, &eu.org_id).await["region"], "eu");

        let moved = srv.run_json(&["storage", "move", &eu.org_id, "--region", "us", "--json"]);
        assert_eq!(moved["status"], "done", "{moved}");
        assert_eq!(moved["to"], "us");
        assert_eq!((moved["blobs_in_region"].as_u64(), moved["blobs_elsewhere"].as_u64()), (Some(4), Some(0)), "{moved}");

        let org = org_json(&srv, &eu.api_key, &eu.org_id).await;
        assert_eq!(org["region"], "us", "{org}");
        assert_eq!(org["region_move"]["status"], "done", "{org}");
        assert_eq!(org["region_move"]["blobs_elsewhere"], 0);
        let org_region: BTreeMap<String, &str> = BTreeMap::from([(eu.org_id.clone(), "us"), (stay.org_id.clone(), "eu")]);
        assert_resident(&srv, &regions, &org_region).await;
        for (id, body) in &files {
            assert_eq!(&content(&srv, &eu.api_key, id).await, body, "byte-identical after the move");
        }
        assert_eq!(content(&srv, &stay.api_key, &kept_id).await, kept);

        // New uploads go to the new region; moving again to where it is is refused.
        let later = srv.upload(&eu.api_key, &space, "later.bin", pattern(50_000, 7)).await;
        assert_eq!(later["size"], 50_000);
        assert_resident(&srv, &regions, &org_region).await;
        let out = srv.run(&["storage", "move", &eu.org_id, "--region", "us"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("in region 'us' already"));
        let status = srv.run_json(&["storage", "move-status", &eu.org_id, "--json"]);
        assert_eq!(status["status"], "done", "{status}");

        // The trail says who asked and when it finished; a scrub finds everything intact.
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=1000", eu.org_id), Some(&eu.api_key))).await;
        let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert!(actions.contains(&"org.region_move") && actions.contains(&"org.region_moved"), "{actions:?}");
        let report = srv.run_json(&["storage", "scrub", "--json"]);
        assert_eq!((report["repaired"].as_u64(), report["unrecoverable"].as_u64()), (Some(0), Some(0)), "{report}");
        let verify = srv.run(&["audit", "verify", "--org", &eu.org_id]);
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    }
}
