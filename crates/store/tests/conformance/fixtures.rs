//! Rows and writes the cases share. Fixed times and names keep failures readable.

use strongroom_domain::{
    AssetId, BlobId, Email, Filename, Name, OrgId, Role, SpaceId, Timestamp, UserId,
};
use strongroom_store::{
    AssetRow, BlobRow, KekRow, NewAuditEvent, OrgRow, SpaceRow, Store, UserRow,
};

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub(crate) fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

pub(crate) const GENESIS: &[u8] = &[0_u8; 32];

pub(crate) fn org_row(n: &str) -> OrgRow {
    OrgRow {
        id: OrgId::generate(),
        name: name(n),
        created_at: ts(1_700_000_000_000),
        region: "default".into(),
    }
}

pub(crate) async fn new_org(store: &Store, n: &str) -> OrgRow {
    let row = org_row(n);
    let mut tx = store.begin().await.unwrap();
    tx.insert_org(&row, GENESIS, b"genesis-mac").await.unwrap();
    tx.commit().await.unwrap();
    row
}

pub(crate) async fn new_user(store: &Store, email: &str) -> UserRow {
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

pub(crate) async fn set_role(store: &Store, org: &OrgId, user: &UserId, role: Role) {
    let mut tx = store.begin().await.unwrap();
    tx.upsert_membership(org, user, &role.into(), ts(1_700_000_000_002))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

pub(crate) async fn new_space(store: &Store, org: &OrgId, n: &str) -> SpaceRow {
    let row = SpaceRow {
        id: SpaceId::generate(),
        org_id: org.clone(),
        name: name(n),
        created_at: ts(1_700_000_000_003),
        retention_days: None,
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_space(&row).await.unwrap();
    tx.commit().await.unwrap();
    row
}

pub(crate) async fn new_kek(store: &Store, version: u32) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_kek(&kek_row(version), ts(1_700_000_000_004))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

pub(crate) fn kek_row(version: u32) -> KekRow {
    KekRow {
        version,
        wrapped: format!("wrapped-kek-{version}").into_bytes(),
    }
}

pub(crate) fn blob_row(org: &OrgId, kek_version: u32) -> BlobRow {
    BlobRow {
        id: BlobId::generate(),
        org_id: org.clone(),
        kek_version,
        wrapped_dek: BlobId::generate().as_str().as_bytes().to_vec(),
        // Past 2^32, so a 32-bit column or bind would show.
        size: 5_000_000_000,
        stored_size: 5_000_100_000,
        created_at: ts(1_700_000_000_005),
        region: "default".into(),
    }
}

pub(crate) async fn new_blob(store: &Store, org: &OrgId, kek_version: u32) -> BlobRow {
    let row = blob_row(org, kek_version);
    let mut tx = store.begin().await.unwrap();
    tx.insert_blob(&row).await.unwrap();
    tx.commit().await.unwrap();
    row
}

/// A blob and an asset on it, in one transaction (as an upload does).
pub(crate) async fn new_asset(store: &Store, space: &SpaceRow, n: usize) -> AssetRow {
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
        media_status: None,
        deleted_at: None,
    };
    let mut tx = store.begin().await.unwrap();
    tx.insert_blob(&blob).await.unwrap();
    tx.insert_asset(&row).await.unwrap();
    tx.commit().await.unwrap();
    row
}

pub(crate) fn audit_event(n: i64) -> NewAuditEvent {
    NewAuditEvent {
        at: ts(1_700_000_100_000 + n),
        actor: "user:usr_test".into(),
        action: "asset.create".into(),
        target: format!("ast_{n}"),
        ip: "203.0.113.7".into(),
        detail: format!(r#"{{"n":{n}}}"#),
        personal: None,
    }
}

/// A stand-in for the chain hash of event `seq` (the store never computes hashes).
pub(crate) fn hash_of(seq: i64) -> Vec<u8> {
    let mut h = vec![0xa5_u8; 24];
    h.extend_from_slice(&seq.to_be_bytes());
    h
}

/// Appends one event the way the service does and returns the (seq, prev_hash) it was given.
pub(crate) async fn append(store: &Store, org: &OrgId, n: i64) -> (i64, Vec<u8>) {
    let mut tx = store.begin().await.unwrap();
    let (seq, prev) = tx.lock_audit_head(org).await.unwrap();
    let mac = format!("mac-{seq}").into_bytes();
    tx.append_audit(org, seq, &audit_event(n), &prev, &hash_of(seq), &mac)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (seq, prev)
}

pub(crate) fn ids<T>(items: &[T], id: impl Fn(&T) -> String) -> Vec<String> {
    items.iter().map(id).collect()
}
