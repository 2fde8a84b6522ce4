//! The audit log: every state-changing API call (any method but GET, HEAD and
//! OPTIONS) is recorded with who made it (the key's name), what (method, route
//! template, the ids in its path), when, the status answered and the request
//! id. Bodies are never recorded.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use zapfn_store::AuditEntry;

use crate::auth::Caller;
use crate::Context;

/// Middleware (inside [`crate::auth::require_api_key`]): records state-changing calls.
pub async fn record_changes(
    State(context): State<Context>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let method = parts.method.to_string();
    let request_id = request_id(&parts.headers);
    let route = parts.extensions.get::<MatchedPath>().map_or_else(
        || parts.uri.path().to_owned(),
        |path| path.as_str().to_owned(),
    );
    let target = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .map(|params| {
            params
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(",")
        });
    let request = Request::from_parts(parts, body);
    let response = next.run(request).await;
    let entry = AuditEntry {
        at_ms: chrono::Utc::now().timestamp_millis(),
        key_name: caller.name().to_owned(),
        method,
        route,
        target: target.filter(|target| !target.is_empty()),
        status: response.status().as_u16(),
        request_id,
    };
    record(&context, &entry).await;
    response
}

/// Stores `entry`. The call's effect is already committed: a lost audit write
/// is reported, not turned into an error.
pub async fn record(context: &Context, entry: &AuditEntry) {
    if let Err(error) = context.store.record_audit(entry).await {
        tracing::error!(%error, route = entry.route, key = entry.key_name, "audit entry not stored");
    }
}

/// The client's `X-Request-Id`, Cloud Run's trace id, or a new id.
pub fn request_id(headers: &HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|value| !value.is_empty() && value.len() <= 128)
    };
    if let Some(id) = header("x-request-id") {
        return id.to_owned();
    }
    if let Some(trace) = header("x-cloud-trace-context") {
        return trace.split('/').next().unwrap_or(trace).to_owned();
    }
    uuid::Uuid::now_v7().simple().to_string()
}
