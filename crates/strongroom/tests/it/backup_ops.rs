//! Backups, the operator's side: prune, refusals of restore, S3 destinations, the schedule, the
//! owner's status view and configuration errors (the helpers are in `backup.rs`).

use std::process::Command;
use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::backup::{
    SIZES, assert_all_read_back, audit_verifies, create, dest, fixture, restore, restore_cmd,
    verify,
};
use crate::both_backends;
use crate::support::{BIN, Backend, TestServer, expect_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_the_newest_and_removes_what_no_kept_backup_names() {
    let toml_dest = dest();
    let toml = format!(
        "[backup]\ndestinations = [\"{}\"]\nkeep_daily = 1\nkeep_weekly = 0\n",
        toml_dest.url
    );
    let Some(srv) = TestServer::start_with_config(Backend::Sqlite, &toml).await else {
        return;
    };
    let d = toml_dest;
    let f = fixture(&srv, &[10_000, 20_000]).await;
    // Configured destinations are the default of every command.
    let first = srv.run_json(&["backup", "create", "--json"]);
    let doomed = f.assets.keys().next().unwrap().clone();
    let mut conn = srv.db_conn().await;
    let doomed_blob: String = sqlx::query_scalar("SELECT blob_id FROM assets WHERE id = $1")
        .bind(&doomed)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let res = srv
        .req(
            Method::DELETE,
            &format!("/api/v1/assets/{doomed}?purge=true"),
            Some(&f.key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let second = srv.run_json(&["backup", "create", "--json"]);
    assert_eq!(second["objects"], 2);
    // The purged blob's object is only named by the first backup. Objects younger than a day
    // are left alone (a backup may be writing them): age every file of the destination.
    let old = SystemTime::now() - Duration::from_secs(2 * 86_400);
    for path in d.objects().values() {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    assert!(d.objects().contains_key(&doomed_blob));

    let pruned = srv.run_json(&["backup", "prune", "--json"]);
    let report = &pruned["destinations"][0];
    assert_eq!(
        report["kept"],
        serde_json::json!([second["id"]]),
        "{pruned}"
    );
    assert_eq!(
        report["removed"],
        serde_json::json!([first["id"]]),
        "{pruned}"
    );
    let left = d.objects();
    assert!(
        !left.contains_key(&doomed_blob),
        "the unreferenced blob is gone"
    );
    for suffix in ["manifest", "db", "keys"] {
        assert!(!left.contains_key(&format!("{suffix}-{}", first["id"].as_str().unwrap())));
        assert!(left.contains_key(&format!("{suffix}-{}", second["id"].as_str().unwrap())));
    }
    let listed = srv.run_json(&["backup", "list", "--json"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let (ok, report) = verify(&srv, &d, second["id"].as_str().unwrap());
    assert!(ok, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_used_target_and_another_root_key() {
    let Some(srv) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    fixture(&srv, &[1000]).await;
    let d = dest();
    let id = create(&srv, &d)["id"].as_str().unwrap().to_owned();

    // Onto the running instance's own data dir: refused, nothing touched.
    let before = std::fs::read(srv.data_dir.join("strongroom.db"))
        .unwrap()
        .len();
    let out = restore_cmd(&id, &d.url, &srv.data_dir, None)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(
        std::fs::read(srv.data_dir.join("strongroom.db"))
            .unwrap()
            .len(),
        before
    );

    // Without a root key: one clear sentence.
    let empty = tempfile::tempdir().unwrap();
    let out = restore_cmd(&id, &d.url, &empty.path().join("new"), None)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no root key"));

    // Under another root key: the manifest does not open.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("master.key"), "11".repeat(32)).unwrap();
    std::fs::set_permissions(
        other.path().join("master.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = restore_cmd(&id, &d.url, other.path(), None)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("manifest-{id}")) && err.contains("root key"),
        "{err}"
    );
    assert!(
        !other.path().join("strongroom.db").exists(),
        "nothing was created"
    );

    // An id that is not one, and one that is not there.
    let out = restore_cmd("nope", &d.url, other.path(), None)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a backup id"));
    let out = srv.run(&[
        "backup",
        "verify",
        "bkp_0192aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "--from",
        &d.url,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no backup"));
}

/// Backups to an S3 bucket (the s3s-fs test server, which checks signatures), configured as
/// an operator would with a secret file; and to a folder as well, in one `backup create`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_go_to_an_s3_bucket_and_a_folder_and_restore_from_the_bucket() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(s3) = strongroom_testkit::TestS3::from_env() else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("s3.secret");
    std::fs::write(&secret_file, &s3.secret_access_key).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let prefix = format!(
        "backup-{}",
        strongroom_domain::UserId::generate()
            .as_str()
            .trim_start_matches("usr_")
    );
    let bucket = s3.url_with_prefix(&prefix);
    let folder = dest();
    let toml = format!(
        "[backup]\ndestinations = [\"{bucket}\", \"{}\"]\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n",
        folder.url,
        s3.access_key_id,
        secret_file.display()
    );
    let Some(srv) = TestServer::start_with_config(Backend::Sqlite, &toml).await else {
        return;
    };
    let f = fixture(&srv, SIZES).await;
    let made = srv.run_json(&["backup", "create", "--json"]);
    let items = made["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{made}");
    assert_eq!(items[0]["destination"], bucket.as_str());
    assert_eq!(items[1]["destination"], folder.url.as_str());
    let id = items[0]["id"].as_str().unwrap().to_owned();

    // Nothing in the bucket's files is readable: no filename, no plaintext.
    let files = strongroom_testkit::files_under(&s3.dir_of(&prefix));
    assert!(files.len() >= SIZES.len() + 3, "{files:?}");
    let biggest = f.assets.values().max_by_key(|v| v.len()).unwrap();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        assert!(!crate::support::contains(&bytes, b"file-5.bin"));
        assert!(!crate::support::contains(&bytes, &biggest[..64]));
    }
    let listed = srv.run_json(&["backup", "list", "--json"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");
    let out = srv.run(&["backup", "verify", &id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Restore from the bucket alone (credentials from the environment this time).
    let (restored, report) = restore(&srv.data_dir, &id, &bucket, Backend::Sqlite).await;
    assert_eq!(report["blobs"], SIZES.len() as u64, "{report}");
    assert_all_read_back(&restored, &f).await;
    audit_verifies(&restored, &f.org);
}

async fn org_view(srv: &TestServer, key: &str, org: &str) -> Value {
    expect_json(
        srv.req(Method::GET, &format!("/api/v1/orgs/{org}"), Some(key))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

both_backends! {
    async fn only_owners_see_the_backup_status_of_the_instance(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let f = fixture(&srv, &[10]).await;
        let d = dest();
        let id = create(&srv, &d)["id"].as_str().unwrap().to_owned();
        let (ok, _) = verify(&srv, &d, &id);
        assert!(ok);
        let view = org_view(&srv, &f.key, &f.org).await;
        assert_eq!(view["backups"]["last_backup"]["backup_id"], id.as_str(), "{view}");
        assert_eq!(view["backups"]["last_backup"]["ok"], true);
        assert_eq!(view["backups"]["last_verified"]["backup_id"], id.as_str());
        assert_eq!(view["backups"]["last_restore"], Value::Null);
        // Backups cover every tenant: no destination is shown to an organization.
        assert!(!view.to_string().contains(&d.url), "{view}");

        // An admin, and an owner key limited to one space, see the organization but not this.
        let (_, admin) = srv.create_key(&f.org, "admin");
        let view = org_view(&srv, &admin, &f.org).await;
        assert!(view.get("backups").is_none(), "{view}");
        let res = srv
            .req(Method::POST, &format!("/api/v1/orgs/{}/api-keys", f.org), Some(&f.key))
            .json(&serde_json::json!({"name": "limited", "role": "owner", "spaces": [f.space]}))
            .send()
            .await
            .unwrap();
        let limited = expect_json(res, StatusCode::CREATED).await["api_key"].as_str().unwrap().to_owned();
        let res = srv.req(Method::GET, &format!("/api/v1/orgs/{}", f.org), Some(&limited)).send().await.unwrap();
        if res.status() == StatusCode::OK {
            let view: Value = res.json().await.unwrap();
            assert!(view.get("backups").is_none(), "{view}");
        } else {
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
        }
    }
}

/// With `schedule` set, the server takes a backup on its own when none is recent enough (at
/// start here: there is none), and records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_backup_runs_without_anyone_asking() {
    let d = dest();
    let toml = format!("[backup]\ndestinations = [\"{}\"]\nschedule = 24\n", d.url);
    let Some(srv) = TestServer::start_with_config(Backend::Sqlite, &toml).await else {
        return;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = srv.run_json(&["backup", "list", "--json"]);
        if listed["items"].as_array().is_some_and(|i| i.len() == 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled backup: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = srv.run_json(&["storage", "status", "--json"]);
    assert_eq!(status["backups"]["last_backup"]["ok"], true, "{status}");
    assert_eq!(status["backups"]["interval_hours"], 24);
    // A second round right away finds the backup recent and takes none.
    assert!(srv.service.backups.scheduled().await.unwrap().is_none());
}

#[test]
fn a_bad_backup_section_stops_the_start_with_one_sentence() {
    for (toml, says) in [
        (
            "[backup]\nschedule = \"hourly\"\ndestinations = [\"fs:///tmp/x\"]\n",
            "schedule must be",
        ),
        ("[backup]\nschedule = \"daily\"\n", "no destinations"),
        (
            "[backup]\ndestinations = [\"ftp://host/x\"]\n",
            "backup destination ftp://host/x",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.toml");
        std::fs::write(&config, toml).unwrap();
        let out = Command::new(BIN)
            .args(["backup", "list", "--data-dir"])
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .env_remove("STRONGROOM_DATABASE_URL")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{toml}: {err}");
    }
}
