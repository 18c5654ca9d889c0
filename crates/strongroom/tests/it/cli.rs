//! CLI commands through the real binary: `--help`, `admin bootstrap`/`create-user`/
//! `create-api-key`, `keys status`/`rotate` against a running server, `audit verify` against a
//! tampered database, and `serve` itself (key-file checks, SIGTERM).
//!
//! The helpers that run `strongroom serve` as a separate process are shared with `crash.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::*;

// ---------------------------------------------------------------------------------------------
// Shared helpers (also used by crash.rs)
// ---------------------------------------------------------------------------------------------

/// The binary with no `STRONGROOM_*` setting inherited from the test environment.
pub(crate) fn bin() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("STRONGROOM_") {
            c.env_remove(k);
        }
    }
    c.env("STRONGROOM_LOG", "warn");
    c
}

/// Runs `cmd` with `input` on its standard input.
pub(crate) fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs the binary on a data dir (SQLite) with `args`, no stdin.
pub(crate) fn bin_run(data_dir: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Like [`bin_run`], parsing stdout as JSON; panics with stderr on failure.
pub(crate) fn bin_json(data_dir: &Path, args: &[&str]) -> Value {
    let out = bin_run(data_dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts a failed command that reported exactly one `error: ...` line on stderr and no panic;
/// returns that line.
pub(crate) fn one_sentence_error(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {stdout}; stderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "the command panicked; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one error line on stderr, got: {stderr}"
    );
    assert!(
        lines[0].starts_with("error: "),
        "the error line must start with \"error: \": {stderr}"
    );
    assert!(
        lines[0].len() > "error: ".len() + 10,
        "the error says nothing useful: {stderr}"
    );
    lines[0].to_owned()
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256, computed by the product's own crypto crate's digest (plain SHA-256).
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&strongroom_crypto::digest::sha256(data))
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`.
pub(crate) async fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `strongroom serve` as a separate process (SQLite in `data_dir`), on 127.0.0.1:0.
pub(crate) struct BinServer {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
    stderr: Arc<Mutex<String>>,
}

/// How a `serve` start ended.
pub(crate) enum Started {
    /// It printed its URL.
    Serving(BinServer),
    /// It exited before that.
    Exited {
        status: ExitStatus,
        stderr: String,
        stdout: String,
        after: Duration,
    },
}

impl Started {
    /// The server; panics (with its stderr) if it exited.
    pub(crate) fn serving(self) -> BinServer {
        match self {
            Started::Serving(s) => s,
            Started::Exited {
                status,
                stderr,
                stdout,
                ..
            } => {
                panic!(
                    "serve exited ({status}) instead of serving; stdout: {stdout}; stderr: {stderr}"
                )
            }
        }
    }
}

/// Starts `strongroom serve --data-dir D --listen 127.0.0.1:0` and waits (at most 30 s) for the
/// "Strongroom is serving https://..." line, or for the process to exit.
pub(crate) fn spawn_serve(data_dir: &Path) -> Started {
    let started_at = Instant::now();
    let mut child = bin()
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_buf = Arc::new(Mutex::new(String::new()));
    let err_thread = {
        let buf = err_buf.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut b = buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        })
    };
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = started_at + Duration::from_secs(30);
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("Strongroom is serving ") {
                    let url = url.trim().to_owned();
                    assert!(
                        url.starts_with("https://127.0.0.1:"),
                        "unexpected URL line: {line}"
                    );
                    let client =
                        strongroom_testkit::https_client(&data_dir.join("tls").join("cert.pem"));
                    return Started::Serving(BinServer {
                        child,
                        base: url,
                        client,
                        stderr: err_buf,
                    });
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().unwrap();
                let after = started_at.elapsed();
                err_thread.join().unwrap();
                let stderr = err_buf.lock().unwrap().clone();
                return Started::Exited {
                    status,
                    stderr,
                    stdout: seen,
                    after,
                };
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve neither printed its URL nor exited within 30 s; stdout: {seen}; stderr: {}",
                    err_buf.lock().unwrap()
                );
            }
        }
    }
}

impl BinServer {
    /// Full URL of a path.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with an optional API key.
    pub(crate) fn req(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let r = self.client.request(method, self.url(path));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// What the server wrote on stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a signal with `kill(1)` (`TERM`, `KILL`, ...).
    pub(crate) fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = &mut self.child;
        poll(limit, || child.try_wait().unwrap()).await
    }

    /// `kill -9`, and reaps the process.
    pub(crate) async fn kill9(mut self) {
        self.signal("KILL");
        let st = self
            .wait_exit(Duration::from_secs(10))
            .await
            .expect("the server survived kill -9");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            st.signal(),
            Some(9),
            "the server was not killed by SIGKILL: {st}"
        );
    }
}

impl Drop for BinServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `req` and asserts a 200 JSON body.
async fn get_json(req: reqwest::RequestBuilder) -> Value {
    expect_json(req.send().await.unwrap(), StatusCode::OK).await
}

/// The first event number named in `text` ("... event 5 ..."), skipping the org id.
fn first_event_named(text: &str) -> Option<u64> {
    let mut rest = text;
    while let Some(i) = rest.find("event ") {
        let after = &rest[i + "event ".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

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

/// Starts and stops a binary server once so that `dir` holds an instance.
async fn make_instance(dir: &Path) {
    let mut srv = tokio::task::block_in_place(|| spawn_serve(dir)).serving();
    // Serving a request first (see `sigterm_right_after_the_ready_line_stops_cleanly`).
    let res = srv.req(Method::GET, "/healthz", None).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(dir.join("master.key").exists());
    let mode = std::fs::metadata(dir.join("master.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the generated master key must be 0600");
    for (path, want) in [
        (dir.to_path_buf(), 0o700),
        (dir.join("strongroom.db"), 0o600),
        (dir.join("tls").join("key.pem"), 0o600),
    ] {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{} has mode {mode:o}", path.display());
    }
    srv.signal("TERM");
    let st = srv
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("serve did not stop on SIGTERM");
    assert!(
        st.success(),
        "serve exited with {st} on SIGTERM; stderr: {}",
        srv.stderr()
    );
}

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
// 8. SIGTERM
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut srv = tokio::task::block_in_place(|| spawn_serve(&dir)).serving();
    let res = srv.req(Method::GET, "/healthz", None).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    srv.signal("TERM");
    let st = srv.wait_exit(Duration::from_secs(10)).await;
    let st = st.unwrap_or_else(|| {
        panic!(
            "serve still running 10 s after SIGTERM; stderr: {}",
            srv.stderr()
        )
    });
    assert_eq!(
        st.code(),
        Some(0),
        "serve exited with {st} on SIGTERM; stderr: {}",
        srv.stderr()
    );
    assert!(!srv.stderr().contains("panicked"), "{}", srv.stderr());
}

/// The ready line is what supervisors and scripts wait for: from then on SIGTERM must be a clean
/// stop, not the default "killed by signal". It is a race, so several quick starts, each killed
/// by a shell that reads the server's stdout directly (no round trip through this process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_the_ready_line_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    make_instance(&dir).await;
    for attempt in 0..30 {
        let mut child = bin()
            .arg("serve")
            .arg("--data-dir")
            .arg(&dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let killer = Command::new("sh")
            .args([
                "-c",
                r#"IFS= read -r line; kill -TERM "$1"; printf '%s\n' "$line""#,
                "sh",
            ])
            .arg(child.id().to_string())
            .stdin(Stdio::from(stdout))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let said = tokio::task::block_in_place(|| killer.wait_with_output()).unwrap();
        let said = String::from_utf8_lossy(&said.stdout);
        let st = poll(Duration::from_secs(10), || child.try_wait().unwrap()).await;
        let st = st.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("attempt {attempt}: serve still running 10 s after SIGTERM")
        });
        assert!(
            said.starts_with("Strongroom is serving https://"),
            "attempt {attempt}: no ready line: {said:?} ({st})"
        );
        assert_eq!(
            st.code(),
            Some(0),
            "attempt {attempt}: serve printed its URL but then died of SIGTERM ({st}) instead of stopping cleanly"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let mut srv = tokio::task::block_in_place(|| spawn_serve(&dir)).serving();
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
    let (key, org) = (
        boot["api_key"].as_str().unwrap().to_owned(),
        boot["org_id"].as_str().unwrap().to_owned(),
    );
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/orgs/{org}/spaces"),
            Some(&key),
        )
        .json(&json!({"name": "s"}))
        .send()
        .await
        .unwrap();
    let space = expect_json(res, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // An upload whose body is still arriving when SIGTERM comes.
    // The blob writer encrypts in batches of about 1 MiB: send 2 MiB so it has written some.
    let data = pattern(4 << 20, 99);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let req = srv
        .req(
            Method::POST,
            &format!("/api/v1/spaces/{space}/assets?filename=late.bin"),
            Some(&key),
        )
        .header("content-type", "application/octet-stream")
        .body(body);
    let upload = tokio::spawn(async move { req.send().await });
    let half = data.len() / 2;
    tx.send(Ok(bytes::Bytes::copy_from_slice(&data[..half])))
        .await
        .unwrap();
    let tmpdir = dir.join("blobs").join("tmp");
    poll(Duration::from_secs(10), || {
        std::fs::read_dir(&tmpdir)
            .ok()?
            .flatten()
            .any(|e| e.metadata().is_ok_and(|m| m.len() >= 1 << 20))
            .then_some(())
    })
    .await
    .expect("the server never started writing the upload");

    srv.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "serve exited with an upload in flight instead of draining it"
    );
    tx.send(Ok(bytes::Bytes::copy_from_slice(&data[half..])))
        .await
        .unwrap();
    drop(tx);
    let res = upload
        .await
        .unwrap()
        .expect("the in-flight upload was cut off by SIGTERM");
    let asset = expect_json(res, StatusCode::CREATED).await;
    assert_eq!(asset["size"], data.len() as u64);
    assert_eq!(asset["sha256"], sha256_hex(&data));
    let st = srv
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("serve did not exit after draining");
    assert_eq!(st.code(), Some(0), "stderr: {}", srv.stderr());

    // The drained upload was committed.
    let srv = tokio::task::block_in_place(|| spawn_serve(&dir)).serving();
    let id = asset["id"].as_str().unwrap();
    let res = srv
        .req(
            Method::GET,
            &format!("/api/v1/assets/{id}/content"),
            Some(&key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), data.as_slice());
}

// ---------------------------------------------------------------------------------------------
// 2, 3, 5, 6: commands against a running instance, on both backends
// ---------------------------------------------------------------------------------------------

async fn count(conn: &mut sqlx::AnyConnection, sql: &'static str, arg: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(arg.to_owned())
        .fetch_one(conn)
        .await
        .unwrap()
}

/// (kek_version, wrapped_dek) per blob id.
async fn wrapped_keys(srv: &TestServer) -> BTreeMap<String, (i64, Vec<u8>)> {
    let mut conn = srv.db_conn().await;
    let rows: Vec<(String, i64, Vec<u8>)> =
        sqlx::query_as("SELECT id, kek_version, wrapped_dek FROM blobs")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|(id, v, w)| (id, (v, w))).collect()
}

/// Every object file's bytes.
fn snapshot_objects(srv: &TestServer) -> BTreeMap<PathBuf, Vec<u8>> {
    srv.object_files()
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

async fn download(srv: &TestServer, key: &str, id: &str) -> Vec<u8> {
    let res = srv
        .req(
            Method::GET,
            &format!("/api/v1/assets/{id}/content"),
            Some(key),
        )
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body = res.bytes().await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "download of {id} failed: {}",
        String::from_utf8_lossy(&body)
    );
    body.to_vec()
}

fn status_of(v: &Value) -> (u64, BTreeMap<String, u64>) {
    let active = v["active_version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no active_version: {v}"));
    let keys = v["data_keys"]
        .as_object()
        .unwrap_or_else(|| panic!("no data_keys object: {v}"))
        .iter()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap()))
        .collect();
    (active, keys)
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// One organization with a known trail: bootstrap (3 events), a space, two uploads, a
/// download and a delete — 8 events.
async fn org_with_activity(srv: &TestServer, email: &str, org: &str) -> Boot {
    let boot = srv.bootstrap(email, org);
    let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
    let a = srv
        .upload(&boot.api_key, &space, "a.bin", pattern(70_000, 1))
        .await;
    let b = srv
        .upload(&boot.api_key, &space, "b.bin", pattern(1000, 2))
        .await;
    let a_id = a["id"].as_str().unwrap();
    assert_eq!(download(srv, &boot.api_key, a_id).await, pattern(70_000, 1));
    let b_id = b["id"].as_str().unwrap();
    let res = srv
        .req(
            Method::DELETE,
            &format!("/api/v1/assets/{b_id}"),
            Some(&boot.api_key),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    boot
}

/// `audit verify` restricted to one org; returns (success, stdout + stderr).
fn verify_org(srv: &TestServer, org: &str) -> (bool, String, String) {
    let out = srv.run(&["audit", "verify", "--org", org]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked") && !stdout.contains("panicked"),
        "{stderr}"
    );
    (out.status.success(), stdout, stderr)
}

/// Asserts `audit verify --org` fails and names `seq` as the first broken event (in the error
/// line on stderr and on stdout).
fn assert_broken_at(srv: &TestServer, org: &str, seq: u64) -> String {
    let (ok, stdout, stderr) = verify_org(srv, org);
    assert!(
        !ok,
        "audit verify passed a tampered trail; stdout: {stdout}"
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        line.contains(org),
        "the error does not name the organization: {line}"
    );
    assert_eq!(
        first_event_named(line),
        Some(seq),
        "the error names the wrong event: {line}"
    );
    assert_eq!(
        first_event_named(&stdout),
        Some(seq),
        "stdout names the wrong event: {stdout}"
    );
    line.to_owned()
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

        let hash: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users WHERE email = $1")
            .bind("weak@example.com".to_owned())
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

    async fn keys_rotate_rewraps_without_reencrypting(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let mut assets = Vec::new();
        for (i, len) in [10usize, 65_536 + 17, 300_000].into_iter().enumerate() {
            let data = pattern(len, i as u64 + 11);
            let a = srv.upload(&boot.api_key, &space, &format!("f{i}.bin"), data.clone()).await;
            assets.push((a["id"].as_str().unwrap().to_owned(), data));
        }

        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (1, counts(&[("1", 3)])));
        let objects = snapshot_objects(&srv);
        assert_eq!(objects.len(), 3, "expected one object file per asset");
        let wrapped_before = wrapped_keys(&srv).await;

        let report = srv.run_json(&["keys", "rotate", "--json"]);
        assert_eq!(report["active_version"], 2, "{report}");
        assert_eq!(report["rewrapped"], 3, "{report}");
        assert_eq!(report["retired_versions"], json!([1]), "{report}");
        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (2, counts(&[("2", 3)])));

        assert_eq!(snapshot_objects(&srv), objects, "rotation rewrote stored objects");
        let wrapped_after = wrapped_keys(&srv).await;
        assert_eq!(wrapped_after.len(), 3);
        for (id, (v, w)) in &wrapped_after {
            assert_eq!(*v, 2, "blob {id} still under an old KEK");
            assert_ne!(w, &wrapped_before[id].1, "blob {id}'s data key was not rewrapped");
        }

        // The running server picks up the new KEK, for reads and new writes.
        for (id, data) in &assets {
            assert_eq!(&download(&srv, &boot.api_key, id).await, data, "asset {id} unreadable after rotation");
        }
        let data = pattern(5000, 77);
        let a = srv.upload(&boot.api_key, &space, "after.bin", data.clone()).await;
        assets.push((a["id"].as_str().unwrap().to_owned(), data));
        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (2, counts(&[("2", 4)])), "the new upload is not under the new KEK");

        let report = srv.run_json(&["keys", "rotate", "--json"]);
        assert_eq!(report["active_version"], 3, "{report}");
        assert_eq!(report["rewrapped"], 4, "{report}");
        assert_eq!(report["retired_versions"], json!([2]), "{report}");
        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (3, counts(&[("3", 4)])));
        for (id, data) in &assets {
            assert_eq!(&download(&srv, &boot.api_key, id).await, data, "asset {id} unreadable after the second rotation");
        }

        // The human output says the same.
        let out = srv.run(&["keys", "status"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains('3') && text.contains('4'), "{text}");
    }

    async fn keys_rotate_during_an_in_flight_upload(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let boot = srv.bootstrap("owner@example.com", "acme");
        let space = srv.create_space(&boot.api_key, &boot.org_id, "site").await;
        let before = pattern(1000, 1);
        let old = srv.upload(&boot.api_key, &space, "old.bin", before.clone()).await;

        // An upload that has its data key (wrapped under KEK 1) and is still receiving bytes...
        let data = pattern(3 << 20, 8);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let req = srv
            .req(Method::POST, &format!("/api/v1/spaces/{space}/assets?filename=slow.bin"), Some(&boot.api_key))
            .header("content-type", "application/octet-stream")
            .body(body);
        let upload = tokio::spawn(async move { req.send().await });
        let half = 2 << 20;
        for chunk in data[..half].chunks(64 * 1024) {
            tx.send(Ok(bytes::Bytes::copy_from_slice(chunk))).await.unwrap();
        }
        let seen = poll(Duration::from_secs(10), || {
            srv.temp_files().iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= 1 << 20)).then_some(())
        })
        .await;
        assert!(seen.is_some(), "the server never started writing the upload");

        // ...while the operator rotates.
        let report = tokio::task::block_in_place(|| srv.run_json(&["keys", "rotate", "--json"]));
        assert_eq!(report["active_version"], 2, "{report}");

        for chunk in data[half..].chunks(64 * 1024) {
            tx.send(Ok(bytes::Bytes::copy_from_slice(chunk))).await.unwrap();
        }
        drop(tx);
        let res = upload.await.unwrap().unwrap();
        let asset = expect_json(res, StatusCode::CREATED).await;
        let id = asset["id"].as_str().unwrap();
        assert_eq!(download(&srv, &boot.api_key, id).await, data);
        assert_eq!(download(&srv, &boot.api_key, old["id"].as_str().unwrap()).await, before);

        // Every data key is under a KEK that still exists; another rotation moves them all.
        let report = srv.run_json(&["keys", "rotate", "--json"]);
        assert_eq!(report["active_version"], 3, "{report}");
        let (active, keys) = status_of(&srv.run_json(&["keys", "status", "--json"]));
        assert_eq!((active, keys), (3, counts(&[("3", 2)])));
        assert_eq!(download(&srv, &boot.api_key, id).await, data);
    }

    async fn audit_verify_is_not_fooled_by_live_traffic(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let srv = Arc::new(srv);
        let boot = org_with_activity(&srv, "o@example.com", "acme").await;
        let space = srv.create_space(&boot.api_key, &boot.org_id, "busy").await;
        let id = srv.upload(&boot.api_key, &space, "hot.bin", pattern(100, 4)).await["id"].as_str().unwrap().to_owned();

        // Readers keep appending asset.read events while the operator verifies the trail.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..2 {
            let (srv, stop, key, id) = (srv.clone(), stop.clone(), boot.api_key.clone(), id.clone());
            readers.push(tokio::spawn(async move {
                let mut n = 0_u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let res = srv.req(Method::GET, &format!("/api/v1/assets/{id}/content"), Some(&key)).send().await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                    res.bytes().await.unwrap();
                    n += 1;
                }
                n
            }));
        }
        let mut failures = Vec::new();
        for _ in 0..6 {
            let out = tokio::task::block_in_place(|| srv.run(&["audit", "verify", "--org", &boot.org_id]));
            if !out.status.success() {
                failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
            }
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut reads = 0;
        for r in readers {
            reads += r.await.unwrap();
        }
        assert!(reads > 0);
        assert!(failures.is_empty(), "audit verify reported an untouched trail as broken while the server was writing to it: {failures:?}");
        let out = srv.run(&["audit", "verify"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    async fn audit_verify_detects_tampering(b: Backend) {
        let Some(srv) = TestServer::start(b).await else { return };
        let a = org_with_activity(&srv, "a@example.com", "org-a").await;

        let v = srv.run_json(&["audit", "verify", "--json"]);
        assert_eq!(v["intact"], true, "{v}");

        // The chain as the API shows it.
        let page = get_json(srv.req(Method::GET, &format!("/api/v1/orgs/{}/audit?limit=1000", a.org_id), Some(&a.api_key))).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() >= 8, "{page}");
        for (i, ev) in items.iter().enumerate() {
            assert_eq!(ev["seq"], i as u64 + 1, "{page}");
            for f in ["at", "actor", "action", "target", "ip", "hash", "prev_hash"] {
                assert!(!ev[f].is_null(), "event without {f}: {ev}");
            }
            if i > 0 {
                assert_eq!(ev["prev_hash"], items[i - 1]["hash"], "event {} does not link to its predecessor", i + 1);
            }
        }
        let actions: Vec<&str> = items.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for want in ["asset.create", "asset.read", "asset.delete"] {
            assert!(actions.contains(&want), "no {want} in {actions:?}");
        }
        let events = items.len() as i64;

        let b_ = org_with_activity(&srv, "b@example.com", "org-b").await;
        let c = org_with_activity(&srv, "c@example.com", "org-c").await;
        let d = org_with_activity(&srv, "d@example.com", "org-d").await;
        let e = org_with_activity(&srv, "e@example.com", "org-e").await;
        for boot in [&a, &b_, &c, &d, &e] {
            let (ok, stdout, stderr) = verify_org(&srv, &boot.org_id);
            assert!(ok, "fresh trail does not verify: {stdout} {stderr}");
        }
        let mut conn = srv.db_conn().await;

        // (a) an edited event.
        let target: String = sqlx::query_scalar("SELECT target FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(a.org_id.clone()).bind(3_i64).fetch_one(&mut conn).await.unwrap();
        sqlx::query("UPDATE audit_events SET target = $1 WHERE org_id = $2 AND seq = $3")
            .bind("key:someone-else".to_owned()).bind(a.org_id.clone()).bind(3_i64).execute(&mut conn).await.unwrap();
        assert_broken_at(&srv, &a.org_id, 3);
        // --org restricts the check: the other organizations still verify on their own.
        assert!(verify_org(&srv, &b_.org_id).0, "--org {} was affected by another org's tampering", b_.org_id);
        let out = srv.run(&["audit", "verify"]);
        assert!(!out.status.success(), "a full verify passed with a tampered org");
        sqlx::query("UPDATE audit_events SET target = $1 WHERE org_id = $2 AND seq = $3")
            .bind(target).bind(a.org_id.clone()).bind(3_i64).execute(&mut conn).await.unwrap();
        let v = srv.run_json(&["audit", "verify", "--json"]);
        assert_eq!(v["intact"], true, "restored trail does not verify: {v}");

        // (b) a deleted event in the middle.
        sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(b_.org_id.clone()).bind(4_i64).execute(&mut conn).await.unwrap();
        assert_broken_at(&srv, &b_.org_id, 4);

        // (c) two events swapped.
        for (from, to) in [(5_i64, -1_i64), (6, 5), (-1, 6)] {
            sqlx::query("UPDATE audit_events SET seq = $1 WHERE org_id = $2 AND seq = $3")
                .bind(to).bind(c.org_id.clone()).bind(from).execute(&mut conn).await.unwrap();
        }
        assert_broken_at(&srv, &c.org_id, 5);

        // (d) the last event deleted: the head still records it.
        sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(d.org_id.clone()).bind(events).execute(&mut conn).await.unwrap();
        let line = assert_broken_at(&srv, &d.org_id, events as u64);
        let lower = line.to_lowercase();
        assert!(lower.contains("delet") || lower.contains("missing") || lower.contains("truncat"), "{line}");

        // (e) the last event deleted and the head rewound to match: without the root key the
        // head cannot be re-signed, so this is caught too.
        let prev: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(e.org_id.clone()).bind(events - 1).fetch_one(&mut conn).await.unwrap();
        sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq = $2")
            .bind(e.org_id.clone()).bind(events).execute(&mut conn).await.unwrap();
        sqlx::query("UPDATE orgs SET audit_seq = $1, audit_head = $2 WHERE id = $3")
            .bind(events - 1).bind(prev).bind(e.org_id.clone()).execute(&mut conn).await.unwrap();
        let (ok, stdout, stderr) = verify_org(&srv, &e.org_id);
        assert!(!ok, "a truncated trail with a rewound head verified: {stdout}");
        assert!(stderr.lines().any(|l| l.starts_with("error:") && l.contains(&e.org_id)), "{stderr}");

        // Only the untouched organization is intact; the JSON says which are not.
        let out = srv.run(&["audit", "verify", "--json"]);
        assert!(!out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["intact"], false, "{v}");
        let by_org: BTreeMap<String, bool> = v["orgs"].as_array().unwrap().iter()
            .map(|r| (r["org_id"].as_str().unwrap().to_owned(), r["intact"].as_bool().unwrap()))
            .collect();
        assert_eq!(by_org.len(), 5, "{v}");
        assert!(by_org[&a.org_id]);
        for boot in [&b_, &c, &d, &e] {
            assert!(!by_org[&boot.org_id], "{} reported intact: {v}", boot.org_id);
        }

        // An unknown or malformed organization is an error, not "intact".
        let unknown = format!("org_{}", "0".repeat(32));
        let line = one_sentence_error(&srv.run(&["audit", "verify", "--org", &unknown]));
        assert!(line.to_lowercase().contains("organization"), "{line}");
        let line = one_sentence_error(&srv.run(&["audit", "verify", "--org", "acme"]));
        assert!(line.to_lowercase().contains("organization"), "{line}");
    }
}
