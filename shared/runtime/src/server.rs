//! Serving a router on loopback or `$PORT`, with request ids, request spans
//! and a graceful drain on SIGTERM (Cloud Run allows 10 s).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::MatchedPath;
use axum::http::Request;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::consumer::Consumers;
use crate::logging::trace_context;

/// Time left to event handlers after the HTTP server has drained.
const HANDLER_GRACE: Duration = Duration::from_secs(8);

/// Adds request ids (`x-request-id`, generated when absent), a span per request and
/// the request's Cloud Trace context for log lines.
pub fn instrument(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                // The route template, not the path: paths carry ids such as a customer's number.
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("(unmatched)", MatchedPath::as_str);
                tracing::info_span!("request", method = %request.method(), route, request_id)
            }),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::from_fn(trace_context::propagate))
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
    let limits = crate::limits::Limits::from_env()?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    let router = instrument(crate::limits::guard(router, &limits));
    crate::listen::serve(listener, router, &limits, shutdown).await;
    tracing::info!("HTTP drained; stopping event handlers");
    consumers.shutdown(HANDLER_GRACE).await;
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
