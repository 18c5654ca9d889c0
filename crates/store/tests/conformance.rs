//! The store's behaviour suite: every case runs on SQLite and on PostgreSQL.
//!
//! A case is an `async fn(&Env)`; `conformance!` turns each one into a module with a `sqlite` and
//! a `postgres` test, so `cargo test -p strongroom-store --test conformance orgs` runs one
//! behaviour on both engines. Each test gets a fresh database (a temporary SQLite file, or a
//! PostgreSQL database the testkit drops afterwards). Cases live in `conformance/`, by table group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use strongroom_crypto::keys::{FieldKey, MacKey, RootKey};
use strongroom_store::{FieldSealer, Store};
use strongroom_testkit::{Backend, TestDb};

/// The sealer the server uses (AES-256-GCM field key, HMAC blind indexes), over a fixed root key
/// so every store of a test reads the others' rows.
struct TestSealer(FieldKey, MacKey);

impl FieldSealer for TestSealer {
    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.0.seal(aad, plaintext)
    }
    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        self.0.open(aad, sealed).ok().map(|p| p.to_vec())
    }
    fn index(&self, data: &[u8]) -> [u8; 32] {
        self.1.mac(data)
    }
    fn new_person_key(&self) -> [u8; 32] {
        strongroom_crypto::token::random_bytes()
    }
    fn seal_with(&self, key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        FieldKey::from_bytes(key).seal(aad, plaintext)
    }
    fn open_with(&self, key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        FieldKey::from_bytes(key)
            .open(aad, sealed)
            .ok()
            .map(|p| p.to_vec())
    }
}

pub(crate) fn sealer() -> Arc<dyn FieldSealer> {
    let root = RootKey::from_bytes(&[7u8; 32]).unwrap();
    Arc::new(TestSealer(root.field_key("metadata"), root.derive("index")))
}

/// Connects to `url` with the test sealer.
pub(crate) async fn connect(url: &str) -> Store {
    Store::connect(url, sealer()).await.unwrap()
}

/// One test's database and a store connected to it. Field order is drop order: the pool goes
/// before the database it points at.
pub(crate) struct Env {
    pub(crate) store: Store,
    backend: Backend,
    pub(crate) url: String,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl Env {
    /// A migrated store on a fresh database, or `None` when PostgreSQL is skipped on purpose.
    pub(crate) async fn new(backend: Backend) -> Option<Env> {
        let db = TestDb::new(backend).await?;
        let dir = tempfile::tempdir().unwrap();
        let url = match &db.url {
            Some(url) => url.clone(),
            None => format!("sqlite:{}/t.db?mode=rwc", dir.path().display()),
        };
        let store = connect(&url).await;
        Some(Env {
            store,
            backend,
            url,
            _db: db,
            _dir: dir,
        })
    }
}

impl Env {
    /// The engine this database runs on.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }
}

/// For each case `f` in scope, a module `f` with one test per backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some(env) = crate::Env::new(crate::Backend::Sqlite).await else {
                    return;
                };
                super::$case(&env).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(env) = crate::Env::new(crate::Backend::Postgres).await else {
                    return;
                };
                super::$case(&env).await;
            }
        }
    )*};
}

#[path = "conformance/audit.rs"]
mod audit;
#[path = "conformance/authz_epoch.rs"]
mod authz_epoch;
#[path = "conformance/backup.rs"]
mod backup;
#[path = "conformance/erasure.rs"]
mod erasure;
#[path = "conformance/fixtures.rs"]
mod fixtures;
#[path = "conformance/jobs.rs"]
mod jobs;
#[path = "conformance/keys.rs"]
mod keys;
#[path = "conformance/links.rs"]
mod links;
#[path = "conformance/regions.rs"]
mod regions;
#[path = "conformance/sealing.rs"]
mod sealing;
#[path = "conformance/tenancy.rs"]
mod tenancy;

use fixtures::new_org;

conformance!(migrations_are_idempotent);

async fn migrations_are_idempotent(env: &Env) {
    let org = new_org(&env.store, "Acme").await;
    env.store.close().await;

    // A second start on a migrated database neither fails nor loses data.
    let again = connect(&env.url).await;
    let found = again.org(&org.id).await.unwrap().unwrap();
    assert_eq!(found.name, org.name);

    // ...and records each migration once.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&env.url).await.unwrap();
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(applied, strongroom_store::migration_versions());
    assert_eq!(applied.last(), Some(&strongroom_store::SCHEMA_VERSION));
    pool.close().await;

    // A third start still works and the store is writable.
    again.close().await;
    let third = connect(&env.url).await;
    new_org(&third, "Globex").await;
    assert_eq!(third.org_ids().await.unwrap().len(), 2);
    third.close().await;
}
