//! The streaming encryption layer: plaintext in, sealed chunks to a [`BlobStore`], and back.
//!
//! Memory is bounded whatever the blob size: a download holds one batch (16 chunks, about
//! 1 MiB); an upload holds at most four (the batch being filled, the one being sealed, one being
//! hashed and one being written, the last two on the blocking pool so they overlap with
//! receiving). Batching amortises the per-call cost of the blocking pool and the storage backend
//! while keeping latency to first byte low.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use strongroom_crypto::CryptoError;
use strongroom_crypto::blobfmt::{
    BlobOpener, BlobSealer, CHUNK_CIPHERTEXT_LEN, CHUNK_SIZE, HEADER_LEN, TAG_LEN, chunk_count,
    chunk_offset, chunk_plaintext_len,
};
use strongroom_crypto::digest::Sha256;
use strongroom_crypto::keys::DataKey;

use crate::{BlobCursor, BlobError, BlobStore, BlobWriter, pool};

/// Chunks sealed or opened per storage call (16 x 64 KiB = 1 MiB of plaintext).
pub(crate) const BATCH_CHUNKS: usize = 16;
const BATCH_PLAINTEXT: usize = BATCH_CHUNKS * CHUNK_SIZE;
/// Plaintext buffered by a writer: a full batch plus the held-back chunk.
const PENDING_CAPACITY: usize = BATCH_PLAINTEXT + CHUNK_SIZE;
const OUT_CAPACITY: usize = HEADER_LEN + BATCH_CHUNKS * CHUNK_CIPHERTEXT_LEN;

/// Encrypts a plaintext stream into a new blob. Nothing is visible under the id until
/// [`EncryptedWriter::finish`] has committed it durably; dropping the writer discards the upload.
pub struct EncryptedWriter {
    writer: Box<dyn BlobWriter>,
    sealer: BlobSealer,
    /// Plaintext not sealed yet; at most [`PENDING_CAPACITY`] bytes. Pushed bytes are copied
    /// here rather than held where they arrived: a received body's buffers then go back to the
    /// connection at once instead of being allocated (and faulted in) afresh.
    pending: Vec<u8>,
    /// Ciphertext waiting to be written (the first batch starts with the header) is
    /// `out[..out_len]`; the buffer is kept at full length so that each chunk is sealed from
    /// `pending` straight into it, with no copy in between.
    out: Vec<u8>,
    out_len: usize,
    hasher: HashPipe,
    size: u64,
    stored: u64,
    max_size: Option<u64>,
    /// The exact plaintext length promised to the store, if any.
    declared: Option<u64>,
}

/// The plaintext SHA-256, computed batch by batch on the blocking pool so that hashing (the most
/// expensive step of an upload) overlaps with receiving and encrypting the next batch. One batch
/// is hashed at a time, in order.
enum HashPipe {
    /// No batch being hashed.
    Idle(Sha256),
    /// A batch being hashed; the task hands the state back.
    Busy(tokio::task::JoinHandle<Sha256>),
    /// A wait for a batch was cancelled: the state is lost and the writer is unusable.
    Lost,
}

impl HashPipe {
    /// Waits for the batch in progress, if any, and returns the hash state.
    async fn take(&mut self) -> Result<Sha256, BlobError> {
        match std::mem::replace(self, HashPipe::Lost) {
            HashPipe::Idle(h) => Ok(h),
            HashPipe::Busy(task) => task
                .await
                .map_err(|e| BlobError::Io(std::io::Error::other(e))),
            HashPipe::Lost => Err(BlobError::Io(std::io::Error::other(
                "blob writer used after a cancelled write",
            ))),
        }
    }

    /// Hashes `batch` after every batch fed before it.
    async fn feed(&mut self, batch: Bytes) -> Result<(), BlobError> {
        let mut h = self.take().await?;
        *self = HashPipe::Busy(tokio::task::spawn_blocking(move || {
            h.update(&batch);
            h
        }));
        Ok(())
    }
}

/// What [`EncryptedWriter::finish`] stored, for the database row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBlob {
    /// Plaintext bytes.
    pub size: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// Ciphertext bytes in the store (`blobfmt::ciphertext_len(size)`).
    pub stored_size: u64,
}

impl EncryptedWriter {
    /// Starts a blob `id` encrypted under `dek` (bound to `id`, so it cannot be read under another
    /// id). With `max_size`, [`EncryptedWriter::push`] fails with [`BlobError::TooLarge`] as soon
    /// as the plaintext would exceed it.
    pub async fn create(
        store: &dyn BlobStore,
        id: &str,
        dek: &DataKey,
        max_size: Option<u64>,
    ) -> Result<EncryptedWriter, BlobError> {
        let writer = store.create(id).await?;
        Ok(EncryptedWriter::around(writer, id, dek, max_size, None))
    }

    /// Like [`EncryptedWriter::create`], for exactly `plaintext_len` bytes (an upload with a
    /// declared length): the store may then stream the blob instead of buffering it
    /// ([`BlobStore::create_sized`]). More bytes, or fewer at [`EncryptedWriter::finish`], fail
    /// with [`BlobError::WrongLength`] and commit nothing.
    pub async fn create_sized(
        store: &dyn BlobStore,
        id: &str,
        dek: &DataKey,
        max_size: Option<u64>,
        plaintext_len: u64,
    ) -> Result<EncryptedWriter, BlobError> {
        if max_size.is_some_and(|max| plaintext_len > max) {
            return Err(BlobError::TooLarge);
        }
        let stored = strongroom_crypto::blobfmt::ciphertext_len(plaintext_len);
        let writer = store.create_sized(id, stored).await?;
        Ok(EncryptedWriter::around(
            writer,
            id,
            dek,
            max_size,
            Some(plaintext_len),
        ))
    }

    fn around(
        writer: Box<dyn BlobWriter>,
        id: &str,
        dek: &DataKey,
        max_size: Option<u64>,
        declared: Option<u64>,
    ) -> EncryptedWriter {
        let sealer = BlobSealer::new(dek, id);
        let mut out = pool::take_full(OUT_CAPACITY);
        out[..HEADER_LEN].copy_from_slice(&sealer.header());
        EncryptedWriter {
            writer,
            sealer,
            pending: pool::take(PENDING_CAPACITY),
            out,
            out_len: HEADER_LEN,
            hasher: HashPipe::Idle(Sha256::new()),
            size: 0,
            stored: 0,
            max_size,
            declared,
        }
    }

    /// Buffers plaintext, seals whole chunks in batches of 16 and writes them; always holds back
    /// the newest full chunk until it knows whether it is the last. Updates the plaintext SHA-256.
    /// Returns [`BlobError::TooLarge`] as soon as the plaintext would exceed `max_size` (the
    /// offending bytes are not accepted).
    pub async fn push(&mut self, data: &[u8]) -> Result<(), BlobError> {
        let new_size = self.size.saturating_add(data.len() as u64);
        if self.max_size.is_some_and(|max| new_size > max) {
            return Err(BlobError::TooLarge);
        }
        if let Some(declared) = self.declared
            && new_size > declared
        {
            return Err(BlobError::WrongLength {
                declared,
                got: new_size,
            });
        }
        self.size = new_size;
        let mut data = data;
        while !data.is_empty() {
            let take = (PENDING_CAPACITY - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            // More than a batch buffered means the first 16 chunks are certainly not the last.
            if self.pending.len() > BATCH_PLAINTEXT {
                // The batch's buffer moves to the hasher instead of being copied; the held-back
                // tail (at most one chunk) starts the next buffer.
                let mut next = pool::take(PENDING_CAPACITY);
                next.extend_from_slice(&self.pending[BATCH_PLAINTEXT..]);
                let mut batch = std::mem::replace(&mut self.pending, next);
                batch.truncate(BATCH_PLAINTEXT);
                for chunk in batch.chunks_exact(CHUNK_SIZE) {
                    self.seal(chunk, false)?;
                }
                self.hasher.feed(pool::bytes(batch)).await?;
                self.write_out().await?;
            }
        }
        Ok(())
    }

    /// Seals `chunk` into `out` (which has room for a whole batch and the header).
    fn seal(&mut self, chunk: &[u8], last: bool) -> Result<(), BlobError> {
        let out = &mut self.out[self.out_len..];
        self.out_len += self.sealer.seal_chunk_into(chunk, &[], last, out)?;
        Ok(())
    }

    async fn write_out(&mut self) -> Result<(), BlobError> {
        let mut batch = std::mem::replace(&mut self.out, pool::take_full(OUT_CAPACITY));
        batch.truncate(self.out_len);
        self.stored += self.out_len as u64;
        self.out_len = 0;
        self.writer.write(pool::bytes(batch)).await
    }

    /// Seals the final chunk and commits the blob durably. Only after this returns may the blob be
    /// referenced from the database.
    pub async fn finish(mut self) -> Result<WrittenBlob, BlobError> {
        if let Some(declared) = self.declared
            && declared != self.size
        {
            return Err(BlobError::WrongLength {
                declared,
                got: self.size,
            });
        }
        // `pending` is never empty here unless the blob is empty: a batch flush always leaves at
        // least one byte behind.
        let pending = std::mem::take(&mut self.pending);
        let mut hasher = self.hasher.take().await?;
        hasher.update(&pending);
        let mut chunks = pending.chunks(CHUNK_SIZE).peekable();
        if chunks.peek().is_none() {
            self.seal(&[], true)?;
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            self.seal(chunk, last)?;
        }
        self.write_out().await?;
        let EncryptedWriter {
            writer,
            size,
            stored,
            ..
        } = self;
        writer.commit().await?;
        debug_assert_eq!(stored, strongroom_crypto::blobfmt::ciphertext_len(size));
        Ok(WrittenBlob {
            size,
            sha256: hasher.finish(),
            stored_size: stored,
        })
    }
}

/// Reads the header and prepares to decrypt blob `id`, from the first copy whose header is
/// intact (every copy of a blob is the same ciphertext, so any copy's chunks follow it); says
/// which copy that was.
async fn open_blob(
    store: &dyn BlobStore,
    id: &str,
    dek: &DataKey,
) -> Result<(BlobOpener, usize), BlobError> {
    open_blob_from(store, id, dek, 0..store.copies()).await
}

/// [`open_blob`] from the copies `copies` only.
async fn open_blob_from(
    store: &dyn BlobStore,
    id: &str,
    dek: &DataKey,
    copies: Range<usize>,
) -> Result<(BlobOpener, usize), BlobError> {
    first_good_copy(store, id, copies, |copy| async move {
        let header = store.read_copy_at(id, copy, 0, HEADER_LEN).await?;
        Ok((BlobOpener::new(dek, id, &header)?, copy))
    })
    .await
}

/// `read` of each copy in `copies` in turn, until one succeeds; otherwise the error that says
/// most about the blob ([`fell_back`]).
async fn first_good_copy<T, F, Fut>(
    store: &dyn BlobStore,
    id: &str,
    copies: Range<usize>,
    mut read: F,
) -> Result<T, BlobError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, BlobError>>,
{
    let mut worst: Option<BlobError> = None;
    for copy in copies {
        match read(copy).await {
            Ok(got) => return Ok(got),
            Err(e) => worst = Some(fell_back(id, copy, store.copies(), e, worst)),
        }
    }
    Err(worst.unwrap_or(BlobError::NotFound))
}

/// Notes that copy `copy` of blob `id` could not be used, and keeps the error that says most
/// about the blob: a failed integrity check over an I/O failure over a missing copy.
fn fell_back(
    id: &str,
    copy: usize,
    copies: usize,
    e: BlobError,
    worst: Option<BlobError>,
) -> BlobError {
    if copy + 1 < copies {
        tracing::warn!(blob = %id, copy, error = %e, "a copy of a blob is missing or damaged: reading another");
    }
    let rank = |e: &BlobError| match e {
        BlobError::Crypto(_) => 2,
        BlobError::NotFound => 0,
        _ => 1,
    };
    match worst {
        Some(w) if rank(&w) >= rank(&e) => w,
        _ => e,
    }
}

/// A blob being read: where it is, and its opened header.
#[derive(Clone, Copy)]
struct Opened<'a> {
    store: &'a dyn BlobStore,
    id: &'a str,
    opener: &'a BlobOpener,
    /// Plaintext bytes.
    size: u64,
}

/// Reads chunks `chunks` of a blob, authenticates all of them, and only then returns the
/// plaintext that falls inside `want`, as slices of one shared buffer (no copy).
async fn read_batch(
    blob: Opened<'_>,
    chunks: Range<u64>,
    want: Range<u64>,
) -> Result<Vec<Bytes>, BlobError> {
    read_batch_from(blob, chunks, want, 0..blob.store.copies()).await
}

/// [`read_batch`] from the copies `copies` only.
async fn read_batch_from(
    blob: Opened<'_>,
    chunks: Range<u64>,
    want: Range<u64>,
    copies: Range<usize>,
) -> Result<Vec<Bytes>, BlobError> {
    let Opened {
        store,
        id,
        opener,
        size,
    } = blob;
    let ct_len = batch_len(size, chunks.clone());
    // The first copy whose chunks all authenticate; the client never sees a damaged copy.
    first_good_copy(store, id, copies, |copy| {
        let (chunks, want) = (chunks.clone(), &want);
        async move {
            let data = store
                .read_copy_at(id, copy, chunk_offset(chunks.start), ct_len)
                .await?;
            open_batch(opener, size, chunks, want, data)
        }
    })
    .await
}

/// The plaintext inside `want` of the blob's first chunks `chunks` (at most one batch), read
/// with its header in one request per copy tried: a small download otherwise costs three (the
/// header, opening a cursor, the batch), each a trip to the blocking pool or the backend. The
/// first copy whose header and chunks all authenticate is used, as in [`read_batch_from`].
async fn read_head(
    store: &dyn BlobStore,
    id: &str,
    dek: &DataKey,
    size: u64,
    chunks: Range<u64>,
    want: &Range<u64>,
) -> Result<Vec<Bytes>, BlobError> {
    let len = HEADER_LEN + batch_len(size, chunks.clone());
    first_good_copy(store, id, 0..store.copies(), |copy| {
        let chunks = chunks.clone();
        async move {
            let mut data = store.read_copy_at(id, copy, 0, len).await?;
            if data.len() < HEADER_LEN {
                return Err(CryptoError::Truncated.into());
            }
            let header = data.split_to(HEADER_LEN);
            let opener = BlobOpener::new(dek, id, &header)?;
            drop(header);
            open_batch(&opener, size, chunks, want, data)
        }
    })
    .await
}

/// Ciphertext bytes of chunks `chunks` of a blob of `size` plaintext bytes.
fn batch_len(size: u64, chunks: Range<u64>) -> usize {
    chunks.map(|i| chunk_plaintext_len(size, i) + TAG_LEN).sum()
}

/// Authenticates and decrypts the ciphertext `data` of chunks `chunks` (all of it before any
/// byte is returned) and returns the plaintext inside `want`, as slices of one shared buffer.
fn open_batch(
    opener: &BlobOpener,
    size: u64,
    chunks: Range<u64>,
    want: &Range<u64>,
    data: Bytes,
) -> Result<Vec<Bytes>, BlobError> {
    let total = chunk_count(size);
    if data.len() < batch_len(size, chunks.clone()) {
        return Err(CryptoError::Truncated.into());
    }
    // Zero-copy when the store handed us a uniquely owned buffer.
    let mut buf = Vec::from(data);
    let mut keep = Vec::with_capacity(chunks.clone().count());
    let mut pos = 0usize;
    for i in chunks {
        let clen = chunk_plaintext_len(size, i) + TAG_LEN;
        let got = opener.open_chunk(i, i + 1 == total, &mut buf[pos..pos + clen])?;
        let pstart = i * CHUNK_SIZE as u64;
        let lo = want.start.max(pstart);
        let hi = want.end.min(pstart + got as u64);
        if lo < hi {
            // Both offsets are within this chunk, so below CHUNK_SIZE.
            keep.push(pos + (lo - pstart) as usize..pos + (hi - pstart) as usize);
        }
        pos += clen;
    }
    let shared = pool::bytes(buf);
    Ok(keep.into_iter().map(|r| shared.slice(r)).collect())
}

/// Reads chunks in order through one copy's [`BlobCursor`] when the store offers one, and
/// otherwise (or once a read through it failed) batch by batch with [`read_batch_from`], which
/// falls back to the other copies.
struct Sequential {
    cursor: Option<Box<dyn BlobCursor>>,
    copy: usize,
}

impl Sequential {
    /// Opens copy `copy` for chunks `chunks` of a blob of `size` plaintext bytes. A cursor that
    /// cannot be opened is not an error: the batches are then read one by one.
    async fn open(
        store: &dyn BlobStore,
        id: &str,
        copy: usize,
        size: u64,
        chunks: Range<u64>,
    ) -> Sequential {
        let start = chunk_offset(chunks.start);
        let end = start.saturating_add(batch_len(size, chunks) as u64);
        let cursor = match store.cursor(id, copy, start..end).await {
            Ok(cursor) => cursor,
            Err(e) => {
                tracing::debug!(blob = %id, copy, error = %e, "no sequential reader: reading batch by batch");
                None
            }
        };
        Sequential { cursor, copy }
    }

    /// The next batch, chunks `chunks` (each call continues where the last one ended), from the
    /// copies `copies` when the cursor cannot serve it.
    async fn batch(
        &mut self,
        blob: Opened<'_>,
        chunks: Range<u64>,
        want: Range<u64>,
        copies: Range<usize>,
    ) -> Result<Vec<Bytes>, BlobError> {
        if let Some(cursor) = self.cursor.as_mut() {
            let read = async {
                let data = cursor.read(batch_len(blob.size, chunks.clone())).await?;
                open_batch(blob.opener, blob.size, chunks.clone(), &want, data)
            };
            match read.await {
                Ok(parts) => return Ok(parts),
                Err(e) => {
                    tracing::warn!(blob = %blob.id, copy = self.copy, error = %e, "a sequential read of a blob failed: reading batch by batch");
                    self.cursor = None;
                }
            }
        }
        read_batch_from(blob, chunks, want, copies).await
    }
}

/// State of a [`read_range`] stream between items.
struct RangeState {
    store: Arc<dyn BlobStore>,
    id: String,
    /// Held only until the header is read, then dropped (and wiped).
    dek: Option<DataKey>,
    /// Set once the header is read: the chunks follow through the copy it came from.
    reading: Option<(BlobOpener, Sequential)>,
    ready: VecDeque<Bytes>,
    size: u64,
    want: Range<u64>,
    /// Next chunk to read, and one past the last chunk the range touches.
    next: u64,
    end_chunk: u64,
}

/// Stream plaintext bytes `[start, end)` of a blob of `plaintext_size` bytes (`end <=
/// plaintext_size`). Reads and decrypts only the chunks the range touches, in batches of up to 16
/// chunks; verifies the whole batch before yielding any of it; on an authentication failure yields
/// `Err(BlobError::Crypto)` and stops (the HTTP layer then cuts the connection). An invalid range
/// yields [`BlobError::InvalidRange`].
pub fn read_range(
    store: Arc<dyn BlobStore>,
    id: String,
    dek: DataKey,
    plaintext_size: u64,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, BlobError>> + Send + 'static {
    let chunk = CHUNK_SIZE as u64;
    let (next, end_chunk) = if start < end {
        (start / chunk, (end - 1) / chunk + 1)
    } else {
        (0, 0)
    };
    let state = RangeState {
        store,
        id,
        dek: Some(dek),
        reading: None,
        ready: VecDeque::new(),
        size: plaintext_size,
        want: start..end,
        next,
        end_chunk,
    };
    futures_util::stream::try_unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.ready.pop_front() {
                return Ok(Some((b, st)));
            }
            if st.want.start > st.want.end || st.want.end > st.size {
                return Err(BlobError::InvalidRange {
                    start: st.want.start,
                    end: st.want.end,
                    size: st.size,
                });
            }
            if st.next >= st.end_chunk {
                return Ok(None);
            }
            let (opener, mut sequential) = match st.reading.take() {
                Some(reading) => reading,
                None => match st.dek.take() {
                    // A range within the first batch: header and chunks in one read.
                    Some(dek) if st.next == 0 && st.end_chunk <= BATCH_CHUNKS as u64 => {
                        let chunks = 0..st.end_chunk;
                        let got =
                            read_head(&*st.store, &st.id, &dek, st.size, chunks, &st.want).await?;
                        st.ready.extend(got);
                        st.next = st.end_chunk;
                        continue;
                    }
                    Some(dek) => {
                        let (opener, copy) = open_blob(&*st.store, &st.id, &dek).await?;
                        let chunks = st.next..st.end_chunk;
                        let sequential =
                            Sequential::open(&*st.store, &st.id, copy, st.size, chunks).await;
                        (opener, sequential)
                    }
                    // Unreachable: the key is only taken when the opener is set.
                    None => return Ok(None),
                },
            };
            let batch_end = (st.next + BATCH_CHUNKS as u64).min(st.end_chunk);
            let blob = Opened {
                store: &*st.store,
                id: &st.id,
                opener: &opener,
                size: st.size,
            };
            let got = sequential
                .batch(
                    blob,
                    st.next..batch_end,
                    st.want.clone(),
                    0..st.store.copies(),
                )
                .await?;
            st.reading = Some((opener, sequential));
            st.ready.extend(got);
            st.next = batch_end;
        }
    })
}

/// Random-access reads of one blob's plaintext, for consumers that seek (a media decoder): the
/// header is read and the key schedule set up once; each read authenticates every chunk it
/// touches before returning any byte of it.
pub struct BlobReader {
    store: Arc<dyn BlobStore>,
    id: String,
    opener: BlobOpener,
    size: u64,
}

impl BlobReader {
    /// Opens blob `id` of `plaintext_size` bytes with its data key.
    pub async fn open(
        store: Arc<dyn BlobStore>,
        id: String,
        dek: &DataKey,
        plaintext_size: u64,
    ) -> Result<BlobReader, BlobError> {
        let (opener, _) = open_blob(&*store, &id, dek).await?;
        Ok(BlobReader {
            store,
            id,
            opener,
            size: plaintext_size,
        })
    }

    /// The plaintext size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Up to `len` plaintext bytes at `offset` (fewer only at the end of the blob), at most
    /// [`BATCH_CHUNKS`] chunks' worth per call.
    pub async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes, BlobError> {
        let end = offset
            .saturating_add(len as u64)
            .min(self.size)
            .min(offset.saturating_add(BATCH_PLAINTEXT as u64));
        if offset >= end {
            return Ok(Bytes::new());
        }
        let chunk = CHUNK_SIZE as u64;
        let chunks = offset / chunk..(end - 1) / chunk + 1;
        let blob = Opened {
            store: &*self.store,
            id: &self.id,
            opener: &self.opener,
            size: self.size,
        };
        let parts = read_batch(blob, chunks, offset..end).await?;
        Ok(match parts.len() {
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => Bytes::from(parts.concat()),
        })
    }
}

/// Checks one copy of a blob (`copy` below [`BlobStore::copies`]) end to end: the header and every
/// chunk's tag, under the blob's data key, reading nothing from the other copies. `Ok` means that
/// copy alone can serve every byte; [`BlobError::NotFound`] that it is missing;
/// [`BlobError::Crypto`] that it is damaged (tampered, truncated or not this blob).
pub async fn verify_copy(
    store: &dyn BlobStore,
    id: &str,
    copy: usize,
    dek: &DataKey,
    plaintext_size: u64,
) -> Result<(), BlobError> {
    let one = copy..copy + 1;
    let (opener, _) = open_blob_from(store, id, dek, one.clone()).await?;
    let total = chunk_count(plaintext_size);
    let mut sequential = Sequential::open(store, id, copy, plaintext_size, 0..total).await;
    let blob = Opened {
        store,
        id,
        opener: &opener,
        size: plaintext_size,
    };
    let mut next = 0;
    while next < total {
        let batch_end = (next + BATCH_CHUNKS as u64).min(total);
        sequential
            .batch(blob, next..batch_end, 0..0, one.clone())
            .await?;
        next = batch_end;
    }
    Ok(())
}

/// The whole plaintext of a blob in memory, authenticated. A convenience for small blobs and
/// tests; stream large ones with [`read_range`].
pub async fn read_all(
    store: &dyn BlobStore,
    id: &str,
    dek: &DataKey,
    plaintext_size: u64,
) -> Result<Vec<u8>, BlobError> {
    let (opener, _) = open_blob(store, id, dek).await?;
    let total = chunk_count(plaintext_size);
    // Capacity capped: the size comes from the database and should not decide an allocation.
    let mut out = Vec::with_capacity(plaintext_size.min(BATCH_PLAINTEXT as u64 * 4) as usize);
    let blob = Opened {
        store,
        id,
        opener: &opener,
        size: plaintext_size,
    };
    let mut next = 0;
    while next < total {
        let batch_end = (next + BATCH_CHUNKS as u64).min(total);
        // Every chunk is read and authenticated, even the empty final chunk of an empty blob.
        for b in read_batch(blob, next..batch_end, 0..plaintext_size).await? {
            out.extend_from_slice(&b);
        }
        next = batch_end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
