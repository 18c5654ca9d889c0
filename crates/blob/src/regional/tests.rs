//! Regions over real filesystem backends: where writes land, and reads across a move.
use strongroom_crypto::keys::DataKey;

use super::*;
use crate::{EncryptedWriter, FsBlobStore, Member, read_all};

/// Two regions, `eu` (two backends, two copies) and `us` (one backend), each backend a folder.
struct Fixture {
    regions: Regions,
    /// The folders, by backend name.
    dirs: Vec<(String, tempfile::TempDir)>,
}

fn fixture() -> Fixture {
    let mut dirs = Vec::new();
    let mut member = |name: &str, region: &str| {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FsBlobStore::open(dir.path()).unwrap());
        dirs.push((name.to_owned(), dir));
        Member {
            name: name.into(),
            region: region.into(),
            store,
        }
    };
    let eu = Replicated::new(vec![member("eu-1", "eu"), member("eu-2", "eu")], 2).unwrap();
    let us = Replicated::new(vec![member("us-1", "us")], 1).unwrap();
    let regions = Regions::new(vec![("eu".into(), eu), ("us".into(), us)]).unwrap();
    Fixture { regions, dirs }
}

impl Fixture {
    /// Whether backend `name` holds blob `id` (looked up on disk, not through the store).
    fn holds(&self, name: &str, id: &str) -> bool {
        let (_, dir) = self.dirs.iter().find(|(n, _)| n == name).unwrap();
        walk(dir.path())
            .iter()
            .any(|p| p.file_name().is_some_and(|f| f == id))
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn put(store: &dyn BlobStore, id: &str, dek: &DataKey, data: &[u8]) -> u64 {
    let mut w = EncryptedWriter::create(store, id, dek, None).await.unwrap();
    w.push(data).await.unwrap();
    w.finish().await.unwrap().stored_size
}

#[tokio::test]
async fn writes_land_only_in_their_region() {
    let f = fixture();
    let dek = DataKey::generate();
    put(
        f.regions.in_region("eu").unwrap().as_ref(),
        "blob_eu",
        &dek,
        b"eu data",
    )
    .await;
    put(
        f.regions.in_region("us").unwrap().as_ref(),
        "blob_us",
        &dek,
        b"us data",
    )
    .await;
    assert!(f.holds("eu-1", "blob_eu") && f.holds("eu-2", "blob_eu"));
    assert!(!f.holds("us-1", "blob_eu"));
    assert!(f.holds("us-1", "blob_us"));
    assert!(!f.holds("eu-1", "blob_us") && !f.holds("eu-2", "blob_us"));

    let eu = f.regions.in_region("eu").unwrap();
    eu.put_checkpoint("org_a", 7, Bytes::from_static(b"cp"))
        .await
        .unwrap();
    assert!(
        f.regions
            .home("us")
            .unwrap()
            .checkpoint_seqs("org_a")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(eu.checkpoint_seqs("org_a").await.unwrap(), vec![7]);
}

#[tokio::test]
async fn a_blob_in_another_region_is_still_read_and_deleted_everywhere() {
    let f = fixture();
    let dek = DataKey::generate();
    // Written in eu; read through the us view (an organization halfway through a move).
    put(
        f.regions.in_region("eu").unwrap().as_ref(),
        "moving",
        &dek,
        b"still here",
    )
    .await;
    let us = f.regions.in_region("us").unwrap();
    assert_eq!(us.copies(), 3, "us's own copy, then eu's two");
    assert_eq!(
        read_all(us.as_ref(), "moving", &dek, 10).await.unwrap(),
        b"still here"
    );
    assert_eq!(
        us.len("moving").await.unwrap(),
        f.regions
            .in_region("eu")
            .unwrap()
            .len("moving")
            .await
            .unwrap()
    );
    // A repair through the us view may only write us copies.
    assert!(us.create_copy("moving", 1).await.is_err());
    // Checkpoints written in eu are listed through the us view too.
    f.regions
        .in_region("eu")
        .unwrap()
        .put_checkpoint("org_m", 3, Bytes::from_static(b"cp"))
        .await
        .unwrap();
    assert_eq!(us.checkpoint_seqs("org_m").await.unwrap(), vec![3]);
    assert_eq!(
        us.get_checkpoint("org_m", 3).await.unwrap(),
        Bytes::from_static(b"cp")
    );

    f.regions.delete_everywhere("moving").await.unwrap();
    assert!(!f.holds("eu-1", "moving") && !f.holds("eu-2", "moving"));
    assert!(matches!(us.len("moving").await, Err(BlobError::NotFound)));
}

#[test]
fn an_unknown_region_is_a_clear_error_and_names_are_checked() {
    let f = fixture();
    let err = f.regions.in_region("ap").err().unwrap().to_string();
    assert!(err.contains("'ap'") && err.contains("eu, us"), "{err}");
    for ok in ["eu", "us-east", "default", "r1"] {
        assert!(validate_region(ok).is_ok(), "{ok}");
    }
    for bad in ["", "EU", "eu_1", "e u", "é", &"x".repeat(64)] {
        assert!(validate_region(bad).is_err(), "{bad:?}");
    }
    let one = || Replicated::new(vec![], 1);
    assert!(one().is_err());
    assert!(Regions::new(vec![]).is_err());
}
