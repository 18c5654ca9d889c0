//! Download links: lookup by token hash, scoping, paging, the conditional use that makes
//! single-use links single, revocation, and links dying with their asset.

use strongroom_domain::{LinkId, OrgId};
use strongroom_store::{AssetRow, LinkRow, Store, StoreError};

use crate::Env;
use crate::fixtures::*;

conformance!(
    links_are_found_by_hash_and_scoped,
    link_use_is_conditional,
    concurrent_uses_consume_a_single_use_link_once,
    links_die_with_their_asset
);

fn link_row(asset: &AssetRow, single_use: bool, expires_at: i64) -> LinkRow {
    LinkRow {
        id: LinkId::generate(),
        org_id: asset.org_id.clone(),
        asset_id: asset.id.clone(),
        created_by: "key:key_test".into(),
        created_at: ts(1_700_000_000_010),
        expires_at: ts(expires_at),
        single_use,
        ip: None,
        rendition: None,
        revoked_at: None,
        used_at: None,
        use_count: 0,
        last_used_at: None,
    }
}

async fn new_link(store: &Store, row: &LinkRow, hash: &[u8]) {
    let mut tx = store.begin().await.unwrap();
    tx.insert_link(row, hash).await.unwrap();
    tx.commit().await.unwrap();
}

/// Uses a link in its own transaction; returns whether the use was allowed.
async fn use_at(store: &Store, id: &LinkId, at: i64) -> bool {
    let mut tx = store.begin().await.unwrap();
    let ok = tx.use_link(id, ts(at)).await.unwrap();
    tx.commit().await.unwrap();
    ok
}

pub(crate) async fn links_are_found_by_hash_and_scoped(env: &Env) {
    let s = &env.store;
    new_kek(s, 1).await;
    let org = new_org(s, "Acme").await;
    let other = new_org(s, "Globex").await;
    let space = new_space(s, &org.id, "Docs").await;
    let asset = new_asset(s, &space, 1).await;
    let mut first = link_row(&asset, false, 1_800_000_000_000);
    first.ip = Some("203.0.113.7".into());
    new_link(s, &first, b"hash-1").await;
    let second = link_row(&asset, true, 1_800_000_000_000);
    new_link(s, &second, b"hash-2").await;

    let (found, hash) = s.link_by_token_hash(b"hash-1").await.unwrap().unwrap();
    assert_eq!(hash, b"hash-1");
    assert_eq!(found.id, first.id);
    assert_eq!(found.org_id, org.id);
    assert_eq!(found.asset_id, asset.id);
    assert_eq!(found.created_by, "key:key_test");
    assert_eq!(found.expires_at, first.expires_at);
    assert!(!found.single_use);
    assert_eq!(found.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(found.use_count, 0);
    assert!(
        s.link_by_token_hash(b"hash-2")
            .await
            .unwrap()
            .unwrap()
            .0
            .single_use
    );
    assert!(s.link_by_token_hash(b"hash-3").await.unwrap().is_none());

    // A token hash is unique.
    let mut tx = s.begin().await.unwrap();
    let err = tx
        .insert_link(&link_row(&asset, false, 1), b"hash-1")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    drop(tx);

    // By id, only in its own organization.
    assert!(s.link(&org.id, &first.id).await.unwrap().is_some());
    assert!(s.link(&other.id, &first.id).await.unwrap().is_none());
    assert!(
        s.link(&org.id, &LinkId::generate())
            .await
            .unwrap()
            .is_none()
    );

    // Listed per asset, in creation order, a page at a time, never across organizations.
    let page = s.links_of_asset(&org.id, &asset.id, None, 1).await.unwrap();
    assert_eq!(
        ids(&page.items, |l| l.id.to_string()),
        [first.id.to_string()]
    );
    let page = s
        .links_of_asset(&org.id, &asset.id, page.next.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(
        ids(&page.items, |l| l.id.to_string()),
        [second.id.to_string()]
    );
    assert!(page.next.is_none());
    let none = s
        .links_of_asset(&other.id, &asset.id, None, 10)
        .await
        .unwrap();
    assert!(none.items.is_empty());

    // A link of an asset that does not exist cannot be stored.
    let mut stray = link_row(&asset, false, 1);
    stray.asset_id = strongroom_domain::AssetId::generate();
    let mut tx = s.begin().await.unwrap();
    assert!(tx.insert_link(&stray, b"hash-stray").await.is_err());
}

pub(crate) async fn link_use_is_conditional(env: &Env) {
    let s = &env.store;
    new_kek(s, 1).await;
    let org = new_org(s, "Acme").await;
    let space = new_space(s, &org.id, "Docs").await;
    let asset = new_asset(s, &space, 1).await;
    let expires = 1_800_000_000_000;

    // A reusable link serves until it expires, counting its uses.
    let reusable = link_row(&asset, false, expires);
    new_link(s, &reusable, b"reusable").await;
    assert!(use_at(s, &reusable.id, expires - 2000).await);
    assert!(use_at(s, &reusable.id, expires - 1).await);
    assert!(
        !use_at(s, &reusable.id, expires).await,
        "used at its expiry"
    );
    let row = s.link(&org.id, &reusable.id).await.unwrap().unwrap();
    assert_eq!(row.use_count, 2);
    assert_eq!(row.last_used_at, Some(ts(expires - 1)));
    assert_eq!(row.used_at, None, "a reusable link is never used up");

    // A single-use link serves once.
    let once = link_row(&asset, true, expires);
    new_link(s, &once, b"once").await;
    assert!(use_at(s, &once.id, expires - 5000).await);
    assert!(!use_at(s, &once.id, expires - 4000).await);
    let row = s.link(&org.id, &once.id).await.unwrap().unwrap();
    assert_eq!(row.used_at, Some(ts(expires - 5000)));
    assert_eq!(row.use_count, 1);

    // A use rolled back consumes nothing.
    let again = link_row(&asset, true, expires);
    new_link(s, &again, b"again").await;
    let mut tx = s.begin().await.unwrap();
    assert!(tx.use_link(&again.id, ts(expires - 10)).await.unwrap());
    drop(tx);
    assert!(use_at(s, &again.id, expires - 5).await);

    // Revocation stops a link at once, only in its own organization, once.
    let revoked = link_row(&asset, false, expires);
    new_link(s, &revoked, b"revoked").await;
    let mut tx = s.begin().await.unwrap();
    assert!(
        !tx.revoke_link(&OrgId::generate(), &revoked.id, ts(5))
            .await
            .unwrap()
    );
    assert!(tx.revoke_link(&org.id, &revoked.id, ts(6)).await.unwrap());
    assert!(!tx.revoke_link(&org.id, &revoked.id, ts(7)).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        s.link(&org.id, &revoked.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(ts(6))
    );
    assert!(!use_at(s, &revoked.id, expires - 1000).await);
    assert!(!use_at(s, &LinkId::generate(), 1).await);
}

pub(crate) async fn concurrent_uses_consume_a_single_use_link_once(env: &Env) {
    let s = &env.store;
    new_kek(s, 1).await;
    let org = new_org(s, "Acme").await;
    let space = new_space(s, &org.id, "Docs").await;
    let asset = new_asset(s, &space, 1).await;
    let once = link_row(&asset, true, 1_800_000_000_000);
    new_link(s, &once, b"once").await;
    let tasks = (0..16).map(|i| {
        let s = s.clone();
        let id = once.id.clone();
        tokio::spawn(async move {
            let mut tx = s.begin().await.unwrap();
            let ok = tx.use_link(&id, ts(1_700_000_000_000 + i)).await.unwrap();
            // Hold the transaction a moment, as the audit append does.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            tx.commit().await.unwrap();
            ok
        })
    });
    let results = futures_join(tasks).await;
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
    let row = s.link(&org.id, &once.id).await.unwrap().unwrap();
    assert_eq!(row.use_count, 1);
    assert!(row.used_at.is_some());
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

pub(crate) async fn links_die_with_their_asset(env: &Env) {
    let s = &env.store;
    new_kek(s, 1).await;
    let org = new_org(s, "Acme").await;
    let space = new_space(s, &org.id, "Docs").await;
    let asset = new_asset(s, &space, 1).await;
    let keep = new_asset(s, &space, 2).await;
    let doomed = link_row(&asset, false, 1_800_000_000_000);
    new_link(s, &doomed, b"doomed").await;
    let kept = link_row(&keep, false, 1_800_000_000_000);
    new_link(s, &kept, b"kept").await;

    let mut tx = s.begin().await.unwrap();
    assert!(tx.delete_asset(&org.id, &asset.id).await.unwrap().is_some());
    assert!(tx.delete_blob(&asset.blob_id).await.unwrap());
    tx.commit().await.unwrap();
    assert!(s.link_by_token_hash(b"doomed").await.unwrap().is_none());
    assert!(s.link(&org.id, &doomed.id).await.unwrap().is_none());
    assert!(!use_at(s, &doomed.id, 1).await);
    assert!(s.link_by_token_hash(b"kept").await.unwrap().is_some());
}
