//! The durable job queue: exclusive claims under concurrency, leases that run out, retries and
//! final failure, on both engines.

use strongroom_domain::JobId;
use strongroom_store::{JobStatus, NewJob, Store};

use crate::Env;
use crate::fixtures::*;

conformance!(
    concurrent_workers_never_share_a_job,
    a_dead_workers_job_is_claimed_again,
    failures_retry_then_fail_for_good
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
        s.claim_job("early", ts(999), ts(60_999))
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
                .claim_job(&format!("w{w}"), ts(2_000), ts(62_000))
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
        .claim_job("dies", ts(1_000), ts(61_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, id);
    // While the lease holds, nobody else gets it; renewing extends it.
    assert!(
        s.claim_job("other", ts(30_000), ts(90_000))
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
        s.claim_job("other", ts(70_000), ts(130_000))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.job(&id).await.unwrap().unwrap().progress, 40);
    // The lease runs out: another worker takes over, and the first can no longer finish it.
    let again = s
        .claim_job("other", ts(100_001), ts(160_001))
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
        s.claim_job("other", ts(1_000_000), ts(1_060_000))
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
    s.claim_job("w", ts(1_000), ts(61_000))
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
        s.claim_job("w", ts(5_999), ts(65_999))
            .await
            .unwrap()
            .is_none()
    );
    let j = s
        .claim_job("w", ts(6_000), ts(66_000))
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
        s.claim_job("w", ts(10_000_000), ts(10_060_000))
            .await
            .unwrap()
            .is_none()
    );
    let counts = s.job_counts().await.unwrap();
    assert_eq!(counts, vec![(JobStatus::Failed, 1)]);
}
