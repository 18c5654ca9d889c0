//! The durable job queue: exclusive claims under concurrency, leases that run out, retries and
//! final failure, lanes, fairness and caps between organizations, and output leases, on both
//! engines.

use strongroom_domain::{BlobId, JobId, OrgId};
use strongroom_store::{JobStatus, Lane, NewJob, Store};

use crate::Env;
use crate::fixtures::*;

conformance!(
    concurrent_workers_never_share_a_job,
    a_dead_workers_job_is_claimed_again,
    failures_retry_then_fail_for_good,
    lanes_split_kinds_and_claims_are_fair_between_organizations,
    concurrent_claims_never_exceed_the_per_organization_cap,
    outputs_are_referenced_from_their_lease_to_their_commit
);

async fn enqueue(store: &Store, run_after: i64) -> JobId {
    let id = JobId::generate();
    let mut tx = store.begin().await.unwrap();
    tx.enqueue_job(
        &NewJob {
            id: id.clone(),
            org_id: None,
            kind: "test".into(),
            subject: Some("ast_x".into()),
            payload: vec![1, 2, 3],
            max_attempts: 2,
            run_after: ts(run_after),
        },
        ts(0),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

pub(crate) async fn concurrent_workers_never_share_a_job(env: &Env) {
    let s = &env.store;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(enqueue(s, 1_000).await);
    }
    // Not due yet: nothing to claim.
    assert!(
        s.claim_job(&Lane::any(), "early", ts(999), ts(60_999))
            .await
            .unwrap()
            .is_none()
    );
    // Eight workers drain the queue at once; every job is claimed exactly once.
    let workers = (0..8).map(|w| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(j) = s
                .claim_job(&Lane::any(), &format!("w{w}"), ts(2_000), ts(62_000))
                .await
                .unwrap()
            {
                got.push(j.id.to_string());
            }
            got
        })
    });
    let mut claimed: Vec<String> = Vec::new();
    for w in workers {
        claimed.extend(w.await.unwrap());
    }
    claimed.sort();
    let mut expected: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    expected.sort();
    assert_eq!(claimed, expected);
    let job = s.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.payload, vec![1, 2, 3]);
    assert_eq!(s.jobs_about("ast_x").await.unwrap().len(), 20);
}

pub(crate) async fn a_dead_workers_job_is_claimed_again(env: &Env) {
    let s = &env.store;
    let id = enqueue(s, 0).await;
    let first = s
        .claim_job(&Lane::any(), "dies", ts(1_000), ts(61_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, id);
    // While the lease holds, nobody else gets it; renewing extends it.
    assert!(
        s.claim_job(&Lane::any(), "other", ts(30_000), ts(90_000))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.renew_job(&id, "dies", 40, ts(100_000), ts(50_000))
            .await
            .unwrap()
    );
    assert!(
        s.claim_job(&Lane::any(), "other", ts(70_000), ts(130_000))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.job(&id).await.unwrap().unwrap().progress, 40);
    // The lease runs out: another worker takes over, and the first can no longer finish it.
    let again = s
        .claim_job(&Lane::any(), "other", ts(100_001), ts(160_001))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id.clone(), again.attempts), (id.clone(), 2));
    assert!(!s.finish_job(&id, "dies", ts(100_002)).await.unwrap());
    assert!(
        !s.renew_job(&id, "dies", 90, ts(200_000), ts(100_002))
            .await
            .unwrap()
    );
    assert!(s.finish_job(&id, "other", ts(100_003)).await.unwrap());
    let done = s.job(&id).await.unwrap().unwrap();
    assert_eq!((done.status, done.progress), (JobStatus::Done, 100));
    assert!(
        s.claim_job(&Lane::any(), "other", ts(1_000_000), ts(1_060_000))
            .await
            .unwrap()
            .is_none()
    );
    // Finished jobs are pruned once old enough.
    assert_eq!(s.prune_jobs(ts(100_003)).await.unwrap(), 0);
    assert_eq!(s.prune_jobs(ts(100_004)).await.unwrap(), 1);
    assert!(s.job(&id).await.unwrap().is_none());
}

pub(crate) async fn failures_retry_then_fail_for_good(env: &Env) {
    let s = &env.store;
    let id = enqueue(s, 0).await;
    s.claim_job(&Lane::any(), "w", ts(1_000), ts(61_000))
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.fail_job(&id, "w", "server said 421", Some(ts(6_000)), ts(1_500))
            .await
            .unwrap()
    );
    let j = s.job(&id).await.unwrap().unwrap();
    assert_eq!(
        (j.status, j.last_error.as_deref()),
        (JobStatus::Queued, Some("server said 421"))
    );
    // Not before its backoff.
    assert!(
        s.claim_job(&Lane::any(), "w", ts(5_999), ts(65_999))
            .await
            .unwrap()
            .is_none()
    );
    let j = s
        .claim_job(&Lane::any(), "w", ts(6_000), ts(66_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(j.attempts, 2);
    assert!(
        s.fail_job(&id, "w", "still down", None, ts(7_000))
            .await
            .unwrap()
    );
    let j = s.job(&id).await.unwrap().unwrap();
    assert_eq!(j.status, JobStatus::Failed);
    assert!(
        s.claim_job(&Lane::any(), "w", ts(10_000_000), ts(10_060_000))
            .await
            .unwrap()
            .is_none()
    );
    let counts = s.job_counts().await.unwrap();
    assert_eq!(counts, vec![(JobStatus::Failed, 1)]);
}

fn media_lane(per_org: u32) -> Lane {
    Lane {
        kinds: vec!["media".into()],
        except: false,
        per_org: Some(per_org),
    }
}

/// Everything but media: mail, and kinds nobody knows.
fn mail_lane() -> Lane {
    Lane {
        kinds: vec!["media".into()],
        except: true,
        per_org: None,
    }
}

async fn enqueue_for(store: &Store, org: Option<&OrgId>, kind: &str, run_after: i64) -> JobId {
    let id = JobId::generate();
    let mut tx = store.begin().await.unwrap();
    tx.enqueue_job(
        &NewJob {
            id: id.clone(),
            org_id: org.cloned(),
            kind: kind.into(),
            subject: None,
            payload: vec![9],
            max_attempts: 3,
            run_after: ts(run_after),
        },
        ts(0),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn claim(s: &Store, lane: &Lane, worker: &str, now: i64) -> Option<JobId> {
    s.claim_job(lane, worker, ts(now), ts(now + 60_000))
        .await
        .unwrap()
        .map(|j| j.id)
}

pub(crate) async fn lanes_split_kinds_and_claims_are_fair_between_organizations(env: &Env) {
    let s = &env.store;
    let a = new_org(s, "Acme").await.id;
    let b = new_org(s, "Globex").await.id;
    // Acme queued three long jobs before Globex queued one.
    let a1 = enqueue_for(s, Some(&a), "media", 100).await;
    let a2 = enqueue_for(s, Some(&a), "media", 200).await;
    let a3 = enqueue_for(s, Some(&a), "media", 300).await;
    let b1 = enqueue_for(s, Some(&b), "media", 400).await;
    let mail = enqueue_for(s, Some(&a), "mail", 500).await;
    let odd = enqueue_for(s, None, "frobnicate", 600).await;

    // The media lane never takes mail (nor an unknown kind), and the mail lane never takes media.
    let media = media_lane(1);
    assert_eq!(claim(s, &media, "m1", 1_000).await, Some(a1.clone()));
    // Acme is at its cap: Globex's newer job goes next, not Acme's older ones.
    assert_eq!(claim(s, &media, "m2", 1_000).await, Some(b1.clone()));
    assert_eq!(claim(s, &media, "m3", 1_000).await, None, "both at the cap");
    assert_eq!(
        claim(s, &mail_lane(), "x1", 1_000).await,
        Some(mail.clone())
    );
    assert_eq!(
        claim(s, &mail_lane(), "x2", 1_000).await,
        Some(odd),
        "unknown kinds are claimed"
    );
    assert_eq!(claim(s, &mail_lane(), "x3", 1_000).await, None);
    // Acme's job ends: its next one may start.
    assert!(s.finish_job(&a1, "m1", ts(2_000)).await.unwrap());
    assert_eq!(claim(s, &media, "m1", 2_000).await, Some(a2.clone()));

    // Under a looser cap, the organization with the fewest running jobs goes first.
    assert_eq!(
        claim(s, &media_lane(2), "m3", 2_000).await,
        Some(a3.clone())
    );
    assert_eq!(
        claim(s, &media_lane(2), "m4", 2_000).await,
        None,
        "nothing else is due"
    );
    let a4 = enqueue_for(s, Some(&a), "media", 2_400).await;
    let b2 = enqueue_for(s, Some(&b), "media", 2_500).await;
    // Acme runs two, Globex one: Globex's job is taken although Acme's is older.
    assert_eq!(claim(s, &media_lane(3), "m5", 3_000).await, Some(b2));
    let _ = a4;

    // Leases that ran out (a2, a3, b1 at 62 000) do not count as running: their workers are
    // gone. At 62 500 Acme runs nothing live, Globex runs b2 (leased until 63 000), so under a
    // cap of one Acme's oldest due job is next, and then nobody's.
    assert_eq!(
        claim(s, &media_lane(1), "m6", 62_500).await,
        Some(a2.clone())
    );
    let j = s.job(&a2).await.unwrap().unwrap();
    assert_eq!(
        (j.attempts, j.status, j.worker.as_deref()),
        (2, JobStatus::Running, Some("m6"))
    );
    assert_eq!(
        claim(s, &media_lane(1), "m7", 62_500).await,
        None,
        "both at the cap again"
    );
}

pub(crate) async fn concurrent_claims_never_exceed_the_per_organization_cap(env: &Env) {
    let s = &env.store;
    const ROUNDS: usize = 5;
    let mut orgs = Vec::new();
    for n in ["Acme", "Globex", "Initech"] {
        let org = new_org(s, n).await.id;
        for i in 0..ROUNDS {
            enqueue_for(s, Some(&org), "media", i64::try_from(i).unwrap()).await;
        }
        orgs.push(org);
    }
    let mut expected: Vec<String> = orgs.iter().map(|o| o.to_string()).collect();
    expected.sort();
    for round in 0..ROUNDS {
        // Eight workers on "several nodes" claim at the same instant, each until it gets
        // nothing: one job per organization may start, whoever wins.
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let (s, barrier) = (s.clone(), barrier.clone());
                tokio::spawn(async move {
                    let worker = format!("w{round}-{w}");
                    barrier.wait().await;
                    let mut got = Vec::new();
                    while let Some(j) = s
                        .claim_job(&media_lane(1), &worker, ts(1_000), ts(61_000))
                        .await
                        .unwrap()
                    {
                        got.push((j.org_id.unwrap().to_string(), j.id, worker.clone()));
                    }
                    got
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for w in workers {
            claimed.extend(w.await.unwrap());
        }
        let mut by_org: Vec<String> = claimed.iter().map(|c| c.0.clone()).collect();
        by_org.sort();
        assert_eq!(
            by_org, expected,
            "round {round}: one running job per organization"
        );
        for (_, id, worker) in claimed {
            assert!(s.finish_job(&id, &worker, ts(1_000)).await.unwrap());
        }
    }
}

pub(crate) async fn outputs_are_referenced_from_their_lease_to_their_commit(env: &Env) {
    let s = &env.store;
    let org = new_org(s, "Acme").await.id;
    new_kek(s, 1).await;
    let job = enqueue_for(s, Some(&org), "media", 0).await;
    assert_eq!(
        claim(s, &media_lane(1), "w1", 1_000).await,
        Some(job.clone())
    );
    let out = blob_row(&org, 1);
    let stray = BlobId::generate();
    // Leased before the object is written: referenced from then on.
    assert!(!s.object_referenced(out.id.as_str()).await.unwrap());
    assert!(
        s.lease_output(&job, "w1", &out.id, ts(1_100))
            .await
            .unwrap()
    );
    assert!(s.lease_output(&job, "w1", &stray, ts(1_100)).await.unwrap());
    assert!(s.object_referenced(out.id.as_str()).await.unwrap());
    // Only the worker holding the job may lease for it.
    assert!(
        !s.lease_output(&job, "w2", &BlobId::generate(), ts(1_100))
            .await
            .unwrap()
    );
    assert_eq!(s.leased_outputs(&job, Some("w1")).await.unwrap().len(), 2);
    assert_eq!(s.leased_outputs(&job, Some("w2")).await.unwrap().len(), 0);
    assert!(
        s.abandoned_outputs(100).await.unwrap().is_empty(),
        "its job is running"
    );

    // Another worker cannot complete it; the holder does, with the blob row, in one transaction.
    let mut tx = s.begin().await.unwrap();
    tx.insert_blob(&out).await.unwrap();
    assert!(!tx.complete_job(&job, "w2", ts(1_200)).await.unwrap());
    drop(tx);
    assert!(
        !s.blob_exists(out.id.as_str()).await.unwrap(),
        "rolled back"
    );
    let mut tx = s.begin().await.unwrap();
    tx.insert_blob(&out).await.unwrap();
    assert!(tx.complete_job(&job, "w1", ts(1_200)).await.unwrap());
    tx.commit().await.unwrap();
    let done = s.job(&job).await.unwrap().unwrap();
    assert_eq!((done.status, done.progress), (JobStatus::Done, 100));
    assert!(
        s.object_referenced(out.id.as_str()).await.unwrap(),
        "by its blob row now"
    );
    assert!(s.leased_outputs(&job, None).await.unwrap().is_empty());
    assert!(
        !s.object_referenced(stray.as_str()).await.unwrap(),
        "an uncommitted stray is an orphan"
    );
    assert!(
        !s.finish_job(&job, "w1", ts(1_300)).await.unwrap(),
        "already done"
    );

    // A failed attempt's leases are abandoned: the sweep's to remove.
    let failing = enqueue_for(s, Some(&org), "media", 0).await;
    assert_eq!(
        claim(s, &media_lane(1), "w3", 2_000).await,
        Some(failing.clone())
    );
    let partial = BlobId::generate();
    assert!(
        s.lease_output(&failing, "w3", &partial, ts(2_100))
            .await
            .unwrap()
    );
    assert!(s.abandoned_outputs(100).await.unwrap().is_empty());
    assert!(
        s.fail_job(&failing, "w3", "boom", Some(ts(9_000)), ts(2_200))
            .await
            .unwrap()
    );
    assert_eq!(
        s.abandoned_outputs(100).await.unwrap(),
        vec![partial.clone()]
    );
    assert!(
        s.object_referenced(partial.as_str()).await.unwrap(),
        "until the lease ends"
    );
    s.release_outputs(std::slice::from_ref(&partial))
        .await
        .unwrap();
    assert!(s.abandoned_outputs(100).await.unwrap().is_empty());
    assert!(!s.object_referenced(partial.as_str()).await.unwrap());
}
