//! Reading a range of an object ahead of its consumer, in segments fetched several at a time.
//!
//! A download alternates between receiving ciphertext from S3 and decrypting and sending it to
//! the client. Left to that rhythm, the S3 connection is only read while the download waits for
//! its next batch: in between, the socket's buffer fills, the service stops sending, and the
//! receiving side's acknowledgements are delayed, which a service that does not disable Nagle's
//! algorithm (s3s-fs) answers by holding back its small segments. So each response is drained
//! by a task of its own as it arrives.
//!
//! One response is also only as fast as the service serves one request: s3s-fs reads a file
//! 4 KiB at a time through its blocking pool, one hand-off after another, and ends every
//! response with a wait for a delayed acknowledgement; AWS documents parallel ranged GETs as
//! the way past one connection's throughput. So a range is read as segments of
//! [`SEGMENT_LEN`], [`IN_FLIGHT`] GETs at a time: the segment being consumed and the next ones.
//!
//! Memory stays bounded. A segment fetched ahead is only received in full if it holds a
//! reservation of [`SEGMENT_LEN`] from its backend's read-ahead budget ([`Budget`], shared by
//! every download from that backend, taken without waiting). Without one it is paced: received
//! at most [`PACED_KIB`] ahead of its consumer, the rest left in the connection. A download
//! therefore holds at most `IN_FLIGHT x PACED_KIB` of its own, plus what its reservations cover.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::future::{BoxFuture, ready};
use futures_util::stream::{self, BoxStream};
use object_store::GetResult;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Bytes per segment GET.
pub(crate) const SEGMENT_LEN: u64 = 8 * 1024 * 1024;

/// Segment GETs alive at once per cursor: the one being consumed and the ones after it.
pub(crate) const IN_FLIGHT: usize = 3;

/// How far ahead of its consumer a segment without a reservation is received, in KiB.
const PACED_KIB: usize = 1024;

/// The default read-ahead budget of one backend: eight segments (64 MiB).
pub(crate) const DEFAULT_BUDGET: u64 = 8 * SEGMENT_LEN;

pub(crate) type Body = BoxStream<'static, object_store::Result<Bytes>>;

/// Bytes a backend's downloads may hold ahead of their consumers beyond their paced share,
/// reserved a whole segment at a time.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    /// One permit per KiB.
    kib: Arc<Semaphore>,
}

impl Budget {
    pub(crate) fn new(bytes: u64) -> Budget {
        let kib = usize::try_from(bytes / 1024)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Budget {
            kib: Arc::new(Semaphore::new(kib)),
        }
    }

    /// A reservation for one segment, if the budget has room now.
    fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(SEGMENT_LEN / 1024).unwrap_or(u32::MAX);
        Arc::clone(&self.kib).try_acquire_many_owned(kib).ok()
    }

    /// KiB not reserved right now.
    #[cfg(test)]
    pub(crate) fn available_kib(&self) -> usize {
        self.kib.available_permits()
    }
}

/// The first segment of `range` (the whole range if it is shorter than a segment).
pub(crate) fn first_segment(range: &Range<u64>) -> Range<u64> {
    range.start..range.end.min(range.start.saturating_add(SEGMENT_LEN))
}

/// The bytes of `range`, in order: `first` is the answered GET of [`first_segment`]`(range)`;
/// `get` starts the GET of any later segment. Dropping the stream stops every segment's task
/// and returns their reservations.
pub(crate) fn segmented<F>(first: GetResult, range: Range<u64>, budget: Budget, get: F) -> Body
where
    F: Fn(Range<u64>) -> BoxFuture<'static, object_store::Result<GetResult>> + Send + 'static,
{
    let rest = segments(first_segment(&range).end..range.end);
    let first = drain(Box::pin(ready(Ok(first))), budget.reserve());
    let later = stream::iter(rest).map(move |segment| drain(get(segment), budget.reserve()));
    // Each item is ready at once (its task is already running): `buffered` only sets how far
    // ahead segments are started.
    stream::once(ready(first))
        .chain(later)
        .map(ready)
        .buffered(IN_FLIGHT)
        .flatten()
        .boxed()
}

/// `range` cut into segments of [`SEGMENT_LEN`] (the last one shorter).
fn segments(range: Range<u64>) -> impl Iterator<Item = Range<u64>> + Send {
    let end = range.end;
    (range.start..end)
        .step_by(usize::try_from(SEGMENT_LEN).unwrap_or(usize::MAX))
        .map(move |start| start..end.min(start.saturating_add(SEGMENT_LEN)))
}

type Piece = object_store::Result<(Bytes, Option<OwnedSemaphorePermit>)>;

/// Starts a task that receives one segment: all of it as fast as it arrives when `reserved`
/// covers it, else at most [`PACED_KIB`] ahead of the consumer. Returns its bytes in order;
/// the reservation is returned when the stream is dropped.
fn drain(
    get: BoxFuture<'static, object_store::Result<GetResult>>,
    reserved: Option<OwnedSemaphorePermit>,
) -> Body {
    let paced = reserved
        .is_none()
        .then(|| Arc::new(Semaphore::new(PACED_KIB)));
    let (tx, rx) = mpsc::unbounded_channel::<Piece>();
    let task = tokio::spawn(async move {
        let mut body = match get.await {
            Ok(got) => got.into_stream(),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        while let Some(item) = body.next().await {
            let piece = match (item, &paced) {
                (Ok(bytes), Some(paced)) => {
                    let kib = u32::try_from(bytes.len().div_ceil(1024).min(PACED_KIB))
                        .unwrap_or(u32::MAX);
                    // Closed only if the consumer is gone; then nobody needs the bytes.
                    let Ok(permit) = Arc::clone(paced).acquire_many_owned(kib).await else {
                        return;
                    };
                    Ok((bytes, Some(permit)))
                }
                (Ok(bytes), None) => Ok((bytes, None)),
                (Err(e), _) => Err(e),
            };
            let failed = piece.is_err();
            // A closed channel means the consumer is gone.
            if tx.send(piece).is_err() || failed {
                return;
            }
        }
    });
    let held = Held {
        task,
        _reserved: reserved,
    };
    stream::unfold((rx, held), |(mut rx, held)| async move {
        // A paced piece's permit goes with its arrival here: the consumer copies it out at once.
        let item = rx.recv().await?;
        Some((item.map(|(bytes, _permit)| bytes), (rx, held)))
    })
    .boxed()
}

/// What a segment's stream holds until it is dropped: its task (stopped then) and its
/// reservation (returned then).
struct Held {
    task: tokio::task::JoinHandle<()>,
    _reserved: Option<OwnedSemaphorePermit>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_range_exactly() {
        let s = SEGMENT_LEN;
        assert_eq!(first_segment(&(5..10)), 5..10);
        assert_eq!(first_segment(&(7..7 + 3 * s)), 7..7 + s);
        let cut: Vec<_> = segments(7 + s..7 + 3 * s + 1).collect();
        assert_eq!(
            cut,
            vec![
                7 + s..7 + 2 * s,
                7 + 2 * s..7 + 3 * s,
                7 + 3 * s..7 + 3 * s + 1
            ]
        );
        assert_eq!(segments(9..9).count(), 0);
    }

    #[test]
    fn a_budget_hands_out_whole_segments_until_it_is_spent() {
        let budget = Budget::new(2 * SEGMENT_LEN + 5);
        let a = budget.reserve().expect("room for the first segment");
        let b = budget.reserve().expect("room for the second segment");
        assert!(budget.reserve().is_none(), "no room for a third");
        drop(a);
        assert!(
            budget.reserve().is_some(),
            "a returned reservation is reusable"
        );
        drop(b);
        assert!(Budget::new(0).reserve().is_none());
    }
}
