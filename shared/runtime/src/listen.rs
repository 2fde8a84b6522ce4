//! The HTTP/1.1 connection loop: accepts on a listener, serves a router on each
//! connection with a bounded request head ([`Limits::header_timeout`], at most
//! 64 KiB and 100 headers: 431 beyond), and on shutdown stops
//! accepting, lets in-flight requests finish and closes idle connections.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Response};
use axum::BoxError;
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::Service;

use crate::limits::Limits;

/// Largest request head (request line and headers) hyper reads; beyond it
/// hyper answers 431 and closes the connection before any handler runs.
const MAX_HEAD: usize = 64 * 1024;

/// Longest wait for open connections after shutdown: Cloud Run allows 10 s
/// in all and the event handlers need the rest.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `service` on `listener` until `shutdown` resolves, then drains.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEAD);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors or the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(service.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "stopped accepting; draining connections"
    );
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; closing them");
    }
}
