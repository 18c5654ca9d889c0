//! The command-line client (`strongroom upload`, `download`, `ls`, `share`, `spaces`, `rm`): the
//! real binary against a real server over HTTPS, with the key from the environment only. Happy
//! paths, a resumed download, and the refusals: no key, a wrong key, a viewer's key, another
//! organization's asset, an untrusted certificate; each one sentence and its own exit status.

use std::process::{Command, Output, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

/// The binary as an app team runs it: server, CA and key from the environment.
fn client(srv: &TestServer, key: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("STRONGROOM_API_KEY")
        .env("STRONGROOM_SERVER", &srv.base)
        .env(
            "STRONGROOM_CACERT",
            srv.data_dir.join("tls").join("cert.pem"),
        )
        .stdin(Stdio::null());
    if let Some(k) = key {
        c.env("STRONGROOM_API_KEY", k);
    }
    c
}

/// Runs the client with `args` (and `key` as STRONGROOM_API_KEY).
fn sr(srv: &TestServer, key: Option<&str>, args: &[&str]) -> Output {
    client(srv, key).args(args).output().unwrap()
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The single sentence a failure prints, and its exit status.
fn failure(out: &Output) -> (i32, String) {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "one sentence: {err}");
    (out.status.code().unwrap(), err)
}

both_backends! {
    async fn upload_a_folder_list_download_share_and_remove(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = Some(boot.api_key.as_str());
        let space = json_of(&sr(&srv, key, &["spaces", "create", "site", "--org", &boot.org_id, "--json"]));
        let space = space["id"].as_str().unwrap().to_owned();

        // A folder with a nested folder, and a file given on its own: one call, one summary.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docs/deep")).unwrap();
        let files = [("docs/a.bin", pattern(300_000, 1)), ("docs/deep/b.txt", pattern(5, 2)), ("c.bin", pattern(1_500_000, 3))];
        for (name, body) in &files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let docs = dir.path().join("docs");
        let single = dir.path().join("c.bin");
        let up = json_of(&sr(&srv, key, &["upload", docs.to_str().unwrap(), single.to_str().unwrap(), "--space", &space, "--json"]));
        assert_eq!((up["uploaded"].as_u64(), up["failed"].as_u64()), (Some(3), Some(0)), "{up}");
        assert_eq!(up["bytes"].as_u64(), Some(1_800_005));
        let ids: Vec<String> = up["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
        let names: Vec<&str> = up["items"].as_array().unwrap().iter().map(|i| i["filename"].as_str().unwrap()).collect();
        assert_eq!(names, ["a.bin", "b.txt", "c.bin"]);
        let b_txt = &up["items"][1];
        assert_eq!(b_txt["sha256"].as_str().unwrap().len(), 64);

        // ls: the spaces, then the space's assets.
        let spaces = json_of(&sr(&srv, key, &["ls", "--json"]));
        assert_eq!(spaces["items"][0]["id"], space.as_str(), "{spaces}");
        let listed = json_of(&sr(&srv, key, &["ls", &space, "--json"]));
        assert_eq!(listed["items"].as_array().unwrap().len(), 3, "{listed}");
        let human = sr(&srv, key, &["ls", &space]);
        assert!(String::from_utf8_lossy(&human.stdout).contains("c.bin"));

        // download: byte-identical, to -o and to the asset's own name in the working folder.
        let out_dir = tempfile::tempdir().unwrap();
        let target = out_dir.path().join("copy.bin");
        let got = json_of(&sr(&srv, key, &["download", &ids[2], "-o", target.to_str().unwrap(), "--json"]));
        assert_eq!(got["resumed_from"], 0);
        assert_eq!(std::fs::read(&target).unwrap(), files[2].1);
        let here = client(&srv, key).current_dir(out_dir.path()).args(["download", &ids[0]]).output().unwrap();
        assert!(here.status.success(), "{}", String::from_utf8_lossy(&here.stderr));
        assert_eq!(std::fs::read(out_dir.path().join("a.bin")).unwrap(), files[0].1);

        // share: the printed URL downloads the asset with no other credential, once.
        let link = sr(&srv, key, &["share", &ids[1], "--expires", "30m", "--single-use"]);
        assert!(link.status.success(), "{}", String::from_utf8_lossy(&link.stderr));
        let url = String::from_utf8_lossy(&link.stdout).trim().to_owned();
        let res = srv.client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.bytes().await.unwrap().as_ref(), files[1].1.as_slice());
        assert_eq!(srv.client.get(&url).send().await.unwrap().status(), StatusCode::NOT_FOUND, "single use");

        // rm: gone from the server; a second rm says so, with the not-found status.
        assert!(sr(&srv, key, &["rm", &ids[1]]).status.success());
        let res = srv.req(Method::GET, &format!("/api/v1/assets/{}", ids[1]), key).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let (code, err) = failure(&sr(&srv, key, &["rm", &ids[1]]));
        assert_eq!(code, 4, "{err}");
        assert!(err.starts_with("error: ") && err.contains("not found"), "{err}");
        // ...it waits in the trash: listed there, restored, then purged for good.
        let trash = sr(&srv, key, &["ls", &space, "--trash", "--json"]);
        let listed: Value = serde_json::from_slice(&trash.stdout).unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["items"][0]["id"], ids[1].as_str());
        let back = sr(&srv, key, &["restore", &ids[1], "--json"]);
        assert!(back.status.success(), "{}", String::from_utf8_lossy(&back.stderr));
        assert_eq!(download(&srv, &boot.api_key, &ids[1]).await, files[1].1);
        let purged = sr(&srv, key, &["rm", &ids[1], "--purge", "--json"]);
        assert!(purged.status.success(), "{}", String::from_utf8_lossy(&purged.stderr));
        assert_eq!(serde_json::from_slice::<Value>(&purged.stdout).unwrap(), json!({"deleted": ids[1], "purged": true}));
        let (code, err) = failure(&sr(&srv, key, &["restore", &ids[1]]));
        assert_eq!(code, 4, "{err}");
    }

    async fn an_interrupted_download_resumes_with_a_range(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let key = Some(boot.api_key.as_str());
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let body = pattern(2_000_000, 5);
        let asset = srv.upload(&boot.api_key, &space, "big.bin", body.clone()).await;
        let id = asset["id"].as_str().unwrap();

        // What an interrupted run left: the first 1234567 bytes in FILE.part.
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("big.bin");
        std::fs::write(dir.path().join("big.bin.part"), &body[..1_234_567]).unwrap();
        let got = json_of(&sr(&srv, key, &["download", id, "-o", target.to_str().unwrap(), "--json"]));
        assert_eq!(got["resumed_from"], 1_234_567, "{got}");
        assert_eq!(std::fs::read(&target).unwrap(), body, "byte-identical after resuming");
        assert!(!dir.path().join("big.bin.part").exists());
        // The server saw a ranged read: the audit trail records its range.
        let audit = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=100", boot.org_id), key)).await;
        let ranged = audit["items"].as_array().unwrap().iter().any(|e| e["action"] == "asset.read" && e["target"] == id && e.to_string().contains("1234567"));
        assert!(ranged, "{audit}");

        // A .part that is not a prefix of the asset (another file's bytes): the check catches it,
        // removes the bad bytes, and says to run again; the run after that succeeds.
        std::fs::write(dir.path().join("big.bin.part"), pattern(1000, 99)).unwrap();
        let (code, err) = failure(&sr(&srv, key, &["download", id, "-o", target.to_str().unwrap()]));
        assert_eq!(code, 6, "{err}");
        assert!(err.contains("do not match the asset's SHA-256"), "{err}");
        assert!(!dir.path().join("big.bin.part").exists());
        json_of(&sr(&srv, key, &["download", id, "-o", target.to_str().unwrap(), "--json"]));
        assert_eq!(std::fs::read(&target).unwrap(), body);
    }

    async fn every_refusal_is_one_sentence_with_its_own_exit_status(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let other = srv.bootstrap("other@example.com", "other");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let theirs_space = srv.create_space(&other.api_key, &other.org_id, "site").await;
        let theirs = srv.upload(&other.api_key, &theirs_space, "t.bin", pattern(100, 1)).await;
        let (_, viewer) = srv.create_key(&boot.org_id, "viewer");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.bin");
        std::fs::write(&file, pattern(1000, 2)).unwrap();
        let f = file.to_str().unwrap();
        let count = || async {
            get_json(srv.req(Method::GET, &format!("/api/v1/spaces/{space}/assets"), Some(&boot.api_key))).await["items"].as_array().unwrap().len()
        };

        // No key: refused before any request, and the key is never a flag.
        let (code, err) = failure(&sr(&srv, None, &["upload", f, "--space", &space]));
        assert_eq!(code, 3);
        assert!(err.contains("STRONGROOM_API_KEY"), "{err}");
        let flag = sr(&srv, Some(&boot.api_key), &["upload", f, "--space", &space, "--api-key", "x"]);
        assert_eq!(flag.status.code(), Some(2), "clap refuses an unknown flag");
        // A wrong key; a viewer's key (may read, may not upload).
        let (code, err) = failure(&sr(&srv, Some("srk_not_a_real_key"), &["ls"]));
        assert_eq!(code, 3, "{err}");
        let (code, err) = failure(&sr(&srv, Some(&viewer), &["upload", f, "--space", &space]));
        assert_eq!(code, 3, "{err}");
        assert!(err.starts_with("error: ") && err.len() > 20, "{err}");
        assert!(sr(&srv, Some(&viewer), &["ls", &space]).status.success(), "a viewer lists");
        // Another organization's asset does not exist for this key.
        let (code, err) = failure(&sr(&srv, Some(&boot.api_key), &["download", theirs["id"].as_str().unwrap(), "-o", dir.path().join("x").to_str().unwrap()]));
        assert_eq!(code, 4, "{err}");
        assert!(!dir.path().join("x").exists() && !dir.path().join("x.part").exists());
        // Not an id: refused here, never sent as a path.
        let (code, err) = failure(&sr(&srv, Some(&boot.api_key), &["rm", "../me"]));
        assert_eq!(code, 4);
        assert!(err.contains("'../me' is not an asset id"), "{err}");
        // A bad duration; a server whose certificate is not trusted; a server that is not there.
        let (code, err) = failure(&sr(&srv, Some(&boot.api_key), &["share", "ast_x", "--expires", "soon"]));
        assert_eq!(code, 1);
        assert!(err.contains("--expires"), "{err}");
        let untrusted = client(&srv, Some(&boot.api_key)).env_remove("STRONGROOM_CACERT").args(["ls"]).output().unwrap();
        let (code, err) = failure(&untrusted);
        assert_eq!(code, 7, "{err}");
        assert!(err.contains("cannot reach the server"), "{err}");
        let (code, _) = failure(&client(&srv, Some(&boot.api_key)).env("STRONGROOM_SERVER", "https://127.0.0.1:9").args(["ls"]).output().unwrap());
        assert_eq!(code, 7);
        // Nothing was uploaded by any refused call.
        assert_eq!(count().await, 0);
    }
}
