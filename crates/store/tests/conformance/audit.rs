//! The audit chain: numbering, paging, rollback, and appends racing on one organization.

use std::collections::BTreeSet;

use strongroom_domain::OrgId;

use crate::Env;
use crate::fixtures::*;

conformance!(
    audit_chain,
    rolled_back_transaction_leaves_nothing,
    concurrent_audit_appends_are_serialized
);

pub(crate) async fn audit_chain(env: &Env) {
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
    // Every head at once (the checkpoint writer's query), in organization id order.
    let heads = s.audit_heads().await.unwrap();
    let mut want = vec![
        (a.id.clone(), 3, hash_of(3), b"mac-3".to_vec()),
        (b.id.clone(), 1, hash_of(1), b"mac-1".to_vec()),
    ];
    want.sort_by(|x, y| x.0.cmp(&y.0));
    let got: Vec<_> = heads
        .into_iter()
        .map(|(id, h)| (id, h.seq, h.hash, h.mac))
        .collect();
    assert_eq!(got, want);

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

pub(crate) async fn rolled_back_transaction_leaves_nothing(env: &Env) {
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

pub(crate) async fn concurrent_audit_appends_are_serialized(env: &Env) {
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
