//! A person's data export (`GET /api/v1/me/export`): a zip, read here by Python's zipfile (an
//! implementation apart from ours), holding what Strongroom has about them across their
//! organizations, and nothing of anyone else's, and never a secret.

use std::collections::BTreeMap;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple 42";

/// The archive's files by name, parsed as JSON (README.txt as a string); checks every CRC.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.zip");
    std::fs::write(&path, bytes).unwrap();
    let script = "import json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  assert z.testzip() is None, 'a CRC does not match'\n\
                  out = {}\n\
                  for n in z.namelist():\n\
                  \x20   t = z.read(n).decode('utf-8')\n\
                  \x20   out[n] = t if n.endswith('.txt') else json.loads(t)\n\
                  print(json.dumps(out))\n";
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zipfile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn export(srv: &TestServer, web: &Browser) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let res = web
        .req(srv, Method::GET, "/api/v1/me/export")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    (headers, res.bytes().await.unwrap().to_vec())
}

both_backends! {
    async fn the_export_holds_a_persons_data_across_organizations_and_nothing_of_others(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let (org, key) = (boot.org_id.as_str(), boot.api_key.as_str());
        let second = srv.bootstrap("owner@example.com", "second org");
        let ada_email = unique_email("ada");
        let ada = add_member(&srv, org, &ada_email, "admin", Some(PASSWORD));
        add_member(&srv, &second.org_id, &ada_email, "viewer", None);
        let bob_email = unique_email("bob");
        add_member(&srv, org, &bob_email, "editor", Some(PASSWORD));
        let space = srv.create_space(key, org, "site").await;

        // Ada, an admin, signs in, uploads two files (one she then deletes) and makes a key of
        // her own.
        let web = sign_in(&srv, &ada_email, PASSWORD).await;
        let mut ids = Vec::new();
        for name in ["ada-report.pdf", "ada-draft.txt"] {
            let res = web.send(&srv, Method::POST, &format!("/api/v1/spaces/{space}/assets?filename={name}")).body(pattern(500, 1)).send().await.unwrap();
            ids.push(expect_json(res, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned());
        }
        let res = web.send(&srv, Method::DELETE, &format!("/api/v1/assets/{}", ids[1])).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        let made = web.send(&srv, Method::POST, &format!("/api/v1/orgs/{org}/api-keys")).json(&json!({"name": "ada laptop", "role": "viewer"})).send().await.unwrap();
        let made = expect_json(made, StatusCode::CREATED).await;
        let secret = made["api_key"].as_str().unwrap().to_owned();
        // Bob uploads too: nothing of his may appear in Ada's export.
        let bob = sign_in(&srv, &bob_email, PASSWORD).await;
        let res = bob.send(&srv, Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=bob-secret-plan.txt")).body(pattern(50, 2)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);

        let (headers, zip) = export(&srv, &web).await;
        assert_eq!(headers["content-type"], "application/zip");
        assert_eq!(headers["cache-control"], "no-store");
        assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"strongroom-export-"), "{headers:?}");
        let files = unzip(&zip);
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(names, ["README.txt", "account.json", "api_keys.json", "audit_events.json", "memberships.json", "sessions.json", "uploads.json"]);
        assert_eq!(files["account.json"]["email"], ada_email.as_str());
        assert_eq!(files["account.json"]["user_id"], ada.as_str());
        let orgs: Vec<&str> = files["memberships.json"].as_array().unwrap().iter().map(|m| m["org_id"].as_str().unwrap()).collect();
        assert_eq!(orgs.len(), 2, "{orgs:?}");
        assert!(orgs.contains(&org) && orgs.contains(&second.org_id.as_str()));
        let sessions = files["sessions.json"].as_array().unwrap();
        assert!(sessions.iter().any(|s| s["id"] == web.login["session_id"]), "{sessions:?}");
        let keys = files["api_keys.json"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["name"], "ada laptop");
        let uploads: BTreeMap<&str, &str> = files["uploads.json"].as_array().unwrap().iter()
            .map(|u| (u["filename"].as_str().unwrap(), u["state"].as_str().unwrap())).collect();
        assert_eq!(uploads, BTreeMap::from([("ada-draft.txt", "trash"), ("ada-report.pdf", "stored")]));
        let events = files["audit_events.json"][org]["events"].as_array().unwrap();
        assert_eq!(files["audit_events.json"][org]["truncated"], false);
        let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for want in ["member.set_role", "auth.login", "asset.create", "asset.delete", "apikey.create"] {
            assert!(actions.contains(&want), "{want} missing from {actions:?}");
        }
        // Nothing of Bob's, and no secret: not the key's, not a password.
        let raw = String::from_utf8_lossy(&zip);
        for absent in ["bob-secret-plan.txt", bob_email.as_str(), secret.as_str(), PASSWORD] {
            assert!(!raw.contains(absent), "the export holds {absent:?}");
        }

        // The export is audited; the chain still verifies.
        let trail = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/audit?limit=1000"), Some(key))).await;
        assert!(trail["items"].as_array().unwrap().iter().any(|e| e["action"] == "account.export" && e["target"] == ada.as_str()));
        assert!(srv.run(&["audit", "verify", "--org", org]).status.success());
    }

    async fn the_export_is_for_a_signed_in_person_only(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        // An API key, even the owner's, is refused: a leaked key must not carry away the account.
        let res = srv.req(Method::GET, "/api/v1/me/export", Some(&boot.api_key)).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let res = srv.req(Method::GET, "/api/v1/me/export", None).send().await.unwrap();
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthenticated").await;
        // A signed-out session is refused too.
        let email = unique_email("carol");
        add_member(&srv, &boot.org_id, &email, "viewer", Some(PASSWORD));
        let web = sign_in(&srv, &email, PASSWORD).await;
        assert!(export(&srv, &web).await.1.starts_with(b"PK"), "a zip archive");
        assert_eq!(web.send(&srv, Method::POST, "/api/v1/auth/logout").send().await.unwrap().status(), StatusCode::NO_CONTENT);
        let res = web.req(&srv, Method::GET, "/api/v1/me/export").send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
}
