use futures_util::StreamExt as _;
use strongroom_crypto::blobfmt::ciphertext_len;

use super::*;
use crate::FsBlobStore;

const C: usize = CHUNK_SIZE;

fn store() -> (tempfile::TempDir, Arc<FsBlobStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).unwrap();
    (dir, Arc::new(store))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 65536) as u8)
        .collect()
}

/// Writes `pt` in pieces of `piece` bytes.
async fn write(
    store: &dyn BlobStore,
    id: &str,
    dek: &DataKey,
    pt: &[u8],
    piece: usize,
) -> WrittenBlob {
    let mut w = EncryptedWriter::create(store, id, dek, None).await.unwrap();
    for p in pt.chunks(piece.max(1)) {
        w.push(p).await.unwrap();
    }
    w.finish().await.unwrap()
}

async fn range(
    store: &Arc<FsBlobStore>,
    id: &str,
    dek: &[u8; 32],
    size: u64,
    start: u64,
    end: u64,
) -> Result<Vec<u8>, BlobError> {
    let store: Arc<dyn BlobStore> = store.clone();
    let mut s = Box::pin(read_range(
        store,
        id.into(),
        DataKey::from_bytes(dek),
        size,
        start,
        end,
    ));
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.extend_from_slice(&item?);
    }
    Ok(out)
}

#[tokio::test]
async fn round_trips_through_the_filesystem() {
    let (_d, s) = store();
    let dek = DataKey::generate();
    let sizes = [
        0,
        1,
        C - 1,
        C,
        C + 1,
        3 * C + 5,
        16 * C,
        16 * C + 1,
        17 * C,
        40 * C + 77,
    ];
    // Pieces smaller than a chunk (a chunk put together from several), just over one (a chunk
    // sealed from two pieces where they lie), and one huge push (chunks sealed from one piece).
    for (n, (size, piece)) in sizes
        .into_iter()
        .flat_map(|size| [1000, 65537, usize::MAX].map(|piece| (size, piece)))
        .enumerate()
    {
        let pt = pattern(size);
        let id = format!("ast_{n}");
        let written = write(&*s, &id, &dek, &pt, piece).await;
        assert_eq!(written.size, size as u64);
        assert_eq!(written.sha256, strongroom_crypto::digest::sha256(&pt));
        assert_eq!(written.stored_size, ciphertext_len(size as u64));
        assert_eq!(s.len(&id).await.unwrap(), written.stored_size);
        assert_eq!(
            read_all(&*s, &id, &dek, size as u64).await.unwrap(),
            pt,
            "size {size}, pieces of {piece}"
        );
    }
    assert_eq!(std::fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_declared_length_is_held_to_and_a_wrong_one_commits_nothing() {
    let (_d, s) = store();
    let key = [4u8; 32];
    let dek = DataKey::from_bytes(&key);
    let pt = pattern(3 * C + 5);
    let len = pt.len() as u64;
    let mut w = EncryptedWriter::create_sized(&*s, "exact", &dek, None, len)
        .await
        .unwrap();
    w.push(&pt).await.unwrap();
    let written = w.finish().await.unwrap();
    assert_eq!(written.stored_size, ciphertext_len(len));
    assert_eq!(range(&s, "exact", &key, len, 0, len).await.unwrap(), pt);

    let mut w = EncryptedWriter::create_sized(&*s, "long", &dek, None, len)
        .await
        .unwrap();
    w.push(&pt).await.unwrap();
    assert!(matches!(
        w.push(b"x").await,
        Err(BlobError::WrongLength { declared, got }) if declared == len && got == len + 1
    ));
    let mut w = EncryptedWriter::create_sized(&*s, "short", &dek, None, len)
        .await
        .unwrap();
    w.push(&pt[..100]).await.unwrap();
    assert!(matches!(
        w.finish().await,
        Err(BlobError::WrongLength { got: 100, .. })
    ));
    // Over the size limit before a byte is read.
    assert!(matches!(
        EncryptedWriter::create_sized(&*s, "big", &dek, Some(len - 1), len).await,
        Err(BlobError::TooLarge)
    ));
    for id in ["long", "short", "big"] {
        assert!(matches!(s.len(id).await, Err(BlobError::NotFound)), "{id}");
    }
}

#[tokio::test]
async fn ranges_decrypt_only_what_is_asked() {
    let (_d, s) = store();
    let key = [9u8; 32];
    let dek = DataKey::from_bytes(&key);
    let size = 40 * C + 77;
    let pt = pattern(size);
    write(&*s, "ast_r", &dek, &pt, 100_000).await;
    let n = size as u64;
    let c = C as u64;
    let cases = [
        (0, 1),
        (n - 1, n),
        (0, n),
        (c - 1, c + 1),
        (c, 2 * c),
        (c, c + 1),
        (5 * c + 3, 33 * c + 9),
        (16 * c - 1, 16 * c + 1),
        (40 * c, n),
        (7, 7),
    ];
    for (a, b) in cases {
        let got = range(&s, "ast_r", &key, n, a, b).await.unwrap();
        assert_eq!(got, &pt[a as usize..b as usize], "range {a}..{b}");
    }
    for (a, b) in [(5, 3), (0, n + 1), (n + 1, n + 2)] {
        assert!(matches!(
            range(&s, "ast_r", &key, n, a, b).await,
            Err(BlobError::InvalidRange { .. })
        ));
    }
}

#[tokio::test]
async fn a_reader_serves_any_offset_and_stops_at_the_end() {
    let (_d, s) = store();
    let dek = DataKey::generate();
    let size = 20 * C + 11;
    let pt = pattern(size);
    write(&*s, "ast_seek", &dek, &pt, 70_000).await;
    let store: Arc<dyn BlobStore> = s.clone();
    let reader = BlobReader::open(store, "ast_seek".into(), &dek, size as u64)
        .await
        .unwrap();
    assert_eq!(reader.size(), size as u64);
    // Backwards and forwards, across chunk edges, past the end, and over the batch cap.
    for (off, len) in [
        (19 * C, 5000),
        (0, 10),
        (C - 3, 6),
        (size - 4, 100),
        (3, 40 * C),
    ] {
        let got = reader.read_at(off as u64, len).await.unwrap();
        let want_end = (off + len).min(size).min(off + BATCH_PLAINTEXT);
        assert_eq!(got.as_ref(), &pt[off..want_end], "{off}+{len}");
    }
    assert!(reader.read_at(size as u64, 10).await.unwrap().is_empty());
    // A flipped ciphertext byte is an error, never wrong bytes.
    let path = s.root().join("objects");
    let file = walk(&path)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("ast_seek"))
        .unwrap();
    let mut raw = std::fs::read(&file).unwrap();
    let at = HEADER_LEN + 5 * (CHUNK_SIZE + TAG_LEN) + 17;
    raw[at] ^= 1;
    std::fs::write(&file, raw).unwrap();
    assert!(reader.read_at(5 * C as u64, 10).await.is_err());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn empty_blob_round_trips_and_is_authenticated() {
    let (_d, s) = store();
    let key = [3u8; 32];
    let dek = DataKey::from_bytes(&key);
    let w = write(&*s, "empty", &dek, &[], 1).await;
    assert_eq!(w.stored_size, 48);
    assert!(read_all(&*s, "empty", &dek, 0).await.unwrap().is_empty());
    assert!(range(&s, "empty", &key, 0, 0, 0).await.unwrap().is_empty());
    assert!(matches!(
        read_all(&*s, "empty", &DataKey::generate(), 0).await,
        Err(BlobError::Crypto(_))
    ));
}

fn stored(s: &FsBlobStore, id: &str) -> Vec<u8> {
    std::fs::read(s.object_path(id)).unwrap()
}

fn restore(s: &FsBlobStore, id: &str, bytes: &[u8]) {
    std::fs::write(s.object_path(id), bytes).unwrap();
}

#[tokio::test]
async fn tampering_is_detected() {
    let (_d, s) = store();
    let key = [5u8; 32];
    let dek = DataKey::from_bytes(&key);
    let size = 3 * C + 5;
    let pt = pattern(size);
    write(&*s, "ast_t", &dek, &pt, C).await;
    let good = stored(&s, "ast_t");
    let n = size as u64;
    let crypto = |r: Result<Vec<u8>, BlobError>| matches!(r, Err(BlobError::Crypto(_)));

    // Flipped byte in chunk 1: whole reads and ranges touching it fail, others still work.
    let mut bad = good.clone();
    bad[chunk_offset(1) as usize + 10] ^= 1;
    restore(&s, "ast_t", &bad);
    assert!(crypto(read_all(&*s, "ast_t", &dek, n).await));
    assert!(crypto(
        range(&s, "ast_t", &key, n, C as u64, C as u64 + 1).await
    ));
    assert_eq!(range(&s, "ast_t", &key, n, 0, 10).await.unwrap(), &pt[..10]);

    // Flipped header byte (nonce prefix).
    let mut bad = good.clone();
    bad[14] ^= 1;
    restore(&s, "ast_t", &bad);
    assert!(crypto(read_all(&*s, "ast_t", &dek, n).await));

    // Truncated at a chunk boundary and mid-chunk.
    for cut in [
        chunk_offset(3) as usize,
        good.len() - 1,
        chunk_offset(1) as usize + 7,
        20,
    ] {
        restore(&s, "ast_t", &good[..cut]);
        assert!(crypto(read_all(&*s, "ast_t", &dek, n).await), "cut {cut}");
        assert!(
            crypto(range(&s, "ast_t", &key, n, n - 1, n).await),
            "cut {cut}"
        );
    }

    // Chunks 0 and 1 swapped.
    let mut bad = good.clone();
    let (a, b) = (chunk_offset(0) as usize, chunk_offset(1) as usize);
    bad[a..b].copy_from_slice(&good[b..b + CHUNK_CIPHERTEXT_LEN]);
    bad[b..b + CHUNK_CIPHERTEXT_LEN].copy_from_slice(&good[a..b]);
    restore(&s, "ast_t", &bad);
    assert!(crypto(read_all(&*s, "ast_t", &dek, n).await));

    // The intact file copied under another id (with the same key) does not open there.
    restore(&s, "ast_t", &good);
    restore(&s, "ast_copy", &good);
    assert!(crypto(read_all(&*s, "ast_copy", &dek, n).await));
    assert_eq!(read_all(&*s, "ast_t", &dek, n).await.unwrap(), pt);

    // Wrong key.
    assert!(crypto(
        read_all(&*s, "ast_t", &DataKey::generate(), n).await
    ));
}

#[tokio::test]
async fn stream_yields_verified_batches_then_stops_at_the_failure() {
    let (_d, s) = store();
    let key = [6u8; 32];
    let dek = DataKey::from_bytes(&key);
    let size = 40 * C;
    write(&*s, "ast_s", &dek, &pattern(size), 300_000).await;
    let mut bad = stored(&s, "ast_s");
    bad[chunk_offset(20) as usize] ^= 0x40;
    restore(&s, "ast_s", &bad);

    let store: Arc<dyn BlobStore> = s.clone();
    let mut st = Box::pin(read_range(
        store,
        "ast_s".into(),
        DataKey::from_bytes(&key),
        size as u64,
        0,
        size as u64,
    ));
    let mut ok_bytes = 0;
    let mut errors = 0;
    while let Some(item) = st.next().await {
        match item {
            Ok(b) => {
                assert_eq!(errors, 0, "nothing after the error");
                ok_bytes += b.len();
            }
            Err(BlobError::Crypto(CryptoError::ChunkAuth { index: 20 })) => errors += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(errors, 1);
    // Only the first batch (chunks 0..16) was released; chunk 16..20 share a batch with the
    // bad chunk and were held back.
    assert_eq!(ok_bytes, 16 * C);
}

#[tokio::test]
async fn too_large_is_refused_and_nothing_is_kept() {
    let (_d, s) = store();
    let dek = DataKey::generate();
    let mut w = EncryptedWriter::create(&*s, "big", &dek, Some(3 * C as u64))
        .await
        .unwrap();
    w.push(&vec![1u8; 2 * C]).await.unwrap();
    w.push(&vec![1u8; C]).await.unwrap();
    assert!(matches!(w.push(&[1]).await, Err(BlobError::TooLarge)));
    drop(w);
    assert_eq!(std::fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    assert!(matches!(s.len("big").await, Err(BlobError::NotFound)));

    // Exactly at the limit is fine.
    let mut w = EncryptedWriter::create(&*s, "fits", &dek, Some(3 * C as u64))
        .await
        .unwrap();
    w.push(&vec![1u8; 3 * C]).await.unwrap();
    assert_eq!(w.finish().await.unwrap().size, 3 * C as u64);
}

#[tokio::test]
async fn dropped_encrypted_writer_leaves_no_temp_file() {
    let (_d, s) = store();
    let mut w = EncryptedWriter::create(&*s, "gone", &DataKey::generate(), None)
        .await
        .unwrap();
    w.push(&pattern(20 * C)).await.unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(s.root().join("tmp")).unwrap().count(), 0);
    assert!(matches!(s.len("gone").await, Err(BlobError::NotFound)));
}

#[tokio::test]
async fn plaintext_never_reaches_storage() {
    let (_d, s) = store();
    let marker = b"STRONGROOM-PLAINTEXT-MARKER-7f3a";
    let pt: Vec<u8> = marker.iter().copied().cycle().take(5 * C + 123).collect();
    write(&*s, "secret", &DataKey::generate(), &pt, 4096).await;
    let bytes = stored(&s, "secret");
    assert!(!bytes.windows(marker.len()).any(|w| w == marker));
    assert!(!bytes.windows(8).any(|w| w == &marker[..8]));
}

#[tokio::test]
async fn missing_blob_and_invalid_id() {
    let (_d, s) = store();
    let dek = DataKey::generate();
    assert!(matches!(
        read_all(&*s, "nope", &dek, 10).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        EncryptedWriter::create(&*s, "../x", &dek, None).await,
        Err(BlobError::InvalidId)
    ));
}

#[test]
fn writer_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<EncryptedWriter>();
}
