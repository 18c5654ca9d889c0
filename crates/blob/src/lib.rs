//! Blob storage for Strongroom: where ciphertext lives, and the streaming encryption layer on top.
//!
//! [`BlobStore`] is the storage seam: the filesystem backend is [`FsBlobStore`], the S3 one
//! [`S3BlobStore`]; [`open_backend`] opens either from its URL (`fs:///path`, `s3://bucket/...`).
//! A store only ever sees ciphertext. [`EncryptedWriter`],
//! [`read_range`] and [`read_all`] turn plaintext streams into the chunked format of
//! [`strongroom_crypto::blobfmt`] and back, with bounded memory whatever the blob size.
//!
//! What this crate must never do:
//! - write plaintext to storage, or hand out plaintext that has not been authenticated;
//! - make a blob visible before it is durable (temp file, fsync, rename, fsync directory; on S3,
//!   the PUT or the multipart completion);
//! - touch the database or decide who may read what: data keys arrive already unwrapped, and
//!   authorization happened in the service layer;
//! - name a cryptography crate: all crypto goes through `strongroom-crypto` (the S3 client,
//!   `object_store`, signs its requests itself: transport authentication, not our encryption);
//! - put a credential in an error, a log line or a `Debug` output.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod backend;
mod batch;
mod encrypted;
mod fs;
mod metered;
mod pool;
mod regional;
mod replicated;
mod s3;

#[cfg(test)]
mod conformance;

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use strongroom_crypto::CryptoError;

pub use backend::{BackendSpec, open_backend};
pub use batch::Batch;
pub use encrypted::{BlobReader, EncryptedWriter, WrittenBlob, read_all, read_range, verify_copy};
pub use fs::{CHECKPOINTS_DIR, FsBlobStore};
pub use metered::{
    Metered, STORAGE_DURATION, STORAGE_ERRORS, STORAGE_READ_BYTES, STORAGE_WRITTEN_BYTES,
};
pub use regional::{DEFAULT_REGION, MAX_REGION_LEN, Regions, validate_region};
pub use replicated::{Member, Replicated, rewrite_copy};
pub use s3::{PART_SIZE, S3BlobStore};

/// A boxed, sendable future: lets the storage traits be object-safe (`Arc<dyn BlobStore>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Errors of the blob layer.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The storage backend failed (disk full, permissions, I/O error). Usually a server-side
    /// problem to log and report as internal.
    #[error("blob storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// No blob with this id exists.
    #[error("blob not found")]
    NotFound,
    /// The stored blob failed its integrity check (tampered, truncated, reordered, moved from
    /// another object, or the wrong data key): no unauthenticated byte was returned. Treat as
    /// data corruption: alert, and restore from a replica or backup.
    #[error("blob integrity check failed: {0}")]
    Crypto(#[from] CryptoError),
    /// The plaintext exceeded the size limit given to [`EncryptedWriter::create`]; nothing was
    /// committed.
    #[error("blob exceeds the maximum allowed size")]
    TooLarge,
    /// The blob id is not `[A-Za-z0-9_-]{1,100}`; refused before touching storage.
    #[error("invalid blob id")]
    InvalidId,
    /// Not enough storage backends answered to do this safely (an upload needs `copies` of
    /// them): the message names each failing backend. Nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// A remote backend failed (unreachable after its retries, refused the credentials or the
    /// signature, answered an error). The message comes from the backend's client with every
    /// credential scrubbed out. A server-side problem: log it and report it as internal.
    #[error("storage backend '{backend}' failed: {message}")]
    Backend {
        /// The backend's configured name.
        backend: String,
        /// What failed, credentials removed.
        message: String,
    },
    /// A backend's settings are unusable (bad URL, missing or unreadable credentials); nothing
    /// was opened. The reason says what to fix and never repeats a credential or the URL.
    #[error("storage backend '{backend}' is misconfigured: {reason}")]
    Config {
        /// The backend's configured name.
        backend: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob created for an exact length ([`BlobStore::create_sized`],
    /// [`EncryptedWriter::create_sized`]) was given more or fewer bytes; nothing was committed.
    #[error("the upload was declared as {declared} bytes but {got} arrived")]
    WrongLength {
        /// The length declared up front.
        declared: u64,
        /// The bytes given (at least, when more than declared).
        got: u64,
    },
    /// A requested plaintext range is inverted or runs past the end of the blob.
    #[error("invalid byte range {start}..{end} for a blob of {size} bytes")]
    InvalidRange {
        /// First byte requested.
        start: u64,
        /// One past the last byte requested.
        end: u64,
        /// Plaintext size of the blob.
        size: u64,
    },
}

/// Longest accepted blob id.
pub const MAX_ID_LEN: usize = 100;

/// Checks a blob id is `[A-Za-z0-9_-]{1,100}`. Ids become file names and object keys, so
/// anything else (slashes, dots, empty) is refused to rule out path traversal.
pub fn validate_id(id: &str) -> Result<(), BlobError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BlobError::InvalidId)
    }
}

/// Where ciphertext is stored. Blob ids are `[A-Za-z0-9_-]{1,100}` (others are refused with
/// [`BlobError::InvalidId`]). Implementations only see ciphertext and must make a blob visible
/// only once it is durable.
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing a new blob; it becomes visible under `id` only on [`BlobWriter::commit`].
    fn create<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>>;
    /// Like [`BlobStore::create`], for a blob that will be exactly `len` bytes: a store may then
    /// stream it in one request instead of buffering parts (S3). Writing more, or committing
    /// fewer, fails.
    fn create_sized<'a>(
        &'a self,
        id: &'a str,
        len: u64,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(async move {
            let inner = self.create(id).await?;
            Ok(Box::new(HeldToLength {
                inner,
                len,
                written: 0,
            }) as Box<dyn BlobWriter>)
        })
    }
    /// Starts writing blob `id` as part of `batch` (see [`Batch`]): committed, it becomes durable
    /// and visible at the latest when [`BlobStore::publish`] returns for that batch. The default
    /// writes it like [`BlobStore::create`] (visible at its commit).
    fn create_in<'a>(
        &'a self,
        id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        let _ = batch;
        self.create(id)
    }
    /// Makes every blob committed into `batch` through this store durable and visible; an error
    /// leaves none of the unpublished ones visible.
    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), BlobError>> {
        let _ = batch;
        Box::pin(async { Ok(()) })
    }
    /// Reads `len` bytes at `offset`; may return fewer bytes only at end of blob.
    fn read_at<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<bytes::Bytes, BlobError>>;
    /// How many copies of each blob this store keeps, each readable by its index with
    /// [`BlobStore::read_copy_at`]: 1 for a single backend.
    fn copies(&self) -> usize {
        1
    }
    /// Reads like [`BlobStore::read_at`], from copy `copy` (below [`BlobStore::copies`]) alone:
    /// the encryption layer reads another copy when one is missing or fails its check.
    fn read_copy_at<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<bytes::Bytes, BlobError>> {
        if copy == 0 {
            self.read_at(id, offset, len)
        } else {
            Box::pin(async { Err(BlobError::NotFound) })
        }
    }
    /// Opens copy `copy` of blob `id` for reading bytes `range` in order, through one open file
    /// or one streaming request for the whole range: a remote backend's per-request latency is
    /// paid once, and the kernel's read-ahead builds up over a file. `Ok(None)` when this store
    /// has no such reader: read with [`BlobStore::read_copy_at`] instead.
    fn cursor<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Option<Box<dyn BlobCursor>>, BlobError>> {
        let _ = (id, copy, range);
        Box::pin(async { Ok(None) })
    }
    /// How many copies must be durable before a blob is acknowledged: 1 for a single backend.
    fn required_copies(&self) -> usize {
        1
    }
    /// The name of the backend holding copy `copy` (for status and audit records).
    fn copy_name(&self, copy: usize) -> String {
        let _ = copy;
        "default".into()
    }
    /// The data-residency region of the backend holding copy `copy`.
    fn copy_region(&self, copy: usize) -> String {
        let _ = copy;
        "default".into()
    }
    /// Readiness of the backend holding copy `copy` alone.
    fn check_copy<'a>(&'a self, copy: usize) -> BoxFuture<'a, Result<(), BlobError>> {
        if copy == 0 {
            self.check()
        } else {
            Box::pin(async { Err(BlobError::NotFound) })
        }
    }
    /// Starts writing copy `copy` of blob `id` alone, to replace a missing or damaged one (the
    /// scrub's repair); visible on [`BlobWriter::commit`] like [`BlobStore::create`].
    fn create_copy<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        if copy == 0 {
            self.create(id)
        } else {
            Box::pin(async { Err(BlobError::NotFound) })
        }
    }
    /// Stored size of a blob.
    fn len<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<u64, BlobError>>;
    /// Deletes a blob; deleting a missing blob succeeds (idempotent, so retries are safe).
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;
    /// Ids of committed blobs last modified before `older_than` (for the orphan sweep); also
    /// removes temp files older than that (leftovers of crashed uploads).
    fn list_older_than<'a>(
        &'a self,
        older_than: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>>;
    /// Every committed object with its last modification time, without side effects (unlike
    /// [`BlobStore::list_older_than`], temp files are left alone). Backup destinations use it to
    /// find their manifests and unreferenced copies; a store that cannot list says so.
    fn list_objects<'a>(&'a self) -> BoxFuture<'a, Result<Vec<(String, SystemTime)>, BlobError>> {
        Box::pin(async {
            Err(BlobError::Unavailable(
                "this storage cannot list its objects".into(),
            ))
        })
    }
    /// Readiness: the store is reachable and writable.
    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), BlobError>>;

    /// Stores the audit checkpoint `seq` of organization `org` (an id, validated like a blob id)
    /// durably, replacing an object of the same name. Checkpoints live in their own namespace,
    /// apart from blobs: [`BlobStore::list_older_than`] never reports them, so the orphan sweep
    /// cannot delete them. At most [`MAX_CHECKPOINT_LEN`] bytes.
    fn put_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
        data: bytes::Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>>;
    /// The sequence numbers of `org`'s stored checkpoints, ascending (empty when it has none).
    fn checkpoint_seqs<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<u64>, BlobError>>;
    /// Every organization with a checkpoint folder here (ids that are valid names), ascending:
    /// `audit verify` looks for organizations the database no longer holds.
    fn checkpoint_orgs<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, BlobError>>;
    /// Reads checkpoint `seq` of `org`: at most [`MAX_CHECKPOINT_LEN`] + 1 bytes, so a caller can
    /// tell an oversized (planted) object from a real one without reading all of it.
    fn get_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<bytes::Bytes, BlobError>>;
}

/// Largest checkpoint object accepted; a real one is about 300 bytes.
pub const MAX_CHECKPOINT_LEN: usize = 4096;

/// A writer held to the length it was created for (the default [`BlobStore::create_sized`]).
struct HeldToLength {
    inner: Box<dyn BlobWriter>,
    len: u64,
    written: u64,
}

impl BlobWriter for HeldToLength {
    fn write<'a>(&'a mut self, data: bytes::Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let got = self.written.saturating_add(data.len() as u64);
            if got > self.len {
                return Err(BlobError::WrongLength {
                    declared: self.len,
                    got,
                });
            }
            self.inner.write(data).await?;
            self.written = got;
            Ok(())
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        if self.written != self.len {
            let (declared, got) = (self.len, self.written);
            return Box::pin(async move { Err(BlobError::WrongLength { declared, got }) });
        }
        self.inner.commit()
    }
}

/// Sequential reads through one copy of a blob, opened by [`BlobStore::cursor`]. A read that
/// failed, or was cancelled, leaves the cursor unusable: open another.
pub trait BlobCursor: Send {
    /// The next `len` bytes of the range; fewer only where the range or the blob ends.
    fn read<'a>(&'a mut self, len: usize) -> BoxFuture<'a, Result<bytes::Bytes, BlobError>>;
}

/// A blob being written. Dropping it without [`BlobWriter::commit`] discards it (its temp data
/// is removed), so an interrupted upload never becomes visible.
pub trait BlobWriter: Send {
    /// Appends bytes.
    fn write<'a>(&'a mut self, data: bytes::Bytes) -> BoxFuture<'a, Result<(), BlobError>>;
    /// Durable: fsync file, rename temp -> final, fsync directory. Only after this may the blob be
    /// referenced.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "ast_0192abc-DEF", &"x".repeat(100)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            "../etc",
            "a.b",
            "a b",
            "ä",
            &"x".repeat(101),
            "a\0",
        ] {
            assert!(
                matches!(validate_id(bad), Err(BlobError::InvalidId)),
                "{bad:?}"
            );
        }
    }
}
