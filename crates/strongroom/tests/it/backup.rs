//! Backups (issue 11, F17): `strongroom backup create|list|verify|restore|prune` through the
//! real binary against a running instance, restored into a new data dir (and database) that a
//! second instance then serves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use strongroom_testkit::TestDb;

use crate::both_backends;
use crate::support::{BIN, Backend, TestServer, download, expect_json, pattern};

/// A backup destination folder.
struct Dest {
    dir: tempfile::TempDir,
    url: String,
}

fn dest() -> Dest {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("fs://{}", dir.path().join("backups").display());
    Dest { dir, url }
}

impl Dest {
    /// Every stored object file of the destination, by name.
    fn objects(&self) -> BTreeMap<String, PathBuf> {
        let mut out = BTreeMap::new();
        let root = self.dir.path().join("backups").join("objects");
        for fan in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for f in std::fs::read_dir(fan.path()).unwrap().flatten() {
                out.insert(f.file_name().to_string_lossy().into_owned(), f.path());
            }
        }
        out
    }
}

/// One owner, one space, and uploads of several sizes (one empty, one over a chunk).
struct Fixture {
    key: String,
    org: String,
    space: String,
    /// asset id -> bytes uploaded.
    assets: BTreeMap<String, Vec<u8>>,
}

async fn fixture(srv: &TestServer, sizes: &[usize]) -> Fixture {
    let boot = srv.bootstrap("owner@example.com", "acme");
    let space = srv.create_space(&boot.api_key, &boot.org_id, "Docs").await;
    let mut assets = BTreeMap::new();
    for (i, len) in sizes.iter().enumerate() {
        let bytes = pattern(*len, i as u64 + 1);
        let a = srv
            .upload(&boot.api_key, &space, &format!("file-{i}.bin"), bytes.clone())
            .await;
        assets.insert(a["id"].as_str().unwrap().to_owned(), bytes);
    }
    Fixture {
        key: boot.api_key,
        org: boot.org_id,
        space,
        assets,
    }
}

const SIZES: &[usize] = &[0, 1, 4096, 65_536, 200_000, 1_000_003];

/// `backup restore` into a new data dir (holding the source's root key) and, on PostgreSQL, a
/// new database; then an instance serving it.
async fn restore(key_dir: &Path, id: &str, from: &str, backend: Backend) -> (TestServer, Value) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(key_dir.join("master.key"), data.join("master.key")).unwrap();
    let db = TestDb::new(backend).await.unwrap();
    let out = restore_cmd(id, from, &data, db.url.as_deref()).output().unwrap();
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    (TestServer::start_in(dir, data, db).await, report)
}

fn restore_cmd(id: &str, from: &str, data: &Path, database_url: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.args(["backup", "restore", id, "--from", from, "--json", "--data-dir"])
        .arg(data)
        .env_remove("STRONGROOM_DATABASE_URL")
        .env_remove("STRONGROOM_MASTER_KEY")
        .env_remove("STRONGROOM_CONFIG")
        .env("STRONGROOM_LOG", "warn")
        .stdin(Stdio::null());
    if let Some(url) = database_url {
        c.args(["--database-url", url]);
    }
    c
}

fn create(srv: &TestServer, d: &Dest) -> Value {
    srv.run_json(&["backup", "create", "--to", &d.url, "--json"])
}

fn verify(srv: &TestServer, d: &Dest, id: &str) -> (bool, Value) {
    let out = srv.run(&["backup", "verify", id, "--from", &d.url, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

async fn assert_all_read_back(srv: &TestServer, f: &Fixture) {
    for (id, bytes) in &f.assets {
        assert_eq!(&download(srv, &f.key, id).await, bytes, "asset {id}");
    }
}

fn audit_verifies(srv: &TestServer, org: &str) {
    let out = srv.run(&["audit", "verify", "--org", org]);
    assert!(
        out.status.success(),
        "audit verify failed on the restored instance: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

both_backends! {
    async fn backup_wipe_restore_reads_every_byte_and_the_chain_verifies(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let f = fixture(&srv, SIZES).await;
        let d = dest();
        let first = create(&srv, &d);
        let id = first["id"].as_str().unwrap().to_owned();
        assert_eq!(first["objects"], SIZES.len() as u64 + 1, "{first}");
        assert!(first["new_bytes"].as_u64().unwrap() >= first["bytes"].as_u64().unwrap());
        let listed = srv.run_json(&["backup", "list", "--from", &d.url, "--json"]);
        assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["items"][0]["id"], id.as_str());
        let (ok, report) = verify(&srv, &d, &id);
        assert!(ok, "{report}");
        let status = srv.run_json(&["storage", "status", "--json"]);
        assert_eq!(status["backups"]["last_backup"]["backup_id"], id.as_str());
        assert_eq!(status["backups"]["last_verify"]["ok"], true);

        // Nothing readable at the destination: no filename, no plaintext of any upload.
        for path in d.objects().values() {
            let bytes = std::fs::read(path).unwrap();
            assert!(!crate::support::contains(&bytes, b"file-5.bin"), "{}", path.display());
            assert!(!crate::support::contains(&bytes, &f.assets.values().last().unwrap()[..64]));
        }

        // Wipe: the instance, its data dir and its database are gone.
        let key_dir = tempfile::tempdir().unwrap();
        std::fs::copy(srv.data_dir.join("master.key"), key_dir.path().join("master.key")).unwrap();
        srv.stop().await;

        let (restored, report) = restore(key_dir.path(), &id, &d.url, b).await;
        assert_eq!(report["blobs"], SIZES.len() as u64, "{report}");
        assert_eq!(report["shredded_assets"], 0);
        assert_all_read_back(&restored, &f).await;
        audit_verifies(&restored, &f.org);
        let listed = expect_json(
            restored
                .req(Method::GET, &format!("/api/v1/spaces/{}/assets", f.space), Some(&f.key))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed["items"].as_array().unwrap().len(), SIZES.len());
        let org = expect_json(
            restored.req(Method::GET, &format!("/api/v1/orgs/{}", f.org), Some(&f.key)).send().await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(org["backups"]["last_restore"]["backup_id"], id.as_str(), "{org}");
        // The restored instance takes new uploads.
        restored.upload(&f.key, &f.space, "after.bin", b"after the restore".to_vec()).await;
    }

    async fn a_second_backup_copies_only_what_changed(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let sizes = vec![100_000; 20];
        let f = fixture(&srv, &sizes).await;
        let d = dest();
        let first = create(&srv, &d);
        let objects_before = d.objects().len();
        srv.upload(&f.key, &f.space, "new.bin", pattern(100_000, 99)).await;
        let second = create(&srv, &d);
        assert_eq!(second["objects"], 22, "{second}");
        // One new blob, a new snapshot, key set and manifest: nothing else was copied.
        assert_eq!(d.objects().len(), objects_before + 4);
        let new = second["new_bytes"].as_u64().unwrap();
        let blob = 100_000 + 2 * 16 + 32;
        let snapshot_and_keys = new - blob;
        assert!(
            snapshot_and_keys < first["new_bytes"].as_u64().unwrap() / 10,
            "first {first}, second {second}"
        );
        let (ok, report) = verify(&srv, &d, second["id"].as_str().unwrap());
        assert!(ok, "{report}");
    }

    async fn a_purged_asset_is_unreadable_in_an_earlier_backup(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let f = fixture(&srv, &[10_000, 20_000, 30_000]).await;
        let d = dest();
        let before = create(&srv, &d);
        let id = before["id"].as_str().unwrap();
        let (purged, kept): (Vec<_>, Vec<_>) = f.assets.keys().cloned().partition(|a| a == f.assets.keys().next().unwrap());
        let res = srv
            .req(Method::DELETE, &format!("/api/v1/assets/{}?purge=true", purged[0]), Some(&f.key))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let status = srv.run_json(&["storage", "status", "--json"]);
        assert_eq!(status["backups"]["shreds_pending"], 1, "{status}");
        // The shred pass (the server runs it every minute; prune runs it too).
        let pruned = srv.run_json(&["backup", "prune", "--from", &d.url, "--json"]);
        assert_eq!(pruned["shred"]["rewritten"], 1, "{pruned}");
        let status = srv.run_json(&["storage", "status", "--json"]);
        assert_eq!(status["backups"]["shreds_pending"], 0, "{status}");

        // The backup still holds the purged blob's ciphertext, but no key for it.
        let (ok, report) = verify(&srv, &d, id);
        assert!(ok, "{report}");
        assert_eq!(report["shredded"], 1, "{report}");
        let (restored, report) = restore(&srv.data_dir, id, &d.url, b).await;
        assert_eq!(report["shredded_assets"], 1, "{report}");
        let res = restored
            .req(Method::GET, &format!("/api/v1/assets/{}/content", purged[0]), Some(&f.key))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        for a in &kept {
            assert_eq!(&download(&restored, &f.key, a).await, &f.assets[a]);
        }
        let mut conn = restored.db_conn().await;
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM blobs")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows, kept.len() as i64, "no data key of the purged blob was restored");
        audit_verifies(&restored, &f.org);
    }

    async fn a_backup_taken_during_uploads_restores_every_acknowledged_upload(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let f = fixture(&srv, &[50_000; 10]).await;
        let d = dest();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let uploader = {
            let (client, base, key, space, stop) =
                (srv.client.clone(), srv.base.clone(), f.key.clone(), f.space.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = BTreeMap::new();
                let mut i = 0_u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let bytes = pattern(30_000 + i as usize, 1000 + i);
                    let res = client
                        .post(format!("{base}/api/v1/spaces/{space}/assets?filename=during-{i}.bin"))
                        .bearer_auth(&key)
                        .header("content-type", "application/octet-stream")
                        .body(bytes.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), StatusCode::CREATED);
                    let v: Value = res.json().await.unwrap();
                    acked.insert(v["id"].as_str().unwrap().to_owned(), bytes);
                    i += 1;
                }
                acked
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let args = ["backup", "create", "--to", &d.url, "--json"].map(str::to_owned);
        let mut cmd = srv.cli();
        let out = tokio::task::spawn_blocking(move || cmd.args(args).stdin(Stdio::null()).output().unwrap())
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let during = uploader.await.unwrap();
        assert!(!during.is_empty());
        let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].as_str().unwrap().to_owned();

        let (restored, _) = restore(&srv.data_dir, &id, &d.url, b).await;
        // Everything acknowledged before the backup is there, byte for byte...
        assert_all_read_back(&restored, &f).await;
        // ...and every asset the restored instance lists reads back as it was uploaded: the
        // snapshot never names a blob it does not hold.
        let listed = expect_json(
            restored
                .req(Method::GET, &format!("/api/v1/spaces/{}/assets?limit=1000", f.space), Some(&f.key))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let items = listed["items"].as_array().unwrap();
        assert!(items.len() >= f.assets.len());
        for a in items {
            let id = a["id"].as_str().unwrap();
            let want = f.assets.get(id).or_else(|| during.get(id)).expect("an asset nobody uploaded");
            assert_eq!(&download(&restored, &f.key, id).await, want, "asset {id}");
        }
        audit_verifies(&restored, &f.org);
    }
}
