//! `GET /healthz`: liveness plus what a person setting zapfn up needs to see.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::Context;

/// The health route, with its state applied.
pub fn router(context: Context) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .with_state(context)
}

async fn health(State(context): State<Context>) -> Response {
    let config = &context.config;
    let mut warnings = Vec::new();
    if !config.sandbox() && config.phone_number_id.is_none() {
        warnings.push("WA_PHONE_NUMBER_ID is not set: `zapfn simulate` and defaults need it");
    }
    if config.bootstrap_api_key.is_none() {
        warnings
            .push("ZAPFN_API_KEY is not set: only keys made with `zapfn keys create` can call /v1");
    }
    match context.store.queue_depths().await {
        Ok(depths) => Json(json!({
            "status": "ok",
            "mode": if config.sandbox() { "sandbox" } else { "live" },
            "graph_url": config.graph_url,
            "warnings": warnings,
            "queues": depths,
            "webhook_backlog_bytes": context.store.webhook_backlog_bytes(),
        }))
        .into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": error.to_string() })),
        )
            .into_response(),
    }
}
