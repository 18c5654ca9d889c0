//! Erasure of a person: their row stays but holds nothing about them, and the personal part
//! of their audit events no longer opens, while the rest of each event reads as before.

use strongroom_domain::{Email, Role};
use strongroom_store::{NewAuditEvent, Personal};

use crate::Env;
use crate::fixtures::*;

conformance!(
    erasing_a_person_destroys_the_key_to_their_events,
    an_erased_person_is_erased_once,
    a_run_seals_each_persons_part_under_their_key_read_with_the_lock
);

fn personal_event(subject: &str, ip: &str) -> NewAuditEvent {
    NewAuditEvent {
        ip: ip.into(),
        detail: r#"{"note":"theirs"}"#.into(),
        personal: Some(Personal {
            subject: subject.into(),
            digest: vec![3; 32],
            salt: Some(vec![4; 32]),
        }),
        ..audit_event(1)
    }
}

async fn append_event(
    s: &strongroom_store::Store,
    org: &strongroom_domain::OrgId,
    ev: &NewAuditEvent,
) {
    let mut tx = s.begin().await.unwrap();
    let (seq, prev) = tx.lock_audit_head(org).await.unwrap();
    tx.append_audit(org, seq, ev, &prev, &hash_of(seq), b"mac")
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

pub(crate) async fn erasing_a_person_destroys_the_key_to_their_events(env: &Env) {
    let s = &env.store;
    let org = new_org(s, "Acme").await;
    let ada = new_user(s, "ada@example.com").await;
    let bob = new_user(s, "bob@example.com").await;
    set_role(s, &org.id, &ada.id, Role::Editor).await;
    set_role(s, &org.id, &bob.id, Role::Editor).await;
    append_event(s, &org.id, &personal_event(ada.id.as_str(), "192.0.2.1")).await;
    append_event(s, &org.id, &personal_event(bob.id.as_str(), "192.0.2.2")).await;
    append_event(s, &org.id, &audit_event(3)).await;

    let mut tx = s.begin().await.unwrap();
    let scopes = ["acct:ada@example.com".to_owned()];
    assert!(
        tx.erase_user(&ada.id, "ada@example.com", &scopes, ts(5))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let events = s.audit_events(&org.id, 0, 10).await.unwrap();
    // Ada's: who, what and when stay; the address, the detail and the salt are gone; the
    // digest the hash covers stays; the row is intact (an erasure is not tampering).
    let e = &events[0];
    assert!(e.sealed_intact);
    assert_eq!((e.event.ip.as_str(), e.event.detail.as_str()), ("", ""));
    let p = e.event.personal.as_ref().unwrap();
    assert_eq!(
        (p.subject.as_str(), p.digest.as_slice(), p.salt.as_ref()),
        (ada.id.as_str(), &[3u8; 32][..], None)
    );
    assert_eq!(e.event.action, "asset.create");
    // Bob's and the system's are untouched.
    assert_eq!(events[1].event.ip, "192.0.2.2");
    assert_eq!(
        events[1].event.personal.as_ref().unwrap().salt.as_deref(),
        Some(&[4u8; 32][..])
    );
    assert_eq!(events[2].event.ip, audit_event(3).ip);

    // Her address finds no one, and is free for a new account; she is in no organization.
    let email = Email::parse("ada@example.com").unwrap();
    assert!(s.user_by_email(&email).await.unwrap().is_none());
    assert!(s.memberships_of(&ada.id).await.unwrap().is_empty());
    assert_eq!(s.user_erased(&ada.id).await.unwrap(), Some(true));
    assert_eq!(s.user_erased(&bob.id).await.unwrap(), Some(false));
    assert_eq!(s.erased_users().await.unwrap(), vec![ada.id.to_string()]);
    new_user(s, "ada@example.com").await;

    // An event appended for her afterwards (a request already in flight) does not open either.
    append_event(s, &org.id, &personal_event(ada.id.as_str(), "192.0.2.9")).await;
    let late = s.audit_events(&org.id, 3, 10).await.unwrap();
    assert_eq!(late[0].event.ip, "");
    assert!(late[0].sealed_intact);
}

pub(crate) async fn an_erased_person_is_erased_once(env: &Env) {
    let s = &env.store;
    let ada = new_user(s, "ada@example.com").await;
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.erase_user(&ada.id, "ada@example.com", &[], ts(5))
            .await
            .unwrap()
    );
    assert!(
        !tx.erase_user(&ada.id, "ada@example.com", &[], ts(6))
            .await
            .unwrap()
    );
    let nobody = strongroom_domain::UserId::generate();
    assert!(
        !tx.erase_user(&nobody, "x@example.com", &[], ts(6))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
}

/// Appends `events` as one run, the chain's lock reading `subject`'s key (the group commit).
async fn append_run(
    s: &strongroom_store::Store,
    org: &strongroom_domain::OrgId,
    subject: Option<&str>,
    events: &[NewAuditEvent],
) {
    let mut tx = s.begin_audit_append().await.unwrap();
    let (first, mut prev) = tx
        .lock_audit_head_for(org, events.len(), subject)
        .await
        .unwrap();
    let run: Vec<_> = (first..)
        .zip(events)
        .map(|(seq, ev)| {
            let prev = std::mem::replace(&mut prev, hash_of(seq));
            (seq, ev.clone(), prev, hash_of(seq))
        })
        .collect();
    tx.append_audit_run(org, &run, b"mac").await.unwrap();
    tx.commit().await.unwrap();
}

pub(crate) async fn a_run_seals_each_persons_part_under_their_key_read_with_the_lock(env: &Env) {
    let s = &env.store;
    let org = new_org(s, "Acme").await;
    let ada = new_user(s, "ada@example.com").await;
    let bob = new_user(s, "bob@example.com").await;
    let (ada_id, bob_id) = (ada.id.as_str(), bob.id.as_str());
    // Ada's key read with the lock, Bob's on its own, and an event with no person.
    append_run(
        s,
        &org.id,
        Some(ada_id),
        &[
            personal_event(ada_id, "192.0.2.1"),
            personal_event(bob_id, "192.0.2.2"),
            audit_event(3),
            personal_event(ada_id, "192.0.2.4"),
        ],
    )
    .await;
    let events = s.audit_events(&org.id, 0, 10).await.unwrap();
    let ips: Vec<&str> = events.iter().map(|e| e.event.ip.as_str()).collect();
    assert_eq!(
        ips,
        [
            "192.0.2.1",
            "192.0.2.2",
            audit_event(3).ip.as_str(),
            "192.0.2.4"
        ]
    );
    assert!(events.iter().all(|e| e.sealed_intact));
    // The head moved to the run's last event, with its MAC.
    let head = s.audit_head(&org.id).await.unwrap().unwrap();
    assert_eq!(
        (head.seq, head.hash, head.mac),
        (4, hash_of(4), b"mac".to_vec())
    );

    // Once Ada is erased, a run read with her (erased) row seals her part under a key nobody
    // keeps; so does one for an id that names nobody.
    let mut tx = s.begin().await.unwrap();
    assert!(
        tx.erase_user(&ada.id, "ada@example.com", &[], ts(5))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    append_run(
        s,
        &org.id,
        Some(ada_id),
        &[personal_event(ada_id, "192.0.2.5")],
    )
    .await;
    let nobody = "usr_nobody";
    append_run(
        s,
        &org.id,
        Some(nobody),
        &[personal_event(nobody, "192.0.2.6")],
    )
    .await;
    let late = s.audit_events(&org.id, 4, 10).await.unwrap();
    let ips: Vec<&str> = late.iter().map(|e| e.event.ip.as_str()).collect();
    assert_eq!(ips, ["", ""]);
    // Hers reads as erased (intact); the nobody's part opens for no one either.
    assert!(late[0].sealed_intact);
    // Bob's key is as it was.
    append_run(
        s,
        &org.id,
        Some(bob_id),
        &[personal_event(bob_id, "192.0.2.7")],
    )
    .await;
    let last = s.audit_events(&org.id, 6, 10).await.unwrap();
    assert_eq!(last[0].event.ip, "192.0.2.7");
}
