//! The S3 backend, through `object_store` (SigV4 signing, retries with backoff).
//!
//! Layout under the URL's key prefix (`s3://bucket/<prefix>`), mirroring the filesystem
//! backend's folders:
//! - `objects/<id>`: committed blobs. S3 has no folders to fill, so there is no fan-out;
//! - `checkpoints/<org>/<seq>.json`: signed audit checkpoints, `<seq>` in 20 digits, never
//!   listed by the orphan sweep (which lists `objects/` only);
//! - `probe`: the readiness check's object, written and deleted by [`BlobStore::check`].
//!
//! A blob up to one part ([`PART_SIZE`]) is one PUT at commit. A larger one becomes a multipart
//! upload: each full part is sent as soon as the next byte arrives, and the writer holds at most
//! one part in memory (the part being filled; the write that sends a part waits for it), so a
//! 1 GiB upload needs the same 8 MiB as a small one. Nothing is visible before commit (the PUT,
//! or the multipart completion); a writer dropped without commit aborts its multipart upload on
//! a spawned task. An upload cut off by a crash stays as an invisible incomplete multipart
//! upload: give the bucket a lifecycle rule that aborts those after a day
//! (`docs/operations.md`).
//!
//! Every error other than "not found" becomes [`BlobError::Backend`], naming the backend, with
//! the access key id and the secret scrubbed from the message.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore as _, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore as _, ObjectStoreExt as _,
    PutPayload, RetryConfig,
};
use zeroize::Zeroizing;

use crate::backend::{Credentials, S3Location};
use crate::fs::{checkpoint_name, parse_checkpoint_name};
use crate::{
    BlobCursor, BlobError, BlobStore, BlobWriter, BoxFuture, MAX_CHECKPOINT_LEN, validate_id,
};

/// Size of a multipart upload's parts (and the most a writer buffers). S3 wants at least 5 MiB
/// for every part but the last; some S3-compatible services want them all the same size, which
/// they are here.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// The longest one request may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest a streaming read may wait for its next bytes once it asked for them (a stalled
/// connection); the whole response may take as long as its reader needs.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest a multipart completion may take (the service assembles the whole object).
pub(crate) const COMPLETE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Tuning of an S3 backend; the defaults suit production, tests shorten them.
#[derive(Debug, Clone)]
pub(crate) struct S3Options {
    /// Bytes per multipart part.
    pub part_size: usize,
    /// How long one request is retried (5xx answers, refused or reset connections) before its
    /// error is returned.
    pub retry_timeout: Duration,
    /// How long a streaming request may go without progress ([`STALL_TIMEOUT`]).
    pub stall_timeout: Duration,
    /// Bytes the backend's downloads may receive ahead of their readers, beyond a little each
    /// ([`ahead`]).
    pub read_ahead: u64,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            part_size: PART_SIZE,
            retry_timeout: Duration::from_secs(10),
            stall_timeout: STALL_TIMEOUT,
            read_ahead: ahead::DEFAULT_BUDGET,
        }
    }
}

/// Blobs as objects in an S3 bucket (AWS, Garage, MinIO, Ceph, s3s...).
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    client: AmazonS3,
    /// The same client with a longer timeout, for multipart completions.
    completer: AmazonS3,
    /// The same client without a whole-request timeout (a stall timeout instead), for
    /// [`BlobStore::cursor`]: one response read as slowly as a downloading client reads it.
    streamer: AmazonS3,
    /// Sends the streamed PUTs of [`BlobStore::create_sized`] to pre-signed URLs (no
    /// whole-request timeout either: the body arrives as fast as the uploading client sends it).
    uploader: reqwest::Client,
    location: S3Location,
    /// `<prefix>/` or empty.
    base: String,
    objects: ObjectPath,
    /// Strings scrubbed from every error message: the credentials.
    redact: Vec<Zeroizing<String>>,
    part_size: usize,
    stall_timeout: Duration,
    /// Shared by the cursors' segments read ahead.
    read_ahead: ahead::Budget,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its configuration holds the credentials.
        let l = &self.inner.location;
        f.debug_struct("S3BlobStore")
            .field("name", &self.inner.name)
            .field("bucket", &l.bucket)
            .field("prefix", &l.prefix)
            .field("endpoint", &l.endpoint)
            .field("region", &l.region)
            .finish()
    }
}

impl S3BlobStore {
    /// Builds the client; makes no request.
    pub(crate) fn open(
        name: &str,
        location: S3Location,
        credentials: Credentials,
        options: S3Options,
    ) -> Result<S3BlobStore, BlobError> {
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 10,
            retry_timeout: options.retry_timeout,
        };
        let base_options = ClientOptions::new()
            .with_allow_http(location.allow_http)
            .with_connect_timeout(Duration::from_secs(5));
        let client_options = |timeout: Duration| base_options.clone().with_timeout(timeout);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(&location.region)
            .with_access_key_id(credentials.access_key_id.as_str())
            .with_secret_access_key(credentials.secret_access_key.as_str())
            .with_retry(retry);
        if let Some(endpoint) = &location.endpoint {
            // Path-style requests (`endpoint/bucket/key`): what self-hosted services expect.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token.as_str());
        }
        let mut redact = vec![credentials.access_key_id, credentials.secret_access_key];
        redact.extend(credentials.session_token);
        let base = if location.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", location.prefix)
        };
        // A whole request, body included: one part at a slow 200 KB/s still fits.
        let client = builder
            .clone()
            .with_client_options(client_options(REQUEST_TIMEOUT))
            .build()
            .map_err(|e| scrubbed(name, &redact, &e))?;
        // Completing a multipart upload assembles the whole object on the service's side, which
        // can take minutes for a large one (AWS documents it; s3s-fs rewrites the file); ten
        // 1 GiB uploads completing at once took longer than a minute here.
        let completer = builder
            .clone()
            .with_client_options(client_options(COMPLETE_TIMEOUT))
            .build()
            .map_err(|e| scrubbed(name, &redact, &e))?;
        let streamer = builder
            .with_client_options(
                base_options
                    .clone()
                    .with_timeout_disabled()
                    .with_read_timeout(options.stall_timeout),
            )
            .build()
            .map_err(|e| scrubbed(name, &redact, &e))?;
        // No read timeout: nothing is read while the body is sent, however long that takes (the
        // writer times each piece itself).
        let uploader = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| scrubbed(name, &redact, &e))?;
        Ok(S3BlobStore {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                client,
                completer,
                streamer,
                uploader,
                location,
                objects: ObjectPath::from(format!("{base}objects")),
                base,
                redact,
                part_size: options.part_size,
                stall_timeout: options.stall_timeout,
                read_ahead: ahead::Budget::new(options.read_ahead),
            }),
        })
    }

    fn object(&self, id: &str) -> ObjectPath {
        self.inner.key(&format!("objects/{id}"))
    }

    fn checkpoint_dir(&self, org: &str) -> ObjectPath {
        self.inner.key(&format!("checkpoints/{org}"))
    }

    fn checkpoint(&self, org: &str, seq: u64) -> ObjectPath {
        self.inner
            .key(&format!("checkpoints/{org}/{}", checkpoint_name(seq)))
    }

    /// A writer for blob `id` (validated).
    pub(crate) fn writer(&self, id: &str) -> S3Writer {
        S3Writer {
            inner: Arc::clone(&self.inner),
            path: self.object(id),
            buf: Vec::with_capacity(self.inner.part_size),
            upload: None,
            broken: false,
            done: false,
        }
    }

    /// Deletes every object under this store's prefix (test clean-up).
    #[cfg(test)]
    pub(crate) async fn remove_everything(&self) {
        let prefix = ObjectPath::from(self.inner.base.trim_end_matches('/'));
        let found: Vec<_> = self
            .inner
            .client
            .list(Some(&prefix))
            .try_collect()
            .await
            .unwrap_or_default();
        for meta in found {
            let _ = self.inner.client.delete(&meta.location).await;
        }
    }
}

impl Inner {
    fn key(&self, rest: &str) -> ObjectPath {
        ObjectPath::from(format!("{}{rest}", self.base))
    }

    /// Maps a client error: not found stays distinguishable, anything else names the backend.
    fn failed(&self, e: object_store::Error) -> BlobError {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound,
            other => self.backend_error(&other),
        }
    }

    fn backend_error(&self, e: &dyn std::fmt::Display) -> BlobError {
        scrubbed(&self.name, &self.redact, e)
    }

    /// `len` bytes at `offset`, fewer at the end of the object, none past it (as a file read).
    async fn read(&self, path: &ObjectPath, offset: u64, len: usize) -> Result<Bytes, BlobError> {
        if len == 0 {
            self.client.head(path).await.map_err(|e| self.failed(e))?;
            return Ok(Bytes::new());
        }
        let end = offset.saturating_add(len as u64);
        match self.client.get_range(path, offset..end).await {
            Ok(bytes) => Ok(bytes),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound),
            // A range starting at or past the end is refused (416): that is an empty read.
            Err(e) => match self.client.head(path).await {
                Ok(meta) if meta.size <= offset => Ok(Bytes::new()),
                Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound),
                _ => Err(self.failed(e)),
            },
        }
    }

    async fn put(&self, path: &ObjectPath, data: Bytes) -> Result<(), BlobError> {
        self.client
            .put(path, PutPayload::from(data))
            .await
            .map(|_| ())
            .map_err(|e| self.failed(e))
    }

    /// The names directly under `dir` (not deeper), with their last-modified times.
    async fn list_children(
        &self,
        dir: &ObjectPath,
    ) -> Result<Vec<(String, SystemTime)>, BlobError> {
        let mut out = Vec::new();
        let mut stream = self.client.list(Some(dir));
        while let Some(meta) = stream.try_next().await.map_err(|e| self.failed(e))? {
            let Some(parts) = meta.location.prefix_match(dir) else {
                continue;
            };
            let parts: Vec<_> = parts.collect();
            if let [name] = parts.as_slice() {
                out.push((
                    name.as_ref().to_owned(),
                    SystemTime::from(meta.last_modified),
                ));
            }
        }
        Ok(out)
    }
}

/// [`BlobError::Backend`] for `backend` with every string of `redact` (the credentials) scrubbed
/// from the message: S3 error bodies quote the access key id, and nothing guarantees a future
/// client version never echoes more.
fn scrubbed(backend: &str, redact: &[Zeroizing<String>], e: &dyn std::fmt::Display) -> BlobError {
    let mut message = e.to_string();
    for secret in redact {
        if !secret.is_empty() {
            message = message.replace(secret.as_str(), "<redacted>");
        }
    }
    BlobError::Backend {
        backend: backend.to_owned(),
        message,
    }
}

/// Starts a streaming GET of bytes `range` of `path`.
async fn stream_range(
    inner: &Inner,
    path: &ObjectPath,
    range: Range<u64>,
) -> object_store::Result<object_store::GetResult> {
    let options = GetOptions {
        range: Some(GetRange::Bounded(range)),
        ..GetOptions::default()
    };
    inner.streamer.get_opts(path, options).await
}

/// A range read in order as its segments' bodies arrive (the client retries a cut-off body from
/// where it stopped, checking the object's ETag did not change).
struct S3Cursor {
    inner: Arc<Inner>,
    /// `None` for an empty range.
    body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// Received beyond what the last read asked for.
    held: Bytes,
}

impl BlobCursor for S3Cursor {
    fn read<'a>(&'a mut self, len: usize) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            if self.held.len() >= len {
                return Ok(self.held.split_to(len));
            }
            let mut out = crate::pool::take(len);
            out.extend_from_slice(&std::mem::take(&mut self.held));
            while out.len() < len {
                let Some(body) = self.body.as_mut() else {
                    break;
                };
                match body.next().await {
                    Some(Ok(mut piece)) => {
                        let need = len - out.len();
                        if piece.len() > need {
                            self.held = piece.split_off(need);
                        }
                        out.extend_from_slice(&piece);
                    }
                    Some(Err(e)) => {
                        self.body = None;
                        return Err(self.inner.failed(e));
                    }
                    None => self.body = None,
                }
            }
            Ok(Bytes::from(out))
        })
    }
}

impl BlobStore for S3BlobStore {
    fn create<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            let writer: Box<dyn BlobWriter> = Box::new(self.writer(id));
            Ok(writer)
        })
    }

    fn create_sized<'a>(
        &'a self,
        id: &'a str,
        len: u64,
    ) -> BoxFuture<'a, Result<Box<dyn BlobWriter>, BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            let writer: Box<dyn BlobWriter> = if streamed::streams(len, self.inner.part_size) {
                let path = self.object(id);
                Box::new(
                    streamed::StreamedWriter::start(Arc::clone(&self.inner), &path, len).await?,
                )
            } else {
                Box::new(self.writer(id))
            };
            Ok(writer)
        })
    }

    fn read_at<'a>(
        &'a self,
        id: &'a str,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            self.inner.read(&self.object(id), offset, len).await
        })
    }

    fn cursor<'a>(
        &'a self,
        id: &'a str,
        copy: usize,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<Option<Box<dyn BlobCursor>>, BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            if copy != 0 {
                return Err(BlobError::NotFound);
            }
            let mut cursor = S3Cursor {
                inner: Arc::clone(&self.inner),
                body: None,
                held: Bytes::new(),
            };
            if range.start < range.end {
                let path = self.object(id);
                let got = stream_range(&self.inner, &path, ahead::first_segment(&range))
                    .await
                    .map_err(|e| self.inner.failed(e))?;
                // The object may be shorter than the range (a damaged copy): its answer says
                // how long it is, and no segment past its end is asked for.
                let end = range.end.min(got.meta.size);
                let inner = Arc::clone(&self.inner);
                let budget = self.inner.read_ahead.clone();
                cursor.body = Some(ahead::segmented(
                    got,
                    range.start..end,
                    budget,
                    move |segment| {
                        let (inner, path) = (Arc::clone(&inner), path.clone());
                        Box::pin(async move { stream_range(&inner, &path, segment).await })
                    },
                ));
            }
            let cursor: Box<dyn BlobCursor> = Box::new(cursor);
            Ok(Some(cursor))
        })
    }

    fn len<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            let meta = self
                .inner
                .client
                .head(&self.object(id))
                .await
                .map_err(|e| self.inner.failed(e))?;
            Ok(meta.size)
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            validate_id(id)?;
            match self.inner.client.delete(&self.object(id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.inner.failed(e)),
            }
        })
    }

    fn list_older_than<'a>(
        &'a self,
        older_than: SystemTime,
    ) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            // Only `objects/<valid id>`: what `delete` would remove. Incomplete multipart
            // uploads are not objects (the bucket's lifecycle rule removes them).
            let mut ids: Vec<String> = self
                .inner
                .list_children(&self.inner.objects)
                .await?
                .into_iter()
                .filter(|(name, modified)| validate_id(name).is_ok() && *modified < older_than)
                .map(|(name, _)| name)
                .collect();
            ids.sort_unstable();
            Ok(ids)
        })
    }

    fn list_objects<'a>(&'a self) -> BoxFuture<'a, Result<Vec<(String, SystemTime)>, BlobError>> {
        Box::pin(async move {
            let mut all: Vec<(String, SystemTime)> = self
                .inner
                .list_children(&self.inner.objects)
                .await?
                .into_iter()
                .filter(|(name, _)| validate_id(name).is_ok())
                .collect();
            all.sort_unstable();
            Ok(all)
        })
    }

    fn check<'a>(&'a self) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            // Reachable, signed correctly, and writable: a small object written and removed.
            let probe = self.inner.key("probe");
            self.inner.put(&probe, Bytes::from_static(b"ok")).await?;
            match self.inner.client.delete(&probe).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.inner.failed(e)),
            }
        })
    }

    fn put_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            validate_id(org)?;
            if data.len() > MAX_CHECKPOINT_LEN {
                return Err(BlobError::TooLarge);
            }
            // One PUT replaces the object atomically: readers see the old or the new one.
            self.inner.put(&self.checkpoint(org, seq), data).await
        })
    }

    fn checkpoint_seqs<'a>(&'a self, org: &'a str) -> BoxFuture<'a, Result<Vec<u64>, BlobError>> {
        Box::pin(async move {
            validate_id(org)?;
            let mut seqs: Vec<u64> = self
                .inner
                .list_children(&self.checkpoint_dir(org))
                .await?
                .into_iter()
                .filter_map(|(name, _)| parse_checkpoint_name(&name))
                .collect();
            seqs.sort_unstable();
            Ok(seqs)
        })
    }

    fn checkpoint_orgs<'a>(&'a self) -> BoxFuture<'a, Result<Vec<String>, BlobError>> {
        Box::pin(async move {
            let root = self.inner.key("checkpoints");
            let mut orgs = Vec::new();
            let mut stream = self.inner.client.list(Some(&root));
            while let Some(meta) = stream.try_next().await.map_err(|e| self.inner.failed(e))? {
                let Some(parts) = meta.location.prefix_match(&root) else {
                    continue;
                };
                let parts: Vec<_> = parts.collect();
                if let [org, _] = parts.as_slice()
                    && validate_id(org.as_ref()).is_ok()
                {
                    orgs.push(org.as_ref().to_owned());
                }
            }
            orgs.sort_unstable();
            orgs.dedup();
            Ok(orgs)
        })
    }

    fn get_checkpoint<'a>(
        &'a self,
        org: &'a str,
        seq: u64,
    ) -> BoxFuture<'a, Result<Bytes, BlobError>> {
        Box::pin(async move {
            validate_id(org)?;
            self.inner
                .read(&self.checkpoint(org, seq), 0, MAX_CHECKPOINT_LEN + 1)
                .await
        })
    }
}

/// A blob being uploaded: one part buffered, then a multipart upload.
pub(crate) struct S3Writer {
    inner: Arc<Inner>,
    path: ObjectPath,
    /// At most one part.
    buf: Vec<u8>,
    upload: Option<Upload>,
    /// A request failed or its wait was cancelled: what was buffered may be lost, so the writer
    /// refuses further use (and is dropped, which aborts the upload).
    broken: bool,
    done: bool,
}

struct Upload {
    id: String,
    parts: Vec<PartId>,
}

impl S3Writer {
    fn usable(&self) -> Result<(), BlobError> {
        if self.broken {
            return Err(self
                .inner
                .backend_error(&"blob writer used after a failed or cancelled write"));
        }
        Ok(())
    }

    /// Sends the full buffer as the next part, starting the multipart upload first if needed.
    async fn send_part(&mut self) -> Result<(), BlobError> {
        self.broken = true;
        let inner = Arc::clone(&self.inner);
        let (upload_id, index) = match &self.upload {
            Some(u) => (u.id.clone(), u.parts.len()),
            None => {
                let id = inner
                    .client
                    .create_multipart(&self.path)
                    .await
                    .map_err(|e| inner.failed(e))?;
                self.upload = Some(Upload {
                    id: id.clone(),
                    parts: Vec::new(),
                });
                (id, 0)
            }
        };
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(inner.part_size));
        let part_id = inner
            .client
            .put_part(&self.path, &upload_id, index, part.into())
            .await
            .map_err(|e| inner.failed(e))?;
        if let Some(u) = &mut self.upload {
            u.parts.push(part_id);
        }
        self.broken = false;
        Ok(())
    }

    /// Bytes held in memory (tests: never more than a part).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The multipart upload's id, once one started (tests).
    #[cfg(test)]
    pub(crate) fn upload_id(&self) -> Option<&str> {
        self.upload.as_ref().map(|u| u.id.as_str())
    }
}

impl BlobWriter for S3Writer {
    fn write<'a>(&'a mut self, data: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            self.usable()?;
            let mut rest = &data[..];
            while !rest.is_empty() {
                // A full part is sent only once more data follows it: a blob of exactly one
                // part stays a single PUT.
                if self.buf.len() >= self.inner.part_size {
                    self.send_part().await?;
                }
                let take = (self.inner.part_size - self.buf.len()).min(rest.len());
                self.buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
            }
            Ok(())
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        Box::pin(async move {
            self.usable()?;
            self.broken = true;
            let S3Writer {
                inner,
                path,
                buf,
                upload,
                ..
            } = &mut *self;
            let buf = std::mem::take(buf);
            match upload {
                // Small: one PUT, visible (and durable) when it returns.
                None => inner.put(path, Bytes::from(buf)).await?,
                Some(upload) => {
                    if !buf.is_empty() {
                        let id = inner
                            .client
                            .put_part(path, &upload.id, upload.parts.len(), buf.into())
                            .await
                            .map_err(|e| inner.failed(e))?;
                        upload.parts.push(id);
                    }
                    let parts = std::mem::take(&mut upload.parts);
                    inner
                        .completer
                        .complete_multipart(path, &upload.id, parts)
                        .await
                        .map_err(|e| inner.failed(e))?;
                }
            }
            self.done = true;
            Ok(())
        })
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Nothing was sent for a blob still within one part: nothing to undo.
        let Some(upload) = self.upload.take() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        let path = self.path.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = inner.client.abort_multipart(&path, &upload.id).await {
                        tracing::warn!(
                            error = %inner.failed(e),
                            "could not abort an abandoned multipart upload; the bucket's lifecycle rule for incomplete uploads removes it"
                        );
                    }
                });
            }
            Err(_) => tracing::warn!(
                backend = %inner.name,
                "an abandoned multipart upload was left (no runtime to abort it); the bucket's lifecycle rule for incomplete uploads removes it"
            ),
        }
    }
}

mod ahead;
mod streamed;
#[cfg(test)]
mod tests;
