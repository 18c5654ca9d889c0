//! The store's behaviour suite: every case runs on SQLite and on PostgreSQL.
//!
//! A case is an `async fn(&Env)` below; the `conformance!` macro turns each one into a module with
//! a `sqlite` and a `postgres` test, so `cargo test -p strongroom-store --test conformance orgs`
//! runs one behaviour on both engines. Each test gets a fresh database (a temporary SQLite file,
//! or a PostgreSQL database that the testkit drops afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use strongroom_domain::{
    ApiKeyId, AssetId, BlobId, Email, Filename, Name, OrgId, Role, SpaceId, Timestamp, UserId,
};
use strongroom_store::{
    ApiKeyRow, AssetRow, BlobRow, KekRow, NewAuditEvent, OrgRow, SpaceRow, Store, StoreError,
    UserRow,
};
use strongroom_testkit::{Backend, TestDb};

/// One test's database and a store connected to it. Field order is drop order: the pool goes
/// before the database it points at.
struct Env {
    store: Store,
    url: String,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl Env {
    /// A migrated store on a fresh database, or `None` when PostgreSQL is skipped on purpose.
    async fn new(backend: Backend) -> Option<Env> {
        let db = TestDb::new(backend).await?;
        let dir = tempfile::tempdir().unwrap();
        let url = match &db.url {
            Some(url) => url.clone(),
            None => format!("sqlite:{}/t.db?mode=rwc", dir.path().display()),
        };
        let store = Store::connect(&url).await.unwrap();
        Some(Env {
            store,
            url,
            _db: db,
            _dir: dir,
        })
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let Some(env) = super::Env::new(super::Backend::Sqlite).await else { return };
                super::$case(&env).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(env) = super::Env::new(super::Backend::Postgres).await else { return };
                super::$case(&env).await;
            }
        }
    )*};
}

conformance!(
    migrations_are_idempotent,
    orgs,
    users,
    memberships,
    spaces_are_scoped_and_paged,
    assets_are_scoped_paged_and_deleted_once,
    blobs,
    keks,
    api_keys,
    audit_chain,
    rolled_back_transaction_leaves_nothing,
    concurrent_audit_appends_are_serialized,
    references_are_enforced,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

const GENESIS: &[u8] = &[0_u8; 32];

fn org_row(n: &str) -> OrgRow {
    OrgRow {
        id: OrgId::generate(),
        name: name(n),
        created_at: ts(1_700_000_000_000),
    }
}

async fn new_org(store: &Store, n: &str) -> OrgRow {
    let row = org_row(n);
    let mut tx = store.begin().await.unwrap();
    tx.insert_org(&row, GENESIS, b"genesis-mac").await.unwrap();
    tx.commit().await.unwrap();
    row
}

async fn new_user(store: &Store, email: &str) -> UserRow {
    let row = UserRow {
        id: UserId::generate(),
        email: Email::parse(email).unwrap(),
        created_at: ts(1_700_000_000_001),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_user(&row, Some("$argon2id$v=19$stub"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    row
}

async fn set_role(store: &Store, org: &OrgId, user: &UserId, role: Role) {
    let mut tx = store.begin().await.unwrap();
    tx.upsert_membership(org, user, role, ts(1_700_000_000_002))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn new_space(store: &Store, org: &OrgId, n: &str) -> SpaceRow {
    let row = SpaceRow {
        id: SpaceId::generate(),
        org_id: org.clone(),
        name: name(n),
        created_at: ts(1_700_000_000_003),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_space(&row).await.unwrap();
    tx.commit().await.unwrap();
    row
}

async fn new_kek(store: &Store, version: u32) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_kek(&kek_row(version), ts(1_700_000_000_004))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn kek_row(version: u32) -> KekRow {
    KekRow {
        version,
        wrapped: format!("wrapped-kek-{version}").into_bytes(),
    }
}

fn blob_row(org: &OrgId, kek_version: u32) -> BlobRow {
    BlobRow {
        id: BlobId::generate(),
        org_id: org.clone(),
        kek_version,
        wrapped_dek: BlobId::generate().as_str().as_bytes().to_vec(),
        // Past 2^32, so a 32-bit column or bind would show.
        size: 5_000_000_000,
        stored_size: 5_000_100_000,
        created_at: ts(1_700_000_000_005),
    }
}

async fn new_blob(store: &Store, org: &OrgId, kek_version: u32) -> BlobRow {
    let row = blob_row(org, kek_version);
    let mut tx = store.begin().await.unwrap();
    tx.insert_blob(&row).await.unwrap();
    tx.commit().await.unwrap();
    row
}

/// A blob and an asset on it, in one transaction (as an upload does).
async fn new_asset(store: &Store, space: &SpaceRow, n: usize) -> AssetRow {
    let blob = blob_row(&space.org_id, 1);
    let row = AssetRow {
        id: AssetId::generate(),
        org_id: space.org_id.clone(),
        space_id: space.id.clone(),
        blob_id: blob.id.clone(),
        filename: Filename::parse(&format!("file-{n}.pdf")).unwrap(),
        content_type: "application/pdf".into(),
        size: 5_000_000_000,
        sha256: format!("{n:064x}"),
        created_at: ts(1_700_000_000_006),
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_blob(&blob).await.unwrap();
    tx.insert_asset(&row).await.unwrap();
    tx.commit().await.unwrap();
    row
}

fn audit_event(n: i64) -> NewAuditEvent {
    NewAuditEvent {
        at: ts(1_700_000_100_000 + n),
        actor: "user:usr_test".into(),
        action: "asset.create".into(),
        target: format!("ast_{n}"),
        ip: "203.0.113.7".into(),
        detail: format!(r#"{{"n":{n}}}"#),
    }
}

/// A stand-in for the chain hash of event `seq` (the store never computes hashes).
fn hash_of(seq: i64) -> Vec<u8> {
    let mut h = vec![0xa5_u8; 24];
    h.extend_from_slice(&seq.to_be_bytes());
    h
}

/// Appends one event the way the service does and returns the (seq, prev_hash) it was given.
async fn append(store: &Store, org: &OrgId, n: i64) -> (i64, Vec<u8>) {
    let mut tx = store.begin().await.unwrap();
    let (seq, prev) = tx.lock_audit_head(org).await.unwrap();
    let mac = format!("mac-{seq}").into_bytes();
    tx.append_audit(org, seq, &audit_event(n), &prev, &hash_of(seq), &mac)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (seq, prev)
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> String) -> Vec<String> {
    items.iter().map(id).collect()
}

// ---------------------------------------------------------------------------------------------
// Cases

async fn migrations_are_idempotent(env: &Env) {
    let org = new_org(&env.store, "Acme").await;
    env.store.close().await;

    // A second start on a migrated database neither fails nor loses data.
    let again = Store::connect(&env.url).await.unwrap();
    let found = again.org(&org.id).await.unwrap().unwrap();
    assert_eq!(found.name, org.name);

    // ...and records the migration once.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&env.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, 1);
    pool.close().await;

    // A third start still works and the store is writable.
    again.close().await;
    let third = Store::connect(&env.url).await.unwrap();
    new_org(&third, "Globex").await;
    assert_eq!(third.org_ids().await.unwrap().len(), 2);
    third.close().await;
}

async fn orgs(env: &Env) {
    let s = &env.store;
    let acme = new_org(s, "Acme").await;
    let globex = new_org(s, "Globex").await;

    let by_id = s.org(&acme.id).await.unwrap().unwrap();
    assert_eq!(by_id.id, acme.id);
    assert_eq!(by_id.name, acme.name);
    assert_eq!(by_id.created_at, acme.created_at);

    let by_name = s.org_by_name(&name("Globex")).await.unwrap().unwrap();
    assert_eq!(by_name.id, globex.id);

    assert!(s.org(&OrgId::generate()).await.unwrap().is_none());
    assert!(s.org_by_name(&name("Initech")).await.unwrap().is_none());

    let mut all = s.org_ids().await.unwrap();
    all.sort();
    let mut want = vec![acme.id.clone(), globex.id.clone()];
    want.sort();
    assert_eq!(all, want);

    // A new organization's chain starts empty, at the genesis hash it was given.
    let head = s.audit_head(&acme.id).await.unwrap().unwrap();
    assert_eq!(head.seq, 0);
    assert_eq!(head.hash, GENESIS);
    assert_eq!(head.mac, b"genesis-mac");
    assert!(s.audit_head(&OrgId::generate()).await.unwrap().is_none());

    // The name is unique: a second "Acme" is a conflict, and the first one is untouched.
    let mut tx = s.begin().await.unwrap();
    let err = tx
        .insert_org(&org_row("Acme"), GENESIS, b"m")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    drop(tx);
    assert_eq!(
        s.org_by_name(&name("Acme")).await.unwrap().unwrap().id,
        acme.id
    );
    assert_eq!(s.org_ids().await.unwrap().len(), 2);
}

async fn users(env: &Env) {
    let s = &env.store;
    let alice = new_user(s, "alice@example.com").await;

    let found = s
        .user_by_email(&Email::parse("alice@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, alice.id);
    assert_eq!(found.email, alice.email);
    assert_eq!(found.created_at, alice.created_at);
    assert!(
        s.user_by_email(&Email::parse("bob@example.com").unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // The same address (emails are lower-cased when parsed) is a conflict.
    let twin = UserRow {
        id: UserId::generate(),
        email: Email::parse("Alice@Example.COM").unwrap(),
        created_at: ts(1),
    };
    let mut tx = s.begin().await.unwrap();
    let err = tx.insert_user(&twin, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    drop(tx);
    let still = s.user_by_email(&alice.email).await.unwrap().unwrap();
    assert_eq!(still.id, alice.id);

    // A user without a password is fine.
    let mut tx = s.begin().await.unwrap();
    let bob = UserRow {
        id: UserId::generate(),
        email: Email::parse("bob@example.com").unwrap(),
        created_at: ts(2),
    };
    tx.insert_user(&bob, None).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        s.user_by_email(&bob.email).await.unwrap().unwrap().id,
        bob.id
    );
}

async fn memberships(env: &Env) {
    let s = &env.store;
    let acme = new_org(s, "Acme").await;
    let globex = new_org(s, "Globex").await;
    let alice = new_user(s, "alice@example.com").await;
    let bob = new_user(s, "bob@example.com").await;

    assert_eq!(s.membership(&acme.id, &alice.id).await.unwrap(), None);

    set_role(s, &acme.id, &alice.id, Role::Viewer).await;
    assert_eq!(
        s.membership(&acme.id, &alice.id).await.unwrap(),
        Some(Role::Viewer)
    );

    // Upserting again changes the role instead of failing or adding a second row.
    set_role(s, &acme.id, &alice.id, Role::Admin).await;
    assert_eq!(
        s.membership(&acme.id, &alice.id).await.unwrap(),
        Some(Role::Admin)
    );

    // A membership is per (organization, user).
    assert_eq!(s.membership(&globex.id, &alice.id).await.unwrap(), None);
    assert_eq!(s.membership(&acme.id, &bob.id).await.unwrap(), None);
    set_role(s, &globex.id, &alice.id, Role::Owner).await;
    assert_eq!(
        s.membership(&globex.id, &alice.id).await.unwrap(),
        Some(Role::Owner)
    );
    assert_eq!(
        s.membership(&acme.id, &alice.id).await.unwrap(),
        Some(Role::Admin)
    );

    // Every role survives the round trip.
    for role in Role::ALL {
        set_role(s, &acme.id, &bob.id, role).await;
        assert_eq!(s.membership(&acme.id, &bob.id).await.unwrap(), Some(role));
    }
}

async fn spaces_are_scoped_and_paged(env: &Env) {
    let s = &env.store;
    let a = new_org(s, "Acme").await;
    let b = new_org(s, "Globex").await;

    // Interleave another organization's spaces so scoping is tested inside the id range.
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..5 {
        mine.push(new_space(s, &a.id, &format!("A space {i}")).await);
        theirs.push(new_space(s, &b.id, &format!("B space {i}")).await);
    }

    let got = s.space(&a.id, &mine[0].id).await.unwrap().unwrap();
    assert_eq!(got.id, mine[0].id);
    assert_eq!(got.org_id, a.id);
    assert_eq!(got.name, mine[0].name);
    assert_eq!(got.created_at, mine[0].created_at);

    // Another organization's space does not exist for this one.
    assert!(s.space(&a.id, &theirs[0].id).await.unwrap().is_none());
    assert!(s.space(&b.id, &theirs[0].id).await.unwrap().is_some());
    assert!(
        s.space(&a.id, &SpaceId::generate())
            .await
            .unwrap()
            .is_none()
    );

    // Walk with limit 2: 2, 2, 1, and no cursor after the last page.
    let mut walked = Vec::new();
    let mut sizes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.spaces(&a.id, after.as_deref(), 2).await.unwrap();
        sizes.push(page.items.len());
        for sp in &page.items {
            assert_eq!(sp.org_id, a.id);
        }
        if let Some(next) = &page.next {
            assert_eq!(
                Some(next),
                page.items.last().map(|x| x.id.to_string()).as_ref()
            );
        }
        walked.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(sizes.len() < 10, "pagination does not terminate");
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        ids(&walked, |x| x.id.to_string()),
        ids(&mine, |x| x.id.to_string())
    );

    // One page big enough for all of them has no cursor.
    let all = s.spaces(&a.id, None, 100).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(all.next.is_none());

    // An organization without spaces gets an empty page.
    let c = new_org(s, "Initech").await;
    let none = s.spaces(&c.id, None, 2).await.unwrap();
    assert!(none.items.is_empty());
    assert!(none.next.is_none());
}

async fn assets_are_scoped_paged_and_deleted_once(env: &Env) {
    let s = &env.store;
    new_kek(s, 1).await;
    let a = new_org(s, "Acme").await;
    let b = new_org(s, "Globex").await;
    let docs = new_space(s, &a.id, "Docs").await;
    let other = new_space(s, &a.id, "Other").await;
    let foreign = new_space(s, &b.id, "Theirs").await;

    let mut in_docs = Vec::new();
    for i in 0..4 {
        in_docs.push(new_asset(s, &docs, i).await);
        new_asset(s, &other, 100 + i).await;
    }
    let theirs = new_asset(s, &foreign, 200).await;

    let got = s.asset(&a.id, &in_docs[0].id).await.unwrap().unwrap();
    let want = &in_docs[0];
    assert_eq!(got.id, want.id);
    assert_eq!(got.org_id, want.org_id);
    assert_eq!(got.space_id, want.space_id);
    assert_eq!(got.blob_id, want.blob_id);
    assert_eq!(got.filename, want.filename);
    assert_eq!(got.content_type, want.content_type);
    assert_eq!(got.size, want.size);
    assert_eq!(got.sha256, want.sha256);
    assert_eq!(got.created_at, want.created_at);

    // Scoped by organization.
    assert!(s.asset(&b.id, &in_docs[0].id).await.unwrap().is_none());
    assert!(s.asset(&a.id, &theirs.id).await.unwrap().is_none());
    assert!(s.asset(&b.id, &theirs.id).await.unwrap().is_some());

    // Paged per space: 4 with limit 2 is exactly two pages, the second without a cursor.
    let p1 = s.assets(&docs.id, None, 2).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    let next = p1.next.clone().unwrap();
    let p2 = s.assets(&docs.id, Some(&next), 2).await.unwrap();
    assert_eq!(p2.items.len(), 2);
    assert!(p2.next.is_none());
    let walked: Vec<_> = p1.items.iter().chain(&p2.items).collect();
    assert_eq!(
        walked.iter().map(|x| x.id.to_string()).collect::<Vec<_>>(),
        ids(&in_docs, |x| x.id.to_string())
    );
    assert!(walked.iter().all(|x| x.space_id == docs.id));

    // Another organization cannot delete it: nothing returned, nothing removed.
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.delete_asset(&b.id, &in_docs[0].id)
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    assert!(s.asset(&a.id, &in_docs[0].id).await.unwrap().is_some());

    // The owner deletes it: the row comes back once, then it is gone.
    let mut tx = s.begin().await.unwrap();
    let deleted = tx
        .delete_asset(&a.id, &in_docs[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.id, in_docs[0].id);
    assert_eq!(deleted.blob_id, in_docs[0].blob_id);
    assert_eq!(deleted.size, in_docs[0].size);
    assert!(
        tx.delete_asset(&a.id, &in_docs[0].id)
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();

    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.delete_asset(&a.id, &in_docs[0].id)
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    assert!(s.asset(&a.id, &in_docs[0].id).await.unwrap().is_none());
    let left = s.assets(&docs.id, None, 10).await.unwrap();
    assert_eq!(
        ids(&left.items, |x| x.id.to_string()),
        ids(&in_docs[1..], |x| x.id.to_string())
    );
}

async fn blobs(env: &Env) {
    let s = &env.store;
    new_kek(s, 1).await;
    new_kek(s, 2).await;
    let org = new_org(s, "Acme").await;
    let b1 = new_blob(s, &org.id, 1).await;
    let b2 = new_blob(s, &org.id, 1).await;
    let b3 = new_blob(s, &org.id, 2).await;

    let got = s.blob(&b1.id).await.unwrap().unwrap();
    assert_eq!(got.id, b1.id);
    assert_eq!(got.org_id, org.id);
    assert_eq!(got.kek_version, 1);
    assert_eq!(got.wrapped_dek, b1.wrapped_dek);
    assert_eq!(got.size, 5_000_000_000);
    assert_eq!(got.stored_size, 5_000_100_000);
    assert_eq!(got.created_at, b1.created_at);
    assert!(s.blob(&BlobId::generate()).await.unwrap().is_none());

    assert!(s.blob_exists(b1.id.as_str()).await.unwrap());
    assert!(!s.blob_exists(BlobId::generate().as_str()).await.unwrap());
    assert!(!s.blob_exists("not-even-an-id").await.unwrap());

    assert_eq!(s.blob_counts_by_kek().await.unwrap(), [(1, 2), (2, 1)]);

    // Blobs not under the active KEK, by id, limited.
    let mut old = vec![b1.id.clone(), b2.id.clone()];
    old.sort();
    let stale = s.blobs_not_under(2, 10).await.unwrap();
    assert_eq!(stale.iter().map(|b| b.id.clone()).collect::<Vec<_>>(), old);
    assert!(stale.iter().all(|b| b.kek_version == 1));
    assert_eq!(s.blobs_not_under(2, 1).await.unwrap().len(), 1);
    let under_one = s.blobs_not_under(1, 10).await.unwrap();
    assert_eq!(
        under_one.iter().map(|b| b.id.clone()).collect::<Vec<_>>(),
        [b3.id.clone()]
    );

    // Rewrapping from the wrong version changes nothing.
    let mut tx = s.begin().await.unwrap();
    assert!(!tx.rewrap_blob(&b1.id, 2, 2, b"lost").await.unwrap());
    assert!(
        !tx.rewrap_blob(&BlobId::generate(), 1, 2, b"nobody")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let same = s.blob(&b1.id).await.unwrap().unwrap();
    assert_eq!(same.kek_version, 1);
    assert_eq!(same.wrapped_dek, b1.wrapped_dek);

    // Rewrapping from the current version moves it, once.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.rewrap_blob(&b1.id, 1, 2, b"rewrapped").await.unwrap());
    assert!(!tx.rewrap_blob(&b1.id, 1, 2, b"again").await.unwrap());
    tx.commit().await.unwrap();
    let moved = s.blob(&b1.id).await.unwrap().unwrap();
    assert_eq!(moved.kek_version, 2);
    assert_eq!(moved.wrapped_dek, b"rewrapped");
    assert_eq!(s.blob_counts_by_kek().await.unwrap(), [(1, 1), (2, 2)]);
    assert_eq!(
        s.blobs_not_under(2, 10)
            .await
            .unwrap()
            .iter()
            .map(|b| b.id.clone())
            .collect::<Vec<_>>(),
        [b2.id.clone()]
    );

    // Deleting shreds the row, once.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_blob(&b2.id).await.unwrap());
    assert!(!tx.delete_blob(&b2.id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(s.blob(&b2.id).await.unwrap().is_none());
    assert!(!s.blob_exists(b2.id.as_str()).await.unwrap());
    assert!(s.blob_exists(b1.id.as_str()).await.unwrap());
    assert_eq!(s.blob_counts_by_kek().await.unwrap(), [(2, 2)]);
    assert!(s.blobs_not_under(2, 10).await.unwrap().is_empty());
}

async fn keks(env: &Env) {
    let s = &env.store;
    assert!(s.keks().await.unwrap().is_empty());
    for v in 1..=3 {
        new_kek(s, v).await;
    }
    let all = s.keks().await.unwrap();
    assert_eq!(all.iter().map(|k| k.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1].wrapped, kek_row(2).wrapped);

    // A version is stored once.
    let mut tx = s.begin().await.unwrap();
    let err = tx
        .insert_kek(
            &KekRow {
                version: 2,
                wrapped: b"impostor".to_vec(),
            },
            ts(9),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    drop(tx);
    assert_eq!(s.keks().await.unwrap()[1].wrapped, kek_row(2).wrapped);

    // Version 1 still wraps a blob and 3 is active: only 2 goes.
    let org = new_org(s, "Acme").await;
    let blob = new_blob(s, &org.id, 1).await;
    let mut tx = s.begin().await.unwrap();
    assert_eq!(tx.retire_unused_keks(3).await.unwrap(), [2]);
    tx.commit().await.unwrap();
    assert_eq!(
        s.keks()
            .await
            .unwrap()
            .iter()
            .map(|k| k.version)
            .collect::<Vec<_>>(),
        [1, 3]
    );

    // Once the blob moves to 3, version 1 is unused and goes too; 3 stays.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.rewrap_blob(&blob.id, 1, 3, b"under-3").await.unwrap());
    assert_eq!(tx.retire_unused_keks(3).await.unwrap(), [1]);
    tx.commit().await.unwrap();
    let left = s.keks().await.unwrap();
    assert_eq!(left.iter().map(|k| k.version).collect::<Vec<_>>(), [3]);
    assert_eq!(left[0].wrapped, kek_row(3).wrapped);

    // Nothing left to retire, and the active KEK is kept even when no blob uses it.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_blob(&blob.id).await.unwrap());
    assert!(tx.retire_unused_keks(3).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    assert_eq!(s.keks().await.unwrap().len(), 1);
}

async fn api_keys(env: &Env) {
    let s = &env.store;
    let acme = new_org(s, "Acme").await;
    let globex = new_org(s, "Globex").await;
    let member = new_user(s, "member@example.com").await;
    let departed = new_user(s, "departed@example.com").await;
    set_role(s, &acme.id, &member.id, Role::Editor).await;
    // A role elsewhere must not leak into this organization's keys.
    set_role(s, &globex.id, &member.id, Role::Owner).await;
    set_role(s, &globex.id, &departed.id, Role::Owner).await;

    let key = |user: Option<&UserId>, role: Role, n: &str| ApiKeyRow {
        id: ApiKeyId::generate(),
        org_id: acme.id.clone(),
        user_id: user.cloned(),
        name: name(n),
        role,
        created_at: ts(1_700_000_000_010),
        expires_at: None,
        revoked_at: None,
    };
    let mut k1 = key(Some(&member.id), Role::Admin, "ci");
    k1.expires_at = Some(ts(1_800_000_000_000));
    let k2 = key(Some(&departed.id), Role::Viewer, "old laptop");
    let k3 = key(None, Role::Contributor, "bootstrap");
    let mut tx = s.begin().await.unwrap();
    tx.insert_api_key(&k1, b"hash-1").await.unwrap();
    tx.insert_api_key(&k2, b"hash-2").await.unwrap();
    tx.insert_api_key(&k3, b"hash-3").await.unwrap();
    tx.commit().await.unwrap();

    let p = s.principal_by_key_hash(b"hash-1").await.unwrap().unwrap();
    assert_eq!(p.key.id, k1.id);
    assert_eq!(p.key.org_id, acme.id);
    assert_eq!(p.key.user_id.as_ref(), Some(&member.id));
    assert_eq!(p.key.name, k1.name);
    assert_eq!(p.key.role, Role::Admin);
    assert_eq!(p.key.created_at, k1.created_at);
    assert_eq!(p.key.expires_at, Some(ts(1_800_000_000_000)));
    assert_eq!(p.key.revoked_at, None);
    assert_eq!(p.member_role, Some(Role::Editor));
    assert_eq!(p.secret_hash, b"hash-1");

    // The key's user is no longer a member of the key's organization.
    let p = s.principal_by_key_hash(b"hash-2").await.unwrap().unwrap();
    assert_eq!(p.key.id, k2.id);
    assert_eq!(p.member_role, None);
    assert_eq!(p.secret_hash, b"hash-2");

    // A key without a user.
    let p = s.principal_by_key_hash(b"hash-3").await.unwrap().unwrap();
    assert_eq!(p.key.id, k3.id);
    assert_eq!(p.key.user_id, None);
    assert_eq!(p.key.expires_at, None);
    assert_eq!(p.member_role, None);

    assert!(s.principal_by_key_hash(b"hash-4").await.unwrap().is_none());

    // Role changes show through the next lookup.
    set_role(s, &acme.id, &member.id, Role::Viewer).await;
    let p = s.principal_by_key_hash(b"hash-1").await.unwrap().unwrap();
    assert_eq!(p.member_role, Some(Role::Viewer));

    // A secret hash is stored once.
    let mut tx = s.begin().await.unwrap();
    let err = tx
        .insert_api_key(&key(None, Role::Viewer, "dup"), b"hash-1")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    drop(tx);

    // Listing is per organization, in creation order.
    let listed = s.api_keys(&acme.id, None, 10).await.unwrap();
    assert_eq!(
        ids(&listed.items, |k| k.id.to_string()),
        [k1.id.to_string(), k2.id.to_string(), k3.id.to_string()]
    );
    assert!(listed.next.is_none());
    let first = s.api_keys(&acme.id, None, 2).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let rest = s
        .api_keys(&acme.id, first.next.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(ids(&rest.items, |k| k.id.to_string()), [k3.id.to_string()]);
    assert!(rest.next.is_none());
    assert!(
        s.api_keys(&globex.id, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    s.touch_api_key(&k1.id, ts(1_700_000_000_500), "198.51.100.1")
        .await
        .unwrap();

    // Another organization cannot revoke the key.
    let mut tx = s.begin().await.unwrap();
    assert!(
        !tx.revoke_api_key(&globex.id, &k1.id, ts(1_700_000_001_000))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let p = s.principal_by_key_hash(b"hash-1").await.unwrap().unwrap();
    assert_eq!(p.key.revoked_at, None);

    // Its own organization can, once.
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.revoke_api_key(&acme.id, &k1.id, ts(1_700_000_002_000))
            .await
            .unwrap()
    );
    assert!(
        !tx.revoke_api_key(&acme.id, &k1.id, ts(1_700_000_003_000))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let p = s.principal_by_key_hash(b"hash-1").await.unwrap().unwrap();
    assert_eq!(p.key.revoked_at, Some(ts(1_700_000_002_000)));
    // The others are untouched.
    let p = s.principal_by_key_hash(b"hash-2").await.unwrap().unwrap();
    assert_eq!(p.key.revoked_at, None);
}

async fn audit_chain(env: &Env) {
    let s = &env.store;
    let a = new_org(s, "Acme").await;
    let b = new_org(s, "Globex").await;

    // Each append gets the next number and the previous head's hash.
    assert_eq!(append(s, &a.id, 1).await, (1, GENESIS.to_vec()));
    let head = s.audit_head(&a.id).await.unwrap().unwrap();
    assert_eq!(head.seq, 1);
    assert_eq!(head.hash, hash_of(1));
    assert_eq!(head.mac, b"mac-1");

    assert_eq!(append(s, &a.id, 2).await, (2, hash_of(1)));
    assert_eq!(append(s, &b.id, 10).await, (1, GENESIS.to_vec()));
    assert_eq!(append(s, &a.id, 3).await, (3, hash_of(2)));

    let head = s.audit_head(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (head.seq, head.hash, head.mac),
        (3, hash_of(3), b"mac-3".to_vec())
    );
    let other = s.audit_head(&b.id).await.unwrap().unwrap();
    assert_eq!(other.seq, 1);

    let events = s.audit_events(&a.id, 0, 100).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let e2 = &events[1];
    let want = audit_event(2);
    assert_eq!(e2.org_id, a.id);
    assert_eq!(e2.event.at, want.at);
    assert_eq!(e2.event.actor, want.actor);
    assert_eq!(e2.event.action, want.action);
    assert_eq!(e2.event.target, want.target);
    assert_eq!(e2.event.ip, want.ip);
    assert_eq!(e2.event.detail, want.detail);
    assert_eq!(e2.prev_hash, hash_of(1));
    assert_eq!(e2.hash, hash_of(2));
    assert_eq!(events[0].prev_hash, GENESIS);

    // Paging by sequence number.
    let page = s.audit_events(&a.id, 1, 1).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    let page = s.audit_events(&a.id, 1, 5).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(s.audit_events(&a.id, 3, 5).await.unwrap().is_empty());

    // Another organization's chain is separate.
    let theirs = s.audit_events(&b.id, 0, 100).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].org_id, b.id);
    assert_eq!(theirs[0].event.target, "ast_10");

    // No organization, no chain to lock.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.lock_audit_head(&OrgId::generate()).await.is_err());
}

async fn rolled_back_transaction_leaves_nothing(env: &Env) {
    let s = &env.store;
    let a = new_org(s, "Acme").await;
    append(s, &a.id, 1).await;

    let ghost = org_row("Ghost");
    {
        let mut tx = s.begin().await.unwrap();
        tx.insert_org(&ghost, GENESIS, b"m").await.unwrap();
        let (seq, prev) = tx.lock_audit_head(&a.id).await.unwrap();
        assert_eq!(seq, 2);
        tx.append_audit(&a.id, seq, &audit_event(2), &prev, &hash_of(2), b"mac-2")
            .await
            .unwrap();
        // Dropped without commit.
    }

    assert!(s.org(&ghost.id).await.unwrap().is_none());
    assert!(s.org_by_name(&ghost.name).await.unwrap().is_none());
    let head = s.audit_head(&a.id).await.unwrap().unwrap();
    assert_eq!(head.seq, 1);
    assert_eq!(head.hash, hash_of(1));
    assert_eq!(head.mac, b"mac-1");
    let events = s.audit_events(&a.id, 0, 100).await.unwrap();
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);

    // The chain is not left locked and the abandoned number is handed out again: no gap.
    assert_eq!(append(s, &a.id, 3).await, (2, hash_of(1)));
    // The name the rolled-back organization wanted is free.
    new_org(s, "Ghost").await;
}

async fn concurrent_audit_appends_are_serialized(env: &Env) {
    const TASKS: i64 = 20;
    let org = new_org(&env.store, "Acme").await;

    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..TASKS {
        let store = env.store.clone();
        let org = org.id.clone();
        tasks.spawn(async move { append(&store, &org, n).await });
    }
    let mut seqs = BTreeSet::new();
    while let Some(done) = tasks.join_next().await {
        let (seq, _) = done.unwrap();
        assert!(seqs.insert(seq), "seq {seq} handed out twice");
    }
    assert_eq!(seqs, (1..=TASKS).collect::<BTreeSet<_>>());

    let head = env.store.audit_head(&org.id).await.unwrap().unwrap();
    assert_eq!(head.seq, TASKS);
    assert_eq!(head.hash, hash_of(TASKS));

    // Each append saw the previous one's head: the chain is unbroken.
    let events = env.store.audit_events(&org.id, 0, 100).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=TASKS).collect::<Vec<_>>()
    );
    let mut prev = GENESIS.to_vec();
    for e in &events {
        assert_eq!(
            e.prev_hash, prev,
            "event {} does not follow its predecessor",
            e.seq
        );
        prev = e.hash.clone();
    }
}

async fn references_are_enforced(env: &Env) {
    // SQLite ignores REFERENCES unless `foreign_keys` is on for every connection.
    let s = &env.store;
    new_kek(s, 1).await;
    let org = new_org(s, "Acme").await;
    let space = new_space(s, &org.id, "Docs").await;

    // A blob under a KEK version that does not exist could never be decrypted.
    let mut tx = s.begin().await.unwrap();
    let err = tx.insert_blob(&blob_row(&org.id, 99)).await.unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "got {err:?}");
    drop(tx);

    // A blob of an organization that does not exist.
    let mut tx = s.begin().await.unwrap();
    let err = tx
        .insert_blob(&blob_row(&OrgId::generate(), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "got {err:?}");
    drop(tx);

    // A space of an organization that does not exist.
    let mut tx = s.begin().await.unwrap();
    let stray = SpaceRow {
        id: SpaceId::generate(),
        org_id: OrgId::generate(),
        name: name("Stray"),
        created_at: ts(1),
    };
    assert!(tx.insert_space(&stray).await.is_err());
    drop(tx);

    // A blob cannot be deleted out from under an asset that still points at it.
    let asset = new_asset(s, &space, 1).await;
    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_blob(&asset.blob_id).await.is_err());
    drop(tx);
    assert!(s.blob_exists(asset.blob_id.as_str()).await.unwrap());
    assert!(s.asset(&org.id, &asset.id).await.unwrap().is_some());

    // Deleting the asset first, then its blob, in one transaction, works.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_asset(&org.id, &asset.id).await.unwrap().is_some());
    assert!(tx.delete_blob(&asset.blob_id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(!s.blob_exists(asset.blob_id.as_str()).await.unwrap());
}
