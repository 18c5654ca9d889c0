//! The HTTPS server: accept under connection caps (in total and per client address), TLS
//! handshake under a deadline, HTTP/1.1 or HTTP/2, per-connection timeouts, a minimum rate for
//! request bodies, and a graceful drain on shutdown (optionally after a delay in which the node
//! tells load balancers it is going away while it still serves).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::idle::{Idle, MinBodyRate, MinRate};
use crate::tls::CertStore;

/// Connection deadlines.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// The TLS handshake must finish within this.
    pub handshake: Duration,
    /// A request's headers must arrive within this (slowloris).
    pub header_read: Duration,
    /// A connection with no bytes moving for this long is closed.
    pub idle: Duration,
    /// On shutdown, in-flight requests get this long to finish.
    pub drain: Duration,
    /// On shutdown, before the drain: how long the server goes on accepting and serving while
    /// `/readyz` answers 503 and every HTTP/1 response says `Connection: close`, so a load
    /// balancer moves away and keeps no idle connection that the drain would close under it.
    pub drain_delay: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            drain: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
        }
    }
}

/// Caps on connections and the slowest request body the server waits for.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once, in total. Past it, a new connection is closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client: its /64).
    pub max_connections_per_ip: usize,
    /// The minimum request-body rate; `None`: no minimum.
    pub min_body_rate: Option<MinBodyRate>,
    /// Load balancers and reverse proxies in front of this node: a connection from one of them
    /// is exempt from the per-address cap, and its requests' client address is taken from
    /// `X-Forwarded-For` ([`forwarded_client`]). Empty: the TCP peer is the client, always.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

/// The client a request comes from: the TCP peer, unless the peer is a trusted proxy, in which
/// case the right-most address of `X-Forwarded-For` that is not itself a trusted proxy (each
/// proxy appends the address it was reached from, so entries to the left of the first untrusted
/// one could have been written by the client). A header that does not parse leaves the peer.
pub fn forwarded_client(
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> SocketAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                Err(_) => return peer,
            }
        }
    }
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or_else(|| hops.first())
        .map_or(peer, |ip| SocketAddr::new(*ip, peer.port()))
}

/// The default minimum body rate: 1 KiB/s on average over 30 s.
pub const DEFAULT_MIN_BODY_RATE: MinBodyRate = MinBodyRate {
    bytes_per_sec: 1024,
    window: Duration::from_secs(30),
};

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_connections_per_ip: 256,
            min_body_rate: Some(DEFAULT_MIN_BODY_RATE),
            trusted_proxies: Arc::default(),
        }
    }
}

/// Serves `app` over HTTPS on `listener` until `shutdown` resolves, then goes on serving for
/// `timeouts.drain_delay` as a node on its way out (see [`Timeouts::drain_delay`]), then stops
/// accepting and waits (up to `timeouts.drain`) for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    certs: Arc<CertStore>,
    app: Router,
    timeouts: Timeouts,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let caps = Arc::new(ConnCaps::new(&limits));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(100);
    let builder = Arc::new(builder);
    // The drain's start, for every connection; and a sender clone per connection, so the drain
    // can wait for the last one to end (the channel closes when every clone is dropped).
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
    let reloader = tokio::spawn(watch_certificates(certs));
    let draining = Arc::new(AtomicBool::new(false));
    // Set once `shutdown` has resolved: the end of the drain delay.
    let mut leaving_at: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown, if leaving_at.is_none() => {
                if timeouts.drain_delay.is_zero() {
                    break;
                }
                draining.store(true, Ordering::Relaxed);
                tracing::info!(
                    drain_delay_secs = timeouts.drain_delay.as_secs_f64(),
                    "shutting down: /readyz answers 503 and connections are not kept alive; still serving for the drain delay"
                );
                leaving_at = Some(tokio::time::Instant::now() + timeouts.drain_delay);
                continue;
            }
            () = tokio::time::sleep_until(leaving_at.unwrap_or_else(tokio::time::Instant::now)),
                if leaving_at.is_some() => break,
        };
        // Over a cap: closed before any TLS work, so a flood from one address costs little and
        // everyone else keeps being served.
        // A trusted proxy carries many clients: only the total cap applies to it.
        let proxy = limits
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer.ip()));
        let Some(permit) = caps.admit(peer.ip(), proxy) else {
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let app = app.clone();
        let trusted = Arc::clone(&limits.trusted_proxies);
        let draining = draining.clone();
        let drain = drain_rx.clone();
        let open = open_tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = open;
            let tls = match tokio::time::timeout(timeouts.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let mut tls = tls;
            // Larger plaintext buffering lets big responses go out in fewer, fuller writes.
            tls.get_mut().1.set_buffer_limit(Some(1 << 20));
            let io = TokioIo::new(Idle::new(tls, timeouts.idle));
            let rate = limits.min_body_rate;
            let svc = app.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
                let (mut parts, body) = req.into_parts();
                let client = forwarded_client(peer, &parts.headers, &trusted);
                parts.extensions.insert(ConnectInfo(client));
                let body = match rate {
                    // A request without a body (most GETs) has nothing to be slow with.
                    Some(rate) if !http_body::Body::is_end_stream(&body) => {
                        let (body, cut) = MinRate::new(body, rate, peer);
                        parts.extensions.insert(cut);
                        Body::new(body)
                    }
                    _ => Body::new(body),
                };
                hyper::Request::from_parts(parts, body)
            });
            // Each request says the connection has begun serving (see `leaving`).
            let served = Arc::new(tokio::sync::Notify::new());
            let serving = served.clone();
            let svc = tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let svc = svc.clone();
                let draining = draining.clone();
                serving.notify_one();
                async move {
                    let leaving = draining.load(Ordering::Relaxed);
                    let version = req.version();
                    let readiness = req.uri().path() == "/readyz";
                    let mut res = svc.oneshot(req).await?;
                    if leaving {
                        going_away(&mut res, version, readiness);
                    }
                    Ok::<_, std::convert::Infallible>(res)
                }
            });
            let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(svc));
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = leaving(drain, served, timeouts.header_read) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    reloader.abort();
    tracing::info!("shutting down: draining in-flight requests");
    let _ = drain_tx.send(true);
    drop(open_tx);
    if tokio::time::timeout(timeouts.drain, open_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; closing remaining connections");
    }
    Ok(())
}

/// Resolves when a connection should be shut down gracefully: once the drain has begun and the
/// connection has begun serving (`served`: a request arrived). A connection accepted just before
/// the listener closed has been sent a request its client will not resend elsewhere (a proxy
/// never resends a POST it wrote); shutting it down before that request is read would drop it
/// unanswered, so it is served first, with `Connection: close`. One that sends nothing is shut
/// down after `header_read`.
async fn leaving(
    mut drain: tokio::sync::watch::Receiver<bool>,
    served: Arc<tokio::sync::Notify>,
    header_read: Duration,
) {
    // An error means the server is gone: stop too.
    let _ = drain.wait_for(|&d| d).await;
    let _ = tokio::time::timeout(header_read, served.notified()).await;
}

/// Turns `res` into the answer of a node on its way out: `/readyz` is 503 `not_ready` (its
/// security headers kept), and an HTTP/1 connection is closed after the response, so that no
/// idle connection is left to a proxy when the drain closes the idle ones.
fn going_away(res: &mut axum::response::Response, version: http::Version, readiness: bool) {
    if readiness {
        let problem = crate::error::ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the server is shutting down",
        )
        .into_response();
        let (parts, body) = problem.into_parts();
        *res.status_mut() = parts.status;
        for name in [http::header::CONTENT_TYPE, http::header::CONTENT_LENGTH] {
            match parts.headers.get(&name) {
                Some(v) => res.headers_mut().insert(name, v.clone()),
                None => res.headers_mut().remove(name),
            };
        }
        *res.body_mut() = body;
    }
    if version <= http::Version::HTTP_11 {
        res.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

async fn watch_certificates(certs: Arc<CertStore>) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        match certs.reload_if_changed() {
            Ok(true) => tracing::info!("TLS certificate reloaded from its files"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "new TLS certificate refused; the previous one stays in use")
            }
        }
    }
}

/// Counts open connections, in total and per client address.
struct ConnCaps {
    total: usize,
    per_ip: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
    /// Refusals not yet logged, and when the last log line went out.
    refused: u64,
    logged_at: Option<Instant>,
}

/// How often, at most, refusals are logged (a flood must not flood the log).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The address a connection is counted under: IPv4 as is, IPv6 by its /64 (one client usually
/// holds a whole /64), an IPv4-mapped IPv6 address as the IPv4 one.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

impl ConnCaps {
    fn new(limits: &Limits) -> Self {
        ConnCaps {
            total: limits.max_connections,
            per_ip: limits.max_connections_per_ip,
            open: Mutex::new(Open::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The counts stay consistent even if a holder panicked: every update is one step.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A permit for a new connection from `ip`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, ip: IpAddr, proxy: bool) -> Option<ConnPermit> {
        let key = client_key(ip);
        let mut open = self.lock();
        let from_ip = open.by_ip.get(&key).copied().unwrap_or(0);
        let refusal = if open.total >= self.total {
            Some("the server's connection cap")
        } else if from_ip >= self.per_ip && !proxy {
            Some("the per-address connection cap")
        } else {
            None
        };
        if let Some(reason) = refusal {
            open.refused += 1;
            let due = open
                .logged_at
                .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY);
            if due {
                tracing::warn!(
                    peer = %ip,
                    refused = open.refused,
                    open = open.total,
                    open_from_peer = from_ip,
                    "connection refused: {reason} is reached"
                );
                open.refused = 0;
                open.logged_at = Some(Instant::now());
            }
            return None;
        }
        open.total += 1;
        *open.by_ip.entry(key).or_insert(0) += 1;
        Some(ConnPermit {
            caps: self.clone(),
            key,
        })
    }
}

/// One open connection's place under the caps, given back when the connection ends.
struct ConnPermit {
    caps: Arc<ConnCaps>,
    key: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.caps.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_ip.remove(&self.key);
            }
        }
    }
}

/// The address a listener is bound to (for printing the URL).
pub fn local_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(total: usize, per_ip: usize) -> Arc<ConnCaps> {
        Arc::new(ConnCaps::new(&Limits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            min_body_rate: None,
            trusted_proxies: Arc::default(),
        }))
    }

    #[test]
    fn caps_count_per_address_and_in_total_and_release_on_drop() {
        let caps = caps(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "192.0.2.3".parse().unwrap();
        let a1 = caps.admit(a, false).unwrap();
        let _a2 = caps.admit(a, false).unwrap();
        assert!(
            caps.admit(a, false).is_none(),
            "a third connection from one address"
        );
        let _b1 = caps.admit(b, false).unwrap();
        assert!(caps.admit(c, false).is_none(), "past the total");
        drop(a1);
        let _c1 = caps
            .admit(c, false)
            .expect("a closed connection frees its place");
        assert!(caps.admit(a, false).is_none(), "the total is reached again");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let caps = caps(100, 1);
        let _x = caps
            .admit("2001:db8:1:2::1".parse().unwrap(), false)
            .unwrap();
        assert!(
            caps.admit("2001:db8:1:2:ffff::9".parse().unwrap(), false)
                .is_none(),
            "another address of the same /64"
        );
        assert!(
            caps.admit("2001:db8:1:3::1".parse().unwrap(), false)
                .is_some()
        );
        let _v4 = caps.admit("198.51.100.7".parse().unwrap(), false).unwrap();
        assert!(
            caps.admit("::ffff:198.51.100.7".parse().unwrap(), false)
                .is_none()
        );
    }

    #[test]
    fn a_trusted_proxy_is_exempt_from_the_per_address_cap_only() {
        let caps = caps(3, 1);
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let _p1 = caps.admit(proxy, true).unwrap();
        let _p2 = caps.admit(proxy, true).unwrap();
        assert!(
            caps.admit(proxy, false).is_none(),
            "the same address, not trusted"
        );
        let _p3 = caps.admit(proxy, true).unwrap();
        assert!(caps.admit(proxy, true).is_none(), "the total still holds");
    }

    #[test]
    fn the_client_behind_a_trusted_proxy_is_the_right_most_untrusted_hop() {
        let trusted: Vec<ipnet::IpNet> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "127.0.0.1/32".parse().unwrap(),
        ];
        let headers = |v: &[&str]| {
            let mut h = axum::http::HeaderMap::new();
            for x in v {
                h.append("x-forwarded-for", x.parse().unwrap());
            }
            h
        };
        let via: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let client = |peer: SocketAddr, h: &[&str]| {
            forwarded_client(peer, &headers(h), &trusted)
                .ip()
                .to_string()
        };
        // One proxy: the address it saw.
        assert_eq!(client(via, &["198.51.100.7"]), "198.51.100.7");
        // A client that writes its own header gets it appended to, not believed.
        assert_eq!(client(via, &["6.6.6.6, 198.51.100.7"]), "198.51.100.7");
        // Two proxies, each trusted: past both.
        assert_eq!(client(via, &["198.51.100.7, 10.1.1.1"]), "198.51.100.7");
        assert_eq!(client(via, &["198.51.100.7", "127.0.0.1"]), "198.51.100.7");
        // A peer that is not a trusted proxy: its header is ignored.
        assert_eq!(
            client("203.0.113.9:5000".parse().unwrap(), &["198.51.100.7"]),
            "203.0.113.9"
        );
        // No header, or one that does not parse: the peer.
        assert_eq!(client(via, &[]), "10.0.0.5");
        assert_eq!(client(via, &["not-an-ip"]), "10.0.0.5");
        // Only trusted hops: the left-most.
        assert_eq!(client(via, &["10.2.2.2, 10.3.3.3"]), "10.2.2.2");
    }
}
