//! Prometheus metrics: the recorder every crate records into (through the `metrics` facade), the
//! names and descriptions of every metric, the HTTP metrics the edge records, and the `/metrics`
//! listener, which is a port of its own and never the public one.
//!
//! Labels only ever hold values from a closed set: a route *template* from the route table
//! (`/api/v1/assets/{asset_id}`, never a path with an id or a token in it), a method from a
//! fixed list, a status code, a job kind, a factor, a scope. A label made of anything a client
//! sent would let one client blow up the number of series (and could leak tokens into the
//! monitoring system).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body::{Frame, SizeHint};
use metrics::{Counter, Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use strongroom_service::Service;
use tokio::net::TcpListener;

/// Requests answered, by route template, method and status.
pub const HTTP_REQUESTS: &str = "strongroom_http_requests_total";
/// Time from a request's arrival to its response head, by route template and method.
pub const HTTP_DURATION: &str = "strongroom_http_request_duration_seconds";
/// Request body bytes read, by route template.
pub const HTTP_REQUEST_BYTES: &str = "strongroom_http_request_bytes_total";
/// Response body bytes sent, by route template.
pub const HTTP_RESPONSE_BYTES: &str = "strongroom_http_response_bytes_total";
/// Uploads whose handler is running (reading the body, encrypting, committing).
pub const UPLOADS_IN_FLIGHT: &str = "strongroom_uploads_in_flight";
/// Jobs waiting in the queue, by kind (sampled from the database at each scrape).
pub const JOBS_QUEUED: &str = "strongroom_jobs_queued";
/// How long the oldest waiting job of a kind has waited (sampled at each scrape).
pub const JOBS_OLDEST_AGE: &str = "strongroom_jobs_oldest_age_seconds";
/// Scrapes whose job-queue sample failed (the database did not answer).
pub const JOBS_SAMPLE_FAILURES: &str = "strongroom_jobs_sample_failures_total";
/// Job attempts this node finished, by kind and outcome (recorded by the service's workers).
pub const JOBS_TOTAL: &str = "strongroom_jobs_total";
/// Failed sign-in checks, by factor (recorded by the service's brute-force protection).
pub const LOGIN_FAILURES: &str = "strongroom_login_failures_total";
/// Sign-in attempts refused by a brute-force limit (429), by scope.
pub const LOGIN_THROTTLED: &str = "strongroom_login_throttled_total";

/// Time per group commit of content reads' audit events (recorded by the service).
const AUDIT_GROUP_DURATION: &str = "strongroom_audit_group_commit_duration_seconds";

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds of the request-duration buckets, in seconds: from a cached metadata read to a
/// long upload.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// How often histogram samples are folded into their buckets (without it, samples recorded
/// between two scrapes pile up in memory).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder. The `metrics` facade has one global recorder per process, so the
/// first server started installs it and every later one (tests start several) shares it.
static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The Prometheus recorder, installed on first use; an error when another recorder was
/// installed first (nothing in Strongroom does that).
pub fn recorder() -> Result<PrometheusHandle, String> {
    RECORDER.get_or_init(install).clone()
}

fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), DURATION_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(AUDIT_GROUP_DURATION.into()), DURATION_BUCKETS)
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}

/// HELP lines: `promtool check metrics` wants one for every metric.
fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by matched route template, method and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response head, by route template and method."
    );
    describe_counter!(
        HTTP_REQUEST_BYTES,
        Unit::Bytes,
        "Request body bytes read, by route template, counted as they stream."
    );
    describe_counter!(
        HTTP_RESPONSE_BYTES,
        Unit::Bytes,
        "Response body bytes sent, by route template, counted as they stream."
    );
    describe_gauge!(UPLOADS_IN_FLIGHT, "Uploads being received right now.");
    describe_gauge!(
        JOBS_QUEUED,
        "Jobs waiting in the queue (due or backing off), by kind, across all nodes."
    );
    describe_gauge!(
        JOBS_OLDEST_AGE,
        Unit::Seconds,
        "Seconds since the oldest waiting job of each kind was enqueued (0 when none waits)."
    );
    describe_counter!(
        JOBS_SAMPLE_FAILURES,
        "Scrapes whose job queue sample failed; the job gauges then keep their last values."
    );
    describe_counter!(
        JOBS_TOTAL,
        "Job attempts finished on this node, by kind and outcome (done, retry, failed)."
    );
    describe_counter!(
        LOGIN_FAILURES,
        "Failed sign-in checks, by factor (password, otp)."
    );
    describe_counter!(
        LOGIN_THROTTLED,
        "Sign-in attempts refused by a brute-force limit (429), by scope (address, pair, account)."
    );
    describe_counter!(
        "strongroom_audit_group_commits_total",
        "Group commits of content reads' audit events (each one transaction)."
    );
    describe_counter!(
        "strongroom_audit_group_events_total",
        "Audit events committed by group commits (divided by the commits: the mean group size)."
    );
    describe_histogram!(
        AUDIT_GROUP_DURATION,
        Unit::Seconds,
        "Time per group commit of read audit events, from its first statement to its commit."
    );
    describe_storage();
}

/// The storage backends' and the scrub's metrics (recorded by the blob layer and the service).
fn describe_storage() {
    // The names `strongroom_blob::metered` records under (this crate does not link the blob
    // layer; the metrics test checks both sides agree).
    const STORAGE_DURATION: &str = "strongroom_storage_operation_duration_seconds";
    const STORAGE_ERRORS: &str = "strongroom_storage_errors_total";
    const STORAGE_READ_BYTES: &str = "strongroom_storage_read_bytes_total";
    const STORAGE_WRITTEN_BYTES: &str = "strongroom_storage_written_bytes_total";
    describe_histogram!(
        STORAGE_DURATION,
        Unit::Seconds,
        "Time per storage backend call, by backend and operation (create, write, commit, read, len, delete, list, check, checkpoints)."
    );
    describe_counter!(
        STORAGE_ERRORS,
        "Storage backend calls that failed (a missing blob not counted), by backend and operation."
    );
    describe_counter!(
        STORAGE_READ_BYTES,
        Unit::Bytes,
        "Ciphertext bytes read from each storage backend."
    );
    describe_counter!(
        STORAGE_WRITTEN_BYTES,
        Unit::Bytes,
        "Ciphertext bytes written to each storage backend."
    );
    describe_gauge!(
        "strongroom_scrub_running",
        "1 while this node runs a scrub, else 0."
    );
    describe_gauge!(
        "strongroom_scrub_total_blobs",
        "Blobs the running (or last) scrub of this node has to check."
    );
    describe_gauge!(
        "strongroom_scrub_done_blobs",
        "Blobs the running (or last) scrub of this node has checked so far."
    );
    describe_gauge!(
        "strongroom_scrub_last_finished_timestamp_seconds",
        "When this node's last scrub finished (Unix time)."
    );
    describe_gauge!(
        "strongroom_scrub_checked_blobs",
        "Blobs this node's last scrub checked."
    );
    describe_gauge!(
        "strongroom_scrub_unrecoverable_blobs",
        "Blobs with no good copy left, as this node's last scrub found them."
    );
    describe_counter!(
        "strongroom_scrub_repaired_copies_total",
        "Copies this node's scrubs rewrote from a good one."
    );
    for (name, what) in [
        ("strongroom_scrub_missing_copies", "lacked"),
        ("strongroom_scrub_corrupt_copies", "held damaged"),
        ("strongroom_scrub_unreachable_copies", "did not answer for"),
    ] {
        describe_gauge!(
            name,
            format!("Copies each backend {what}, as this node's last scrub found them.")
        );
    }
}

/// The method label: the standard methods by name, anything else as `other` (a client can
/// send any token as a method).
pub(crate) fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Records a request answered with `status` (at its response head).
pub(crate) fn record_request(
    route: &'static str,
    method: &Method,
    status: StatusCode,
    elapsed: Duration,
) {
    let method = method_label(method);
    metrics::counter!(
        HTTP_REQUESTS,
        "route" => route,
        "method" => method,
        "status" => status.as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
}

/// The counter of response bytes of `route`.
pub(crate) fn response_bytes(route: &'static str) -> Counter {
    metrics::counter!(HTTP_RESPONSE_BYTES, "route" => route)
}

/// The counter of request bytes of `route`.
pub(crate) fn request_bytes(route: &'static str) -> Counter {
    metrics::counter!(HTTP_REQUEST_BYTES, "route" => route)
}

/// One upload in flight; the gauge goes down when this is dropped (the handler ended, however).
pub(crate) struct UploadInFlight(());

impl UploadInFlight {
    pub(crate) fn start() -> UploadInFlight {
        metrics::gauge!(UPLOADS_IN_FLIGHT).increment(1.0);
        UploadInFlight(())
    }
}

impl Drop for UploadInFlight {
    fn drop(&mut self) {
        metrics::gauge!(UPLOADS_IN_FLIGHT).decrement(1.0);
    }
}

/// Where a counted body's bytes go: a counter known now (a response), or one looked up on the
/// first frame (a request: its route is known only once routing ran, before any byte is read).
pub(crate) enum Sink {
    /// The counter.
    Known(Counter),
    /// Resolves the counter on first use.
    Later(Box<dyn FnOnce() -> Counter + Send>),
}

/// A body that counts its data bytes as they pass.
pub(crate) struct Counted {
    inner: Body,
    sink: Option<Sink>,
}

impl Counted {
    pub(crate) fn new(inner: Body, sink: Sink) -> Counted {
        Counted {
            inner,
            sink: Some(sink),
        }
    }

    fn count(&mut self, n: usize) {
        let counter = match self.sink.take() {
            Some(Sink::Known(c)) => c,
            Some(Sink::Later(f)) => f(),
            None => return,
        };
        counter.increment(n as u64);
        self.sink = Some(Sink::Known(counter));
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && !data.is_empty()
        {
            let n = data.len();
            self.count(n);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the `/metrics` handler needs.
#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    service: Arc<Service>,
}

/// The metrics listener's router: `GET /metrics` in the Prometheus text format, 404 for
/// anything else.
pub fn router(handle: PrometheusHandle, service: Arc<Service>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape { handle, service })
}

/// Samples what is read from the database at scrape time, then renders every metric.
async fn scrape(State(s): State<Scrape>) -> Response {
    match s.service.jobs.queue_depths().await {
        Ok(depths) => {
            for d in depths {
                metrics::gauge!(JOBS_QUEUED, "kind" => d.kind).set(d.queued as f64);
                metrics::gauge!(JOBS_OLDEST_AGE, "kind" => d.kind).set(d.oldest_age_secs);
            }
        }
        Err(e) => {
            metrics::counter!(JOBS_SAMPLE_FAILURES).increment(1);
            tracing::warn!(error = %e, "metrics: cannot sample the job queue");
        }
    }
    let body = s.handle.render();
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}

/// Serves [`router`] over plain HTTP on `listener` until the task is dropped, folding histogram
/// samples into their buckets every few seconds.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    service: Arc<Service>,
) -> std::io::Result<()> {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    };
    // Aborted with this future: the upkeep task must not outlive the listener.
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _upkeep = AbortOnDrop(upkeep);
    axum::serve(listener, router(handle, service)).await
}

/// The URL the metrics are scraped at.
pub fn url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn odd_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(
            method_label(&Method::from_bytes(b"X-ANYTHING-AT-ALL").unwrap()),
            "other"
        );
    }

    #[tokio::test]
    async fn a_counted_body_passes_every_byte_through_unchanged() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"defgh")),
        ];
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let out = metrics::with_local_recorder(&recorder, || {
            let c = metrics::counter!("t_bytes_total");
            Counted::new(body, Sink::Later(Box::new(move || c)))
        });
        let collected = out.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcdefgh");
        assert!(
            handle.render().contains("t_bytes_total 8"),
            "{}",
            handle.render()
        );
    }
}
