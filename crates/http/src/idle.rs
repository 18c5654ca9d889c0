//! Clients that stop making progress: a connection that closes itself after a period with no
//! bytes moving either way ([`Idle`]), and a request body that fails once it falls below a
//! minimum rate ([`MinRate`]).
//!
//! `Idle` catches clients that stop mid-request, stop reading a response, or hold a keep-alive
//! connection open forever. Any byte resets it, so a client trickling a body one byte a minute
//! would keep it happy: `MinRate` catches that one. (A client trickling header bytes is caught by
//! hyper's header-read timeout.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps an I/O stream with an idle deadline.
pub struct Idle<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> Idle<T> {
    /// `inner` is closed (with `TimedOut`) after `timeout` without progress.
    pub fn new(inner: T, timeout: Duration) -> Self {
        Idle {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Idle<T> {
    /// Resets the deadline on a write that moved bytes; fails a pending one past the deadline.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        this.wrote(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The slowest request body the server waits for: at least `bytes_per_sec` on average over each
/// `window` the handler spends waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinBodyRate {
    /// Average bytes per second a body must keep up.
    pub bytes_per_sec: u64,
    /// The span the average is taken over; also the grace a body gets at its start.
    pub window: Duration,
}

impl MinBodyRate {
    /// Bytes a body must deliver in each window.
    fn per_window(&self) -> u64 {
        let millis = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        self.bytes_per_sec.saturating_mul(millis) / 1000
    }
}

/// Set on a request whose body [`MinRate`] cut off, so the edge can answer 408 and close.
#[derive(Debug, Clone, Default)]
pub struct BodyCut(Arc<AtomicBool>);

impl BodyCut {
    /// Whether the body was cut off.
    pub fn is_cut(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why [`MinRate`] ended a body.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly (under {bytes_per_sec} bytes/s over {window_secs} s)")]
pub struct BodyTooSlow {
    bytes_per_sec: u64,
    window_secs: u64,
}

/// A request body that fails once it falls below a minimum rate.
///
/// Only time the consumer spends waiting for the client counts: while a handler is busy
/// elsewhere (writing to disk, waiting for the database) the client is not to blame for bytes
/// not arriving. Each window of waiting must bring at least [`MinBodyRate::per_window`] bytes;
/// a fast body resets the count every window, so however large it is, it is never cut.
pub struct MinRate<B> {
    inner: B,
    rate: MinBodyRate,
    need: u64,
    /// Bytes received in the current window.
    got: u64,
    /// Waiting time already spent in the current window, not counting the current wait.
    waited: Duration,
    /// When the current wait for the client began.
    waiting_since: Option<Instant>,
    /// Ends the window while the consumer waits; made on the first wait.
    timer: Option<Pin<Box<Sleep>>>,
    cut: BodyCut,
    peer: std::net::SocketAddr,
}

impl<B> MinRate<B> {
    /// Wraps `inner`; the returned flag says later whether it was cut off.
    pub fn new(inner: B, rate: MinBodyRate, peer: std::net::SocketAddr) -> (Self, BodyCut) {
        let cut = BodyCut::default();
        let body = MinRate {
            inner,
            rate,
            need: rate.per_window(),
            got: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            cut: cut.clone(),
            peer,
        };
        (body, cut)
    }

    fn too_slow(&self) -> BodyTooSlow {
        BodyTooSlow {
            bytes_per_sec: self.rate.bytes_per_sec,
            window_secs: self.rate.window.as_secs(),
        }
    }

    fn set_timer(&mut self, at: Instant) {
        match &mut self.timer {
            Some(t) => t.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Ends the current window: `Err` if it brought too little, else a fresh window.
    fn close_window(&mut self, now: Instant) -> Result<(), BodyTooSlow> {
        if self.got < self.need {
            self.cut.0.store(true, Ordering::Relaxed);
            tracing::warn!(
                peer = %self.peer,
                received = self.got,
                window_secs = self.rate.window.as_secs_f64(),
                min_bytes_per_sec = self.rate.bytes_per_sec,
                "request body below the minimum rate: cut off"
            );
            return Err(self.too_slow());
        }
        self.got = 0;
        self.waited = Duration::ZERO;
        if self.waiting_since.is_some() {
            self.waiting_since = Some(now);
        }
        Ok(())
    }
}

impl<B> http_body::Body for MinRate<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.cut.is_cut() {
            return Poll::Ready(Some(Err(this.too_slow().into())));
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let now = Instant::now();
        match polled {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += now.saturating_duration_since(since);
                }
                if let Some(Ok(f)) = &frame
                    && let Some(data) = f.data_ref()
                {
                    this.got = this.got.saturating_add(data.len() as u64);
                }
                if frame.is_some()
                    && this.waited >= this.rate.window
                    && let Err(e) = this.close_window(now)
                {
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => loop {
                let since = match this.waiting_since {
                    Some(s) => s,
                    None => {
                        // A new wait: the window ends once it has been waited out in full.
                        this.waiting_since = Some(now);
                        let left = this.rate.window.saturating_sub(this.waited);
                        this.set_timer(now + left);
                        now
                    }
                };
                let waited = this.waited + now.saturating_duration_since(since);
                let fired = this
                    .timer
                    .as_mut()
                    .is_none_or(|t| t.as_mut().poll(cx).is_ready());
                if waited < this.rate.window && !fired {
                    return Poll::Pending;
                }
                if let Err(e) = this.close_window(now) {
                    return Poll::Ready(Some(Err(e.into())));
                }
                // A fresh window while the wait goes on.
                this.set_timer(now + this.rate.window);
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    use super::*;

    type Item = Result<http_body::Frame<Bytes>, std::io::Error>;
    type Feed = StreamBody<Pin<Box<dyn futures_util::Stream<Item = Item> + Send>>>;

    /// A body fed by the test through the returned sender.
    fn body(rate: MinBodyRate) -> (MinRate<Feed>, BodyCut, mpsc::Sender<Item>) {
        let (tx, mut rx) = mpsc::channel::<Item>(64);
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let (b, cut) = MinRate::new(StreamBody::new(Box::pin(stream) as Pin<Box<_>>), rate, peer);
        (b, cut, tx)
    }

    const RATE: MinBodyRate = MinBodyRate {
        bytes_per_sec: 1000,
        window: Duration::from_millis(300),
    };

    /// Feeds `chunk` bytes every `every`, `count` times, then ends the body.
    fn feed(tx: mpsc::Sender<Item>, chunk: usize, every: Duration, count: usize) {
        tokio::spawn(async move {
            for _ in 0..count {
                if tx
                    .send(Ok(http_body::Frame::data(Bytes::from(vec![0u8; chunk]))))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        });
    }

    #[tokio::test]
    async fn a_trickle_is_cut_off_after_one_window() {
        let (mut b, cut, tx) = body(RATE);
        // 10 bytes every 50 ms: 200 bytes/s, under the 1000 bytes/s minimum.
        feed(tx, 10, Duration::from_millis(50), 1000);
        let started = std::time::Instant::now();
        let err = loop {
            match b.frame().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("the trickle ended without being cut off"),
            }
        };
        let after = started.elapsed();
        assert!(err.to_string().contains("too slowly"), "{err}");
        assert!(cut.is_cut());
        assert!(
            after >= Duration::from_millis(280) && after < Duration::from_secs(2),
            "cut after {after:?}"
        );
        // It stays cut.
        assert!(matches!(b.frame().await, Some(Err(_))));
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_cut_off_too() {
        let (mut b, cut, _tx) = body(RATE);
        let res = tokio::time::timeout(Duration::from_secs(2), b.frame()).await;
        assert!(matches!(res, Ok(Some(Err(_)))), "a silent body was not cut");
        assert!(cut.is_cut());
    }

    #[tokio::test]
    async fn a_body_above_the_rate_is_never_cut_however_long() {
        let (mut b, cut, tx) = body(RATE);
        // 100 bytes every 20 ms: 5000 bytes/s, for 1.2 s (four windows).
        feed(tx, 100, Duration::from_millis(20), 60);
        let mut total = 0;
        while let Some(frame) = b.frame().await {
            total += frame.unwrap().into_data().unwrap().len();
        }
        assert_eq!(total, 6000);
        assert!(!cut.is_cut());
    }

    #[tokio::test]
    async fn time_the_server_spends_elsewhere_does_not_count() {
        let (mut b, cut, tx) = body(RATE);
        // The client has sent everything; the handler reads a small piece every 200 ms (busy
        // writing it, say): 50 bytes per 200 ms is far under the rate by the wall clock, but
        // the handler never waits for the client.
        for _ in 0..6 {
            tx.send(Ok(http_body::Frame::data(Bytes::from(vec![1u8; 50]))))
                .await
                .unwrap();
        }
        drop(tx);
        let mut total = 0;
        while let Some(frame) = b.frame().await {
            total += frame.unwrap().into_data().unwrap().len();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(total, 300);
        assert!(!cut.is_cut());
    }
}
