//! The black-box fixture: a real Strongroom instance (the same `serve::start` the binary runs)
//! on 127.0.0.1:0 over HTTPS, in a temporary data dir, on SQLite or a fresh PostgreSQL database;
//! the real `strongroom` binary for CLI steps; a real HTTPS client.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use strongroom::serve::{ServeSettings, Timeouts};
pub use strongroom_testkit::Backend;
use strongroom_testkit::{TestDb, https_client};

/// Runs an async test body once per backend, as `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($b:ident: Backend) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($b: $crate::support::Backend) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { run($crate::support::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { run($crate::support::Backend::Postgres).await }
        }
    )*};
}

/// The `strongroom` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_strongroom");

/// A running test instance.
pub struct TestServer {
    /// `https://127.0.0.1:PORT`.
    pub base: String,
    /// A client that trusts the instance's certificate.
    pub client: reqwest::Client,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The certificate the server presents.
    pub cert: PathBuf,
    /// The database.
    pub db: TestDb,
    /// The service behind the server.
    pub service: std::sync::Arc<strongroom_service::Service>,
    /// The config file the server and [`TestServer::cli`] read, if the test gave one.
    pub config: Option<PathBuf>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// What `admin bootstrap --json` printed.
#[derive(Debug, Clone)]
pub struct Boot {
    pub user_id: String,
    pub org_id: String,
    pub api_key: String,
}

/// Settings for a test instance: defaults plus short timeouts.
pub fn settings(data_dir: &Path, db: &TestDb) -> ServeSettings {
    settings_with_config(data_dir, db, None).unwrap()
}

/// [`settings`] reading a config file too, as `--config FILE` does; an invalid file is an error.
pub fn settings_with_config(
    data_dir: &Path,
    db: &TestDb,
    config: Option<&Path>,
) -> anyhow::Result<ServeSettings> {
    let args = strongroom::cli::ServeArgs {
        instance: strongroom::cli::InstanceArgs {
            config: config.map(Path::to_owned),
            data_dir: Some(data_dir.to_owned()),
            database_url: db.url.clone(),
            master_key_file: None,
        },
        listen: Some("127.0.0.1:0".parse().unwrap()),
        tls_cert: None,
        tls_key: None,
        allow_tls12: false,
        max_upload_bytes: None,
        link_max_expires_in: None,
        public_url: None,
        security_contact: Some("mailto:security@example.com".into()),
        log_format: "text".into(),
        edge: Default::default(),
    };
    let mut s = ServeSettings::resolve(&args)?;
    s.timeouts = Timeouts {
        header_read: Duration::from_secs(2),
        ..s.timeouts
    };
    Ok(s)
}

impl TestServer {
    /// Starts an instance with default settings; `None` when this backend is skipped.
    pub async fn start(backend: Backend) -> Option<TestServer> {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts an instance after `tweak` adjusts its settings.
    pub async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut ServeSettings),
    ) -> Option<TestServer> {
        Self::start_configured(backend, None, tweak).await
    }

    /// Starts an instance whose config file holds `toml` (`--config FILE`); the binary run
    /// through [`TestServer::cli`] reads the same file, and [`TestServer::restart`] too.
    pub async fn start_with_config(backend: Backend, toml: &str) -> Option<TestServer> {
        Self::start_configured(backend, Some(toml), |_| {}).await
    }

    async fn start_configured(
        backend: Backend,
        toml: Option<&str>,
        tweak: impl FnOnce(&mut ServeSettings),
    ) -> Option<TestServer> {
        let db = TestDb::new(backend).await?;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let config = toml.map(|text| {
            let path = dir.path().join("strongroom.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut s = settings_with_config(&data_dir, &db, config.as_deref()).unwrap();
        tweak(&mut s);
        Some(Self::serve(s, dir, data_dir, db, config).await)
    }

    /// Starts an instance on an existing data dir and database (a restored one), kept in `dir`.
    pub async fn start_in(dir: tempfile::TempDir, data_dir: PathBuf, db: TestDb) -> TestServer {
        let s = settings_with_config(&data_dir, &db, None).unwrap();
        Self::serve(s, dir, data_dir, db, None).await
    }

    async fn serve(
        s: ServeSettings,
        dir: tempfile::TempDir,
        data_dir: PathBuf,
        db: TestDb,
        config: Option<PathBuf>,
    ) -> TestServer {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = strongroom::serve::start(s, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        let base = format!("https://{}", running.addr);
        let client = https_client(&running.cert_path);
        TestServer {
            base,
            client,
            data_dir,
            cert: running.cert_path,
            db,
            service: running.service,
            config,
            shutdown: Some(tx),
            done: Some(running.done),
            _dir: dir,
        }
    }

    /// Stops the server gracefully and starts it again on the same data dir, database and
    /// config file (a new port: [`TestServer::base`] and the client follow).
    pub async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap().unwrap();
        }
        let s = settings_with_config(&self.data_dir, &self.db, self.config.as_deref()).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = strongroom::serve::start(s, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        self.base = format!("https://{}", running.addr);
        self.client = https_client(&running.cert_path);
        self.cert = running.cert_path;
        self.service = running.service;
        self.shutdown = Some(tx);
        self.done = Some(running.done);
    }

    /// Full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with an optional API key.
    pub fn req(&self, method: Method, path: &str, key: Option<&str>) -> RequestBuilder {
        let r = self.client.request(method, self.url(path));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    /// The `strongroom` binary pointed at this instance.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("STRONGROOM_DATA_DIR", &self.data_dir)
            .env_remove("STRONGROOM_DATABASE_URL")
            .env("STRONGROOM_LOG", "warn");
        if let Some(url) = &self.db.url {
            c.env("STRONGROOM_DATABASE_URL", url);
        }
        if let Some(config) = &self.config {
            c.env("STRONGROOM_CONFIG", config);
        }
        c
    }

    /// Runs the binary with `args`, no stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cli().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs the binary and parses its JSON output; panics with stderr on failure.
    pub fn run_json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `admin bootstrap` of owner@example.com in "acme" through the real binary, as JSON: with
    /// the generated password, for tests that sign in.
    pub fn bootstrap_owner_json(&self) -> serde_json::Value {
        self.run_json(&[
            "admin",
            "bootstrap",
            "--email",
            "owner@example.com",
            "--org",
            "acme",
            "--json",
        ])
    }

    /// `admin bootstrap` through the real binary.
    pub fn bootstrap(&self, email: &str, org: &str) -> Boot {
        self.bootstrap_args(&["--email", email, "--org", org]).0
    }

    /// `admin bootstrap ARGS --json`: the ids and key, and the whole answer.
    fn bootstrap_args(&self, args: &[&str]) -> (Boot, Value) {
        let v = self.run_json(&[&["admin", "bootstrap"], args, &["--json"]].concat());
        let boot = Boot {
            user_id: v["user_id"].as_str().unwrap().into(),
            org_id: v["org_id"].as_str().unwrap().into(),
            api_key: v["api_key"].as_str().unwrap().into(),
        };
        (boot, v)
    }

    /// `admin bootstrap --region` through the real binary.
    pub fn bootstrap_in(&self, email: &str, org: &str, region: &str) -> Boot {
        let (boot, v) = self.bootstrap_args(&["--email", email, "--org", org, "--region", region]);
        assert_eq!(v["region"], region, "{v}");
        boot
    }

    /// `admin create-api-key` through the real binary; returns (id, secret).
    pub fn create_key(&self, org_id: &str, role: &str) -> (String, String) {
        let v = self.run_json(&[
            "admin",
            "create-api-key",
            "--org",
            org_id,
            "--role",
            role,
            "--json",
        ]);
        (
            v["id"].as_str().unwrap().into(),
            v["api_key"].as_str().unwrap().into(),
        )
    }

    /// Creates a space; returns its id.
    pub async fn create_space(&self, key: &str, org_id: &str, name: &str) -> String {
        let res = self
            .req(
                Method::POST,
                &format!("/api/v1/orgs/{org_id}/spaces"),
                Some(key),
            )
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .unwrap();
        let v = expect_json(res, StatusCode::CREATED).await;
        v["id"].as_str().unwrap().into()
    }

    /// Uploads a raw body; returns the asset JSON.
    pub async fn upload(&self, key: &str, space: &str, filename: &str, bytes: Vec<u8>) -> Value {
        let res = self
            .req(
                Method::POST,
                &format!("/api/v1/spaces/{space}/assets?filename={filename}"),
                Some(key),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .unwrap();
        expect_json(res, StatusCode::CREATED).await
    }

    /// Every regular file under the data dir.
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out)
                } else {
                    out.push(p)
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir, &mut out);
        out
    }

    /// Stored object files (committed blobs).
    pub fn object_files(&self) -> Vec<PathBuf> {
        self.files()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/blobs/objects/"))
            .collect()
    }

    /// Files in the blob store's temp area.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        self.files()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains("/blobs/tmp/"))
            .collect()
    }

    /// A direct database connection, for tests that tamper with rows.
    pub async fn db_conn(&self) -> sqlx::AnyConnection {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(&self.db.direct_url(&self.data_dir))
            .await
            .unwrap()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts the status and parses a JSON body.
pub async fn expect_json(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Asserts a problem+json response with this status and code.
pub async fn expect_problem(res: Response, status: StatusCode, code: &str) -> Value {
    let got = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert_eq!(ct, "application/problem+json", "body: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], code, "body: {text}");
    assert_eq!(v["status"], status.as_u16());
    for field in ["type", "title", "detail"] {
        assert!(v[field].is_string(), "problem without {field}: {text}");
    }
    v
}

/// Sends `req` and asserts a 200 JSON body.
pub async fn get_json(req: reqwest::RequestBuilder) -> Value {
    expect_json(req.send().await.unwrap(), StatusCode::OK).await
}

/// Downloads an asset's content and asserts a 200.
pub async fn download(srv: &TestServer, key: &str, id: &str) -> Vec<u8> {
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

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A signed-in browser: the cookie and the CSRF token.
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
    pub login: Value,
}

pub async fn login(srv: &TestServer, email: &str, password: &str) -> reqwest::Response {
    srv.client
        .post(srv.url("/api/v1/auth/login"))
        .header("user-agent", "strongroom-tests/1")
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

pub async fn sign_in(srv: &TestServer, email: &str, password: &str) -> Browser {
    browser_of(login(srv, email, password).await).await
}

/// Signs in to one organization of several.
pub async fn sign_in_to(srv: &TestServer, email: &str, password: &str, org_id: &str) -> Browser {
    let res = srv
        .client
        .post(srv.url("/api/v1/auth/login"))
        .header("user-agent", "strongroom-tests/1")
        .json(&serde_json::json!({"email": email, "password": password, "org_id": org_id}))
        .send()
        .await
        .unwrap();
    browser_of(res).await
}

async fn browser_of(res: reqwest::Response) -> Browser {
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = expect_json(res, StatusCode::OK).await;
    let set_cookie = set_cookie.expect("login sets a cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    Browser {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        login: body,
    }
}

impl Browser {
    pub fn req(&self, srv: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
        srv.client
            .request(method, srv.url(path))
            .header("cookie", &self.cookie)
    }

    /// A state-changing request with the CSRF token, as the dashboard sends it.
    pub fn send(&self, srv: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.req(srv, method, path)
            .header("x-csrf-token", &self.csrf)
    }
}

/// Bootstraps an owner and returns (boot, generated password).
pub fn owner(srv: &TestServer) -> (Boot, String) {
    let v = srv.bootstrap_owner_json();
    let boot = Boot {
        user_id: v["user_id"].as_str().unwrap().into(),
        org_id: v["org_id"].as_str().unwrap().into(),
        api_key: v["api_key"].as_str().unwrap().into(),
    };
    (boot, v["password"].as_str().unwrap().to_owned())
}

pub async fn status(res: reqwest::RequestBuilder) -> StatusCode {
    res.send().await.unwrap().status()
}

/// The SMTP sink the test script starts (`scripts/mailsink.sh`): its URL and Maildir.
pub fn mail_sink() -> (String, PathBuf) {
    let url = std::env::var("STRONGROOM_TEST_SMTP_URL");
    let dir = std::env::var("STRONGROOM_TEST_MAILDIR");
    match (url, dir) {
        (Ok(url), Ok(dir)) => (url, PathBuf::from(dir)),
        _ => panic!(
            "these tests need the SMTP sink: run ./scripts/test.sh, or `scripts/mailsink.sh start` \
             and export STRONGROOM_TEST_SMTP_URL and STRONGROOM_TEST_MAILDIR from its two lines"
        ),
    }
}

impl TestServer {
    /// Starts an instance that sends mail to the test SMTP sink.
    pub async fn start_with_mail(backend: Backend) -> Option<TestServer> {
        let (url, _) = mail_sink();
        Self::start_with(backend, |s| {
            let mailer =
                strongroom::mail::SmtpMailer::new(&url, "Strongroom <noreply@strongroom.test>")
                    .unwrap();
            s.instance.service.mailer = Some(std::sync::Arc::new(mailer));
        })
        .await
    }
}

/// A message the sink received.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub subject: String,
    /// The decoded body.
    pub body: String,
}

/// Undoes quoted-printable transfer encoding (soft line breaks and `=XX`).
fn decode_quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mail(raw: &str) -> (Vec<(String, String)>, String) {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let encoding = headers
        .iter()
        .find(|(k, _)| k == "content-transfer-encoding")
        .map(|(_, v)| v.to_ascii_lowercase());
    let body = match encoding.as_deref() {
        Some("quoted-printable") => decode_quoted_printable(body),
        Some("base64") => {
            use base64::Engine;
            let compact: String = body.split_whitespace().collect();
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap(),
            )
            .into_owned()
        }
        _ => body.to_owned(),
    };
    (headers, body)
}

/// Every message the sink has received for `to`, oldest first.
pub fn mail_to(to: &str) -> Vec<ReceivedMail> {
    let (_, dir) = mail_sink();
    let mut found: Vec<(std::time::SystemTime, ReceivedMail)> = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    for e in entries.flatten() {
        let Ok(raw) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let (headers, body) = parse_mail(&raw);
        let rcpt = headers
            .iter()
            .filter(|(k, _)| k == "x-rcptto" || k == "to")
            .any(|(_, v)| v.to_ascii_lowercase().contains(&to.to_ascii_lowercase()));
        if !rcpt {
            continue;
        }
        let subject = headers
            .iter()
            .find(|(k, _)| k == "subject")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let at = e
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        found.push((at, ReceivedMail { subject, body }));
    }
    found.sort_by_key(|(at, _)| *at);
    found.into_iter().map(|(_, m)| m).collect()
}

/// Waits (up to 20 s) until the sink holds a message for `to` whose subject contains
/// `subject`, and returns it.
pub async fn wait_for_mail(to: &str, subject: &str) -> ReceivedMail {
    for _ in 0..200 {
        if let Some(m) = mail_to(to)
            .into_iter()
            .find(|m| m.subject.contains(subject))
        {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no mail to {to} with subject containing {subject:?}; got {:?}",
        mail_to(to)
    );
}

/// The token after `/invite#` in an invitation message.
pub fn invite_token(mail: &ReceivedMail) -> String {
    let at = mail
        .body
        .find("/invite#")
        .expect("the message carries the link");
    mail.body[at + "/invite#".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// A unique address for one test, so tests sharing the sink never read each other's mail.
pub fn unique_email(label: &str) -> String {
    format!(
        "{label}-{}@example.com",
        strongroom_domain::UserId::generate()
            .as_str()
            .trim_start_matches("usr_")
    )
}

/// Adds a member through the real binary (with a password when one is given); returns their
/// user id.
pub fn add_member(
    srv: &TestServer,
    org_id: &str,
    email: &str,
    role: &str,
    password: Option<&str>,
) -> String {
    use std::io::Write;
    let mut cmd = srv.cli();
    cmd.args([
        "admin",
        "create-user",
        "--email",
        email,
        "--org",
        org_id,
        "--role",
        role,
        "--json",
    ]);
    if password.is_some() {
        cmd.arg("--password-stdin");
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(pw) = password {
        stdin.write_all(pw.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "create-user: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["user_id"].as_str().unwrap().to_owned()
}
