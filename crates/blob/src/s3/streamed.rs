//! A blob of known length sent as one PUT whose body streams as the writer is fed.
//!
//! A multipart upload holds a whole part (8 MiB) per upload, signs every part's payload and
//! makes the service assemble the object again at completion. When the length is known up
//! front (an upload with a `Content-Length`), one PUT of that length does none of that: the
//! writer holds at most [`QUEUED`] pieces (each at most one batch of the encryption layer, about
//! 1 MiB) while the request sends them. The request carries a pre-signed URL (SigV4 query
//! authentication, valid for [`SIGNATURE_TTL`] from the start of the request) and an unsigned
//! payload: what is stored is ciphertext whose every chunk is authenticated, so a changed byte is
//! caught on read and by the scrub; TLS protects it in transit to a remote endpoint.
//!
//! Nothing is visible before the service answers the PUT with success, which it does only once
//! the object is stored. A writer dropped before commit cancels the request mid-body: the service
//! discards a body shorter than its `Content-Length`. A failed PUT is not retried (its body is
//! gone): the upload fails and the client retries it, as it would any interrupted upload.

use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, Signer as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{COMPLETE_TIMEOUT, Inner};
use crate::{BlobError, BlobWriter, BoxFuture};

/// Largest object one PUT may carry on S3.
pub(crate) const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// Pieces waiting for the request to send them.
const QUEUED: usize = 2;

/// How long the pre-signed URL is valid: the service checks it when the request starts.
const SIGNATURE_TTL: Duration = Duration::from_secs(15 * 60);

/// A PUT in progress.
pub(crate) struct StreamedWriter {
    inner: std::sync::Arc<Inner>,
    /// Feeds the request body; `None` once closed.
    body: Option<mpsc::Sender<Result<Bytes, std::io::Error>>>,
    request: Option<JoinHandle<Result<(), BlobError>>>,
    len: u64,
    sent: u64,
}

impl StreamedWriter {
    /// Starts the PUT of `path`, `len` bytes long.
    pub(crate) async fn start(
        inner: std::sync::Arc<Inner>,
        path: &ObjectPath,
        len: u64,
    ) -> Result<StreamedWriter, BlobError> {
        let url = inner
            .client
            .signed_url(Method::PUT, path, SIGNATURE_TTL)
            .await
            .map_err(|e| inner.failed(e))?;
        let (body, queue) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUED);
        let body_stream = tokio_stream(queue);
        let put = inner
            .uploader
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(body_stream));
        let failing = std::sync::Arc::clone(&inner);
        let request = tokio::spawn(async move {
            // The URL carries a signature: never let it reach an error message.
            let answer = put
                .send()
                .await
                .map_err(|e| failing.backend_error(&e.without_url()))?;
            let status = answer.status();
            if status.is_success() {
                return Ok(());
            }
            let text = answer.text().await.unwrap_or_default();
            let why: String = text.chars().take(500).collect();
            Err(failing.backend_error(&format!("PUT answered {status}: {why}")))
        });
        Ok(StreamedWriter {
            inner,
            body: Some(body),
            request: Some(request),
            len,
            sent: 0,
        })
    }

    /// The request's outcome once it ended (early, for a failure while sending), waiting at
    /// most [`COMPLETE_TIMEOUT`] for the service to store the object and answer.
    async fn outcome(&mut self) -> Result<(), BlobError> {
        match self.request.take() {
            Some(mut request) => match tokio::time::timeout(COMPLETE_TIMEOUT, &mut request).await {
                Ok(done) => done.map_err(|e| {
                    self.inner
                        .backend_error(&format!("the PUT task failed: {e}"))
                })?,
                Err(_) => {
                    request.abort();
                    Err(self.inner.backend_error(&format!(
                        "the PUT got no answer within {} s of its body's end",
                        COMPLETE_TIMEOUT.as_secs()
                    )))
                }
            },
            None => Err(self
                .inner
                .backend_error(&"blob writer used after a failed or cancelled write")),
        }
    }
}

/// The receiving end of the queue as the request body's stream.
fn tokio_stream(
    queue: mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(queue, |mut q| async move {
        q.recv().await.map(|item| (item, q))
    })
}

impl BlobWriter for StreamedWriter {
    fn write<'a>(&'a mut self, data: Bytes) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let n = data.len() as u64;
            if self.sent.saturating_add(n) > self.len {
                return Err(BlobError::WrongLength {
                    declared: self.len,
                    got: self.sent.saturating_add(n),
                });
            }
            let Some(body) = self.body.as_ref() else {
                return Err(self
                    .inner
                    .backend_error(&"blob writer used after a failed or cancelled write"));
            };
            let stall = self.inner.stall_timeout;
            match tokio::time::timeout(stall, body.send(Ok(data))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    // The request ended before its body did: its error says why.
                    self.body = None;
                    self.outcome().await?;
                    return Err(self.inner.backend_error(&"the PUT ended before its body"));
                }
                Err(_) => {
                    return Err(self.inner.backend_error(&format!(
                        "the PUT took no data for {} ms",
                        stall.as_millis()
                    )));
                }
            }
            self.sent += n;
            Ok(())
        })
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), BlobError>> {
        Box::pin(async move {
            if self.sent != self.len {
                return Err(BlobError::WrongLength {
                    declared: self.len,
                    got: self.sent,
                });
            }
            // The end of the body: the service stores the object, then answers.
            self.body = None;
            self.outcome().await
        })
    }
}

impl Drop for StreamedWriter {
    fn drop(&mut self) {
        // Before commit: cut the body short so the service stores nothing.
        if let Some(body) = self.body.take() {
            let _ = body.try_send(Err(std::io::Error::other("upload abandoned")));
            if let Some(request) = self.request.take() {
                request.abort();
            }
        }
    }
}

/// Whether a blob of `len` bytes goes as one streamed PUT: above one part (smaller ones are
/// buffered and sent whole, which the client can retry) and within S3's limit for one PUT.
pub(crate) fn streams(len: u64, part_size: usize) -> bool {
    len > part_size as u64 && len <= MAX_SINGLE_PUT
}
