//! The authorization epoch (migration 18) and the store's generation: what tells a node that a
//! credential it resolved may no longer be what the database says.

use strongroom_domain::{ApiKeyId, PermissionSet, Role, RoleId, RoleRef};
use strongroom_store::{ApiKeyRow, MediaState, NewAuditEvent, RoleRow, Store};

use crate::Env;
use crate::fixtures::*;

conformance!(
    every_change_to_what_authorizes_a_key_moves_the_epoch,
    reads_audit_appends_and_key_use_move_neither,
    every_change_to_an_asset_or_its_blob_moves_the_asset_epoch,
    new_rows_reads_and_other_changes_leave_the_asset_epoch
);

/// Which of the database's two epochs a check reads.
#[derive(Clone, Copy)]
enum Epoch {
    /// What API keys' permissions are read from (migration 18).
    Authz,
    /// Asset and blob rows (migration 20).
    Asset,
}

async fn epoch(s: &Store, which: Epoch) -> i64 {
    match which {
        Epoch::Authz => s.authz_epoch().await.unwrap(),
        Epoch::Asset => s.asset_epoch().await.unwrap(),
    }
}

/// Checks that the authorization epoch and this process's generation moved since `before`,
/// then remembers where both are.
async fn moved(s: &Store, before: &mut (i64, u64), step: &str) {
    moved_epoch(s, Epoch::Authz, before, step).await;
}

async fn moved_epoch(s: &Store, which: Epoch, before: &mut (i64, u64), step: &str) {
    let now = (epoch(s, which).await, s.authz_generation());
    assert!(now.0 > before.0, "{step}: the epoch stayed at {}", now.0);
    assert!(
        now.1 > before.1,
        "{step}: the generation stayed at {}",
        now.1
    );
    *before = now;
}

async fn every_change_to_what_authorizes_a_key_moves_the_epoch(env: &Env) {
    let s = &env.store;
    let org = new_org(s, "Acme").await;
    let user = new_user(s, "member@example.com").await;
    let space = new_space(s, &org.id, "site").await;
    let key = ApiKeyRow {
        id: ApiKeyId::generate(),
        org_id: org.id.clone(),
        user_id: Some(user.id.clone()),
        name: name("ci"),
        role: Role::Admin.into(),
        created_at: ts(1_700_000_000_000),
        expires_at: None,
        revoked_at: None,
    };
    let mut at = (s.authz_epoch().await.unwrap(), s.authz_generation());

    set_role(s, &org.id, &user.id, Role::Editor).await;
    moved(s, &mut at, "a new membership").await;

    let mut tx = s.begin().await.unwrap();
    tx.insert_api_key(&key, b"hash-1").await.unwrap();
    tx.commit().await.unwrap();
    // A new key changes nothing an existing credential resolved to: only the generation.
    assert!(s.authz_generation() > at.1);
    at.1 = s.authz_generation();

    let mut tx = s.begin().await.unwrap();
    tx.set_member_role(&org.id, &user.id, &Role::Viewer.into())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    moved(s, &mut at, "a demotion").await;

    let role = RoleRow {
        id: RoleId::generate(),
        org_id: org.id.clone(),
        name: name("reviewer"),
        permissions: PermissionSet::from_stored("asset:read").unwrap(),
        created_at: ts(1_700_000_000_001),
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_role(&role).await.unwrap();
    tx.commit().await.unwrap();
    moved(s, &mut at, "a new custom role").await;

    let mut tx = s.begin().await.unwrap();
    tx.set_role_permissions(
        &org.id,
        &role.id,
        PermissionSet::from_stored("asset:read asset:create").unwrap(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    moved(s, &mut at, "a custom role's new permissions").await;

    let mut tx = s.begin().await.unwrap();
    tx.upsert_grant(
        &org.id,
        &space.id,
        &user.id,
        &RoleRef::Custom(role.id.clone()),
        ts(1_700_000_000_002),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    moved(s, &mut at, "a space grant").await;

    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_grant(&space.id, &user.id).await.unwrap());
    tx.commit().await.unwrap();
    moved(s, &mut at, "a grant taken back").await;

    let mut tx = s.begin().await.unwrap();
    tx.set_require_mfa(&org.id, true).await.unwrap();
    tx.commit().await.unwrap();
    moved(s, &mut at, "the organization requiring MFA").await;

    let mut tx = s.begin().await.unwrap();
    tx.set_pending_totp(&user.id, b"sealed", ts(1_700_000_000_003))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    moved(s, &mut at, "a second factor being set up").await;

    let mut tx = s.begin().await.unwrap();
    assert!(tx.accept_totp_step(&user.id, 100).await.unwrap());
    tx.commit().await.unwrap();
    moved(s, &mut at, "a second factor turned on").await;

    let mut tx = s.begin().await.unwrap();
    tx.delete_totp(&user.id).await.unwrap();
    tx.commit().await.unwrap();
    moved(s, &mut at, "a second factor turned off").await;

    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.revoke_api_key(&org.id, &key.id, ts(1_700_000_000_004))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    moved(s, &mut at, "a revocation").await;

    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_role(&org.id, &role.id).await.unwrap());
    tx.commit().await.unwrap();
    moved(s, &mut at, "a custom role deleted").await;

    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.remove_member(&org.id, &user.id, ts(1_700_000_000_005))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    moved(s, &mut at, "a member removed").await;

    // The key's resolution carries the epoch it was read at, in the same statement.
    let row = s.key_principal(b"hash-1").await.unwrap().unwrap();
    assert_eq!(row.authz_epoch, at.0);

    // A rolled-back change moves nothing in the database.
    let mut tx = s.begin().await.unwrap();
    tx.set_require_mfa(&org.id, false).await.unwrap();
    drop(tx);
    assert_eq!(s.authz_epoch().await.unwrap(), at.0);
}

async fn reads_audit_appends_and_key_use_move_neither(env: &Env) {
    let s = &env.store;
    let org = new_org(s, "Acme").await;
    let space = new_space(s, &org.id, "site").await;
    let key = ApiKeyRow {
        id: ApiKeyId::generate(),
        org_id: org.id.clone(),
        user_id: None,
        name: name("service"),
        role: Role::Viewer.into(),
        created_at: ts(1_700_000_000_000),
        expires_at: None,
        revoked_at: None,
    };
    let mut tx = s.begin().await.unwrap();
    tx.insert_api_key(&key, b"hash-2").await.unwrap();
    tx.commit().await.unwrap();
    new_kek(s, 1).await;
    let asset = new_asset(s, &space, 1).await;
    let epoch = s.authz_epoch().await.unwrap();
    let generation = s.authz_generation();

    // What every read does: resolve the key, find the asset with its blob, append its audit
    // event in a group, note the key's use.
    assert!(s.key_principal(b"hash-2").await.unwrap().is_some());
    let found = s
        .asset_with_blob(&org.id, &asset.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.asset.id, asset.id);
    assert_eq!(found.blob.id, asset.blob_id);
    let mut tx = s.begin_audit_append().await.unwrap();
    let (first, prev) = tx.lock_audit_head_for(&org.id, 2, None).await.unwrap();
    let events: Vec<(i64, NewAuditEvent, Vec<u8>, Vec<u8>)> = vec![
        (first, audit_event(1), prev, hash_of(first)),
        (
            first + 1,
            audit_event(2),
            hash_of(first),
            hash_of(first + 1),
        ),
    ];
    tx.append_audit_run(&org.id, &events, b"mac").await.unwrap();
    tx.commit().await.unwrap();
    s.touch_api_key(&key.id, ts(1_700_000_000_100), "127.0.0.1")
        .await
        .unwrap();

    assert_eq!(s.authz_epoch().await.unwrap(), epoch);
    assert_eq!(s.authz_generation(), generation);
    assert_eq!(s.audit_head(&org.id).await.unwrap().unwrap().seq, 2);
}

/// Checks that the asset epoch and this process's generation moved since `before`.
async fn asset_epoch_moved(s: &Store, before: &mut (i64, u64), step: &str) {
    moved_epoch(s, Epoch::Asset, before, step).await;
}

async fn every_change_to_an_asset_or_its_blob_moves_the_asset_epoch(env: &Env) {
    let s = &env.store;
    let org = new_org(s, "Acme").await;
    let space = new_space(s, &org.id, "site").await;
    new_kek(s, 1).await;
    new_kek(s, 2).await;
    let asset = new_asset(s, &space, 1).await;
    let mut at = (s.asset_epoch().await.unwrap(), s.authz_generation());
    let epoch = s.authz_epoch().await.unwrap();

    let mut tx = s.begin().await.unwrap();
    let by = "key:k";
    assert!(
        tx.trash_asset(&org.id, &asset.id, ts(1_700_000_000_000), by)
            .await
            .unwrap()
            .is_some()
    );
    tx.commit().await.unwrap();
    asset_epoch_moved(s, &mut at, "an asset moved to the trash").await;

    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.restore_asset(&org.id, &asset.id)
            .await
            .unwrap()
            .is_some()
    );
    tx.commit().await.unwrap();
    asset_epoch_moved(s, &mut at, "an asset back from the trash").await;

    let mut tx = s.begin().await.unwrap();
    let state = MediaState {
        status: Some("ready".into()),
        error: None,
        info: None,
    };
    tx.set_media_state(&asset.id, &state).await.unwrap();
    tx.commit().await.unwrap();
    asset_epoch_moved(s, &mut at, "an asset processed").await;

    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.rewrap_blob(&asset.blob_id, 1, 2, b"wrapped under 2")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    asset_epoch_moved(s, &mut at, "a data key rewrapped").await;

    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.move_blob_region(&asset.blob_id, "default", "eu")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    asset_epoch_moved(s, &mut at, "a blob moved to another region").await;

    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_asset(&org.id, &asset.id).await.unwrap().is_some());
    tx.commit().await.unwrap();
    asset_epoch_moved(s, &mut at, "an asset deleted").await;

    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_blob(&asset.blob_id).await.unwrap());
    tx.commit().await.unwrap();
    asset_epoch_moved(s, &mut at, "a blob deleted").await;

    // None of it touched what a key's permissions are read from.
    assert_eq!(s.authz_epoch().await.unwrap(), epoch);

    // A rolled-back change moves nothing in the database.
    let other = new_asset(s, &space, 2).await;
    let before = s.asset_epoch().await.unwrap();
    let mut tx = s.begin().await.unwrap();
    tx.delete_asset(&org.id, &other.id).await.unwrap();
    drop(tx);
    assert_eq!(s.asset_epoch().await.unwrap(), before);
}

async fn new_rows_reads_and_other_changes_leave_the_asset_epoch(env: &Env) {
    let s = &env.store;
    let org = new_org(s, "Acme").await;
    let space = new_space(s, &org.id, "site").await;
    new_kek(s, 1).await;
    let first = new_asset(s, &space, 1).await;
    let epoch = s.asset_epoch().await.unwrap();

    // A new asset (an upload), reads of assets, audit appends and a change to who may do what.
    new_asset(s, &space, 2).await;
    let found = s
        .asset_with_blob(&org.id, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.asset_epoch, epoch, "read with the rows");
    append(s, &org.id, 3).await;
    let user = new_user(s, "member@example.com").await;
    set_role(s, &org.id, &user.id, Role::Editor).await;

    assert_eq!(s.asset_epoch().await.unwrap(), epoch);
}
