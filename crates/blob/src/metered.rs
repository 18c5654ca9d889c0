//! Per-backend metrics: every call to a backend timed and its failures counted, labelled with the
//! backend's configured name and the operation (a closed set: labels never hold a blob id).
//!
//! A missing blob is an answer, not an error (reads ask each copy in turn and a new backend lacks
//! everything until the scrub fills it), so `NotFound` is not counted as a failure.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::{Batch, BlobCursor, BlobError, BlobStore, BlobWriter, BoxFuture};

/// Time per backend call, by backend and operation.
pub const STORAGE_DURATION: &str = "strongroom_storage_operation_duration_seconds";
/// Backend calls that failed (not counting a blob that is simply missing), by backend and
/// operation.
pub const STORAGE_ERRORS: &str = "strongroom_storage_errors_total";
/// Ciphertext bytes read from a backend.
pub const STORAGE_READ_BYTES: &str = "strongroom_storage_read_bytes_total";
/// Ciphertext bytes written to a backend.
pub const STORAGE_WRITTEN_BYTES: &str = "strongroom_storage_written_bytes_total";

/// A backend whose every call is measured.
pub struct Metered {
    name: Arc<str>,
    inner: Arc<dyn BlobStore>,
}

impl Metered {
    /// Measures `inner` under the backend name `name`.
    pub fn new(name: &str, inner: Arc<dyn BlobStore>) -> Metered {
        Metered {
            name: name.into(),
            inner,
        }
    }

    /// Measures the opening of a writer, and wraps it so its writes are counted.
    fn metered_writer<'a>(
        &'a self,
        opening: BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>>,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(async move {
            let started = Instant::now();
            let r = opening.await;
            observe(&self.name, "create", started, &r);
            r.map(|inner| {
                Box::new(MeteredWriter {
                    name: Arc::clone(&self.name),
                    inner,
                }) as Box<dyn BlobWriter>
            })
        })
    }
}

/// Records one call's time and, if it failed for a reason other than a missing blob, its error.
fn observe<T>(name: &Arc<str>, op: &'static str, started: Instant, r: &Result<T, BlobError>) {
    metrics::histogram!(STORAGE_DURATION, "backend" => name.to_string(), "op" => op)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = r
        && !matches!(e, BlobError::NotFound)
    {
        metrics::counter!(STORAGE_ERRORS, "backend" => name.to_string(), "op" => op).increment(1);
    }
}

/// Runs `fut` as operation `op` of backend `name`, measured.
fn measured<'a, T: Send + 'a>(
    name: &'a Arc<str>,
    op: &'static str,
    fut: BoxFuture<'a, Result<T, BlobError>>,
) -> BoxFuture<'a, Result<T, BlobError>> {
    Box::pin(async move {
        let started = Instant::now();
        let r = fut.await;
        observe(name, op, started, &r);
        r
    })
}

/// A cursor whose every read is measured like a [`BlobStore::read_at`].
struct MeteredCursor {
    name: Arc<str>,
    inner: Box<dyn BlobCursor>,
}

impl BlobCursor for MeteredCursor {
    fn read<'a>(&'a mut self, len: usize) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            let r = measured(&self.name, "read", self.inner.read(len)).await;
            if let Ok(b) = &r {
                metrics::counter!(STORAGE_READ_BYTES, "backend" => self.name.to_string())
                    .increment(b.len() as u64);
            }
            r
        })
    }
}

impl BlobStore for Metered {
    fn create<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.metered_writer(self.inner.create(id))
    }

    fn create_in<'a>(
        &'a self,
        id: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.metered_writer(self.inner.create_in(id, batch))
    }

    fn publish<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), BlobError>> {
        measured(&self.name, "write", self.inner.publish(batch))
    }

    fn create_sized<'a>(
        &'a self,
        id: &'a str,
        len: u64,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        self.metered_writer(self.inner.create_sized(id, len))
    }

    fn read_at<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            let r = measured(&self.name, "read", self.inner.read_at(id, offset, len)).await;
            if let Ok(b) = &r {
                metrics::counter!(STORAGE_READ_BYTES, "backend" => self.name.to_string())
                    .increment(b.len() as u64);
            }
            r
        })
    }

    fn cursor<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Option<Box<dyn BlobCursor>>, BlobError>> {
        Box::pin(async move {
            let opened = measured(&self.name, "read", self.inner.cursor(id, copy, range)).await?;
            Ok(opened.map(|inner| {
                Box::new(MeteredCursor {
                    name: Arc::clone(&self.name),
                    inner,
                }) as Box<dyn BlobCursor>
            }))
        })
    }

    fn len<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<u64, BlobError>> {
        measured(&self.name, "len", self.inner.len(id))
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        measured(&self.name, "delete", self.inner.delete(id))
    }

    fn list_older_than<'a>(
        &'a self,
        older_than: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        measured(&self.name, "list", self.inner.list_older_than(older_than))
    }

    fn list_objects<'a>(&'a self) -> BoxFuture<'a, Result<Vec<(String, SystemTime)>, BlobError>> {
        measured(&self.name, "list", self.inner.list_objects())
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), BlobError>> {
        measured(&self.name, "check", self.inner.check())
    }

    fn put_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        measured(
            &self.name,
            "put_checkpoint",
            self.inner.put_checkpoint(org, seq, data),
        )
    }

    fn checkpoint_seqs<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<u64>, BlobError>> {
        measured(
            &self.name,
            "list_checkpoints",
            self.inner.checkpoint_seqs(org),
        )
    }

    fn checkpoint_orgs<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        measured(
            &self.name,
            "list_checkpoint_orgs",
            self.inner.checkpoint_orgs(),
        )
    }

    fn get_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        measured(
            &self.name,
            "get_checkpoint",
            self.inner.get_checkpoint(org, seq),
        )
    }
}

/// An upload to a measured backend.
struct MeteredWriter {
    name: Arc<str>,
    inner: Box<dyn BlobWriter>,
}

impl BlobWriter for MeteredWriter {
    fn write<'a>(&'a mut self, data: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let n = data.len() as u64;
            let started = Instant::now();
            let r = self.inner.write(data).await;
            observe(&self.name, "write", started, &r);
            if r.is_ok() {
                metrics::counter!(STORAGE_WRITTEN_BYTES, "backend" => self.name.to_string())
                    .increment(n);
            }
            r
        })
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        let MeteredWriter { name, inner } = *self;
        Box::pin(async move {
            let started = Instant::now();
            let r = inner.commit().await;
            observe(&name, "commit", started, &r);
            r
        })
    }
}
