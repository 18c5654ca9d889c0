//! Test fixtures shared by the store conformance suite and the black-box HTTP suite: a fresh
//! database per test on each backend, and an HTTPS client that trusts a test instance's
//! certificate. Nothing here is linked into the product.
//!
//! PostgreSQL tests need `STRONGROOM_TEST_DATABASE_URL` (a superuser URL; `scripts/test.sh`
//! starts a private PostgreSQL on 127.0.0.1 and sets it). Without it, PostgreSQL tests fail with
//! a message saying so, unless `STRONGROOM_TEST_SKIP_POSTGRES=1` says to skip them on purpose.
//!
//! S3 tests need `STRONGROOM_TEST_S3_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `STRONGROOM_TEST_S3_ROOT` (`scripts/test.sh` starts s3s-fs with `scripts/s3.sh` and exports
//! them). The same rule applies: missing is a failure, unless `STRONGROOM_TEST_SKIP_S3=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use sqlx::Connection;

/// A database engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in the instance's data dir.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// A database for one test. PostgreSQL databases are dropped when this is dropped.
pub struct TestDb {
    /// The engine.
    pub backend: Backend,
    /// The URL to hand to Strongroom; `None` means "SQLite in the data dir".
    pub url: Option<String>,
    admin_url: Option<String>,
    name: Option<String>,
}

impl TestDb {
    /// A fresh database, or `None` when PostgreSQL tests are explicitly skipped.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => Some(TestDb {
                backend,
                url: None,
                admin_url: None,
                name: None,
            }),
            Backend::Postgres => {
                let Ok(admin) = std::env::var("STRONGROOM_TEST_DATABASE_URL") else {
                    if std::env::var("STRONGROOM_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
                        eprintln!("PostgreSQL test skipped (STRONGROOM_TEST_SKIP_POSTGRES=1)");
                        return None;
                    }
                    panic!(
                        "STRONGROOM_TEST_DATABASE_URL is not set: run ./scripts/test.sh (it starts PostgreSQL), \
                         or set STRONGROOM_TEST_SKIP_POSTGRES=1 to skip PostgreSQL tests"
                    );
                };
                let name = format!("sr_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("connect to the test PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create a test database");
                conn.close().await.ok();
                let url = replace_db(&admin, &name);
                Some(TestDb {
                    backend,
                    url: Some(url),
                    admin_url: Some(admin),
                    name: Some(name),
                })
            }
        }
    }

    /// The URL of the database as seen by a direct client (tests that tamper with rows):
    /// the PostgreSQL URL, or `sqlite:` + the file in `data_dir`.
    pub fn direct_url(&self, data_dir: &Path) -> String {
        match &self.url {
            Some(u) => u.clone(),
            None => format!("sqlite:{}", data_dir.join("strongroom.db").display()),
        }
    }
}

fn replace_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (Some(admin), Some(name)) = (self.admin_url.take(), self.name.take()) else {
            return;
        };
        // Drop runs outside async context: a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .ok()?;
                conn.close().await.ok()
            })
        })
        .join();
    }
}

/// The S3 test server (`scripts/s3.sh`): a bucket on s3s-fs, which checks SigV4 signatures and
/// keeps each object as a plain file under `root/<bucket>/<key>`.
pub struct TestS3 {
    /// `s3://bucket?endpoint=http://127.0.0.1:PORT&region=...`.
    pub url: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The folder s3s-fs stores everything in (all buckets, and uploads in progress).
    pub root: PathBuf,
}

impl TestS3 {
    /// The test server from the environment, or `None` when S3 tests are explicitly skipped.
    pub fn from_env() -> Option<TestS3> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(url) = var("STRONGROOM_TEST_S3_URL") else {
            if var("STRONGROOM_TEST_SKIP_S3").as_deref() == Some("1") {
                eprintln!("S3 test skipped (STRONGROOM_TEST_SKIP_S3=1)");
                return None;
            }
            panic!(
                "STRONGROOM_TEST_S3_URL is not set: run ./scripts/test.sh (it starts an S3 server, \
                 scripts/s3.sh), or `scripts/s3.sh start` and `eval \"$(scripts/s3.sh env)\"`, \
                 or set STRONGROOM_TEST_SKIP_S3=1 to skip S3 tests"
            );
        };
        let need = |name: &str| {
            var(name).unwrap_or_else(|| {
                panic!(
                    "{name} is not set: `scripts/s3.sh env` prints it with STRONGROOM_TEST_S3_URL"
                )
            })
        };
        Some(TestS3 {
            url,
            access_key_id: need("AWS_ACCESS_KEY_ID"),
            secret_access_key: need("AWS_SECRET_ACCESS_KEY"),
            root: PathBuf::from(need("STRONGROOM_TEST_S3_ROOT")),
        })
    }

    /// The bucket of [`TestS3::url`].
    pub fn bucket(&self) -> &str {
        let rest = self.url.strip_prefix("s3://").unwrap_or(&self.url);
        let place = rest.split('?').next().unwrap_or(rest);
        place.split('/').next().unwrap_or(place)
    }

    /// [`TestS3::url`] with `prefix` appended to its key prefix, so that each test has its own
    /// corner of the bucket.
    pub fn url_with_prefix(&self, prefix: &str) -> String {
        let (place, query) = self.url.split_once('?').unwrap_or((&self.url, ""));
        let place = place.trim_end_matches('/');
        match query {
            "" => format!("{place}/{prefix}"),
            q => format!("{place}/{prefix}?{q}"),
        }
    }

    /// The folder holding the files of the objects whose keys start with `key_prefix/`.
    pub fn dir_of(&self, key_prefix: &str) -> PathBuf {
        self.root.join(self.bucket()).join(key_prefix)
    }
}

/// Every regular file under `dir`, recursively; files removed while walking are skipped.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&p, out),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// An HTTPS client that trusts exactly the PEM certificate at `ca`, with no cookies or
/// redirects, speaking whatever ALPN the server picks.
pub fn https_client(ca: &Path) -> reqwest::Client {
    https_client_builder(ca)
        .build()
        .expect("build the HTTPS client")
}

/// The builder behind [`https_client`], for tests that tune it (TLS versions, HTTP/1 only).
pub fn https_client_builder(ca: &Path) -> reqwest::ClientBuilder {
    let pem = std::fs::read(ca).expect("read the test certificate");
    let cert = reqwest::Certificate::from_pem(&pem).expect("parse the test certificate");
    reqwest::Client::builder()
        .tls_certs_only([cert])
        .redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    #[test]
    fn s3_urls_get_a_prefix_per_test() {
        let s3 = super::TestS3 {
            url: "s3://strongroom-test?endpoint=http://127.0.0.1:54330&region=us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            root: "/tmp/s3".into(),
        };
        assert_eq!(s3.bucket(), "strongroom-test");
        assert_eq!(
            s3.url_with_prefix("t-1"),
            "s3://strongroom-test/t-1?endpoint=http://127.0.0.1:54330&region=us-east-1"
        );
        assert_eq!(
            s3.dir_of("t-1/objects"),
            std::path::Path::new("/tmp/s3/strongroom-test/t-1/objects")
        );
        let plain = super::TestS3 {
            url: "s3://bkt/base/".into(),
            ..s3
        };
        assert_eq!(plain.url_with_prefix("t-2"), "s3://bkt/base/t-2");
    }

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::replace_db("postgres://u:p@127.0.0.1:5432/postgres", "x"),
            "postgres://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::replace_db("postgres://u:p@h:1/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:1/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_db("postgres://u:p@h:1", "x"),
            "postgres://u:p@h:1/x"
        );
    }
}
