//! Reading a streaming GET ahead of its consumer.
//!
//! A download alternates between receiving ciphertext from S3 and decrypting and sending it to
//! the client. Left to that rhythm, the S3 connection is only read while the download waits for
//! its next batch: in between, the socket's buffer fills, the service stops sending, and the
//! receiving side's acknowledgements are delayed, which a service that does not disable Nagle's
//! algorithm (s3s-fs) answers by holding back its small segments. A task of its own drains the
//! response as it arrives, up to 4 MiB ([`BUDGET_KIB`]) ahead of the consumer.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Bytes received and not yet taken by the consumer, at most (in KiB permits).
const BUDGET_KIB: usize = 4 * 1024;

type Piece = object_store::Result<(Bytes, Option<OwnedSemaphorePermit>)>;

/// `body`, read by a task of its own up to [`BUDGET_KIB`] KiB ahead; the task stops when the
/// returned stream is dropped.
pub(crate) fn read_ahead(
    mut body: BoxStream<'static, object_store::Result<Bytes>>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    let budget = Arc::new(Semaphore::new(BUDGET_KIB));
    let (tx, rx) = mpsc::channel::<Piece>(1024);
    let task = tokio::spawn(async move {
        while let Some(item) = body.next().await {
            let piece = match item {
                Ok(bytes) => {
                    let kib = u32::try_from(bytes.len().div_ceil(1024).min(BUDGET_KIB))
                        .unwrap_or(u32::MAX);
                    // Closed only if the consumer is gone; then nobody needs the bytes.
                    let Ok(permit) = Arc::clone(&budget).acquire_many_owned(kib).await else {
                        return;
                    };
                    Ok((bytes, Some(permit)))
                }
                Err(e) => Err(e),
            };
            let failed = piece.is_err();
            if tx.send(piece).await.is_err() || failed {
                return;
            }
        }
    });
    let guard = AbortOnDrop(task);
    futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        // The permit goes with the piece's arrival here: the consumer copies it out at once.
        let item = rx.recv().await?;
        Some((item.map(|(bytes, _permit)| bytes), (rx, guard)))
    })
    .boxed()
}

/// Stops the reading task when the consumer lets go.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
