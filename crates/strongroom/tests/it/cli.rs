//! CLI commands through the real binary: `--help`, `admin bootstrap`/`create-user`/
//! `create-api-key`, errors in one sentence, and `serve` refusing an exposed or missing master key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::process::*;
use crate::support::*;

// ---------------------------------------------------------------------------------------------
// 1. --help
// ---------------------------------------------------------------------------------------------

#[test]
fn every_command_has_help() {
    let cases: &[(&[&str], &str, &[&str])] = &[
        (&[], "strongroom", &["serve", "admin", "keys", "audit"]),
        (
            &["serve"],
            "strongroom serve",
            &["--config", "--data-dir", "--listen"],
        ),
        (
            &["admin", "bootstrap"],
            "strongroom admin bootstrap",
            &[
                "--email",
                "--org",
                "--data-dir",
                "--password-stdin",
                "--json",
            ],
        ),
        (
            &["admin", "create-api-key"],
            "strongroom admin create-api-key",
            &["--org", "--role", "--name", "--data-dir", "--json"],
        ),
        (
            &["admin", "create-user"],
            "strongroom admin create-user",
            &[
                "--email",
                "--org",
                "--role",
                "--password-stdin",
                "--data-dir",
                "--json",
            ],
        ),
        (
            &["keys", "rotate"],
            "strongroom keys rotate",
            &["--data-dir", "--json"],
        ),
        (
            &["keys", "status"],
            "strongroom keys status",
            &["--data-dir", "--json"],
        ),
        (
            &["audit", "verify"],
            "strongroom audit verify",
            &["--data-dir", "--org", "--json"],
        ),
    ];
    for (args, usage, flags) in cases {
        let out = bin()
            .args(*args)
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?} --help failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(usage),
            "{args:?} --help does not mention {usage:?}: {text}"
        );
        for flag in *flags {
            assert!(
                text.contains(flag),
                "{args:?} --help does not document {flag}: {text}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Errors are one sentence
// ---------------------------------------------------------------------------------------------

#[test]
fn data_dir_commands_fail_in_one_sentence_without_a_data_dir() {
    let out = bin()
        .args(["keys", "status", "--data-dir", "/nonexistent/x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let line = one_sentence_error(&out);
    assert!(
        line.contains("/nonexistent/x"),
        "the error does not say which data dir: {line}"
    );
    assert!(
        !Path::new("/nonexistent/x").exists(),
        "a data-dir command created the missing data dir"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    let org = format!("org_{}", "0".repeat(32));
    let commands: &[&[&str]] = &[
        &["keys", "status", "--json"],
        &["keys", "rotate", "--json"],
        &["audit", "verify", "--json"],
        &[
            "admin",
            "create-api-key",
            "--org",
            &org,
            "--role",
            "viewer",
            "--json",
        ],
        &[
            "admin",
            "create-user",
            "--email",
            "a@example.com",
            "--org",
            &org,
            "--role",
            "viewer",
        ],
    ];
    for args in commands {
        let out = bin_run(&missing, args);
        let line = one_sentence_error(&out);
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed on stdout while failing"
        );
        assert!(
            line.contains(&*missing.to_string_lossy()),
            "{args:?}: the error does not name the data dir: {line}"
        );
        assert!(!missing.exists(), "{args:?} created the missing data dir");
    }

    // Bad input is refused before anything is created.
    let out = bin_run(
        &missing,
        &[
            "admin",
            "bootstrap",
            "--email",
            "not-an-email",
            "--org",
            "acme",
            "--json",
        ],
    );
    let line = one_sentence_error(&out);
    assert!(line.to_lowercase().contains("email"), "{line}");
    assert!(
        !missing.exists(),
        "a refused bootstrap created the data dir"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. serve refuses an exposed or missing root key
// ---------------------------------------------------------------------------------------------

/// `admin bootstrap` may come before the first `serve`: it creates the instance, and the server
/// then starts on it with the same key. `--config` and `STRONGROOM_CONFIG` name the data dir too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_before_the_first_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let boot = bin_json(
        &dir,
        &[
            "admin",
            "bootstrap",
            "--email",
            "o@example.com",
            "--org",
            "acme",
            "--json",
        ],
    );
    let key = std::fs::read(dir.join("master.key")).unwrap();
    let mode = std::fs::metadata(dir.join("master.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    let mut srv = tokio::task::block_in_place(|| spawn_serve(&dir)).serving();
    let me = get_json(srv.req(Method::GET, "/api/v1/me", boot["api_key"].as_str())).await;
    assert_eq!(me["role"], "owner");
    assert_eq!(me["org_id"], boot["org_id"]);
    assert_eq!(
        std::fs::read(dir.join("master.key")).unwrap(),
        key,
        "serve replaced the key bootstrap made"
    );

    let config = tmp.path().join("strongroom.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n", dir.to_str().unwrap())).unwrap();
    let out = bin()
        .args(["keys", "status", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["active_version"], 1, "{v}");
    let out = bin()
        .args(["audit", "verify", "--json"])
        .env("STRONGROOM_CONFIG", &config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(v["orgs"].as_array().map(Vec::len), Some(1), "{v}");

    srv.signal("TERM");
    let st = srv
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("serve did not stop on SIGTERM");
    assert!(st.success(), "{st}: {}", srv.stderr());
}

/// Starts serve and expects it to refuse within 10 s; returns the error line.
fn expect_refusal(dir: &Path) -> String {
    match spawn_serve(dir) {
        Started::Serving(s) => panic!(
            "serve started at {} although it should have refused",
            s.base
        ),
        Started::Exited {
            status,
            stderr,
            stdout,
            after,
        } => {
            assert!(
                !status.success(),
                "serve exited with success while refusing to start"
            );
            assert!(
                after < Duration::from_secs(10),
                "serve took {after:?} to refuse"
            );
            assert!(!stdout.contains("Strongroom is serving"));
            one_sentence_error(&Output {
                status,
                stdout: stdout.into_bytes(),
                stderr: stderr.into_bytes(),
            })
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_group_or_world_readable_master_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    make_instance(&dir).await;
    let key = dir.join("master.key");
    let original = std::fs::read(&key).unwrap();

    for mode in [0o644, 0o640] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let line = tokio::task::block_in_place(|| expect_refusal(&dir));
        let lower = line.to_lowercase();
        assert!(
            line.contains("master.key"),
            "the error does not name the key file: {line}"
        );
        assert!(
            ["permission", "mode", "chmod", "readable", "accessible"]
                .iter()
                .any(|w| lower.contains(w)),
            "the error does not explain the permission problem: {line}"
        );
        assert!(
            !line.contains(String::from_utf8_lossy(&original).trim()),
            "the error leaks the key"
        );
        // Data-dir commands refuse the exposed key too.
        let line = one_sentence_error(&bin_run(&dir, &["keys", "status", "--json"]));
        assert!(line.contains("master.key"), "{line}");
        // The product neither "fixes" nor replaces the file behind the operator's back.
        assert_eq!(std::fs::read(&key).unwrap(), original);
    }

    // Once fixed, it starts again with the same key.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    make_instance(&dir).await;
    assert_eq!(std::fs::read(&key).unwrap(), original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_without_its_master_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    make_instance(&dir).await;
    let key = dir.join("master.key");
    std::fs::remove_file(&key).unwrap();

    let line = tokio::task::block_in_place(|| expect_refusal(&dir));
    let lower = line.to_lowercase();
    assert!(
        lower.contains("master key") || lower.contains("master.key"),
        "{line}"
    );
    assert!(
        lower.contains("restore"),
        "the error does not tell the operator to restore the key: {line}"
    );
    assert!(
        !key.exists(),
        "serve silently generated a new master key for an existing instance"
    );

    // Nor does any data-dir command (bootstrap may create instances, but not this one's key).
    let line = one_sentence_error(&bin_run(
        &dir,
        &[
            "admin",
            "bootstrap",
            "--email",
            "o@example.com",
            "--org",
            "x",
            "--json",
        ],
    ));
    assert!(line.to_lowercase().contains("restore"), "{line}");
    assert!(
        !key.exists(),
        "bootstrap silently generated a new master key for an existing instance"
    );
}

// ---------------------------------------------------------------------------------------------
// 2, 3: admin commands against a running instance, on both backends
// ---------------------------------------------------------------------------------------------

async fn count(conn: &mut sqlx::AnyConnection, sql: &'static str, arg: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(arg.to_owned())
        .fetch_one(conn)
        .await
        .unwrap()
}

both_backends! {
    async fn bootstrap_is_idempotent_and_always_mints_a_new_key(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let args = ["admin", "bootstrap", "--email", "owner@example.com", "--org", "acme", "--json"];
        let first = srv.run_json(&args);
        for f in ["user_id", "org_id", "api_key", "password"] {
            assert!(first[f].is_string(), "bootstrap JSON lacks {f}: {first}");
        }
        assert!(first["user_id"].as_str().unwrap().starts_with("usr_"), "{first}");
        assert!(first["org_id"].as_str().unwrap().starts_with("org_"), "{first}");
        assert!(first["api_key"].as_str().unwrap().starts_with("srk_"), "{first}");
        assert!(first["password"].as_str().unwrap().chars().count() >= 12, "the generated password is weak: {first}");

        let second = srv.run_json(&args);
        assert_eq!(second["user_id"], first["user_id"]);
        assert_eq!(second["org_id"], first["org_id"]);
        assert!(second["api_key"].as_str().unwrap().starts_with("srk_"));
        assert_ne!(second["api_key"], first["api_key"], "bootstrap must mint a new key every time");
        assert!(second.get("password").is_none(), "a reused user got a password again: {second}");

        for v in [&first, &second] {
            let me = get_json(srv.req(Method::GET, "/api/v1/me", v["api_key"].as_str())).await;
            assert_eq!(me["role"], "owner");
            assert_eq!(me["org_id"], first["org_id"]);
            assert_eq!(me["user_id"], first["user_id"]);
        }

        // The same user bootstrapping a second organization: same user, new org.
        let other = srv.run_json(&["admin", "bootstrap", "--email", "owner@example.com", "--org", "beta", "--json"]);
        assert_eq!(other["user_id"], first["user_id"]);
        assert_ne!(other["org_id"], first["org_id"]);
        assert!(other.get("password").is_none());

        // The human output shows the same facts.
        let out = srv.run(&["admin", "bootstrap", "--email", "owner@example.com", "--org", "acme"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(first["org_id"].as_str().unwrap()) && text.contains("srk_"), "{text}");
    }

    async fn bootstrap_rejects_a_weak_password_and_creates_nothing(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        // Make sure the instance (database) exists before looking into it.
        srv.bootstrap("someone@example.com", "other");
        let mut cmd = srv.cli();
        cmd.args(["admin", "bootstrap", "--email", "weak@example.com", "--org", "weakorg", "--password-stdin", "--json"]);
        let out = run_with_stdin(cmd, "qz7Kx\n");
        let line = one_sentence_error(&out);
        assert!(line.to_lowercase().contains("password"), "the error does not mention the password: {line}");
        assert!(!line.contains("qz7Kx"), "the error echoes the password: {line}");
        assert!(out.stdout.is_empty(), "a failed bootstrap printed: {}", String::from_utf8_lossy(&out.stdout));

        let mut conn = srv.db_conn().await;
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM users WHERE email = $1", "weak@example.com").await, 0, "the user was created");
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM orgs WHERE name = $1", "weakorg").await, 0, "the org was created");

        let good = "Tr0ub4dor&3-horse-staple";
        let mut cmd = srv.cli();
        cmd.args(["admin", "bootstrap", "--email", "weak@example.com", "--org", "weakorg", "--password-stdin", "--json"]);
        let out = run_with_stdin(cmd, &format!("{good}\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["user_id"].is_string() && v["org_id"].is_string() && v["api_key"].is_string(), "{v}");
        assert!(v.get("password").is_none(), "a password given on stdin is not \"generated\": {v}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(good));

        let hash: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
            .bind(v["user_id"].as_str().unwrap().to_owned())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let hash = hash.expect("the password from stdin was not stored");
        assert!(!hash.contains(good), "the password is stored in clear");
        assert!(hash.starts_with("$argon2id$") || hash.starts_with("$2"), "unexpected password hash format: {hash}");
        let me = get_json(srv.req(Method::GET, "/api/v1/me", v["api_key"].as_str())).await;
        assert_eq!(me["role"], "owner");
    }

    async fn create_user_and_create_api_key(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let org = boot.org_id.as_str();

        let mut cmd = srv.cli();
        cmd.args(["admin", "create-user", "--email", "member@example.com", "--org", org, "--role", "editor", "--password-stdin", "--json"]);
        let out = run_with_stdin(cmd, "a-long-enough-passphrase-9\n");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), ["user_id"], "{v}");
        let user_id = v["user_id"].as_str().unwrap();
        assert!(user_id.starts_with("usr_") && user_id != boot.user_id);
        let mut conn = srv.db_conn().await;
        let role: String = sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org.to_owned())
            .bind(user_id.to_owned())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(role, "editor");

        // Refusals: one sentence each, and nothing created.
        let unknown_org = format!("org_{}", "0".repeat(32));
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--email", "x@example.com", "--org", org, "--role", "emperor"], "role"),
            (vec!["--email", "x@example.com", "--org", "acme", "--role", "viewer"], "organization"),
            (vec!["--email", "x@example.com", "--org", &unknown_org, "--role", "viewer"], "organization"),
            (vec!["--email", "not an email", "--org", org, "--role", "viewer"], "email"),
        ];
        for (args, word) in cases {
            let mut full = vec!["admin", "create-user"];
            full.extend(args.iter().copied());
            full.push("--json");
            let out = srv.run(&full);
            let line = one_sentence_error(&out);
            assert!(line.to_lowercase().contains(word), "{args:?}: the error does not mention the {word}: {line}");
            assert!(out.stdout.is_empty());
        }
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM users WHERE email = $1", "x@example.com").await, 0);
        let mut cmd = srv.cli();
        cmd.args(["admin", "create-user", "--email", "y@example.com", "--org", org, "--role", "viewer", "--password-stdin", "--json"]);
        let line = one_sentence_error(&run_with_stdin(cmd, "short\n"));
        assert!(line.to_lowercase().contains("password"), "{line}");
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM users WHERE email = $1", "y@example.com").await, 0);

        // A viewer key: reads, cannot create.
        let v = srv.run_json(&["admin", "create-api-key", "--org", org, "--role", "viewer", "--json"]);
        assert!(v["id"].is_string(), "{v}");
        let viewer = v["api_key"].as_str().unwrap();
        assert!(viewer.starts_with("srk_"));
        let me = get_json(srv.req(Method::GET, "/api/v1/me", Some(viewer))).await;
        assert_eq!(me["role"], "viewer");
        assert_eq!(me["key_id"], v["id"]);
        let res = srv.req(Method::POST, &format!("/api/v1/orgs/{org}/spaces"), Some(viewer)).json(&json!({"name": "nope"})).send().await.unwrap();
        expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
        let list = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{org}/spaces"), Some(viewer))).await;
        assert_eq!(list["items"], json!([]), "the refused create left a space: {list}");

        for (args, word) in [
            (vec!["--org", org, "--role", "god"], "role"),
            (vec!["--org", "nope", "--role", "viewer"], "organization"),
            (vec!["--org", unknown_org.as_str(), "--role", "viewer"], "organization"),
        ] {
            let mut full = vec!["admin", "create-api-key"];
            full.extend(args.iter().copied());
            let line = one_sentence_error(&srv.run(&full));
            assert!(line.to_lowercase().contains(word), "{args:?}: {line}");
        }
    }
}
