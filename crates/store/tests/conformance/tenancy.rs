//! Organizations, users, memberships, spaces and assets: uniqueness, scoping, paging.

use strongroom_domain::{Email, OrgId, Role, SpaceId, UserId};
use strongroom_store::{StoreError, UserRow};

use crate::Env;
use crate::fixtures::*;

conformance!(
    orgs,
    users,
    memberships,
    spaces_are_scoped_and_paged,
    assets_are_scoped_paged_and_deleted_once
);

pub(crate) async fn orgs(env: &Env) {
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

pub(crate) async fn users(env: &Env) {
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

pub(crate) async fn memberships(env: &Env) {
    let s = &env.store;
    let acme = new_org(s, "Acme").await;
    let globex = new_org(s, "Globex").await;
    let alice = new_user(s, "alice@example.com").await;
    let bob = new_user(s, "bob@example.com").await;

    assert_eq!(s.membership(&acme.id, &alice.id).await.unwrap(), None);

    set_role(s, &acme.id, &alice.id, Role::Viewer).await;
    assert_eq!(
        s.membership(&acme.id, &alice.id).await.unwrap(),
        Some(Role::Viewer.into())
    );

    // Upserting again changes the role instead of failing or adding a second row.
    set_role(s, &acme.id, &alice.id, Role::Admin).await;
    assert_eq!(
        s.membership(&acme.id, &alice.id).await.unwrap(),
        Some(Role::Admin.into())
    );

    // A membership is per (organization, user).
    assert_eq!(s.membership(&globex.id, &alice.id).await.unwrap(), None);
    assert_eq!(s.membership(&acme.id, &bob.id).await.unwrap(), None);
    set_role(s, &globex.id, &alice.id, Role::Owner).await;
    assert_eq!(
        s.membership(&globex.id, &alice.id).await.unwrap(),
        Some(Role::Owner.into())
    );
    assert_eq!(
        s.membership(&acme.id, &alice.id).await.unwrap(),
        Some(Role::Admin.into())
    );

    // Every role survives the round trip.
    for role in Role::ALL {
        set_role(s, &acme.id, &bob.id, role).await;
        assert_eq!(
            s.membership(&acme.id, &bob.id).await.unwrap(),
            Some(role.into())
        );
    }
}

pub(crate) async fn spaces_are_scoped_and_paged(env: &Env) {
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

pub(crate) async fn assets_are_scoped_paged_and_deleted_once(env: &Env) {
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
