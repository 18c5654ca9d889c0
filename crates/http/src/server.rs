//! The HTTPS server: accept, TLS handshake under a deadline, HTTP/1.1 or HTTP/2, per-connection
//! timeouts, and a graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::idle::Idle;
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
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            drain: Duration::from_secs(30),
        }
    }
}

/// Serves `app` over HTTPS on `listener` until `shutdown` resolves, then stops accepting and
/// waits (up to `timeouts.drain`) for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    certs: Arc<CertStore>,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
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
    let graceful = GracefulShutdown::new();
    let reloader = tokio::spawn(watch_certificates(certs));
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
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
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
            let svc = app.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
            let conn = builder.serve_connection_with_upgrades(io, TowerToHyperService::new(svc));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    reloader.abort();
    tracing::info!("shutting down: draining in-flight requests");
    if tokio::time::timeout(timeouts.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; closing remaining connections");
    }
    Ok(())
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

/// The address a listener is bound to (for printing the URL).
pub fn local_url(addr: SocketAddr) -> String {
    format!("https://{addr}")
}
