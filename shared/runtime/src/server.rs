//! Serving a router on loopback or `$PORT`, with request ids, request spans
//! and a graceful drain on SIGTERM (Cloud Run allows 10 s).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use axum::{BoxError, Router};
use http_body::Body as HttpBody;
use tower::util::MapRequestLayer;
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::consumer::Consumers;
use crate::limits::{Limits, LimitsLayer};
use crate::logging::trace_context::PropagateLayer;

/// Cloud Run kills an instance 10 s after SIGTERM: draining HTTP, then event
/// handlers, then the relay's last flush share this.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(9);

/// Wraps `router` in what every request passes before it: the request's Cloud
/// Trace context for log lines, a request id (`x-request-id`, generated when
/// absent, echoed in the answer), a span per request naming the route
/// template, and the caps of `limits`. The layers sit around the router, not
/// on each route, so a request pays for no boxing but the router's own.
pub fn instrument<B>(
    router: Router,
    limits: &Limits,
) -> impl Service<
    Request<B>,
    Response = Response<impl HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static>,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
       + Send
       + Sync
       + 'static
where
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
    ServiceBuilder::new()
        .layer(PropagateLayer)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(request_span::<B> as fn(&Request<B>) -> Span),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(LimitsLayer::new(limits))
        .service(router.layer(MapRequestLayer::new(record_route)))
}

/// The span of one request; its route is recorded once the router matched it.
fn request_span<B>(request: &Request<B>) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = tracing::field::Empty,
        request_id
    )
}

/// Records the matched route template (not the path: paths carry ids such as
/// a customer's number) on the request's span.
fn record_route<B>(request: Request<B>) -> Request<B> {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str);
    Span::current().record("route", route);
    request
}

/// Serves `router` on `addr` until SIGTERM or Ctrl-C, then stops `consumers`.
pub async fn serve(router: Router, addr: SocketAddr, consumers: Consumers) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr}: {e} (set PORT to use another port)")
    })?;
    serve_on(listener, router, consumers, shutdown_signal()).await
}

/// Serves on an already bound listener until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: Router,
    consumers: Consumers,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = Limits::from_env()?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let signalled = Arc::new(OnceLock::new());
    let shutdown = {
        let signalled = signalled.clone();
        async move {
            shutdown.await;
            let _ = signalled.set(Instant::now());
        }
    };
    crate::listen::serve(listener, instrument(router, &limits), &limits, shutdown).await;
    tracing::info!("HTTP drained; stopping event handlers");
    let draining = signalled.get().map_or(Duration::ZERO, Instant::elapsed);
    let handlers = SHUTDOWN_BUDGET
        .saturating_sub(draining)
        .saturating_sub(Consumers::LAST_FLUSH);
    consumers.shutdown(handlers).await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
