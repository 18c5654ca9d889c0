//! A rollback of the whole database to an older copy (stop the server, put the copy back,
//! start it again) is named by `audit verify` from the signed checkpoints outside the database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::audit_verify::{checkpoint_files, uploads, verify_json, wait_for_checkpoint};
use crate::both_backends;
use crate::support::*;

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
}
