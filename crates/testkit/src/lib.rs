//! Test fixtures shared by the store conformance suite and the black-box HTTP suite: a fresh
//! database per test on each backend, and an HTTPS client that trusts a test instance's
//! certificate. Nothing here is linked into the product.
//!
//! PostgreSQL tests need `STRONGROOM_TEST_DATABASE_URL` (a superuser URL; `scripts/test.sh`
//! starts a private PostgreSQL on 127.0.0.1 and sets it). Without it, PostgreSQL tests fail with
//! a message saying so, unless `STRONGROOM_TEST_SKIP_POSTGRES=1` says to skip them on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

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
