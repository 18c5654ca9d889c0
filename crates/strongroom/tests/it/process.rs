//! Running the real `strongroom` binary as a child process: CLI invocations, `serve` with its
//! ready line, signals and exits. Shared by `cli`, `keys`, `audit_verify`, `signals` and `crash`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

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
    spawn_serve_with(data_dir, &[])
}

/// [`spawn_serve`] with extra environment variables (e.g. `STRONGROOM_LOG=info` for a test that
/// reads the access log).
pub(crate) fn spawn_serve_with(data_dir: &Path, env: &[(&str, &str)]) -> Started {
    let started_at = Instant::now();
    let mut child = bin()
        .envs(env.iter().copied())
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

/// A data dir for the binary on either backend: SQLite inside the dir, or a fresh PostgreSQL
/// database (dropped with this), handed to every `serve` and CLI run as
/// `STRONGROOM_DATABASE_URL`.
pub(crate) struct BinInstance {
    pub dir: std::path::PathBuf,
    pub db: strongroom_testkit::TestDb,
    _tmp: tempfile::TempDir,
}

impl BinInstance {
    /// A new, empty instance; `None` when this backend is skipped.
    pub(crate) async fn new(backend: Backend) -> Option<BinInstance> {
        let db = strongroom_testkit::TestDb::new(backend).await?;
        let tmp = tempfile::tempdir().unwrap();
        Some(BinInstance {
            dir: tmp.path().join("data"),
            db,
            _tmp: tmp,
        })
    }

    fn env(&self) -> Vec<(&'static str, &str)> {
        self.db
            .url
            .iter()
            .map(|u| ("STRONGROOM_DATABASE_URL", u.as_str()))
            .collect()
    }

    /// [`spawn_serve`] on this instance. Once it serves, the data dir holds an SQLite database
    /// exactly when the backend is SQLite: a PostgreSQL test really runs on PostgreSQL.
    pub(crate) fn serve(&self) -> Started {
        let started = spawn_serve_with(&self.dir, &self.env());
        if let Started::Serving(_) = &started {
            assert_eq!(
                self.dir.join("strongroom.db").exists(),
                self.db.backend == Backend::Sqlite,
                "serve used the wrong database for {:?}",
                self.db.backend
            );
        }
        started
    }

    /// The binary pointed at this instance (the caller adds the arguments).
    pub(crate) fn bin(&self) -> Command {
        let mut c = bin();
        c.envs(self.env())
            .env("STRONGROOM_DATA_DIR", &self.dir)
            .stdin(Stdio::null());
        c
    }

    /// Runs the binary on this instance and parses its JSON output; panics with stderr on failure.
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let out = self.bin().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A direct database connection, for tests that look at rows.
    pub(crate) async fn db_conn(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.db.direct_url(&self.dir))
            .await
            .unwrap()
    }

    /// [`bootstrap_with_space`] on this instance: (api key, org id, space id).
    pub(crate) async fn bootstrap_with_space(
        &self,
        srv: &BinServer,
        email: &str,
        space_name: &str,
    ) -> (String, String, String) {
        let boot = self.json(&[
            "admin",
            "bootstrap",
            "--email",
            email,
            "--org",
            "acme",
            "--json",
        ]);
        let key = boot["api_key"].as_str().unwrap().to_owned();
        let org = boot["org_id"].as_str().unwrap().to_owned();
        let space = create_space(srv, &key, &org, space_name).await;
        (key, org, space)
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

/// Starts and stops a binary server once so that `dir` holds an instance.
pub(crate) async fn make_instance(dir: &Path) {
    let mut srv = tokio::task::block_in_place(|| spawn_serve(dir)).serving();
    // Serving a request first (see `signals::sigterm_right_after_the_ready_line_stops_cleanly`).
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

/// With `srv` serving `dir`: bootstraps an owner of org "acme" through the CLI, then creates a
/// space over HTTP. Returns (api key, org id, space id).
pub(crate) async fn bootstrap_with_space(
    srv: &BinServer,
    dir: &Path,
    email: &str,
    space_name: &str,
) -> (String, String, String) {
    let boot = bin_json(
        dir,
        &[
            "admin",
            "bootstrap",
            "--email",
            email,
            "--org",
            "acme",
            "--json",
        ],
    );
    let key = boot["api_key"].as_str().unwrap().to_owned();
    let org = boot["org_id"].as_str().unwrap().to_owned();
    let space = create_space(srv, &key, &org, space_name).await;
    (key, org, space)
}

/// Creates a space over HTTP; returns its id.
async fn create_space(srv: &BinServer, key: &str, org: &str, name: &str) -> String {
    let res = srv
        .req(
            Method::POST,
            &format!("/api/v1/orgs/{org}/spaces"),
            Some(key),
        )
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}
