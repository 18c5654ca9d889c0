//! The replicated store against real filesystem backends, one of which can be switched off.
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::TryStreamExt;
use strongroom_crypto::keys::DataKey;

use super::*;
use crate::{Batch, BlobCursor, EncryptedWriter, FsBlobStore, read_all, read_range, verify_copy};

/// A filesystem backend that can be switched off, like a disk that fails or an S3 server
/// that stops answering: every call then fails with an I/O error.
struct Switchable {
    inner: FsBlobStore,
    down: Arc<AtomicBool>,
}

fn gate(down: &AtomicBool) -> Result<(), BlobError> {
    if down.load(Ordering::SeqCst) {
        Err(BlobError::Io(std::io::Error::other("backend down")))
    } else {
        Ok(())
    }
}

impl Switchable {
    fn gate(&self) -> Result<(), BlobError> {
        gate(&self.down)
    }
}

/// An upload to a switchable backend: fails once the backend is switched off.
struct GatedWriter {
    inner: Box<dyn BlobWriter>,
    down: Arc<AtomicBool>,
}

impl BlobWriter for GatedWriter {
    fn write<'a>(&'a mut self, data: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            gate(&self.down)?;
            self.inner.write(data).await
        })
    }
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        Box::pin(async move {
            gate(&self.down)?;
            self.inner.commit().await
        })
    }
}

/// A sequential read from a switchable backend: fails once the backend is switched off, like a
/// connection cut in the middle of a download.
struct GatedCursor {
    inner: Box<dyn BlobCursor>,
    down: Arc<AtomicBool>,
}

impl BlobCursor for GatedCursor {
    fn read<'a>(&'a mut self, len: usize) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            gate(&self.down)?;
            self.inner.read(len).await
        })
    }
}

impl BlobStore for Switchable {
    fn create<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            let inner = self.inner.create(id).await?;
            Ok(Box::new(GatedWriter {
                inner,
                down: self.down.clone(),
            }) as Box<dyn BlobWriter>)
        })
    }
    fn create_in<'a>(
        &'a self,
        id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            let inner = self.inner.create_in(id, batch).await?;
            Ok(Box::new(GatedWriter {
                inner,
                down: self.down.clone(),
            }) as Box<dyn BlobWriter>)
        })
    }
    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.publish(batch).await
        })
    }
    fn read_at<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.read_at(id, offset, len).await
        })
    }
    fn cursor<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<Option<Box<dyn BlobCursor>>, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            let inner = self.inner.cursor(id, copy, range).await?;
            Ok(inner.map(|inner| {
                Box::new(GatedCursor {
                    inner,
                    down: self.down.clone(),
                }) as Box<dyn BlobCursor>
            }))
        })
    }
    fn len<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.len(id).await
        })
    }
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.delete(id).await
        })
    }
    fn list_older_than<'a>(
        &'a self,
        t: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.list_older_than(t).await
        })
    }
    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.check().await
        })
    }
    fn put_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.put_checkpoint(org, seq, data).await
        })
    }
    fn checkpoint_seqs<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<u64>, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.checkpoint_seqs(org).await
        })
    }
    fn checkpoint_orgs<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.checkpoint_orgs().await
        })
    }
    fn get_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            self.gate()?;
            self.inner.get_checkpoint(org, seq).await
        })
    }
}

struct Setup {
    _dirs: Vec<tempfile::TempDir>,
    backends: Vec<Arc<Switchable>>,
    store: Arc<Replicated>,
}

impl Setup {
    fn new(n: usize, copies: usize) -> Setup {
        let mut dirs = Vec::new();
        let mut backends = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let fs = FsBlobStore::open(dir.path()).unwrap();
            backends.push(Arc::new(Switchable {
                inner: fs,
                down: Arc::new(AtomicBool::new(false)),
            }));
            dirs.push(dir);
        }
        let members = backends
            .iter()
            .enumerate()
            .map(|(i, b)| Member {
                name: format!("disk{i}"),
                region: "default".into(),
                store: b.clone() as Arc<dyn BlobStore>,
            })
            .collect();
        Setup {
            _dirs: dirs,
            backends,
            store: Arc::new(Replicated::new(members, copies).unwrap()),
        }
    }

    fn path(&self, backend: usize, id: &str) -> std::path::PathBuf {
        self.backends[backend].inner.object_path(id)
    }

    async fn put(&self, id: &str, dek: &DataKey, plain: &[u8]) -> Result<(), BlobError> {
        let mut w = EncryptedWriter::create(self.store.as_ref(), id, dek, None).await?;
        for part in plain.chunks(100_000) {
            w.push(part).await?;
        }
        w.finish().await.map(|_| ())
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn every_backend_holds_an_identical_copy() {
    let s = Setup::new(3, 2);
    let dek = DataKey::generate();
    s.put("b1", &dek, &data(300_000)).await.unwrap();
    let copies: Vec<Vec<u8>> = (0..3)
        .map(|i| std::fs::read(s.path(i, "b1")).unwrap())
        .collect();
    assert_eq!(copies[0], copies[1]);
    assert_eq!(copies[0], copies[2]);
    let back = read_all(s.store.as_ref(), "b1", &dek, 300_000)
        .await
        .unwrap();
    assert_eq!(back, data(300_000));
}

#[tokio::test]
async fn a_flipped_byte_or_a_lost_copy_is_read_from_another_copy() {
    let s = Setup::new(2, 2);
    let key = [9u8; 32];
    let dek = DataKey::from_bytes(&key);
    let plain = data(1_000_000);
    s.put("flip", &dek, &plain).await.unwrap();
    s.put("lost", &dek, &plain).await.unwrap();
    // A byte deep inside copy 0 (a chunk past the first), and copy 0 of the other blob gone.
    let p = s.path(0, "flip");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[700_000] ^= 0x01;
    std::fs::write(&p, bytes).unwrap();
    std::fs::remove_file(s.path(0, "lost")).unwrap();
    // And copy 0 of a third one with a damaged header (its magic).
    s.put("head", &dek, &plain).await.unwrap();
    let p = s.path(0, "head");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&p, bytes).unwrap();
    for id in ["flip", "lost", "head"] {
        let whole: Vec<Bytes> = read_range(
            s.store.clone(),
            id.into(),
            DataKey::from_bytes(&key),
            1_000_000,
            0,
            1_000_000,
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(
            whole.concat(),
            plain,
            "{id}: the client sees the intact copy"
        );
        let part: Vec<Bytes> = read_range(
            s.store.clone(),
            id.into(),
            DataKey::from_bytes(&key),
            1_000_000,
            650_000,
            750_000,
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(part.concat(), &plain[650_000..750_000], "{id}: range");
    }
}

/// Plaintext of 3 MiB and some: several batches of a sequential read.
const LONG: usize = 3 * 1024 * 1024 + 12_345;

#[tokio::test]
async fn damage_in_the_middle_of_a_sequential_read_is_read_from_another_copy() {
    let s = Setup::new(2, 2);
    let key = [3u8; 32];
    let dek = DataKey::from_bytes(&key);
    let plain = data(LONG);
    s.put("long", &dek, &plain).await.unwrap();
    // A byte in the second batch of copy 0: the first batch came through its cursor already.
    let p = s.path(0, "long");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[1_500_000] ^= 0x04;
    std::fs::write(&p, bytes).unwrap();
    let whole: Vec<Bytes> = read_range(
        s.store.clone(),
        "long".into(),
        DataKey::from_bytes(&key),
        LONG as u64,
        0,
        LONG as u64,
    )
    .try_collect()
    .await
    .unwrap();
    assert!(
        whole.concat() == plain,
        "the client sees the intact bytes, in order"
    );
    // The scrub's check still names the damaged copy, and only that one.
    assert!(matches!(
        verify_copy(s.store.as_ref(), "long", 0, &dek, LONG as u64).await,
        Err(BlobError::Crypto(_))
    ));
    verify_copy(s.store.as_ref(), "long", 1, &dek, LONG as u64)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_backend_lost_in_the_middle_of_a_download_is_not_noticed_by_the_client() {
    let s = Setup::new(2, 2);
    let dek = DataKey::generate();
    let plain = data(LONG);
    s.put("long", &dek, &plain).await.unwrap();
    let mut stream = Box::pin(read_range(
        s.store.clone(),
        "long".into(),
        dek,
        LONG as u64,
        0,
        LONG as u64,
    ));
    let mut got = stream.try_next().await.unwrap().unwrap().to_vec();
    assert!(
        got.len() < LONG,
        "the first piece is one batch, not the whole blob"
    );
    // Copy 0's backend stops answering while its cursor is open.
    s.backends[0].down.store(true, Ordering::SeqCst);
    while let Some(piece) = stream.try_next().await.unwrap() {
        got.extend_from_slice(&piece);
    }
    assert!(got == plain, "the rest came from copy 1");
}

#[tokio::test]
async fn damage_in_every_copy_is_an_integrity_failure_not_a_wrong_answer() {
    let s = Setup::new(2, 2);
    let dek = DataKey::generate();
    s.put("bad", &dek, &data(200_000)).await.unwrap();
    for i in 0..2 {
        let p = s.path(i, "bad");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[100_000] ^= 0x80;
        std::fs::write(&p, bytes).unwrap();
    }
    let err = read_all(s.store.as_ref(), "bad", &dek, 200_000)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Crypto(_)), "{err:?}");
}

#[tokio::test]
async fn a_backend_down_fails_uploads_that_need_it_and_reads_go_on() {
    let s = Setup::new(2, 2);
    let dek = DataKey::generate();
    s.put("before", &dek, &data(50_000)).await.unwrap();
    s.backends[1].down.store(true, Ordering::SeqCst);
    let err = s.put("during", &dek, &data(50_000)).await.unwrap_err();
    assert!(
        matches!(&err, BlobError::Unavailable(m) if m.contains("disk1") && m.contains("needs 2 of 2")),
        "{err}"
    );
    assert!(
        !s.path(0, "during").exists(),
        "a refused upload leaves no copy behind"
    );
    assert!(
        s.store.check().await.is_err(),
        "readiness says uploads cannot be taken"
    );
    let back = read_all(s.store.as_ref(), "before", &dek, 50_000)
        .await
        .unwrap();
    assert_eq!(
        back,
        data(50_000),
        "downloads go on from the copy that remains"
    );
}

#[tokio::test]
async fn with_one_copy_required_an_upload_survives_a_backend_down() {
    let s = Setup::new(2, 1);
    let dek = DataKey::generate();
    s.backends[0].down.store(true, Ordering::SeqCst);
    s.put("one", &dek, &data(70_000)).await.unwrap();
    assert!(s.path(1, "one").exists());
    assert!(!s.path(0, "one").exists());
    assert!(s.store.check().await.is_ok());
    let back = read_all(s.store.as_ref(), "one", &dek, 70_000)
        .await
        .unwrap();
    assert_eq!(back, data(70_000));
}

/// Writes half of an upload, switches backend 0 off, and writes the rest.
async fn upload_across_a_failure(s: &Setup, id: &str, dek: &DataKey) -> Result<(), BlobError> {
    let mut w = EncryptedWriter::create(s.store.as_ref(), id, dek, None).await?;
    w.push(&data(400_000)[..200_000]).await?;
    s.backends[0].down.store(true, Ordering::SeqCst);
    w.push(&data(400_000)[200_000..]).await?;
    w.finish().await.map(|_| ())
}

#[tokio::test]
async fn a_backend_failing_midway_fails_an_upload_that_needs_it_and_leaves_no_copy() {
    let s = Setup::new(2, 2);
    let dek = DataKey::generate();
    let err = upload_across_a_failure(&s, "mid", &dek).await.unwrap_err();
    assert!(
        matches!(&err, BlobError::Unavailable(m) if m.contains("disk0")),
        "{err}"
    );
    s.backends[0].down.store(false, Ordering::SeqCst);
    assert!(!s.path(0, "mid").exists() && !s.path(1, "mid").exists());
}

#[tokio::test]
async fn a_backend_failing_midway_drops_out_when_enough_copies_remain() {
    let s = Setup::new(2, 1);
    let dek = DataKey::generate();
    upload_across_a_failure(&s, "mid", &dek).await.unwrap();
    s.backends[0].down.store(false, Ordering::SeqCst);
    assert!(
        !s.path(0, "mid").exists(),
        "the failed backend's partial copy is discarded"
    );
    let back = read_all(s.store.as_ref(), "mid", &dek, 400_000)
        .await
        .unwrap();
    assert_eq!(back, data(400_000));
}

#[tokio::test]
async fn deletes_reach_every_copy_or_fail() {
    let s = Setup::new(2, 2);
    let dek = DataKey::generate();
    s.put("gone", &dek, &data(10_000)).await.unwrap();
    s.backends[1].down.store(true, Ordering::SeqCst);
    assert!(
        s.store.delete("gone").await.is_err(),
        "a copy on a down backend is not forgotten"
    );
    s.backends[1].down.store(false, Ordering::SeqCst);
    s.store.delete("gone").await.unwrap();
    assert!(!s.path(0, "gone").exists() && !s.path(1, "gone").exists());
}

#[tokio::test]
async fn each_copy_is_checked_alone_and_a_bad_one_is_rewritten_from_a_good_one() {
    let s = Setup::new(3, 2);
    let dek = DataKey::generate();
    let plain = data(500_000);
    s.put("s", &dek, &plain).await.unwrap();
    let stored = std::fs::metadata(s.path(0, "s")).unwrap().len();
    let p = s.path(1, "s");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[300_000] ^= 0x04;
    std::fs::write(&p, bytes).unwrap();
    std::fs::remove_file(s.path(2, "s")).unwrap();
    let store = s.store.as_ref();
    assert!(
        crate::verify_copy(store, "s", 0, &dek, 500_000)
            .await
            .is_ok()
    );
    let bad = crate::verify_copy(store, "s", 1, &dek, 500_000)
        .await
        .unwrap_err();
    assert!(matches!(bad, BlobError::Crypto(_)), "{bad:?}");
    let gone = crate::verify_copy(store, "s", 2, &dek, 500_000)
        .await
        .unwrap_err();
    assert!(matches!(gone, BlobError::NotFound), "{gone:?}");
    for to in [1, 2] {
        rewrite_copy(store, "s", 0, to, stored).await.unwrap();
        crate::verify_copy(store, "s", to, &dek, 500_000)
            .await
            .unwrap();
    }
    assert_eq!(
        std::fs::read(s.path(1, "s")).unwrap(),
        std::fs::read(s.path(0, "s")).unwrap()
    );
}

#[test]
fn copies_must_fit_the_backends() {
    let s = Setup::new(1, 1);
    let m = s.store.members().to_vec();
    assert!(Replicated::new(m.clone(), 0).is_err());
    let err = Replicated::new(m, 2).err().unwrap();
    assert!(err.contains("needs at least 2 storage backends"), "{err}");
}

#[tokio::test]
async fn a_batch_is_published_on_every_backend_and_holds_with_enough_of_them() {
    let s = Setup::new(3, 2);
    let batch = Batch::default();
    for id in ["p1", "p2"] {
        let mut w = s.store.create_in(id, &batch).await.unwrap();
        w.write(Bytes::from(data(1000))).await.unwrap();
        w.commit().await.unwrap();
    }
    assert!(matches!(s.store.len("p1").await, Err(BlobError::NotFound)));
    // One backend fails to publish: two copies of each blob still hold, as `copies = 2` asks.
    s.backends[2].down.store(true, Ordering::SeqCst);
    s.store.publish(&batch).await.unwrap();
    for id in ["p1", "p2"] {
        for b in 0..2 {
            assert_eq!(std::fs::read(s.path(b, id)).unwrap(), data(1000));
        }
        assert!(!s.path(2, id).exists());
    }

    // Two of three fail: too few copies, and the publish says so.
    let batch = Batch::default();
    s.backends[2].down.store(false, Ordering::SeqCst);
    let mut w = s.store.create_in("p3", &batch).await.unwrap();
    w.write(Bytes::from(data(10))).await.unwrap();
    w.commit().await.unwrap();
    s.backends[0].down.store(true, Ordering::SeqCst);
    s.backends[1].down.store(true, Ordering::SeqCst);
    let err = s.store.publish(&batch).await.unwrap_err();
    assert!(matches!(err, BlobError::Unavailable(_)), "{err}");
}
