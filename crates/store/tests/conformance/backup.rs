//! Backup snapshots: every table is in one, and a snapshot loads back into an empty database
//! row for row.

use futures_util::TryStreamExt;
use strongroom_domain::Role;
use strongroom_store::{BACKUP_TABLES, NOT_BACKED_UP, Values};

use super::fixtures::{append, new_asset, new_kek, new_org, new_space, new_user, set_role};
use crate::Env;

conformance!(
    every_table_is_backed_up_or_left_out_on_purpose,
    a_snapshot_loads_back_row_for_row,
    a_snapshot_does_not_see_later_writes,
    deleting_a_blob_row_logs_the_shred,
);

async fn every_table_is_backed_up_or_left_out_on_purpose(env: &Env) {
    let mut expected: Vec<String> = BACKUP_TABLES
        .iter()
        .chain(NOT_BACKED_UP)
        .map(|t| (*t).to_owned())
        .collect();
    expected.sort();
    assert_eq!(env.store.table_names().await.unwrap(), expected);
}

async fn dump(env: &Env) -> Vec<(String, Vec<String>, Vec<Values>)> {
    let mut snap = env.store.snapshot().await.unwrap();
    let mut out = Vec::new();
    for t in BACKUP_TABLES {
        let columns = snap.columns(t).await.unwrap();
        let rows: Vec<Values> = snap.rows(t).unwrap().try_collect().await.unwrap();
        out.push(((*t).to_owned(), columns, rows));
    }
    snap.finish().await.unwrap();
    out
}

async fn a_snapshot_loads_back_row_for_row(env: &Env) {
    let org = new_org(&env.store, "Acme").await;
    let user = new_user(&env.store, "ada@example.com").await;
    set_role(&env.store, &org.id, &user.id, Role::Owner).await;
    new_kek(&env.store, 1).await;
    let space = new_space(&env.store, &org.id, "Docs").await;
    new_asset(&env.store, &space, 1).await;
    new_asset(&env.store, &space, 2).await;
    append(&env.store, &org.id, 3).await;
    let before = dump(env).await;
    assert!(!env.store.is_empty().await.unwrap());

    let Some(target) = Env::new(env.backend()).await else {
        return;
    };
    assert!(target.store.is_empty().await.unwrap());
    for (table, columns, rows) in &before {
        target.store.load_rows(table, columns, rows).await.unwrap();
    }
    let after = dump(&target).await;
    assert_eq!(after, before);
    assert_eq!(
        target.store.org(&org.id).await.unwrap().unwrap().name,
        org.name
    );
}

async fn a_snapshot_does_not_see_later_writes(env: &Env) {
    new_org(&env.store, "Before").await;
    let mut snap = env.store.snapshot().await.unwrap();
    // A write committed while the snapshot is open (on SQLite, WAL lets it through).
    new_org(&env.store, "After").await;
    let rows: Vec<Values> = snap.rows("orgs").unwrap().try_collect().await.unwrap();
    snap.finish().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(env.store.org_ids().await.unwrap().len(), 2);
}

async fn deleting_a_blob_row_logs_the_shred(env: &Env) {
    let org = new_org(&env.store, "Acme").await;
    new_kek(&env.store, 1).await;
    let space = new_space(&env.store, &org.id, "Docs").await;
    let asset = new_asset(&env.store, &space, 1).await;
    assert!(env.store.shredded_blobs().await.unwrap().is_empty());
    let mut tx = env.store.begin().await.unwrap();
    tx.delete_asset(&org.id, &asset.id).await.unwrap();
    assert!(tx.delete_blob(&asset.blob_id).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        env.store.shredded_blobs().await.unwrap(),
        vec![asset.blob_id.to_string()]
    );
    assert_eq!(
        env.store.pending_shreds().await.unwrap(),
        vec![asset.blob_id.to_string()]
    );
    env.store
        .shreds_applied(&[asset.blob_id.to_string()])
        .await
        .unwrap();
    assert!(env.store.pending_shreds().await.unwrap().is_empty());
}
