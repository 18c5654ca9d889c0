//! Deleting a whole organization (`DELETE /api/v1/orgs/{org_id}`): an owner's signed-in,
//! re-authenticated session, with the organization's name typed, purges everything it holds
//! (content crypto-shredded, objects removed), erases the members who belonged to it alone, and
//! leaves a tombstone whose last event `audit verify` still checks. And the refusals.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::audit_verify::wait_for_checkpoint;
use crate::backup::{create, dest, restore};
use crate::both_backends;
use crate::process::one_sentence_error;
use crate::process::poll;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

/// `audit verify --json` over every organization: (exit success, report).
fn verify_all(srv: &TestServer) -> (bool, Value) {
    let out = srv.run(&["audit", "verify", "--json"]);
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

async fn count(db: &mut sqlx::AnyConnection, sql: &str, org: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(org)
        .fetch_one(db)
        .await
        .unwrap()
}

both_backends! {
    async fn deleting_an_organization_purges_all_of_it_and_its_chain_still_verifies(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let v = srv.bootstrap_owner_json();
        let (org, owner, password) = (v["org_id"].as_str().unwrap(), v["api_key"].as_str().unwrap(), v["password"].as_str().unwrap().to_owned());
        // The owner also owns a second organization, which must not be touched.
        let second = srv.bootstrap("owner@example.com", "second org");
        let ada_email = unique_email("ada");
        add_member(&srv, org, &ada_email, "editor", Some(PASSWORD));
        let bob_email = unique_email("bob");
        add_member(&srv, org, &bob_email, "viewer", Some(PASSWORD));
        add_member(&srv, &second.org_id, &bob_email, "viewer", None);
        let space = srv.create_space(owner, org, "Plans").await;
        let a = srv.upload(owner, &space, "merger-plan.txt", pattern(5000, 1)).await["id"].as_str().unwrap().to_owned();
        srv.upload(owner, &space, "budget.xlsx", pattern(7000, 2)).await;
        let link = expect_json(srv.req(Method::POST, &format!("/api/v1/assets/{a}/links"), Some(owner)).json(&json!({"expires_in": 600})).send().await.unwrap(), StatusCode::CREATED).await;
        let link_url = link["url"].as_str().unwrap().to_owned();
        let kept = srv.upload(&second.api_key, &srv.create_space(&second.api_key, &second.org_id, "Other").await, "kept.bin", pattern(3000, 3)).await["id"].as_str().unwrap().to_owned();
        let mut db = srv.db_conn().await;
        let blob_ids: Vec<String> = sqlx::query_scalar("SELECT id FROM blobs WHERE org_id = $1").bind(org).fetch_all(&mut db).await.unwrap();
        assert_eq!(blob_ids.len(), 2);

        let web = sign_in_to(&srv, "owner@example.com", &password, org).await;
        // A wrong name deletes nothing.
        let res = web.send(&srv, Method::DELETE, &format!("/api/v1/orgs/{org}")).json(&json!({"confirm": "acme!"})).send().await.unwrap();
        let problem = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
        assert!(problem["detail"].as_str().unwrap().contains("name"), "{problem}");
        assert_eq!(download(&srv, owner, &a).await, pattern(5000, 1));

        let res = web.send(&srv, Method::DELETE, &format!("/api/v1/orgs/{org}")).json(&json!({"confirm": "acme"})).send().await.unwrap();
        let done = expect_json(res, StatusCode::OK).await;
        assert_eq!(done, json!({"assets": 2, "blobs": 2, "members_erased": 1}));

        // Nothing of it answers: keys, sessions, links.
        assert_eq!(status(srv.req(Method::GET, "/api/v1/me", Some(owner))).await, StatusCode::UNAUTHORIZED);
        assert_eq!(web.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        let path = link_url.split_once("/d/").map(|(_, t)| format!("/d/{t}")).unwrap();
        assert_eq!(srv.client.get(srv.url(&path)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        // Its rows are gone, every blob recorded as shredded; one event is left.
        for (sql, want) in [
            ("SELECT COUNT(*) FROM assets WHERE org_id = $1", 0),
            ("SELECT COUNT(*) FROM blobs WHERE org_id = $1", 0),
            ("SELECT COUNT(*) FROM spaces WHERE org_id = $1", 0),
            ("SELECT COUNT(*) FROM memberships WHERE org_id = $1", 0),
            ("SELECT COUNT(*) FROM api_keys WHERE org_id = $1", 0),
            ("SELECT COUNT(*) FROM links WHERE org_id = $1", 0),
            ("SELECT COUNT(*) FROM audit_events WHERE org_id = $1", 1),
        ] {
            assert_eq!(count(&mut db, sql, org).await, want, "{sql}");
        }
        for id in &blob_ids {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM shredded_blobs WHERE blob_id = $1").bind(id).fetch_one(&mut db).await.unwrap();
            assert_eq!(n, 1, "{id} is not recorded as shredded");
        }
        // The objects themselves are removed too (after the answer).
        let gone = poll(std::time::Duration::from_secs(10), || {
            let files = srv.files();
            (!files.iter().any(|f| blob_ids.iter().any(|id| f.to_string_lossy().contains(id.as_str())))).then_some(())
        }).await;
        assert!(gone.is_some(), "the deleted organization's objects are still stored");

        // Ada belonged to it alone and is erased with it; Bob and the owner keep their other
        // organization, which is untouched.
        expect_problem(login(&srv, &ada_email, PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        sign_in(&srv, &bob_email, PASSWORD).await;
        let again = sign_in_to(&srv, "owner@example.com", &password, &second.org_id).await;
        assert_eq!(again.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(download(&srv, &second.api_key, &kept).await, pattern(3000, 3));

        // Every chain verifies; the deleted one by its last event, the deletion.
        let (ok, report) = verify_all(&srv);
        assert!(ok, "{report}");
        let mine = report["orgs"].as_array().unwrap().iter().find(|o| o["org_id"] == org).unwrap().clone();
        assert_eq!((mine["deleted"].clone(), mine["events"].clone(), mine["intact"].clone()), (json!(true), json!(1), json!(true)), "{mine}");
        let action: String = sqlx::query_scalar("SELECT action FROM audit_events WHERE org_id = $1").bind(org).fetch_one(&mut db).await.unwrap();
        assert_eq!(action, "org.delete");

        // Its name is free again.
        srv.bootstrap("someone@example.com", "acme");
        let (ok, report) = verify_all(&srv);
        assert!(ok, "{report}");
    }

    async fn a_deleted_organizations_tombstone_cannot_be_forged_or_edited(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let v = srv.bootstrap_owner_json();
        let (org, password) = (v["org_id"].as_str().unwrap(), v["password"].as_str().unwrap().to_owned());
        let victim = srv.bootstrap("other@example.com", "victim");
        srv.create_space(&victim.api_key, &victim.org_id, "kept").await;
        let web = sign_in(&srv, "owner@example.com", &password).await;
        let res = web.send(&srv, Method::DELETE, &format!("/api/v1/orgs/{org}")).json(&json!({"confirm": "acme"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert!(verify_all(&srv).0);

        // Someone with database access "deletes" another organization by hand: marked deleted,
        // its events gone but the last. Its last event is no deletion: caught.
        let mut db = srv.db_conn().await;
        let head: i64 = sqlx::query_scalar("SELECT audit_seq FROM orgs WHERE id = $1").bind(&victim.org_id).fetch_one(&mut db).await.unwrap();
        sqlx::query("UPDATE orgs SET deleted_at = 1 WHERE id = $1").bind(&victim.org_id).execute(&mut db).await.unwrap();
        sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq < $2").bind(&victim.org_id).bind(head).execute(&mut db).await.unwrap();
        let (ok, report) = verify_all(&srv);
        assert!(!ok, "{report}");
        let theirs = report["orgs"].as_array().unwrap().iter().find(|o| o["org_id"] == victim.org_id.as_str()).unwrap().clone();
        assert_eq!(theirs["problem_kind"], "chain", "{theirs}");
        assert!(theirs["problem"].as_str().unwrap().contains("not its deletion"), "{theirs}");

        // And the real tombstone's last event, edited, fails too.
        sqlx::query("UPDATE orgs SET deleted_at = NULL WHERE id = $1").bind(&victim.org_id).execute(&mut db).await.unwrap();
        sqlx::query("UPDATE audit_events SET target = 'org_0' WHERE org_id = $1").bind(org).execute(&mut db).await.unwrap();
        let (ok, report) = verify_all(&srv);
        let mine = report["orgs"].as_array().unwrap().iter().find(|o| o["org_id"] == org).unwrap().clone();
        assert!(!ok && mine["intact"] == false, "{mine}");
    }

    async fn deleting_an_organization_is_refused_to_all_but_a_fresh_owner_session_typing_its_name(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let v = srv.bootstrap_owner_json();
        let (org, owner, password) = (v["org_id"].as_str().unwrap(), v["api_key"].as_str().unwrap(), v["password"].as_str().unwrap().to_owned());
        let rival = srv.bootstrap("rival@example.com", "rival");
        let space = srv.create_space(owner, org, "site").await;
        let a = srv.upload(owner, &space, "a.txt", pattern(100, 1)).await["id"].as_str().unwrap().to_owned();
        let admin_email = unique_email("admin");
        add_member(&srv, org, &admin_email, "admin", Some(PASSWORD));
        let admin = sign_in(&srv, &admin_email, PASSWORD).await;
        let body = json!({"confirm": "acme"});
        let path = format!("/api/v1/orgs/{org}");

        // The owner's key: never.
        let res = srv.req(Method::DELETE, &path, Some(owner)).json(&body).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // An admin's session: never.
        let res = admin.send(&srv, Method::DELETE, &path).json(&body).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // Another organization's owner: not found.
        let res = srv.req(Method::DELETE, &format!("/api/v1/orgs/{}", org), Some(&rival.api_key)).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // The owner's session, without a CSRF token: refused.
        let web = sign_in(&srv, "owner@example.com", &password).await;
        let res = web.req(&srv, Method::DELETE, &path).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        // The owner's session, signed in too long ago.
        let mut db = srv.db_conn().await;
        sqlx::query("UPDATE sessions SET reauth_at = 0").execute(&mut db).await.unwrap();
        let res = web.send(&srv, Method::DELETE, &path).json(&body).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "reauthentication_required").await;
        // No body, or another shape: refused.
        let res = web.send(&srv, Method::DELETE, &path).send().await.unwrap();
        assert!(res.status().is_client_error());
        // Nothing was deleted.
        assert_eq!(download(&srv, owner, &a).await, pattern(100, 1));
        let events = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit?limit=1000"), Some(owner))).await;
        assert!(!events.to_string().contains("org.delete"));
        // Re-authenticated, with the name: deleted.
        let res = web.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": password})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = web.send(&srv, Method::DELETE, &path).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(status(srv.req(Method::GET, "/api/v1/me", Some(owner))).await, StatusCode::UNAUTHORIZED);
    }

    async fn an_organization_deleted_after_a_backup_is_deleted_again_by_its_restore(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let v = srv.bootstrap_owner_json();
        let (org, owner, password) = (v["org_id"].as_str().unwrap(), v["api_key"].as_str().unwrap(), v["password"].as_str().unwrap().to_owned());
        let other = srv.bootstrap("other@example.com", "other");
        let space = srv.create_space(owner, org, "Plans").await;
        let a = srv.upload(owner, &space, "plan.txt", pattern(4000, 1)).await["id"].as_str().unwrap().to_owned();
        let other_space = srv.create_space(&other.api_key, &other.org_id, "Kept").await;
        let kept = srv.upload(&other.api_key, &other_space, "kept.txt", pattern(2000, 2)).await["id"].as_str().unwrap().to_owned();
        let d = dest();
        let id = create(&srv, &d)["id"].as_str().unwrap().to_owned();

        let web = sign_in(&srv, "owner@example.com", &password).await;
        let res = web.send(&srv, Method::DELETE, &format!("/api/v1/orgs/{org}")).json(&json!({"confirm": "acme"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let pruned = srv.run_json(&["backup", "prune", "--from", &d.url, "--json"]);
        assert_eq!(pruned["shred"]["rewritten"], 1, "{pruned}");
        let storage = srv.run_json(&["storage", "status", "--json"]);
        assert_eq!(storage["backups"]["shreds_pending"], 0, "{storage}");

        let (restored, report) = restore(&srv.data_dir, &id, &d.url, b).await;
        assert_eq!(report["deleted_orgs"], 1, "{report}");
        // Its content had no key left in the backup, and the organization is deleted again:
        // its key answers nothing; the other organization is whole.
        assert_eq!(status(restored.req(Method::GET, &format!("/api/v1/assets/{a}"), Some(owner))).await, StatusCode::UNAUTHORIZED);
        assert_eq!(download(&restored, &other.api_key, &kept).await, pattern(2000, 2));
        let mut db = restored.db_conn().await;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spaces WHERE org_id = $1").bind(org).fetch_one(&mut db).await.unwrap();
        assert_eq!(n, 0);
        let (ok, report) = verify_all(&restored);
        assert!(ok, "{report}");
    }

    async fn the_operator_deletes_an_organization_from_the_command_line(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let space = srv.create_space(owner, org, "Plans").await;
        let a = srv.upload(owner, &space, "plan.txt", pattern(900, 1)).await["id"].as_str().unwrap().to_owned();
        let line = one_sentence_error(&srv.run(&["admin", "delete-org", "--org", org, "--confirm", "Acme"]));
        assert!(line.contains("name"), "{line}");
        assert_eq!(download(&srv, owner, &a).await, pattern(900, 1));
        let done = srv.run_json(&["admin", "delete-org", "--org", org, "--confirm", "acme", "--json"]);
        assert_eq!(done, json!({"org_id": org, "assets": 1, "blobs": 1, "members_erased": 1}));
        // Done by another process: the server notices within its resolved-key window (100 ms,
        // docs/threat-model.md).
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        assert_eq!(status(srv.req(Method::GET, "/api/v1/me", Some(owner))).await, StatusCode::UNAUTHORIZED);
        let (ok, report) = verify_all(&srv);
        assert!(ok && report["orgs"][0]["deleted"] == true, "{report}");
        // Deleted once: a second time finds nothing.
        let line = one_sentence_error(&srv.run(&["admin", "delete-org", "--org", org, "--confirm", "acme"]));
        assert!(line.contains("not found"), "{line}");
    }

    async fn an_organization_removed_behind_the_servers_back_is_named_by_audit_verify(b: Backend) {
        let Some(srv) = TestServer::start_with(b, |s| s.instance.service.audit_checkpoint_interval = std::time::Duration::from_secs(1)).await else { return };
        let kept = srv.bootstrap("kept@example.com", "kept");
        let gone = srv.bootstrap("gone@example.com", "gone");
        let mut db = srv.db_conn().await;
        let seq: i64 = sqlx::query_scalar("SELECT audit_seq FROM orgs WHERE id = $1").bind(&gone.org_id).fetch_one(&mut db).await.unwrap();
        wait_for_checkpoint(&srv.data_dir, &gone.org_id, u64::try_from(seq).unwrap()).await;
        assert!(verify_all(&srv).0);
        // Someone with database access removes the organization outright, row and all.
        for sql in [
            "DELETE FROM api_keys WHERE org_id = $1",
            "DELETE FROM memberships WHERE org_id = $1",
            "DELETE FROM audit_events WHERE org_id = $1",
            "DELETE FROM orgs WHERE id = $1",
        ] {
            sqlx::query(sql).bind(&gone.org_id).execute(&mut db).await.unwrap();
        }
        let (ok, report) = verify_all(&srv);
        assert!(!ok, "{report}");
        let theirs = report["orgs"].as_array().unwrap().iter().find(|o| o["org_id"] == gone.org_id.as_str()).unwrap().clone();
        assert_eq!(theirs["problem_kind"], "rolled_back", "{theirs}");
        assert_eq!(theirs["missing"], json!({"from": 1, "to": seq}), "{theirs}");
        assert!(theirs["problem"].as_str().unwrap().contains("not in the database"), "{theirs}");
        // The other organization is reported intact.
        let other = report["orgs"].as_array().unwrap().iter().find(|o| o["org_id"] == kept.org_id.as_str()).unwrap().clone();
        assert_eq!(other["intact"], true, "{other}");
    }
}
