//! Backups (issue 11, F17): `strongroom backup create|list|verify|restore|prune` through the
//! real binary against a running instance, restored into a new data dir (and database) that a
//! second instance then serves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use strongroom_testkit::TestDb;

use crate::both_backends;
use crate::support::{BIN, Backend, TestServer, download, expect_json, pattern};

/// A backup destination folder.
pub(crate) struct Dest {
    dir: tempfile::TempDir,
    pub(crate) url: String,
}

pub(crate) fn dest() -> Dest {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("fs://{}", dir.path().join("backups").display());
    Dest { dir, url }
}

impl Dest {
    /// Every stored object file of the destination, by name.
    pub(crate) fn objects(&self) -> BTreeMap<String, PathBuf> {
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
pub(crate) struct Fixture {
    pub(crate) key: String,
    pub(crate) org: String,
    pub(crate) space: String,
    /// asset id -> bytes uploaded.
    pub(crate) assets: BTreeMap<String, Vec<u8>>,
}

pub(crate) async fn fixture(srv: &TestServer, sizes: &[usize]) -> Fixture {
    let boot = srv.bootstrap("owner@example.com", "acme");
    let space = srv.create_space(&boot.api_key, &boot.org_id, "Docs").await;
    let mut assets = BTreeMap::new();
    for (i, len) in sizes.iter().enumerate() {
        let bytes = pattern(*len, i as u64 + 1);
        let a = srv
            .upload(
                &boot.api_key,
                &space,
                &format!("file-{i}.bin"),
                bytes.clone(),
            )
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

pub(crate) const SIZES: &[usize] = &[0, 1, 4096, 65_536, 200_000, 1_000_003];

/// `backup restore` into a new data dir (holding the source's root key) and, on PostgreSQL, a
/// new database; then an instance serving it.
pub(crate) async fn restore(
    key_dir: &Path,
    id: &str,
    from: &str,
    backend: Backend,
) -> (TestServer, Value) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(key_dir.join("master.key"), data.join("master.key")).unwrap();
    let db = TestDb::new(backend).await.unwrap();
    let out = restore_cmd(id, from, &data, db.url.as_deref())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    (TestServer::start_in(dir, data, db).await, report)
}

pub(crate) fn restore_cmd(
    id: &str,
    from: &str,
    data: &Path,
    database_url: Option<&str>,
) -> Command {
    let mut c = Command::new(BIN);
    c.args([
        "backup",
        "restore",
        id,
        "--from",
        from,
        "--json",
        "--data-dir",
    ])
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

pub(crate) fn create(srv: &TestServer, d: &Dest) -> Value {
    srv.run_json(&["backup", "create", "--to", &d.url, "--json"])
}

pub(crate) fn verify(srv: &TestServer, d: &Dest, id: &str) -> (bool, Value) {
    let out = srv.run(&["backup", "verify", id, "--from", &d.url, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

pub(crate) async fn assert_all_read_back(srv: &TestServer, f: &Fixture) {
    for (id, bytes) in &f.assets {
        assert_eq!(&download(srv, &f.key, id).await, bytes, "asset {id}");
    }
}

pub(crate) fn audit_verifies(srv: &TestServer, org: &str) {
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

/// The documented way off the embedded default: a backup of a SQLite instance restored into
/// PostgreSQL serves the same bytes, and its audit chain verifies there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_restores_into_postgres() {
    let Some(srv) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let f = fixture(&srv, SIZES).await;
    let d = dest();
    let made = create(&srv, &d);
    let (restored, report) = restore(
        &srv.data_dir,
        made["id"].as_str().unwrap(),
        &d.url,
        Backend::Postgres,
    )
    .await;
    assert!(
        restored.db.url.is_some(),
        "the restore went into PostgreSQL"
    );
    assert_eq!(report["blobs"], SIZES.len() as u64, "{report}");
    assert_all_read_back(&restored, &f).await;
    audit_verifies(&restored, &f.org);
    // Sessions and keys came along: the owner's key works, and a new key can be made.
    let key = restored.create_key(&f.org, "viewer").1;
    let res = restored
        .req(
            Method::GET,
            &format!("/api/v1/spaces/{}/assets", f.space),
            Some(&key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

fn flip_byte(path: &Path, at: u64) -> impl FnOnce() {
    let original = std::fs::read(path).unwrap();
    let mut damaged = original.clone();
    let i = usize::try_from(at).unwrap().min(damaged.len() - 1);
    damaged[i] ^= 0x01;
    std::fs::write(path, &damaged).unwrap();
    let path = path.to_owned();
    move || std::fs::write(path, original).unwrap()
}

/// Every regular file under `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

both_backends! {
    async fn verify_names_the_first_damaged_object(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let f = fixture(&srv, &[300_000, 5]).await;
        let d = dest();
        let id = create(&srv, &d)["id"].as_str().unwrap().to_owned();
        let objects = d.objects();
        let big = f.assets.iter().find(|(_, v)| v.len() == 300_000).map(|(k, _)| k.clone()).unwrap();
        let mut conn = srv.db_conn().await;
        let blob: String = sqlx::query_scalar("SELECT blob_id FROM assets WHERE id = $1")
            .bind(&big)
            .fetch_one(&mut conn)
            .await
            .unwrap();

        // One flipped bit in the middle of a blob's ciphertext.
        let undo = flip_byte(&objects[&blob], 150_000);
        let (ok, report) = verify(&srv, &d, &id);
        assert!(!ok, "{report}");
        assert_eq!(report["first_bad"]["object"], blob.as_str(), "{report}");
        assert!(report["first_bad"]["problem"].as_str().unwrap().contains("integrity"), "{report}");
        undo();

        // In the database snapshot.
        let db = format!("db-{id}");
        let undo = flip_byte(&objects[&db], 40);
        let (ok, report) = verify(&srv, &d, &id);
        assert!(!ok);
        assert_eq!(report["first_bad"]["object"], db.as_str(), "{report}");
        // A damaged snapshot is refused by restore too, with the object named.
        let target = tempfile::tempdir().unwrap();
        std::fs::copy(srv.data_dir.join("master.key"), target.path().join("master.key")).unwrap();
        let out = restore_cmd(&id, &d.url, target.path(), None).output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(&db), "{}", String::from_utf8_lossy(&out.stderr));
        // The blobs were being copied beside the rows: none of them is left behind.
        assert_eq!(files_under(&target.path().join("blobs")), Vec::<PathBuf>::new());
        undo();

        // In the manifest, and in the key set.
        for name in [format!("manifest-{id}"), format!("keys-{id}")] {
            let undo = flip_byte(&objects[&name], 20);
            let (ok, report) = verify(&srv, &d, &id);
            assert!(!ok);
            assert_eq!(report["first_bad"]["object"], name.as_str(), "{report}");
            undo();
        }

        // A missing blob.
        let gone = objects[&blob].clone();
        let saved = std::fs::read(&gone).unwrap();
        std::fs::remove_file(&gone).unwrap();
        let (ok, report) = verify(&srv, &d, &id);
        assert!(!ok);
        assert_eq!(report["first_bad"]["object"], blob.as_str());
        assert_eq!(report["first_bad"]["problem"], "missing");
        // Restore stops on it, names it, and leaves no copied blob behind (the rows loaded
        // beside the copies stay in the target, which the message says to start again from).
        let target = tempfile::tempdir().unwrap();
        std::fs::copy(srv.data_dir.join("master.key"), target.path().join("master.key")).unwrap();
        let out = restore_cmd(&id, &d.url, target.path(), None).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(&format!("lacks blob {blob}")), "{stderr}");
        assert_eq!(files_under(&target.path().join("blobs")), Vec::<PathBuf>::new());
        std::fs::write(&gone, saved).unwrap();
        let (ok, report) = verify(&srv, &d, &id);
        assert!(ok, "{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_halfway_is_never_listed() {
    let Some(srv) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let f = fixture(&srv, &[1 << 20; 48]).await;
    let d = dest();
    let mut child = srv
        .cli()
        .args(["backup", "create", "--to", &d.url, "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as its first blob is at the destination.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !d.objects().keys().any(|n| n.starts_with("blb_")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no blob was ever copied"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup ended before it could be killed"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(d.objects().keys().all(|n| !n.starts_with("manifest-")));

    // A copy is under its blob's name (where the next backup takes it for complete) only if it
    // is whole: the stored blob byte for byte. Unpublished copies are temp files.
    let stored: BTreeMap<String, PathBuf> = srv
        .object_files()
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    for (name, path) in d.objects() {
        if name.starts_with("blb_") && !name.ends_with(".tmp") {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(&stored[&name]).unwrap(),
                "{name} is at the destination but not whole"
            );
        }
    }
    let listed = srv.run_json(&["backup", "list", "--from", &d.url, "--json"]);
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");
    // The next backup completes and verifies.
    let made = create(&srv, &d);
    assert_eq!(made["objects"], f.assets.len() as u64 + 1);
    let listed = srv.run_json(&["backup", "list", "--from", &d.url, "--json"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let (ok, report) = verify(&srv, &d, made["id"].as_str().unwrap());
    assert!(ok, "{report}");

    // Prune leaves the killed backup's temp files while they are young (a backup may still be
    // writing them), and removes them once they are older than its grace of a day.
    let temps = || -> Vec<PathBuf> {
        d.objects()
            .into_iter()
            .filter(|(n, _)| n.ends_with(".tmp"))
            .map(|(_, p)| p)
            .collect()
    };
    // Beside what the kill left (the kill lands while copies are written, as a rule), one
    // planted like it, so the check never rests on the kill's timing.
    let fan = std::fs::read_dir(d.dir.path().join("backups").join("objects"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::write(fan.join("blb_0planted.AbCdEf.tmp"), b"partial").unwrap();
    let left = temps();
    srv.run_json(&["backup", "prune", "--from", &d.url, "--json"]);
    assert_eq!(temps().len(), left.len());
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    for p in &left {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
    }
    srv.run_json(&["backup", "prune", "--from", &d.url, "--json"]);
    assert!(temps().is_empty(), "{:?}", temps());
    let (ok, report) = verify(&srv, &d, made["id"].as_str().unwrap());
    assert!(ok, "{report}");
}
