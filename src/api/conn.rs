//! The API's accept loop: HTTP/1.1 connections (with upgrades, for the editor's WebSocket), each
//! holding one of [`MAX_CONNECTIONS`] slots for its whole life, a WebSocket session's included;
//! past the cap a new connection is closed at once and counted. A client must send its request
//! head within the header-read timeout, or the connection is closed: half-sent requests cannot
//! hold slots (or descriptors) for long. `axum::serve` sets no such timeout, hence this loop.
//!
//! On shutdown the loop stops accepting, tells every connection to finish its request and close,
//! and waits for them. It does not know about routes or access: the router does.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::routing::future::RouteFuture;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most HTTP connections (WebSocket sessions included) open at once. Each costs a descriptor
/// and a task; 512 is far more than one person's editors and CLI use, and well under the
/// descriptors a process may open once `serve` has raised its limit.
pub const MAX_CONNECTIONS: usize = 512;

/// How long a client may take to send a request's head (request line and headers), and how
/// long a kept-alive connection may stay idle: a connection that sends nothing useful is closed
/// after this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the loop waits before accepting again after `accept` failed (out of descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The slot of the connection a request came on (a request extension): a WebSocket session
/// keeps it after its HTTP connection has been handed over.
#[derive(Clone)]
pub(crate) struct ConnectionSlot {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// The loop's settings and the counter of the connections it refused.
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) refused: Counter,
}

/// Serves `router` on `listener` until `stopping` fires, then waits for open connections.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stopping: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Said once per time the cap is reached, not once per refused connection.
    let mut full = false;
    loop {
        let accepted = tokio::select! {
            _ = stopping.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("cannot accept an HTTP connection: {e}");
                tokio::select! {
                    _ = stopping.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_RETRY) => continue,
                }
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            limits.refused.inc();
            if !full {
                tracing::warn!(
                    %peer,
                    "{} HTTP connections are open; closing new ones until some end",
                    limits.max_connections
                );
            }
            full = true;
            continue;
        };
        full = false;
        // Editors send keystrokes as small writes: without TCP_NODELAY, Nagle's algorithm
        // and delayed ACKs hold some of them for ~40 ms (BENCHMARKS.md, row 5).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on an HTTP connection: {e}");
        }
        let slot = ConnectionSlot {
            _permit: Arc::new(slot),
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(slot.clone());
            let mut router = router.clone();
            let response: RouteFuture<Infallible> =
                tower_service::Service::call(&mut router, request);
            response
        });
        let connection = http
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let stopping = stopping.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopping.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
