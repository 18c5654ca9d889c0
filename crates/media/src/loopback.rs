//! The per-job loopback HTTP server: the only way plaintext reaches ffmpeg and comes back.
//!
//! It listens on `127.0.0.1:0` for one job. Every URL sits under a random 128-bit prefix, so
//! other local users who find the port still cannot read the source or inject outputs. It serves
//! the source at `{base}/input` (GET/HEAD with single `Range` support: ffmpeg seeks that way, for
//! example to an MP4 index at the end of the file) and accepts `PUT {base}/out/{name}` for the
//! names the job's output policy allows, bounded per file and in total. A finished upload is
//! handed to the job ([`JobServer::next_upload`]).
//!
//! Backpressure: ffmpeg does not wait for the answer to a PUT (it sends the body, glances at the
//! socket and closes), so answering late would slow nothing down. Instead, while
//! [`MAX_PENDING`] finished uploads wait for the job (a slow sink), the server does not start
//! reading a new body: ffmpeg blocks on a full socket once the kernel's buffer is full. Bodies
//! already being read are finished, so a segment of one rendition never waits for a segment of
//! another that ffmpeg cannot finish meanwhile. Memory is thus bounded by about
//! (`MAX_PENDING` + open connections) x the largest output.
//!
//! Connections are backpressured the same way, never refused: with [`MAX_CONNECTIONS`] open, the
//! server accepts no more until one ends. A video of tiny segments (long, low frame rate) makes
//! ffmpeg open a new connection per segment and per playlist update far faster than the job
//! stores them; those wait in the listen backlog, their bytes in the kernel's buffers, and each
//! is served in turn. (Dropping them, as an earlier version did, lost their segments.) ffmpeg
//! holds only a few outputs open at once (one segment per rendition and a playlist), far fewer
//! than the limit, so the connections already accepted can always finish.
//!
//! Outputs are bounded in total by the smaller of [`Limits::max_output_bytes`] and
//! [`Limits::output_ratio`] x the source's size + [`Limits::output_allowance_bytes`]: a tiny
//! file whose timestamps claim hours would otherwise make ffmpeg fill them with copies of its
//! few pictures.

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::Limits;
use crate::error::MediaError;
use crate::io::MediaSource;

/// Decides which output names ffmpeg may PUT.
pub(crate) type OutputPolicy = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Bytes read from the source per step of a response body.
const READ_CHUNK: usize = 256 * 1024;
/// Connections served at once; further ones wait in the listen backlog until one ends. ffmpeg
/// holds a handful open at a time (the rest are finished uploads waiting to be read).
const MAX_CONNECTIONS: usize = 16;
/// After ffmpeg exits, how long its remaining requests may go without one of them finishing
/// (they finish as fast as the job takes their uploads).
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished uploads that may wait for the job before new bodies stop being read.
const MAX_PENDING: usize = 2;

type Body = UnsyncBoxBody<Bytes, io::Error>;

/// An output ffmpeg finished uploading. Dropping it (once handled) frees its pending slot.
pub(crate) struct Upload {
    /// Its name under `{base}/out/`, already checked against the policy.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    _slot: PendingSlot,
}

/// Counts an upload as pending until dropped.
struct PendingSlot(Arc<Shared>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
        self.0.slot_freed.notify_waiters();
    }
}

/// State shared by the job and the connection tasks.
struct Shared {
    source: Arc<dyn MediaSource>,
    prefix: String,
    policy: Option<OutputPolicy>,
    max_file: u64,
    max_total: u64,
    /// The total is [`Limits::output_ratio`] x the source's size + the allowance, not the
    /// absolute limit.
    total_is_proportional: bool,
    received: AtomicU64,
    pending: AtomicUsize,
    slot_freed: Notify,
    failure: Mutex<Option<MediaError>>,
    failed: Notify,
}

impl Shared {
    /// Records the first failure the server itself detected and wakes the job.
    fn fail(&self, error: MediaError) {
        let mut slot = match self.failure.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.is_none() {
            *slot = Some(error);
            self.failed.notify_one();
        }
    }
}

/// One job's loopback server. Dropping it stops the server and every connection.
pub(crate) struct JobServer {
    base: String,
    shared: Arc<Shared>,
    uploads: mpsc::UnboundedReceiver<Upload>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl JobServer {
    /// Binds `127.0.0.1:0` and starts serving `source` (and accepting the outputs `policy`
    /// allows, if any).
    pub(crate) async fn start(
        source: Arc<dyn MediaSource>,
        policy: Option<OutputPolicy>,
        limits: &Limits,
    ) -> Result<JobServer, MediaError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| MediaError::Internal(format!("loopback server could not bind: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| MediaError::Internal(format!("loopback server address: {e}")))?
            .port();
        let prefix = strongroom_crypto::token::random_token(16);
        let proportional = limits.proportional_output_bytes(source.size());
        let shared = Arc::new(Shared {
            source,
            prefix: prefix.clone(),
            policy,
            max_file: limits.max_output_file_bytes,
            max_total: proportional.min(limits.max_output_bytes),
            total_is_proportional: proportional < limits.max_output_bytes,
            received: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            slot_freed: Notify::new(),
            failure: Mutex::new(None),
            failed: Notify::new(),
        });
        let (uploads_tx, uploads) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(serve(listener, Arc::clone(&shared), uploads_tx, stop_rx));
        Ok(JobServer {
            base: format!("http://127.0.0.1:{port}/{prefix}"),
            shared,
            uploads,
            stop: Some(stop_tx),
            task,
        })
    }

    /// The size of the source, in bytes.
    pub(crate) fn source_size(&self) -> u64 {
        self.shared.source.size()
    }

    /// The URL ffmpeg reads the source from.
    pub(crate) fn input_url(&self) -> String {
        format!("{}/input", self.base)
    }

    /// The URL ffmpeg PUTs the output `name` to (`name` may contain ffmpeg patterns like `%v`).
    pub(crate) fn output_url(&self, name: &str) -> String {
        format!("{}/out/{name}", self.base)
    }

    /// `text` (ffmpeg's stderr) without this job's URLs, which carry the secret prefix and mean
    /// nothing to a reader: `http://127.0.0.1:N/PREFIX/input: Invalid data` becomes
    /// `input: Invalid data`.
    pub(crate) fn redact(&self, text: &str) -> String {
        text.replace(&format!("{}/", self.base), "")
            .replace(&self.shared.prefix, "<redacted>")
    }

    /// The next finished upload; `None` once the server has stopped and every upload was taken.
    pub(crate) async fn next_upload(&mut self) -> Option<Upload> {
        self.uploads.recv().await
    }

    /// A handle on the failures the server itself detects.
    pub(crate) fn watch(&self) -> FailureWatch {
        FailureWatch(Arc::clone(&self.shared))
    }

    /// A failure the server saw explains a job's failure better than ffmpeg's words (ffmpeg only
    /// sees a broken connection): it replaces `result`'s error, or fails an apparently good
    /// result. Stops the server.
    pub(crate) fn check_failure<T>(self, result: Result<T, MediaError>) -> Result<T, MediaError> {
        match self.watch().take() {
            Some(e) => Err(e),
            None => result,
        }
    }

    /// Stops accepting connections; requests in flight are still received, and
    /// [`JobServer::next_upload`] returns `None` once they are done (or after a grace period).
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for JobServer {
    fn drop(&mut self) {
        // Aborting the task drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

/// Failures the server detected on its own: the source could not be read, an output grew too
/// large. ffmpeg only sees a broken connection; these say what really happened.
pub(crate) struct FailureWatch(Arc<Shared>);

impl FailureWatch {
    /// Resolves once a failure was recorded (cancel-safe: a failure recorded while nobody waited
    /// is not lost).
    pub(crate) async fn failed(&self) {
        self.0.failed.notified().await;
    }

    /// The recorded failure, if any; taken, so a second call returns `None`.
    pub(crate) fn take(&self) -> Option<MediaError> {
        match self.0.failure.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

/// What a connection task needs.
#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    uploads: mpsc::UnboundedSender<Upload>,
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    uploads: mpsc::UnboundedSender<Upload>,
    mut stop: oneshot::Receiver<()>,
) {
    let ctx = Ctx { shared, uploads };
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        if conns.len() >= MAX_CONNECTIONS {
            // Backpressure, not refusal: the next connection waits in the backlog.
            tokio::select! {
                _ = &mut stop => break,
                _ = conns.join_next() => continue,
            }
        }
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or similar: back off rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                conns.spawn(connection(stream, ctx.clone()));
            }
        }
    }
    // ffmpeg has exited, but its last connections may still wait in the listen backlog (it
    // does not wait for answers) and their bodies in socket buffers: take them in too, as fast
    // as the job takes their uploads.
    'drain: loop {
        while conns.try_join_next().is_some() {}
        while conns.len() >= MAX_CONNECTIONS {
            match tokio::time::timeout(DRAIN_GRACE, conns.join_next()).await {
                Ok(_) => {}
                Err(_) => break 'drain,
            }
        }
        match tokio::time::timeout(Duration::from_millis(20), listener.accept()).await {
            Ok(Ok((stream, _))) => {
                conns.spawn(connection(stream, ctx.clone()));
            }
            _ => break,
        }
    }
    drop(listener);
    drop(ctx);
    // Each remaining request ends once its upload is taken; give up only when none does for
    // a while (the job stopped taking them).
    while let Ok(Some(_)) = tokio::time::timeout(DRAIN_GRACE, conns.join_next()).await {}
}

async fn connection(stream: TcpStream, ctx: Ctx) {
    let svc = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(ctx, req).await) }
    });
    // Errors here are ffmpeg hanging up mid-request, which the job notices through ffmpeg.
    // Half-close: ffmpeg may shut its side right after the body; still finish the request. The
    // header timeout stops a stray local client from holding a connection slot.
    let _ = http1::Builder::new()
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

async fn handle(ctx: Ctx, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let Some(rest) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(prefix, _)| {
            strongroom_crypto::token::ct_eq(prefix.as_bytes(), ctx.shared.prefix.as_bytes())
        })
        .map(|(_, rest)| rest)
    else {
        return status(StatusCode::NOT_FOUND);
    };
    let method = req.method().clone();
    if rest == "input" {
        if method != Method::GET && method != Method::HEAD {
            return status(StatusCode::METHOD_NOT_ALLOWED);
        }
        let range = req
            .headers()
            .get(http::header::RANGE)
            .and_then(|v| v.to_str().ok());
        return serve_input(&ctx.shared, method == Method::HEAD, range);
    }
    if let Some(name) = rest.strip_prefix("out/") {
        if method != Method::PUT {
            return status(StatusCode::METHOD_NOT_ALLOWED);
        }
        return receive(&ctx, name.to_owned(), req.into_body()).await;
    }
    status(StatusCode::NOT_FOUND)
}

fn status(code: StatusCode) -> Response<Body> {
    let mut resp = Response::new(empty());
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// What a `Range` header asks of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    Full,
    Partial(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 §14.1.2), suffix ranges included; anything with several ranges
/// is served whole, which is allowed.
fn parse_range(header: Option<&str>, size: u64) -> Range {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        match last.parse::<u64>() {
            Ok(n) if n > 0 => (size.saturating_sub(n), size),
            _ => return Range::Unsatisfiable,
        }
    } else {
        let Ok(start) = first.parse::<u64>() else {
            return Range::Unsatisfiable;
        };
        let end = if last.is_empty() {
            size
        } else {
            match last.parse::<u64>() {
                Ok(l) if l >= start => l.saturating_add(1).min(size),
                _ => return Range::Unsatisfiable,
            }
        };
        (start, end)
    };
    if start >= size || start >= end {
        Range::Unsatisfiable
    } else {
        Range::Partial(start, end)
    }
}

fn serve_input(shared: &Arc<Shared>, head: bool, range: Option<&str>) -> Response<Body> {
    let size = shared.source.size();
    let (code, start, end) = match parse_range(range, size) {
        Range::Full => (StatusCode::OK, 0, size),
        Range::Partial(start, end) => (StatusCode::PARTIAL_CONTENT, start, end),
        Range::Unsatisfiable => {
            let mut resp = status(StatusCode::RANGE_NOT_SATISFIABLE);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let body = if head {
        empty()
    } else {
        source_body(Arc::clone(shared), start, end)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = code;
    let headers = resp.headers_mut();
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    if code == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        headers.insert(CONTENT_RANGE, v);
    }
    resp
}

/// Streams `[start, end)` of the source, one chunk at a time, so a whole-file request never
/// holds more than a chunk.
fn source_body(shared: Arc<Shared>, start: u64, end: u64) -> Body {
    let stream =
        futures_util::stream::try_unfold((shared, start), move |(shared, pos)| async move {
            if pos >= end {
                return Ok(None);
            }
            let want = usize::try_from(end - pos)
                .unwrap_or(READ_CHUNK)
                .min(READ_CHUNK);
            let chunk = match shared.source.read_at(pos, want).await {
                Ok(chunk) if !chunk.is_empty() => chunk,
                Ok(_) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "source ended at byte {pos}, before its declared size {}",
                            shared.source.size()
                        ),
                    );
                    shared.fail(MediaError::Source(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
                Err(e) => {
                    shared.fail(MediaError::Source(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            let chunk = if chunk.len() > want {
                chunk.slice(..want)
            } else {
                chunk
            };
            let next = pos + chunk.len() as u64;
            Ok(Some((Frame::data(chunk), (shared, next))))
        });
    StreamBody::new(stream).boxed_unsync()
}

async fn receive(ctx: &Ctx, name: String, mut body: Incoming) -> Response<Body> {
    let shared = &ctx.shared;
    let allowed = shared.policy.as_ref().is_some_and(|allow| allow(&name));
    if !allowed {
        return status(StatusCode::FORBIDDEN);
    }
    // Backpressure (see the module doc): no new body while the job is behind.
    loop {
        let freed = shared.slot_freed.notified();
        if shared.pending.load(Ordering::Acquire) < MAX_PENDING {
            break;
        }
        freed.await;
    }
    let mut bytes: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return status(StatusCode::BAD_REQUEST);
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let n = data.len() as u64;
        let total = shared.received.fetch_add(n, Ordering::Relaxed) + n;
        if bytes.len() as u64 + n > shared.max_file {
            shared.fail(MediaError::OutputTooLarge {
                limit: shared.max_file,
            });
            return status(StatusCode::PAYLOAD_TOO_LARGE);
        }
        if total > shared.max_total {
            shared.fail(if shared.total_is_proportional {
                MediaError::Implausible(format!(
                    "processing produced more than {} from a file of {}: far more than \
                     the file holds, refused as implausible",
                    crate::config::human_bytes(shared.max_total),
                    crate::config::human_bytes(shared.source.size()),
                ))
            } else {
                MediaError::OutputTooLarge {
                    limit: shared.max_total,
                }
            });
            return status(StatusCode::PAYLOAD_TOO_LARGE);
        }
        bytes.extend_from_slice(&data);
    }
    // No await from the end of the body to the hand-off: the connection closing cannot cancel
    // this request half way and lose the upload.
    shared.pending.fetch_add(1, Ordering::AcqRel);
    let upload = Upload {
        name,
        bytes,
        _slot: PendingSlot(Arc::clone(shared)),
    };
    if ctx.uploads.send(upload).is_err() {
        return status(StatusCode::SERVICE_UNAVAILABLE);
    }
    status(StatusCode::CREATED)
}

#[cfg(test)]
mod tests {
    use super::{Range::*, parse_range};

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-0"), 10), Partial(0, 1));
        assert_eq!(parse_range(Some("bytes=2-5"), 10), Partial(2, 6));
        assert_eq!(parse_range(Some("bytes=2-"), 10), Partial(2, 10));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Partial(5, 10));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Partial(7, 10));
        assert_eq!(parse_range(Some("bytes=-30"), 10), Partial(0, 10));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=x-2"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
    }
}
