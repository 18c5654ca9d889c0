//! Data residency: organizations' regions and where each blob is.

use strongroom_domain::OrgId;
use strongroom_store::RegionSpread;

use crate::Env;
use crate::fixtures::*;

conformance!(regions);

pub(crate) async fn regions(env: &Env) {
    let s = &env.store;
    new_kek(s, 1).await;
    let acme = new_org(s, "Acme").await;
    let other = new_org(s, "Other").await;
    let b1 = new_blob(s, &acme.id, 1).await;
    let b2 = new_blob(s, &acme.id, 1).await;
    let theirs = new_blob(s, &other.id, 1).await;
    assert_eq!(
        s.org_region(&acme.id).await.unwrap().as_deref(),
        Some("default")
    );
    assert_eq!(s.org_region(&OrgId::generate()).await.unwrap(), None);
    assert_eq!(s.regions_in_use().await.unwrap(), ["default"]);

    // One region configured: every row is relabelled to it.
    assert_eq!(s.relabel_all_regions("eu").await.unwrap(), 5);
    assert_eq!(s.relabel_all_regions("eu").await.unwrap(), 0);
    assert_eq!(s.regions_in_use().await.unwrap(), ["eu"]);
    assert_eq!(s.blob(&b1.id).await.unwrap().unwrap().region, "eu");
    assert_eq!(s.org(&acme.id).await.unwrap().unwrap().region, "eu");

    // Acme moves to us: its region first, then blob by blob.
    let mut tx = s.begin().await.unwrap();
    assert!(tx.set_org_region(&acme.id, "us").await.unwrap());
    assert!(!tx.set_org_region(&OrgId::generate(), "us").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(s.regions_in_use().await.unwrap(), ["eu", "us"]);
    let away = s.blobs_outside(&acme.id, "us", 10).await.unwrap();
    let mut want = vec![b1.id.to_string(), b2.id.to_string()];
    want.sort();
    assert_eq!(ids(&away, |b| b.id.to_string()), want);
    assert_eq!(s.blobs_outside(&acme.id, "us", 1).await.unwrap().len(), 1);
    assert_eq!(
        s.region_spread(&acme.id, "us").await.unwrap(),
        RegionSpread { home: 0, away: 2 }
    );

    let mut tx = s.begin().await.unwrap();
    assert!(tx.move_blob_region(&b1.id, "eu", "us").await.unwrap());
    // A second mover (or a stale row) changes nothing.
    assert!(!tx.move_blob_region(&b1.id, "eu", "us").await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        s.region_spread(&acme.id, "us").await.unwrap(),
        RegionSpread { home: 1, away: 1 }
    );
    assert_eq!(s.blob(&theirs.id).await.unwrap().unwrap().region, "eu");
    assert_eq!(
        s.region_spread(&other.id, "eu").await.unwrap(),
        RegionSpread { home: 1, away: 0 }
    );
}
