//! Key material: blobs and their wrapped data keys, KEKs, API keys; and the references between rows.

use strongroom_domain::{ApiKeyId, BlobId, OrgId, Role, SpaceId, UserId};
use strongroom_store::{ApiKeyRow, BlobRow, KekRow, SpaceRow, StoreError};

use crate::Env;
use crate::fixtures::*;

fn blob_ids(rows: &[BlobRow]) -> Vec<String> {
    ids(rows, |b| b.id.to_string())
}

conformance!(blobs, keks, api_keys, references_are_enforced);

pub(crate) async fn blobs(env: &Env) {
    let s = &env.store;
    new_kek(s, 1).await;
    new_kek(s, 2).await;
    let org = new_org(s, "Acme").await;
    let b1 = new_blob(s, &org.id, 1).await;
    let b2 = new_blob(s, &org.id, 1).await;
    let _b3 = new_blob(s, &org.id, 2).await;

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
    let mut old = vec![b1.id.to_string(), b2.id.to_string()];
    old.sort();
    let stale = s.blobs_not_under(2, 10).await.unwrap();
    assert_eq!(blob_ids(&stale), old);
    assert!(stale.iter().all(|b| b.kek_version == 1));
    assert_eq!(s.blobs_not_under(2, 1).await.unwrap().len(), 1);
    // A blob under a newer KEK than the one given is never treated as stale.
    let under_one = s.blobs_not_under(1, 10).await.unwrap();
    assert!(under_one.is_empty(), "{:?}", blob_ids(&under_one));

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
        blob_ids(&s.blobs_not_under(2, 10).await.unwrap()),
        [b2.id.to_string()]
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

pub(crate) async fn keks(env: &Env) {
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

pub(crate) async fn api_keys(env: &Env) {
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
        role: role.into(),
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
    assert_eq!(p.key.role, Role::Admin.into());
    assert_eq!(p.key.created_at, k1.created_at);
    assert_eq!(p.key.expires_at, Some(ts(1_800_000_000_000)));
    assert_eq!(p.key.revoked_at, None);
    assert_eq!(p.member_role, Some(Role::Editor.into()));
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
    assert_eq!(p.member_role, Some(Role::Viewer.into()));

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

pub(crate) async fn references_are_enforced(env: &Env) {
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
        retention_days: None,
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
