//! One behaviour suite for every [`BlobStore`]: each case runs against the filesystem backend
//! (`conformance::on_fs::<case>`) and against S3 (`conformance::on_s3::<case>`).
//!
//! The S3 variants need `STRONGROOM_TEST_S3_URL` (`s3://bucket?endpoint=...&region=...`) and
//! `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`: `scripts/test.sh` starts s3s-fs
//! (`scripts/s3.sh`), which verifies signatures, and exports them. Without the URL they fail
//! saying so, unless `STRONGROOM_TEST_SKIP_S3=1` skips them on purpose. Each S3 test works under
//! a fresh key prefix and removes what it wrote when it passes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt as _;
use strongroom_crypto::blobfmt::CHUNK_SIZE;
use strongroom_crypto::keys::DataKey;

use crate::backend::{Credentials, Location};
use crate::s3::S3Options;
use crate::{
    BackendSpec, BlobError, BlobStore, EncryptedWriter, FsBlobStore, MAX_CHECKPOINT_LEN, PART_SIZE,
    S3BlobStore, read_all, read_range,
};

/// A store under test and what it needs kept alive.
pub(crate) struct Harness {
    pub store: Arc<dyn BlobStore>,
    s3: Option<Arc<S3BlobStore>>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// Removes the S3 test prefix (the temp dir of fs goes by itself).
    pub async fn clean_up(self) {
        if let Some(s3) = &self.s3 {
            s3.remove_everything().await;
        }
    }
}

pub(crate) fn fs_harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path().join("blobs")).unwrap();
    Harness {
        store: Arc::new(store),
        s3: None,
        _dir: Some(dir),
    }
}

pub(crate) fn s3_harness() -> Option<Harness> {
    let s3 = fresh_s3(S3Options::default())?;
    Some(Harness {
        store: s3.clone(),
        s3: Some(s3),
        _dir: None,
    })
}

/// `STRONGROOM_TEST_S3_URL`, the PostgreSQL way: missing is a failure that says how to get
/// it, unless S3 tests are explicitly skipped.
pub(crate) fn s3_test_url() -> Option<String> {
    match std::env::var("STRONGROOM_TEST_S3_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            if std::env::var("STRONGROOM_TEST_SKIP_S3").as_deref() == Ok("1") {
                eprintln!("S3 test skipped (STRONGROOM_TEST_SKIP_S3=1)");
                return None;
            }
            panic!(
                "STRONGROOM_TEST_S3_URL is not set: run ./scripts/test.sh (it starts an S3 server, \
                 scripts/s3.sh), or `eval \"$(scripts/s3.sh env)\"` after `scripts/s3.sh start`, \
                 or set STRONGROOM_TEST_SKIP_S3=1 to skip S3 tests"
            );
        }
    }
}

/// The test bucket under a fresh key prefix, with the environment's credentials.
pub(crate) fn fresh_s3(options: S3Options) -> Option<Arc<S3BlobStore>> {
    let (location, credentials) = s3_test_target()?;
    Some(Arc::new(
        S3BlobStore::open("s3-test", location, credentials, options).unwrap(),
    ))
}

/// The test bucket's location (fresh prefix) and the environment's credentials.
pub(crate) fn s3_test_target() -> Option<(crate::backend::S3Location, Credentials)> {
    let url = s3_test_url()?;
    let Ok(Location::S3(mut location)) = Location::parse(&url) else {
        panic!("STRONGROOM_TEST_S3_URL must be an s3:// URL with endpoint= and region=");
    };
    let fresh = format!("t-{}", strongroom_crypto::token::random_token(9));
    location.prefix = match location.prefix.as_str() {
        "" => fresh,
        p => format!("{p}/{fresh}"),
    };
    let spec = BackendSpec {
        name: "s3-test".into(),
        url,
        access_key_id: None,
        secret_access_key_file: None,
    };
    let credentials = Credentials::resolve(&spec, &|k| std::env::var(k).ok())
        .unwrap_or_else(|e| panic!("{e} (scripts/s3.sh env prints them)"));
    Some((location, credentials))
}

/// Deterministic pseudo-random bytes (xorshift): no window repeats, so a found window means a
/// leak.
pub(crate) fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

async fn put(store: &dyn BlobStore, id: &str, data: &[u8]) {
    let mut w = store.create(id).await.unwrap();
    w.write(Bytes::copy_from_slice(data)).await.unwrap();
    w.commit().await.unwrap();
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(120)
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, BlobError>) -> bool {
    matches!(r, Err(BlobError::NotFound))
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod on_fs {
            $(
                #[tokio::test]
                async fn $case() {
                    let h = super::fs_harness();
                    super::$case(&h).await;
                }
            )*
        }
        mod on_s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = super::s3_harness() else { return };
                    super::$case(&h).await;
                    h.clean_up().await;
                }
            )*
        }
    };
}

suite!(
    commit_makes_a_blob_visible,
    dropped_writers_leave_nothing_visible,
    large_blobs_and_ranged_reads_across_parts,
    cursors_read_a_range_in_order,
    sized_writers_store_exactly_their_length,
    missing_blobs_are_not_found,
    delete_is_idempotent,
    list_older_than_names_committed_blobs_only,
    list_objects_names_committed_blobs_and_leaves_uploads_alone,
    checkpoints_round_trip_in_numeric_order,
    invalid_ids_are_refused,
    encrypted_blobs_round_trip,
    check_passes_on_a_healthy_store,
);

async fn commit_makes_a_blob_visible(h: &Harness) {
    let s = &*h.store;
    let mut w = s.create("blob_1").await.unwrap();
    w.write(Bytes::from_static(b"hello ")).await.unwrap();
    w.write(Bytes::from_static(b"world")).await.unwrap();
    assert!(is_not_found(s.len("blob_1").await), "visible before commit");
    assert!(is_not_found(s.read_at("blob_1", 0, 5).await));
    w.commit().await.unwrap();
    assert_eq!(s.len("blob_1").await.unwrap(), 11);
    assert_eq!(
        &s.read_at("blob_1", 0, 11).await.unwrap()[..],
        b"hello world"
    );
    assert_eq!(&s.read_at("blob_1", 6, 100).await.unwrap()[..], b"world");

    // A second commit under the same id replaces the blob whole.
    put(s, "blob_1", b"again").await;
    assert_eq!(&s.read_at("blob_1", 0, 100).await.unwrap()[..], b"again");

    // An empty blob is a blob.
    s.create("empty").await.unwrap().commit().await.unwrap();
    assert_eq!(s.len("empty").await.unwrap(), 0);
    assert!(s.read_at("empty", 0, 10).await.unwrap().is_empty());
}

async fn dropped_writers_leave_nothing_visible(h: &Harness) {
    let s = &*h.store;
    let mut w = s.create("abandoned").await.unwrap();
    w.write(Bytes::from_static(b"partial upload"))
        .await
        .unwrap();
    drop(w);
    // Past one part: on S3 a multipart upload had started, and is aborted.
    let mut w = s.create("abandoned_big").await.unwrap();
    for piece in pattern(PART_SIZE + 4096, 1).chunks(1 << 20) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    drop(w);
    // An abandoned rewrite leaves the committed version alone.
    put(s, "kept", b"version 1").await;
    let mut w = s.create("kept").await.unwrap();
    for piece in pattern(PART_SIZE + 1, 2).chunks(1 << 20) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    drop(w);

    for id in ["abandoned", "abandoned_big"] {
        assert!(is_not_found(s.len(id).await), "{id} became visible");
        assert!(
            is_not_found(s.read_at(id, 0, 1).await),
            "{id} became readable"
        );
    }
    assert_eq!(&s.read_at("kept", 0, 100).await.unwrap()[..], b"version 1");
    assert_eq!(s.list_older_than(later()).await.unwrap(), vec!["kept"]);
}

async fn large_blobs_and_ranged_reads_across_parts(h: &Harness) {
    let s = &*h.store;
    let data = pattern(2 * PART_SIZE + 12_345, 7);
    let len = data.len();
    let mut w = s.create("big").await.unwrap();
    // In pieces of the encryption layer's batch size, which do not divide a part evenly.
    for piece in data.chunks(1_049_000) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    assert!(is_not_found(s.len("big").await), "visible before commit");
    w.commit().await.unwrap();
    assert_eq!(s.len("big").await.unwrap(), len as u64);

    let p = PART_SIZE;
    for (offset, n) in [
        (0, 100),
        (p - 10, 20),
        (p - 1, 2),
        (p, 1),
        (2 * p - 5, 10),
        (p / 2, p),
        (0, p + 1),
        (0, len),
        (len - 100, 100),
        (len - 10, 100),
        (len, 10),
        (len + 5, 10),
        (3, 0),
    ] {
        let got = s.read_at("big", offset as u64, n).await.unwrap();
        let want = if offset >= len {
            &[][..]
        } else {
            &data[offset..(offset + n).min(len)]
        };
        assert_eq!(got.len(), want.len(), "read_at({offset}, {n})");
        assert!(
            got[..] == *want,
            "read_at({offset}, {n}) returned other bytes"
        );
    }

    // Exactly one part: the boundary case of the single-PUT path.
    let one = pattern(PART_SIZE, 8);
    let mut w = s.create("one_part").await.unwrap();
    w.write(Bytes::from(one.clone())).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(s.len("one_part").await.unwrap(), PART_SIZE as u64);
    assert!(s.read_at("one_part", 0, PART_SIZE).await.unwrap()[..] == one[..]);
}

/// Every byte of `range` read through a cursor, `step` bytes per read.
async fn through_cursor(
    s: &dyn BlobStore,
    id: &str,
    range: std::ops::Range<u64>,
    step: usize,
) -> Vec<u8> {
    let Some(mut cursor) = s.cursor(id, 0, range).await.unwrap() else {
        panic!("this store offers no cursor");
    };
    let mut got = Vec::new();
    loop {
        let piece = cursor.read(step).await.unwrap();
        assert!(piece.len() <= step, "a cursor returned more than was asked");
        if piece.is_empty() {
            return got;
        }
        got.extend_from_slice(&piece);
    }
}

async fn cursors_read_a_range_in_order(h: &Harness) {
    let s = &*h.store;
    let data = pattern(PART_SIZE + 3 * 65_552 + 77, 11);
    let len = data.len() as u64;
    put(s, "sequential", &data).await;
    // Read sizes that do not divide the range, from the start, the middle, up to the end.
    for (range, step) in [
        (0..len, 1_048_832),
        (16..len, 65_552),
        (1000..1001, 7),
        (len - 3000..len, 1024),
        (5..PART_SIZE as u64 + 9, 333_333),
    ] {
        let got = through_cursor(s, "sequential", range.clone(), step).await;
        let want = &data[range.start as usize..range.end as usize];
        assert_eq!(got.len(), want.len(), "cursor over {range:?}");
        assert!(
            got[..] == *want,
            "cursor over {range:?} returned other bytes"
        );
    }
    assert!(through_cursor(s, "sequential", 9..9, 10).await.is_empty());
    // A missing blob, and a copy this single store does not have, are not found.
    assert!(is_not_found(
        s.cursor("missing", 0, 0..10).await.map(|_| ())
    ));
    assert!(is_not_found(
        s.cursor("sequential", 1, 0..10).await.map(|_| ())
    ));
    assert!(matches!(
        s.cursor("../x", 0, 0..1).await.map(|_| ()),
        Err(BlobError::InvalidId)
    ));
}

async fn sized_writers_store_exactly_their_length(h: &Harness) {
    let s = &*h.store;
    // Above one part (streamed in one request on S3) and below (buffered).
    for (id, len) in [("sized_big", 2 * PART_SIZE + 4321), ("sized_small", 1000)] {
        let data = pattern(len, 21);
        let mut w = s.create_sized(id, len as u64).await.unwrap();
        for piece in data.chunks(1_048_832) {
            w.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        assert!(is_not_found(s.len(id).await), "{id} visible before commit");
        w.commit().await.unwrap();
        assert_eq!(s.len(id).await.unwrap(), len as u64);
        assert!(s.read_at(id, 0, len).await.unwrap()[..] == data[..], "{id}");
    }
    // More than declared is refused at the write; fewer at the commit; nothing becomes visible.
    let len = PART_SIZE as u64 + 10;
    let mut w = s.create_sized("too_long", len).await.unwrap();
    w.write(Bytes::from(pattern(PART_SIZE, 22))).await.unwrap();
    assert!(matches!(
        w.write(Bytes::from(pattern(11, 23))).await,
        Err(BlobError::WrongLength { declared, got }) if declared == len && got == len + 1
    ));
    drop(w);
    let mut w = s.create_sized("too_short", len).await.unwrap();
    w.write(Bytes::from(pattern(PART_SIZE, 24))).await.unwrap();
    assert!(matches!(
        w.commit().await,
        Err(BlobError::WrongLength { got, .. }) if got == PART_SIZE as u64
    ));
    // Abandoned halfway through.
    let mut w = s.create_sized("abandoned_sized", len).await.unwrap();
    w.write(Bytes::from(pattern(PART_SIZE / 2, 25)))
        .await
        .unwrap();
    drop(w);
    // The service may take a moment to notice a request cut off mid-body.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in ["too_long", "too_short", "abandoned_sized"] {
        assert!(is_not_found(s.len(id).await), "{id} became visible");
    }
    let mut listed = s.list_older_than(later()).await.unwrap();
    listed.sort();
    assert_eq!(listed, vec!["sized_big", "sized_small"]);
}

async fn missing_blobs_are_not_found(h: &Harness) {
    let s = &*h.store;
    assert!(is_not_found(s.len("missing").await));
    assert!(is_not_found(s.read_at("missing", 0, 10).await));
    assert!(is_not_found(s.read_at("missing", 0, 0).await));
    assert!(is_not_found(s.get_checkpoint("org_missing", 1).await));
    assert!(s.checkpoint_seqs("org_missing").await.unwrap().is_empty());
    assert!(s.checkpoint_orgs().await.unwrap().is_empty());
}

async fn delete_is_idempotent(h: &Harness) {
    let s = &*h.store;
    put(s, "doomed", b"bytes").await;
    put(s, "doomed_not", b"other").await;
    s.delete("doomed").await.unwrap();
    assert!(is_not_found(s.len("doomed").await));
    assert!(is_not_found(s.read_at("doomed", 0, 1).await));
    s.delete("doomed").await.unwrap();
    s.delete("never_existed").await.unwrap();
    assert_eq!(&s.read_at("doomed_not", 0, 5).await.unwrap()[..], b"other");
}

async fn list_older_than_names_committed_blobs_only(h: &Harness) {
    let s = &*h.store;
    put(s, "b_blob", b"x").await;
    put(s, "a_blob", b"y").await;
    s.put_checkpoint("org_1", 1, Bytes::from_static(b"cp"))
        .await
        .unwrap();
    s.check().await.unwrap();
    let pending = s.create("uncommitted").await.unwrap();
    // Fresh blobs are not old.
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert!(s.list_older_than(an_hour_ago).await.unwrap().is_empty());
    // Everything is older than the future: the blobs, sorted, and nothing else (no checkpoint,
    // no probe, no upload in progress).
    assert_eq!(
        s.list_older_than(later()).await.unwrap(),
        vec!["a_blob", "b_blob"]
    );
    s.delete("a_blob").await.unwrap();
    assert_eq!(s.list_older_than(later()).await.unwrap(), vec!["b_blob"]);
    assert_eq!(s.checkpoint_seqs("org_1").await.unwrap(), vec![1]);
    // The organizations with checkpoints, and no blob among them.
    s.put_checkpoint("org_0", 7, Bytes::from_static(b"cp"))
        .await
        .unwrap();
    assert_eq!(s.checkpoint_orgs().await.unwrap(), vec!["org_0", "org_1"]);
    drop(pending);
}

async fn list_objects_names_committed_blobs_and_leaves_uploads_alone(h: &Harness) {
    let s = &*h.store;
    put(s, "listed_b", b"x").await;
    put(s, "listed_a", b"y").await;
    s.put_checkpoint("org_2", 1, Bytes::from_static(b"cp"))
        .await
        .unwrap();
    let mut pending = s.create("in_progress").await.unwrap();
    pending.write(Bytes::from_static(b"half")).await.unwrap();
    let names: Vec<String> = s
        .list_objects()
        .await
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, vec!["listed_a", "listed_b"]);
    // Listing removed nothing: the upload in progress still commits.
    pending.commit().await.unwrap();
    assert_eq!(s.len("in_progress").await.unwrap(), 4);
}

async fn checkpoints_round_trip_in_numeric_order(h: &Harness) {
    let s = &*h.store;
    let org = "org_0123abcd";
    assert!(s.checkpoint_seqs(org).await.unwrap().is_empty());
    for seq in [57_u64, 9, 10, 1, u64::MAX] {
        s.put_checkpoint(org, seq, Bytes::from(format!("cp {seq}")))
            .await
            .unwrap();
    }
    // Numeric order, not the order written or the text order.
    assert_eq!(
        s.checkpoint_seqs(org).await.unwrap(),
        vec![1, 9, 10, 57, u64::MAX]
    );
    assert_eq!(&s.get_checkpoint(org, 10).await.unwrap()[..], b"cp 10");
    s.put_checkpoint(org, 10, Bytes::from_static(b"again"))
        .await
        .unwrap();
    assert_eq!(&s.get_checkpoint(org, 10).await.unwrap()[..], b"again");
    assert!(is_not_found(s.get_checkpoint(org, 11).await));
    // One organization's checkpoints are not another's, even when one id prefixes the other.
    s.put_checkpoint("org_1", 3, Bytes::from_static(b"a"))
        .await
        .unwrap();
    s.put_checkpoint("org_10", 4, Bytes::from_static(b"b"))
        .await
        .unwrap();
    assert_eq!(s.checkpoint_seqs("org_1").await.unwrap(), vec![3]);
    assert_eq!(s.checkpoint_seqs("org_10").await.unwrap(), vec![4]);
    assert!(s.checkpoint_seqs("org_other").await.unwrap().is_empty());
    // The largest accepted, and one byte more refused.
    let max = Bytes::from(vec![b'x'; MAX_CHECKPOINT_LEN]);
    s.put_checkpoint(org, 2, max.clone()).await.unwrap();
    assert_eq!(s.get_checkpoint(org, 2).await.unwrap(), max);
    let big = Bytes::from(vec![b'x'; MAX_CHECKPOINT_LEN + 1]);
    assert!(matches!(
        s.put_checkpoint(org, 3, big).await,
        Err(BlobError::TooLarge)
    ));
    assert!(is_not_found(s.get_checkpoint(org, 3).await));
    // Never swept.
    assert!(s.list_older_than(later()).await.unwrap().is_empty());
}

async fn invalid_ids_are_refused(h: &Harness) {
    let s = &*h.store;
    for id in [
        "",
        "../escape",
        "a/b",
        "..",
        "x.tmp",
        "a b",
        &"y".repeat(101),
    ] {
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
        assert!(matches!(
            s.put_checkpoint(id, 1, Bytes::from_static(b"x")).await,
            Err(BlobError::InvalidId)
        ));
        assert!(matches!(
            s.checkpoint_seqs(id).await,
            Err(BlobError::InvalidId)
        ));
        assert!(matches!(
            s.get_checkpoint(id, 1).await,
            Err(BlobError::InvalidId)
        ));
    }
    assert!(s.list_older_than(later()).await.unwrap().is_empty());
}

async fn encrypted_blobs_round_trip(h: &Harness) {
    let s = &*h.store;
    let key = [7u8; 32];
    // Past one S3 part of ciphertext, ending inside a chunk.
    let size = PART_SIZE + 3 * CHUNK_SIZE + 17;
    let pt = pattern(size, 3);
    let mut w = EncryptedWriter::create(s, "enc_1", &DataKey::from_bytes(&key), None)
        .await
        .unwrap();
    for piece in pt.chunks(300_000) {
        w.push(piece).await.unwrap();
    }
    let written = w.finish().await.unwrap();
    assert_eq!(written.size, size as u64);
    assert_eq!(s.len("enc_1").await.unwrap(), written.stored_size);

    let all = read_all(s, "enc_1", &DataKey::from_bytes(&key), size as u64)
        .await
        .unwrap();
    assert!(all == pt, "the round trip changed the content");
    // A range that straddles the ciphertext's part boundary.
    let (start, end) = (PART_SIZE - 100_000, PART_SIZE + 100_000);
    let mut stream = Box::pin(read_range(
        Arc::clone(&h.store),
        "enc_1".into(),
        DataKey::from_bytes(&key),
        size as u64,
        start as u64,
        end as u64,
    ));
    let mut got = Vec::new();
    while let Some(item) = stream.next().await {
        got.extend_from_slice(&item.unwrap());
    }
    assert!(
        got[..] == pt[start..end],
        "the range read changed the content"
    );

    // The store holds ciphertext only.
    let raw = s
        .read_at("enc_1", 0, written.stored_size as usize)
        .await
        .unwrap();
    let window = &pt[PART_SIZE..PART_SIZE + 64];
    assert!(
        !raw.windows(64).any(|w| w == window),
        "plaintext in the store"
    );
    // The wrong key reads nothing.
    assert!(matches!(
        read_all(s, "enc_1", &DataKey::from_bytes(&[8u8; 32]), size as u64).await,
        Err(BlobError::Crypto(_))
    ));
}

async fn check_passes_on_a_healthy_store(h: &Harness) {
    h.store.check().await.unwrap();
    h.store.check().await.unwrap();
    // The probe leaves nothing the sweep or the checkpoints would see.
    assert!(h.store.list_older_than(later()).await.unwrap().is_empty());
}
