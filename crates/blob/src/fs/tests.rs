use std::time::Duration;

use super::*;

fn store() -> (tempfile::TempDir, FsBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path().join("blobs")).unwrap();
    (dir, store)
}

async fn put(store: &dyn BlobStore, id: &str, data: &[u8]) {
    let mut w = store.create(id).await.unwrap();
    w.write(Bytes::copy_from_slice(data)).await.unwrap();
    w.commit().await.unwrap();
}

fn tmp_entries(store: &FsBlobStore) -> usize {
    std::fs::read_dir(&store.tmp).unwrap().count()
}

/// Temp files of batches, which wait in the fan-out folders.
fn batch_temps(store: &FsBlobStore) -> usize {
    let mut temps = Vec::new();
    walk_objects(&store.objects, Some(&mut temps)).unwrap();
    temps.len()
}

#[tokio::test]
async fn write_commit_read_delete() {
    let (_d, s) = store();
    let mut w = s.create("blob_1").await.unwrap();
    w.write(Bytes::from_static(b"hello ")).await.unwrap();
    w.write(Bytes::from_static(b"world")).await.unwrap();
    // Not visible before commit.
    assert!(matches!(s.len("blob_1").await, Err(BlobError::NotFound)));
    w.commit().await.unwrap();
    assert_eq!(s.len("blob_1").await.unwrap(), 11);
    assert_eq!(
        &s.read_at("blob_1", 0, 11).await.unwrap()[..],
        b"hello world"
    );
    assert_eq!(&s.read_at("blob_1", 6, 100).await.unwrap()[..], b"world");
    assert!(s.read_at("blob_1", 50, 10).await.unwrap().is_empty());
    assert_eq!(tmp_entries(&s), 0);

    let meta = std::fs::metadata(s.object_path("blob_1")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    s.delete("blob_1").await.unwrap();
    assert!(matches!(
        s.read_at("blob_1", 0, 1).await,
        Err(BlobError::NotFound)
    ));
    // Idempotent.
    s.delete("blob_1").await.unwrap();
}

#[tokio::test]
async fn dropped_writer_leaves_nothing() {
    let (_d, s) = store();
    let mut w = s.create("abandoned").await.unwrap();
    w.write(Bytes::from_static(b"partial upload"))
        .await
        .unwrap();
    assert_eq!(tmp_entries(&s), 1);
    drop(w);
    assert_eq!(tmp_entries(&s), 0);
    assert!(matches!(s.len("abandoned").await, Err(BlobError::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_cancelled_while_its_file_is_created_leaves_nothing() {
    let (_d, s) = store();
    let batch = Batch::default();
    for i in 0..50 {
        // Polled once (the file's creation starts on the blocking pool), then dropped: the
        // creation may end before or after the drop.
        let id = format!("cancelled_{i}");
        let plain = s.create(&id);
        let batched = s.create_in(&id, &batch);
        let _ = tokio::time::timeout(Duration::ZERO, plain).await;
        let _ = tokio::time::timeout(Duration::ZERO, batched).await;
        if i % 2 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Whatever creations were still running have ended.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left = tmp_entries(&s) + batch_temps(&s);
        if left == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{left} temp file(s) left behind"
        );
    }
    // And nothing turns up later.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tmp_entries(&s) + batch_temps(&s), 0);
}

#[tokio::test]
async fn invalid_ids_are_refused() {
    let (_d, s) = store();
    for id in ["", "../escape", "a/b", "..", "x.tmp", &"y".repeat(101)] {
        assert!(
            matches!(s.create(id).await, Err(BlobError::InvalidId)),
            "{id:?}"
        );
        assert!(matches!(
            s.read_at(id, 0, 1).await,
            Err(BlobError::InvalidId)
        ));
        assert!(matches!(s.len(id).await, Err(BlobError::InvalidId)));
        assert!(matches!(s.delete(id).await, Err(BlobError::InvalidId)));
    }
    assert_eq!(tmp_entries(&s), 0);
}

#[tokio::test]
async fn list_older_than_reports_old_blobs_and_sweeps_old_temp_files() {
    let (_d, s) = store();
    put(&s, "old_blob", b"x").await;
    put(&s, "new_blob", b"y").await;
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let two_hours_ago = an_hour_ago - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(s.object_path("old_blob"))
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();

    // A crashed upload's temp file (old) and an upload in progress (fresh).
    let crashed = s.create("crashed").await.unwrap();
    std::mem::forget(crashed);
    let stale = std::fs::read_dir(&s.tmp)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let live = s.create("live").await.unwrap();
    assert_eq!(tmp_entries(&s), 2);

    assert_eq!(
        s.list_older_than(an_hour_ago).await.unwrap(),
        vec!["old_blob"]
    );
    assert_eq!(tmp_entries(&s), 1, "only the stale temp file is swept");
    let mut all = s
        .list_older_than(SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    all.sort();
    assert_eq!(all, vec!["new_blob", "old_blob"]);
    drop(live);
}

#[tokio::test]
async fn check_reports_a_broken_store() {
    let (_d, s) = store();
    s.check().await.unwrap();
    assert_eq!(tmp_entries(&s), 0);
    std::fs::remove_dir_all(&s.tmp).unwrap();
    assert!(matches!(s.check().await, Err(BlobError::Io(_))));
}

#[tokio::test]
async fn reopening_keeps_blobs() {
    let (d, s) = store();
    put(&s, "kept", b"data").await;
    let again = FsBlobStore::open(d.path().join("blobs")).unwrap();
    assert_eq!(&again.read_at("kept", 0, 4).await.unwrap()[..], b"data");
}

#[tokio::test]
async fn checkpoints_round_trip_sorted_and_are_never_swept() {
    let (d, s) = store();
    let org = "org_0123abcd";
    assert!(s.checkpoint_seqs(org).await.unwrap().is_empty());
    for seq in [57_u64, 9, 10, 1] {
        s.put_checkpoint(org, seq, Bytes::from(format!("cp {seq}")))
            .await
            .unwrap();
    }
    // Numeric order, not the order written (9 before 10, 57 last).
    assert_eq!(s.checkpoint_seqs(org).await.unwrap(), vec![1, 9, 10, 57]);
    assert_eq!(&s.get_checkpoint(org, 10).await.unwrap()[..], b"cp 10");
    // Rewriting one replaces it.
    s.put_checkpoint(org, 10, Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(&s.get_checkpoint(org, 10).await.unwrap()[..], b"again");
    assert!(matches!(
        s.get_checkpoint(org, 11).await,
        Err(BlobError::NotFound)
    ));
    assert!(s.checkpoint_seqs("org_other").await.unwrap().is_empty());
    assert_eq!(tmp_entries(&s), 0, "no temp file left behind");

    // Strays in the folder are not checkpoints.
    let dir = d.path().join("blobs").join(CHECKPOINTS_DIR).join(org);
    std::fs::write(dir.join("58.json"), b"x").unwrap();
    std::fs::write(dir.join("notes.txt"), b"x").unwrap();
    assert_eq!(s.checkpoint_seqs(org).await.unwrap(), vec![1, 9, 10, 57]);

    // However old, the sweep's listing never names a checkpoint.
    let long_ago = SystemTime::now() - Duration::from_secs(30 * 24 * 3600);
    for e in std::fs::read_dir(&dir).unwrap() {
        File::options()
            .write(true)
            .open(e.unwrap().path())
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }
    let everything = s
        .list_older_than(SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert!(everything.is_empty(), "{everything:?}");
    assert_eq!(s.checkpoint_seqs(org).await.unwrap(), vec![1, 9, 10, 57]);

    // Durable across a reopen.
    let again = FsBlobStore::open(d.path().join("blobs")).unwrap();
    assert_eq!(&again.get_checkpoint(org, 57).await.unwrap()[..], b"cp 57");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.join("00000000000000000057.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Bad names and oversized checkpoints are refused on every backend (the conformance suite);
/// here, that a refused checkpoint leaves no temp file behind.
#[tokio::test]
async fn an_oversized_checkpoint_leaves_no_temp_file() {
    let (_d, s) = store();
    let big = Bytes::from(vec![b'x'; crate::MAX_CHECKPOINT_LEN + 1]);
    assert!(matches!(
        s.put_checkpoint("org_1", 1, big).await,
        Err(BlobError::TooLarge)
    ));
    assert!(s.checkpoint_seqs("org_1").await.unwrap().is_empty());
    assert_eq!(tmp_entries(&s), 0);
}

async fn put_in(store: &dyn BlobStore, batch: &Batch, id: &str, data: &[u8]) {
    let mut w = store.create_in(id, batch).await.unwrap();
    w.write(Bytes::copy_from_slice(data)).await.unwrap();
    w.commit().await.unwrap();
}

#[tokio::test]
async fn blobs_of_a_batch_appear_only_when_it_is_published() {
    let (_d, s) = store();
    let batch = Batch::default();
    put_in(&s, &batch, "b_one", b"first").await;
    put_in(&s, &batch, "b_two", b"second").await;
    // Committed into the batch: not readable, not listed, waiting under temp names.
    assert_eq!(batch.len(), 2);
    assert!(matches!(s.len("b_one").await, Err(BlobError::NotFound)));
    assert!(s.list_objects().await.unwrap().is_empty());
    assert_eq!(batch_temps(&s), 2);

    s.publish(&batch).await.unwrap();
    assert!(batch.is_empty());
    assert_eq!(&s.read_at("b_one", 0, 100).await.unwrap()[..], b"first");
    assert_eq!(&s.read_at("b_two", 0, 100).await.unwrap()[..], b"second");
    assert_eq!(s.list_objects().await.unwrap().len(), 2);
    assert_eq!(batch_temps(&s), 0);
    // Publishing again has nothing to do.
    s.publish(&batch).await.unwrap();
}

#[tokio::test]
async fn a_batch_dropped_unpublished_removes_what_it_wrote() {
    let (_d, s) = store();
    let batch = Batch::default();
    put_in(&s, &batch, "b_kept", b"bytes").await;
    // A writer abandoned before its commit cleans up after itself, as outside a batch.
    let mut w = s.create_in("b_open", &batch).await.unwrap();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    drop(w);
    assert_eq!(batch_temps(&s), 1);
    let other_handle = batch.clone();
    drop(batch);
    // Another handle still holds it: nothing goes yet.
    assert_eq!(batch_temps(&s), 1);
    drop(other_handle);
    assert_eq!(batch_temps(&s), 0);
    assert!(matches!(s.len("b_kept").await, Err(BlobError::NotFound)));
}

#[tokio::test]
async fn a_store_publishes_only_the_blobs_it_wrote() {
    let (_d, a) = store();
    let (_e, b) = store();
    let batch = Batch::default();
    put_in(&a, &batch, "in_a", b"a").await;
    put_in(&b, &batch, "in_b", b"b").await;
    a.publish(&batch).await.unwrap();
    assert_eq!(a.len("in_a").await.unwrap(), 1);
    assert!(matches!(b.len("in_b").await, Err(BlobError::NotFound)));
    assert_eq!(batch.len(), 1);
    b.publish(&batch).await.unwrap();
    assert_eq!(b.len("in_b").await.unwrap(), 1);
}

#[tokio::test]
async fn the_sweep_removes_old_temp_files_of_batches_and_lists_none_as_blobs() {
    let (_d, s) = store();
    let batch = Batch::default();
    put_in(&s, &batch, "b_left", b"left behind by a crash").await;
    put(&s, "committed", b"x").await;
    // Not yet old: kept (a backup may still be writing).
    let ids = s
        .list_older_than(SystemTime::now() - Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(ids.is_empty());
    assert_eq!(batch_temps(&s), 1);
    // Old: removed, and never reported as a blob to delete.
    let ids = s
        .list_older_than(SystemTime::now() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(ids, vec!["committed".to_owned()]);
    assert_eq!(batch_temps(&s), 0);
    // Its batch cannot publish what is gone, and says so.
    assert!(s.publish(&batch).await.is_err());
    assert!(matches!(s.len("b_left").await, Err(BlobError::NotFound)));
}
