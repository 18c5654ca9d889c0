//! Erasure of a person (`DELETE /api/v1/me`, an owner's `POST .../members/{id}/erase`): their
//! account holds nothing about them afterwards, the organizations keep their content, their
//! past audit events keep who, what and when but no longer open their address or detail, and
//! every chain still verifies, on the server and offline. And the refusals: API keys, other
//! roles, a stale sign-in, the only owner, someone who belongs elsewhere too.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::audit_export::{export, offline_verify};
use crate::backup::{assert_all_read_back, audit_verifies, create, dest, fixture, restore};
use crate::both_backends;
use crate::process::one_sentence_error;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

/// Every event of `org`'s trail.
async fn trail(srv: &TestServer, key: &str, org: &str) -> Vec<Value> {
    let v = get_json(srv.req(
        Method::GET,
        &format!("/api/v1/orgs/{org}/audit?limit=1000"),
        Some(key),
    ))
    .await;
    v["items"].as_array().unwrap().clone()
}

/// Asserts `org`'s chain verifies with `audit verify` and with the offline verifier.
async fn chain_verifies(srv: &TestServer, key: &str, org: &str) {
    let out = srv.run(&["audit", "verify", "--org", org, "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success() && report["intact"] == true, "{report}");
    let (ok, stdout, stderr) = offline_verify(&export(srv, key, org).await);
    assert!(ok, "offline: {stdout} {stderr}");
}

both_backends! {
    async fn erasing_yourself_leaves_nothing_of_you_and_every_chain_verifiable(b: Backend) {
        let Some(srv) = TestServer::start_with_mail(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let second = srv.bootstrap("owner@example.com", "second org");
        let ada_email = unique_email("ada");
        let ada = add_member(&srv, org, &ada_email, "admin", Some(PASSWORD));
        add_member(&srv, &second.org_id, &ada_email, "viewer", None);
        let space = srv.create_space(owner, org, "site").await;

        // Ada signs in, uploads a file, makes a key (both named with a marker) and uses it.
        let web = sign_in(&srv, &ada_email, PASSWORD).await;
        let res = web.send(&srv, Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=ADAMARKER-plan.txt")).body(pattern(300, 3)).send().await.unwrap();
        let asset = expect_json(res, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
        let made = web.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/api-keys")).json(&json!({"name": "ADAMARKER laptop", "role": "viewer"})).send().await.unwrap();
        let ada_key = expect_json(made, StatusCode::CREATED).await["api_key"].as_str().unwrap().to_owned();
        assert_eq!(status(srv.req(Method::GET, &format!("/api/v1/assets/{asset}/content"), Some(&ada_key))).await, StatusCode::OK);

        // Before: her events show her address and what she typed.
        let before = trail(&srv, owner, org).await;
        let hers: Vec<&Value> = before.iter().filter(|e| e["actor"] == format!("user:{ada}")).collect();
        assert!(hers.iter().any(|e| e["action"] == "asset.create" && e["detail"]["filename"] == "ADAMARKER-plan.txt"), "{hers:?}");
        assert!(hers.iter().all(|e| e["ip"] == "127.0.0.1" && e["erased"] == false), "{hers:?}");
        chain_verifies(&srv, owner, org).await;

        // She erases her account (freshly signed in, so recently authenticated).
        let res = web.send(&srv, Method::DELETE, "/api/v1/me").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let cleared = res.headers()["set-cookie"].to_str().unwrap();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");

        // Nothing of hers works any more.
        assert_eq!(web.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        assert_eq!(status(srv.req(Method::GET, "/api/v1/me", Some(&ada_key))).await, StatusCode::UNAUTHORIZED);
        let res = srv.client.post(srv.url("/api/v1/auth/login")).json(&json!({"email": ada_email, "password": PASSWORD})).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        for o in [org, second.org_id.as_str()] {
            let key = if o == org { owner } else { second.api_key.as_str() };
            let members = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{o}/members"), Some(key))).await;
            assert!(!members.to_string().contains(&ada), "{members}");
        }
        // Her key is revoked and renamed; its marker is gone from the key list.
        let keys = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/api-keys"), Some(owner))).await;
        assert!(!keys.to_string().contains("ADAMARKER"), "{keys}");

        // The organization keeps its content.
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{asset}/content"), Some(owner)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.bytes().await.unwrap().to_vec(), pattern(300, 3));

        // Her events keep who, what and when; their address and detail are gone for good.
        let after = trail(&srv, owner, org).await;
        let hers: Vec<&Value> = after.iter().filter(|e| e["actor"] == format!("user:{ada}")).collect();
        assert!(hers.len() >= 3, "{hers:?}");
        for e in &hers {
            assert_eq!(e["erased"], true, "{e}");
            assert_eq!(e["ip"], "", "{e}");
            assert!(e["detail"].is_null(), "{e}");
        }
        assert!(!Value::Array(after.clone()).to_string().contains("ADAMARKER"));
        let actions: Vec<&str> = hers.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for want in ["auth.login", "asset.create", "apikey.create", "user.erase"] {
            assert!(actions.contains(&want), "{want} missing from {actions:?}");
        }
        // Her key's reads are hers too.
        assert!(after.iter().any(|e| e["action"] == "asset.read" && e["erased"] == true));
        // The owner's own events are untouched.
        assert!(after.iter().filter(|e| e["actor"] == "cli").all(|e| e["erased"] == false));
        // The second organization records the erasure as well.
        let other = trail(&srv, &second.api_key, &second.org_id).await;
        assert!(other.iter().any(|e| e["action"] == "user.erase" && e["target"] == ada.as_str()), "{other:?}");

        // Every chain still verifies, here and offline; the export marks what was erased.
        chain_verifies(&srv, owner, org).await;
        chain_verifies(&srv, &second.api_key, &second.org_id).await;
        let lines = export(&srv, owner, org).await;
        let erased: Vec<Value> = lines.iter().map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["erased"] == true).collect();
        assert!(erased.len() >= 3 && erased.iter().all(|l| l["ip"].is_null() && l["salt"].is_null()));

        // Her address is free again: she can be invited afresh.
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/invitations"), Some(owner)).json(&json!({"email": ada_email, "role": "viewer"})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);

        // The database keeps no key to her events and no trace of her address.
        let mut db = srv.db_conn().await;
        let key: Option<String> = sqlx::query_scalar("SELECT person_key FROM users WHERE id = $1").bind(&ada).fetch_one(&mut db).await.unwrap();
        assert!(key.is_none());
        let sessions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE user_id = $1").bind(&ada).fetch_one(&mut db).await.unwrap();
        assert_eq!(sessions, 0);
    }

    async fn a_tampered_personal_part_fails_verification(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let ada_email = unique_email("ada");
        add_member(&srv, org, &ada_email, "viewer", Some(PASSWORD));
        sign_in(&srv, &ada_email, PASSWORD).await;
        sign_in(&srv, &ada_email, PASSWORD).await;
        chain_verifies(&srv, owner, org).await;
        // The second sign-in's sealed part put in place of the first's: it does not open there.
        let mut db = srv.db_conn().await;
        let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_events WHERE org_id = $1 AND action = 'auth.login' ORDER BY seq").bind(org).fetch_all(&mut db).await.unwrap();
        assert_eq!(seqs.len(), 2);
        sqlx::query("UPDATE audit_events SET personal = (SELECT personal FROM audit_events WHERE org_id = $1 AND seq = $2) WHERE org_id = $1 AND seq = $3")
            .bind(org).bind(seqs[1]).bind(seqs[0]).execute(&mut db).await.unwrap();
        let seq = seqs[0] + 1;
        let out = srv.run(&["audit", "verify", "--org", org, "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!out.status.success(), "{report}");
        assert_eq!(report["orgs"][0]["problem_kind"], "chain", "{report}");
        assert_eq!(report["orgs"][0]["first_broken_seq"], seq - 1, "{report}");
    }

    async fn erasure_is_refused_without_a_fresh_sign_in_or_as_the_only_owner(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let v = srv.bootstrap_owner_json();
        let (org, owner, owner_password) = (v["org_id"].as_str().unwrap(), v["api_key"].as_str().unwrap(), v["password"].as_str().unwrap().to_owned());
        // An API key, even the owner's, never erases.
        let res = srv.req(Method::DELETE, "/api/v1/me", Some(owner)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // The only owner cannot leave the organization without one.
        let web = sign_in(&srv, "owner@example.com", &owner_password).await;
        let res = web.send(&srv, Method::DELETE, "/api/v1/me").send().await.unwrap();
        let problem = expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        assert!(problem["detail"].as_str().unwrap().contains("only owner"), "{problem}");
        // A sign-in older than the re-authentication window is not enough.
        let email = unique_email("stale");
        let user = add_member(&srv, org, &email, "editor", Some(PASSWORD));
        let stale = sign_in(&srv, &email, PASSWORD).await;
        let mut db = srv.db_conn().await;
        sqlx::query("UPDATE sessions SET reauth_at = 0").execute(&mut db).await.unwrap();
        let res = stale.send(&srv, Method::DELETE, "/api/v1/me").send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "reauthentication_required").await;
        // Nothing changed: they still sign in, and nothing of theirs was erased.
        sign_in(&srv, &email, PASSWORD).await;
        let events = trail(&srv, owner, org).await;
        assert!(events.iter().all(|e| e["erased"] == false && e["action"] != "user.erase"));
        // After re-authenticating, it works.
        let res = stale.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": PASSWORD})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = stale.send(&srv, Method::DELETE, "/api/v1/me").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let events = trail(&srv, owner, org).await;
        assert!(events.iter().any(|e| e["action"] == "user.erase" && e["target"] == user.as_str()));
        // And the second time there is no one left to erase (the session went with the account).
        let res = stale.send(&srv, Method::DELETE, "/api/v1/me").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    async fn an_owner_erases_a_member_of_their_organization_alone(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let v = srv.bootstrap_owner_json();
        let (org, owner, owner_password) = (v["org_id"].as_str().unwrap(), v["api_key"].as_str().unwrap(), v["password"].as_str().unwrap().to_owned());
        let owner_id = v["user_id"].as_str().unwrap().to_owned();
        let rival = srv.bootstrap("rival@example.com", "rival");
        let bob_email = unique_email("bob");
        let bob = add_member(&srv, org, &bob_email, "editor", Some(PASSWORD));
        let bob_web = sign_in(&srv, &bob_email, PASSWORD).await;
        // Someone who also belongs to the rival organization.
        let carol_email = unique_email("carol");
        let carol = add_member(&srv, org, &carol_email, "viewer", Some(PASSWORD));
        add_member(&srv, &rival.org_id, &carol_email, "viewer", None);
        let admin_email = unique_email("admin");
        add_member(&srv, org, &admin_email, "admin", Some(PASSWORD));
        let admin = sign_in(&srv, &admin_email, PASSWORD).await;
        let erase = |who: &str| format!("/api/v1/orgs/{org}/members/{who}/erase");

        // Not an owner: refused, even an admin's session.
        let res = admin.send(&srv, Method::POST, &erase(&bob)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        // Not a session: refused, even the owner's key.
        let res = srv.req(Method::POST, &erase(&bob), Some(owner)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let web = sign_in(&srv, "owner@example.com", &owner_password).await;
        // Another organization's owner cannot reach this one's members.
        let res = web.send(&srv, Method::POST, &format!("/api/v1/orgs/{}/members/{bob}/erase", rival.org_id)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // Someone who belongs elsewhere too erases their own account.
        let res = web.send(&srv, Method::POST, &erase(&carol)).send().await.unwrap();
        let problem = expect_problem(res, StatusCode::CONFLICT, "conflict").await;
        assert!(problem["detail"].as_str().unwrap().contains("other organizations"), "{problem}");
        // Not oneself through this route.
        let res = web.send(&srv, Method::POST, &erase(&owner_id)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        // Not someone who is not a member.
        let res = web.send(&srv, Method::POST, &erase(&format!("usr_{}", "0".repeat(32)))).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        // A stale sign-in is not enough.
        let mut db = srv.db_conn().await;
        sqlx::query("UPDATE sessions SET reauth_at = 0").execute(&mut db).await.unwrap();
        let res = web.send(&srv, Method::POST, &erase(&bob)).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "reauthentication_required").await;
        assert_eq!(bob_web.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap().status(), StatusCode::OK);

        // Re-authenticated, the owner erases Bob.
        let res = web.send(&srv, Method::POST, "/api/v1/auth/reauth").json(&json!({"password": owner_password})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let res = web.send(&srv, Method::POST, &erase(&bob)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(bob_web.req(&srv, Method::GET, "/api/v1/me").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
        let events = trail(&srv, owner, org).await;
        let erase_event = events.iter().find(|e| e["action"] == "user.erase").unwrap();
        // The owner's event about it is the owner's, and readable.
        assert_eq!(erase_event["actor"], format!("user:{owner_id}"));
        assert_eq!(erase_event["target"], bob.as_str());
        assert_eq!(erase_event["detail"]["by"], "owner");
        assert!(events.iter().filter(|e| e["actor"] == format!("user:{bob}")).all(|e| e["erased"] == true));
        // Carol is untouched.
        sign_in(&srv, &carol_email, PASSWORD).await;
        chain_verifies(&srv, owner, org).await;
    }

    async fn an_erasure_reaches_a_restore_of_an_earlier_backup(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let f = fixture(&srv, &[1000, 2000]).await;
        let ada_email = unique_email("ada");
        let ada = add_member(&srv, &f.org, &ada_email, "editor", Some(PASSWORD));
        let web = sign_in(&srv, &ada_email, PASSWORD).await;
        let res = web.send(&srv, Method::POST, &format!("/api/v1/spaces/{}/assets?filename=ADAMARKER.txt", f.space)).body(pattern(700, 9)).send().await.unwrap();
        let upload = expect_json(res, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned();
        let d = dest();
        let before = create(&srv, &d);
        let id = before["id"].as_str().unwrap();

        let res = web.send(&srv, Method::DELETE, "/api/v1/me").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let status = srv.run_json(&["storage", "status", "--json"]);
        assert_eq!(status["backups"]["shreds_pending"], 1, "{status}");
        // The shred pass takes her key out of the earlier backup's key set.
        let pruned = srv.run_json(&["backup", "prune", "--from", &d.url, "--json"]);
        assert_eq!(pruned["shred"]["rewritten"], 1, "{pruned}");
        let status = srv.run_json(&["storage", "status", "--json"]);
        assert_eq!(status["backups"]["shreds_pending"], 0, "{status}");

        // Restored, the earlier backup holds her account as it was: the restore erases it
        // again, and her events cannot be opened without the key it no longer has.
        let (restored, report) = restore(&srv.data_dir, id, &d.url, b).await;
        assert_eq!(report["erased_people"], 1, "{report}");
        let res = restored.client.post(restored.url("/api/v1/auth/login")).json(&json!({"email": ada_email, "password": PASSWORD})).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let events = trail(&restored, &f.key, &f.org).await;
        let hers: Vec<&Value> = events.iter().filter(|e| e["actor"] == format!("user:{ada}")).collect();
        assert!(!hers.is_empty() && hers.iter().all(|e| e["erased"] == true && e["ip"] == ""), "{hers:?}");
        assert!(!Value::Array(events.clone()).to_string().contains("ADAMARKER"));
        // Everything else is there: the organization's content, hers included, and the chain.
        assert_all_read_back(&restored, &f).await;
        assert_eq!(download(&restored, &f.key, &upload).await, pattern(700, 9));
        audit_verifies(&restored, &f.org);
    }

    async fn the_operator_erases_an_account_from_the_command_line(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, owner) = (boot.org_id.as_str(), boot.api_key.as_str());
        let ada_email = unique_email("ada");
        let ada = add_member(&srv, org, &ada_email, "editor", Some(PASSWORD));
        sign_in(&srv, &ada_email, PASSWORD).await;
        // Unknown addresses and an only owner are refused in one sentence, changing nothing.
        let line = one_sentence_error(&srv.run(&["admin", "erase-user", "--email", "nobody@example.com"]));
        assert!(line.contains("not found") || line.contains("no "), "{line}");
        let line = one_sentence_error(&srv.run(&["admin", "erase-user", "--email", "owner@example.com"]));
        assert!(line.contains("only owner"), "{line}");
        let done = srv.run_json(&["admin", "erase-user", "--email", &ada_email, "--json"]);
        assert_eq!(done, json!({"user_id": ada, "erased": true}));
        expect_problem(login(&srv, &ada_email, PASSWORD).await, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let events = trail(&srv, owner, org).await;
        assert!(events.iter().filter(|e| e["actor"] == format!("user:{ada}")).all(|e| e["erased"] == true));
        let erase = events.iter().find(|e| e["action"] == "user.erase").unwrap();
        assert_eq!((erase["actor"].as_str(), erase["target"].as_str()), (Some("cli"), Some(ada.as_str())));
        chain_verifies(&srv, owner, org).await;
    }
}
